"""SQLite storage for the sandbox: one table per entity plus a persisted metadata log.

Each entity table is ``e_<logicalname>(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, data TEXT)``
with the row's columns in a JSON object. JSON keeps custom columns free (no ALTER TABLE when the metadata
API adds a column) while ``json_extract`` lets SQLite filter, sort and enforce alternate keys as real unique
expression indexes. ``seq`` gives a stable insertion order for keyset paging.

One connection is shared by all threads and guarded by a re-entrant lock: the sandbox is a test double, and
serialised writes make change sets and bulk actions trivially atomic (``transaction()`` nests; only the
outermost level commits or rolls back).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .catalog import Attribute, Entity
from .errors import DUPLICATE_KEY, DUPLICATE_PK, SQL_ERROR, DataverseError

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


def col_expr(attr: Attribute) -> str:
    """SQL expression for a column inside the row JSON (names are validated identifiers)."""
    return f"json_extract(data,'$.{attr.name}')"


def key_expr(attr: Attribute) -> str:
    """Alternate-key expression: strings compare case-insensitively, as in Dataverse's SQL collation."""
    expr = col_expr(attr)
    return f"lower({expr})" if attr.type in ("String", "Memo") else expr


def key_param(attr: Attribute, value: Any) -> Any:
    return value.lower() if isinstance(value, str) and attr.type in ("String", "Memo") else value


class Store:
    """Row and metadata persistence. All public methods are thread-safe."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else ":memory:"
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self._depth = 0
        self._tables: set[str] = set()
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _meta_ops (seq INTEGER PRIMARY KEY, op TEXT, payload TEXT)"
        )
        self.conn.execute("CREATE TABLE IF NOT EXISTS _meta_values (name TEXT PRIMARY KEY, value TEXT)")
        self._version = int(self.get_value("version") or "1000")

    # -- transactions ----------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN")
                start_version = self._version
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                    self._tables.clear()  # tables created inside the transaction are gone too
                    self._version = start_version
                raise
            self._depth -= 1
            if outer:
                if self._version != start_version:
                    self._set_value("version", str(self._version))
                self.conn.execute("COMMIT")

    def next_version(self) -> int:
        self._version += 1
        return self._version

    def get_value(self, name: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM _meta_values WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def _set_value(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _meta_values(name, value) VALUES (?,?)", (name, value))

    def set_value(self, name: str, value: str) -> None:
        with self.transaction():
            self._set_value(name, value)

    # -- metadata log ----------------------------------------------------------------------------------------

    def log_op(self, op: str, payload: dict[str, Any]) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO _meta_ops(op, payload) VALUES (?,?)", (op, _dumps(payload)))

    def ops(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            rows = self.conn.execute("SELECT op, payload FROM _meta_ops ORDER BY seq").fetchall()
        return [(op, _loads(p)) for op, p in rows]

    # -- rows ------------------------------------------------------------------------------------------------

    def table(self, ent: Entity) -> str:
        name = "e_" + ent.name
        if name not in self._tables:
            with self.lock:
                self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                    "id TEXT NOT NULL UNIQUE, data TEXT NOT NULL)"
                )
                self._tables.add(name)
        return name

    def get(self, ent: Entity, rid: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute(f"SELECT data FROM {self.table(ent)} WHERE id=?", (rid,)).fetchone()
        return _loads(row[0]) if row else None

    def exists(self, ent: Entity, rid: str) -> bool:
        with self.lock:
            return (
                self.conn.execute(f"SELECT 1 FROM {self.table(ent)} WHERE id=?", (rid,)).fetchone()
                is not None
            )

    def find_by_key(
        self, ent: Entity, attrs: Sequence[Attribute], values: Sequence[Any]
    ) -> tuple[str, dict[str, Any]] | None:
        where = " AND ".join(f"{key_expr(a)} = ?" for a in attrs)
        params = [key_param(a, v) for a, v in zip(attrs, values, strict=True)]
        with self.lock:
            row = self.conn.execute(
                f"SELECT id, data FROM {self.table(ent)} WHERE {where} LIMIT 1", params
            ).fetchone()
        return (row[0], _loads(row[1])) if row else None

    def insert_many(self, ent: Entity, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        table = self.table(ent)
        try:
            with self.transaction():
                self.conn.executemany(
                    f"INSERT INTO {table}(id, data) VALUES (?,?)", [(rid, _dumps(data)) for rid, data in rows]
                )
        except sqlite3.IntegrityError as exc:
            raise self._integrity(ent, exc, rows) from exc

    def update(self, ent: Entity, rid: str, data: dict[str, Any]) -> None:
        try:
            with self.transaction():
                self.conn.execute(f"UPDATE {self.table(ent)} SET data=? WHERE id=?", (_dumps(data), rid))
        except sqlite3.IntegrityError as exc:
            raise self._integrity(ent, exc, [(rid, data)]) from exc

    def delete(self, ent: Entity, rid: str) -> bool:
        with self.transaction():
            cur = self.conn.execute(f"DELETE FROM {self.table(ent)} WHERE id=?", (rid,))
        return cur.rowcount > 0

    def delete_where(self, ent: Entity, attr: Attribute, value: Any) -> list[str]:
        """Delete the rows whose column ``attr`` equals ``value``; returns their ids (cascades)."""
        with self.transaction():
            ids = [
                r[0]
                for r in self.conn.execute(
                    f"SELECT id FROM {self.table(ent)} WHERE {col_expr(attr)} = ?", (value,)
                ).fetchall()
            ]
            self.conn.execute(f"DELETE FROM {self.table(ent)} WHERE {col_expr(attr)} = ?", (value,))
        return ids

    def sums(self, ent: Entity, attrs: Sequence[Attribute], where_attr: Attribute, value: Any) -> list[Any]:
        """``SUM`` of each column over the rows whose ``where_attr`` equals ``value`` (header totals)."""
        cols = ",".join(f"total({col_expr(a)})" for a in attrs)
        with self.lock:
            row = self.conn.execute(
                f"SELECT {cols} FROM {self.table(ent)} WHERE {col_expr(where_attr)} = ?", (value,)
            ).fetchone()
        return list(row)

    def query(
        self, ent: Entity, where: str, params: list[Any], order: str, limit: int | None, offset: int = 0
    ) -> list[tuple[int, str, dict[str, Any]]]:
        sql = f"SELECT seq, id, data FROM {self.table(ent)}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self.lock:
            rows = self.conn.execute(sql, params).fetchall()
        return [(seq, rid, _loads(data)) for seq, rid, data in rows]

    def count(self, ent: Entity, where: str, params: list[Any], cap: int | None = None) -> int:
        inner = f"SELECT 1 FROM {self.table(ent)}" + (f" WHERE {where}" if where else "")
        if cap is not None:
            inner += f" LIMIT {int(cap)}"
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]

    # -- alternate-key indexes -------------------------------------------------------------------------------

    def create_key_index(self, ent: Entity, key_name: str, attrs: Sequence[Attribute]) -> bool:
        """Build the unique index; False when existing rows already violate it (key becomes Failed)."""
        exprs = ",".join(key_expr(a) for a in attrs)
        try:
            with self.transaction():
                self.conn.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS k_{ent.name}__{key_name} "
                    f"ON {self.table(ent)}({exprs})"
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def drop_key_index(self, ent: Entity, key_name: str) -> None:
        with self.transaction():
            self.conn.execute(f"DROP INDEX IF EXISTS k_{ent.name}__{key_name}")

    def _integrity(
        self, ent: Entity, exc: sqlite3.IntegrityError, rows: Sequence[tuple[str, dict]]
    ) -> DataverseError:
        msg = str(exc)
        if f"e_{ent.name}.id" in msg:
            return DataverseError(400, DUPLICATE_PK, "Cannot insert duplicate key.")
        if "__" in msg:
            key_name = msg.rsplit("__", 1)[-1].strip("'\" ")
            key = next((k for k in ent.keys if k["LogicalName"] == key_name), None)
            attrs = key["KeyAttributes"] if key else []
            values = ",".join(str(rows[0][1].get(a)) for a in attrs) if len(rows) == 1 else "…"
            return DataverseError(
                412,
                DUPLICATE_KEY,
                f"A record that has the attribute values {values} already exists. The entity key "
                f"{key['SchemaName'] if key else key_name} requires that this set of attributes contains "
                "unique values. Select unique values and try again.",
            )
        return DataverseError(500, SQL_ERROR, f"Generic SQL error. {msg}")

    def close(self) -> None:
        with self.lock:
            self.conn.close()
