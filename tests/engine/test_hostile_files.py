"""Hostile export files: each is refused with a one-line InputError naming the file, quickly, never a crash.

Every case runs in a child process with a timeout, so a hang (a FIFO opened for reading) or a native abort
(calamine allocating a sheet's whole range) fails the test instead of taking the test run down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

TIMEOUT = 20  # seconds, generous for slow CI; the cases finish in well under 2 s each

_PROBE = r"""
import json, sys
from pathlib import Path
from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source.readers import open_tables
try:
    for table in open_tables(Path(sys.argv[1])):
        for _row in table.iter_rows():
            pass
    print(json.dumps({"type": None}))
except InputError as exc:
    print(json.dumps({"type": "InputError", "message": str(exc), "file": exc.file}))
except BaseException as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc)[:500]}))
"""


def probe(path: Path) -> tuple[dict[str, str | None], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"the reader crashed (rc {done.returncode}): {done.stderr[-2000:]}"
    assert "Traceback" not in done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1]), elapsed


# --------------------------------------------------------------------------------------------- corpus


def _workbook(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    workbook.active.append(["ID", "Name"])
    workbook.active.append([1, "Ann"])
    workbook.save(path)
    return path


def _rewrite(path: Path, change: Callable[[str, bytes], bytes], extra: dict[str, bytes] | None = None) -> Path:
    source = _workbook(path.with_suffix(".src.xlsx"))
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change(info.filename, zin.read(info.filename)))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    source.unlink()
    return path


def ratio_bomb(tmp: Path) -> Path:
    return _rewrite(tmp / "ratio_bomb.xlsx", lambda _n, d: d, {"xl/media/zeros.bin": b"\0" * (40 * 1024 * 1024)})


def declared_bomb(tmp: Path) -> Path:
    """A member whose central-directory entry declares 3.9 GB uncompressed."""
    path = _rewrite(tmp / "declared_bomb.xlsx", lambda _n, d: d, {"xl/media/big.bin": b"x" * 100})
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02", 0, data.index(b"xl/media/big.bin", data.index(b"PK\x01\x02")) + 1)
    data[entry + 24 : entry + 28] = (0xF0000000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b']>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
)


def billion_laughs(tmp: Path) -> Path:
    return _rewrite(tmp / "laughs.xlsx", lambda n, d: _LAUGHS if n == "xl/worksheets/sheet1.xml" else d)


def xxe(tmp: Path) -> Path:
    def change(name: str, data: bytes) -> bytes:
        if name == "xl/workbook.xml":
            doctype = b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            if data.startswith(b"<?xml"):
                return data.replace(b"?>", b"?>" + doctype, 1)
            return doctype + data
        return data

    return _rewrite(tmp / "xxe.xlsx", change)


def far_cell(tmp: Path) -> Path:
    """One cell at XFD1048576: calamine would allocate 17 billion cells and abort the process."""

    def change(name: str, data: bytes) -> bytes:
        if name == "xl/worksheets/sheet1.xml":
            return data.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
        return data

    return _rewrite(tmp / "far_cell.xlsx", change)


def giant_cell(tmp: Path) -> Path:
    path = tmp / "giant_cell.csv"
    path.write_bytes(b'ID,Notes\n1,"' + b"x" * (2 * 1024 * 1024) + b'"\n')
    return path


def endless_line(tmp: Path) -> Path:
    path = tmp / "endless.csv"
    path.write_bytes(b"ID,Notes\n1," + b"y" * (17 * 1024 * 1024))
    return path


def nul_bytes(tmp: Path) -> Path:
    path = tmp / "nul.csv"
    path.write_bytes(b"ID,Name\n1,Ann\n2,\x00\x00\x00\n")
    return path


def control_chars(tmp: Path) -> Path:
    path = tmp / "controls.csv"
    path.write_bytes(bytes(range(1, 9)) * 2000 + b"\n")
    return path


def fifo(tmp: Path) -> Path:
    path = tmp / "pipe.csv"
    os.mkfifo(path)
    return path


def dev_zero(tmp: Path) -> Path:
    path = tmp / "zero.csv"
    path.symlink_to("/dev/zero")
    return path


def dangling(tmp: Path) -> Path:
    path = tmp / "gone.xlsx"
    path.symlink_to(tmp / "nowhere.xlsx")
    return path


def pdf_as_csv(tmp: Path) -> Path:
    path = tmp / "invoice.csv"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    return path


def xlsx_as_csv(tmp: Path) -> Path:
    path = tmp / "renamed.csv"
    path.write_bytes(_workbook(tmp / "real.xlsx").read_bytes())
    return path


def truncated_xlsx(tmp: Path) -> Path:
    data = _workbook(tmp / "whole.xlsx").read_bytes()
    path = tmp / "truncated.xlsx"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def password_xlsx(tmp: Path) -> Path:
    """Excel saves an encrypted workbook as an OLE2 compound file holding an EncryptionInfo stream."""
    path = tmp / "locked.xlsx"
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
    path.write_bytes(header + "EncryptionInfo".encode("utf-16-le") + b"\0" * 512)
    return path


def empty_csv(tmp: Path) -> Path:
    path = tmp / "empty.csv"
    path.touch()
    return path


def empty_xlsx(tmp: Path) -> Path:
    path = tmp / "empty.xlsx"
    path.touch()
    return path


def empty_json(tmp: Path) -> Path:
    path = tmp / "empty.json"
    path.write_text("   \n")
    return path


def deep_json(tmp: Path) -> Path:
    path = tmp / "deep.json"
    path.write_text("[" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]")
    return path


def huge_json_record(tmp: Path) -> Path:
    path = tmp / "huge_record.jsonl"
    path.write_text('{"a": "' + "z" * (9 * 1024 * 1024) + '"}\n')
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "ratio bomb": (ratio_bomb, "zip bomb"),
    "declared size bomb": (declared_bomb, "zip bomb"),
    "billion laughs": (billion_laughs, "DOCTYPE"),
    "xxe": (xxe, "DOCTYPE"),
    "far cell": (far_cell, "cells"),
    "giant cell": (giant_cell, "longer than"),
    "endless line": (endless_line, "longer than"),
    "nul bytes": (nul_bytes, "NUL"),
    "control characters": (control_chars, "binary"),
    "fifo": (fifo, "named pipe"),
    "symlink to /dev/zero": (dev_zero, "device"),
    "dangling symlink": (dangling, "does not exist"),
    "pdf named csv": (pdf_as_csv, "PDF"),
    "xlsx named csv": (xlsx_as_csv, "zip"),
    "truncated xlsx": (truncated_xlsx, "not a valid .xlsx"),
    "password xlsx": (password_xlsx, "password"),
    "empty csv": (empty_csv, "empty"),
    "empty xlsx": (empty_xlsx, "empty"),
    "empty json": (empty_json, "not a JSON array or object"),
    "deep json": (deep_json, "nested too deeply"),
    "huge json record": (huge_json_record, "longer than"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_is_refused_quickly_with_one_line(tmp_path: Path, case: str) -> None:
    build, expected = CASES[case]
    path = build(tmp_path)
    result, elapsed = probe(path)
    assert result["type"] == "InputError", result
    message = result["message"] or ""
    assert result["file"] == path.name
    assert message.startswith(path.name), message
    assert expected in message, message
    assert "\n" not in message
    assert elapsed < 15, f"took {elapsed:.1f} s"


def test_giant_cell_names_row_and_column(tmp_path: Path) -> None:
    result, _elapsed = probe(giant_cell(tmp_path))
    assert "row 2" in (result["message"] or "")
    assert "column 'Notes'" in (result["message"] or "")


def test_csv_field_limit_is_restored(tmp_path: Path) -> None:
    import csv

    from crmmigrator_gui.engine.source.readers import open_tables

    before = csv.field_size_limit()
    path = tmp_path / "ok.csv"
    path.write_text("a,b\n1,2\n")
    for table in open_tables(path):
        list(table.iter_rows())
    assert csv.field_size_limit() == before
