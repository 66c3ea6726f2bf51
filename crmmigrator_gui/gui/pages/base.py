"""What every wizard page shares: access to the wizard's state, a task runner, an inline banner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QWizardPage

from crmmigrator_gui.gui.worker import TaskRunner

if TYPE_CHECKING:
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.gui.wizard import MigratorWizard, WizardState

_BANNER_STYLES = {
    "error": "background:#fdecea; color:#8a1c12; border:1px solid #f5c2bd;",
    "warning": "background:#fff6e0; color:#6b4a00; border:1px solid #f2d9a0;",
    "success": "background:#e8f5ec; color:#1c5e33; border:1px solid #b9e0c6;",
    "info": "background:#e8f0fb; color:#1d3f6e; border:1px solid #bcd0ee;",
}


def set_banner(label: QLabel, text: str, kind: str = "info") -> None:
    """Show a message inline (never a modal dialog: the customer may be watching, and tests can read it)."""
    label.setText(text)
    label.setVisible(bool(text))
    label.setProperty("kind", kind if text else "")
    label.setStyleSheet(f"QLabel {{ {_BANNER_STYLES[kind]} border-radius:4px; padding:8px 10px; }}" if text else "")


def hint(label: QLabel) -> QLabel:
    """Style a label as secondary, explanatory text."""
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


class BasePage(QWizardPage):
    """A wizard page bound to the wizard's :class:`WizardState`.

    Each page owns a :class:`TaskRunner` for its background work; the wizard calls
    :meth:`shutdown` on close so no thread outlives the window.
    """

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__()
        self.plain_title = title
        self.setTitle(f"<span style='font-size:13pt; font-weight:600'>{title}</span>")
        self.setSubTitle(subtitle)
        self.runner = TaskRunner(self)
        self.runner.busy_changed.connect(self._on_busy_changed)

    # ------------------------------------------------------------------ wizard state
    def migrator(self) -> MigratorWizard:
        from crmmigrator_gui.gui.wizard import MigratorWizard

        wizard = self.wizard()
        assert isinstance(wizard, MigratorWizard)
        return wizard

    @property
    def state(self) -> WizardState:
        return self.migrator().state

    @property
    def project(self) -> Project:
        return self.state.require_project()

    # ------------------------------------------------------------------ background work
    def _on_busy_changed(self, busy: bool) -> None:
        self.busy_changed(busy)
        self.completeChanged.emit()

    def busy_changed(self, busy: bool) -> None:
        """Pages override this to enable or disable their controls."""

    def shutdown(self) -> None:
        self.runner.shutdown()
