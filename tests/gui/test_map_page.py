"""The Map page: filters, bulk accept, the value-map and transform editors, the review workbook round trip.

Every assertion on the map reads it back through the engine (``maps``, ``values``), not from the widgets,
so an edit that only changed the screen fails. Slow work must run on a worker thread: the last test spies
on the engine functions and checks which thread called them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import openpyxl
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QStyleOptionViewItem

from crmmigrator_gui.engine.mapping import maps, values, workbook
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.gui.models import LOW_CONFIDENCE, FieldMapModel
from crmmigrator_gui.gui.pages import map_tasks
from crmmigrator_gui.gui.pages.map_editors import ValueMapModel

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def prepared_project(path: Path, export_files: list[Path]) -> Path:
    """An imported and automapped (not confirmed) project, built with the engine alone."""
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export_files)
        maps.run_automap(project)
    finally:
        project.close()
    return path


@pytest.fixture
def page(wizard, driver, tmp_path, sample_export):
    """The Map page of an automapped OctopusPro project, with the destination's metadata read."""
    path = prepared_project(tmp_path / "acme.cmproj", sample_export)
    wizard.project_page.choose_existing(path)
    driver.next()
    driver.next()
    driver.next()
    mapper = wizard.map_page
    assert wizard.currentPage() is mapper
    driver.qtbot.waitUntil(lambda: mapper.meta_runner.idle and mapper.runner.idle, timeout=WAIT_MS)
    return mapper


def shown(page) -> list[dict]:
    proxy = page.proxy
    return [proxy.data(proxy.index(i, 0), Qt.ItemDataRole.UserRole) for i in range(proxy.rowCount())]


def shown_ids(page) -> set[int]:
    return {r["id"] for r in shown(page)}


def stored(page) -> dict[int, dict]:
    return {r["id"]: r for r in maps.field_rows_with_ids(page.project)}


def run_and_wait(qtbot, page, start) -> object:
    """Start a worker through ``start()`` and return what it finished with (fails on a failure)."""
    with qtbot.waitSignal(page.runner.finished, timeout=WAIT_MS) as blocker:
        blocker.connect(page.runner.failed)
        start()
    qtbot.waitUntil(lambda: page.runner.idle, timeout=WAIT_MS)
    assert not isinstance(blocker.args[0], str), blocker.args[0]
    return blocker.args[0]


# ---------------------------------------------------------------------------------------------- filters
def test_filters_show_exactly_the_rows_they_name(qtbot, page):
    project = page.project
    labels = next(r for r in page.model.rows() if (r["source_object"], r["source_field"]) == ("customers", "Labels"))
    maps.retarget_row(project, labels["id"], "-", actor="tester")  # one column left out
    gate = next(r for r in page.model.rows() if (r["source_object"], r["source_field"]) == ("customers", "Gate code"))
    with project.step("test: a guess", {}):  # the auto-mapper's calibration moves; pin one low-confidence row
        project.db.conn.execute("UPDATE field_maps SET confidence = 0.55 WHERE id = ?", (gate["id"],))
    page.model.refresh()
    page._map_changed()
    rows = list(stored(page).values())

    def click(key: str) -> set[int]:
        qtbot.mouseClick(page.chips[key], Qt.MouseButton.LeftButton)
        assert page.current_filter() == key
        return shown_ids(page)

    assert click("all") == {r["id"] for r in rows}
    assert click("review") == {r["id"] for r in rows if r["status"] == "proposed"}
    unmapped = click("unmapped")
    assert unmapped == {r["id"] for r in rows if not r["target_entity"]}
    assert labels["id"] in unmapped
    low = {r["id"] for r in rows if r["target_entity"] and r["confidence"] < LOW_CONFIDENCE}
    assert gate["id"] in low
    assert click("low") == low
    assert click("customer") == set()  # nothing came back from the customer yet

    # Required: read from the destination's metadata on a worker.
    required = page.model.required
    assert ("account", "name") in required
    assert ("contact", "lastname") in required
    assert ("account", "telephone1") not in required
    expected = {r["id"] for r in rows if r["target_entity"] and (r["target_entity"], r["target_field"]) in required}
    got = click("required")
    assert got == expected
    assert any(stored(page)[i]["target_field"] == "name" for i in got)
    assert f"· {len(expected)}" in page.chips["required"].text()

    # Search narrows any filter; object.field finds one column.
    click("all")
    page.filter_edit.setText("customers.Email")
    assert {(r["source_object"], r["source_field"]) for r in shown(page)} == {("customers", "Email")}
    page.filter_edit.setText("definitely-not-a-column")
    assert shown(page) == []
    assert page.empty.isVisible()


# ---------------------------------------------------------------------------------------------- bulk accept
def test_accept_above_threshold_confirms_only_rows_at_or_above_it(qtbot, driver, page):
    before = stored(page)
    proposed = [r for r in before.values() if r["status"] == "proposed"]
    confidences = sorted({r["confidence"] for r in proposed})
    assert len(confidences) > 1
    # A threshold some rows sit exactly on (when a confidence has two decimals, as the spin box does),
    # else one between two levels; either way some rows fall below it.
    exact = [c for c in confidences[1:] if round(c, 2) == c]
    threshold = exact[-1] if exact else round((confidences[-2] + confidences[-1]) / 2, 2)
    page.threshold.setValue(threshold)
    assert page.threshold.value() == threshold
    driver.click(page.accept_button)

    after = stored(page)
    for row in proposed:
        expected = "confirmed" if row["confidence"] >= threshold else "proposed"
        assert after[row["id"]]["status"] == expected, row
    at = [r for r in proposed if r["confidence"] == threshold]
    assert all(after[r["id"]]["status"] == "confirmed" for r in at)
    assert any(after[r["id"]]["status"] == "confirmed" for r in proposed)
    below = {r["id"] for r in proposed if r["confidence"] < threshold}
    assert below
    assert page.current_filter() == "review"  # what is left to look at
    assert shown_ids(page) == below
    assert f"{threshold:.0%}" in page.banner.text()
    assert not page.isComplete()

    driver.click(page.confirm_all_button)
    assert maps.is_confirmed(page.project)
    assert page.isComplete()


# ---------------------------------------------------------------------------------------------- value maps
def test_value_edit_goes_through_the_engine_and_persists(qtbot, page, tmp_path):
    # invoice.statuscode: a standard Dataverse status column whose options come from its metadata.
    assert page.select_source_row(page.model.find("invoices", "Status"))
    editor = page.value_editor
    model = editor.model
    assert model.rowCount() > 1
    assert page.tabs.tabText(0) == f"Value map ({model.rowCount()})"
    row_number = next(i for i in range(model.rowCount()) if len(model.options(i)) > 1)
    row = model.row(row_number)
    new_label = next(o for o in model.options(row_number) if o != row["target_label"])

    # Through the view's own delegate, as a double-click would.
    index = model.index(row_number, ValueMapModel.OPTION)
    delegate = editor.view.itemDelegateForColumn(ValueMapModel.OPTION)
    combo = delegate.createEditor(editor.view.viewport(), QStyleOptionViewItem(), index)
    delegate.setEditorData(combo, index)
    assert combo.currentText() == row["target_label"]
    combo.setCurrentText(new_label)
    delegate.setModelData(combo, model, index)
    combo.deleteLater()

    saved = {r["id"]: r for r in values.value_rows(page.project, source_object="invoices", source_field="Status")}
    assert saved[row["id"]]["target_label"] == new_label
    assert saved[row["id"]]["status"] == "confirmed"
    assert saved[row["id"]]["target_value"] not in (None, "")  # the option's integer, from the metadata

    # The engine refuses a label the destination does not have; the banner says why.
    assert not model.setData(model.index(row_number, ValueMapModel.OPTION), "Not An Option At All")
    assert page.banner.property("kind") == "error"
    assert page.banner.text()

    # It is in the project file, not only on screen.
    other = Project.open(page.state.project_path)
    try:
        again = {r["id"]: r for r in values.value_rows(other, source_object="invoices", source_field="Status")}
    finally:
        other.close()
    assert again[row["id"]]["target_label"] == new_label


def test_add_option_creates_it_at_the_destination_and_uses_it(qtbot, page):
    assert page.select_source_row(page.model.find("bookings", "Status"))
    row = page.value_editor.model.row(0)
    option = run_and_wait(
        qtbot,
        page,
        lambda: page.add_option(row["target_entity"], row["target_field"], "Awaiting Parts", row["id"]),
    )
    assert option["label"] == "Awaiting Parts"
    saved = {r["id"]: r for r in values.value_rows(page.project, source_object="bookings", source_field="Status")}
    assert saved[row["id"]]["target_label"] == "Awaiting Parts"
    assert saved[row["id"]]["status"] == "confirmed"
    assert "Awaiting Parts" in [o["label"] for o in saved[row["id"]]["options"]]
    assert "Awaiting Parts" in page.value_editor.model.options(0)


# ---------------------------------------------------------------------------------------------- transforms
def test_transform_preview_follows_edits_and_apply_stores_it(qtbot, page):
    assert page.select_source_row(page.model.find("customers", "Business name"))
    page.tabs.setCurrentWidget(page.transform_editor)
    editor = page.transform_editor
    qtbot.waitUntil(lambda: editor.preview_model.rowCount() > 0, timeout=5_000)
    raws = [editor.preview_model.row(i)["raw"] for i in range(editor.preview_model.rowCount())]
    assert any(str(r).strip() for r in raws)

    # Upper case: the preview follows after the debounce, once for a burst of edits.
    case = next(p for p in editor._params if p.name == "case")
    previews = editor.previews
    case.widget.setCurrentText("lower")
    case.widget.setCurrentText("title")
    case.widget.setCurrentText("upper")
    assert editor.previews == previews  # nothing ran yet: typing never waits on the engine
    qtbot.waitUntil(lambda: editor.previews == previews + 1, timeout=5_000)
    shown_values = [editor.preview_model.row(i) for i in range(editor.preview_model.rowCount())]
    for item in shown_values:
        if item["raw"] not in (None, ""):
            assert item["value"] == " ".join(str(item["raw"]).split()).upper(), item
    assert editor.apply_button.isEnabled()

    # A type that cannot read these values shows the problems, row by row.
    editor.type_combo.setCurrentIndex(editor.type_combo.findData("money"))
    model = editor.preview_model
    qtbot.waitUntil(lambda: any(model.row(i).get("error") for i in range(model.rowCount())), timeout=5_000)
    assert "cannot be converted" in editor.preview_status.text()

    # Back to upper-case text, then Apply: the engine stores the spec and the row is confirmed.
    editor.type_combo.setCurrentIndex(editor.type_combo.findData("text"))
    next(p for p in editor._params if p.name == "case").widget.setCurrentText("upper")
    row_id = page.selected_row()["id"]
    spec = editor.spec()
    assert spec["case"] == "upper"
    qtbot.mouseClick(editor.apply_button, Qt.MouseButton.LeftButton)
    full = {
        (r["source_object"], r["source_field"], r["target_entity"], r["target_field"]): r
        for r in maps.field_rows(page.project)
    }
    saved = stored(page)[row_id]
    stored_spec = full[(saved["source_object"], saved["source_field"], saved["target_entity"], saved["target_field"])]
    assert stored_spec["transform"]["case"] == "upper"
    assert saved["status"] == "confirmed"
    assert "saved" in page.banner.text()
    assert not editor.apply_button.isEnabled()  # nothing left unsaved

    # A row that builds the record's key is shown, previewed, but not retyped.
    key_row = next(r for r in page.model.rows() if r["transform"].get("type") == "key")
    assert page.select_source_row(page.model.row_number(key_row["id"]))
    assert not editor.type_combo.isEnabled()
    assert "fixed" in editor.title.text()
    assert editor.current_type() == "key"
    assert page.select_source_row(page.model.find("customers", "Business name"))
    assert editor.type_combo.isEnabled()
    assert editor.type_combo.findData("key") < 0  # not offered to other rows


# ---------------------------------------------------------------------------------------------- review workbook
def _edit_review(path: Path) -> None:
    """What a customer does in Excel: a note and another destination on one field, another option for one value."""
    book = openpyxl.load_workbook(path)
    offered = next(c for c in book[workbook.LISTS].iter_cols(values_only=True) if c[0] == "customers destinations")
    assert "account.description" in offered  # the dropdown the customer picks from
    _set_cell(book["customers"], workbook.FIELD, "Gate code", workbook.NOTES, "Gate codes are private: keep them off")
    _set_cell(book["customers"], workbook.FIELD, "Gate code", workbook.DEST, "account.description")
    _set_cell(book["bookings values"], workbook.VALUE, "Enroute", workbook.DEST_VALUE, "In Progress")
    book.save(path)


def _set_cell(sheet, key_column: str, key: str, column: str, value: str) -> None:
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[header.index(key_column)].value == key:
            row[header.index(column)].value = value
            return
    raise AssertionError(f"no {key!r} row on sheet {sheet.title!r}")


def _snapshot(project: Project) -> tuple:
    view = maps.show_map(project)
    return (
        [(r["target_entity"], r["target_field"], r["status"]) for r in view["fields"]],
        [(r["source_value"], r["target_label"], r["status"], r.get("notes")) for r in view["value_maps"]],
        [(r["id"], r["notes"], r["customer_change"]) for r in _field_rows(project)],
    )


def _field_rows(project: Project) -> list[dict]:
    """Field rows with notes and customer changes, read from the project file."""
    model = FieldMapModel()
    model.set_project(project)
    return model.rows()


def test_review_round_trip_shows_the_diff_and_applies_only_on_apply(qtbot, page, tmp_path):
    path = tmp_path / "acme-review.xlsx"
    result = run_and_wait(qtbot, page, lambda: page.export_review_to(path))
    assert path.is_file()
    assert result["rows"] > 0
    assert "Saved" in page.banner.text()
    _edit_review(path)
    before = _snapshot(page.project)

    # Import, look, don't apply: the project is as it was.
    run_and_wait(qtbot, page, lambda: page.import_review_from(path))
    dialog = page.diff_dialog
    assert dialog is not None
    assert dialog.isVisible()
    changes = [dialog.model.row(i) for i in range(dialog.model.rowCount())]
    assert sorted(c["kind"] for c in changes) == ["field", "note", "value"]
    assert any(c["after"] == "In Progress" and c["source_value"] == "Enroute" for c in changes)
    assert dialog.apply_button.isEnabled()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.diff_dialog is None, timeout=5_000)
    assert page.runner.idle
    assert _snapshot(page.project) == before
    assert "not applied" in page.banner.text()

    # Import again and apply: exactly those changes land, and the grid can filter them.
    run_and_wait(qtbot, page, lambda: page.import_review_from(path))
    dialog = page.diff_dialog
    with qtbot.waitSignal(page.runner.finished, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.runner.idle, timeout=WAIT_MS)
    assert _snapshot(page.project) != before
    status = {r["source_value"]: r for r in values.value_rows(page.project, source_object="bookings")}
    assert status["Enroute"]["target_label"] == "In Progress"
    gate = next(r for r in _field_rows(page.project) if r["source_field"] == "Gate code")
    assert (gate["target_entity"], gate["target_field"]) == ("account", "description")
    assert "account.description" in gate["customer_change"]
    assert status["Enroute"]["customer_change"]
    assert gate["notes"] == "Gate codes are private: keep them off"
    qtbot.mouseClick(page.chips["customer"], Qt.MouseButton.LeftButton)
    status_row = next(
        r for r in _field_rows(page.project) if (r["source_object"], r["source_field"]) == ("bookings", "Status")
    )
    assert shown_ids(page) == {gate["id"], status_row["id"]}  # the field changed, and the one whose values did
    assert "Applied" in page.banner.text()


def test_a_workbook_with_errors_cannot_be_applied(qtbot, page, tmp_path):
    path = tmp_path / "broken.xlsx"
    run_and_wait(qtbot, page, lambda: page.export_review_to(path))
    book = openpyxl.load_workbook(path)
    _set_cell(book["invoices values"], workbook.VALUE, "Paid", workbook.DEST_VALUE, "No Such Option Anywhere")
    book.save(path)
    before = _snapshot(page.project)
    run_and_wait(qtbot, page, lambda: page.import_review_from(path))
    dialog = page.diff_dialog
    assert dialog is not None
    assert not dialog.apply_button.isEnabled()
    assert "problem" in dialog.errors.text()
    dialog.reject()
    assert _snapshot(page.project) == before


# ---------------------------------------------------------------------------------------------- never block
def test_slow_work_runs_on_a_worker_and_the_gui_keeps_ticking(qtbot, page, tmp_path, monkeypatch):
    on_gui_thread: dict[str, bool] = {}

    def spy(name, function, delay=0.0):
        def wrapper(*args, **kwargs):
            on_gui_thread[name] = threading.current_thread() is threading.main_thread()
            time.sleep(delay)
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(maps, "run_automap", spy("automap", maps.run_automap))
    monkeypatch.setattr(workbook, "export_review", spy("export", workbook.export_review, delay=0.6))
    monkeypatch.setattr(workbook, "read_review", spy("read", workbook.read_review))
    monkeypatch.setattr(values, "add_option", spy("add option", values.add_option))
    monkeypatch.setattr(map_tasks, "destination", spy("metadata", map_tasks.destination))

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    run_and_wait(qtbot, page, lambda: page.export_review_to(tmp_path / "slow.xlsx"))
    timer.stop()
    assert len(ticks) >= 10, "the event loop stalled while the workbook was written"

    run_and_wait(qtbot, page, page.run_automap)
    run_and_wait(qtbot, page, lambda: page.import_review_from(tmp_path / "slow.xlsx"))
    assert page.select_source_row(page.model.find("bookings", "Status"))
    row = page.value_editor.model.row(0)
    run_and_wait(qtbot, page, lambda: page.add_option(row["target_entity"], row["target_field"], "Parked"))
    page._required_cache.clear()
    page._refresh_required()
    qtbot.waitUntil(lambda: page.meta_runner.idle and "metadata" in on_gui_thread, timeout=WAIT_MS)

    assert set(on_gui_thread) == {"automap", "export", "read", "add option", "metadata"}
    assert not any(on_gui_thread.values()), on_gui_thread
