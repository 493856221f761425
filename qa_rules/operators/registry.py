"""The operator registry: a new check is one function registered under a name with the pydantic
model of its parameters; the rulebook loader validates a rule's ``params`` against that model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from pydantic import BaseModel

from ..context import CallContext, Outcome
from ..spec import Scope

P = TypeVar("P", bound=BaseModel)
OperatorFn = Callable[[CallContext, Scope, P], Outcome]


@dataclass(frozen=True)
class Operator(Generic[P]):
    name: str
    params: type[P]
    fn: OperatorFn
    doc: str


OPERATORS: dict[str, Operator] = {}


def register(name: str, params: type[P]) -> Callable[[OperatorFn], OperatorFn]:
    def deco(fn: OperatorFn) -> OperatorFn:
        if name in OPERATORS:
            raise ValueError(f"operator {name!r} registered twice")
        OPERATORS[name] = Operator(name, params, fn, (fn.__doc__ or "").strip())
        return fn

    return deco
