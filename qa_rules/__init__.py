"""Rulebooks and scoring: conversation + measures + rulebook → scorecard.

``qa_rules.records`` holds the domain records (conversation, measures, scorecard, call source,
errors) that ``pipelines`` produces and this package scores; nothing here imports ``pipelines``
or decodes audio, so a stored call is re-scored with an edited rulebook in milliseconds.

The names below load on first use (PEP 562), so importing the records alone stays cheap."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "score": "engine",
    "CATEGORIES": "rulebook",
    "Rule": "rulebook",
    "Rulebook": "rulebook",
    "RulebookError": "rulebook",
    "Section": "rulebook",
    "default_rulebook_path": "rulebook",
    "default_rulebook_paths": "rulebook",
    "load_rulebook": "rulebook",
    "Scorecard": "records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
