"""JSON and JSON Lines exports as one table of text, read in a streaming pass.

Accepted shapes:

* ``.jsonl`` / ``.ndjson`` (or a ``.json`` whose first line is a whole object followed by another object
  line): one object per line; blank lines are skipped; row numbers are line numbers;
* ``.json``: a top-level array of objects, or an object whose ``data``, ``value``, ``records``, ``items`` or
  ``results`` member is that array (other members are skipped; an ``@odata.nextLink`` is reported because
  it means the export is one page of several); row numbers are record numbers (1 = first record).

Each record becomes one row: nested objects are flattened to dotted names (``address.street``), arrays of
scalars are joined with ``"; "``, arrays holding objects or arrays are kept as compact JSON text, empty
objects add nothing. Numbers are kept exactly as written (``12.50`` stays ``12.50``), ``true``/``false``
become ``TRUE``/``FALSE``, ``null`` and whitespace-only strings become None. The columns are the union of
the keys in first-seen order, found by a first streaming pass over the file when it is opened.

Memory stays bounded whatever the file size: the array is decoded one record at a time from a sliding
buffer. Limits: one record (or line) at most ``MAX_RECORD_CHARS`` (8 Mi characters), at most
``MAX_COLUMNS`` (2,000) distinct flattened keys, nesting as deep as Python's JSON decoder allows (deeper
files are refused). Encodings: UTF-8 (with or without BOM), UTF-16/UTF-32 with a BOM.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source import safety
from crmmigrator_gui.engine.source.csv_reader import Row, clean_text

MAX_RECORD_CHARS = 8 * 1024 * 1024
MAX_COLUMNS = 2000
ENVELOPE_KEYS = ("data", "value", "records", "items", "results")
_CHUNK = 1024 * 1024
_LOOKAHEAD = 64 * 1024
_WHITESPACE = " \t\r\n"


class _Num(str):
    """A JSON number, kept as the text it was written as."""


_DECODER = json.JSONDecoder(parse_float=_Num, parse_int=_Num, parse_constant=_Num)


@dataclass
class OpenedJson:
    columns: list[str]
    encoding: str
    open_rows: Callable[[], Iterator[Row]]
    warnings: list[str] = field(default_factory=list)


def open_json(path: Path, label: str) -> OpenedJson:
    """Sniff the shape, scan every record once for the columns, and return a re-readable row source."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    safety.refuse_binary_text(head, label)
    encoding = _encoding(head, label)
    lines = path.suffix.lower() in (".jsonl", ".ndjson") or _looks_like_lines(path, encoding)
    notes: list[str] = []
    keys: dict[str, None] = {}
    count = 0
    for _rownum, record in _records(path, label, encoding, lines=lines, notes=notes):
        for key in record:
            if key not in keys:
                keys[key] = None
                if len(keys) > MAX_COLUMNS:
                    raise InputError(
                        f"the records hold more than {MAX_COLUMNS:,} distinct fields once flattened; this is "
                        "not a table export (keys may be ids)",
                        file=label,
                    )
        count += 1
    if not count:
        raise InputError("the file holds no records", file=label)
    if not keys:
        raise InputError("the records have no fields", file=label)
    columns = list(keys)

    def open_rows() -> Iterator[Row]:
        return _rows(path, label, encoding, lines, columns)

    shape = "JSON Lines" if lines else "JSON"
    notes.insert(0, f"Read as {shape}: {count:,} records, nested fields flattened to dotted names.")
    return OpenedJson(columns, encoding, open_rows, notes)


def _rows(path: Path, label: str, encoding: str, lines: bool, columns: list[str]) -> Iterator[Row]:
    known = set(columns)
    for rownum, record in _records(path, label, encoding, lines=lines, notes=[]):
        if not known.issuperset(record):
            raise InputError("the file changed after it was opened; open it again", file=label, row=rownum)
        yield rownum, [record.get(column) for column in columns]


# --------------------------------------------------------------------------------------------- values


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, _Num):
        return str.__str__(value)
    return clean_text(value)


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    if isinstance(value, _Num):
        return str.__str__(value)
    return json.dumps(value, ensure_ascii=False)


def flatten(
    record: dict[str, Any], prefix: str = "", out: dict[str, str | None] | None = None
) -> dict[str, str | None]:
    """One record -> ``{dotted name: text}`` (the rules are in the module docstring)."""
    out = {} if out is None else out
    for key, value in record.items():
        name = f"{prefix}.{key}" if prefix else (key or "(blank key)")
        if isinstance(value, dict):
            if value:
                flatten(value, name, out)
        elif isinstance(value, list):
            if any(isinstance(item, (dict, list)) for item in value):
                out[name] = _compact(value)
            else:
                texts = [text for text in map(_scalar, value) if text is not None]
                out[name] = "; ".join(texts) if texts else None
        else:
            out[name] = _scalar(value)
    return out


# --------------------------------------------------------------------------------------------- decoding


def _encoding(head: bytes, label: str) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise InputError("this looks like a binary file, not JSON: it contains NUL bytes", file=label)
    return "utf-8"


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(path.open("rb"), encoding=encoding, errors="strict", newline="")


def _looks_like_lines(path: Path, encoding: str) -> bool:
    """A .json file that is really JSON Lines: a whole object on the first line, an object on the next."""
    try:
        with _open_text(path, encoding) as text:
            first = text.readline(MAX_RECORD_CHARS).strip()
            if not first.startswith("{"):
                return False
            try:
                if not isinstance(_DECODER.decode(first), dict):
                    return False
            except (ValueError, RecursionError):
                return False
            while line := text.readline(MAX_RECORD_CHARS):
                if line.strip():
                    return line.lstrip().startswith("{")
    except UnicodeDecodeError:
        return False
    return False


def _records(
    path: Path, label: str, encoding: str, *, lines: bool, notes: list[str]
) -> Iterator[tuple[int, dict[str, str | None]]]:
    try:
        if lines:
            yield from _line_records(path, label, encoding)
        else:
            yield from _Stream(path, label, encoding, notes).records()
    except UnicodeDecodeError as exc:
        raise InputError(f"the file is not valid {encoding} text ({exc.reason})", file=label) from None
    except RecursionError:
        raise InputError("the JSON is nested too deeply to be a table export", file=label) from None


def _line_records(path: Path, label: str, encoding: str) -> Iterator[tuple[int, dict[str, str | None]]]:
    with _open_text(path, encoding) as text:
        lineno = 0
        while line := text.readline(MAX_RECORD_CHARS + 1):
            lineno += 1
            if len(line) > MAX_RECORD_CHARS and not line.endswith("\n"):
                raise InputError(f"the line is longer than {MAX_RECORD_CHARS:,} characters", file=label, row=lineno)
            if not line.strip():
                continue
            if "\x00" in line:
                raise InputError("this looks like a binary file, not JSON: it contains NUL bytes", file=label)
            try:
                value = _DECODER.decode(line)
            except ValueError as exc:
                raise InputError(f"not valid JSON ({_reason(exc)})", file=label, row=lineno) from None
            if not isinstance(value, dict):
                raise InputError("the line is not a JSON object (one record per line expected)", file=label, row=lineno)
            yield lineno, flatten(value)


def _reason(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


class _Stream:
    """A sliding window over the text, decoding one value at a time (records are never all in memory)."""

    def __init__(self, path: Path, label: str, encoding: str, notes: list[str]) -> None:
        self.path = path
        self.label = label
        self.encoding = encoding
        self.notes = notes
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.text: io.TextIOWrapper | None = None

    def _fill(self) -> bool:
        assert self.text is not None
        if self.eof:
            return False
        chunk = self.text.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str, what: str, record: int | None = None) -> str:
        char = self._peek()
        if not char or char not in chars:
            found = repr(char) if char else "the end of the file"
            raise InputError(f"not valid JSON: expected {what}, found {found}", file=self.label, row=record)
        self.pos += 1
        return char

    def _value(self, record: int | None) -> Any:
        self._peek()
        while len(self.buf) - self.pos < _LOOKAHEAD and self._fill():
            pass
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                size = len(self.buf) - self.pos
                if size > MAX_RECORD_CHARS:
                    raise InputError(
                        f"a record is larger than {MAX_RECORD_CHARS:,} characters or the JSON is broken",
                        file=self.label,
                        row=record,
                    ) from None
                if not self._fill():
                    raise InputError(f"not valid JSON ({exc.msg})", file=self.label, row=record) from None
                continue
            except ValueError as exc:
                raise InputError(f"not valid JSON ({exc})", file=self.label, row=record) from None
            if end - self.pos > MAX_RECORD_CHARS:
                raise InputError(
                    f"a record is larger than {MAX_RECORD_CHARS:,} characters", file=self.label, row=record
                )
            self.pos = end
            return value

    def records(self) -> Iterator[tuple[int, dict[str, str | None]]]:
        with _open_text(self.path, self.encoding) as self.text:
            first = self._peek()
            if first == "[":
                yield from self._array()
            elif first == "{":
                yield from self._envelope()
            else:
                shown = repr(first) if first else "nothing"
                raise InputError(f"not a JSON array or object (it starts with {shown})", file=self.label)
            if self._peek():
                raise InputError("not valid JSON: there is more text after the end of the data", file=self.label)

    def _array(self) -> Iterator[tuple[int, dict[str, str | None]]]:
        self._expect("[", "'['")
        number = 0
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            number += 1
            value = self._value(number)
            if not isinstance(value, dict):
                raise InputError("the record is not a JSON object", file=self.label, row=number)
            yield number, flatten(value)
            if self._expect(",]", "',' or ']' after a record", number) == "]":
                return

    def _envelope(self) -> Iterator[tuple[int, dict[str, str | None]]]:
        self._expect("{", "'{'")
        found = False
        if self._peek() == "}":
            self.pos += 1
        else:
            while True:
                key = self._value(None)
                if not isinstance(key, str):
                    raise InputError("not valid JSON: an object key is not a string", file=self.label)
                self._expect(":", "':'")
                if not found and key.casefold() in ENVELOPE_KEYS and self._peek() == "[":
                    found = True
                    yield from self._array()
                else:
                    value = self._value(None)
                    if key.endswith("nextLink") and isinstance(value, str):
                        self.notes.append(f"The file holds one page of a larger result ({key} is set).")
                if self._expect(",}", "',' or '}'") == "}":
                    break
        if not found:
            names = ", ".join(repr(k) for k in ENVELOPE_KEYS)
            raise InputError(
                f"a JSON object without a records array (expected a top-level array, or an array under {names})",
                file=self.label,
            )
