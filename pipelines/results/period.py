"""Reporting periods: a month (``2024-05``) or an inclusive date range (``2024-05-01..2024-05-31``).

Calls are bucketed by the *local* calendar date written in ``started_at`` (the call center's own
clock, e.g. ``2024-05-13T09:12:31+08:00`` is 2024-05-13), not by UTC: a supervisor's "May" is the
month on the wall of the call center, and converting to UTC would move late-evening calls into the
next day.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class PeriodError(ValueError):
    """A ``--period`` value that cannot be understood; the message says what is accepted."""


@dataclass(frozen=True)
class Period:
    """Inclusive date range with the label it was given as."""

    first: date
    last: date
    label: str

    def contains(self, started_at: str | None) -> bool:
        """Whether a call that started at ``started_at`` (ISO string) falls in the period."""
        day = call_date(started_at)
        return day is not None and self.first <= day <= self.last

    @property
    def slug(self) -> str:
        """The label made safe for a folder or file name."""
        return self.label.replace("..", "_to_")


def parse_period(text: str) -> Period:
    """``2024-05`` → the whole of May 2024; ``2024-05-01..2024-05-31`` → those days inclusive."""
    text = text.strip()
    month = _MONTH.match(text)
    if month:
        year, mon = int(month.group(1)), int(month.group(2))
        if not 1 <= mon <= 12:
            raise PeriodError(f"period {text!r}: month must be 01–12")
        return Period(date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1]), text)
    span = _RANGE.match(text)
    if span:
        try:
            first, last = date.fromisoformat(span.group(1)), date.fromisoformat(span.group(2))
        except ValueError as exc:
            raise PeriodError(f"period {text!r}: {exc}") from exc
        if last < first:
            raise PeriodError(f"period {text!r}: the end date is before the start date — write FIRST..LAST")
        return Period(first, last, text)
    raise PeriodError(f"period {text!r} not understood — use a month like 2024-05 or a date range like 2024-05-01..2024-05-31")


def call_date(started_at: object) -> date | None:
    """The local calendar date of a call's ``started_at``; ``None`` when missing or unreadable.

    A store read into pandas gives NaN (a float), not ``None``, for a call without a start date:
    anything but text is "no date", never a crash of the whole report."""
    if not isinstance(started_at, str) or len(started_at) < 10:
        return None
    try:
        return date.fromisoformat(started_at[:10])
    except ValueError:
        return None


def call_month(started_at: str | None) -> str | None:
    """``YYYY-MM`` of a call's local start date (the 月报 bucket)."""
    day = call_date(started_at)
    return f"{day.year:04d}-{day.month:02d}" if day else None
