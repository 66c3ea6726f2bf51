"""pytest plugin (``-p tests._block_qt``): make PySide6 unimportable for the engine test run.

This proves STYLE rule 13: the engine, sandbox and CLI tests pass with Qt absent.
"""

from __future__ import annotations

import importlib.abc
import sys


class _BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname == "PySide6" or fullname.startswith(("PySide6.", "shiboken6", "pytestqt")):
            raise ImportError(f"{fullname} is blocked: engine tests must not need Qt")
        return None


sys.meta_path.insert(0, _BlockQt())
