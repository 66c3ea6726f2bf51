"""The Reconcile & Rollback page's Delta tab and rebuild reference package, on real data (issue 6, Deliver 5, 7, 8).

Each test loads a generated export (or extracts the embedded ServiceTitan tenant) through the engine into the
embedded Dataverse sandbox, signs it off, opens the project in the real wizard on the Reconcile & Rollback page and
drives its buttons. Expected delta counts come from what ``make_newer_export`` says it changed, expected rebuild
items from the playbook JSON and from the ServiceTitan emulator over raw HTTP, never from the code under test.

With ``CRMMIGRATOR_SCREENSHOTS_DIR`` set, the tests also write 06e-reconcile-delta.png and 06f-rebuild-package.png
there (otherwise into the test's temporary folder), the way tests/gui/test_screenshots.py does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from crmmigrator_gui.engine.demo import dispatchpro
from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.demo.runner import _provision_users
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.delta import delta
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source import extract as extract_pkg
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_source_path
from crmmigrator_gui.gui.pages.results_rebuild import PLAYBOOK_KIND
from crmmigrator_gui.gui.pages.results_reconcile import DELTA_COLUMNS
from crmmigrator_gui.gui.wizard import MigratorWizard
from crmmigrator_gui.paths import resources_dir
from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client, tenant_path

pytestmark = pytest.mark.gui
TIMEOUT = 60_000
SIZE = (1280, 800)  # a consultant's laptop screen, as in test_screenshots.py


def _shot(widget, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    QCoreApplication.processEvents()  # widgets a layout just received are shown by a queued call
    widget.repaint()
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path)), path
    image = QImage(str(path))
    assert image.width() >= SIZE[0]
    assert image.height() >= SIZE[1]
    assert path.stat().st_size > 10_000
    return path


def _octopus(tmp_path: Path):
    """A signed-off OctopusPro project, fully loaded, and the export it came from."""
    export = generate_export(tmp_path / "acme-export", records=120, seed=5)
    path = tmp_path / "acme.cmproj"
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


def _open_results(qtbot, wizard: MigratorWizard, path: Path):
    wizard.resize(*SIZE)
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


def _apply_delta(path: Path, files: list[Path], deletes: str) -> int:
    project = Project.open(path)
    try:
        result = delta(project, files, deletes=deletes)
        assert result.status == "completed", result.failures[:3]
        return result.run_id
    finally:
        project.close()


def test_delta_tab_shows_each_delta_runs_counts(qtbot, wizard, tmp_path):
    path, export = _octopus(tmp_path)
    page = _open_results(qtbot, wizard, path)
    recon = page.reconcile
    assert not recon.details.isTabVisible(recon.delta_tab)  # no delta yet: no tab

    # Cutover day: a newer export whose deletion is applied, then another whose deletions are only reported.
    first = make_newer_export(export.files, tmp_path / "newer-1", new=4, changed=4, removed=1, seed=2)
    second = make_newer_export(first.files, tmp_path / "newer-2", new=2, changed=2, removed=2, seed=3)
    run_one = _apply_delta(path, first.files, "apply")
    run_two = _apply_delta(path, second.files, "report")
    _run(qtbot, page, page.refresh_report)

    assert recon.details.isTabVisible(recon.delta_tab)
    assert recon.details.tabText(recon.delta_tab) == "Delta (2 runs)"
    rows = _rows(recon.delta_model)
    assert rows[-1]["run_text"] == "Total"
    by_run: dict[int, dict[str, dict]] = {}
    for row in rows[:-1]:
        by_run.setdefault(row["run_id"], {})[row["source_object"]] = row
    assert list(by_run) == [run_one, run_two]
    for run_id, newer, deletes in ((run_one, first, "apply"), (run_two, second, "report")):
        shown = by_run[run_id]
        present = {o for o, n in newer.unchanged.items() if n or newer.new.get(o) or newer.changed.get(o)}
        assert set(shown) == present | set(newer.removed)  # every object the newer export holds, changed or not
        for obj, row in shown.items():
            new, changed, removed = (len(getattr(newer, k).get(obj, [])) for k in ("new", "changed", "removed"))
            assert (row["new"], row["changed"], row["deleted"]) == (new, changed, removed), (run_id, obj)
            assert row["unchanged"] == newer.unchanged[obj], (run_id, obj)
            assert row["deleted_applied"] == (removed if deletes == "apply" else 0)
            assert row["deleted_reported"] == (removed if deletes == "report" else 0)
            assert row["failed"] == 0
        # What the run wrote: every new record created, every changed one updated (counted per source record).
        for obj in ("customers", "bookings"):
            assert shown[obj]["created"] == len(newer.new[obj]), (run_id, obj)
            assert shown[obj]["updated"] == len(newer.changed[obj]), (run_id, obj)
    firsts = [r["run_text"] for r in rows[:-1] if r["run_text"]]
    assert firsts == [f"Run {run_one} (completed)", f"Run {run_two} (completed)"]  # named once per run
    assert rows[-1]["new"] == 6
    assert rows[-1]["deleted"] == 3

    # Plain words: the column titles and the note say what happened to deletions, no internal codes.
    titles = [recon.delta_model.headerData(i, Qt.Orientation.Horizontal) for i in range(len(DELTA_COLUMNS))]
    assert all("_" not in t for t in titles)
    assert "Deleted at destination" in titles
    assert "Reported only" in titles
    note = recon.delta_note.text()
    assert f"Run {run_one} (completed) — newer export detected" in note
    assert "4 new, 4 changed" in note
    assert "1 deleted in the source: 1 now deleted at the destination" in note
    assert "2 deleted in the source: 2 reported only (still at the destination)" in note
    assert "deleted_applied" not in note

    recon.details.setCurrentIndex(recon.delta_tab)
    _shot(wizard, "06e-reconcile-delta", tmp_path)


def test_rebuild_button_writes_both_files_and_preview_lists_the_playbook_items(qtbot, wizard, tmp_path, monkeypatch):
    path, _export = _octopus(tmp_path)
    page = _open_results(qtbot, wizard, path)
    playbook = json.loads((resources_dir() / "playbooks" / "octopuspro-dynamics365.json").read_text(encoding="utf-8"))
    expected = {item["item"]: item["rebuild_path"] for item in playbook["rebuild"]}
    assert expected

    # The preview is there before anything is written (built offline on the worker with the report).
    preview = page.rebuild
    items = _rows(preview.items_model)
    assert {r["name"]: r["rebuild_path"] for r in items} == expected
    assert {r["kind_text"] for r in items} == {PLAYBOOK_KIND}
    assert _rows(preview.summary_model) == [{"kind": "playbook", "kind_text": PLAYBOOK_KIND, "count": len(expected)}]
    assert "exposes no definitions" in preview.source_note.text()
    assert page.tabs.tabText(3) == f"Rebuild reference ({len(expected)} items)"

    # Cancel before the worker writes: nothing is written.
    folder = tmp_path / "package"
    with qtbot.waitSignal(page.runner.cancelled, timeout=TIMEOUT):
        page.save_rebuild_package(folder)
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.runner.idle, timeout=TIMEOUT)
    assert not folder.exists() or not any(folder.iterdir())
    assert "nothing was written" in page.banner.text()

    # The button: choose a folder, the worker writes both files, the banner names them.
    asked = []
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", staticmethod(lambda *args: asked.append(args) or str(folder))
    )
    assert page.rebuild_button.isEnabled()
    outcome = _run(qtbot, page, lambda: qtbot.mouseClick(page.rebuild_button, Qt.MouseButton.LeftButton))
    assert asked
    json_path, md_path = folder / "rebuild_reference.json", folder / "REBUILD.md"
    assert outcome["paths"] == [json_path, md_path]
    package = json.loads(json_path.read_text(encoding="utf-8"))
    assert {item["item"]: item["rebuild_path"] for item in package["rebuild"]} == expected
    markdown = md_path.read_text(encoding="utf-8")
    assert all(name in markdown and rebuild in markdown for name, rebuild in expected.items())
    assert str(json_path) in page.banner.text()
    assert str(md_path) in page.banner.text()
    assert page.banner.property("kind") == "success"
    assert not list(folder.glob(".*"))  # written atomically: no temp file left


def _dispatch(tmp_path: Path) -> tuple[Path, str]:
    """A Dispatch Pro project extracted from its embedded ServiceTitan tenant and loaded; definitions unread."""
    path = tmp_path / "dispatch.cmproj"
    project = Project.create(path, source="dispatchpro", target="dynamics365")
    try:
        _provision_users(project, dispatchpro.prepare_source(project, records=30, seed=7))
        extract_pkg.extract(project)
        run_automap(project)
        accept(project, actor="tester")
        record_signoff(project, "tester")
        assert load(project).status == "completed"
        tenant = embedded_source_path(project)
    finally:
        project.close()
    return path, tenant


def test_rebuild_of_an_api_source_reads_its_definitions_on_the_worker(qtbot, wizard, tmp_path):
    path, tenant = _dispatch(tmp_path)
    sandbox = ServiceTitanSandbox(tenant)
    try:
        with api_client(sandbox) as http:
            body = http.get(tenant_path(sandbox, "dispatch", "zones"), params={"active": "Any", "pageSize": 500})
            zones = {row["name"]: row["active"] for row in body.json()["data"]}
    finally:
        sandbox.close()
    assert zones

    page = _open_results(qtbot, wizard, path)
    preview = page.rebuild
    assert "not read yet" in preview.source_note.text()  # the preview never reaches for the network
    assert {r["kind_text"] for r in _rows(preview.items_model)} == {PLAYBOOK_KIND}

    steps = []
    page.runner.progress.connect(lambda event: steps.append(event.step))
    _run(qtbot, page, lambda: page.save_rebuild_package(tmp_path / "package"))
    assert "definitions" in steps

    items = _rows(preview.items_model)
    shown = {r["name"]: r for r in items if r["kind"] == "zone"}
    assert {name: r["status"] == "active" for name, r in shown.items()} == zones
    assert all("Sales territory" in r["rebuild_path"] for r in shown.values())
    assert all(r["effort"] == "S" for r in shown.values())
    assert items[-1]["kind_text"] == PLAYBOOK_KIND  # the playbook's items follow the source's definitions
    rows = _rows(preview.summary_model)
    assert rows[-1]["kind_text"] == "Total"
    summary = {r["kind"]: r for r in rows[:-1]}
    assert summary["zone"]["count"] == len(zones)
    assert summary["zone"]["active"] == sum(zones.values())
    playbook = json.loads((resources_dir() / "playbooks" / "dispatchpro-dynamics365.json").read_text(encoding="utf-8"))
    assert summary["playbook"]["count"] == len(playbook["rebuild"]) + sum(
        1 for row in playbook.get("seed_rows", []) if row.get("rebuild")
    )
    assert rows[-1]["count"] == len(items)
    assert "Read from ServiceTitan" in preview.source_note.text()
    markdown = (tmp_path / "package" / "REBUILD.md").read_text(encoding="utf-8")
    assert all(name in markdown for name in zones)
    assert page.banner.property("kind") == "success"

    page.tabs.setCurrentWidget(preview)
    _shot(wizard, "06f-rebuild-package", tmp_path)
