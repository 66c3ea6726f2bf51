"""Open export files as tables of text: CSV/TSV/TXT and Excel workbooks.

Every cell becomes ``str | None``:

* empty or whitespace-only -> ``None`` (other text is kept exactly, spaces included);
* Excel datetime -> ``YYYY-MM-DDTHH:MM:SS``, date-only cell -> ``YYYY-MM-DD``, time-only -> ``HH:MM:SS``;
* numbers: integral floats without ``.0`` (``45123``), other floats as their round-tripping repr (``12.5``);
* booleans -> ``TRUE`` / ``FALSE``;
* ``="00123"`` (Excel's keep-as-text wrapper) -> ``00123``. Formulas are never evaluated.

Header detection (CSV and Excel alike), over the first 30 non-blank rows: the header is the first row that

1. has at least half of its span filled (span = up to its last non-empty cell),
2. is mostly text: at least 80% of its cells are not numbers, dates, money or booleans, and none is an
   e-mail address or longer than 120 characters,
3. has mostly distinct values, and
4. is about as wide as what follows: it fills at least half the median width, and half the widest, of the
   next ten non-blank rows (a title such as "OctopusPro data export" above a 16-column table does not, nor
   does a "Company:, Acme" line in a block of key/value lines above the table).

Rows above the header (titles, "Generated 14/03/2025", blank lines) are skipped. Header names are stripped
(inner runs of whitespace become one space); blanks become ``Column N``; repeats become ``Name (2)``.

Data rows: entirely empty rows are skipped; short rows are padded with ``None``; a value under no header (to
the right of the last named column) is an :class:`InputError` naming the file, row and column position.
Row numbers are physical: the sheet row in Excel, the record number in a CSV (as a spreadsheet shows it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source import csv_reader, xlsx_reader
from crmmigrator_gui.engine.source.dates import date_kind

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".csv", ".tsv", ".txt", ".xlsx", ".xlsm"})
_TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})

HEADER_SCAN_ROWS = 30
_FOLLOW_ROWS = 10
_MAX_HEADER_CELL = 120

_HEAD_ROWS = HEADER_SCAN_ROWS * 4 + _FOLLOW_ROWS + 1  # blank rows do not count towards the 30

Row = tuple[int, list[str | None]]


class _NoTable(InputError):
    """The file or sheet holds no table (empty, or no header row)."""


_NUMBERISH = re.compile(r"[\s(+\-]*(?:[A-Z]{3}\s?)?[$€£¥]?\s*[\d.,]+\s*%?\)?\s*(?:[A-Z]{3})?")
_BOOLEANS = frozenset({"true", "false"})


@dataclass
class SourceTable:
    """One table of an export file: a CSV file or one worksheet."""

    name: str  # sheet name (xlsx) or file stem (csv)
    path: Path
    sheet: str | None
    header_row: int  # 1-based physical row of the header line
    columns: list[str]
    encoding: str | None  # csv only
    delimiter: str | None  # csv only
    warnings: list[str] = field(default_factory=list)
    _open_rows: Callable[[], Iterator[Row]] | None = field(default=None, repr=False, compare=False)
    _first_column: int = field(default=1, repr=False, compare=False)

    @property
    def label(self) -> str:
        """How errors name this table: ``bookings.csv`` or ``export.xlsx [Bookings]``."""
        return f"{self.path.name} [{self.sheet}]" if self.sheet else self.path.name

    def iter_rows(self) -> Iterator[tuple[int, list[str | None]]]:
        """Stream ``(physical row, values aligned to columns)``; re-reads the file on every call."""
        if self._open_rows is None:
            return
        width = len(self.columns)
        header_row = self.header_row
        for rownum, values in self._open_rows():
            if rownum <= header_row:
                continue
            size = len(values)
            if size != width:
                if size > width:
                    for offset, value in enumerate(values[width:]):
                        if value is not None:
                            raise self._overflow(rownum, width + offset, value)
                    del values[width:]
                else:
                    values.extend([None] * (width - size))
            if values.count(None) == width:
                continue
            yield rownum, values

    def _overflow(self, rownum: int, index: int, value: str) -> InputError:
        position = index + self._first_column
        shown = value if len(value) <= 40 else value[:37] + "..."
        error = InputError(
            f"column {position} (no header) holds {shown!r}, but the header (row {self.header_row}) names "
            f"only {len(self.columns)} columns. A delimiter or quote inside a cell may have split it",
            file=self.label,
            row=rownum,
        )
        error.column = f"column {position} (no header)"
        return error


# --------------------------------------------------------------------------------------------- header


def _width(values: list[str | None]) -> int:
    for index in range(len(values) - 1, -1, -1):
        if values[index] is not None:
            return index + 1
    return 0


def _is_texty(value: str) -> bool:
    text = value.strip()
    if text.lower() in _BOOLEANS:
        return False
    if _NUMBERISH.fullmatch(text) and any(ch.isdigit() for ch in text):
        return False
    return not date_kind(text)


def _looks_like_header(values: list[str | None], following: list[list[str | None]]) -> bool:
    span = _width(values)
    filled = [v.strip() for v in values[:span] if v is not None]
    count = len(filled)
    if count == 0 or count < 0.5 * span:
        return False
    if any("@" in v or len(v) > _MAX_HEADER_CELL for v in filled):
        return False
    if sum(1 for v in filled if _is_texty(v)) < 0.8 * count:
        return False
    if len({v.casefold() for v in filled}) < 0.5 * count:
        return False
    if following:
        widths = sorted(_width(row) for row in following)
        median = widths[len(widths) // 2]
        if count < 0.5 * median or count < 0.5 * widths[-1]:
            return False
    return True


def find_header(rows: list[Row]) -> int | None:
    """Index in ``rows`` of the header line, by the rules in the module docstring; None if there is none."""
    nonblank = [index for index, (_num, values) in enumerate(rows) if _width(values)]
    for position, index in enumerate(nonblank[:HEADER_SCAN_ROWS]):
        following = [rows[i][1] for i in nonblank[position + 1 : position + 1 + _FOLLOW_ROWS]]
        if _looks_like_header(rows[index][1], following):
            return index
    return None


def make_columns(values: list[str | None]) -> tuple[list[str], list[str]]:
    """Header cells -> unique column names, plus warnings about blanks and repeats."""
    names: list[str] = []
    warnings: list[str] = []
    taken: set[str] = set()
    for index, value in enumerate(values[: _width(values)]):
        name = " ".join(value.split()) if value else ""
        if not name:
            name = f"Column {index + 1}"
            warnings.append(f"Column {index + 1} has no header; it is called {name!r}.")
        if name in taken:
            base, copy = name, 2
            while f"{base} ({copy})" in taken:
                copy += 1
            name = f"{base} ({copy})"
            warnings.append(f"Header {base!r} appears more than once; the repeat is called {name!r}.")
        taken.add(name)
        names.append(name)
    return names, warnings


def _build_table(
    *,
    name: str,
    path: Path,
    sheet: str | None,
    label: str,
    open_rows: Callable[[], Iterator[Row]],
    encoding: str | None = None,
    delimiter: str | None = None,
    first_column: int = 1,
    warnings: list[str] | None = None,
    head: list[Row] | None = None,
) -> SourceTable:
    if head is None:
        head = list(islice(open_rows(), _HEAD_ROWS))
    if not any(_width(values) for _num, values in head):
        raise _NoTable("the file has no data (every cell is empty)", file=label)
    index = find_header(head)
    if index is None:
        raise _NoTable(
            f"no header row found in the first {HEADER_SCAN_ROWS} non-blank rows (expected a row of column "
            "names, mostly text, as wide as the rows below it)",
            file=label,
        )
    header_row, header_values = head[index]
    columns, notes = make_columns(header_values)
    all_warnings = list(warnings or [])
    skipped = sum(1 for _num, values in head[:index] if _width(values))
    if skipped:
        all_warnings.append(f"Skipped {skipped} title row(s) above the header on row {header_row}.")
    all_warnings.extend(notes)
    return SourceTable(
        name=name,
        path=path,
        sheet=sheet,
        header_row=header_row,
        columns=columns,
        encoding=encoding,
        delimiter=delimiter,
        warnings=all_warnings,
        _open_rows=open_rows,
        _first_column=first_column,
    )


# --------------------------------------------------------------------------------------------- opening


def open_tables(path: Path) -> list[SourceTable]:
    """Open a CSV/TSV/TXT file (one table) or an .xlsx/.xlsm workbook (one table per visible sheet with data).

    Raises InputError, naming the file, for anything that cannot be read as a table.
    """
    path = Path(path)
    label = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        accepted = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise InputError(f"unsupported file type {suffix or '(no extension)'!r}; use one of {accepted}", file=label)
    if not path.exists():
        raise InputError("the file does not exist", file=label)
    if not path.is_file():
        raise InputError("this is not a file", file=label)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", file=label)
    if suffix in _TEXT_SUFFIXES:
        return [_open_csv(path, label, tab_first=suffix == ".tsv")]
    return _open_workbook(path, label)


def _open_csv(path: Path, label: str, *, tab_first: bool) -> SourceTable:
    fmt = csv_reader.sniff_csv(path, label, tab_first=tab_first)

    def open_rows() -> Iterator[Row]:
        return csv_reader.iter_csv_rows(path, fmt, label)

    return _build_table(
        name=path.stem,
        path=path,
        sheet=None,
        label=label,
        open_rows=open_rows,
        encoding=fmt.encoding,
        delimiter=fmt.delimiter,
        warnings=list(fmt.notes),
    )


def _open_workbook(path: Path, label: str) -> list[SourceTable]:
    sheets, notes = xlsx_reader.read_heads(path, label, _HEAD_ROWS)
    tables: list[SourceTable] = []
    for sheet in sheets:
        if sheet.first_column is None:
            continue  # empty sheet
        sheet_label = f"{label} [{sheet.name}]"

        def open_rows(name: str = sheet.name, sheet_label: str = sheet_label) -> Iterator[Row]:
            return xlsx_reader.iter_sheet_rows(path, name, sheet_label)

        try:
            table = _build_table(
                name=sheet.name,
                path=path,
                sheet=sheet.name,
                label=sheet_label,
                open_rows=open_rows,
                first_column=sheet.first_column,
                head=sheet.head,
            )
        except _NoTable as exc:
            notes.append(f"Sheet {sheet.name!r} was skipped: {exc.message.split(': ', 1)[-1]}")
            continue
        tables.append(table)
    if not tables:
        detail = " ".join(notes)
        raise InputError(f"the workbook has no sheet with a table to read. {detail}".strip(), file=label)
    tables[0].warnings[:0] = notes
    return tables
