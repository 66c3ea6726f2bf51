"""The project file: one SQLite database holding everything about one migration.

Why SQLite (through sqlite-utils): a consultant e-mails or backs up one file; a crash mid-step
must leave it consistent, so every engine step runs inside ``Project.step()``, a single
transaction that is rolled back on any exception. The schema is versioned with
``PRAGMA user_version`` and upgraded by the ordered ``MIGRATIONS`` list.

Secrets never enter this file: connection settings hold only non-secret fields; the secret
itself lives in the OS keyring (see ``engine/target/credentials.py``).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from crmmigrator_gui.engine.errors import InputError, MigratorError, UsageError

SOURCES = ("dispatchpro", "qdispatch", "servicetracker", "octopuspro", "generic")
TARGETS = ("dynamics365", "salesforce")
EDITIONS = ("professional", "enterprise")

MIGRATIONS: list[str] = [
    # v1: the foundation schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE import_batches (
        id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, files TEXT NOT NULL, actor TEXT NOT NULL
    );
    CREATE TABLE source_objects (
        name TEXT PRIMARY KEY, files TEXT NOT NULL, columns TEXT NOT NULL, id_field TEXT NOT NULL,
        record_count INTEGER NOT NULL, batch_id INTEGER NOT NULL, details TEXT NOT NULL
    );
    CREATE TABLE staging (
        object TEXT NOT NULL, source_id TEXT NOT NULL, row_hash TEXT NOT NULL, batch_id INTEGER NOT NULL,
        file TEXT NOT NULL, row_number INTEGER NOT NULL, raw TEXT NOT NULL,
        PRIMARY KEY (object, source_id)
    );
    CREATE TABLE profiles (
        object TEXT NOT NULL, field TEXT NOT NULL, position INTEGER NOT NULL, inferred_type TEXT NOT NULL,
        fill_rate REAL NOT NULL, distinct_count INTEGER NOT NULL, max_length INTEGER NOT NULL,
        date_format TEXT, samples TEXT NOT NULL, top_values TEXT NOT NULL,
        PRIMARY KEY (object, field)
    );
    CREATE TABLE object_maps (
        source_object TEXT NOT NULL, part TEXT NOT NULL, target_entity TEXT NOT NULL, seed_row TEXT NOT NULL,
        status TEXT NOT NULL, confirmed_by TEXT, confirmed_at TEXT,
        PRIMARY KEY (source_object, part)
    );
    CREATE TABLE field_maps (
        id INTEGER PRIMARY KEY, source_object TEXT NOT NULL, source_field TEXT NOT NULL,
        target_entity TEXT, target_field TEXT, role TEXT, transform TEXT NOT NULL,
        confidence REAL NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL,
        confirmed_by TEXT, confirmed_at TEXT, origin TEXT NOT NULL,
        UNIQUE (source_object, source_field, target_entity, target_field)
    );
    CREATE TABLE value_maps (
        source_object TEXT NOT NULL, source_field TEXT NOT NULL, target_entity TEXT NOT NULL,
        target_field TEXT NOT NULL, source_value TEXT NOT NULL, count INTEGER NOT NULL,
        target_label TEXT, status TEXT NOT NULL, confirmed_by TEXT, confirmed_at TEXT,
        PRIMARY KEY (source_object, source_field, target_entity, target_field, source_value)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, actor TEXT NOT NULL, target TEXT NOT NULL, stats TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0, seconds REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE xref (
        target_entity TEXT NOT NULL, key TEXT NOT NULL, dest_id TEXT NOT NULL,
        source_object TEXT NOT NULL, source_id TEXT NOT NULL, part TEXT NOT NULL,
        PRIMARY KEY (target_entity, key)
    );
    CREATE TABLE crosswalk (
        id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, seq INTEGER NOT NULL,
        source_object TEXT NOT NULL, part TEXT NOT NULL, source_id TEXT NOT NULL,
        target_entity TEXT NOT NULL, key TEXT NOT NULL, dest_id TEXT, action TEXT NOT NULL,
        prior TEXT, written TEXT, error_code TEXT, error_message TEXT, at TEXT NOT NULL,
        rolled_back_at TEXT
    );
    CREATE INDEX crosswalk_run ON crosswalk (run_id, action);
    CREATE INDEX crosswalk_key ON crosswalk (target_entity, key);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # v2: the reviewed map. Notes and customer changes travel with the review workbook; value maps
    # carry the destination's stored value (Dataverse option integer / Salesforce picklist API
    # value); sign-offs pin the map fingerprint they were given for.
    """
    ALTER TABLE field_maps ADD COLUMN notes TEXT NOT NULL DEFAULT '';
    ALTER TABLE field_maps ADD COLUMN customer_change TEXT;
    ALTER TABLE value_maps ADD COLUMN target_value TEXT;
    ALTER TABLE value_maps ADD COLUMN notes TEXT NOT NULL DEFAULT '';
    ALTER TABLE value_maps ADD COLUMN customer_change TEXT;
    CREATE TABLE signoffs (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, map_fingerprint TEXT NOT NULL,
        sample_run_id INTEGER, note TEXT NOT NULL DEFAULT ''
    );
    """,
    # v3: trustworthy re-runs and deltas. The crosswalk keeps the staged row hash each outcome was built
    # from, so `load` again can retry only the failures and the not-yet-loaded; `source_changes` records
    # a delta's classification of every source record (new / changed / unchanged / deleted) with the row
    # it replaced, so a delta is reviewable, resumable and its deletions reportable.
    """
    ALTER TABLE crosswalk ADD COLUMN row_hash TEXT;
    CREATE TABLE source_changes (
        delta_id INTEGER NOT NULL, object TEXT NOT NULL, source_id TEXT NOT NULL, change TEXT NOT NULL,
        old_hash TEXT, new_hash TEXT, old_raw TEXT, run_id INTEGER, applied TEXT,
        PRIMARY KEY (delta_id, object, source_id)
    );
    CREATE INDEX source_changes_change ON source_changes (delta_id, change);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def now_iso() -> str:
    """UTC timestamp with an explicit offset, for every stored time."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def current_actor() -> str:
    """Who is working: the OS user (overridable with ``--by`` where the CLI offers it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Project:
    """One open project file.

    Attributes:
        path: the project file.
        db: the sqlite-utils database (autocommit off; use ``step()`` for writes).
    """

    def __init__(self, path: Path, db: sqlite_utils.Database) -> None:
        self.path = path
        self.db = db

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: Path | str, *, source: str, target: str, edition: str = "enterprise") -> Project:
        """Create a new project file; refuses to overwrite an existing one."""
        path = Path(path)
        if source not in SOURCES:
            raise UsageError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
        if target not in TARGETS:
            raise UsageError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        if edition not in EDITIONS:
            raise UsageError(f"unknown edition {edition!r}; choose one of {', '.join(EDITIONS)}")
        if path.exists():
            raise MigratorError(f"{path}: a project file already exists here")
        if path.parent and not path.parent.exists():
            raise MigratorError(f"{path.parent}: folder does not exist")
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        project = cls._open_db(tmp)
        with project.step("new", {"source": source, "target": target, "edition": edition}):
            project.set_meta("source", source)
            project.set_meta("target", target)
            project.set_meta("edition", edition)
            project.set_meta("created_at", now_iso())
            project.set_meta("publisher_prefix", "new")
        project.db.conn.close()
        tmp.replace(path)  # atomic: a half-created project never carries the real name
        return cls.open(path)

    @classmethod
    def open(cls, path: Path | str) -> Project:
        """Open an existing project, upgrading its schema if it is older."""
        path = Path(path)
        if not path.exists():
            raise MigratorError(f"{path}: no such project file (create it with `crmmigrator new`)")
        try:
            return cls._open_db(path)
        except sqlite3.DatabaseError as exc:
            raise MigratorError(f"{path}: not a CRM Migrator project file ({exc})") from exc

    @classmethod
    def _open_db(cls, path: Path) -> Project:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        db = sqlite_utils.Database(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise MigratorError(f"{path}: made by a newer CRM Migrator (schema v{version}); please upgrade the app")
        for index in range(version, SCHEMA_VERSION):
            conn.execute("BEGIN")
            try:
                for statement in _split_sql(MIGRATIONS[index]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {index + 1}")
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        return cls(path, db)

    def close(self) -> None:
        self.db.conn.close()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def step(self, action: str, detail: dict[str, Any] | None = None, actor: str | None = None) -> Iterator[None]:
        """Run one engine step as one transaction and record it in the audit log.

        On any exception nothing the step wrote survives, so the project is as it was.
        """
        with self.transaction():
            yield
            self.audit(action, detail or {}, actor=actor)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (nested calls join the outer one); rolled back on any exception."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def audit(self, action: str, detail: dict[str, Any], actor: str | None = None) -> None:
        """Append to the audit log (append-only: triggers refuse updates and deletes)."""
        self.db.conn.execute(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (now_iso(), actor or current_actor(), action, json.dumps(detail, default=str)),
        )

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self.db.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def source(self) -> str:
        return str(self.meta("source"))

    @property
    def target(self) -> str:
        return str(self.meta("target"))

    @property
    def edition(self) -> str:
        return str(self.meta("edition", "enterprise"))

    # ------------------------------------------------------------------ helpers
    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.db.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def source_object_names(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM source_objects ORDER BY name")]

    def staged_count(self, obj: str) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM staging WHERE object = ?", (obj,)) or 0)

    def staged_page(self, obj: str, offset: int, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """One page of staged rows in import order (for lazy table models)."""
        cursor = self.db.conn.execute(
            "SELECT source_id, raw FROM staging WHERE object = ? ORDER BY batch_id, row_number LIMIT ? OFFSET ?",
            (obj, limit, offset),
        )
        return [(sid, json.loads(raw)) for sid, raw in cursor]

    def source_columns(self, obj: str) -> list[str]:
        value = self.scalar("SELECT columns FROM source_objects WHERE name = ?", (obj,))
        return list(json.loads(value)) if value else []

    def iter_staged(self, obj: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (source_id, raw values) in import order."""
        cursor = self.db.conn.execute(
            "SELECT source_id, raw FROM staging WHERE object = ? ORDER BY batch_id, row_number", (obj,)
        )
        for source_id, raw in cursor:
            yield source_id, json.loads(raw)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.strip().splitlines():
        current.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if stripped.endswith("END;"):
                statements.append("\n".join(current))
                current, in_trigger = [], False
        elif stripped.endswith(";"):
            statements.append("\n".join(current))
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current))
    return statements


def require_file(path: Path) -> Path:
    """A friendly error for an input path that does not exist."""
    if not path.exists():
        raise InputError("no such file or folder", file=str(path))
    return path
