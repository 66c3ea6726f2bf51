"""The project file: schema version, atomic steps, append-only audit."""

from __future__ import annotations

import sqlite3

import pytest

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.project.store import SCHEMA_VERSION, Project


def test_create_sets_schema_version_and_meta(tmp_path):
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365", edition="professional")
    assert project.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert (project.source, project.target, project.edition) == ("octopuspro", "dynamics365", "professional")
    assert [r["action"] for r in project.query("SELECT action FROM audit")] == ["new"]


def test_create_refuses_existing_file_and_bad_choices(tmp_path):
    path = tmp_path / "p.cmproj"
    Project.create(path, source="octopuspro", target="dynamics365").close()
    with pytest.raises(MigratorError, match="already exists"):
        Project.create(path, source="octopuspro", target="dynamics365")
    with pytest.raises(UsageError):
        Project.create(tmp_path / "q.cmproj", source="nope", target="dynamics365")
    assert not (tmp_path / "q.cmproj").exists()


def test_failed_step_leaves_project_unchanged(tmp_path):
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    audit_before = project.scalar("SELECT COUNT(*) FROM audit")

    def doomed_step() -> None:
        with project.step("doomed"):
            project.set_meta("edition", "professional")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        doomed_step()
    assert project.edition == "enterprise"
    assert project.scalar("SELECT COUNT(*) FROM audit") == audit_before


def test_audit_log_is_append_only(tmp_path):
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        project.db.conn.execute("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        project.db.conn.execute("DELETE FROM audit")


def test_open_rejects_non_project_and_newer_schema(tmp_path):
    junk = tmp_path / "junk.cmproj"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(MigratorError, match="not a CRM Migrator project"):
        Project.open(junk)
    path = tmp_path / "p.cmproj"
    Project.create(path, source="octopuspro", target="dynamics365").close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(MigratorError, match="newer CRM Migrator"):
        Project.open(path)
