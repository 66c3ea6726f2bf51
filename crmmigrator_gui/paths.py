"""Where bundled resources and per-user data live (no Qt)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs


def resources_dir() -> Path:
    """The ``resources/`` folder: next to the package in a checkout, or inside a frozen bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def user_data_dir() -> Path:
    """Per-user data (mapping memory, default sandbox). ``CRMMIGRATOR_HOME`` overrides it for tests."""
    override = os.environ.get("CRMMIGRATOR_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir("crmmigrator", "CRM Migrator"))
    path.mkdir(parents=True, exist_ok=True)
    return path
