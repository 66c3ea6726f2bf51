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


@pytest.fixture
def signed_off(cli):
    """The honest way to a full load's sign-off, through the CLI as a consultant does it.

    ``signed_off(project)`` runs ``sample`` (exit 0, or 4 when fields are flagged: ``clean=True`` demands
    0), ``signoff --by tester``, then rolls the sample back (``rollback --run``) unless ``keep_sample``:
    tests asserting that the full load creates every source record need the sample gone, or the full
    load adopts its records (updated/unchanged, not created). Returns the sample's JSON.
    """

    def run(project: str, *, keep_sample: bool = False, clean: bool = False, by: str = "tester") -> Any:
        sample = cli("sample", project, "--json")
        assert sample.code in ((0,) if clean else (0, 4)), sample.stderr
        data = sample.json
        assert data["kind"] == "sample"
        assert data["diff"] is not None, sample.stderr  # read back: there is something to sign off
        signed = cli("signoff", project, "--by", by, "--json")
        assert signed.code == 0, signed.stderr
        assert signed.json["sample_run_id"] == data["run_id"]
        if not keep_sample:
            back = cli("rollback", project, "--run", str(data["run_id"]), "--json")
            assert back.code == 0, back.stderr
        return data

    return run
