"""SQLite persistence: one table per sObject plus metadata, cursors, bulk jobs and blobs.

Each object table is ``o_<Name>(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, deleted INTEGER,
data TEXT)`` with the field values in a JSON object, so Tooling can add fields without ALTER TABLE while
``json_extract`` lets SOQL filter, sort and page inside SQLite (large tables are never loaded whole).
External-id, unique and idLookup fields get expression indexes. One connection is shared by all threads
behind a re-entrant lock; ``transaction()`` nests through SAVEPOINTs, which is what makes ``allOrNone``
rollback and per-record isolation cheap.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .catalog import Field, SObject

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
loads = json.loads


def table(obj: SObject | str) -> str:
    return f'"o_{obj if isinstance(obj, str) else obj.name}"'


def col(field: Field | str, alias: str = "") -> str:
    name = field if isinstance(field, str) else field.name
    return f"json_extract({alias + '.' if alias else ''}data,'$.{name}')"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _meta_ops (seq INTEGER PRIMARY KEY, op TEXT, payload TEXT);
CREATE TABLE IF NOT EXISTS _meta_values (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS _tokens (token TEXT PRIMARY KEY, kind TEXT, user_id TEXT, client_id TEXT,
    scope TEXT, issued REAL, extra TEXT);
CREATE TABLE IF NOT EXISTS _cursors (id TEXT PRIMARY KEY, soql TEXT, all_rows INTEGER, total INTEGER,
    batch INTEGER, version TEXT, tooling INTEGER);
CREATE TABLE IF NOT EXISTS _blobs (id TEXT PRIMARY KEY, data BLOB);
CREATE TABLE IF NOT EXISTS _jobs (id TEXT PRIMARY KEY, kind TEXT, info TEXT, content BLOB);
CREATE TABLE IF NOT EXISTS _job_rows (job TEXT, seq INTEGER, ok INTEGER, sf_id TEXT, created INTEGER,
    error TEXT, raw TEXT, PRIMARY KEY (job, seq));
"""


class Store:
    """Row and metadata persistence; every public method is thread-safe."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else ":memory:"
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self._depth = 0
        self._sp = 0
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self._counter = int(self.get_value("counter") or 0)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # -- transactions ---------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nested transaction: the outermost level is BEGIN/COMMIT, inner levels are SAVEPOINTs."""
        with self.lock:
            self._sp += 1
            name = f"sp{self._sp}"
            outer = self._depth == 0
            self.conn.execute("BEGIN" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                    self._counter = int(self.get_value("counter") or 0)
                else:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            self.conn.execute("COMMIT" if outer else f"RELEASE {name}")

    def execute(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    # -- metadata -------------------------------------------------------------------------------------------

    def get_value(self, name: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM _meta_values WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_value(self, name: str, value: str) -> None:
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO _meta_values VALUES (?,?)", (name, value))

    def next_counter(self) -> int:
        with self.lock:
            self._counter += 1
            self.set_value("counter", str(self._counter))
            return self._counter

    def log_op(self, op: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.conn.execute("INSERT INTO _meta_ops (op, payload) VALUES (?,?)", (op, dumps(payload)))

    def ops(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            rows = self.conn.execute("SELECT op, payload FROM _meta_ops ORDER BY seq").fetchall()
        return [(op, loads(payload)) for op, payload in rows]

    # -- object tables --------------------------------------------------------------------------------------

    def ensure(self, obj: SObject) -> None:
        with self.lock:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table(obj)} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "id TEXT UNIQUE NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL)"
            )
            for f in obj.fields.values():
                self.index(obj, f)

    def index(self, obj: SObject, f: Field) -> None:
        if not (f.external_id or f.unique or f.id_lookup or f.type == "reference") or f.name == "Id":
            return
        expr = col(f) if f.case_sensitive or f.type == "reference" else f"lower({col(f)})"
        with self.lock:
            self.conn.execute(f'CREATE INDEX IF NOT EXISTS "ix_{obj.name}_{f.name}" ON {table(obj)} ({expr})')

    def insert(self, obj: SObject, rid: str, row: dict[str, Any]) -> None:
        with self.lock:
            self.conn.execute(f"INSERT INTO {table(obj)} (id, deleted, data) VALUES (?,0,?)", (rid, dumps(row)))

    def update(self, obj: SObject, rid: str, row: dict[str, Any], deleted: bool | None = None) -> None:
        with self.lock:
            if deleted is None:
                self.conn.execute(f"UPDATE {table(obj)} SET data=? WHERE id=?", (dumps(row), rid))
            else:
                self.conn.execute(
                    f"UPDATE {table(obj)} SET data=?, deleted=? WHERE id=?", (dumps(row), int(deleted), rid)
                )

    def purge(self, obj: SObject, rid: str) -> None:
        with self.lock:
            self.conn.execute(f"DELETE FROM {table(obj)} WHERE id=?", (rid,))

    def get(self, obj: SObject, rid: str) -> tuple[dict[str, Any], bool] | None:
        with self.lock:
            row = self.conn.execute(f"SELECT data, deleted FROM {table(obj)} WHERE id=?", (rid,)).fetchone()
        return (loads(row[0]), bool(row[1])) if row else None

    def find(self, obj: SObject, f: Field, value: Any, *, limit: int = 3) -> list[tuple[str, dict[str, Any]]]:
        """Live rows whose field equals ``value`` (case-insensitive unless the field says otherwise)."""
        if f.case_sensitive or f.type == "reference" or not isinstance(value, str):
            expr, param = col(f), value
        else:
            expr, param = f"lower({col(f)})", value.lower()
        with self.lock:
            rows = self.conn.execute(
                f"SELECT id, data FROM {table(obj)} WHERE deleted=0 AND {expr}=? ORDER BY seq LIMIT ?",
                (param, limit),
            ).fetchall()
        return [(rid, loads(data)) for rid, data in rows]

    def children(self, obj: SObject, f: Field, parent_id: str) -> list[str]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT id FROM {table(obj)} WHERE deleted=0 AND {col(f)}=?", (parent_id,)
            ).fetchall()
        return [r[0] for r in rows]

    # -- blobs ----------------------------------------------------------------------------------------------

    def put_blob(self, rid: str, data: bytes) -> None:
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO _blobs VALUES (?,?)", (rid, data))

    def get_blob(self, rid: str) -> bytes | None:
        with self.lock:
            row = self.conn.execute("SELECT data FROM _blobs WHERE id=?", (rid,)).fetchone()
        return bytes(row[0]) if row else None
