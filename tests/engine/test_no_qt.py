"""No module of the engine, the sandbox or the CLI imports Qt (run with Qt blocked by tests/_block_qt.py)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import crmmigrator_gui.cli
import crmmigrator_gui.engine
import crmmigrator_gui.sandbox


def test_every_engine_module_imports_without_qt():
    names = []
    for package in (crmmigrator_gui.engine, crmmigrator_gui.sandbox, crmmigrator_gui.cli):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
            names.append(info.name)
    assert len(names) > 30
    assert not [m for m in sys.modules if m == "PySide6" or m.startswith("PySide6.")]
