"""The Reconcile & Rollback page on a loaded project: report totals, rollback panel, refusals, audit, exports.

Each test loads a small generated export through the engine, opens the project in the real wizard on the
Reconcile & Rollback page, and drives the page's buttons; the destination is the embedded sandbox, read and
edited over HTTP through the engine's own client.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.audit import AuditFilter, count_entries, search
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import destination
from crmmigrator_gui.gui.pages.results_reconcile import TOTAL_COLUMNS, VERDICT_COLOURS
from crmmigrator_gui.gui.wizard import MigratorWizard

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


def _loaded(tmp_path: Path, name: str = "acme", *, second_run: bool = False) -> Path:
    """A project with one load run (two with ``second_run``: one customer's e-mail changed, loaded again)."""
    export = generate_export(tmp_path / f"{name}-export", records=120, seed=5)
    path = tmp_path / f"{name}.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export.files)
        run_automap(project)
        accept(project, actor="tester")
        record_signoff(project, "test fixture", note="GUI test: the Sample page is driven in test_sample_page.py")
        assert load(project).status == "completed"
        if second_run:
            sid, raw = next(project.iter_staged("customers"))
            column = next(c for c in raw if "mail" in c.lower())
            raw[column] = "second-run@example.org"
            with project.transaction():
                project.db.conn.execute(
                    "UPDATE staging SET raw = ? WHERE object = 'customers' AND source_id = ?", (json.dumps(raw), sid)
                )
            assert sum(o["updated"] for o in load(project).objects) == 1
    finally:
        project.close()
    return path


def _open_results(qtbot, wizard: MigratorWizard, path: Path):
    wizard.project_page.choose_existing(path)
    wizard.setStartId(MigratorWizard.RESULTS)
    wizard.restart()
    page = wizard.results_page
    assert wizard.currentPage() is page
    qtbot.waitUntil(lambda: page.runner.idle and page.report is not None, timeout=TIMEOUT)
    return page


def _run(qtbot, page, start) -> object:
    with qtbot.waitSignal(page.runner.finished, timeout=TIMEOUT) as blocker:
        blocker.connect(page.runner.failed)
        start()
    qtbot.waitUntil(lambda: page.runner.idle, timeout=TIMEOUT)
    assert not isinstance(blocker.args[0], str), blocker.args[0]
    return blocker.args[0]


def _rows(model) -> list[dict]:
    return [model.row(i) for i in range(model.rowCount())]


def _patch(path: Path, entity_set: str, dest_id: str, body: dict) -> None:
    """Somebody edits a record in the destination after the run, through the API like any user."""
    project = Project.open(path)
    try:
        with destination(project) as client:
            response = client.send("PATCH", f"{entity_set}({dest_id})", body, {"If-Match": "*"})
            assert response.status_code == 204, response.text
    finally:
        project.close()


def _exists(path: Path, entity_set: str, id_column: str, dest_id: str) -> bool:
    project = Project.open(path)
    try:
        with destination(project) as client:
            return bool(list(client.query(entity_set, select=[id_column], filter=f"{id_column} eq {dest_id}")))
    finally:
        project.close()


def _crosswalk(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    project = Project.open(path)
    try:
        return project.query(sql, params)
    finally:
        project.close()


def _accept_confirmation(qtbot, page) -> list[str]:
    """Click "Roll back anyway" in the confirmation box once it is up; returns the text it showed."""
    seen: list[str] = []

    def click() -> None:
        box = page.panel.confirm_box if hasattr(page.panel, "confirm_box") else None
        if box is None or not box.isVisible():
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, click)
    return seen


def test_the_page_shows_the_engines_totals_and_verdicts(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path)
    page = _open_results(qtbot, wizard, path)
    engine = Project.open(path)
    try:
        expected = build_report(engine)
    finally:
        engine.close()

    counts = _rows(page.counts_model)
    assert counts[:-1] == expected["objects"]
    assert counts[-1]["source_records"] == expected["totals"]["source_records"]
    assert counts[-1]["loaded"] == expected["totals"]["loaded"]
    assert f"{expected['totals']['loaded']:,} loaded" in page.headline.text()
    shown = _rows(page.reconcile.totals_model)
    assert [(r["source_column"], r["destination_total"]) for r in shown] == [
        (f"{t['source_object']}.{t['source_field']}", t["destination_total"]) for t in expected["field_totals"]
    ]
    assert {r["verdict"] for r in shown} == {"match"}
    assert page.reconcile.distributions_model.rowCount() == len(expected["distributions"])
    assert "read back with" in page.reconcile.read_back_note.text()

    # A payment amount edited at the destination: its total no longer matches, shown in the mismatch colours.
    line = next(t for t in expected["field_totals"] if t["target_entity"] == "new_payment")
    row = _crosswalk(path, "SELECT dest_id FROM crosswalk WHERE target_entity = 'new_payment' AND action = 'created'")[
        0
    ]
    _patch(path, "new_payments", row["dest_id"], {line["target_field"]: 1_000_000})
    _run(qtbot, page, page.refresh_report)
    after = next(r for r in _rows(page.reconcile.totals_model) if r["target_entity"] == "new_payment")
    assert after["verdict"] == "mismatch"
    assert Decimal(after["destination_total"]) != Decimal(line["destination_total"])
    model = page.reconcile.totals_model
    number = _rows(model).index(after)
    verdict = model.index(number, [c.key for c in TOTAL_COLUMNS].index("verdict_text"))
    assert model.data(verdict, Qt.ItemDataRole.BackgroundRole).color().name() == VERDICT_COLOURS["mismatch"][1]
    assert "mismatch" in page.tabs.tabText(0)
    assert page.banner.property("kind") == "error"


def test_roll_back_one_run_from_the_panel(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path, second_run=True)
    page = _open_results(qtbot, wizard, path)
    panel = page.panel
    runs = {r["id"]: r for r in panel.runs}
    assert set(runs) == {1, 2}
    assert runs[1]["created"] > 0
    assert runs[2]["updated"] >= 1  # per destination record: the customer's account and its contact
    assert runs[2]["created"] == 0
    assert panel.selected_run()["id"] == 2  # the newest run that can be rolled back
    assert panel.touched_model.rowCount() > 1

    panel.select_run(1)
    assert panel.selected_run()["id"] == 1
    assert {r["target_entity"] for r in _rows(panel.touched_model)[:-1]} >= {"account", "new_job"}
    panel.select_run(2)
    seen_progress = []
    page.runner.progress.connect(lambda event: seen_progress.append(event.step))
    _run(qtbot, page, lambda: qtbot.mouseClick(page.rollback_button, Qt.MouseButton.LeftButton))
    assert "rollback" in seen_progress

    runs = {r["id"]: r for r in panel.runs}
    assert runs[2]["status"] == "rolled_back"
    assert runs[2]["rolled_back"] == runs[2]["updated"] + runs[2]["linked"] + runs[2]["created"]
    assert runs[1]["status"] == "completed"
    assert runs[1]["rolled_back"] == 0
    assert "Rolled back run 2" in page.banner.text()
    assert not panel.refused_box.isVisible()
    # The record run 2 updated holds run 1's value again, and run 1's records are all still loaded.
    assert page.report["totals"]["loaded"] == page.report["totals"]["source_records"]
    prior = _crosswalk(
        path,
        "SELECT dest_id, prior FROM crosswalk WHERE run_id = 2 AND action = 'updated' AND target_entity = 'account'",
    )[0]
    project = Project.open(path)
    try:
        with destination(project) as client:
            (account,) = client.query("accounts", filter=f"accountid eq {prior['dest_id']}")
    finally:
        project.close()
    assert account["emailaddress1"] == json.loads(prior["prior"])["emailaddress1"]
    assert account["emailaddress1"] != "second-run@example.org"
    assert panel.selected_run()["id"] == 2
    assert not page.rollback_button.isEnabled()  # already rolled back
    assert panel.rollback_all_button.isEnabled()  # run 1 still can be


def test_a_record_changed_after_the_run_is_refused_and_force_rolls_it_back(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path)
    created = _crosswalk(
        path, "SELECT key, dest_id, source_id FROM crosswalk WHERE target_entity = 'account' AND action = 'created'"
    )[0]
    _patch(path, "accounts", created["dest_id"], {"name": "Typo fixed by the office"})
    page = _open_results(qtbot, wizard, path)
    panel = page.panel

    _run(qtbot, page, lambda: qtbot.mouseClick(page.rollback_button, Qt.MouseButton.LeftButton))
    assert panel.refused_box.isVisible()
    refused = _rows(panel.refused_model)
    assert [r["field"] for r in refused] == ["name"]
    assert refused[0]["theirs"] == "Typo fixed by the office"
    assert refused[0]["ours"] not in ("", "Typo fixed by the office")
    assert refused[0]["record"] == f"account {created['key']}"
    assert created["source_id"] in refused[0]["source"]
    assert refused[0]["modified_by"]
    assert "left as they are" in page.banner.text()
    assert page.banner.property("kind") == "warning"
    assert {r["id"]: r["status"] for r in panel.runs}[1] == "rollback_incomplete"
    assert _exists(path, "accounts", "accountid", created["dest_id"])
    assert panel.force_button.isEnabled()

    # Force: the confirmation box names the run; accepting rolls the changed record back too.
    shown = _accept_confirmation(qtbot, page)
    _run(qtbot, page, lambda: qtbot.mouseClick(panel.force_button, Qt.MouseButton.LeftButton))
    assert shown
    assert "run 1" in shown[0]
    assert {r["id"]: r["status"] for r in panel.runs}[1] == "rolled_back"
    assert not panel.refused_box.isVisible()
    assert "overwritten (forced" in page.banner.text()
    assert not _exists(path, "accounts", "accountid", created["dest_id"])
    assert page.report["totals"]["loaded"] == 0


def test_cancel_in_the_confirmation_keeps_the_refused_records(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path)
    created = _crosswalk(path, "SELECT dest_id FROM crosswalk WHERE target_entity = 'account' AND action = 'created'")
    _patch(path, "accounts", created[0]["dest_id"], {"name": "Changed"})
    page = _open_results(qtbot, wizard, path)
    _run(qtbot, page, lambda: qtbot.mouseClick(page.rollback_button, Qt.MouseButton.LeftButton))

    def cancel() -> None:
        box = getattr(page.panel, "confirm_box", None)
        if box is None or not box.isVisible():
            QTimer.singleShot(20, cancel)
            return
        box.button(QMessageBox.StandardButton.Cancel).click()

    QTimer.singleShot(0, cancel)
    qtbot.mouseClick(page.panel.force_button, Qt.MouseButton.LeftButton)
    assert page.runner.worker is not None
    assert page.runner.worker.name == "rollback"  # the first rollback's worker: no new one started
    assert page.panel.refused_box.isVisible()
    assert _exists(path, "accounts", "accountid", created[0]["dest_id"])


def test_audit_search_filters_pages_and_exports(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path, second_run=True)
    page = _open_results(qtbot, wizard, path)
    audit = page.audit
    model = audit.model
    project = wizard.state.project
    total = count_entries(project)
    assert model.total == total
    assert total > 400

    # Lazy: a fresh model reads nothing but the count; rows arrive a page at a time.
    model.page_size = 50
    before = model.pages_fetched
    model.set_source(project)
    assert model.rowCount() == 0
    assert model.pages_fetched == before
    model.fetchMore()
    model.fetchMore()
    assert model.rowCount() == 100
    assert model.pages_fetched == before + 2
    assert [model.entry(i) for i in range(100)] == search(project, limit=100)

    # Filters: status, run, text (a source id), each counted and listed by the engine's own query.
    audit.status_combo.setCurrentIndex(audit.status_combo.findData("ok"))
    audit.run_combo.setCurrentIndex(audit.run_combo.findData(2))
    flt = AuditFilter(run_id=2, status="ok")
    assert model.filter == flt
    assert model.total == count_entries(project, flt) > 0
    assert all(model.entry(i)["run_id"] == 2 for i in range(model.rowCount()))
    assert "matching" in audit.count_label.text()
    sid = _crosswalk(path, "SELECT source_id FROM crosswalk WHERE run_id = 2 AND action = 'updated'")[0]["source_id"]
    audit.search_edit.setText(sid)
    qtbot.waitUntil(lambda: model.filter.text == sid, timeout=5_000)
    assert model.total == count_entries(project, AuditFilter(text=sid, run_id=2, status="ok"))
    assert any(model.entry(i)["operation"] == "updated" for i in range(model.rowCount()))
    audit.operation_combo.setCurrentIndex(audit.operation_combo.findData("created"))
    assert model.total == 0  # run 2 created nothing
    assert not audit.export_csv_button.isEnabled()

    # "Show in audit log" from the panel filters on the selected run.
    audit.search_edit.clear()
    audit.operation_combo.setCurrentIndex(0)
    audit.status_combo.setCurrentIndex(0)
    page.panel.select_run(1)
    qtbot.mouseClick(page.panel.audit_button, Qt.MouseButton.LeftButton)
    assert page.tabs.currentWidget() is audit
    assert model.filter == AuditFilter(run_id=1)
    run_one = count_entries(project, AuditFilter(run_id=1))
    assert model.total == run_one

    csv_path = tmp_path / "out" / "audit.csv"
    _run(qtbot, page, lambda: page.export_audit(csv_path, audit.current_filter()))
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.reader(handle))
    assert len(lines) == run_one + 1
    assert f"{run_one:,} audit entries saved" in page.banner.text()
    xlsx_path = tmp_path / "out" / "audit.xlsx"
    _run(qtbot, page, lambda: page.export_audit(xlsx_path, AuditFilter(status="ok")))
    book = openpyxl.load_workbook(xlsx_path, read_only=True)
    rows = sum(1 for _ in book["Audit log"].iter_rows())
    book.close()  # read-only books hold the file open until closed
    assert rows == count_entries(project, AuditFilter(status="ok")) + 1


def test_report_exports_write_xlsx_html_and_pdf(qtbot, wizard, tmp_path):
    path = _loaded(tmp_path)
    page = _open_results(qtbot, wizard, path)
    assert all(b.isEnabled() for b in page.export_buttons.values())
    out = tmp_path / "reports"
    for fmt in ("xlsx", "html", "pdf"):
        target = out / f"acme.{fmt}"
        saved = _run(qtbot, page, lambda target=target: page.save_report(target))
        assert saved == target
        assert target.stat().st_size > 1_000
    assert (out / "acme.pdf").read_bytes().startswith(b"%PDF")
    html = (out / "acme.html").read_text(encoding="utf-8")
    payments = next(t for t in page.report["field_totals"] if t["target_entity"] == "new_payment")
    assert f"{Decimal(payments['destination_total']):,}" in html
    book = openpyxl.load_workbook(out / "acme.xlsx", read_only=True)
    sheet_count = len(book.sheetnames)
    book.close()
    assert sheet_count >= 3
    assert "saved to" in page.banner.text()
    assert not list(out.glob(".acme.*"))  # written atomically: no temp file left
