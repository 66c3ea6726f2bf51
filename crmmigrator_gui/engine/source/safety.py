"""Checks that run before any parser touches an export file, so hostile files are refused with one line.

Limits (each refusal is an :class:`InputError` naming the file):

* the path must be a regular file (``os.stat`` after following a symlink): FIFOs, sockets and device files
  such as ``/dev/zero`` are refused without being opened, so nothing ever blocks on a pipe;
* text files (CSV/TSV/TXT/JSON): known binary signatures (zip/xlsx, old .xls, PDF, gzip, 7z, RAR, PNG, JPEG,
  ELF, SQLite) and heads where more than 1% of the characters are control characters are refused;
* workbooks (.xlsx/.xlsm), checked with :mod:`zipfile` before calamine opens them:
  - an OLE2 compound file is refused as password-protected (it carries an ``EncryptionInfo`` stream) or as
    an old .xls file; encrypted zip members are refused as password-protected;
  - at most ``MAX_ZIP_MEMBERS`` (10,000) members, at most ``MAX_UNCOMPRESSED_BYTES`` (1 GiB) declared
    uncompressed in total, and no member over 1 MiB may declare more than ``MAX_RATIO`` (200) times its
    compressed size (zip bombs);
  - every XML part is decompressed (streamed, so the declared sizes and CRCs are verified by zipfile) and
    its prolog must hold no ``<!DOCTYPE`` or ``<!ENTITY`` (billion laughs, external entities / XXE);
  - each worksheet's used range is measured from its cell references; calamine allocates the whole
    rectangle, so a sheet over ``MAX_SHEET_CELLS`` (20 million cells, roughly 1 GB in calamine) is
    refused instead of exhausting memory (a single cell at XFD1048576 would otherwise abort the process).
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from crmmigrator_gui.engine.errors import InputError

MAX_ZIP_MEMBERS = 10_000
MAX_UNCOMPRESSED_BYTES = 1024**3
MAX_RATIO = 200
_RATIO_FLOOR = 1024**2  # small members may compress as well as they like
MAX_SHEET_CELLS = 20_000_000
MAX_CONTROL_RATIO = 0.01
_CHUNK = 4 * 1024 * 1024
_PROLOG_BYTES = 64 * 1024
_MAX_CARRY = 64 * 1024 * 1024
_SMALL_PART = 16 * 1024 * 1024  # workbook.xml and its rels are parsed whole; they are tiny in real files

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "this is a zip file (probably an Excel workbook), not text; give it an .xlsx name"),
    (b"\xd0\xcf\x11\xe0", "this is an old binary Excel (.xls) or Office file, not text; save it as .xlsx or CSV"),
    (b"%PDF", "this is a PDF, not text"),
    (b"\x1f\x8b", "this is a gzip archive, not text; unpack it first"),
    (b"7z\xbc\xaf\x27\x1c", "this is a 7-Zip archive, not text; unpack it first"),
    (b"Rar!", "this is a RAR archive, not text; unpack it first"),
    (b"\x89PNG", "this is a PNG image, not text"),
    (b"\xff\xd8\xff", "this is a JPEG image, not text"),
    (b"\x7fELF", "this is a program, not text"),
    (b"SQLite format 3\x00", "this is a SQLite database, not text"),
)
# C0 controls other than tab, LF, VT, FF, CR; plus DEL.
_CONTROL = re.compile("[\x01-\x08\x0e-\x1f\x7f]")


def check_regular_file(path: Path, label: str) -> int:
    """Refuse anything that is not a regular file (FIFO, device, socket, dangling link); return its size."""
    try:
        info = os.stat(path)  # follows symlinks: a link to /dev/zero is a character device here
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError("the symbolic link points to a file that does not exist", file=label) from None
        raise InputError("the file does not exist", file=label) from None
    except OSError as exc:
        raise InputError(f"the file cannot be read ({exc.strerror or exc})", file=label) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise InputError("this is a folder, not a file", file=label)
    if not stat.S_ISREG(mode):
        kind = (
            "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file"
        )  # fmt: skip
        target = " (through a symbolic link)" if os.path.islink(path) else ""
        raise InputError(f"this is {kind}{target}, not a regular file; refusing to read it", file=label)
    if info.st_size == 0:
        raise InputError("the file is empty", file=label)
    return info.st_size


def refuse_binary_text(head: bytes, label: str) -> None:
    """Refuse a text file whose first bytes show it is something else (see the module docstring)."""
    for signature, message in _SIGNATURES:
        if head.startswith(signature):
            raise InputError(message, file=label)


def refuse_control_characters(text: str, label: str) -> None:
    """Refuse decoded text with more than 1% control characters (binary data that happened to decode)."""
    if not text:
        return
    controls = len(_CONTROL.findall(text))
    if controls and controls > MAX_CONTROL_RATIO * len(text):
        raise InputError(
            f"this looks like a binary file, not text: {controls} control characters in the first "
            f"{len(text):,} characters",
            file=label,
        )


# --------------------------------------------------------------------------------------------- workbooks


@dataclass
class SheetScan:
    """What the XML of one worksheet says before calamine loads it."""

    part: str
    rows: int = 0
    columns: int = 0
    formulas_without_value: list[str] = field(default_factory=list)
    formula_count: int = 0
    hidden_columns: list[str] = field(default_factory=list)

    @property
    def cells(self) -> int:
        return self.rows * self.columns


@dataclass
class WorkbookScan:
    sheets: dict[str, SheetScan]  # sheet name -> scan (sheets whose part could not be found are absent)
    largest: SheetScan | None  # the biggest worksheet part, for sheets without a mapping


_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_DANGEROUS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ROW_REF = re.compile(rb'<row\s[^>]*?\br="(\d+)"')
_ROW_REF_NS = re.compile(rb'<\w+:row\s[^>]*?\br="(\d+)"')
_WIDE_REF = re.compile(rb' r="([A-Z]{2,3})\d')
_WIDE_REF_ANY = re.compile(rb'\sr="([A-Z]{2,3})\d')
_FORMULA_HINTS = (re.compile(rb"<f[\s>/]"), re.compile(rb":f[\s>/]"))
_FORMULA_CELL = re.compile(
    rb'<(?:\w+:)?c\s[^>]*?\br="([A-Z]+\d+)"[^>]*?(?<!/)>\s*<(?:\w+:)?f\b[^>]*?(?:/>|>[^<]*</(?:\w+:)?f>)\s*'
    rb"(<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>|<(?:\w+:)?v>)?"
)
_HIDDEN_COL = re.compile(rb'<(?:\w+:)?col\b([^>]*)/?>')
_ATTR = re.compile(rb'(\w+)="([^"]*)"')


def column_letters(index: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _column_number(letters: bytes) -> int:
    number = 0
    for byte in letters:
        number = number * 26 + byte - 64
    return number


def check_workbook(path: Path, label: str) -> WorkbookScan:
    """Run every workbook rule of the module docstring; return per-sheet scans for the reader."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(_ole_message(path), file=label)
    if not head.startswith(b"PK"):
        raise InputError("this is not a valid .xlsx workbook (it is not a zip file, so not an Excel file)", file=label)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_members(members, label)
            scans = {info.filename: _scan_part(archive, info, label) for info in members if _is_xml(info)}
            sheet_parts = _sheet_parts(archive, label)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError) as exc:
        raise InputError(
            f"this is not a valid .xlsx workbook: the zip is damaged or truncated ({exc})", file=label
        ) from None
    sheets = {name: scans[part] for name, part in sheet_parts.items() if part in scans}
    worksheet_scans = [scan for scan in scans.values() if scan is not None]
    largest = max(worksheet_scans, key=lambda s: s.cells, default=None)
    return WorkbookScan(sheets={k: v for k, v in sheets.items() if v is not None}, largest=largest)


def _ole_message(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4 * 1024 * 1024)
    if _ENCRYPTION_INFO in head:
        return "the workbook is password-protected; remove the password in Excel and export again"
    return "this is an old binary Excel (.xls) file, not .xlsx; save it as .xlsx or CSV"


def _is_xml(info: zipfile.ZipInfo) -> bool:
    return info.filename.lower().endswith((".xml", ".rels", ".vml"))


def _check_members(members: list[zipfile.ZipInfo], label: str) -> None:
    if len(members) > MAX_ZIP_MEMBERS:
        raise InputError(f"the workbook holds {len(members):,} parts (limit {MAX_ZIP_MEMBERS:,}); refusing", file=label)
    total = 0
    for info in members:
        if info.flag_bits & 0x1:
            raise InputError(
                "the workbook is password-protected; remove the password in Excel and export again", file=label
            )
        total += info.file_size
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > _RATIO_FLOOR and ratio > MAX_RATIO:
            raise InputError(
                f"refusing a possible zip bomb: part {info.filename!r} expands {ratio:,.0f} times "
                f"(limit {MAX_RATIO}) to {info.file_size:,} bytes",
                file=label,
            )
    if total > MAX_UNCOMPRESSED_BYTES:
        raise InputError(
            f"refusing a possible zip bomb: the workbook expands to {total:,} bytes "
            f"(limit {MAX_UNCOMPRESSED_BYTES:,}); export the data as CSV instead",
            file=label,
        )


def _refuse_dtd(part: str, chunk: bytes, label: str) -> None:
    sample = chunk[:_PROLOG_BYTES]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in sample[:4]:
        try:
            sample = sample.decode("utf-16", errors="replace").encode("utf-8", errors="replace")
        except UnicodeError:
            pass
    start = _ELEMENT_START.search(sample)
    prolog = sample[: start.start()] if start else sample
    if _DANGEROUS.search(prolog):
        raise InputError(
            f"refusing the workbook: its part {part!r} declares a DOCTYPE/ENTITY (XML entity expansion or "
            "external entities); Excel never writes these",
            file=label,
        )
    if start is None and len(sample) >= _PROLOG_BYTES:
        raise InputError(f"refusing the workbook: part {part!r} has no XML element in its first 64 KB", file=label)


def _scan_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> SheetScan | None:
    """Stream one XML part: DTD check always; for worksheets, also the used range and formula cells."""
    is_sheet = "worksheets/" in info.filename and info.filename.endswith(".xml")
    scan = SheetScan(info.filename) if is_sheet else None
    carry = b""
    first = True
    with archive.open(info) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            if first:
                _refuse_dtd(info.filename, chunk, label)
                first = False
            if not chunk:
                break
            if scan is None:
                continue
            data = carry + chunk
            cut = max(data.rfind(b"</c>"), data.rfind(b":c>"), data.rfind(b"</row>"))  # whole cells only
            cut = data.rfind(b">") + 1 if cut < 0 else data.index(b">", cut) + 1
            if len(data) - cut > _MAX_CARRY:  # one cell of 64 MB: not a worksheet Excel writes
                raise InputError(f"refusing the workbook: part {info.filename!r} is malformed", file=label)
            _scan_sheet_chunk(scan, data[:cut])
            carry = data[cut:]
    return scan


def _scan_sheet_chunk(scan: SheetScan, data: bytes) -> None:
    rows = _ROW_REF.findall(data) if b"<row" in data else _ROW_REF_NS.findall(data)
    if rows:
        scan.rows = max(scan.rows, *map(int, rows))
    # Attributes are space-separated in every writer; a tab or newline before r="..." takes the slow path.
    space = b" " if data.count(b'r="') == data.count(b' r="') else rb"\s"
    # A cell reference whose row has more digits than the rows seen so far moves the range.
    digits = len(str(scan.rows or 1))
    for match in re.finditer(space + rb'r="[A-Z]+(\d{%d,})"' % (digits + 1), data):
        scan.rows = max(scan.rows, int(match.group(1)))
    if b'r="' in data:
        wide = set((_WIDE_REF if space == b" " else _WIDE_REF_ANY).findall(data))
        narrow = 26 if re.search(space + rb'r="[A-Z]\d', data) else 1
        scan.columns = max(scan.columns, narrow, *(_column_number(w) for w in wide))
    elif b"<c" in data or b":c" in data:
        scan.columns = max(scan.columns, 1)
    if b"<col" in data or b":col" in data:
        for match in _HIDDEN_COL.finditer(data):
            attrs = dict(_ATTR.findall(match.group(1)))
            if attrs.get(b"hidden") in (b"1", b"true"):
                low, high = int(attrs.get(b"min", b"0") or 0), int(attrs.get(b"max", b"0") or 0)
                for number in range(low, min(high, low + 50) + 1):
                    if number:
                        scan.hidden_columns.append(column_letters(number))
    if any(hint.search(data) for hint in _FORMULA_HINTS):
        for match in _FORMULA_CELL.finditer(data):
            scan.formula_count += 1
            closing = match.group(2)  # None (no <v>), <v/>, <v></v> (all without value) or <v> (a value follows)
            if closing is None or closing.endswith(b"/>") or b"</" in closing:
                scan.formulas_without_value.append(match.group(1).decode("ascii"))


def _sheet_parts(archive: zipfile.ZipFile, label: str) -> dict[str, str]:
    """Sheet name -> zip part, from xl/workbook.xml and its relationships (empty when they are unusual)."""
    names = set(archive.namelist())
    book = "xl/workbook.xml"
    rels = "xl/_rels/workbook.xml.rels"
    if book not in names or rels not in names:
        return {}
    for part in (book, rels):
        if archive.getinfo(part).file_size > _SMALL_PART:
            raise InputError(f"refusing the workbook: part {part!r} is implausibly large", file=label)
    try:
        workbook = ElementTree.fromstring(archive.read(book))
        relations = ElementTree.fromstring(archive.read(rels))
    except ElementTree.ParseError:
        return {}
    targets = {}
    for element in relations.iter():
        if element.tag.endswith("Relationship") and element.get("Id") and element.get("Target"):
            target = element.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
            targets[element.get("Id")] = os.path.normpath(path).replace(os.sep, "/")
    parts: dict[str, str] = {}
    for element in workbook.iter():
        if element.tag.endswith("}sheet") or element.tag == "sheet":
            rid = next((value for key, value in element.attrib.items() if key.endswith("}id")), None)
            name = element.get("name")
            if name and rid in targets:
                parts[name] = targets[rid]
    return parts
