"""SQLite storage: one ``rows`` table for every entity, keyed by ``(entity, id)``.

A row keeps its full *export* shape as JSON in ``data`` (list endpoints strip the export-only fields on the
way out), plus the few columns the endpoints filter, sort and page on:

* ``version``: a store-wide, strictly increasing change number. Every insert or update takes the next one,
  so ``ORDER BY version`` is "ordered by modification" and an export continuation token is simply the last
  version a client has seen (keyset paging; reusing a token repeats the same page).
* ``modified`` / ``created``: the row's timestamps normalised to fixed-width microsecond ISO, because the
  wire values mix ``…:05Z`` and ``…:05.123Z`` (§1.7) and those do not compare correctly as text.
* ``active`` and ``parent`` (the id nested routes such as ``customers/{id}/contacts`` filter on).

One connection is shared by all threads behind a re-entrant lock: the emulator is a test double and
serialised access keeps ``mutate()`` atomic with no further effort.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalog import EntityDef

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    entity TEXT NOT NULL, id INTEGER NOT NULL, version INTEGER NOT NULL, active INTEGER NOT NULL,
    modified TEXT NOT NULL, created TEXT NOT NULL, parent INTEGER, data TEXT NOT NULL,
    PRIMARY KEY (entity, id));
CREATE UNIQUE INDEX IF NOT EXISTS rows_version ON rows(entity, version);
CREATE INDEX IF NOT EXISTS rows_modified ON rows(entity, modified, id);
CREATE INDEX IF NOT EXISTS rows_parent ON rows(entity, parent);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def parse_ts(text: str) -> datetime:
    """Parse the RFC 3339 / ISO values clients send and the API emits (``Z``, offsets, date-only)."""
    value = text.strip().replace(" ", "T")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def norm_ts(text: str) -> str:
    return parse_ts(text).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dig(row: dict[str, Any], path: str) -> Any:
    """Value at a dotted path (``customer.id``), None when any step is missing."""
    value: Any = row
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


class Store:
    """Row and small-value persistence. All public methods are thread-safe."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else ":memory:"
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self._depth = 0
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self._version = int(self.get_value("version") or "0")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nestable transaction; only the outermost level commits (and persists the version counter)."""
        with self.lock:
            outer = self._depth == 0
            start = self._version
            if outer:
                self.conn.execute("BEGIN")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                    self._version = start
                raise
            self._depth -= 1
            if outer:
                self._set_value("version", str(self._version))
                self.conn.execute("COMMIT")

    # -- small values -----------------------------------------------------------------------------------------

    def get_value(self, name: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def _set_value(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?,?)", (name, value))

    def set_value(self, name: str, value: str) -> None:
        with self.transaction():
            self._set_value(name, value)

    # -- rows -------------------------------------------------------------------------------------------------

    def _params(self, ent: EntityDef, row: dict[str, Any]) -> tuple[Any, ...]:
        self._version += 1
        modified = norm_ts(row.get("modifiedOn") or row["_modified"])
        created = row.get("createdOn") or row.get("_created")
        parent = dig(row, ent.parent) if ent.parent else None
        active = 1 if row.get("active", True) else 0
        return (ent.name, row["id"], self._version, active, modified,
                norm_ts(created) if created else modified, parent, _dumps(row))

    def put_many(self, ent: EntityDef, rows: Iterable[dict[str, Any]]) -> None:
        """Insert or replace rows, each taking the next version (callers pass them in modification order)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO rows(entity,id,version,active,modified,created,parent,data) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [self._params(ent, r) for r in rows],
            )

    def get(self, entity: str, rid: int) -> dict[str, Any] | None:
        with self.lock:
            hit = self.conn.execute("SELECT data FROM rows WHERE entity=? AND id=?", (entity, rid)).fetchone()
        return json.loads(hit[0]) if hit else None

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def count(self, entity: str, active_only: bool = False) -> int:
        sql = "SELECT count(*) FROM rows WHERE entity=?" + (" AND active=1" if active_only else "")
        return int(self.query(sql, [entity])[0][0])

    def max_id(self, entity: str) -> int:
        return int(self.query("SELECT coalesce(max(id),0) FROM rows WHERE entity=?", [entity])[0][0])

    def max_modified(self) -> str | None:
        return self.query("SELECT max(modified) FROM rows", [])[0][0]

    def sample_ids(self, entity: str, where: str = "1", limit: int = 1000) -> list[int]:
        sql = f"SELECT id FROM rows WHERE entity=? AND {where} ORDER BY id LIMIT ?"
        return [r[0] for r in self.query(sql, [entity, limit])]
