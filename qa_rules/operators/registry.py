"""The operator registry: a new check is one function registered under a name with the pydantic
model of its parameters; the rulebook loader validates a rule's ``params`` against that model.

Triggers are registered the same way in `TRIGGERS`: a trigger detects a *situation* on the call
(a silent caller, a transfer, a long number read out) and returns its occurrences; the rules of
that situation then judge what the agent did around each occurrence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from pydantic import BaseModel

from ..context import CallContext, Occurrence, Outcome
from ..spec import Scope

P = TypeVar("P", bound=BaseModel)
OperatorFn = Callable[[CallContext, Scope, P], Outcome]
TriggerFn = Callable[[CallContext, Scope, P], list[Occurrence]]


@dataclass(frozen=True)
class Operator(Generic[P]):
    name: str
    params: type[P]
    fn: OperatorFn
    doc: str


@dataclass(frozen=True)
class Trigger(Generic[P]):
    name: str
    params: type[P]
    fn: TriggerFn
    doc: str


OPERATORS: dict[str, Operator] = {}
TRIGGERS: dict[str, Trigger] = {}


def register(name: str, params: type[P]) -> Callable[[OperatorFn], OperatorFn]:
    def deco(fn: OperatorFn) -> OperatorFn:
        if name in OPERATORS:
            raise ValueError(f"operator {name!r} registered twice")
        OPERATORS[name] = Operator(name, params, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def register_trigger(name: str, params: type[P]) -> Callable[[TriggerFn], TriggerFn]:
    def deco(fn: TriggerFn) -> TriggerFn:
        if name in TRIGGERS:
            raise ValueError(f"trigger {name!r} registered twice")
        TRIGGERS[name] = Trigger(name, params, fn, (fn.__doc__ or "").strip())
        return fn

    return deco
