"""Cells that a spreadsheet will never run as a formula.

Agent ids, team names, notes and call ids come from the call center's systems and from reviewers;
Excel and LibreOffice treat a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, after a tab or
carriage return, the same) as a formula — ``=HYPERLINK(...)`` in an agent id would become a live
link in a supervisor's report.  Every CSV and Excel writer of the project passes its text through
:func:`safe_cell`, which prefixes such text with an apostrophe (OWASP's advice), the mark
spreadsheets use for "this is text".
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would read as a formula; numbers stay
    numbers (a negative score is a number, not text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row (``csv.DictWriter``) with every text cell made safe."""
    return {key: safe_cell(value) for key, value in row.items()}


def safe_frame(frame):
    """A copy of a pandas frame whose text cells are safe (for ``to_csv``)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    out = frame.copy()
    for column in out.columns:
        if is_object_dtype(out[column]) or is_string_dtype(out[column]):
            out[column] = out[column].astype(object).map(safe_cell)
    return out
