"""GUI preferences: each setting declared once, stored with QSettings, never a secret.

QSettings stays inside this adapter. The schema version lets a later release rename or convert a
setting in :data:`UPGRADES` instead of reading stale values. Credentials never come here: they
go to the OS keyring through the engine (``engine/target/connection.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

ORGANIZATION = "CRM Migrator"
APPLICATION = "CRM Migrator"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Setting:
    """One persisted preference."""

    key: str
    type: type
    default: Any
    doc: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("paths/last_project_folder", str, str(Path.home()), "Folder of the last project file chosen"),
        Setting("paths/last_import_folder", str, str(Path.home()), "Folder of the last export file imported"),
        Setting("window/geometry", bytes, b"", "Wizard window geometry"),
    )
}

#: ``{from_version: upgrade(qsettings)}``, applied in order up to :data:`SCHEMA_VERSION`.
UPGRADES: dict[int, Callable[[QSettings], None]] = {}


class GuiSettings:
    """Typed access to the declared settings (INI format, so tests can point it at a temp folder)."""

    def __init__(self) -> None:
        self._qs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)
        version = int(self._qs.value("schema_version", 0) or 0)
        for from_version in range(version, SCHEMA_VERSION):
            upgrade = UPGRADES.get(from_version)
            if upgrade:
                upgrade(self._qs)
        if version != SCHEMA_VERSION:
            self._qs.setValue("schema_version", SCHEMA_VERSION)

    def get(self, key: str) -> Any:
        setting = SETTINGS[key]
        value = self._qs.value(key, setting.default)
        if setting.type is bytes:
            return bytes(value) if value else b""
        try:
            return setting.type(value)
        except (TypeError, ValueError):
            return setting.default

    def set(self, key: str, value: Any) -> None:
        setting = SETTINGS[key]
        if not isinstance(value, setting.type):
            raise TypeError(f"setting {key} takes {setting.type.__name__}")
        self._qs.setValue(key, value)

    def sync(self) -> None:
        self._qs.sync()
