"""Step 1, Project: create a new ``.cmproj`` file or open one, and pick the source and destination.

The form is designed in ``ui/project_page.ui`` (compiled by ``scripts/compile_ui.py``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QFileDialog, QGroupBox, QLabel, QVBoxLayout, QWidget

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping.playbook import playbook_path
from crmmigrator_gui.gui.generated.ui_project_page import Ui_ProjectPage
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.settings import GuiSettings

PROJECT_SUFFIX = ".cmproj"

#: (engine name, label, how it arrives). A source is offered as soon as its playbook ships; API sources
#: are extracted on the Import page.
_SOURCE_LABELS = [
    ("octopuspro", "OctopusPro (support export, CSV / Excel)", "files"),
    ("dispatchpro", "Dispatch Pro (ServiceTitan API)", "api"),
    ("qdispatch", "Q Dispatch (export files)", "files"),
    ("servicetracker", "ServiceTracker (Salesforce-hosted API)", "api"),
    ("generic", "Generic CSV / Excel / JSON export", "files"),
]


def _available_sources() -> list[tuple[str, str, bool]]:
    items = []
    for name, label, _kind in _SOURCE_LABELS:
        ready = playbook_path(name, "dynamics365").exists()
        items.append((name, label if ready else f"{label} — coming soon", ready))
    return items


SOURCES = _available_sources()
TARGETS = [
    ("dynamics365", "Dynamics 365 Sales", True),
    ("salesforce", "Salesforce Sales Cloud", True),
]
EDITIONS = [
    ("enterprise", "Enterprise", True),
    ("professional", "Professional", True),
]


def _fill(combo: QComboBox, items: list[tuple[str, str, bool]]) -> None:
    combo.clear()
    for name, label, enabled in items:
        combo.addItem(label, name)
        if not enabled:
            model = combo.model()
            assert isinstance(model, QStandardItemModel)
            item = model.item(combo.count() - 1)
            item.setEnabled(False)
            item.setToolTip("Not available in this release yet")


STEPS = [
    ("Connect", "the embedded sandbox, or the customer's Dynamics 365 org"),
    ("Import", "the export files, with a preview and a record count per object"),
    ("Map", "review the proposed field map and confirm it; nothing moves before that"),
    ("Load", "in dependency order, resumable, with progress per object"),
    ("Results", "reconcile counts and failures per object, and roll back if needed"),
]


def _steps_box() -> QGroupBox:
    box = QGroupBox("What happens next")
    rows = "".join(
        f"<tr><td style='padding:2px 14px 2px 0'><b>{n}. {name}</b></td><td style='padding:2px 0'>{what}</td></tr>"
        for n, (name, what) in enumerate(STEPS, start=2)
    )
    label = QLabel(f"<table>{rows}</table>")
    label.setTextFormat(Qt.TextFormat.RichText)
    QVBoxLayout(box).addWidget(label)
    return box


class ProjectPage(BasePage):
    """Create or open the project file; the rest of the wizard works on it."""

    def __init__(self, settings: GuiSettings) -> None:
        super().__init__(
            "Project",
            "Create a project file for this migration, or open one to continue where you left off.",
        )
        self.settings = settings
        self.form = QWidget(self)
        self.ui = Ui_ProjectPage()
        self.ui.setupUi(self.form)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form)
        _fill(self.ui.sourceCombo, SOURCES)
        _fill(self.ui.targetCombo, TARGETS)
        _fill(self.ui.editionCombo, EDITIONS)
        for combo in (self.ui.sourceCombo, self.ui.targetCombo, self.ui.editionCombo):
            combo.setMinimumWidth(380)
        hint(self.ui.fileHint)
        hint(self.ui.editionHint)
        self.ui.pageLayout.insertWidget(2, _steps_box())
        set_banner(self.ui.messageLabel, "")
        self.ui.newRadio.toggled.connect(self._mode_changed)
        self.ui.browseButton.clicked.connect(self.browse)
        self.ui.pathEdit.textChanged.connect(self._path_changed)
        self.ui.pathEdit.editingFinished.connect(self._path_committed)

    # ------------------------------------------------------------------ helpers for tests and callers
    def choose_new(
        self,
        path: Path,
        *,
        source: str = "octopuspro",
        target: str = "dynamics365",
        edition: str = "enterprise",
    ) -> None:
        self.ui.newRadio.setChecked(True)
        self.ui.pathEdit.setText(str(path))
        self._select(self.ui.sourceCombo, source)
        self._select(self.ui.targetCombo, target)
        self._select(self.ui.editionCombo, edition)

    def choose_existing(self, path: Path) -> None:
        self.ui.openRadio.setChecked(True)
        self.ui.pathEdit.setText(str(path))
        self._path_committed()

    @staticmethod
    def _select(combo: QComboBox, name: str) -> None:
        index = combo.findData(name)
        if index >= 0:
            combo.setCurrentIndex(index)

    @property
    def creating(self) -> bool:
        return self.ui.newRadio.isChecked()

    def _path(self) -> Path | None:
        text = self.ui.pathEdit.text().strip()
        if not text:
            return None
        path = Path(text).expanduser()
        if self.creating and path.suffix.lower() != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
        return path

    # ------------------------------------------------------------------ reactions
    def _mode_changed(self) -> None:
        for combo in (self.ui.sourceCombo, self.ui.targetCombo, self.ui.editionCombo):
            combo.setEnabled(self.creating)
        set_banner(self.ui.messageLabel, "")
        self._path_committed()

    def _path_changed(self) -> None:
        set_banner(self.ui.messageLabel, "")
        self.completeChanged.emit()

    def _path_committed(self) -> None:
        """When opening, show the existing project's pair read from the file itself."""
        path = self._path()
        if self.creating or path is None or not path.is_file():
            return
        try:
            project = self.state.open(path) if self.wizard() else None
        except MigratorError as exc:
            set_banner(self.ui.messageLabel, str(exc), "error")
            return
        if project is not None:
            self._select(self.ui.sourceCombo, project.source)
            self._select(self.ui.targetCombo, project.target)
            self._select(self.ui.editionCombo, project.edition)
            set_banner(
                self.ui.messageLabel,
                f"{path.name}: {len(project.source_object_names())} imported "
                "object(s); continue to pick up where the project left off.",
                "info",
            )

    def browse(self) -> None:
        start = self.settings.get("paths/last_project_folder")
        if self.creating:
            name, _ = QFileDialog.getSaveFileName(
                self,
                "New project file",
                str(Path(start) / "migration.cmproj"),
                "CRM Migrator projects (*.cmproj)",
            )
        else:
            name, _ = QFileDialog.getOpenFileName(
                self, "Open project file", start, "CRM Migrator projects (*.cmproj);;All files (*)"
            )
        if name:
            self.settings.set("paths/last_project_folder", str(Path(name).parent))
            self.ui.pathEdit.setText(name)
            self._path_committed()

    # ------------------------------------------------------------------ QWizardPage
    def isComplete(self) -> bool:
        return self._path() is not None and self.ui.sourceCombo.currentData() is not None

    def validatePage(self) -> bool:
        path = self._path()
        if path is None:
            return False
        try:
            if self.creating:
                if self.state.project is not None and self.state.project_path == path:
                    return True  # came back to this page: the project already exists
                source, target = self.ui.sourceCombo.currentData(), self.ui.targetCombo.currentData()
                if not playbook_path(source, target).exists():
                    raise MigratorError(
                        f"{self.ui.sourceCombo.currentText()} → {self.ui.targetCombo.currentText()} has no "
                        "playbook in this release yet; choose another destination"
                    )
                self.state.create(
                    path,
                    source=self.ui.sourceCombo.currentData(),
                    target=self.ui.targetCombo.currentData(),
                    edition=self.ui.editionCombo.currentData(),
                )
            else:
                self.state.open(path)
        except MigratorError as exc:
            set_banner(self.ui.messageLabel, str(exc), "error")
            return False
        self.settings.set("paths/last_project_folder", str(path.parent))
        self.ui.pathEdit.setText(str(path))
        return True
