"""Open export files as tables of text: CSV/TSV/TXT, Excel workbooks, JSON and JSON Lines.

Hostile files (zip bombs, XML entities, FIFOs and devices, binary data posing as text, giant cells) are
refused by :mod:`safety` and the readers with a one-line :class:`InputError` naming the file; JSON shapes
are described in :mod:`json_reader`.

Every cell becomes ``str | None``:

* empty or whitespace-only -> ``None`` (other text is kept exactly, spaces included);
* Excel datetime -> ``YYYY-MM-DDTHH:MM:SS``, date-only cell -> ``YYYY-MM-DD``, time-only -> ``HH:MM:SS``;
* numbers: integral floats without ``.0`` (``45123``), other floats as their round-tripping repr (``12.5``);
* booleans -> ``TRUE`` / ``FALSE``;
* ``="00123"`` (Excel's keep-as-text wrapper) -> ``00123``. Formulas are never evaluated: any other text
  starting with ``=``, ``+``, ``-`` or ``@`` is kept as written; Excel formula cells give their saved value,
  and those without one read as None with a warning naming the cells;
* whole numbers of 12+ digits written in scientific notation (``8.7557E+15``) -> all digits, with a warning
  that Excel may have dropped some; Excel numbers of 16+ digits are warned about the same way;
* Excel only: in a column whose digit-only text is zero-padded to one width (two such cells or more),
  numbers are padded to that width (``800`` -> ``0800``), with a warning.

Header detection (CSV and Excel alike), over the first 30 non-blank rows: the header is the first row that

1. has at least half of its span filled (span = up to its last non-empty cell),
2. is mostly text: at least 80% of its cells are not numbers, dates, money or booleans, and none is an
   e-mail address or longer than 120 characters,
3. has mostly distinct values, and
4. is about as wide as what follows: it fills at least half the median width, and half the widest, of the
   next ten non-blank rows (a title such as "OctopusPro data export" above a 16-column table does not, nor
   does a "Company:, Acme" line in a block of key/value lines above the table).

A two-row header - a group row ("Billing | | Service |") directly above the names ("Street | City | Street |
City") - is combined into "Billing Street", "Billing City", ... (rules in :func:`_group_header`).

Rows above the header (titles, "Generated 14/03/2025", blank lines) are skipped. Header names are stripped
(inner runs of whitespace become one space); blanks become ``Column N``; repeats become ``Name (2)``.

Data rows: entirely empty rows are skipped; short rows are padded with ``None``; a value under no header (to
the right of the last named column) is an :class:`InputError` naming the file, row and column position.
Row numbers are physical: the sheet row in Excel, the record number in a CSV (as a spreadsheet shows it).
Subtotal and grand-total rows (:class:`_TotalsRule`) are left out; their row numbers go to
``SourceTable.excluded_rows`` and the grand total's numbers to ``SourceTable.checksums``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source import csv_reader, json_reader, safety, xlsx_reader
from crmmigrator_gui.engine.source.dates import date_kind

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".json", ".jsonl", ".ndjson"}
)
_TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_JSON_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})

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
    # Subtotal / grand-total rows left out of iter_rows() (physical row numbers), and the grand total's
    # numeric cells (column -> text as written, the row count included) for reconciliation. For workbooks
    # they are known when the table is opened; for CSV they are complete once iter_rows() has run to the end.
    excluded_rows: list[int] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    _open_rows: Callable[[], Iterator[Row]] | None = field(default=None, repr=False, compare=False)
    _first_column: int = field(default=1, repr=False, compare=False)
    _totals: _TotalsRule | None = field(default=None, repr=False, compare=False)
    _pass_notes: list[str] = field(default_factory=list, repr=False, compare=False)
    _warned_columns: set[int] = field(default_factory=set, repr=False, compare=False)

    @property
    def label(self) -> str:
        """How errors name this table: ``bookings.csv`` or ``export.xlsx [Bookings]``."""
        return f"{self.path.name} [{self.sheet}]" if self.sheet else self.path.name

    def iter_rows(self) -> Iterator[tuple[int, list[str | None]]]:
        """Stream ``(physical row, values aligned to columns)``; re-reads the file on every call.

        Total rows (see :class:`_TotalsRule`) are left out and recorded in ``excluded_rows``/``checksums``.
        """
        if self._open_rows is None:
            return iter(())
        return self._filter(self._open_rows())

    def _aligned(self, source: Iterator[Row]) -> Iterator[Row]:
        width = len(self.columns)
        header_row = self.header_row
        try:
            for rownum, values in source:
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
        except csv_reader.GiantCellError as exc:
            index = exc.index
            name = self.columns[index] if index is not None and index < len(self.columns) else exc.column
            raise InputError(exc.detail, file=self.label, row=exc.row, column=name) from None

    def _filter(self, source: Iterator[Row]) -> Iterator[Row]:
        rows = self._aligned(source)
        rule = self._totals
        if rule is None:
            yield from rows
            return
        found: list[tuple[int, str, list[str | None]]] = []
        pending: Row | None = None
        count = 0
        for rownum, values in rows:
            label = rule.label(values)
            if label is not None:
                found.append((rownum, label, values))
                continue
            if pending is not None:
                count += 1
                yield pending
            pending = (rownum, values)
        if pending is not None:
            if rule.is_count_total(pending[1], count):
                found.append((pending[0], "", pending[1]))
            else:
                yield pending
        self._record_totals(found, rule)

    def _record_totals(self, found: list[tuple[int, str, list[str | None]]], rule: _TotalsRule) -> None:
        self.excluded_rows = [rownum for rownum, _label, _values in found]
        grand = [item for item in found if not item[1].casefold().startswith("sub")]
        self.checksums = rule.numbers(grand[-1][2], self.columns) if grand else {}
        notes = []
        if grand:
            rownum, label, _values = grand[-1]
            shown = ", ".join(f"{k} = {v}" for k, v in list(self.checksums.items())[:6])
            kind = f"labelled {label!r}" if label else f"with the row count in {self.columns[rule.id_index]!r}"
            notes.append(
                f"Row {rownum} is a grand-total row ({kind}); it was left out and kept as a checksum"
                + (f": {shown}." if shown else ".")
            )
        subtotals = [rownum for rownum, label, _v in found if label.casefold().startswith("sub")] + [
            rownum for rownum, _label, _v in grand[:-1]
        ]
        if subtotals:
            listed = ", ".join(map(str, sorted(subtotals)[:10])) + (" ..." if len(subtotals) > 10 else "")
            notes.append(f"{len(subtotals)} subtotal row(s) were left out: rows {listed}.")
        self.warnings[:] = [w for w in self.warnings if w not in self._pass_notes] + notes
        self._pass_notes = notes

    def _warn(self, rownum: int, index: int, message: str) -> None:
        """Column warnings found while rows stream (CSV): once per column."""
        if index in self._warned_columns or index >= len(self.columns):
            return
        self._warned_columns.add(index)
        self.warnings.append(f"Column {self.columns[index]!r} {message}.")

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


# --------------------------------------------------------------------------------------------- totals

_TOTAL_LABEL = re.compile(
    r"\s*(?:(?:grand|sub)[\s-]*)?(?:totals?|sum)\b\s*(?::.*|(?:for|of)\s.*|\(.*\))?\s*", re.IGNORECASE
)
_TOTAL_INITIALS = frozenset("GgSsTt")
_ID_NAME = re.compile(r"(?i)\bid\b|#|\bno\.?$|\bnumber\b|\bref\b|^key$|^code$")


def _is_number(text: str) -> bool:
    return bool(_NUMBERISH.fullmatch(text.strip())) and any(ch.isdigit() for ch in text)


@dataclass
class _TotalsRule:
    """Which rows are totals, not data.

    * a row whose first filled cell says Total / Totals / Grand total / Subtotal / Sub-total / Sum (alone, or
      followed by ``:``, ``for ...``, ``of ...`` or ``(...)``) - anywhere in the table;
    * the last row, when its id column (the first column named like an id, else the first column) holds the
      number of data rows above it, every text column is blank, and another cell holds a number (the
      ServiceTitan report footer: count in ``Job #``, sum in ``Jobs Subtotal``).

    Text columns are those mostly non-numeric in the first rows under the header.
    """

    id_index: int
    text_indexes: list[int]

    @classmethod
    def from_sample(cls, columns: list[str], sample: list[list[str | None]]) -> _TotalsRule:
        id_index = next((i for i, name in enumerate(columns) if _ID_NAME.search(name)), 0)
        text_indexes = []
        for index in range(len(columns)):
            cells = [row[index] for row in sample if index < len(row) and row[index] is not None]
            if cells and sum(1 for c in cells if not _is_number(c)) >= 0.5 * len(cells):
                text_indexes.append(index)
        return cls(id_index, [i for i in text_indexes if i != id_index])

    def label(self, values: list[str | None]) -> str | None:
        first = values[0]
        if first is None:
            first = next((v for v in values if v is not None), None)
            if first is None:
                return None
        if len(first) <= 60 and first.lstrip()[:1] in _TOTAL_INITIALS and _TOTAL_LABEL.fullmatch(first):
            return " ".join(first.split())
        return None

    def is_count_total(self, values: list[str | None], count: int) -> bool:
        if not self.text_indexes or count < 1:
            return False
        key = values[self.id_index]
        if key is None or key.strip().replace(",", "") != str(count):
            return False
        if any(values[i] is not None for i in self.text_indexes):
            return False
        return any(v is not None and _is_number(v) for i, v in enumerate(values) if i != self.id_index)

    def numbers(self, values: list[str | None], columns: list[str]) -> dict[str, str]:
        return {columns[i]: v.strip() for i, v in enumerate(values) if v is not None and _is_number(v)}


# --------------------------------------------------------------------------------------------- two-row headers


def _cell(values: list[str | None], index: int) -> str | None:
    value = values[index] if index < len(values) else None
    return value.strip() if value is not None and value.strip() else None


def _group_header(upper: list[str | None], lower: list[str | None]) -> list[str | None] | None:
    """Combine a group row over a header row ("Billing | | Service |" over "Street | City | Street | City"), or
    None when ``upper`` is not such a group row.

    ``upper`` labels that have a name under them start a group, which runs right over the gaps of ``upper``
    that have a name under them; a label over an empty cell is a header merged over both rows. A group row
    has at least one such gap, distinct short texty labels without a trailing ``:``, only texty names under
    it, and either the names repeat (Street, City, Street, City) or there are two groups or more.
    """
    span = max(_width(upper), _width(lower))
    labels = [(i, v) for i in range(span) if (v := _cell(upper, i)) is not None]
    names = [v for i in range(span) if (v := _cell(lower, i)) is not None]
    if not labels or len(names) < 2 or not all(_is_texty(v) for v in names):
        return None
    if any(len(v) > 40 or v.endswith(":") or not _is_texty(v) for _i, v in labels):
        return None
    if len({v.casefold() for _i, v in labels}) < len(labels):
        return None
    starts = [i for i, _v in labels if _cell(lower, i) is not None]
    gaps = [i for i in range(labels[0][0], span) if _cell(upper, i) is None and _cell(lower, i) is not None]
    repeats = len({v.casefold() for v in names}) < len(names)
    if not starts or not gaps or not (repeats or len(starts) >= 2):
        return None
    combined: list[str | None] = []
    group: str | None = None
    for index in range(span):
        top, low = _cell(upper, index), _cell(lower, index)
        if top is not None:
            group = top if low is not None else None
            combined.append(f"{top} {low}" if low is not None else top)
        else:
            combined.append(f"{group} {low}" if group and low else low)
    return combined


def _resolve_header(head: list[Row], index: int) -> tuple[int, list[str | None], int | None]:
    """(index of the header row in head, its values, index of a group row merged into it or None)."""
    rownum, values = head[index]
    below = index + 1
    if below < len(head) and head[below][0] == rownum + 1:
        combined = _group_header(values, head[below][1])
        if combined is not None:
            return below, combined, index
    above = index - 1
    if above >= 0 and head[above][0] == rownum - 1:
        combined = _group_header(head[above][1], values)
        if combined is not None:
            return index, combined, above
    return index, values, None


def _read_head(open_rows: Callable[[], Iterator[Row]], label: str) -> list[Row]:
    head: list[Row] = []
    try:
        head.extend(islice(open_rows(), _HEAD_ROWS))
    except csv_reader.GiantCellError as exc:
        index = find_header(head) if head else None
        names = make_columns(head[index][1])[0] if index is not None else []
        name = names[exc.index] if exc.index is not None and exc.index < len(names) else exc.column
        raise InputError(exc.detail, file=label, row=exc.row, column=name) from None
    return head


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
        head = _read_head(open_rows, label)
    if not any(_width(values) for _num, values in head):
        raise _NoTable("the file has no data (every cell is empty)", file=label)
    index = find_header(head)
    if index is None:
        raise _NoTable(
            f"no header row found in the first {HEADER_SCAN_ROWS} non-blank rows (expected a row of column "
            "names, mostly text, as wide as the rows below it)",
            file=label,
        )
    index, header_values, group = _resolve_header(head, index)
    header_row = head[index][0]
    columns, notes = make_columns(header_values)
    all_warnings = list(warnings or [])
    first_header = index if group is None else min(index, group)
    skipped = sum(1 for _num, values in head[:first_header] if _width(values))
    if skipped:
        all_warnings.append(f"Skipped {skipped} title row(s) above the header on row {header_row}.")
    if group is not None:
        all_warnings.append(
            f"Two-row header: the group labels on row {head[group][0]} were combined with the names on row "
            f"{header_row} (e.g. {next((c for c in columns if ' ' in c), columns[0])!r})."
        )
    all_warnings.extend(notes)
    sample = [values for num, values in head[index + 1 :] if num > header_row and _width(values)]
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
        _totals=_TotalsRule.from_sample(columns, sample[:100]),
    )


# --------------------------------------------------------------------------------------------- opening


def open_tables(path: Path) -> list[SourceTable]:
    """Open a CSV/TSV/TXT file (one table), an .xlsx/.xlsm workbook (one table per visible sheet with data) or
    a JSON / JSON Lines file (one table).

    Raises InputError, naming the file, for anything that cannot be read as a table; the refusals of
    :mod:`safety` run before any parser sees the file.
    """
    path = Path(path)
    label = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        accepted = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise InputError(f"unsupported file type {suffix or '(no extension)'!r}; use one of {accepted}", file=label)
    safety.check_regular_file(path, label)
    if suffix in _TEXT_SUFFIXES:
        return [_open_csv(path, label, tab_first=suffix == ".tsv")]
    if suffix in _JSON_SUFFIXES:
        return [_open_json(path, label)]
    return _open_workbook(path, label)


def _open_csv(path: Path, label: str, *, tab_first: bool) -> SourceTable:
    fmt = csv_reader.sniff_csv(path, label, tab_first=tab_first)
    holder: list[SourceTable] = []

    def warn(rownum: int, index: int, message: str) -> None:
        if holder:
            holder[0]._warn(rownum, index, message)

    def open_rows() -> Iterator[Row]:
        return csv_reader.iter_csv_rows(path, fmt, label, warn)

    table = _build_table(
        name=path.stem,
        path=path,
        sheet=None,
        label=label,
        open_rows=open_rows,
        encoding=fmt.encoding,
        delimiter=fmt.delimiter,
        warnings=list(fmt.notes),
    )
    holder.append(table)
    return table


def _open_json(path: Path, label: str) -> SourceTable:
    opened = json_reader.open_json(path, label)
    return SourceTable(
        name=path.stem,
        path=path,
        sheet=None,
        header_row=0,
        columns=opened.columns,
        encoding=opened.encoding,
        delimiter=None,
        warnings=opened.warnings,
        _open_rows=opened.open_rows,
    )


def _open_workbook(path: Path, label: str) -> list[SourceTable]:
    """One table per visible sheet. Each sheet is read once here, whole: header detection on its first rows,
    then one pass for the column checks (zero-padded columns, long numbers) and the total rows, so every
    warning is known when the table is returned."""
    fingerprint = xlsx_reader._fingerprint(path)
    tables: list[SourceTable] = []
    notes: list[str] = []
    for sheet, raw_rows in xlsx_reader.iter_sheets(path, label):
        if sheet.first_column is None:
            notes.extend(sheet.notes)
            continue  # empty sheet
        sheet_label = f"{label} [{sheet.name}]"
        head_raw = list(islice(raw_rows, _HEAD_ROWS))
        head = [(num, xlsx_reader.to_text(raw, {})) for num, raw in head_raw]
        pads: dict[int, int] = {}

        def open_rows(name: str = sheet.name, sheet_label: str = sheet_label, pads: dict[int, int] = pads):
            return xlsx_reader.iter_sheet_rows(path, name, sheet_label, pads, fingerprint)

        try:
            table = _build_table(
                name=sheet.name,
                path=path,
                sheet=sheet.name,
                label=sheet_label,
                open_rows=open_rows,
                first_column=sheet.first_column,
                head=head,
                warnings=sheet.notes,
            )
        except _NoTable as exc:
            notes.extend(sheet.notes)
            notes.append(f"Sheet {sheet.name!r} was skipped: {exc.message.split(': ', 1)[-1]}")
            continue
        stats = xlsx_reader.ColumnStats()
        header_row = table.header_row
        # a sheet's rows must be consumed before the next sheet is loaded

        try:
            for _row in table._filter(_prescan(chain(head_raw, raw_rows), stats, header_row)):
                pass
        except InputError:
            pass  # a value under no header: iter_rows() raises it, naming the row; the checks stay partial
        pads.update(stats.pads())
        table.warnings.extend(stats.warnings(table.columns, 0))
        tables.append(table)
    if not tables:
        detail = " ".join(notes)
        raise InputError(f"the workbook has no sheet with a table to read. {detail}".strip(), file=label)
    tables[0].warnings[:0] = notes
    return tables


def _prescan(rows: Iterator[xlsx_reader.RawRow], stats: xlsx_reader.ColumnStats, header_row: int) -> Iterator[Row]:
    for num, raw in rows:
        if num > header_row:
            stats.add(num, raw)
        yield num, xlsx_reader.to_text(raw, {})
