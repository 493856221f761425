"""Rulebooks and scoring: conversation + measures + rulebook → scorecard.

Knows nothing of audio or models (only the records of `pipelines.records`), so a stored call can
be re-scored with an edited rulebook in milliseconds."""

from .engine import score
from .rulebook import CATEGORIES, Rule, Rulebook, RulebookError, Section, default_rulebook_path, load_rulebook
from .scorecard import Scorecard

__all__ = [
    "CATEGORIES",
    "Rule",
    "Rulebook",
    "RulebookError",
    "Scorecard",
    "Section",
    "default_rulebook_path",
    "load_rulebook",
    "score",
]
