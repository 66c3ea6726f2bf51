"""The sample diff as a workbook the customer reviews before signing off (``sample --diff FILE.xlsx``).

Two sheets: **Summary** (per object and field, how many records got each verdict, flagged fields first,
with a totals row) and **Diff** (one row per field of every sampled record: source → expected → stored,
the verdict coloured, an autofilter and a frozen header so a reviewer can filter to what is flagged).
Source values and notes are untrusted text, so every cell goes through :mod:`.safe_cells`; values are
written as the text that was compared (``143.10`` stays ``143.10``, not a float). Written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.report.files import _atomic
from crmmigrator_gui.engine.report.safe_cells import write_only_cell
from crmmigrator_gui.engine.run.sample import FLAGGED, VERDICTS, FieldDiff, summarize_diff

DIFF_COLUMNS = (
    ("source_object", "Source object"),
    ("source_id", "Source id"),
    ("source_field", "Source field"),
    ("target_entity", "Destination table"),
    ("dest_id", "Destination id"),
    ("field", "Destination field"),
    ("source_value", "Source value"),
    ("expected", "Expected value"),
    ("stored", "Stored value"),
    ("verdict", "Verdict"),
    ("note", "Note"),
)
#: Fill colour per verdict: greens and blues are fine, warm colours want a look, red stopped a record.
VERDICT_COLOURS = {
    "equal": "C6EFCE",
    "transformed": "DDEBF7",
    "truncated": "FFEB9C",
    "missing": "F8CBAD",
    "changed_by_server": "F4B084",
    "misread": "FF9999",
    "failed": "FF7C80",
    "skipped": "D9D9D9",
}
_WIDTHS = {"A": 16, "B": 14, "C": 20, "D": 18, "E": 38, "F": 24, "G": 30, "H": 30, "I": 30, "J": 18, "K": 60}


def cell_value(value: Any) -> Any:
    """The compared value as a cell shows it: text for Decimals and dates (exact), JSON for structures."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def export_diff(rows: Sequence[FieldDiff], path: Path | str) -> Path:
    """Write the diff workbook to ``path`` (.xlsx) atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise UsageError(f"{path.name}: the sample diff is written as .xlsx")
    summary = summarize_diff(list(rows))

    def write(tmp: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill
        from openpyxl.utils import get_column_letter

        bold = Font(bold=True)
        fills = {v: PatternFill("solid", fgColor=c) for v, c in VERDICT_COLOURS.items()}
        wb = Workbook(write_only=True)  # streams rows: a 500-record sample is ~10,000 diff rows
        ws = wb.create_sheet("Summary")
        header = ["Source object", "Source field", "Destination table", "Destination field", *VERDICTS, "Flagged"]
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{max(len(summary['by_field']) + 1, 2)}"
        for letter, width in zip("ABCD", (18, 24, 20, 26), strict=True):
            ws.column_dimensions[letter].width = width
        ws.append([write_only_cell(ws, t, font=bold, fill=fills.get(t, PatternFill())) for t in header])
        for entry in summary["by_field"]:
            names = [entry["source_object"], entry["source_field"], entry["target_entity"], entry["field"]]
            counts = [entry[v] for v in VERDICTS]
            ws.append([write_only_cell(ws, v) for v in [*names, *counts, sum(entry[v] for v in FLAGGED)]])
        totals = ["Total", f"{summary['records']} records", "", "", *summary["verdicts"].values(), summary["flagged"]]
        ws.append([write_only_cell(ws, v, font=bold) for v in totals])

        diff = wb.create_sheet("Diff")
        diff.freeze_panes = "A2"
        diff.auto_filter.ref = f"A1:{get_column_letter(len(DIFF_COLUMNS))}{max(len(rows) + 1, 2)}"
        for letter, width in _WIDTHS.items():
            diff.column_dimensions[letter].width = width
        diff.append([write_only_cell(diff, title, font=bold) for _k, title in DIFF_COLUMNS])
        for item in rows:
            cells = []
            for key, _title in DIFF_COLUMNS:
                style = {"fill": fills[item.verdict]} if key == "verdict" and item.verdict in fills else {}
                cells.append(write_only_cell(diff, cell_value(getattr(item, key)), **style))
            diff.append(cells)
        wb.save(tmp)

    _atomic(path, write)
    return path
