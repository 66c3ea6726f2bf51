"""The migration wizard: Project → Connect → Import → Map → Pre-flight → Sample → Load → Delta → Results.

The wizard holds one plain :class:`WizardState` (the project path and the Project opened for the
GUI thread). Pages read it in ``initializePage()``, gate Next with ``isComplete()``, and run all
long work through :mod:`crmmigrator_gui.gui.worker`, each worker opening its own connection.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QWidget, QWizard

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.gui.pages.base import BasePage
from crmmigrator_gui.gui.pages.connect_page import ConnectPage
from crmmigrator_gui.gui.pages.delta_page import DeltaPage
from crmmigrator_gui.gui.pages.import_page import ImportPage
from crmmigrator_gui.gui.pages.load_page import LoadPage
from crmmigrator_gui.gui.pages.map_page import MapPage
from crmmigrator_gui.gui.pages.preflight_page import PreflightPage
from crmmigrator_gui.gui.pages.project_page import ProjectPage
from crmmigrator_gui.gui.pages.results_page import ResultsPage
from crmmigrator_gui.gui.pages.sample_page import SamplePage
from crmmigrator_gui.gui.resources import app_icon
from crmmigrator_gui.gui.settings import GuiSettings


class WizardState:
    """The one plain object the pages share: which project, and its GUI-thread connection.

    Workers never use :attr:`project`; they open their own connection from :attr:`project_path`.
    """

    def __init__(self) -> None:
        self.project_path: Path | None = None
        self.project: Project | None = None

    def create(self, path: Path, *, source: str, target: str, edition: str) -> Project:
        self.close()
        project = Project.create(path, source=source, target=target, edition=edition)
        self.project_path, self.project = Path(path), project
        return project

    def open(self, path: Path) -> Project:
        if self.project is not None and self.project_path == Path(path):
            return self.project
        self.close()
        project = Project.open(path)
        self.project_path, self.project = Path(path), project
        return project

    def require_project(self) -> Project:
        if self.project is None:
            raise RuntimeError("no project is open")
        return self.project

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
        self.project = None
        self.project_path = None


class MigratorWizard(QWizard):
    """CRM Migrator's main window: one page per step of the migration."""

    PROJECT, CONNECT, IMPORT, MAP, PREFLIGHT, SAMPLE, LOAD, DELTA, RESULTS = range(9)

    def __init__(self, parent: QWidget | None = None, *, settings: GuiSettings | None = None) -> None:
        super().__init__(parent)
        self.state = WizardState()
        self.settings = settings or GuiSettings()
        self.setWindowTitle("CRM Migrator")
        self.setWindowIcon(app_icon())
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.setPixmap(QWizard.WizardPixmap.LogoPixmap, app_icon().pixmap(QSize(48, 48)))
        self.setTitleFormat(Qt.TextFormat.RichText)
        self.setSubTitleFormat(Qt.TextFormat.PlainText)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Close")
        self.project_page = ProjectPage(self.settings)
        self.connect_page = ConnectPage()
        self.import_page = ImportPage(self.settings)
        self.map_page = MapPage()
        self.preflight_page = PreflightPage()
        self.sample_page = SamplePage()
        self.load_page = LoadPage()
        self.delta_page = DeltaPage()
        self.results_page = ResultsPage()
        for page_id, page in enumerate(self.pages()):
            self.setPage(page_id, page)
        self.setStartId(self.PROJECT)
        self.resize(1100, 720)
        self.setMinimumSize(900, 600)
        geometry = self.settings.get("window/geometry")
        if geometry:
            self.restoreGeometry(geometry)

    def pages(self) -> list[BasePage]:
        return [
            self.project_page,
            self.connect_page,
            self.import_page,
            self.map_page,
            self.preflight_page,
            self.sample_page,
            self.load_page,
            self.delta_page,
            self.results_page,
        ]

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop every background thread (cancel, quit, wait), then close the project."""
        for page in self.pages():
            page.shutdown()
        self.state.close()

    def done(self, result: int) -> None:
        self.settings.set("window/geometry", bytes(self.saveGeometry().data()))
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
