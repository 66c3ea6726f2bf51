"""Excel workbooks through python-calamine: sheet listing and a row iterator with cells as text.

Cached values are read; formulas are never evaluated (a formula cell without a cached value reads as
empty, and the sheet's warnings name it). The workbook passes ``safety.check_workbook`` (zip bomb, XML
entity and used-range limits) before calamine opens it. calamine holds one whole sheet in memory at a time,
so a sheet may span at most ``safety.MAX_SHEET_CELLS`` cells (20 million; about 1 GB in calamine).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import python_calamine as calamine

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source import safety
from crmmigrator_gui.engine.source.csv_reader import Row, clean_text, restore_scientific

# Everything calamine (or the OS underneath it) raises for a file it cannot read.
_READ_ERRORS = (calamine.CalamineError, OSError, ValueError, RuntimeError)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, calamine.PasswordError):
        return "the workbook is password-protected; remove the password in Excel and export again"
    if isinstance(exc, calamine.ZipError):
        return "this is not a valid .xlsx workbook (it is damaged, or not an Excel file at all)"
    if isinstance(exc, OSError):
        return f"the file cannot be opened ({exc.strerror or exc})"
    return f"the workbook cannot be read ({exc})"


def cell_text(value: object) -> str | None:
    """One cell as ``str | None`` (the rules are listed in ``readers``; text such as ``8.7557E+15`` holding a
    whole number of 12+ digits is written out in full, see :func:`restore_scientific`)."""
    if isinstance(value, str):
        text = clean_text(value)
        if text and ("E+" in text or "e+" in text):
            return restore_scientific(text) or text
        return text
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, timedelta):
        seconds = round(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    if value is None:
        return None
    return clean_text(str(value))


@dataclass
class SheetInfo:
    name: str
    first_column: int | None  # 1-based column where the used range starts; None for an empty sheet
    notes: list[str] = field(default_factory=list)


RawRow = tuple[int, list[object]]


def _fingerprint(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def _check_size(scan: safety.SheetScan | None, name: str, label: str) -> None:
    if scan is not None and scan.cells > safety.MAX_SHEET_CELLS:
        raise InputError(
            f"sheet {name!r} spans {scan.rows:,} rows x {scan.columns:,} columns, over the limit of "
            f"{safety.MAX_SHEET_CELLS:,} cells a sheet may have here (it is read whole into memory); "
            "export it as CSV instead",
            file=label,
        )


def _sheet_notes(scan: safety.SheetScan | None) -> list[str]:
    notes: list[str] = []
    if scan is None:
        return notes
    if scan.formulas_without_value:
        cells = scan.formulas_without_value
        shown = ", ".join(cells[:5]) + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")
        notes.append(
            f"{len(cells)} formula cell(s) have no saved value and read as empty: {shown}. Formulas are "
            "never calculated here; open and save the workbook in Excel to store their values."
        )
    if scan.hidden_columns:
        notes.append(f"Column(s) {', '.join(scan.hidden_columns)} are hidden in Excel; they were read like the others.")
    return notes


def iter_sheets(path: Path, label: str) -> Iterator[tuple[SheetInfo, Iterator[RawRow]]]:
    """Every visible worksheet with its raw rows (``(physical row, cells)``, empty cells as None).

    The workbook passes :func:`safety.check_workbook` first. One sheet is in memory at a time: the caller
    consumes a sheet's rows before asking for the next. Hidden sheets are listed in the first sheet's notes.
    """
    scans = safety.check_workbook(path, label)
    hidden: list[str] = []
    try:
        with calamine.CalamineWorkbook.from_path(str(path)) as workbook:
            metas = [m for m in workbook.sheets_metadata if m.typ == calamine.SheetTypeEnum.WorkSheet]
            for meta in metas:
                if meta.visible != calamine.SheetVisibleEnum.Visible:
                    hidden.append(f"Sheet {meta.name!r} is hidden and was not read.")
            for meta in metas:
                if meta.visible != calamine.SheetVisibleEnum.Visible:
                    continue
                scan = scans.sheets.get(meta.name, scans.largest)
                _check_size(scan, meta.name, label)
                sheet = workbook.get_sheet_by_name(meta.name)
                if sheet.height * sheet.width > safety.MAX_SHEET_CELLS:
                    _check_size(safety.SheetScan("", sheet.height, sheet.width), meta.name, label)
                start = sheet.start
                notes = hidden + _sheet_notes(scans.sheets.get(meta.name))
                hidden = []
                if start is None:
                    yield SheetInfo(meta.name, None, notes), iter(())
                    continue
                yield SheetInfo(meta.name, start[1] + 1, notes), _raw_rows(sheet.iter_rows())
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None


def _raw_rows(rows: Iterator[list[object]]) -> Iterator[RawRow]:
    # calamine starts at physical row 1 (leading empty rows included), so enumerate gives real rows.
    for rownum, raw in enumerate(rows, start=1):
        yield rownum, [None if cell == "" else cell for cell in raw]


def to_text(raw: list[object], pads: dict[int, int]) -> list[str | None]:
    """Raw cells -> text (:func:`cell_text`); numbers in zero-padded columns (``pads``) padded."""
    values = [cell_text(cell) for cell in raw]
    for index, width in pads.items():
        if index < len(raw):
            cell, value = raw[index], values[index]
            if isinstance(cell, (int, float)) and not isinstance(cell, bool) and value and value.isdigit():
                values[index] = value.zfill(width)
    return values


def iter_sheet_rows(
    path: Path, sheet: str, label: str, pads: dict[int, int], fingerprint: tuple[int, int]
) -> Iterator[Row]:
    """Yield ``(physical row, cell texts)`` from row 1 to the last used row of one sheet.

    Cells start at the sheet's first used column. The file must be the one checked when it was opened.
    """
    if _fingerprint(path) != fingerprint:
        raise InputError("the file changed after it was opened; open it again", file=label)
    try:
        workbook = calamine.CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_name(sheet).iter_rows()
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None
    try:
        for rownum, raw in _raw_rows(rows):
            yield rownum, to_text(raw, pads)
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None
    finally:
        workbook.close()


class ColumnStats:
    """One pass over a sheet's data rows: zero-padded columns and long numbers that lost digits."""

    def __init__(self) -> None:
        self.text_lengths: dict[int, set[int]] = {}
        self.zero_led: dict[int, int] = {}
        self.short_numbers: dict[int, int] = {}
        self.long_numbers: dict[int, tuple[int, str]] = {}  # column -> first (row, text)
        self.scientific: dict[int, tuple[int, str, str]] = {}

    def add(self, rownum: int, raw: list[object]) -> None:
        for index, cell in enumerate(raw):
            if cell is None:
                continue
            if isinstance(cell, str):
                if cell.isdigit():
                    self.text_lengths.setdefault(index, set()).add(len(cell))
                    if cell[0] == "0" and len(cell) > 1:
                        self.zero_led[index] = self.zero_led.get(index, 0) + 1
                elif ("E+" in cell or "e+" in cell) and index not in self.scientific:
                    full = restore_scientific(cell)
                    if full:
                        self.scientific[index] = (rownum, cell, full)
            elif isinstance(cell, float) and cell.is_integer() and cell >= 0:
                if cell >= 1e15 and index not in self.long_numbers:
                    self.long_numbers[index] = (rownum, str(int(cell)))
                self.short_numbers[index] = self.short_numbers.get(index, 0) + 1
            elif isinstance(cell, int) and not isinstance(cell, bool) and cell >= 0:
                self.short_numbers[index] = self.short_numbers.get(index, 0) + 1

    def pads(self) -> dict[int, int]:
        """Columns whose digit-only text is all one width with leading zeros (2+ cells): pad numbers there."""
        pads = {}
        for index, lengths in self.text_lengths.items():
            if len(lengths) == 1 and self.zero_led.get(index, 0) >= 2 and self.short_numbers.get(index):
                pads[index] = next(iter(lengths))
        return pads

    def warnings(self, columns: list[str], offset: int) -> list[str]:
        """``offset``: raw index of the first named column (always 0 here; kept for clarity)."""
        notes = []

        def name(index: int) -> str | None:
            position = index - offset
            return columns[position] if 0 <= position < len(columns) else None

        for index, width in self.pads().items():
            if name(index):
                notes.append(
                    f"Column {name(index)!r}: numbers padded with leading zeros to {width} digits, like the "
                    "other values in the column (Excel had dropped the zeros)."
                )
        for index, (rownum, text) in self.long_numbers.items():
            if name(index):
                notes.append(
                    f"Column {name(index)!r} holds long numbers stored as numbers (row {rownum}: {text}); Excel "
                    "keeps only 15 significant digits, so ids or phone numbers may have lost precision. "
                    "Re-export with the column formatted as text."
                )
        for index, (rownum, text, full) in self.scientific.items():
            if name(index):
                notes.append(
                    f"Column {name(index)!r} holds numbers in scientific notation (row {rownum}: {text} read as "
                    f"{full}); Excel keeps only the digits shown, so ids or phone numbers may have lost "
                    "precision. Re-export with the column formatted as text."
                )
        return notes
