"""Formula-injection guard for every spreadsheet and CSV the app writes.

Source data and customer notes are untrusted: a value such as ``=HYPERLINK("http://evil","click")`` or
``@SUM(A1)`` becomes a live formula when a spreadsheet program opens a file we wrote (OWASP "CSV
injection"). openpyxl even turns any string that starts with ``=`` into a formula by itself. So every
writer passes its values through here:

- XLSX: a risky string is stored as an explicit string cell (``data_type 's'``) with ``quotePrefix`` set,
  so Excel, LibreOffice and Google Sheets show it as text and keep it text when the user edits the cell;
  characters XML cannot carry are replaced, and over-long text is cut to Excel's cell limit.
- CSV: a risky string gets a leading apostrophe (the convention spreadsheet programs honour).

Risky means: starts with ``= + - @``, TAB or CR, or their full-width forms (``＝ ＋ － ＠``), which some
spreadsheet locales also evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_TRIGGERS = frozenset("=+-@\t\r＝＋－＠")
EXCEL_CELL_LIMIT = 32767
# XML 1.0 cannot hold these control characters (openpyxl refuses them with IllegalCharacterError).
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def is_risky(value: Any) -> bool:
    """True for a string a spreadsheet program would evaluate as a formula."""
    return isinstance(value, str) and bool(value) and value[0] in FORMULA_TRIGGERS


def xlsx_text(value: str) -> str:
    """Text as an XLSX cell can hold it: no XML-illegal characters, at most 32,767 characters."""
    text = _ILLEGAL_XML.sub("\ufffd", value)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[: EXCEL_CELL_LIMIT - 1] + "…"
    return text


def set_cell(cell: Any, value: Any) -> Any:
    """Assign ``value`` to an openpyxl cell so that no string can ever become a formula.

    Returns the cell, for chaining. Non-string values (numbers, dates, booleans, None) pass through.
    """
    if isinstance(value, str):
        text = xlsx_text(value)
        cell.value = text
        cell.data_type = "s"  # openpyxl would otherwise store "=..." as a formula
        if is_risky(text):
            cell.quotePrefix = True
    else:
        cell.value = value
    return cell


def append_row(ws: Any, values: Iterable[Any]) -> int:
    """``ws.append`` with every cell guarded; returns the new row's number."""
    values = [xlsx_text(v) if isinstance(v, str) else v for v in values]
    ws.append(values)
    row = int(ws.max_row)
    for column, value in enumerate(values, 1):
        if isinstance(value, str):
            set_cell(ws.cell(row=row, column=column), value)
    return row


def write_only_cell(ws: Any, value: Any, **style: Any) -> Any:
    """A guarded cell for openpyxl's write-only mode (``ws.append([...cells])``)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws)
    set_cell(cell, value)
    for name, item in style.items():
        setattr(cell, name, item)
    return cell


def csv_value(value: Any) -> Any:
    """A CSV field that a spreadsheet program will not evaluate (risky strings get a leading apostrophe)."""
    if is_risky(value):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_value(v) for v in values]
