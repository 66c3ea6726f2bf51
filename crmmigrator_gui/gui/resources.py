"""Icons and other bundled files the GUI shows (looked up through ``crmmigrator_gui.paths``)."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from crmmigrator_gui.paths import resources_dir


@cache
def app_icon() -> QIcon:
    """The hand-drawn application icon (``resources/icons/crmmigrator.svg``)."""
    return QIcon(str(resources_dir() / "icons" / "crmmigrator.svg"))
