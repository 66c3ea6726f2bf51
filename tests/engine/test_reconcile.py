"""Reconciliation totals against sums computed independently from the export file, read back over HTTP."""

from __future__ import annotations

import json
import zipfile
from decimal import Decimal

import openpyxl
import pytest

from crmmigrator_gui.engine.report.files import render_html, write_report
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.target.connection import destination

# (source object, source column) -> (sheet, column) of the OctopusPro export, read without the engine.
MONEY = {
    ("bookings", "Total"): ("Bookings", "Total"),
    ("bookings", "Paid"): ("Bookings", "Paid"),
    ("invoices", "Total"): ("Invoices", "Total"),
    ("invoices", "Balance"): ("Invoices", "Balance"),
    ("payments", "Amount"): ("Payments", "Amount"),
    ("quotes", "Total"): ("Quotes", "Total"),
    ("services", "Price"): ("Services", "Price"),
    ("services", "Duration"): ("Services", "Duration"),
}
INJECTION = '=HYPERLINK("http://evil.example","click")'


def _export_rows(tmp_path, sheet: str) -> list[dict]:
    (path,) = (tmp_path / "export").glob("*.xlsx")
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = wb[sheet].iter_rows(values_only=True)
        header = next(rows)
        return [dict(zip(header, r, strict=False)) for r in rows if any(v is not None for v in r)]
    finally:
        wb.close()


def _independent_sum(tmp_path, sheet: str, column: str, *, skip: dict | None = None) -> Decimal:
    total = Decimal(0)
    for row in _export_rows(tmp_path, sheet):
        value = row.get(column)
        if value in (None, "") or (skip and skip(row)):
            continue
        total += Decimal(str(value).replace(",", "").replace("$", ""))
    return total


def _line(report: dict, obj: str, field: str, entity: str | None = None) -> dict:
    lines = [
        t
        for t in report["field_totals"]
        if t["source_object"] == obj and t["source_field"] == field and (entity is None or t["target_entity"] == entity)
    ]
    assert lines, f"no total for {obj}.{field}"
    return lines[0]


def _stage(project, obj: str, source_id: str, column: str, value: str, new_id: str | None = None) -> None:
    """Change one staged value (test setup: a defect the export could have carried)."""
    raw = json.loads(project.scalar("SELECT raw FROM staging WHERE object = ? AND source_id = ?", (obj, source_id)))
    raw[column] = value
    with project.transaction():
        project.db.conn.execute(
            "UPDATE staging SET raw = ?, source_id = ? WHERE object = ? AND source_id = ?",
            (json.dumps(raw), new_id or source_id, obj, source_id),
        )


def test_totals_match_sums_computed_from_the_export(mapped_project, tmp_path):
    load(mapped_project)
    report = build_report(mapped_project)
    assert report["reconciliation"]["error"] is None
    for (obj, field), (sheet, column) in MONEY.items():
        expected = _independent_sum(tmp_path, sheet, column)
        assert expected > 0
        for line in [t for t in report["field_totals"] if (t["source_object"], t["source_field"]) == (obj, field)]:
            assert Decimal(line["source_total"]) == expected, (obj, field)
            assert Decimal(line["destination_total"]) == expected, (obj, field, line["target_entity"])
            assert Decimal(line["difference"]) == 0
            assert line["verdict"] == "match"
    # A booking total lands twice (job and opportunity): both are read back and reconciled.
    assert {t["target_entity"] for t in report["field_totals"] if t["source_field"] == "Total"} >= {
        "new_job",
        "opportunity",
        "invoice",
        "quote",
    }


def test_distributions_count_source_values_and_destination_options(mapped_project, tmp_path):
    load(mapped_project)
    report = build_report(mapped_project)
    statuses = [r["Status"] for r in _export_rows(tmp_path, "Invoices")]
    rows = [d for d in report["distributions"] if (d["target_entity"], d["target_field"]) == ("invoice", "statuscode")]
    assert sum(d["source_count"] for d in rows) == len(statuses)
    for d in rows:
        assert d["source_count"] == sum(statuses.count(v) for v in d["source_values"])
        assert d["destination_count"] == d["source_count"], d
    paid = next(d for d in rows if "Paid" in d["source_values"])
    assert paid["label"] == "Complete"  # a closed status applied after create, read back from the destination


def test_a_record_deleted_at_the_destination_shows_as_a_difference(mapped_project, tmp_path):
    load(mapped_project)
    payments = _export_rows(tmp_path, "Payments")
    victim = next(p for p in payments if p["Amount"] and Decimal(str(p["Amount"])) > 0)
    sid = str(victim["Payment ID"])
    dest = mapped_project.scalar(
        "SELECT dest_id FROM xref WHERE target_entity = 'new_payment' AND source_id = ?", (sid,)
    )
    with destination(mapped_project) as client:
        meta = client.entity("new_payment")
        assert client.send("DELETE", f"{meta.entity_set}({dest})").status_code == 204
    line = _line(build_report(mapped_project), "payments", "Amount")
    expected = _independent_sum(tmp_path, "Payments", "Amount")
    assert Decimal(line["expected_total"]) == expected
    assert Decimal(line["destination_total"]) == expected - Decimal(str(victim["Amount"]))
    assert Decimal(line["difference"]) == -Decimal(str(victim["Amount"]))
    assert line["missing"] == [sid]
    assert line["verdict"] == "mismatch"


def test_a_changed_amount_at_the_destination_is_a_mismatch(mapped_project):
    load(mapped_project)
    row = mapped_project.query("SELECT source_id, dest_id FROM xref WHERE target_entity = 'invoice' LIMIT 1")[0]
    sid, dest = row["source_id"], row["dest_id"]
    with destination(mapped_project) as client:
        meta = client.entity("invoice")
        assert client.send("PATCH", f"{meta.entity_set}({dest})", {"new_balance": 12345.67}).status_code < 300
    line = _line(build_report(mapped_project), "invoices", "Balance")
    assert line["verdict"] == "mismatch"
    assert line["changed"] == [sid]


def test_a_failed_record_is_explained_and_keyed_by_its_source_id(mapped_project, tmp_path):
    payments = _export_rows(tmp_path, "Payments")
    bad = payments[0]
    bad_id = str(bad["Payment ID"])
    _stage(mapped_project, "payments", bad_id, "Amount", "twelve dollars", new_id=INJECTION)
    load(mapped_project)
    report = build_report(mapped_project)
    line = _line(report, "payments", "Amount")
    full = _independent_sum(tmp_path, "Payments", "Amount")
    assert line["unparsed"] == 1
    assert Decimal(line["expected_total"]) == full - Decimal(str(bad["Amount"]))
    assert Decimal(line["destination_total"]) == Decimal(line["expected_total"])
    assert line["verdict"] == "explained"
    failure = next(f for f in report["failures"] if f["source_id"] == INJECTION)
    assert failure["code"] == "BAD_VALUE"
    assert failure["reason"].startswith("a source value could not be converted")

    out = tmp_path / "report.xlsx"
    write_report(out, report)
    with zipfile.ZipFile(out) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets
        assert not any("<f>" in z.read(n).decode() for n in sheets)  # no formula anywhere
        assert any(n.startswith("xl/charts/chart") for n in z.namelist())
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames[:5] == ["Summary", "Totals", "Distributions", "Failures", "Runs"]
    cell = next(c for row in wb["Failures"].iter_rows() for c in row if c.value == INJECTION)
    assert cell.data_type == "s"
    assert cell.quotePrefix
    assert len(wb["Summary"]._charts) == 1
    assert len(wb["Distributions"]._charts) >= 3  # job status, customer type, invoice status, quote status
    totals = {(r[0].value, r[1].value, r[2].value): r for r in wb["Totals"].iter_rows(min_row=2)}
    row = totals[("payments", "Amount", "new_payment")]
    assert Decimal(str(row[11].value)) == full - Decimal(str(bad["Amount"]))

    page = render_html(report)
    assert "<svg" in page
    assert INJECTION not in page  # escaped
    assert "=HYPERLINK(&quot;http://evil.example&quot;" in page


def test_before_any_load_the_source_side_needs_no_connection(mapped_project, tmp_path):
    report = build_report(mapped_project)
    assert report["reconciliation"]["read_requests"] == 0
    line = _line(report, "invoices", "Total")
    assert Decimal(line["source_total"]) == _independent_sum(tmp_path, "Invoices", "Total")
    assert line["loaded_records"] == 0
    assert Decimal(line["expected_total"]) == 0


def test_runs_are_grouped_by_kind(mapped_project):
    load(mapped_project)
    with mapped_project.transaction():  # a delta run as issue 6's delta will record it
        mapped_project.db.conn.execute(
            "INSERT INTO runs (kind, status, started_at, actor, target, stats) VALUES ('delta', 'completed', "
            "'2026-01-01T00:00:00+00:00', 'tester', '{}', ?)",
            (json.dumps({"objects": [{"created": 2, "updated": 3, "unchanged": 0, "failed": 1, "skipped": 0}]}),),
        )
    report = build_report(mapped_project)
    groups = {g["kind"]: g for g in report["runs_by_kind"]}
    assert groups["load"]["runs"] == 1
    assert groups["load"]["latest"]["created"] == report["totals"]["loaded"] == report["totals"]["source_records"]
    assert groups["delta"]["latest"]["updated"] == 3
    assert groups["delta"]["failed"] == 1


@pytest.mark.parametrize("suffix", [".json", ".html", ".xlsx"])
def test_report_files_are_written(mapped_project, tmp_path, suffix):
    load(mapped_project)
    out = tmp_path / f"r{suffix}"
    write_report(out, build_report(mapped_project))
    assert out.stat().st_size > 1000
    assert not list(tmp_path.glob(f".r{suffix}.*"))  # no temp file left behind
