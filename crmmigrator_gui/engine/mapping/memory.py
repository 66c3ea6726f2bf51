"""Mapping memory: the field maps a user confirmed on earlier projects, in the user data directory.

A consultant migrates the same platform again and again; when they confirmed that a "Cell #"
column of a Jobber-style client list goes to ``contact.mobilephone``, the next project should
propose the same with more confidence, and say why. The memory is a small SQLite file
(``user_data_dir()/mapping-memory.sqlite``) keyed by source platform, destination, source object
and the *normalised* header, with one row per project so re-confirming the same project does not
count twice and a changed mind replaces the earlier choice.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from crmmigrator_gui.engine.mapping.names import normalize
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.paths import user_data_dir

FILE_NAME = "mapping-memory.sqlite"
UNMAPPED = "-"  # target of a column the user chose to leave unmapped

_SCHEMA = """
CREATE TABLE IF NOT EXISTS confirmations (
    project TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, source_object TEXT NOT NULL,
    header TEXT NOT NULL, target_entity TEXT NOT NULL, target_field TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (project, source, target, source_object, header, target_entity, target_field)
);
CREATE INDEX IF NOT EXISTS confirmations_by_header ON confirmations (source, target, source_object, header);
CREATE VIEW IF NOT EXISTS remembered AS
    SELECT source, target, source_object, header, target_entity, target_field,
           COUNT(DISTINCT project) AS count, MAX(at) AS last_at
    FROM confirmations GROUP BY source, target, source_object, header, target_entity, target_field;
"""


@dataclass(frozen=True)
class Remembered:
    """One choice remembered for a header: how many earlier projects confirmed it, and when last."""

    target_entity: str
    target_field: str
    count: int
    last_at: str

    @property
    def unmapped(self) -> bool:
        return self.target_entity == UNMAPPED


def memory_path() -> Path:
    return user_data_dir() / FILE_NAME


@contextmanager
def _connect() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(str(memory_path()), timeout=10, isolation_level=None)) as conn:
        conn.executescript(_SCHEMA)
        yield conn


def project_key(project: Project) -> str:
    """A stable identity for one project (its file and creation time), so re-confirming replaces, not adds."""
    ident = f"{Path(project.path).resolve()}|{project.meta('created_at', '')}"
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:24]


def header_key(header: str) -> str:
    return normalize(header) or header.strip().lower()


def remember_confirmed(project: Project) -> int:
    """Record every confirmed field-map row of the project; returns how many rows are remembered for it.

    Called after accept / confirm / set: the project's earlier entries are replaced, so a column the
    user re-targeted is remembered with its new target only. Rows the user left unmapped are kept
    as "-" so the memory can also say "you left this unmapped before".
    """
    rows = project.query(
        "SELECT source_object, source_field, target_entity, target_field, status FROM field_maps "
        "WHERE confirmed_at IS NOT NULL AND (status = 'confirmed' OR (status = 'unmapped' AND origin = 'user'))"
    )
    key = project_key(project)
    source, target = project.source, project.target
    at = now_iso()
    entries = {
        (
            row["source_object"],
            header_key(row["source_field"]),
            row["target_entity"] or UNMAPPED,
            row["target_field"] or UNMAPPED,
        )
        for row in rows
    }
    with _connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM confirmations WHERE project = ?", (key,))
            conn.executemany(
                "INSERT OR REPLACE INTO confirmations VALUES (?,?,?,?,?,?,?,?)",
                [(key, source, target, obj, header, entity, field, at) for obj, header, entity, field in entries],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(entries)


class Recall:
    """Read access for one automap run: the remembered choices of this project's platform pair.

    Loaded once (one query) and looked up per column; the current project's own confirmations are
    left out, because "you confirmed this earlier" must mean on *other* projects.
    """

    def __init__(self, project: Project) -> None:
        self._by_header: dict[tuple[str, str], list[Remembered]] = {}
        path = memory_path()
        if not path.exists():
            return
        try:
            with _connect() as conn:
                rows = conn.execute(
                    "SELECT source_object, header, target_entity, target_field, COUNT(DISTINCT project), MAX(at) "
                    "FROM confirmations WHERE source = ? AND target = ? AND project != ? "
                    "GROUP BY source_object, header, target_entity, target_field",
                    (project.source, project.target, project_key(project)),
                ).fetchall()
        except sqlite3.Error:
            return  # a damaged or locked memory file must never stop automap
        for obj, header, entity, field, count, last_at in rows:
            self._by_header.setdefault((obj, header), []).append(Remembered(entity, field, int(count), last_at))
        for choices in self._by_header.values():
            choices.sort(key=lambda r: (r.count, r.last_at), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._by_header)

    def lookup(self, source_object: str, header: str) -> list[Remembered]:
        """Remembered choices for a column, most confirmed first."""
        return list(self._by_header.get((source_object, header_key(header)), ()))


def forget_all() -> None:
    """Delete the memory file (the user's "forget what I confirmed" action)."""
    memory_path().unlink(missing_ok=True)
