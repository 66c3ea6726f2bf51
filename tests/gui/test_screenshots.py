"""Render every wizard page to PNG after driving real data through it (STYLE rule 16).

By default the images go to a temporary folder, so a normal test run leaves the tree alone.
To refresh the documentation images::

    CRMMIGRATOR_SCREENSHOTS_DIR=docs/screenshots QT_QPA_PLATFORM=offscreen \\
        python -m pytest tests/gui/test_screenshots.py -q

Then open each PNG and look at it: clipped labels, empty grids and tiny columns are bugs.
"""

from __future__ import annotations

import os
from pathlib import Path

import openpyxl
import pytest
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QImage

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.mapping import workbook

pytestmark = pytest.mark.gui


SIZE = (1280, 800)  # a consultant's laptop screen


def _shot(widget, folder: Path, name: str, *, min_size: tuple[int, int] = SIZE) -> Path:
    QCoreApplication.processEvents()  # widgets a layout just received are shown by a queued call
    widget.repaint()
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path)), path
    image = QImage(str(path))
    assert image.width() >= min_size[0]
    assert image.height() >= min_size[1]
    return path


def _settle(qtbot, mapper) -> None:
    """Let the transform preview's debounce run, as it would while the consultant looks."""
    editor = mapper.transform_editor
    qtbot.wait(editor.timer.interval() + 50)
    qtbot.waitUntil(lambda: not editor.timer.isActive(), timeout=5_000)


def _run(qtbot, page, start) -> None:
    with qtbot.waitSignal(page.runner.finished, timeout=60_000) as blocker:
        blocker.connect(page.runner.failed)
        start()
    qtbot.waitUntil(lambda: page.runner.idle, timeout=60_000)
    assert not isinstance(blocker.args[0], str), blocker.args[0]


def _customer_edits(path: Path) -> None:
    """What the customer sends back: another destination and a note on one field, another option for a value."""
    book = openpyxl.load_workbook(path)
    for sheet, key_column, key, column, value in (
        ("customers", workbook.FIELD, "Gate code", workbook.DEST, "account.description"),
        ("customers", workbook.FIELD, "Gate code", workbook.NOTES, "Keep the gate code with the site notes"),
        ("customers", workbook.FIELD, "Preferred technician", workbook.NOTES, "Not needed after go-live"),
        ("bookings values", workbook.VALUE, "Enroute", workbook.DEST_VALUE, "In Progress"),
    ):
        ws = book[sheet]
        header = [c.value for c in ws[1]]
        row = next(r for r in ws.iter_rows(min_row=2) if r[header.index(key_column)].value == key)
        row[header.index(column)].value = value
    book.save(path)


def _first_finding_with_a_field(page):
    model = page.model
    for s in range(model.rowCount()):
        top = model.index(s, 0)
        for c in range(model.rowCount(top)):
            code = model.index(c, 0, top)
            for f in range(model.rowCount(code)):
                index = model.index(f, 0, code)
                finding = model.finding(index)
                if finding.get("object") and finding.get("field"):
                    return index
    return None


def test_screenshots_of_every_page(qtbot, wizard, driver, tmp_path, sample_export):
    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    wizard.resize(*SIZE)
    shots = []

    project = wizard.project_page
    project.choose_new(tmp_path / "acme-field-services")
    shots.append(_shot(wizard, folder, "01-project"))
    driver.next()

    connect = wizard.connect_page
    connect.ui.orgRadio.setChecked(True)
    connect.ui.urlEdit.setText("https://acme.crm4.dynamics.com")
    connect.ui.tenantEdit.setText("acme.onmicrosoft.com")
    connect.ui.clientIdEdit.setText("3f2b8c1e-6a4d-4b0e-9a57-1c2d3e4f5a6b")
    shots.append(_shot(wizard, folder, "02a-connect-org"))
    connect.ui.urlEdit.clear()
    connect.ui.tenantEdit.clear()
    connect.ui.clientIdEdit.clear()
    connect.ui.sandboxRadio.setChecked(True)
    driver.run(connect.ui.testButton, connect)
    shots.append(_shot(wizard, folder, "02b-connect-sandbox"))
    driver.next()

    importer = wizard.import_page
    driver.import_files(sample_export)
    importer.select_object("bookings")
    shots.append(_shot(wizard, folder, "03-import"))
    driver.next()

    mapper = wizard.map_page
    driver.run(mapper.automap_button, mapper)
    driver.qtbot.waitUntil(lambda: mapper.meta_runner.idle, timeout=60_000)
    mapper.select_source_row(mapper.model.find("bookings", "Status"))
    shots.append(_shot(wizard, folder, "04a-map-proposed"))

    # What needs a look: low-confidence rows when the auto-mapper has any, else everything still to review.
    key = "low" if mapper.model.filter_counts()["low"] else "review"
    driver.qtbot.mouseClick(mapper.chips[key], Qt.MouseButton.LeftButton)
    if not mapper.select_source_row(mapper.model.find("customers", "Gate code")):
        mapper.view.selectRow(0)
    mapper.tabs.setCurrentWidget(mapper.transform_editor)
    _settle(driver.qtbot, mapper)
    shots.append(_shot(wizard, folder, "04b-map-filtered"))

    driver.qtbot.mouseClick(mapper.chips["all"], Qt.MouseButton.LeftButton)
    mapper.select_source_row(mapper.model.find("customers", "Mobile"))
    mapper.tabs.setCurrentWidget(mapper.transform_editor)
    _settle(driver.qtbot, mapper)
    shots.append(_shot(wizard, folder, "04c-map-transform"))

    review = tmp_path / "acme-map-review.xlsx"
    _run(driver.qtbot, mapper, lambda: mapper.export_review_to(review))
    _customer_edits(review)
    _run(driver.qtbot, mapper, lambda: mapper.import_review_from(review))
    dialog = mapper.diff_dialog
    assert dialog is not None
    dialog.resize(1100, 520)
    shots.append(_shot(dialog, folder, "04d-map-review-diff", min_size=(1000, 450)))
    with driver.qtbot.waitSignal(mapper.runner.finished, timeout=60_000):
        driver.click(dialog.apply_button)
    driver.wait_idle(mapper)
    driver.qtbot.mouseClick(mapper.chips["customer"], Qt.MouseButton.LeftButton)
    mapper.select_source_row(mapper.model.find("bookings", "Status"))
    mapper.tabs.setCurrentWidget(mapper.value_editor)
    shots.append(_shot(wizard, folder, "04e-map-customer-changes"))

    driver.qtbot.mouseClick(mapper.chips["all"], Qt.MouseButton.LeftButton)
    driver.click(mapper.confirm_all_button)
    mapper.select_source_row(mapper.model.find("invoices", "Status"))
    shots.append(_shot(wizard, folder, "04f-map-confirmed"))
    driver.next()

    preflight = wizard.preflight_page
    driver.qtbot.waitUntil(lambda: preflight.runner.idle and preflight.result is not None, timeout=60_000)
    shots.append(_shot(wizard, folder, "04p-preflight"))
    jump = _first_finding_with_a_field(preflight)
    assert jump is not None
    assert preflight.open_finding(jump)
    shots.append(_shot(wizard, folder, "04q-preflight-jump-to-field"))
    driver.next()
    driver.qtbot.waitUntil(lambda: preflight.runner.idle and preflight.result is not None, timeout=60_000)
    assert preflight.isComplete(), preflight.banner.text()
    driver.next()
    driver.sample()

    loader = wizard.load_page
    driver.run(loader.load_button, loader)
    driver.next()

    # Cutover day: the customer sends a newer export (new, changed and removed rows).
    delta = wizard.delta_page
    newer = make_newer_export(sample_export, tmp_path / "newer", new=6, changed=5, removed=3, seed=4)
    delta.add_paths(newer.files)
    driver.run(delta.detect_button, delta)
    shots.append(_shot(wizard, folder, "05d-delta-detected"))
    driver.run(delta.apply_button, delta)
    assert delta.result is not None
    assert delta.result.status == "completed", delta.banner.text()
    shots.append(_shot(wizard, folder, "05e-delta-applied"))
    driver.next()

    results = wizard.results_page
    driver.wait_idle(results)
    shots.append(_shot(wizard, folder, "06e-results-after-the-flow"))
    driver.run(results.rollback_button, results)
    shots.append(_shot(wizard, folder, "06f-results-flow-rolled-back"))

    assert all(p.stat().st_size > 10_000 for p in shots)


def test_screenshot_of_a_dirty_export_in_preflight(qtbot, wizard, driver, tmp_path):
    """What a consultant sees on a messy export: blocking findings first, each one a double-click from its field."""
    from crmmigrator_gui.engine.demo.octopuspro import generate_export
    from crmmigrator_gui.engine.mapping import maps
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.source.importer import import_paths

    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    export = generate_export(tmp_path / "export", records=300, seed=5, variant="dirty")
    project = Project.create(tmp_path / "sparkle-services.cmproj", source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export.files)
        maps.run_automap(project)
        maps.accept(project, actor="consultant")
    finally:
        project.close()
    wizard.resize(*SIZE)
    wizard.project_page.choose_existing(tmp_path / "sparkle-services.cmproj")
    for _step in range(4):
        driver.next()
    page = wizard.preflight_page
    qtbot.waitUntil(lambda: page.runner.idle and page.result is not None, timeout=60_000)
    assert page.result["blocking"] > 0
    assert not page.isComplete()
    shot = _shot(wizard, folder, "04r-preflight-blocking")
    assert shot.stat().st_size > 10_000


def test_screenshots_of_reconcile_and_rollback(qtbot, wizard, tmp_path, sample_export):
    """Reconcile & Rollback on real data: two runs, then the office edits a payment and an account at the
    destination; the totals show the mismatch, rollback of all runs refuses the edited account."""
    import json

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from crmmigrator_gui.engine.mapping import maps
    from crmmigrator_gui.engine.mapping.signoff import record_signoff
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.run.load import load
    from crmmigrator_gui.engine.source.importer import import_paths
    from crmmigrator_gui.engine.target.connection import destination
    from crmmigrator_gui.gui.wizard import MigratorWizard

    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "acme-field-services.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, sample_export)
        maps.run_automap(project)
        maps.accept(project, actor="consultant")
        record_signoff(project, "Dana Whitfield")
        load(project)
        email = next(c for c in next(project.iter_staged("customers"))[1] if "mail" in c.lower())
        for sid, raw in list(project.iter_staged("customers"))[:3]:  # cutover-day corrections, loaded again
            raw[email] = f"accounts+{sid}@example.org"
            with project.transaction():
                project.db.conn.execute(
                    "UPDATE staging SET raw = ? WHERE object = 'customers' AND source_id = ?", (json.dumps(raw), sid)
                )
        load(project)
        payment = project.query("SELECT dest_id FROM crosswalk WHERE target_entity = 'new_payment' LIMIT 1")[0]
        account = project.query(
            "SELECT dest_id FROM crosswalk WHERE target_entity = 'account' AND action = 'created' LIMIT 1 OFFSET 5"
        )[0]
        amount = next(
            r["target_field"]
            for r in project.query("SELECT target_field FROM field_maps WHERE target_entity = 'new_payment'")
            if r["target_field"] and "amount" in r["target_field"]
        )
        with destination(project) as client:  # the office edits two records after the load, over the API
            for entity_set, dest_id, body in (
                ("new_payments", payment["dest_id"], {amount: 1234.5}),
                (
                    "accounts",
                    account["dest_id"],
                    {"name": "Harbourside Dental (new owner)", "telephone1": "+61 2 9000 1234"},
                ),
            ):
                response = client.send("PATCH", f"{entity_set}({dest_id})", body, {"If-Match": "*"})
                assert response.status_code == 204, response.text
    finally:
        project.close()

    wizard.resize(*SIZE)
    wizard.project_page.choose_existing(path)
    wizard.setStartId(MigratorWizard.RESULTS)
    wizard.restart()
    page = wizard.results_page
    qtbot.waitUntil(lambda: page.runner.idle and page.report is not None, timeout=60_000)
    assert any(t["verdict"] == "mismatch" for t in page.report["field_totals"])
    shots = [_shot(wizard, folder, "06a-reconcile")]

    page.tabs.setCurrentWidget(page.panel)
    page.panel.select_run(2)
    shots.append(_shot(wizard, folder, "06b-rollback-panel"))

    _run(qtbot, page, lambda: qtbot.mouseClick(page.panel.rollback_all_button, Qt.MouseButton.LeftButton))
    assert page.panel.refused_box.isVisible()
    shots.append(_shot(wizard, folder, "06c-rollback-refused"))

    def confirm() -> None:
        box = getattr(page.panel, "confirm_box", None)
        if box is None or not box.isVisible():
            QTimer.singleShot(20, confirm)
            return
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, confirm)
    _run(qtbot, page, lambda: qtbot.mouseClick(page.panel.force_button, Qt.MouseButton.LeftButton))
    assert page.report["totals"]["loaded"] == 0
    page.tabs.setCurrentWidget(page.audit)
    page.audit.show_run(1)
    page.audit.search_edit.setText("account")
    page.audit.apply_filter()
    shots.append(_shot(wizard, folder, "06d-audit"))
    assert all(p.stat().st_size > 10_000 for p in shots)


def test_screenshots_of_a_load_paused_with_failures(qtbot, wizard, driver, tmp_path):
    """The Load page on a messy export: ready, paused mid-run with failures already listed, then done."""
    from crmmigrator_gui.engine.demo.octopuspro import generate_export
    from crmmigrator_gui.engine.mapping import maps
    from crmmigrator_gui.engine.mapping.signoff import record_signoff
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.source.importer import import_paths
    from crmmigrator_gui.gui.wizard import MigratorWizard

    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    export = generate_export(tmp_path / "export", records=600, seed=5, variant="dirty")
    path = tmp_path / "sparkle-services.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export.files)
        maps.run_automap(project)
        maps.accept(project, actor="consultant")
        record_signoff(project, "Dana Whitfield")
    finally:
        project.close()
    wizard.resize(*SIZE)
    wizard.project_page.choose_existing(path)
    wizard.setStartId(MigratorWizard.LOAD)
    wizard.restart()
    page = wizard.load_page
    page.batch_size = 40
    shots = [_shot(wizard, folder, "05a-load-ready")]

    def pause_on_first_failure(*_args) -> None:
        """Pause once failures of a few objects are listed: mid-run, with something to look at."""
        objects = {page.failures_model.failure(i).source_object for i in range(page.failures_model.rowCount())}
        if len(objects) >= 3 and page.runner.busy and not page.panel.pause_requested:
            page.pause()

    page.failures_model.rowsInserted.connect(pause_on_first_failure)
    driver.click(page.load_button)
    qtbot.waitUntil(lambda: page.panel.paused, timeout=60_000)
    page.failures_model.rowsInserted.disconnect(pause_on_first_failure)
    assert page.failures_model.rowCount() > 0
    shots.append(_shot(wizard, folder, "05c-load-running-paused"))
    with qtbot.waitSignal(page.runner.finished, timeout=60_000):
        driver.click(page.pause_button)  # Resume
    driver.wait_idle(page)
    assert page.result is not None
    shots.append(_shot(wizard, folder, "05b-load-done"))
    assert all(p.stat().st_size > 10_000 for p in shots)
