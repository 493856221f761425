"""Operators and triggers, one function each, registered by name (importing this package
registers them)."""

from . import band, hold, interruption, language, phrase, respond, sequence, steps, timing, triggers, voice  # noqa: F401  (registration)
from .registry import OPERATORS, TRIGGERS, Operator, Trigger, register, register_trigger

__all__ = ["OPERATORS", "TRIGGERS", "Operator", "Trigger", "register", "register_trigger"]
