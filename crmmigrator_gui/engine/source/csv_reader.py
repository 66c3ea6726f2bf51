"""Delimited text files: encoding and delimiter sniffing, and a streaming row iterator.

Row numbers are the record numbers a spreadsheet shows when it opens the file: a quoted cell that spans
several lines still counts as one row, blank lines count as rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source import safety

Row = tuple[int, list[str | None]]

SNIFF_BYTES = 256 * 1024
_SCAN_CHUNK = 4 * 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Encodings whose text we split on b"\n" ourselves (the byte 0x0A never occurs inside a character).
_WIDE_ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# One cell may hold at most MAX_CELL_CHARS characters (1 Mi: Dynamics' longest text column; Excel stops at
# 32,767). The csv module's limit is process-wide, so it is set only while this reader parses a record and
# restored after. One physical line may be at most MAX_LINE_CHARS long, so a file without line breaks is
# never held whole.
MAX_CELL_CHARS = 1024 * 1024
MAX_LINE_CHARS = 16 * 1024 * 1024
_SCIENTIFIC = re.compile(r"[+-]?\d(?:\.\d+)?[eE]\+?\d{1,3}")
_JAPANESE = re.compile("[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")
_KANA = re.compile("[\u3001-\u3002\u300c-\u300f\u3041-\u30ff]")


@dataclass(frozen=True)
class CsvFormat:
    encoding: str
    delimiter: str
    notes: list[str] = field(default_factory=list)


class GiantCellError(InputError):
    """A cell longer than MAX_CELL_CHARS; ``index`` is its 0-based position in the record (None if unknown)."""

    def __init__(self, message: str, *, file: str, row: int, index: int | None) -> None:
        super().__init__(message, file=file, row=row, column=None if index is None else f"column {index + 1}")
        self.index = index
        self.detail = message


def restore_scientific(value: str) -> str | None:
    """``8.7557E+15`` -> ``8755700000000000`` when the number is a whole number of 12+ digits, else None."""
    if not _SCIENTIFIC.fullmatch(value):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    if number != number.to_integral_value() or abs(number) < 10**11:
        return None
    return str(int(number))


def clean_text(value: str) -> str | None:
    """Whitespace-only -> None; ``="00123"`` (Excel's keep-as-text wrapper) -> ``00123``; else unchanged."""
    if not value or value.isspace():
        return None
    if value[0] == "=":
        return unwrap_text_formula(value)
    return value


def unwrap_text_formula(value: str) -> str | None:
    """Unwrap ``="..."`` (inner ``""`` -> ``"``). Any other formula text is returned as it is, never run."""
    if len(value) >= 3 and value[1] == '"' and value[-1] == '"':
        inner = value[2:-1]
        if '"' in inner.replace('""', ""):
            return value  # e.g. ="a"&"b": a real formula, keep the text
        inner = inner.replace('""', '"')
        return inner if inner and not inner.isspace() else None
    return value


# --------------------------------------------------------------------------------------------- sniffing


def sniff_csv(path: Path, label: str, *, tab_first: bool = False) -> CsvFormat:
    """Detect encoding and delimiter, or raise InputError for files that are not delimited text."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise InputError("the file is empty", file=label)
    safety.refuse_binary_text(head, label)
    notes: list[str] = []
    encoding = detect_encoding(path, head, label)
    if encoding == "cp1252":
        notes.append("Read as Windows-1252 (the file is not UTF-8).")
    elif encoding == "cp932":
        notes.append("Read as Shift-JIS (Windows code page 932; the file is not UTF-8).")
    elif encoding not in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        notes.append(f"Read as {encoding} (detected; the file is not UTF-8).")
    text = _decode_sample(head, encoding, len(head) < SNIFF_BYTES)
    safety.refuse_control_characters(text, label)
    delimiter = sniff_delimiter(text, tab_first=tab_first or encoding.startswith(("utf-16", "utf-32")))
    return CsvFormat(encoding, delimiter, notes)


def detect_encoding(path: Path, head: bytes, label: str) -> str:
    """BOM, then strict UTF-8, then charset-normalizer as a tie-breaker, then Windows-1252."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        wide = _bomless_utf16(head)
        if wide:
            return wide
        row = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError("this looks like a binary file, not text: it contains NUL bytes", file=label, row=row)
    sample = head if not head.isascii() else _first_non_ascii_region(path, len(head))
    if sample is None:
        return "utf-8"  # pure ASCII: any ASCII-compatible reading is the same
    if _is_utf8(sample):
        return "utf-8"
    return _tie_break(sample, label)


def _bomless_utf16(head: bytes) -> str | None:
    sample = head[:8192]
    half = max(1, len(sample) // 2)
    even_nul = sample[0::2].count(0)
    odd_nul = sample[1::2].count(0)
    if odd_nul > 0.3 * half and even_nul < 0.05 * half:
        return "utf-16-le"
    if even_nul > 0.3 * half and odd_nul < 0.05 * half:
        return "utf-16-be"
    return None


def _first_non_ascii_region(path: Path, start: int) -> bytes | None:
    """Scan past an all-ASCII head for the first non-ASCII bytes, so the decision rests on real evidence."""
    with path.open("rb") as handle:
        handle.seek(start)
        while True:
            chunk = handle.read(_SCAN_CHUNK)
            if not chunk:
                return None
            if not chunk.isascii():
                match = _NON_ASCII.search(chunk)
                assert match is not None
                begin = chunk.rfind(b"\n", 0, match.start()) + 1
                region = chunk[begin : begin + SNIFF_BYTES]
                if len(region) < SNIFF_BYTES:
                    region += handle.read(SNIFF_BYTES - len(region))
                return region


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut in half at the end of the sample is not evidence against UTF-8.
        return exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3
    return True


def _looks_non_latin(text: str) -> bool:
    letters = sum(1 for ch in text if ch.isalpha())
    foreign = sum(1 for ch in text if ord(ch) > 127 and ch.isalpha())
    return letters >= 20 and foreign > 0.3 * letters


def _strict_decode(sample: bytes, encoding: str) -> str | None:
    """Decode strictly, forgiving a character cut in half at the very end of the sample."""
    try:
        return sample.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 1:
            return sample[: exc.start].decode(encoding, errors="replace")
        return None


def _looks_shift_jis(sample: bytes) -> bool:
    """Japanese exports in Shift-JIS decode as cp1252 mojibake, so they are recognised before cp1252 is tried.

    The bytes must decode strictly as cp932, nearly all non-ASCII characters must be Japanese (kana, kanji,
    full-width forms) and there must be kana or many kanji: Western text almost never passes all three.
    """
    text = _strict_decode(sample, "cp932")
    if text is None:
        return False
    foreign = [ch for ch in text if ord(ch) > 127]
    japanese = len(_JAPANESE.findall(text))
    if not foreign or japanese < 0.9 * len(foreign):
        return False
    return bool(_KANA.search(text)) or japanese >= 20


def _tie_break(sample: bytes, label: str) -> str:
    """Choose between Windows-1252 (the usual answer for Western exports) and what charset-normalizer finds.

    cp1252 wins whenever it decodes the bytes into mostly-Latin text; charset-normalizer is consulted when
    cp1252 cannot decode them or produces a soup of accented letters (Cyrillic, Greek and the like).
    """
    if _looks_shift_jis(sample):
        return "cp932"
    try:
        latin = sample.decode("cp1252")
    except UnicodeDecodeError:
        latin = None
    if latin is not None and not _looks_non_latin(latin):
        return "cp1252"
    from charset_normalizer import from_bytes  # imported lazily: only ambiguous files need it

    best = from_bytes(sample).best()
    if best is not None and best.encoding:
        name = codecs.lookup(best.encoding).name
        return "cp1252" if name in ("windows-1252", "cp1252") else name
    if latin is not None:
        return "cp1252"
    raise InputError("the text encoding could not be recognised; save the file as UTF-8", file=label)


def _decode_sample(head: bytes, encoding: str, complete: bool) -> str:
    if not complete:
        cut = head.rfind(b"\n")
        if cut > 0 and encoding not in _WIDE_ENCODINGS:
            head = head[: cut + 1]
    text = head.decode(encoding, errors="replace")
    if not complete:
        cut = text.rfind("\n")
        if cut > 0:
            text = text[: cut + 1]
    return text


def sniff_delimiter(text: str, *, tab_first: bool = False) -> str:
    """Pick the delimiter that splits the first records into the most rows of one consistent width.

    Counting is done by the csv parser itself, so delimiters inside quotes do not count.
    """
    order = ("\t", ",", ";", "|") if tab_first else DELIMITERS
    best: tuple[int, int, int] = (0, 0, 0)
    chosen = order[0] if tab_first else ","
    for priority, delimiter in enumerate(reversed(order)):
        if delimiter not in text:
            continue
        try:
            records = list(islice(csv.reader(io.StringIO(text), delimiter=delimiter), 60))
        except csv.Error:
            continue
        widths = Counter(_width(record) for record in records if any(c.strip() for c in record))
        widths.pop(1, None)
        widths.pop(0, None)
        if not widths:
            continue
        width, rows = widths.most_common(1)[0]
        score = (rows, width, priority)
        if score > best:
            best, chosen = score, delimiter
    return chosen


def _width(record: list[str]) -> int:
    for index in range(len(record) - 1, -1, -1):
        if record[index].strip():
            return index + 1
    return 0


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


# --------------------------------------------------------------------------------------------- reading


class _BadLine(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Lines:
    """Physical lines of a file as text, each at most MAX_LINE_CHARS long, counted; flags scientific numbers."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.handle = path.open("rb")
        self.encoding = encoding
        self.count = 0
        self.scientific = False

    def close(self) -> None:
        self.handle.close()

    def __iter__(self) -> Iterator[str]:
        if self.encoding in _WIDE_ENCODINGS:
            return self._wide()
        return self._narrow()

    def _narrow(self) -> Iterator[str]:
        encoding = self.encoding
        rest = "utf-8" if encoding == "utf-8-sig" else encoding
        decode = encoding
        readline = self.handle.readline
        limit = MAX_LINE_CHARS + 1
        count = 0
        while raw := readline(limit):
            if len(raw) == limit and not raw.endswith(b"\n"):
                raise _BadLine("long", "")
            if b"\x00" in raw:
                raise _BadLine("nul", "")
            if b"E+" in raw or b"e+" in raw:
                self.scientific = True
            count += 1
            self.count = count
            try:
                line = raw.decode(decode)
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1].hex()
                raise _BadLine("decode", f"byte 0x{bad} is not valid {rest} text") from None
            decode = rest
            yield line

    def _wide(self) -> Iterator[str]:
        with io.TextIOWrapper(self.handle, encoding=self.encoding, newline="") as text:
            try:
                while line := text.readline(MAX_LINE_CHARS + 1):
                    if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                        raise _BadLine("long", "")
                    if "\x00" in line:
                        raise _BadLine("nul", "")
                    if "E+" in line or "e+" in line:
                        self.scientific = True
                    self.count += 1
                    yield line
            except UnicodeDecodeError as exc:
                raise _BadLine("decode", f"bytes that are not valid {self.encoding} text ({exc.reason})") from None


Warn = Callable[[int, int, str], None]  # (row, 0-based column index, message)


def _reader(lines: Iterator[str], fmt: CsvFormat) -> Iterator[list[str]]:
    return csv.reader(lines, delimiter=fmt.delimiter, quotechar='"', doublequote=True, strict=False)


def iter_csv_rows(path: Path, fmt: CsvFormat, label: str, warn: Warn | None = None) -> Iterator[Row]:
    """Yield ``(row number, cleaned values)`` for every record, blank ones included (as ``[]``).

    Values are kept as written (a leading ``=``, ``+``, ``-`` or ``@`` is text, never evaluated); the two
    exceptions are Excel's ``="..."`` wrapper and whole numbers of 12+ digits in scientific notation
    (``8.7557E+15``), which are written out in full and reported through ``warn``.
    """
    rownum = 0
    source = _Lines(path, fmt.encoding)
    reader = _reader(iter(source), fmt)
    limit = csv.field_size_limit
    record_line = 0
    try:
        while True:
            saved = limit(MAX_CELL_CHARS)
            try:
                record = next(reader)
            except StopIteration:
                break
            finally:
                limit(saved)
            rownum += 1
            record_line = source.count
            values = [None if not v or v.isspace() else (unwrap_text_formula(v) if v[0] == "=" else v) for v in record]
            if source.scientific:
                source.scientific = False
                _restore_row(values, rownum, warn)
            yield rownum, values
    except _BadLine as exc:
        raise _bad_line(exc, fmt, label, rownum + 1) from None
    except csv.Error as exc:
        if "field limit" in str(exc):
            index = _giant_field(path, fmt, record_line)
            raise GiantCellError(
                f"a cell is longer than {MAX_CELL_CHARS:,} characters; refusing it (a cell of a real export "
                "is far shorter: the quotes may be unbalanced, or this is not a CSV)",
                file=label,
                row=rownum + 1,
                index=index,
            ) from None
        raise InputError(f"cannot read this row as delimited text: {exc}", file=label, row=rownum + 1) from None
    finally:
        source.close()


def _restore_row(values: list[str | None], rownum: int, warn: Warn | None) -> None:
    for index, value in enumerate(values):
        if value and ("E+" in value or "e+" in value):
            full = restore_scientific(value)
            if full is not None:
                values[index] = full
                if warn:
                    warn(
                        rownum,
                        index,
                        f"holds numbers in scientific notation (row {rownum}: {value} read as {full}); Excel "
                        "keeps only the digits shown, so ids or phone numbers may have lost precision. "
                        "Re-export with the column formatted as text",
                    )


def _bad_line(exc: _BadLine, fmt: CsvFormat, label: str, row: int) -> InputError:
    if exc.kind == "nul":
        return InputError("this looks like a binary file, not text: it contains NUL bytes", file=label, row=row)
    if exc.kind == "long":
        return InputError(
            f"a line is longer than {MAX_LINE_CHARS:,} characters; refusing it (not a delimited text export)",
            file=label,
            row=row,
        )
    return InputError(
        f"{exc.detail}; the file is not consistently {fmt.encoding}. Re-save it as UTF-8", file=label, row=row
    )


def _giant_field(path: Path, fmt: CsvFormat, skip_lines: int) -> int | None:
    """0-based position of the first over-long field of the record starting after ``skip_lines`` lines."""
    source = _Lines(path, fmt.encoding)
    try:
        lines = islice(iter(source), skip_lines, None)
        index, size, quoted, at_start = 0, 0, False, True
        previous = ""
        for line in lines:
            for ch in line:
                if quoted:
                    if ch == '"':
                        quoted = False
                    else:
                        size += 1
                elif ch == '"' and (at_start or previous == '"'):
                    quoted = True
                    at_start = False
                elif ch == fmt.delimiter:
                    index, size, at_start = index + 1, 0, True
                else:
                    size += 1
                    at_start = False
                if size > MAX_CELL_CHARS:
                    return index
                previous = ch
    except _BadLine:
        return None
    finally:
        source.close()
    return None
