"""Atomic report files: JSON, HTML, XLSX (with charts) and PDF. A crash never leaves a half-written file.

Every string in a workbook goes through :mod:`safe_cells` (source ids and failure reasons are untrusted text),
and every string in HTML is escaped. The PDF is the HTML printed by Qt (QTextDocument + QPdfWriter); the engine
imports no Qt, so it runs ``python -m crmmigrator_gui.pdf`` as a child process with the offscreen platform,
which works without a display (CLI on a server) as well as under the GUI.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError, UsageError

PDF_TIMEOUT = 180


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file owner-only; a report or workbook is for sharing, so use the user's umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False), encoding="utf-8"))


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the report in the format its suffix names: .json, .html, .xlsx or .pdf."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_json_atomic(path, report)
    elif suffix in (".html", ".htm"):
        _atomic(path, lambda p: p.write_text(render_html(report), encoding="utf-8"))
    elif suffix == ".xlsx":
        _atomic(path, lambda p: _xlsx(p, report))
    elif suffix == ".pdf":
        _atomic(path, lambda p: print_pdf(render_html(report, printable=True), p))
    else:
        raise UsageError(f"{path.name}: choose a .json, .html, .xlsx or .pdf report")


def _pdf_command(source: Path, path: Path) -> list[str]:
    """The child process that prints: the module under Python, or the app's own executable when frozen."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--print-pdf", str(source), str(path)]
    return [sys.executable, "-m", "crmmigrator_gui.pdf", str(source), str(path)]


def print_pdf(document: str, path: Path) -> None:
    """Print HTML to a PDF in a child process (Qt stays out of the engine and needs no display)."""
    with tempfile.TemporaryDirectory(prefix="crmmigrator-pdf-") as folder:
        source = Path(folder) / "report.html"
        source.write_text(document, encoding="utf-8")
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        try:
            done = subprocess.run(
                _pdf_command(source, path),
                env=env,
                capture_output=True,
                text=True,
                timeout=PDF_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MigratorError(f"{path.name}: the PDF printer did not run ({exc})") from exc
        if done.returncode != 0 or not path.exists() or path.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MigratorError(f"{path.name}: printing the PDF failed ({last})")


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;color:#1b1b1b;margin:24px;font-size:13px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:4px 0 12px}th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:left}
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#106b21}.bad{color:#a4262c;font-weight:bold}.warn{color:#8a5a00}.muted{color:#666}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
_PRINT_CSS = "body{font-size:8pt;margin:0}h1{font-size:14pt}h2{font-size:11pt}th,td{padding:2px 4px}"
_VERDICT_CLASS = {"match": "ok", "explained": "warn", "mismatch": "bad"}
_SOURCE_COLOR, _LOADED_COLOR = "#8fb3d9", "#2b6cb0"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='n'>{_e(v)}</td>" if i in numeric else f"<td>{v}</td>" for i, v in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _svg_bars(objects: list[dict[str, Any]]) -> str:
    """Source vs loaded per object, as inline SVG (self-contained: no script, no external file)."""
    if not objects:
        return ""
    top = max(max(o["source_records"], o["loaded"]) for o in objects) or 1
    row_h, label_w, bar_w = 22, 150, 420
    parts = []
    for i, o in enumerate(objects):
        y = i * row_h
        for j, (value, color) in enumerate(((o["source_records"], _SOURCE_COLOR), (o["loaded"], _LOADED_COLOR))):
            width = round(bar_w * value / top, 1)
            parts.append(f"<rect x='{label_w}' y='{y + 2 + j * 9}' width='{width}' height='8' fill='{color}'/>")
        parts.append(f"<text x='0' y='{y + 14}' font-size='11'>{_e(o['source_object'])}</text>")
        parts.append(
            f"<text x='{label_w + bar_w + 6}' y='{y + 14}' font-size='11'>{o['loaded']} / {o['source_records']}</text>"
        )
    height = row_h * len(objects)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + bar_w + 90}' height='{height}' "
        f"role='img' aria-label='Source records and loaded records per object'>{''.join(parts)}</svg>"
        f"<div class='legend muted'><span style='background:{_SOURCE_COLOR}'></span>source"
        f"<span style='background:{_LOADED_COLOR}'></span>loaded</div>"
    )


def _table_bars(objects: list[dict[str, Any]]) -> str:
    """The same bars as table cells, for Qt's rich-text printer (it draws no SVG)."""
    top = max((max(o["source_records"], o["loaded"]) for o in objects), default=0) or 1
    rows = []
    for o in objects:
        cells = []
        for value, color in ((o["source_records"], _SOURCE_COLOR), (o["loaded"], _LOADED_COLOR)):
            pct = max(1, round(100 * value / top))
            bare = "border:none;padding:0;font-size:4pt"
            rest = f"<td width='{100 - pct}%' style='{bare}'></td>" if pct < 100 else ""
            cells.append(
                "<table width='100%' cellspacing='0' cellpadding='0' border='0' style='border:none'><tr>"
                f"<td width='{pct}%' bgcolor='{color}' style='{bare}'>&nbsp;</td>{rest}</tr></table>"
            )
        rows.append(
            f"<tr><td>{_e(o['source_object'])}</td><td width='70%'>{''.join(cells)}</td>"
            f"<td class='n' align='right'>{o['loaded']} / {o['source_records']}</td></tr>"
        )
    return f"<table width='100%'>{''.join(rows)}</table>"


def render_html(report: dict[str, Any], *, printable: bool = False) -> str:
    """The report as one self-contained HTML page (inline CSS; SVG bars, or table bars when ``printable``)."""
    objects = report["objects"]
    t = report["totals"]
    run = report.get("run") or {}
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Reconciliation — {_e(report['pair'])}</title><style>{_CSS}{_PRINT_CSS if printable else ''}</style>",
        "</head><body>",
        f"<h1>Reconciliation — {_e(report['pair'])}</h1>",
        f"<p class='muted'>{_e(report['edition'])} edition · project {_e(report['project'])} · "
        + (
            f"load run {_e(run.get('id'))} ({_e(run.get('status'))}, {_e(run.get('finished_at'))})"
            if run
            else "no load"
        )
        + "</p>",
        "<h2>Records per object</h2>",
        _table_bars(objects) if printable else _svg_bars(objects),
        _table(
            ["Object", "Entity", "Source", "Loaded", "Created", "Updated", "Unchanged", "Failed", "Skipped"],
            [
                [
                    _e(o["source_object"]),
                    _e(o["target_entity"]),
                    *[o[k] for k in ("source_records", "loaded", "created", "updated", "unchanged")],
                    *[o[k] for k in ("failed", "skipped")],
                ]
                for o in objects
            ]
            + [["<b>Total</b>", "", t["source_records"], t["loaded"], "", "", "", t["failed"], t["skipped"]]],
            numeric=set(range(2, 9)),
        ),
    ]
    recon = report.get("reconciliation") or {}
    out.append("<h2>Field totals (read back from the destination)</h2>")
    if recon.get("error"):
        out.append(f"<p class='warn'>{_e(recon['error'])}</p>")
    out.append(
        _table(
            [
                "Source column",
                "Destination column",
                "Source total",
                "Loaded (expected)",
                "Destination",
                "Difference",
                "Not loaded",
                "Verdict",
            ],
            [
                [
                    _e(f"{r['source_object']}.{r['source_field']}"),
                    _e(f"{r['target_entity']}.{r['target_field']}"),
                    _money(r["source_total"]),
                    _money(r["expected_total"]),
                    _money(r["destination_total"]),
                    _money(r["difference"]),
                    f"{r['not_loaded_records']} ({_money(r['not_loaded_total'])})",
                    f"<span class='{_VERDICT_CLASS.get(r['verdict'], '')}'>{_e(r['verdict'])}</span>"
                    + (f" — {r['missing_count']} missing at the destination" if r["missing_count"] else ""),
                ]
                for r in report.get("field_totals", [])
            ],
            numeric={2, 3, 4, 5},
        )
    )
    out.append("<h2>Choice distributions</h2>")
    out.append(
        _table(
            ["Destination column", "Option", "Source values", "Source", "Loaded", "Destination", "Difference"],
            [
                [
                    _e(f"{d['target_entity']}.{d['target_field']}"),
                    _e(d["label"]),
                    _e(", ".join(d["source_values"])),
                    d["source_count"],
                    d["loaded_count"],
                    d["destination_count"],
                    f"<span class='{'bad' if d['difference'] else 'ok'}'>{d['difference']}</span>",
                ]
                for d in report.get("distributions", [])
            ],
            numeric={3, 4, 5},
        )
    )
    failures = report.get("failures", [])
    shown = f" (first {len(failures)} of {report.get('failure_count', len(failures))})"
    out.append(
        f"<h2>Failures and skipped records{shown if len(failures) < report.get('failure_count', 0) else ''}</h2>"
    )
    out.append(
        _table(
            ["Object", "Source id", "Outcome", "Code", "Reason"],
            [
                [_e(f["source_object"]), _e(f["source_id"]), _e(f["action"]), _e(f["code"]), _e(f.get("reason"))]
                for f in failures
            ],
        )
        if failures
        else "<p class='ok'>None.</p>"
    )
    out.append("<h2>Runs by kind (delta summary)</h2>")
    out.append(
        _table(
            ["Kind", "Runs", "Statuses", "Latest run", "Created", "Updated", "Unchanged", "Failed", "Skipped"],
            [
                [
                    _e(g["kind"]),
                    g["runs"],
                    _e(", ".join(f"{k}: {v}" for k, v in g["statuses"].items())),
                    _e((g.get("latest") or {}).get("id")),
                    *[(g.get("latest") or {}).get(k, 0) for k in ("created", "updated", "unchanged", "failed")],
                    (g.get("latest") or {}).get("skipped", 0),
                ]
                for g in report.get("runs_by_kind", [])
            ],
            numeric={1, 4, 5, 6, 7, 8},
        )
    )
    if report.get("delta"):
        out.append("<h2>Delta</h2>")
        out.append(
            _table(
                ["Delta", "Run", "Status", "Object", "New", "Changed", "Unchanged", "Deleted", "Deletions applied",
                 "Created", "Updated", "Failed"],
                [
                    [_e(d["delta_id"]), _e(d["run_id"] or "-"), _e(d["run_status"] or d["delta_status"]),
                     _e(o["source_object"]),
                     *[o[k] for k in ("new", "changed", "unchanged", "deleted", "deleted_applied", "created",
                                      "updated", "failed")]]
                    for d in report["delta"]
                    for o in d["objects"]
                ],
                numeric=set(range(4, 12)),
            )
        )  # fmt: skip
    if report.get("exceptions"):
        out.append("<h2>Payments to reconcile by hand</h2>")
        out.append(
            _table(
                ["Object", "Source id", "Kind", "Amount", "Total"],
                [
                    [
                        _e(x["source_object"]),
                        _e(x["source_id"]),
                        _e(x["kind"]),
                        _money(x.get("amount")),
                        _money(x.get("total")),
                    ]
                    for x in report["exceptions"]
                ],
                numeric={3, 4},
            )
        )
    out.append("</body></html>")
    return "".join(out)


def _money(value: Any) -> str:
    if value in (None, ""):
        return ""
    try:
        return f"{Decimal(str(value)):,}"
    except InvalidOperation:
        return _e(value)


# ---------------------------------------------------------------------------------------------- XLSX


def _decimal(value: Any) -> Any:
    """Totals travel as exact decimal strings; the workbook gets numbers (openpyxl writes Decimal exactly)."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return str(value)


def _xlsx(path: Path, report: dict[str, Any]) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font

    from crmmigrator_gui.engine.report.safe_cells import append_row  # source ids and reasons are untrusted text

    bold = Font(bold=True)

    def header(ws: Any, titles: list[str]) -> None:
        append_row(ws, titles)
        for cell in ws[ws.max_row]:
            cell.font = bold
        ws.freeze_panes = f"A{ws.max_row + 1}"  # a coordinate: ws.cell() would create an empty row under it

    def widths(ws: Any, sizes: list[int]) -> None:
        for index, size in enumerate(sizes):
            ws.column_dimensions[chr(ord("A") + index)].width = size

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    header(ws, ["Object", "Entity", "Source", "Loaded", "Created", "Updated", "Unchanged", "Failed", "Skipped"])
    keys = ("source_records", "loaded", "created", "updated", "unchanged", "failed", "skipped")
    for o in report["objects"]:
        append_row(ws, [o["source_object"], o["target_entity"], *[o[k] for k in keys]])
    last = ws.max_row
    t = report["totals"]
    append_row(ws, ["Total", "", t["source_records"], t["loaded"], None, None, None, t["failed"], t["skipped"]])
    ws.cell(row=ws.max_row, column=1).font = bold
    widths(ws, [18, 18, 10, 10, 10, 10, 11, 9, 9])
    if last > 1:
        chart = BarChart()
        chart.type = "bar"
        chart.title = "Source vs loaded records"
        chart.y_axis.title = "records"
        chart.add_data(Reference(ws, min_col=3, max_col=4, min_row=1, max_row=last), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=last))
        chart.height, chart.width = max(7.5, 0.9 * (last - 1)), 18
        ws.add_chart(chart, "K2")
    append_row(ws, [])
    run = report.get("run") or {}
    for label, value in (
        ("Pair", report["pair"]),
        ("Edition", report["edition"]),
        ("Load run", run.get("id")),
        ("Run status", run.get("status")),
        ("Finished", run.get("finished_at")),
        ("Read-back", (report.get("reconciliation") or {}).get("error") or "read from the destination"),
    ):
        append_row(ws, [label, value])

    totals = wb.create_sheet("Totals")
    header(
        totals,
        [
            "Source object",
            "Source column",
            "Entity",
            "Destination column",
            "Kind",
            "Source records",
            "Source total",
            "Unparsed",
            "Loaded records",
            "Expected total",
            "Destination records",
            "Destination total",
            "Difference",
            "Not loaded",
            "Not loaded total",
            "Verdict",
            "Missing at destination (source ids)",
        ],
    )
    for r in report.get("field_totals", []):
        append_row(
            totals,
            [
                r["source_object"],
                r["source_field"],
                r["target_entity"],
                r["target_field"],
                r["kind"],
                r["source_records"],
                _decimal(r["source_total"]),
                r["unparsed"],
                r["loaded_records"],
                _decimal(r["expected_total"]),
                r["destination_records"],
                _decimal(r["destination_total"]),
                _decimal(r["difference"]),
                r["not_loaded_records"],
                _decimal(r["not_loaded_total"]),
                r["verdict"],
                ", ".join(r["missing"]),
            ],
        )
        for column in (7, 10, 12, 13, 15):
            totals.cell(row=totals.max_row, column=column).number_format = "#,##0.00"
    widths(totals, [14, 16, 16, 20, 9, 9, 14, 9, 9, 14, 11, 14, 12, 10, 14, 11, 40])

    dist = wb.create_sheet("Distributions")
    header(
        dist,
        ["Entity", "Destination column", "Option", "Source values", "Source", "Loaded", "Destination", "Difference"],
    )
    blocks: list[tuple[str, int, int]] = []
    for d in report.get("distributions", []):
        name = f"{d['target_entity']}.{d['target_field']}"
        row = append_row(
            dist,
            [
                d["target_entity"],
                d["target_field"],
                d["label"],
                ", ".join(d["source_values"]),
                d["source_count"],
                d["loaded_count"],
                d["destination_count"],
                d["difference"],
            ],
        )
        if blocks and blocks[-1][0] == name:
            blocks[-1] = (name, blocks[-1][1], row)
        else:
            blocks.append((name, row, row))
    widths(dist, [16, 20, 22, 30, 9, 9, 11, 10])
    for index, (name, first, end) in enumerate(blocks[:12]):  # one chart per column; enough for any playbook
        chart = BarChart()
        chart.title = f"{name}: source vs destination"
        for column in (5, 7):  # source count, destination count
            chart.add_data(Reference(dist, min_col=column, min_row=first, max_row=end), titles_from_data=False)
        chart.set_categories(Reference(dist, min_col=3, min_row=first, max_row=end))
        _name_series(chart, ["Source", "Destination"])
        chart.height, chart.width = 7, 14
        dist.add_chart(chart, f"J{2 + index * 15}")

    fails = wb.create_sheet("Failures")
    header(fails, ["Object", "Part", "Source id", "Outcome", "Code", "Reason", "Destination message"])
    for f in report.get("failures", []):
        append_row(
            fails,
            [f["source_object"], f["part"], f["source_id"], f["action"], f["code"], f.get("reason"), f["message"]],
        )
    widths(fails, [14, 14, 20, 10, 22, 70, 50])

    runs = wb.create_sheet("Runs")
    header(runs, ["Run", "Kind", "Status", "Started", "Finished", "Requests", "Seconds"])
    for r in report.get("runs", []):
        append_row(
            runs, [r["id"], r["kind"], r["status"], r["started_at"], r["finished_at"], r["requests"], r["seconds"]]
        )
    append_row(runs, [])
    append_row(runs, ["Kind", "Runs", "Statuses", "Latest run", "Created", "Updated", "Unchanged", "Failed", "Skipped"])
    for cell in runs[runs.max_row]:
        cell.font = bold
    for g in report.get("runs_by_kind", []):
        latest = g.get("latest") or {}
        append_row(
            runs,
            [
                g["kind"],
                g["runs"],
                ", ".join(f"{k}: {v}" for k, v in g["statuses"].items()),
                latest.get("id"),
                *[latest.get(k, 0) for k in ("created", "updated", "unchanged", "failed", "skipped")],
            ],
        )
    widths(runs, [8, 12, 26, 26, 26, 10, 10, 10, 10])

    deltas = wb.create_sheet("Delta")
    header(deltas, ["Delta", "Run", "Status", "Object", "New", "Changed", "Unchanged", "Deleted",
                    "Deletions applied", "Deletions reported", "Created", "Updated", "Failed"])  # fmt: skip
    for d in report.get("delta", []):
        for o in d["objects"]:
            append_row(
                deltas,
                [d["delta_id"], d["run_id"], d["run_status"] or d["delta_status"], o["source_object"],
                 *[o[k] for k in ("new", "changed", "unchanged", "deleted", "deleted_applied", "deleted_reported",
                                  "created", "updated", "failed")]],
            )  # fmt: skip
    widths(deltas, [8, 8, 22, 16, 8, 9, 10, 9, 10, 10, 9, 9, 8])

    exc = wb.create_sheet("Exceptions")
    header(exc, ["Object", "Source id", "Kind", "Amount", "Total"])
    for e in report.get("exceptions", []):
        append_row(
            exc, [e["source_object"], e["source_id"], e["kind"], _decimal(e.get("amount")), _decimal(e.get("total"))]
        )
    wb.save(path)


def _name_series(chart: Any, names: list[str]) -> None:
    from openpyxl.chart.series import SeriesLabel

    for series, name in zip(chart.series, names, strict=False):
        series.tx = SeriesLabel(v=name)
