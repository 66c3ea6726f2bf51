"""The desktop application: ``crmmigrator`` with no arguments ends up here."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from crmmigrator_gui.gui.resources import app_icon
from crmmigrator_gui.gui.settings import APPLICATION, ORGANIZATION
from crmmigrator_gui.gui.wizard import MigratorWizard


def run_app(argv: list[str] | None = None) -> int:
    """Create the QApplication, show the wizard and run the event loop; returns its exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1] if argv is None else argv)
    assert isinstance(app, QApplication)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    app.setDesktopFileName("crmmigrator")
    app.setWindowIcon(app_icon())
    wizard = MigratorWizard()
    wizard.show()
    try:
        return app.exec()
    finally:
        wizard.shutdown()
        wizard.deleteLater()
