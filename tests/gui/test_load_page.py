"""The Load page on real data: pause/resume, cancel while paused and resume, live failures, both destinations.

Each test builds a signed-off project through the engine (generated export, automap, accept, sign-off), opens
it in the real wizard on the Load page and drives its buttons; the destination is the embedded sandbox, counted
back over HTTP by source id. The page's batch size is lowered so a few hundred records make many batches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.progress import Failure
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.gui.pages.run_progress import FailuresModel
from crmmigrator_gui.gui.wizard import MigratorWizard

pytestmark = pytest.mark.gui
TIMEOUT = 60_000
BATCH = 25


def _signed_off(tmp_path: Path, name: str = "acme", *, variant: str = "standard", target: str = "dynamics365"):
    """A project ready for the full load: imported, map confirmed, sample signed off."""
    export = generate_export(tmp_path / f"{name}-export", records=200, seed=5, variant=variant)
    path = tmp_path / f"{name}.cmproj"
    project = Project.create(path, source="octopuspro", target=target)
    try:
        import_paths(project, export.files)
        run_automap(project)
        accept(project, actor="tester")
        record_signoff(project, "tester")
    finally:
        project.close()
    return path, export


def _open_load(qtbot, wizard: MigratorWizard, path: Path):
    wizard.project_page.choose_existing(path)
    wizard.setStartId(MigratorWizard.LOAD)
    wizard.restart()
    page = wizard.load_page
    assert wizard.currentPage() is page
    page.batch_size = BATCH
    return page


def _query(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    project = Project.open(path)
    try:
        return project.query(sql, params)
    finally:
        project.close()


def _finished_outcomes(path: Path) -> int:
    return int(
        _query(path, "SELECT COUNT(*) AS n FROM crosswalk WHERE action IN ('created','updated','unchanged','failed')")[
            0
        ]["n"]
    )


def test_pause_then_resume_completes_with_no_duplicates(qtbot, wizard, driver, tmp_path, each_record_once):
    path, _export = _signed_off(tmp_path)
    page = _open_load(qtbot, wizard, path)
    assert "signed off by tester" in page.gate.text()
    assert "Dataverse emulator" in page.destination.text()

    ticks: list[int] = []
    busy_ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: (ticks.append(1), page.runner.busy and busy_ticks.append(1)))
    timer.start(15)
    try:
        _pause_and_resume(qtbot, driver, page, path, ticks, busy_ticks, each_record_once)
    finally:
        timer.stop()


def _pause_and_resume(qtbot, driver, page, path, ticks, busy_ticks, each_record_once) -> None:
    driver.click(page.load_button)
    # Paused before the worker has started: the engine stops at its first checkpoint, after batch 1.
    driver.click(page.pause_button)
    assert page.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: page.panel.paused, timeout=TIMEOUT)
    assert "Paused after batch 1</b>" in page.panel.overall.text(), page.panel.overall.text()
    assert "resumes exactly where it stopped" in page.panel.overall.text()
    unfinished = [row for row in page.rows.values() if not (row.started and row.done >= row.total)]
    assert unfinished
    assert all(row.stats.text() == "paused" for row in unfinished)

    # Nothing moves while paused, and the GUI thread keeps running its event loop.
    written = _finished_outcomes(path)
    before = len(ticks)
    qtbot.wait(400)
    assert len(ticks) - before >= 5, "the event loop did not run while the load was paused"
    assert _finished_outcomes(path) == written
    assert 0 < written <= BATCH
    assert page.runner.busy
    assert not page.isComplete()

    with qtbot.waitSignal(page.runner.finished, timeout=TIMEOUT) as blocker:
        blocker.connect(page.runner.failed)
        driver.click(page.pause_button)  # Resume
    driver.wait_idle(page)
    result = page.result
    assert result is not None, page.banner.text()
    assert result.status == "completed", page.banner.text()
    assert len(busy_ticks) >= 10  # the timer ticked all through the run, not only while paused
    assert not page.panel.paused
    assert page.pause_button.text() == "Pause"
    assert not page.pause_button.isEnabled()

    staged = {r["object"]: r["n"] for r in _query(path, "SELECT object, COUNT(*) AS n FROM staging GROUP BY object")}
    for obj in result.objects:
        assert obj["created"] + obj["failed"] + obj["skipped"] == obj["source_records"] == staged[obj["source_object"]]
        assert obj["updated"] == obj["unchanged"] == 0  # resumed, not re-written
    each_record_once(path)

    totals = {k: sum(o[k] for o in result.objects) for k in ("created", "updated", "unchanged", "failed", "skipped")}
    assert page.panel.cards.isVisible()
    assert page.panel.cards.values["created"].text() == f"{totals['created']:,}"
    assert "retries only the failures and the records not yet loaded" in page.panel.after_hint.text()
    assert f"{result.requests:,} requests" in page.panel.overall.text()
    assert page.isComplete()


def test_cancel_while_paused_leaves_a_resumable_run_that_load_resumes(
    qtbot, wizard, driver, tmp_path, each_record_once
):
    path, _export = _signed_off(tmp_path)
    page = _open_load(qtbot, wizard, path)
    driver.click(page.load_button)
    driver.click(page.pause_button)
    qtbot.waitUntil(lambda: page.panel.paused, timeout=TIMEOUT)
    assert page.cancel_button.isEnabled()
    with qtbot.waitSignal(page.runner.cancelled, timeout=TIMEOUT):
        driver.click(page.cancel_button)
    driver.wait_idle(page)

    runs = _query(path, "SELECT id, status FROM runs WHERE kind = 'load'")
    assert [r["status"] for r in runs] == ["cancelled"]
    partial = _finished_outcomes(path)
    assert 0 < partial <= BATCH
    assert "Press Load to resume" in page.banner.text()
    assert not page.panel.paused
    assert not page.isComplete()
    assert page.load_button.isEnabled()

    # The project reopened later still offers to resume it.
    page.initializePage()
    assert f"Run {runs[0]['id']} was cancelled" in page.banner.text()

    driver.run(page.load_button, page)
    result = page.result
    assert result.run_id == runs[0]["id"]  # the same run, resumed
    assert result.status == "completed"
    assert [r["status"] for r in _query(path, "SELECT status FROM runs WHERE kind = 'load'")] == ["completed"]
    assert sum(o["created"] for o in result.objects) == sum(o["source_records"] for o in result.objects)
    each_record_once(path)


def test_failures_show_while_the_load_runs(qtbot, wizard, driver, tmp_path):
    path, export = _signed_off(tmp_path, "dirty", variant="dirty")
    expected_fail = {(d["object"], str(d["source_id"])) for d in export.defects if d["effect"] == "fails"}
    assert expected_fail
    page = _open_load(qtbot, wizard, path)
    model = page.failures_model
    seen_while_busy: list[int] = []
    model.rowsInserted.connect(lambda *_: page.runner.busy and seen_while_busy.append(model.rowCount()))

    worker = driver.run(page.load_button, page)
    assert worker.done
    result = page.result
    assert result.status == "completed_with_failures"
    assert seen_while_busy, "no failure reached the table before the run ended"

    failed = {
        (r["source_object"], r["source_id"]): r
        for r in _query(
            path,
            "SELECT source_object, source_id, error_code FROM crosswalk WHERE action = 'failed' AND run_id = ?",
            (result.run_id,),
        )
    }
    shown = [model.failure(i) for i in range(model.rowCount())]
    assert {(f.source_object, f.source_id) for f in shown} == set(failed)
    assert len(shown) == len(failed) == model.total
    assert expected_fail <= set(failed), expected_fail - set(failed)
    for failure in shown:
        assert failure.code == failed[(failure.source_object, failure.source_id)]["error_code"]
        assert failure.message
    assert page.panel.failures_box.title() == f"Failed records ({len(failed):,})"
    assert page.panel.cards.values["failed"].text() == f"{len(failed):,}"
    assert page.banner.property("kind") == "warning"


def test_destination_reads_the_project_target(qtbot, wizard, tmp_path):
    path, _export = _signed_off(tmp_path, "sf", target="salesforce")
    page = _open_load(qtbot, wizard, path)
    text = page.destination.text()
    assert "Salesforce emulator" in text
    assert "Dataverse" not in text
    assert "Dynamics" not in text


def test_failures_table_keeps_the_newest_and_counts_the_rest():
    model = FailuresModel(cap=5)
    model.add([Failure("customers", str(i), "BAD_VALUE", f"row {i}") for i in range(4)])
    model.add([Failure("bookings", str(i), "TOO_LONG", f"row {i}") for i in range(4, 8)])
    assert model.total == 8
    assert model.rowCount() == 5
    assert model.hidden == 3
    assert [model.failure(i).source_id for i in range(5)] == ["7", "6", "5", "4", "3"]  # newest first
    assert model.data(model.index(0, 3)) == "row 7"
    model.add([Failure("bookings", "7", "TOO_LONG", "the opportunity part of row 7")])  # same record, other part
    assert model.total == 8
    assert model.rowCount() == 5
