"""The Pre-flight page: runs on a worker, groups findings by severity then code, jumps to the field, gates Next.

The grouping is checked against the engine's own result (every finding lands once, under its severity and
code, with the counts the group rows show). Two tests replace the engine call with a controllable stand-in:
one to cancel a run half-way, one to show the grade and estimate cards with known figures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QAbstractItemView, QWizard

from crmmigrator_gui.engine.errors import CancelledError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.progress import ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.gui.pages import preflight_page as preflight_module
from crmmigrator_gui.gui.pages.preflight_page import SEVERITIES, FindingsModel, severity_of

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def prepared_project(path, export_files):
    """An imported and automapped (not confirmed) project, built with the engine alone."""
    project = Project.create(path, source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export_files)
        maps.run_automap(project)
    finally:
        project.close()
    return path


def open_map_page(wizard, driver, tmp_path, sample_export, *, confirm: bool):
    path = prepared_project(tmp_path / "acme.cmproj", sample_export)
    wizard.project_page.choose_existing(path)
    driver.next()
    driver.next()
    driver.next()
    if confirm:
        driver.click(wizard.map_page.confirm_all_button)
    return wizard.map_page


def wait_for_preflight(qtbot, page) -> dict:
    qtbot.waitUntil(lambda: page.runner.idle and page.result is not None, timeout=WAIT_MS)
    return page.result


def leaves(model: FindingsModel) -> list[tuple[str, str, dict]]:
    """(severity group, code group, finding) for every finding row in the tree."""
    found = []
    for s in range(model.rowCount()):
        top = model.index(s, 0)
        for c in range(model.rowCount(top)):
            code = model.index(c, 0, top)
            for f in range(model.rowCount(code)):
                found.append((model.node(top).key, model.node(code).key, model.finding(model.index(f, 0, code))))
    return found


def test_findings_group_by_severity_then_code_and_blocking_ones_hold_next(
    qtbot, wizard, driver, tmp_path, sample_export
):
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    mapper = open_map_page(wizard, driver, tmp_path, sample_export, confirm=False)
    assert not next_button.isEnabled()
    wizard.next()  # past the disabled button: what the pre-flight says about an unconfirmed map
    page = wizard.preflight_page
    assert wizard.currentPage() is page
    result = wait_for_preflight(qtbot, page)

    findings = result["findings"]
    assert any(f["code"] == "MAP_UNCONFIRMED" for f in findings)
    tree = leaves(page.model)
    assert len(tree) == len(findings)
    assert all(severity == severity_of(f) and code == f["code"] for severity, code, f in tree)
    # Groups in severity order, each with the count it shows.
    order = [page.model.node(page.model.index(i, 0)).key for i in range(page.model.rowCount())]
    assert order == [s for s in SEVERITIES if s in order]
    by_severity = Counter(severity_of(f) for f in findings)
    for i in range(page.model.rowCount()):
        top = page.model.index(i, 0)
        key = page.model.node(top).key
        assert page.model.data(top) == f"{SEVERITIES[key][0]} · {by_severity[key]:,}"
        for c in range(page.model.rowCount(top)):
            code = page.model.index(c, 0, top)
            count = sum(1 for s, k, _f in tree if s == key and k == page.model.node(code).key)
            assert page.model.rowCount(code) == count
            assert page.model.data(code).endswith(f"· {count:,}")
    assert page.model.counts()["blocking"] == result["blocking"] > 0
    assert not page.isComplete()
    assert not next_button.isEnabled()
    assert "blocking" in page.readiness.text()
    assert page.banner.property("kind") == "error"

    # Fix it on the Map page; coming back runs pre-flight again, and the gate opens.
    driver.click(wizard.button(QWizard.WizardButton.BackButton))
    assert wizard.currentPage() is mapper
    driver.click(mapper.confirm_all_button)
    driver.next()
    result = wait_for_preflight(qtbot, page)
    assert not any(f["code"] == "MAP_UNCONFIRMED" for f in result["findings"])
    if result["blocking"]:  # the data itself still has problems: the gate stays shut, for those
        assert not next_button.isEnabled()
    else:
        assert page.isComplete()
        assert next_button.isEnabled()
        assert "Ready" in page.readiness.text()


def test_double_click_on_a_finding_opens_its_field_on_the_map_page(qtbot, wizard, driver, tmp_path, sample_export):
    open_map_page(wizard, driver, tmp_path, sample_export, confirm=True)
    driver.next()
    page = wizard.preflight_page
    wait_for_preflight(qtbot, page)
    target = None
    for s in range(page.model.rowCount()):
        top = page.model.index(s, 0)
        for c in range(page.model.rowCount(top)):
            code = page.model.index(c, 0, top)
            for f in range(page.model.rowCount(code)):
                finding = page.model.finding(page.model.index(f, 0, code))
                if finding.get("object") and finding.get("field"):
                    target = page.model.index(f, FindingsModel.MESSAGE, code)
                    break
            if target is not None:
                break
        if target is not None:
            break
    assert target is not None, "the sample's pre-flight names no field"
    finding = page.model.finding(target)

    # A group row goes nowhere.
    assert not page.open_finding(page.model.index(0, 0))
    assert wizard.currentPage() is page

    page.view.expand(target.parent())
    page.view.scrollTo(target, QAbstractItemView.ScrollHint.PositionAtCenter)
    rect = page.view.visualRect(target)
    assert rect.isValid()
    # A person's double-click: the view only opens what the first press landed on.
    qtbot.mouseClick(page.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(page.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    mapper = wizard.map_page
    assert wizard.currentPage() is mapper
    row = mapper.selected_row()
    assert row is not None
    assert row["source_object"] == finding["object"]
    assert finding["field"] in (row["source_field"], row["target_field"])
    assert mapper.filter_edit.text() == f"{row['source_object']}.{row['source_field']}"
    assert "Pre-flight" in mapper.banner.text()


def test_cancel_stops_the_run_and_keeps_next_shut(qtbot, wizard, driver, tmp_path, sample_export, monkeypatch):
    threads = []

    def slow_preflight(project, *, progress, cancel):
        threads.append(threading.current_thread() is threading.main_thread())
        for done in range(1, 500):
            cancel.raise_if_cancelled()
            progress(ProgressEvent("preflight", "bookings", done, 500))
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(preflight_module, "preflight", slow_preflight)
    open_map_page(wizard, driver, tmp_path, sample_export, confirm=True)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    driver.next()  # pre-flight starts by itself
    page = wizard.preflight_page
    qtbot.waitUntil(lambda: page.progress.value() > 5, timeout=WAIT_MS)
    assert page.progress.isVisible()
    assert page.cancel_button.isEnabled()
    assert not page.run_button.isEnabled()
    with qtbot.waitSignal(page.runner.cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.runner.idle, timeout=WAIT_MS)
    timer.stop()
    assert threads == [False]  # on the worker, never on the GUI thread
    assert len(ticks) >= 5  # and the GUI kept running meanwhile
    assert "cancelled" in page.status.text()
    assert page.result is None
    assert not page.isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert page.run_button.isEnabled()


def test_grade_estimate_and_engine_blocking_flags_are_shown(
    qtbot, wizard, driver, tmp_path, sample_export, monkeypatch
):
    canned = {
        "blocking": 1,
        "warnings": 1,
        "findings": [
            {
                "severity": "warning",
                "blocking": True,
                "code": "TOO_LONG",
                "object": "customers",
                "field": "Business name",
                "source_id": "1001",
                "message": "161 characters; account.name holds 160",
            },
            {
                "severity": "warning",
                "blocking": False,
                "code": "BAD_PHONE",
                "object": "customers",
                "field": "Mobile",
                "source_id": "1002",
                "message": "'12' is not a phone number",
            },
            {
                "severity": "info",
                "code": "SCHEMA_MISSING",
                "object": None,
                "field": None,
                "source_id": None,
                "message": "3 columns are created at load",
            },
        ],
        "grade": {"level": "Standard", "reasons": ["9 objects", "2 custom tables"]},
        "estimate": {
            "requests": 1234,
            "load_minutes": 12,
            "timeline_days": [5, 8],
            "api_budget": {"limit": 6000, "window": "5 min", "share": 0.2},
            "basis": "1,150 records",
        },
    }

    def canned_preflight(project, *, progress, cancel):
        if maps.is_confirmed(project):
            return canned
        raise CancelledError("not expected")

    monkeypatch.setattr(preflight_module, "preflight", canned_preflight)
    open_map_page(wizard, driver, tmp_path, sample_export, confirm=True)
    driver.next()
    page = wizard.preflight_page
    wait_for_preflight(qtbot, page)
    groups = {page.model.node(page.model.index(i, 0)).key: page.model.index(i, 0) for i in range(page.model.rowCount())}
    assert list(groups) == ["blocking", "warning", "info"]
    blocking = groups["blocking"]
    assert page.model.node(page.model.index(0, 0, blocking)).key == "TOO_LONG"  # flagged blocking by the engine
    assert page.grade_card.isVisible()
    assert page.grade.text() == "Standard"
    assert "2 custom tables" in page.grade_body.text()
    assert page.estimate_card.isVisible()
    assert page.estimate.text() == "5–8 days"
    assert "1,234 API requests" in page.estimate_body.text()
    assert "20% of the API budget" in page.estimate_body.text()
    assert page.estimate_body.toolTip() == "1,150 records"
    assert not page.isComplete()
    assert page.model.index(0, 0, QModelIndex()).isValid()

    # A record-level blocker can be accepted knowingly (audited); a project-level one never can.
    assert page.accept_failures.isVisible()
    assert "1 record(s)" in page.accept_failures.text()
    page.accept_failures.setChecked(True)
    assert page.isComplete()
    audit = wizard.state.project.query("SELECT detail FROM audit WHERE action = 'preflight accepted with failures'")
    assert len(audit) == 1
    assert '"TOO_LONG"' in audit[0]["detail"]
    page.accept_failures.setChecked(False)
    assert not page.isComplete()

    canned["findings"].append(
        {"severity": "blocking", "code": "MAP_UNCONFIRMED", "object": None, "field": None, "source_id": None,
         "message": "the map has unconfirmed rows"}
    )  # fmt: skip
    canned["blocking"] = 2
    page.run_preflight()
    wait_for_preflight(qtbot, page)
    assert not page.accept_failures.isVisible()
    page.accept_failures.setChecked(True)
    assert not page.isComplete()
