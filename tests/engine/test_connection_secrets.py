"""Secrets go only to the OS keyring; with no keyring we refuse instead of writing a file."""

from __future__ import annotations

import keyring
import keyring.backend
import pytest
from keyring.backends import fail

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target import connection


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "k.cmproj", source="octopuspro", target="dynamics365")
    yield p
    p.close()


def test_secret_lands_in_keyring_not_in_project(project):
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        secret = "s3cr3t-Value-Which-Must-Not-Leak"
        connection.configure(project, "target", url="https://contoso.crm6.dynamics.com", auth="client-credentials",
                             tenant="contoso.onmicrosoft.com", client_id="app-123", token_url=None, username=None,
                             secret=secret)
        assert secret in backend.store.values()
        assert connection.load_secret(project, "target", "app-123") == secret
        project.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for path in project.path.parent.iterdir():
            assert secret.encode() not in path.read_bytes(), path
        assert connection.settings(project).url == "https://contoso.crm6.dynamics.com"
    finally:
        keyring.set_keyring(previous)


def test_no_keyring_refuses_clearly_and_changes_nothing(project):
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        before = project.meta("target_connection")
        with pytest.raises(MigratorError, match="no OS keyring"):
            connection.configure(project, "target", url="https://contoso.crm.dynamics.com", auth="static-token",
                                 tenant=None, client_id=None, token_url=None, username=None, secret="tok")
        assert project.meta("target_connection") == before
    finally:
        keyring.set_keyring(previous)
