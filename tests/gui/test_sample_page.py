"""The Sample page: runs the sample on a worker, drills down object → record → field, filters, exports, signs off.

The project is the one tests/engine/test_sample.py uses: an OctopusPro export whose booking dates are written
DD/MM/YYYY, imported, automapped and accepted on the embedded Dataverse sandbox. What the views show is
checked against the engine's own rows (``page.rows``) and the audit log, not against fixed numbers; the
broken map (booking date read MM/DD/YYYY) is made with the engine's ``set_transform``, as a consultant's
edit on the Map page would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import openpyxl
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.editing import set_transform
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.sample import summarize_diff
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

pytestmark = pytest.mark.gui

SIZE = (1280, 800)


def _dd_mm_project(tmp_path: Path) -> Path:
    """Booking dates as OctopusPro's CSV exports write them (DD/MM/YYYY); mapped and accepted."""
    export = generate_export(tmp_path / "export", records=300, seed=3)
    book = openpyxl.load_workbook(export.files[0])
    sheet = book["Bookings"]
    column = [c.value for c in sheet[1]].index("Booking date") + 1
    for row in range(2, sheet.max_row + 1):
        cell = sheet.cell(row=row, column=column)
        if cell.value is not None:
            cell.value = cell.value.strftime("%d/%m/%Y")
    book.save(export.files[0])
    path = tmp_path / "acme.cmproj"
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        org = DataverseSandbox(embedded_sandbox_path(project))
        for name, email in export.users:
            org.add_user(name, email)
        org.close()
        import_paths(project, export.files)
        run_automap(project)
        accept(project, actor="tester")
    finally:
        project.close()
    return path


def _open_sample_page(wizard, driver, tmp_path):
    wizard.project_page.choose_existing(_dd_mm_project(tmp_path))
    for _ in range(4):  # Connect, Import, Map, Pre-flight
        driver.next()
    driver.wait_idle(wizard.preflight_page)
    wizard.next()  # even if the pre-flight held Next: the Sample page is what is under test
    page = wizard.sample_page
    assert wizard.currentPage() is page
    driver.wait_idle(page)
    return page


def _break_booking_dates(project: Project) -> None:
    rows = project.query(
        "SELECT id, transform FROM field_maps WHERE source_object = 'bookings' AND source_field = 'Booking date'"
    )
    assert rows
    for row in rows:
        set_transform(project, row["id"], {**json.loads(row["transform"]), "format": "MM/DD/YYYY"}, actor="tester")


def _objects(page) -> list[str]:
    return [page.objects_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(page.objects_list.count())]


def _shot(wizard, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    wizard.repaint()
    path = folder / f"{name}.png"
    assert wizard.grab().save(str(path)), path
    return path


def test_a_sample_fills_the_views_and_the_sign_off_gates_next(qtbot, wizard, driver, tmp_path):
    wizard.resize(*SIZE)
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    page = _open_sample_page(wizard, driver, tmp_path)
    assert page.size_spin.minimum() == 100
    assert page.size_spin.maximum() == 500
    assert page.size_spin.value() == 200
    assert not page.isComplete()
    assert not next_button.isEnabled()
    assert not page.signoff_button.isEnabled()
    assert "no sample has been signed off" in page.signoff_label.text()

    page.size_spin.setValue(100)
    driver.run(page.run_button, page)
    rows = page.rows
    assert rows
    assert page.result is not None
    assert page.result.rows == rows
    summary = summarize_diff(rows)
    assert summary["flagged"] == 0, [r for r in rows if r.flagged][:3]  # a clean map flags nothing
    assert page.fields_card.value.text() == f"{summary['fields']:,}"
    assert page.flagged_card.value.text() == "0"
    loaded = {(r.source_object, r.source_id, r.target_entity) for r in rows if r.dest_id}
    assert page.records_card.value.text() == f"{len(loaded):,}"
    objects = sorted({r.source_object for r in rows})
    assert _objects(page) == objects
    assert page.object_combo.count() == len(objects) + 1

    # Drill down: every object lists exactly its records; a record shows exactly its fields, side by side.
    for obj in objects:
        page.select_object(obj)
        shown = {(rec.source_id, rec.target_entity) for rec in page.records_model.records}
        assert shown == {(r.source_id, r.target_entity) for r in rows if r.source_object == obj}
    page.select_object("bookings")
    page.records_view.selectRow(1)
    rec = page.records_model.record(1)
    expected = [
        r
        for r in rows
        if (r.source_object, r.source_id, r.target_entity) == ("bookings", rec.source_id, rec.target_entity)
    ]
    assert sorted(map(id, page.fields_model.rows)) == sorted(map(id, expected))
    assert [page.fields_model.headerData(c, Qt.Orientation.Horizontal) for c in range(5)] == [
        "Field", "Source value", "Expected", "Stored", "Verdict"]  # fmt: skip
    assert page.fields_model.index(0, 4).data(Qt.ItemDataRole.BackgroundRole) is not None
    _shot(wizard, "05s-sample", tmp_path)

    # Sign off through the dialog: one audit row, Next enabled.
    driver.click(page.signoff_button)
    dialog = page.signoff_dialog
    assert dialog is not None
    dialog.setTextValue("Dana Customer")
    dialog.accept()
    project = wizard.state.project
    assert page.isComplete()
    assert next_button.isEnabled()
    assert "Signed off by Dana Customer" in page.signoff_label.text()
    audit = project.query("SELECT detail FROM audit WHERE action = 'signoff'")
    assert len(audit) == 1
    detail = json.loads(audit[0]["detail"])
    assert detail["by"] == "Dana Customer"
    assert detail["sample_run_id"] == page.run_id
    _shot(wizard, "05s-sample-signed-off", tmp_path)

    # A map edit voids it: the reason shows, Next is held, signing off again is refused.
    _break_booking_dates(project)
    page.initializePage()
    assert not page.isComplete()
    assert not next_button.isEnabled()
    assert "the map changed after the sign-off by Dana Customer" in page.signoff_label.text()
    assert not page.sign_off_as("Dana Customer")
    assert "map changed" in page.banner.text()
    assert len(project.query("SELECT id FROM audit WHERE action = 'signoff'")) == 1


def test_mismatches_only_shows_only_what_a_broken_date_format_flags(qtbot, wizard, driver, tmp_path):
    wizard.resize(*SIZE)
    page = _open_sample_page(wizard, driver, tmp_path)
    _break_booking_dates(wizard.state.project)
    page.size_spin.setValue(100)
    driver.run(page.run_button, page)
    rows = page.rows
    flagged = [r for r in rows if r.flagged]
    assert flagged, "MM/DD on DD/MM data must flag some bookings"
    assert {(r.source_object, r.source_field) for r in flagged} == {("bookings", "Booking date")}
    assert page.flagged_card.value.text() == f"{len(flagged):,}"

    page.select_object("bookings")
    mixed = 0
    for i in range(page.records_model.rowCount()):  # unfiltered: a misread record shows its clean fields too
        page.records_view.selectRow(i)
        mixed += any(r.flagged for r in page.fields_model.rows) and any(not r.flagged for r in page.fields_model.rows)
    assert mixed
    page.mismatches_only.setChecked(True)
    assert _objects(page) == ["bookings"]
    seen = []
    for i in range(page.records_model.rowCount()):
        rec = page.records_model.record(i)
        assert rec.flagged > 0
        page.records_view.selectRow(i)
        assert page.fields_model.rowCount() > 0
        assert all(r.flagged for r in page.fields_model.rows)
        seen.extend(page.fields_model.rows)
    assert sorted(map(id, seen)) == sorted(map(id, flagged))  # every flagged row, and only those
    misread = next(i for i, rec in enumerate(page.records_model.records) if rec.worst == "misread")
    page.records_view.selectRow(misread)
    assert page.fields_model.diff_row(0).verdict == "misread"
    _shot(wizard, "05s-sample-mismatches", tmp_path)

    # Field filter: one destination field; object filter: one object.
    page.mismatches_only.setChecked(False)
    key = f"{flagged[0].target_entity}.{flagged[0].field}"
    page.field_combo.setCurrentIndex(page.field_combo.findData(key))
    page.records_view.selectRow(0)
    assert page.fields_model.rows
    assert all(f"{r.target_entity}.{r.field}" == key for r in page.fields_model.rows)
    page.field_combo.setCurrentIndex(0)
    page.object_combo.setCurrentIndex(page.object_combo.findData("customers"))
    assert _objects(page) == ["customers"]
    assert all(rec.source_object == "customers" for rec in page.records_model.records)

    # Export: the whole diff (not the filtered view) as XLSX, written on the worker.
    out = tmp_path / "diff.xlsx"
    page.export_to(out)
    assert page.runner.busy
    with qtbot.waitSignal(page.runner.finished, timeout=60_000):
        pass
    driver.wait_idle(page)
    assert page.exported == out
    assert out.is_file()
    book = openpyxl.load_workbook(out, read_only=True)
    exported_rows = sum(1 for _ in book["Diff"].iter_rows(min_row=2))
    book.close()  # read-only books hold the file open until closed
    assert exported_rows == len(rows)

    # Signing off a sample that flags is the customer's call: it is recorded like any other.
    assert page.sign_off_as("tester")
    assert page.isComplete()


def test_cancel_stops_the_sample(qtbot, wizard, driver, tmp_path):
    page = _open_sample_page(wizard, driver, tmp_path)
    page.size_spin.setValue(500)
    driver.click(page.run_button)
    assert page.cancel_button.isEnabled()
    driver.click(page.cancel_button)
    driver.wait_idle(page)
    assert "cancelled" in page.banner.text().lower()
    assert not page.rows
    assert not page.isComplete()
    assert page.run_button.isEnabled()
