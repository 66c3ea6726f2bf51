"""The operation-level audit log: one entry per record operation and engine step, searchable, exported safely."""

from __future__ import annotations

import csv
import json
import zipfile

import openpyxl
import pytest

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.report import audit
from crmmigrator_gui.engine.report.audit import AuditFilter
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback

INJECTION = "@SUM(1+1)*cmd|' /C calc'!A0"


def _restage(project, obj: str, source_id: str, column: str, value: str, new_id: str | None = None) -> None:
    raw = json.loads(project.scalar("SELECT raw FROM staging WHERE object = ? AND source_id = ?", (obj, source_id)))
    raw[column] = value
    with project.transaction():
        project.db.conn.execute(
            "UPDATE staging SET raw = ?, source_id = ?, row_hash = 'changed' WHERE object = ? AND source_id = ?",
            (json.dumps(raw), new_id or source_id, obj, source_id),
        )


@pytest.fixture
def loaded(mapped_project):
    """Loaded once with one payment that fails (its id carries a formula) and one that later changes."""
    ids = [sid for sid, _raw in mapped_project.iter_staged("payments")]
    _restage(mapped_project, "payments", ids[0], "Amount", "not money", new_id=INJECTION)
    load(mapped_project)
    return mapped_project, ids[1]


def test_one_entry_per_record_operation_and_per_step(loaded):
    project, _ = loaded
    records = project.scalar("SELECT COUNT(*) FROM crosswalk")
    steps = project.scalar("SELECT COUNT(*) FROM audit")
    assert audit.count_entries(project) == records + steps
    entries = audit.search(project)
    assert len(entries) == records + steps
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert {e["kind"] for e in entries} == {"record", "step"}
    created = next(e for e in entries if e["operation"] == "created" and e["entity"] == "new_payment")
    assert created["dest_id"]
    assert created["run_id"] == 1
    assert "new_amount" in created["changes"]  # which fields the create set


def test_search_by_source_id_status_run_operation_entity_and_text(loaded):
    project, _ = loaded
    (failed,) = audit.search(project, AuditFilter(source_id=INJECTION))
    assert failed["status"] == "failed"
    assert failed["error"].startswith("BAD_VALUE")
    assert "not money" in failed["error"]
    assert audit.search(project, AuditFilter(status="failed")) == [failed]
    created_payments = project.scalar(
        "SELECT COUNT(*) FROM crosswalk WHERE action = 'created' AND target_entity = 'new_payment'"
    )
    assert created_payments == project.staged_count("payments") - 1
    hits = audit.search(project, AuditFilter(operation="created", entity="new_payment", run_id=1))
    assert len(hits) == created_payments
    assert audit.count_entries(project, AuditFilter(operation="created", entity="new_payment")) == created_payments
    steps = audit.search(project, AuditFilter(text="MAP ACCEPT"))
    assert [s["operation"] for s in steps] == ["map accept"]
    assert audit.search(project, AuditFilter(text="not money")) == [failed]  # the error text is searchable
    assert audit.search(project, AuditFilter(text="100%_")) == []  # LIKE wildcards are literal
    page = audit.search(project, limit=5, offset=5)
    assert page == audit.search(project)[5:10]
    with pytest.raises(UsageError, match="unknown audit status"):
        audit.search(project, AuditFilter(status="weird"))


def test_update_lists_changed_fields_and_rollback_adds_entries(loaded):
    project, changed_id = loaded
    _restage(project, "payments", changed_id, "Amount", "999.99")
    project.db.conn.execute("UPDATE runs SET status = 'completed'")  # a second, separate load run
    result = load(project)
    (update,) = audit.search(project, AuditFilter(source_id=changed_id, run_id=result.run_id))
    assert update["operation"] == "updated"
    assert update["changes"].startswith("new_amount (was ")
    rollback(project, run_id=result.run_id)
    undone = audit.search(project, AuditFilter(operation="rolled back"))
    assert [u["source_id"] for u in undone] == [changed_id]
    assert undone[0]["changes"] == "prior values restored"


def test_exports_are_complete_and_guarded(loaded, tmp_path):
    project, _ = loaded
    total = audit.count_entries(project)
    out = tmp_path / "audit.csv"
    assert audit.export(project, out) == total
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["Time (UTC)", "Run", "Operation"]
    assert len(rows) == total + 1
    assert ["'" + INJECTION] in [[r[5]] for r in rows]  # the source id column, apostrophe-guarded
    assert not any(cell.startswith(("=", "@", "+", "-")) for row in rows for cell in row)

    xlsx = tmp_path / "audit.xlsx"
    assert audit.export(project, xlsx, AuditFilter(entity="payments")) == audit.count_entries(
        project, AuditFilter(entity="payments")
    )
    with zipfile.ZipFile(xlsx) as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()
    wb = openpyxl.load_workbook(xlsx)
    cell = next(c for row in wb.active.iter_rows() for c in row if c.value == INJECTION)
    assert cell.data_type == "s"
    assert cell.quotePrefix
    with pytest.raises(UsageError):
        audit.export(project, tmp_path / "audit.txt")
