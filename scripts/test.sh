#!/usr/bin/env bash
# The test command from the README: engine tests with Qt import blocked, then everything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .venv ]; then . .venv/bin/activate; fi
export QT_QPA_PLATFORM=offscreen
# 1) Engine, sandbox and CLI tests with PySide6 made unimportable: proves the engine needs no Qt.
python -m pytest -q -m "not gui" -p no:pytest-qt -W "ignore::pytest.PytestConfigWarning" -p tests._block_qt tests/engine tests/sandbox tests/cli
# 2) The GUI tests (pytest-qt, offscreen).
python -m pytest -q -m gui tests/gui
