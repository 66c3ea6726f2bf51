"""Atomic report files: JSON, HTML and XLSX. A crash never leaves a half-written file."""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import UsageError


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False), encoding="utf-8"))


def write_report(path: Path, report: dict[str, Any]) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_json_atomic(path, report)
    elif suffix in (".html", ".htm"):
        _atomic(path, lambda p: p.write_text(_html(report), encoding="utf-8"))
    elif suffix == ".xlsx":
        _atomic(path, lambda p: _xlsx(p, report))
    else:
        raise UsageError(f"{path.name}: choose a .json, .html or .xlsx report (PDF arrives later)")


def _html(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(o['source_object'])}</td><td>{html.escape(o['target_entity'])}</td>"
        f"<td>{o['source_records']}</td><td>{o['loaded']}</td><td>{o['failed']}</td><td>{o['skipped']}</td></tr>"
        for o in report["objects"]
    )
    failures = "".join(
        f"<tr><td>{html.escape(str(f['source_object']))}</td><td>{html.escape(str(f['source_id']))}</td>"
        f"<td>{html.escape(str(f['code']))}</td><td>{html.escape(str(f['message']))}</td></tr>"
        for f in report["failures"]
    )
    return (
        f"<!doctype html><meta charset='utf-8'><title>Reconciliation</title>"
        f"<h1>{html.escape(report['pair'])}</h1><table border=1><tr><th>Object</th><th>Entity</th>"
        f"<th>Source</th><th>Loaded</th><th>Failed</th><th>Skipped</th></tr>{rows}</table>"
        f"<h2>Failures</h2><table border=1><tr><th>Object</th><th>Source id</th><th>Code</th>"
        f"<th>Reason</th></tr>{failures}</table>"
    )


def _xlsx(path: Path, report: dict[str, Any]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from crmmigrator_gui.engine.report.safe_cells import append_row  # source ids and reasons are untrusted text

    wb = Workbook()
    ws = wb.active
    ws.title = "Reconciliation"
    header = ["Object", "Entity", "Source", "Loaded", "Created", "Updated", "Unchanged", "Failed", "Skipped"]
    append_row(ws, header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for o in report["objects"]:
        append_row(
            ws,
            [
                o["source_object"],
                o["target_entity"],
                o["source_records"],
                o["loaded"],
                o["created"],
                o["updated"],
                o["unchanged"],
                o["failed"],
                o["skipped"],
            ],
        )
    fails = wb.create_sheet("Failures")
    append_row(fails, ["Object", "Part", "Source id", "Outcome", "Code", "Reason"])
    for f in report["failures"]:
        append_row(fails, [f["source_object"], f["part"], f["source_id"], f["action"], f["code"], f["message"]])
    exc = wb.create_sheet("Exceptions")
    append_row(exc, ["Object", "Source id", "Kind", "Amount", "Total"])
    for e in report["exceptions"]:
        append_row(exc, [e["source_object"], e["source_id"], e["kind"], e.get("amount"), e.get("total")])
    wb.save(path)
