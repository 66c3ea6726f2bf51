"""Delimited text files: encoding and delimiter sniffing, and a streaming row iterator.

Row numbers are the record numbers a spreadsheet shows when it opens the file: a quoted cell that spans
several lines still counts as one row, blank lines count as rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from crmmigrator_gui.engine.errors import InputError

Row = tuple[int, list[str | None]]

SNIFF_BYTES = 256 * 1024
_SCAN_CHUNK = 4 * 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Encodings whose text we split on b"\n" ourselves (the byte 0x0A never occurs inside a character).
_WIDE_ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class CsvFormat:
    encoding: str
    delimiter: str
    notes: list[str] = field(default_factory=list)


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
    _refuse_binary_signatures(head, label)
    notes: list[str] = []
    encoding = detect_encoding(path, head, label)
    if encoding == "cp1252":
        notes.append("Read as Windows-1252 (the file is not UTF-8).")
    elif encoding not in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        notes.append(f"Read as {encoding} (detected; the file is not UTF-8).")
    text = _decode_sample(head, encoding, len(head) < SNIFF_BYTES)
    delimiter = sniff_delimiter(text, tab_first=tab_first or encoding.startswith(("utf-16", "utf-32")))
    return CsvFormat(encoding, delimiter, notes)


def _refuse_binary_signatures(head: bytes, label: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise InputError(
            "this is a zip file (probably an Excel workbook), not delimited text; give it an .xlsx name",
            file=label,
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            "this is an old binary Excel (.xls) file, not delimited text; save it as .xlsx or CSV", file=label
        )
    if head.startswith(b"%PDF"):
        raise InputError("this is a PDF, not delimited text", file=label)


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


def _tie_break(sample: bytes, label: str) -> str:
    """Choose between Windows-1252 (the usual answer for Western exports) and what charset-normalizer finds.

    cp1252 wins whenever it decodes the bytes into mostly-Latin text; charset-normalizer is consulted when
    cp1252 cannot decode them or produces a soup of accented letters (Cyrillic, Greek and the like).
    """
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


def _byte_lines(handle: io.BufferedReader, encoding: str) -> Iterator[str]:
    decode_first = "utf-8-sig" if encoding == "utf-8-sig" else encoding
    rest = "utf-8" if encoding == "utf-8-sig" else encoding
    first = True
    for raw in handle:
        if b"\x00" in raw:
            raise _BadLine("nul", "")
        try:
            if first:
                first = False
                yield raw.decode(decode_first)
            else:
                yield raw.decode(rest)
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex()
            raise _BadLine("decode", f"byte 0x{bad} is not valid {rest} text") from None


def _text_lines(handle: io.BufferedReader, encoding: str) -> Iterator[str]:
    with io.TextIOWrapper(handle, encoding=encoding, newline="") as text:
        try:
            for line in text:
                if "\x00" in line:
                    raise _BadLine("nul", "")
                yield line
        except UnicodeDecodeError as exc:
            raise _BadLine("decode", f"bytes that are not valid {encoding} text ({exc.reason})") from None


def iter_csv_rows(path: Path, fmt: CsvFormat, label: str) -> Iterator[Row]:
    """Yield ``(row number, cleaned values)`` for every record, blank ones included (as ``[]``)."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(min(_FIELD_LIMIT, sys.maxsize))
    rownum = 0
    with path.open("rb") as handle:
        if fmt.encoding in _WIDE_ENCODINGS:
            lines = _text_lines(handle, fmt.encoding)
        else:
            lines = _byte_lines(handle, fmt.encoding)
        reader = csv.reader(lines, delimiter=fmt.delimiter, quotechar='"', doublequote=True, strict=False)
        try:
            for record in reader:
                rownum += 1
                yield (
                    rownum,
                    [None if not v or v.isspace() else (unwrap_text_formula(v) if v[0] == "=" else v) for v in record],
                )
        except _BadLine as exc:
            if exc.kind == "nul":
                raise InputError(
                    "this looks like a binary file, not text: it contains NUL bytes",
                    file=label,
                    row=rownum + 1,
                ) from None
            raise InputError(
                f"{exc.detail}; the file is not consistently {fmt.encoding}. Re-save it as UTF-8",
                file=label,
                row=rownum + 1,
            ) from None
        except csv.Error as exc:
            raise InputError(f"cannot read this row as delimited text: {exc}", file=label, row=rownum + 1) from None
        finally:
            lines.close()
