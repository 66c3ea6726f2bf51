"""The Delta page on real data: detect a newer export, review per object, apply, deletions reported or deleted.

Each test loads a generated export through the engine (signed off, like the full load needs), makes a newer
export whose differences are known (engine/demo/newer_export.py), opens the project in the real wizard on the
Delta page and drives its buttons. The destination is the embedded sandbox, counted back over HTTP by source id.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.gui.wizard import MigratorWizard

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


def _loaded(tmp_path: Path, name: str = "acme"):
    """A fully loaded project and the export it came from."""
    export = generate_export(tmp_path / f"{name}-export", records=200, seed=5)
    path = tmp_path / f"{name}.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export.files)
        run_automap(project)
        accept(project, actor="tester")
        record_signoff(project, "tester")
        assert load(project).status == "completed"
    finally:
        project.close()
    return path, export


def _open_delta(qtbot, wizard: MigratorWizard, path: Path):
    wizard.project_page.choose_existing(path)
    wizard.setStartId(MigratorWizard.DELTA)
    wizard.restart()
    page = wizard.delta_page
    assert wizard.currentPage() is page
    return page


def _plan_rows(page) -> dict[str, dict]:
    rows = [page.plan_model.row(i) for i in range(page.plan_model.rowCount())]
    return {r["source_object"]: r for r in rows}


def _query(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    project = Project.open(path)
    try:
        return project.query(sql, params)
    finally:
        project.close()


def test_the_step_is_optional(qtbot, wizard, driver, tmp_path):
    path, _export = _loaded(tmp_path)
    page = _open_delta(qtbot, wizard, path)
    assert page.isComplete()
    assert "optional" in page.optional_note.text()
    assert not page.apply_button.isEnabled()  # nothing detected
    assert not page.detect_button.isEnabled()  # no files chosen
    assert not page.api_radio.isEnabled()  # OctopusPro arrives as files: no API to read
    driver.delta()  # skipped
    assert wizard.currentPage() is wizard.results_page


def test_detect_shows_the_counts_and_apply_creates_and_updates_them(qtbot, wizard, driver, tmp_path, each_record_once):
    path, export = _loaded(tmp_path)
    newer = make_newer_export(export.files, tmp_path / "newer", new=4, changed=4, removed=2, seed=1)
    page = _open_delta(qtbot, wizard, path)
    page.add_paths(newer.files)
    assert page.detect_button.isEnabled()
    driver.run(page.detect_button, page)

    rows = _plan_rows(page)
    for obj in set(newer.new) | set(newer.changed) | set(newer.removed):
        assert rows[obj]["new"] == len(newer.new.get(obj, [])), obj
        assert rows[obj]["changed"] == len(newer.changed.get(obj, [])), obj
        assert rows[obj]["deleted"] == len(newer.removed.get(obj, [])), obj
    for obj, unchanged in newer.unchanged.items():
        assert rows[obj]["unchanged"] == unchanged, obj
    assert rows["Total"]["new"] == 4
    assert rows["Total"]["changed"] == 4
    assert rows["Total"]["deleted"] == 2
    assert "10 record(s) to apply" in page.plan_note.text()
    assert "Changes-only" not in page.plan_note.text()
    assert page.apply_button.isEnabled()
    assert page.report_radio.isChecked()  # deletions are only reported unless the consultant chooses

    driver.run(page.apply_button, page)  # report only: no confirmation needed
    result = page.result
    assert result.kind == "delta"
    assert result.status == "completed", page.banner.text()
    by_obj = {o["source_object"]: o for o in result.objects}
    for obj, ids in newer.new.items():
        assert by_obj[obj]["created"] == len(ids), obj
    for obj, ids in newer.changed.items():
        assert by_obj[obj]["updated"] == len(ids), obj
    assert page.panel.cards.values["created"].text() == str(sum(len(v) for v in newer.new.values()))
    assert page.panel.cards.values["updated"].text() == str(sum(len(v) for v in newer.changed.values()))

    # The written records are in the same ledger, by source id, each once at the destination.
    written = _query(
        path,
        "SELECT source_object, source_id, action FROM crosswalk WHERE run_id = ? AND action IN ('created','updated')",
        (result.run_id,),
    )
    assert {(r["source_object"], r["source_id"]) for r in written if r["action"] == "created"} == {
        (obj, sid) for obj, ids in newer.new.items() for sid in ids
    }
    assert {(r["source_object"], r["source_id"]) for r in written if r["action"] == "updated"} == {
        (obj, sid) for obj, ids in newer.changed.items() for sid in ids
    }
    keys = each_record_once(path)

    # Deletions were reported, listed, and left at the destination.
    listed = [page.deleted_model.row(i) for i in range(page.deleted_model.rowCount())]
    assert {(r["source_object"], r["source_id"]) for r in listed} == {
        (obj, sid) for obj, ids in newer.removed.items() for sid in ids
    }
    assert all(r["state"] == "kept — reported only" for r in listed)
    assert page.deleted_box.title() == "Deleted in the source (2)"
    still_there = _query(
        path,
        "SELECT DISTINCT target_entity, key FROM crosswalk WHERE source_object = ? AND source_id = ? AND "
        "action = 'created'",
        (listed[0]["source_object"], listed[0]["source_id"]),
    )
    assert still_there
    assert all(keys[r["target_entity"]][r["key"]] == 1 for r in still_there)
    assert not page.apply_button.isEnabled()  # applied: nothing pending
    assert page.isComplete()


def test_deleting_at_the_destination_asks_first_and_removes_them(qtbot, wizard, driver, tmp_path, each_record_once):
    path, export = _loaded(tmp_path)
    newer = make_newer_export(export.files, tmp_path / "newer", new=0, changed=0, removed=2, seed=2)
    page = _open_delta(qtbot, wizard, path)
    page.add_paths(newer.files)
    detector = driver.run(page.detect_button, page)
    page.delete_radio.setChecked(True)

    # Cancel in the confirmation: nothing runs.
    driver.click(page.apply_button)
    assert page.confirm_box is not None
    assert "rolling back this delta run restores them" in page.confirm_box.text()
    page.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: page.confirm_box is None, timeout=5_000)
    assert page.runner.worker is detector  # no apply started
    assert not _query(path, "SELECT id FROM runs WHERE kind = 'delta'")

    def confirm() -> None:
        box = page.confirm_box
        if box is None or not box.isVisible():
            QTimer.singleShot(20, confirm)
            return
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, confirm)
    with qtbot.waitSignal(page.runner.finished, timeout=TIMEOUT) as blocker:
        blocker.connect(page.runner.failed)
        driver.click(page.apply_button)
    driver.wait_idle(page)
    assert not isinstance(blocker.args[0], str), blocker.args[0]
    listed = [page.deleted_model.row(i) for i in range(page.deleted_model.rowCount())]
    removed = {(obj, sid) for obj, ids in newer.removed.items() for sid in ids}
    assert {(r["source_object"], r["source_id"]) for r in listed} == removed
    assert all(r["state"] == "deleted (rollback restores it)" for r in listed)
    keys = each_record_once(path)
    gone = _query(path, "SELECT target_entity, key, source_object, source_id FROM crosswalk WHERE action = 'deleted'")
    assert {(r["source_object"], r["source_id"]) for r in gone} == removed
    assert all(keys[r["target_entity"]][r["key"]] == 0 for r in gone)  # no longer at the destination
