"""Helpers for end-to-end CLI tests: the real command as a subprocess, with a temporary home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(tmp_path):
    env = dict(os.environ)
    env["CRMMIGRATOR_HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = str(REPO)
    env.pop("QT_QPA_PLATFORM", None)

    def run(*args: str, input: str | None = None, timeout: float = 600) -> Ran:
        proc = subprocess.run(
            [sys.executable, "-m", "crmmigrator_gui", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            input=input,
            timeout=timeout,
            check=False,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    run.env = env  # type: ignore[attr-defined]
    return run
