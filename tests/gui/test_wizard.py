"""Drive the real wizard: Project → Connect → Import → Map → Load → Results → Rollback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keyring.backends.fail
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QTableView, QWizard

from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.gui.models import FieldMapModel, StagingPreviewModel

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]


def _counts(model) -> list[dict]:
    rows = [model.row(i) for i in range(model.rowCount())]
    return rows[:-1]  # the last row is the total


def test_full_migration_project_to_rollback(qtbot, wizard, driver, tmp_path, sample_export):
    next_button = wizard.button(QWizard.WizardButton.NextButton)

    # Project
    driver.new_project(tmp_path / "acme")
    assert (tmp_path / "acme.cmproj").is_file()
    assert wizard.state.project is not None
    assert wizard.state.project.source == "octopuspro"

    # Connect: keep the embedded sandbox and test it
    connect = wizard.connect_page
    assert connect.ui.sandboxRadio.isChecked()
    driver.run(connect.ui.testButton, connect)
    assert connect.last_test
    assert connect.last_test["ok"]
    assert "Connected to the embedded sandbox" in connect.ui.testStatus.text()
    driver.next()

    # Import
    importer = wizard.import_page
    assert not next_button.isEnabled()
    driver.import_files(sample_export)
    staged = {r["source_object"]: r["records"] for r in _all_rows(importer.objects_model)}
    assert staged
    assert all(n > 0 for n in staged.values())
    assert importer.preview_model.rowCount() > 0
    assert importer.preview_model.columnCount() > 0
    assert next_button.isEnabled()
    driver.next()

    # Map: Next stays disabled until the map is confirmed
    mapper = wizard.map_page
    assert not next_button.isEnabled()
    driver.run(mapper.automap_button, mapper)
    assert mapper.model.counts()["proposed"] > 0
    assert not next_button.isEnabled()
    driver.click(mapper.confirm_all_button)
    assert maps.is_confirmed(wizard.state.project)
    assert next_button.isEnabled()
    driver.next()
    driver.preflight()
    driver.sample()

    # Load
    loader = wizard.load_page
    assert loader.load_button.isEnabled()
    assert not next_button.isEnabled()
    driver.click(loader.load_button)
    assert loader.runner.worker is not None
    with qtbot.waitSignal(loader.runner.finished, timeout=120_000) as blocker:
        blocker.connect(loader.runner.failed)
    driver.wait_idle(loader)
    result = loader.result
    assert result is not None, loader.banner.text()
    assert result.status in ("completed", "completed_with_failures")
    for obj in result.objects:
        assert obj["created"] + obj["failed"] + obj["skipped"] == obj["source_records"], obj
        assert obj["updated"] == obj["unchanged"] == 0
        assert obj["source_records"] == staged[obj["source_object"]]
    assert all(row.bar.value() == row.bar.maximum() for row in loader.rows.values())
    assert next_button.isEnabled()
    driver.next()
    driver.delta()  # the optional Delta step: skipped

    # Results: counts equal the source counts
    results = wizard.results_page
    driver.wait_idle(results)
    rows = _counts(results.counts_model)
    by_obj = {o["source_object"]: o for o in result.objects}
    assert {r["source_object"] for r in rows} == set(staged)
    for row in rows:
        assert row["source_records"] == staged[row["source_object"]]
        assert row["loaded"] + row["failed"] + row["skipped"] == row["source_records"], row
        assert row["loaded"] == by_obj[row["source_object"]]["created"]
    totals = results.report["totals"]
    assert totals["source_records"] == sum(staged.values())
    assert f"{totals['loaded']:,} loaded" in results.headline.text()
    assert results.failures_model.rowCount() == min(500, totals["failed"] + totals["skipped"])

    # Rollback: nothing stays loaded
    driver.run(results.rollback_button, results)
    assert results.report["totals"]["loaded"] == 0
    assert all(r["loaded"] == 0 for r in _counts(results.counts_model))
    assert "Rolled back run" in results.banner.text()
    assert not results.rollback_button.isEnabled()


def _all_rows(model) -> list[dict]:
    return [model.row(i) for i in range(model.rowCount())]


def test_load_button_disabled_until_map_confirmed(wizard, driver, tmp_path, sample_export):
    driver.new_project(tmp_path / "gate")
    driver.next()
    driver.import_files(sample_export)
    driver.next()
    mapper = wizard.map_page
    driver.run(mapper.automap_button, mapper)
    project = wizard.state.project

    # The Load page refuses while anything is unconfirmed (and so does Next on the Map page).
    wizard.load_page.initializePage()
    assert not wizard.load_page.load_button.isEnabled()
    assert "not confirmed" in wizard.load_page.gate.text()
    wizard.load_page.start_load()
    assert wizard.load_page.runner.worker is None
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()

    # Ticking a row confirms just that row; editing a target goes through the engine.
    model = mapper.model
    proposed = next(i for i, r in enumerate(model.rows()) if r["status"] == "proposed")
    assert model.setData(
        model.index(proposed, FieldMapModel.CONFIRMED), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole
    )
    assert model.rows()[proposed]["status"] == "confirmed"
    assert not model.setData(model.index(proposed, FieldMapModel.TARGET), "no-dot-here")
    assert "ENTITY.FIELD" in mapper.banner.text()

    driver.click(mapper.confirm_all_button)
    assert maps.is_confirmed(project)
    wizard.load_page.initializePage()  # confirmed, but no sample signed off: still refused
    assert not wizard.load_page.load_button.isEnabled()
    assert "no valid sign-off" in wizard.load_page.gate.text()
    wizard.load_page.start_load()
    assert wizard.load_page.runner.worker is None
    record_signoff(project, "test fixture", note="GUI test: the Sample page is driven in test_sample_page.py")
    wizard.load_page.initializePage()
    assert wizard.load_page.load_button.isEnabled()


def _project_bytes(project_file: Path) -> bytes:
    return b"".join(p.read_bytes() for p in project_file.parent.glob(project_file.name + "*"))


def test_connect_stores_the_secret_only_in_the_keyring(wizard, driver, tmp_path, memory_keyring):
    secret = "s3cr3t-Client-Value-9f2e"
    driver.new_project(tmp_path / "org")
    connect = wizard.connect_page
    connect.ui.orgRadio.setChecked(True)
    connect.ui.urlEdit.setText("https://contoso.crm.dynamics.com")
    connect.ui.tenantEdit.setText("contoso.onmicrosoft.com")
    connect.ui.clientIdEdit.setText("11111111-2222-3333-4444-555555555555")
    connect.ui.secretEdit.setText(secret)
    driver.next()

    assert secret in memory_keyring.secrets.values()
    assert connect.ui.secretEdit.text() == ""
    project_file = tmp_path / "org.cmproj"
    assert secret.encode() not in _project_bytes(project_file)
    assert b"contoso.crm.dynamics.com" in _project_bytes(project_file)  # the non-secret settings are there
    settings_files = list((tmp_path / "settings").rglob("*"))
    assert all(secret.encode() not in p.read_bytes() for p in settings_files if p.is_file())


def test_connect_says_so_when_there_is_no_keyring(wizard, driver, tmp_path):
    keyring.set_keyring(keyring.backends.fail.Keyring())  # a headless machine; the fixture restores it
    driver.new_project(tmp_path / "headless")
    connect = wizard.connect_page
    connect.ui.orgRadio.setChecked(True)
    connect.ui.urlEdit.setText("https://contoso.crm.dynamics.com")
    connect.ui.clientIdEdit.setText("client")
    connect.ui.secretEdit.setText("never-written")
    driver.click(wizard.button(QWizard.WizardButton.NextButton))
    assert wizard.currentPage() is connect
    assert "keyring" in connect.ui.messageLabel.text()
    assert b"never-written" not in _project_bytes(tmp_path / "headless.cmproj")


def test_open_an_existing_project_picks_up_where_it_left_off(wizard, driver, tmp_path, sample_export):
    path = tmp_path / "existing.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365", edition="professional")
    try:
        import_paths(project, sample_export)
        names = project.source_object_names()
    finally:
        project.close()
    page = wizard.project_page
    page.choose_existing(path)
    assert page.ui.editionCombo.currentData() == "professional"
    assert not page.ui.sourceCombo.isEnabled()
    assert "imported object(s)" in page.ui.messageLabel.text()
    driver.next()
    driver.next()
    rows = [
        wizard.import_page.objects_model.row(i)["source_object"]
        for i in range(wizard.import_page.objects_model.rowCount())
    ]
    assert rows == names
    assert wizard.import_page.preview_model.rowCount() > 0


def test_preview_model_fetches_lazily_in_pages(qtbot, tmp_path, sample_export):
    project = Project.create(tmp_path / "lazy.cmproj", source="octopuspro", target="dynamics365")
    try:
        import_paths(project, sample_export)
        name = max(project.source_object_names(), key=project.staged_count)
        total = project.staged_count(name)
        model = StagingPreviewModel(page_size=20, max_cached_pages=2)
        model.set_object(project, name)
        assert model.rowCount() == 0
        assert model.canFetchMore()
        model.fetchMore()
        assert model.rowCount() == 20
        assert model.pages_fetched == 1
        model.fetchMore()
        assert model.rowCount() == 40
        assert model.pages_fetched == 2
        first_id = project.staged_page(name, 0, 1)[0][0]

        view = QTableView()
        qtbot.addWidget(view)
        view.setModel(model)
        view.resize(600, 300)
        view.show()
        while model.canFetchMore():
            view.scrollToBottom()
            qtbot.wait(1)
            if model.rowCount() < total:
                model.fetchMore()
        assert model.rowCount() == total
        assert model.pages_fetched == -(-total // 20)
        # Only two pages stay cached: the first page is read again when it is needed.
        fetched = model.pages_fetched
        columns = project.source_columns(name)
        assert model.data(model.index(0, 0)) is not None
        assert model.pages_fetched == fetched + 1
        assert first_id in {str(model.data(model.index(0, c))) for c in range(len(columns))}
        model.clear()
    finally:
        project.close()


def test_closing_during_a_load_waits_for_the_worker(wizard, driver, tmp_path, sample_export):
    driver.new_project(tmp_path / "closing")
    driver.next()
    driver.import_files(sample_export)
    driver.next()
    driver.run(wizard.map_page.automap_button, wizard.map_page)
    driver.click(wizard.map_page.confirm_all_button)
    driver.next()
    driver.preflight()
    driver.sample()
    driver.click(wizard.load_page.load_button)
    driver.qtbot.waitUntil(lambda: wizard.load_page.runner.thread.isRunning(), timeout=10_000)
    wizard.close()  # must cancel, quit and wait: a destroyed running QThread would abort the process
    assert not wizard.load_page.runner.busy
    assert wizard.state.project is None


def test_run_app_shows_the_wizard_and_returns_the_exit_code(gui_settings):
    from crmmigrator_gui.gui.app import run_app

    seen = []

    def close_it() -> None:
        seen.extend(w for w in QApplication.topLevelWidgets() if w.isVisible())
        QApplication.instance().exit(0)

    QTimer.singleShot(50, close_it)
    assert run_app([]) == 0
    assert any(w.windowTitle() == "CRM Migrator" for w in seen)


def test_generated_ui_is_current():
    """``ui/*.ui`` changed without re-running ``scripts/compile_ui.py``?"""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compile_ui.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_source_is_extracted_on_the_import_page(wizard, driver, tmp_path):
    """ServiceTracker arrives over its (embedded, emulated) Salesforce API: Extract, then map and load."""
    from crmmigrator_gui.engine.demo.servicetracker import prepare_source

    page = wizard.project_page
    page.choose_new(tmp_path / "st", source="servicetracker")
    driver.next()
    project = wizard.state.project
    assert project.source == "servicetracker"
    prepare_source(project, records=300, seed=3)
    driver.next()  # Connect: keep the embedded sandbox
    importer = wizard.import_page
    assert importer.extract_button.isVisible()
    driver.run(importer.extract_button, importer)
    staged = {r["source_object"]: r["records"] for r in _all_rows(importer.objects_model)}
    assert len(staged) >= 5
    assert all(n > 0 for n in staged.values())
    assert "Extracted" in importer.status.text()
    assert importer.isComplete()
