"""Excel workbooks through python-calamine: sheet listing and a row iterator with cells as text.

Cached values are read; formulas are never evaluated (a formula cell without a cached value reads as
empty).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from pathlib import Path

import python_calamine as calamine

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source.csv_reader import Row, clean_text

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
    """One cell as ``str | None`` (the rules are listed in ``readers``)."""
    if isinstance(value, str):
        return clean_text(value)
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
class SheetHead:
    name: str
    first_column: int | None  # 1-based column where the used range starts; None for an empty sheet
    head: list[Row]


def read_heads(path: Path, label: str, rows: int) -> tuple[list[SheetHead], list[str]]:
    """The first ``rows`` rows of every visible worksheet, plus warnings about sheets left out.

    One pass over the workbook, so each sheet is parsed once here.
    """
    warnings: list[str] = []
    heads: list[SheetHead] = []
    try:
        with calamine.CalamineWorkbook.from_path(str(path)) as workbook:
            for meta in workbook.sheets_metadata:
                if meta.typ != calamine.SheetTypeEnum.WorkSheet:
                    continue
                if meta.visible != calamine.SheetVisibleEnum.Visible:
                    warnings.append(f"Sheet {meta.name!r} is hidden and was not read.")
                    continue
                sheet = workbook.get_sheet_by_name(meta.name)
                start = sheet.start
                if start is None:
                    heads.append(SheetHead(meta.name, None, []))
                    continue
                head = [
                    (rownum, [None if cell == "" else cell_text(cell) for cell in raw])
                    for rownum, raw in enumerate(islice(sheet.iter_rows(), rows), start=1)
                ]
                heads.append(SheetHead(meta.name, start[1] + 1, head))
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None
    return heads, warnings


def iter_sheet_rows(path: Path, sheet: str, label: str) -> Iterator[Row]:
    """Yield ``(physical row, cell texts)`` from row 1 to the last used row.

    Cells start at the sheet's first used column (see :func:`first_column`).
    """
    try:
        workbook = calamine.CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_name(sheet).iter_rows()
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None
    convert = cell_text
    try:
        # calamine starts at physical row 1 (leading empty rows included), so enumerate gives real rows.
        for rownum, raw in enumerate(rows, start=1):
            yield rownum, [None if cell == "" else convert(cell) for cell in raw]
    except _READ_ERRORS as exc:
        raise InputError(_explain(exc), file=label) from None
    finally:
        workbook.close()
