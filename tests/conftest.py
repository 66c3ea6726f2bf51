"""Test setup shared by every suite. Imports no Qt (engine tests run with Qt blocked).

- ``QT_QPA_PLATFORM=offscreen`` before anything can import Qt: without a display Qt aborts the run.
- ``CRMMIGRATOR_HOME`` points at a temporary folder for the whole session.
- Every test gets an in-memory keyring, so no test touches (or needs) the OS keyring.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring
import keyring.backend
import keyring.errors
import pytest


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that lives in a dict for the duration of one test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture(scope="session", autouse=True)
def crmmigrator_home(tmp_path_factory: pytest.TempPathFactory):
    """A throw-away per-user data folder for the whole session."""
    previous = os.environ.get("CRMMIGRATOR_HOME")
    home = tmp_path_factory.mktemp("crmmigrator-home")
    os.environ["CRMMIGRATOR_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("CRMMIGRATOR_HOME", None)
    else:
        os.environ["CRMMIGRATOR_HOME"] = previous


@pytest.fixture(autouse=True)
def fresh_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Each test gets its own per-user data folder, so the mapping memory one test confirms never raises the
    confidence of another test's proposals (tests that want a shared memory share it within the test)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def memory_keyring():
    """Install an in-memory keyring backend for one test, then restore the previous one."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
