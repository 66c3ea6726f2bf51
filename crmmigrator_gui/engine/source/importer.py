"""Import export files into the project's staging tables.

Each sheet or CSV is recognised as one of the playbook's source objects (by sheet/file name
and by how many of its headers match the object's roles), its id column is found through
the same synonyms the auto-mapper uses, and every row is staged with its source id, a row
hash (for delta detection later) and the raw values. Columns that must never migrate
(passwords) are dropped here, at ingest. The whole import is one transaction: a bad file
leaves the project exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import InputError, UsageError
from crmmigrator_gui.engine.mapping.names import (
    cluster_names,
    do_not_migrate_kind,
    id_like_column,
    match_name,
    normalize,
    object_name_score,
    tokens_of,
)
from crmmigrator_gui.engine.mapping.playbook import Playbook, SourceObject, load_playbook
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.source.profile import profile_columns
from crmmigrator_gui.engine.source.readers import SUPPORTED_SUFFIXES, SourceTable, open_tables

NAME_THRESHOLD = 0.86


class EmptyTableError(InputError):
    """A sheet or file with a header and no rows: an error alone, a warning among other tables."""


CHUNK = 2000


@dataclass
class ImportedObject:
    name: str
    files: list[str]
    records: int
    columns: list[str]
    id_field: str
    dropped_columns: list[str] = field(default_factory=list)
    duplicates_skipped: int = 0
    new: int = 0
    changed: int = 0
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)  # excluded total rows, per file


@dataclass
class ImportResult:
    batch_id: int
    objects: list[ImportedObject]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "objects": [
                {
                    "source_object": o.name,
                    "records": o.records,
                    "files": o.files,
                    "id_field": o.id_field,
                    "columns": len(o.columns),
                    "dropped_columns": o.dropped_columns,
                    "duplicates_skipped": o.duplicates_skipped,
                    "new": o.new,
                    "changed": o.changed,
                    "checksums": o.checksums,
                }
                for o in self.objects
            ],
            "warnings": self.warnings,
        }


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the supported files inside folders (sorted, not following symlinks out)."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError("no such file or folder", file=str(path))
        if path.is_dir():
            root = path.resolve()
            for child in sorted(path.iterdir()):
                if child.name.startswith((".", "~$")) or child.suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if child.is_symlink() and root not in child.resolve().parents:
                    raise InputError("symbolic link points outside the chosen folder", file=str(child))
                if child.is_file():
                    files.append(child)
        else:
            files.append(path)
    if not files:
        raise InputError("no CSV, TSV, XLSX or JSON files found", file=", ".join(str(p) for p in paths))
    return files


def header_roles(obj: SourceObject, columns: list[str]) -> dict[str, tuple[str, float]]:
    """Greedy one-to-one assignment of columns to roles by name score: role -> (column, score).

    Names are matched like the auto-mapper does (the role's synonyms, its synonym clusters, the
    object's own words stripped). When no header names a single id role, the most id-like column
    ("… #", "… ID", "… No", "… Code") stands in with a score below ``NAME_THRESHOLD``, so an export
    whose id column has an unusual name still imports while object recognition can tell the difference.
    """
    context = tokens_of((obj.name, obj.label, *obj.sheet_aliases))
    candidates = []
    for column in columns:
        for role in obj.roles.values():
            result = match_name(column, role.synonyms, cluster_names(role.clusters), context)
            if result.score >= NAME_THRESHOLD:
                candidates.append((result.score, column, role.name))
    candidates.sort(key=lambda c: (-c[0], columns.index(c[1])))
    used_columns: set[str] = set()
    assigned: dict[str, tuple[str, float]] = {}
    for score, column, role in candidates:
        if column in used_columns or role in assigned:
            continue
        assigned[role] = (column, score)
        used_columns.add(column)
    if len(obj.id_roles) == 1 and obj.id_roles[0] not in assigned:
        fallback = id_like_column([c for c in columns if c not in used_columns], context)
        if fallback is not None:
            assigned[obj.id_roles[0]] = (fallback, 0.5)
    elif len(obj.id_roles) > 1 and any(r in assigned for r in obj.id_roles):
        # A composite id (job + item of a line) tolerates repeats, so any free column can complete it.
        for role in obj.id_roles:
            free = [c for c in columns if c not in used_columns and not do_not_migrate_kind(c)]
            if role not in assigned and free:
                column = id_like_column(free, context) or free[0]
                assigned[role] = (column, 0.5)
                used_columns.add(column)
    return assigned


def recognise_object(playbook: Playbook, table: SourceTable) -> tuple[SourceObject, float]:
    """Which source object a table holds: its sheet/file name, then how well each object explains its headers.

    The name counts when one of the object's aliases is contained in it, the longest (most specific) alias
    winning ("Jobber line items 2026-11" is line items, not jobs); the headers count as the share of
    columns an object's roles claim, plus whether its id column is there.
    """
    best: tuple[SourceObject | None, float] = (None, 0.0)
    scored = []
    for obj in playbook.objects:
        name_score = object_name_score(table.name, (*obj.sheet_aliases, obj.name, obj.label))
        roles = header_roles(obj, table.columns)
        named = [c for c in table.columns if not do_not_migrate_kind(c)] or table.columns
        claimed = sum(1 for role, (column, score) in roles.items() if score >= NAME_THRESHOLD and column in named)
        explained = claimed / max(1, len(named))
        id_found = all(role in roles and roles[role][1] >= NAME_THRESHOLD for role in obj.id_roles)
        id_any = all(role in roles for role in obj.id_roles)
        score = 0.5 * name_score + 0.45 * explained + (0.1 if id_found else 0.0 if id_any else -0.3)
        scored.append((score, obj))
        if score > best[1]:
            best = (obj, score)
    if best[0] is None or best[1] < 0.3:
        raise InputError(
            "cannot tell which source object this sheet holds; name it with --object",
            file=_where(table),
        )
    return best[0], best[1]


def _where(table: SourceTable) -> str:
    return f"{table.path.name}[{table.sheet}]" if table.sheet else table.path.name


def row_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class RecordTable:
    """Rows that came from an API, shaped like a ``SourceTable`` so they share the import path.

    Attributes:
        name: the source object's name at the API (for messages).
        columns: flattened field names (``address.street``).
        rows: a callable returning an iterator of value lists aligned to ``columns``.
    """

    name: str
    columns: list[str]
    rows: Any
    path: Path = Path("api")
    sheet: str | None = None
    header_row: int = 0
    warnings: list[str] = field(default_factory=list)

    def iter_rows(self) -> Iterator[tuple[int, list[str | None]]]:
        yield from enumerate(self.rows(), start=1)


def import_paths(
    project: Project,
    paths: list[Path],
    *,
    object_name: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Import files or folders into staging as one transaction."""
    playbook = load_playbook(project.source, project.target, project.edition)
    if object_name is not None:
        try:
            playbook.obj(object_name)
        except Exception as exc:
            names = ", ".join(o.name for o in playbook.objects)
            raise UsageError(f"unknown object {object_name!r}; choose one of {names}") from exc
    files = expand_paths(paths)
    tables: list[SourceTable] = []
    for file in files:
        tables.extend(open_tables(file))
    plan: list[tuple[Any, SourceObject]] = []
    for table in tables:
        obj = playbook.obj(object_name) if object_name else recognise_object(playbook, table)[0]
        plan.append((table, obj))
    return stage_tables(
        project, plan, action="import", detail={"files": [str(f) for f in files]}, progress=progress, cancel=cancel
    )


def stage_tables(
    project: Project,
    plan: list[tuple[Any, SourceObject]],
    *,
    action: str,
    detail: dict[str, Any],
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Stage (table, object) pairs as one transaction; files and API extractors both end here."""
    playbook = load_playbook(project.source, project.target, project.edition)
    results: dict[str, ImportedObject] = {}
    with project.step(action, detail):
        batch_id = project.db.conn.execute(
            "INSERT INTO import_batches (started_at, files, actor) VALUES (?, ?, ?)",
            (now_iso(), json.dumps(detail.get("files", [])), action),
        ).lastrowid
        assert batch_id is not None
        empty: list[str] = []
        for table, obj in plan:
            try:
                imported = _import_table(project, playbook, obj, table, batch_id, progress, cancel)
            except EmptyTableError as exc:
                if len(plan) == 1:
                    raise
                empty.append(f"{exc} (skipped)")  # an empty sheet in a multi-sheet export is normal
                continue
            previous = results.get(obj.name)
            if previous:
                previous.records += imported.records
                previous.files += imported.files
                previous.columns += [c for c in imported.columns if c not in previous.columns]
                previous.duplicates_skipped += imported.duplicates_skipped
                previous.new += imported.new
                previous.changed += imported.changed
            else:
                results[obj.name] = imported
        if not results:
            raise InputError("every sheet and file is empty", file=", ".join(_where(t) for t, _o in plan))
        # Readers learn some things only while streaming (CSV grand-total rows, precision loss), so
        # warnings and checksums are collected after the rows were read.
        for table, obj in plan:
            checksums = getattr(table, "checksums", None)
            if checksums:
                results[obj.name].checksums[_where(table)] = dict(checksums)
        for obj_name, imported in results.items():
            _store_object(project, obj_name, imported, batch_id)
    warnings = [f"{_where(t)}: {w}" for t, _o in plan for w in t.warnings] + empty
    return ImportResult(batch_id=batch_id, objects=list(results.values()), warnings=warnings)


PROFILE_ROWS = 100_000


def _import_table(
    project: Project,
    playbook: Playbook,
    obj: SourceObject,
    table: Any,
    batch_id: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> ImportedObject:
    """Stream one table into staging in bounded memory.

    Duplicate detection uses a temporary SQLite table rather than a Python dict, and profiling
    consumes the same stream (first ``PROFILE_ROWS`` rows), so a 1M-row file never sits in memory.
    """
    where = _where(table)
    roles = header_roles(obj, table.columns)
    missing = [r for r in obj.id_roles if r not in roles]
    if missing:
        wanted = " / ".join(obj.roles[missing[0]].synonyms[:3])
        raise InputError(f"no id column found for {obj.label} (expected one like {wanted})", file=where)
    id_columns = [roles[r][0] for r in obj.id_roles]
    id_indexes = [table.columns.index(c) for c in id_columns]
    dropped = [column for role_name, (column, _score) in roles.items() if obj.roles[role_name].do_not_migrate]
    # Credentials the playbook has no role for (a "PIN" or "API token" column) never reach staging either.
    dropped += [
        c for c in table.columns
        if c not in dropped and c not in id_columns and (do_not_migrate_kind(c) or ("", ""))[0] == "secret"
    ]  # fmt: skip
    keep = [i for i, c in enumerate(table.columns) if c not in dropped]
    columns = [table.columns[i] for i in keep]
    conn = project.db.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_seen (source_id TEXT PRIMARY KEY, row_number INT, hash TEXT)")
    conn.execute("DELETE FROM import_seen")
    stats = {"records": 0, "duplicates": 0, "new": 0, "changed": 0}

    def staged_rows() -> Iterator[list[str | None]]:
        batch: list[tuple[Any, ...]] = []
        for row_number, values in table.iter_rows():
            parts = [values[i] for i in id_indexes]
            if any(p is None or not str(p).strip() for p in parts):
                if len(id_columns) == 1:
                    raise InputError("the id is empty", file=where, row=row_number, column=id_columns[0])
                parts = [p or "" for p in parts]
            source_id = "|".join(str(p).strip() for p in parts)
            raw = {table.columns[i]: values[i] for i in keep}
            digest = row_hash(raw)
            first = conn.execute(
                "SELECT row_number, hash FROM import_seen WHERE source_id = ?", (source_id,)
            ).fetchone()
            if first:
                if first[1] == digest:
                    stats["duplicates"] += 1  # the same row twice (overlapping exports): keep one
                    continue
                if len(id_columns) > 1:
                    source_id = f"{source_id}#{row_number}"  # composite ids (form answers) may repeat
                else:
                    raise InputError(
                        f"duplicate id {source_id!r} with different values (first seen on row {first[0]})",
                        file=where,
                        row=row_number,
                        column=id_columns[0],
                    )
            conn.execute("INSERT OR REPLACE INTO import_seen VALUES (?, ?, ?)", (source_id, row_number, digest))
            batch.append(
                (
                    obj.name,
                    source_id,
                    digest,
                    batch_id,
                    str(table.path),
                    row_number,
                    json.dumps(raw, ensure_ascii=False),
                )
            )
            stats["records"] += 1
            if len(batch) >= CHUNK:
                _flush(project, batch, stats)
                batch.clear()
                progress(ProgressEvent("import", obj.name, stats["records"], 0, message=where))
                if cancel:
                    cancel.raise_if_cancelled()
            yield [values[i] for i in keep]
        _flush(project, batch, stats)

    stream = staged_rows()
    profiles = profile_columns(columns, stream, sample_limit=PROFILE_ROWS)
    for _rest in stream:  # profiling stops early on big files; staging goes on to the end
        pass
    records = stats["records"]
    if records == 0:
        raise EmptyTableError("no data rows under the header", file=where, row=table.header_row or None)
    conn.execute("DELETE FROM profiles WHERE object = ?", (obj.name,))
    conn.executemany(
        "INSERT OR REPLACE INTO profiles VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (
                obj.name,
                p.name,
                position,
                p.inferred_type,
                p.fill_rate,
                p.distinct,
                p.max_length,
                p.date_format,
                json.dumps(p.samples, ensure_ascii=False),
                json.dumps(p.top_values, ensure_ascii=False),
            )
            for position, p in enumerate(profiles)
        ],
    )
    progress(ProgressEvent("import", obj.name, records, records, message=where))
    return ImportedObject(
        name=obj.name,
        files=[where],
        records=records,
        columns=columns,
        id_field=" + ".join(id_columns),
        dropped_columns=dropped,
        duplicates_skipped=stats["duplicates"],
        new=stats["new"],
        changed=stats["changed"],
    )


def _flush(project: Project, batch: list[tuple[Any, ...]], stats: dict[str, int]) -> None:
    """Upsert a chunk into staging, counting new and changed rows against what was staged before."""
    if not batch:
        return
    conn = project.db.conn
    obj = batch[0][0]
    ids = [row[1] for row in batch]
    before: dict[str, str] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        before.update(
            conn.execute(
                f"SELECT source_id, row_hash FROM staging WHERE object = ? AND source_id IN ({marks})", (obj, *chunk)
            ).fetchall()
        )
    for row in batch:
        previous = before.get(row[1])
        if previous is None:
            stats["new"] += 1
        elif previous != row[2]:
            stats["changed"] += 1
    conn.executemany(
        "INSERT INTO staging (object, source_id, row_hash, batch_id, file, row_number, raw) "
        "VALUES (?,?,?,?,?,?,?) ON CONFLICT(object, source_id) DO UPDATE SET "
        "row_hash = excluded.row_hash, batch_id = excluded.batch_id, file = excluded.file, "
        "row_number = excluded.row_number, raw = excluded.raw",
        batch,
    )


def _store_object(project: Project, name: str, imported: ImportedObject, batch_id: int) -> None:
    count = project.staged_count(name)
    project.db.conn.execute(
        "INSERT INTO source_objects (name, files, columns, id_field, record_count, batch_id, details) "
        "VALUES (?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET files = excluded.files, "
        "columns = excluded.columns, id_field = excluded.id_field, record_count = excluded.record_count, "
        "batch_id = excluded.batch_id, details = excluded.details",
        (
            name,
            json.dumps(imported.files),
            json.dumps(imported.columns, ensure_ascii=False),
            imported.id_field,
            count,
            batch_id,
            json.dumps(
                {
                    "dropped_columns": imported.dropped_columns,
                    "duplicates": imported.duplicates_skipped,
                    "checksums": imported.checksums,
                }
            ),
        ),
    )


def normalized_columns(columns: list[str]) -> list[str]:
    return [normalize(c) for c in columns]
