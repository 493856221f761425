"""Operators, one function each, registered by name (importing this package registers them)."""

from . import band, hold, interruption, phrase, sequence  # noqa: F401  (registration)
from .registry import OPERATORS, Operator, register

__all__ = ["OPERATORS", "Operator", "register"]
