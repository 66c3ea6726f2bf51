"""Fixtures that build the real wizard and drive it the way a person would.

The wizard gets temporary settings (INI files in ``tmp_path``), the in-memory keyring from
``tests/conftest.py`` and the embedded sandbox. Qt warnings fail the test, and so do top-level
widgets still alive after the wizard is closed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt, QtMsgType
from PySide6.QtWidgets import QApplication, QPushButton, QWizard

from crmmigrator_gui.gui.settings import GuiSettings
from crmmigrator_gui.gui.wizard import MigratorWizard
from crmmigrator_gui.paths import resources_dir

SAMPLE = resources_dir() / "samples" / "octopuspro" / "standard" / "octopuspro_export.xlsx"
ALLOWED_QT_MESSAGES = ("This plugin does not support propagateSizeHints()",)
WORK_TIMEOUT_MS = 120_000


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalisation once pytest has reported.

    PySide6 6.12 can abort in the final garbage collection ("bool_dealloc … refcount error in a C
    extension") after several wizards ran in one process — after every test has passed and been
    reported. The exit status pytest computed is kept, so failures still fail the run; only the
    teardown of Qt's C++ objects at interpreter exit is skipped. Tracked in the closing note.
    """
    import os
    import sys

    if _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[0])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def _qt_warnings_fail(qtlog) -> Iterator[None]:
    """STYLE rule 12: a Qt warning is a test failure unless explicitly allowed."""
    yield
    bad = [
        r.message
        for r in qtlog.records
        if r.type in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
        and not r.message.startswith(ALLOWED_QT_MESSAGES)
    ]
    if bad:
        pytest.fail("Qt warnings:\n" + "\n".join(bad))


@pytest.fixture
def gui_settings(tmp_path: Path) -> GuiSettings:
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    return GuiSettings()


@pytest.fixture
def sample_export(tmp_path: Path) -> list[Path]:
    """The standard OctopusPro sample, or a freshly generated export of ~300 records."""
    if SAMPLE.exists():
        return [SAMPLE]
    from crmmigrator_gui.engine.demo.octopuspro import generate_export

    return list(generate_export(tmp_path / "export", records=300).files)


@pytest.fixture
def wizard(qtbot, gui_settings: GuiSettings) -> Iterator[MigratorWizard]:
    """The real wizard, shown at the intended size; closed and checked for leaks afterwards."""
    before = set(QApplication.topLevelWidgets())
    window = MigratorWizard(settings=gui_settings)
    window.resize(1100, 720)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
    assert all(page.runner.thread is None or not page.runner.thread.isRunning() for page in window.pages())
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if w not in before]
    assert not leaked, f"top-level widgets leaked: {[type(w).__name__ for w in leaked]}"


class WizardDriver:
    """Clicks through the wizard and waits on the workers, as a consultant would."""

    def __init__(self, qtbot, wizard: MigratorWizard) -> None:
        self.qtbot = qtbot
        self.wizard = wizard

    def click(self, button: QPushButton) -> None:
        assert button.isEnabled(), f"{button.text()!r} is disabled"
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    def next(self) -> None:
        before = self.wizard.currentId()
        self.click(self.wizard.button(QWizard.WizardButton.NextButton))
        assert self.wizard.currentId() == before + 1, "Next did not advance"

    def preflight(self) -> None:
        """Pre-flight runs by itself when its page opens; go on once nothing blocks the load."""
        page = self.wizard.preflight_page
        self.wait_idle(page)
        assert page.isComplete(), page.banner.text()
        self.next()

    def sample(self, *, size: int = 100, keep: bool = False) -> None:
        """Run the sample on the Sample page, sign it off as "tester", roll it back (unless ``keep``), go on.

        Rolled back by default so the full load that follows creates every record itself, as the flows
        that predate the sample expect; the sign-off stays valid (it is pinned to the map, not the run).
        """
        page = self.wizard.sample_page
        self.wait_idle(page)  # the page may be re-reading an earlier sample
        page.size_spin.setValue(size)
        self.run(page.run_button, page)
        assert page.rows, page.banner.text()
        assert not page.isComplete()
        self.click(page.signoff_button)
        dialog = page.signoff_dialog
        assert dialog is not None, "no sign-off dialog"
        dialog.setTextValue("tester")
        dialog.accept()
        assert page.isComplete(), page.banner.text()
        assert "Signed off by tester" in page.signoff_label.text()
        if not keep:
            self.run(page.rollback_button, page)
            assert page.isComplete()
        self.next()

    def delta(self, paths: list[Path] | None = None) -> None:
        """On the Delta page: with ``paths``, detect the newer export and apply it (deletions reported only);
        without, skip the optional step. Then go on to the results."""
        page = self.wizard.delta_page
        self.wait_idle(page)
        if paths:
            page.add_paths(paths)
            self.run(page.detect_button, page)
            self.run(page.apply_button, page)
            assert page.result is not None, page.banner.text()
        assert page.isComplete()
        self.next()

    def wait_idle(self, page, timeout: int = WORK_TIMEOUT_MS) -> None:
        """Until the page's worker has ended and the page has handled its last signal."""
        self.qtbot.waitUntil(lambda: page.runner.idle, timeout=timeout)

    def run(self, button: QPushButton, page, timeout: int = WORK_TIMEOUT_MS):
        """Click a button that starts a worker, wait for ``finished`` and for the page to settle."""
        self.click(button)
        worker = page.runner.worker
        assert worker is not None, "no worker started"
        # The runner repeats the worker's signals on the GUI thread; pytest-qt's blocker is not
        # thread-safe (it would run, and stop its timer, on the worker thread).
        with self.qtbot.waitSignal(page.runner.finished, timeout=timeout) as blocker:
            blocker.connect(page.runner.failed)  # stop waiting at once if it fails
        self.wait_idle(page)
        assert blocker.signal_triggered
        assert worker.done
        assert not isinstance(blocker.args[0], str), f"{worker.name} failed: {blocker.args[0]}"
        return worker

    # ------------------------------------------------------------------ steps
    def new_project(self, path: Path) -> None:
        page = self.wizard.project_page
        page.choose_new(path)
        self.next()

    def import_files(self, paths: list[Path]) -> None:
        page = self.wizard.import_page
        page.add_paths(paths)
        self.run(page.import_button, page)
        assert page.isComplete()

    def automap_and_confirm(self) -> None:
        page = self.wizard.map_page
        self.run(page.automap_button, page)
        assert page.model.rowCount() > 0
        self.click(page.confirm_all_button)
        assert page.isComplete()


@pytest.fixture
def driver(qtbot, wizard: MigratorWizard) -> WizardDriver:
    return WizardDriver(qtbot, wizard)


def destination_keys(path: Path) -> dict[str, Counter]:
    """Every record at the destination, counted by its source id, per table the project wrote to (over HTTP)."""
    from crmmigrator_gui.engine.mapping.playbook import load_playbook
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.target.connection import destination

    project = Project.open(path)
    try:
        key = load_playbook(project.source, project.target, project.edition).key_column
        entities = [r["target_entity"] for r in project.query("SELECT DISTINCT target_entity FROM crosswalk")]
        counts = {}
        with destination(project) as client:
            for entity in entities:
                meta = client.entity(entity)
                counts[entity] = Counter(r[key] for r in client.query(meta.entity_set, select=[key]) if r.get(key))
        return counts
    finally:
        project.close()


@pytest.fixture
def each_record_once():
    """``check(project_path)``: no duplicates and no gaps at the destination, counted by source id.

    Every record the crosswalk holds as loaded (created/updated/unchanged with a destination id) and not deleted
    since is there exactly once, and no source id is there twice.
    """

    def check(path: Path) -> dict[str, Counter]:
        from crmmigrator_gui.engine.project.store import Project

        keys = destination_keys(path)
        for entity, counter in keys.items():
            twice = [k for k, n in counter.items() if n > 1]
            assert not twice, f"{entity}: duplicated {twice[:5]}"
        project = Project.open(path)
        try:
            loaded = project.query(
                "SELECT target_entity, key FROM crosswalk c WHERE action IN ('created','updated','unchanged') AND "
                "dest_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM crosswalk d WHERE d.key = c.key AND "
                "d.target_entity = c.target_entity AND d.action = 'deleted')"
            )
        finally:
            project.close()
        assert loaded
        missing = [(r["target_entity"], r["key"]) for r in loaded if keys[r["target_entity"]][r["key"]] != 1]
        assert not missing, missing[:5]
        return keys

    return check
