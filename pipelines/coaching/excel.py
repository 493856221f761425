"""The Excel workbook supervisors get: one sheet per table, a bold frozen header row, percentages
as Excel percentages (so they sort and chart in Excel), and columns wide enough to read."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from pipelines.reports.spreadsheet import safe_cell

log = logging.getLogger(__name__)

MAX_WIDTH = 50
PERCENT_COLUMNS = {"pass_rate", "hold_share", "silence_share", "agent_talk_ratio"}
HEADERS = {
    "group": "Group", "month": "Month", "calls": "Calls", "mean_score": "Mean score (points)",
    "mean_percent": "Mean score %", "pass_rate": "Pass rate", "fatal_calls": "Fatal calls",
    "avg_handle_time_s": "Avg handle time (s) 通话时长", "avg_hold_s": "Avg hold (s)", "hold_share": "Hold share",
    "silence_share": "Silence share", "agent_talk_ratio": "Agent talk ratio", "rule_id": "Rule", "category": "Category",
    "applicable": "Applicable calls", "passed": "Passed", "failed": "Failed",
}


def write_workbook(sheets: dict[str, pd.DataFrame], path: Path) -> Path:
    """Write ``{sheet name: frame}`` to ``path``; sheet names are cut to Excel's 31 characters."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, frame in sheets.items():
        sheet = workbook.create_sheet(_sheet_name(name))
        headers = [safe_cell(HEADERS.get(str(c), str(c))) for c in frame.columns]
        sheet.append(headers)
        for row in frame.itertuples(index=False):
            sheet.append([_cell(v) for v in row])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        sheet.freeze_panes = "A2"
        for index, column in enumerate(frame.columns, start=1):
            letter = get_column_letter(index)
            if column in PERCENT_COLUMNS:
                for cell in sheet[letter][1:]:
                    cell.number_format = "0.0%"
            elif frame[column].dtype.kind == "f":
                for cell in sheet[letter][1:]:
                    cell.number_format = "0.00"
            width = max([_display_width(headers[index - 1])] + [_display_width(v) for v in frame[column]])
            sheet.column_dimensions[letter].width = min(MAX_WIDTH, width + 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    log.info("workbook %s (%s)", path, ", ".join(workbook.sheetnames))
    return path


def _cell(value):
    """Plain Python values for openpyxl (NaN → empty cell, numpy scalars → Python numbers); text
    that Excel would run as a formula (``=HYPERLINK(...)`` in an agent id) stays text."""
    if value is None or (not isinstance(value, (str, bytes)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return safe_cell(value)


def _display_width(value) -> int:
    """Characters as Excel shows them: CJK characters take two columns."""
    text = "" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _sheet_name(name: str) -> str:
    for bad in "[]:*?/\\":
        name = name.replace(bad, " ")
    return name[:31]
