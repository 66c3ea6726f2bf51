"""Delta detection: what changed in the source since the last import, classified record by record.

Detection (:func:`detect_delta`) stages the newer data exactly as ``import`` (files) or ``extract`` (the
source API, from its high-water marks) would, inside one project step, and classifies every record of the
objects it saw by row hash against what was staged before: ``new``, ``changed``, ``unchanged`` or
``deleted``. Every classification lands in ``source_changes`` under a new ``delta_id`` (with the row it
replaced), so a delta can be reviewed, resumed and reported.

Deleted means: gone from a *complete* export of its object, or flagged deleted by the source API (the
playbook's ``skip_when`` rules whose reason says "deleted": ``IsDeleted = true``, ``active: false``). A file
whose object has a modified column (Modified, Last Updated, SystemModstamp, ...) with every row at or after
the previous import's newest value is a changes-only export: absences there mean nothing (``complete`` is
False, with a warning). API deltas are changes-only by nature. Deleted rows leave staging in the detect
step (their last row is kept in ``source_changes.old_raw``), so no later ``load`` can re-create them.

Applying a detected delta is :mod:`.delta`'s job.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.source.dates import parse_date

CHANGES = ("new", "changed", "unchanged", "deleted")
_MODIFIED_NAMES = {
    "modified", "last modified", "modified date", "date modified", "modified at", "modified on", "modifiedon",
    "last updated", "updated at", "updated", "last update", "updated on", "date updated", "systemmodstamp",
    "lastmodifieddate", "last modified date", "modifieddate", "updatedat", "lastmodified",
}  # fmt: skip


@dataclass
class DeltaPlan:
    """One detected delta: per object, how many records are new, changed, unchanged and deleted.

    Attributes:
        delta_id: the ``source_changes.delta_id``.
        mode: ``"files"`` (a newer export) or ``"api"`` (the source API since the high-water mark).
        complete: per source object, whether the newer data was a complete export (absences are deletions).
        objects: ``{"source_object","new","changed","unchanged","deleted"}`` per object.
        warnings: what the user should know (changes-only exports, objects missing from the export).
    """

    delta_id: int
    mode: str
    complete: dict[str, bool]
    objects: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "delta_id": self.delta_id,
            "mode": self.mode,
            "complete": self.complete,
            "objects": self.objects,
            "warnings": self.warnings,
            "pending": self.pending,
        }

    @property
    def pending(self) -> int:
        return sum(o["new"] + o["changed"] + o["deleted"] for o in self.objects)


# ---------------------------------------------------------------------------------------------- detection


def detect_delta(
    project: Project,
    paths: list[Path] | None = None,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> DeltaPlan:
    """Stage the newer data (``paths``, or the source API when none) and classify every record.

    Raises UsageError (exit 2) before anything was imported, or for a files-based source without paths."""
    if not project.scalar("SELECT COUNT(*) FROM staging"):
        raise UsageError("nothing was imported yet: import the first export (or extract) before a delta")
    mode = "files" if paths else "api"
    if mode == "api":
        from crmmigrator_gui.engine.source.extract import EXTRACTORS

        if project.source not in EXTRACTORS or not project.meta("extract_checkpoint"):
            raise UsageError(
                f"{project.source} data came from export files: pass the newer export "
                "(`crmmigrator delta PROJECT NEWER_EXPORT...`)"
            )
    playbook = load_playbook(project.source, project.target, project.edition)
    conn = project.db.conn
    with project.step("delta detect", {"mode": mode, "files": [str(p) for p in paths or []]}):
        conn.execute("DROP TABLE IF EXISTS temp.delta_before")
        conn.execute(
            "CREATE TEMP TABLE delta_before (object TEXT, source_id TEXT, row_hash TEXT, raw TEXT, "
            "PRIMARY KEY (object, source_id))"
        )
        conn.execute("INSERT INTO temp.delta_before SELECT object, source_id, row_hash, raw FROM staging")
        marks = _high_water_marks(project)
        if mode == "files":
            from crmmigrator_gui.engine.source.importer import import_paths

            batch_id = import_paths(project, list(paths or []), progress=progress, cancel=cancel).batch_id
            warnings: list[str] = []
        else:
            from crmmigrator_gui.engine.source.extract import extract

            before_batch = int(project.scalar("SELECT COALESCE(MAX(id), 0) FROM import_batches") or 0)
            extracted = extract(project, progress=progress, cancel=cancel)
            batch_id = int(project.scalar("SELECT COALESCE(MAX(id), 0) FROM import_batches") or 0)
            if batch_id == before_batch:
                batch_id = -1  # nothing changed at the source: no rows were staged
            warnings = list(extracted.warnings)
        delta_id = int(project.scalar("SELECT COALESCE(MAX(delta_id), 0) FROM source_changes") or 0) + 1
        seen = {
            r["object"] for r in project.query("SELECT DISTINCT object FROM staging WHERE batch_id = ?", (batch_id,))
        }
        complete: dict[str, bool] = {}
        for obj in sorted({r["object"] for r in project.query("SELECT DISTINCT object FROM temp.delta_before")}):
            if mode == "api":
                complete[obj] = False
            elif obj not in seen:
                complete[obj] = False
                warnings.append(f"{obj}: not in the newer export; its records are left as they are")
            else:
                column, mark = marks.get(obj, (None, None))
                changes_only = column is not None and mark is not None and _all_after(project, obj, batch_id, column,
                                                                                      mark)  # fmt: skip
                complete[obj] = not changes_only
                if changes_only:
                    warnings.append(
                        f"{obj}: every row's {column} is at or after the previous import's newest ({mark}), so this "
                        "is a changes-only export: records missing from it are not treated as deleted"
                    )
        for obj in seen - set(complete):
            complete[obj] = mode == "files"  # an object seen for the first time: all of it is new
        if mode == "api":
            warnings.append(
                "the source API returns only records changed since the high-water mark: deletions come from the "
                "source's deletion flags, not from absences"
            )
        _classify(project, delta_id, batch_id, complete)
        _flag_api_deletions(project, playbook, delta_id)
        _unstage_deleted(project, delta_id)
        plan = DeltaPlan(delta_id, mode, complete, _counts(project, delta_id), warnings)
        project.set_meta(
            f"delta:{delta_id}",
            {"status": "detected", "mode": mode, "complete": complete, "warnings": warnings,
             "batch_id": batch_id, "detected_at": now_iso(), "run_id": None},
        )  # fmt: skip
        project.audit("delta classified", {"delta_id": delta_id, "objects": plan.objects})
        conn.execute("DROP TABLE IF EXISTS temp.delta_before")
    return plan


def _modified_column(project: Project, obj: str) -> str | None:
    """The object's modified-time column, by the field map's role or by its header."""
    for role, column in role_columns(project).get(obj, {}).items():
        if "modif" in role or "updated" in role:
            return column
    for column in project.source_columns(obj):
        name = re.sub(r"[_\-.]+", " ", column).strip().lower()
        if name in _MODIFIED_NAMES or name.replace(" ", "") in _MODIFIED_NAMES:
            return column
    return None


def _moment(value: Any) -> datetime | None:
    """A comparable UTC-naive datetime from a staged text value (date-only values at midnight)."""
    if value is None or not str(value).strip():
        return None
    try:
        parsed = parse_date(str(value).strip())
    except (ValueError, MigratorError):
        return None
    if isinstance(parsed, datetime):
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if isinstance(parsed, date):
        return datetime(parsed.year, parsed.month, parsed.day)
    return None


def _high_water_marks(project: Project) -> dict[str, tuple[str, datetime | None]]:
    """object -> (modified column, newest value staged before this delta)."""
    marks: dict[str, tuple[str, datetime | None]] = {}
    for obj in project.source_object_names():
        column = _modified_column(project, obj)
        if column is None:
            continue
        newest: datetime | None = None
        for (raw,) in project.db.conn.execute("SELECT raw FROM temp.delta_before WHERE object = ?", (obj,)):
            moment = _moment(json.loads(raw).get(column))
            if moment and (newest is None or moment > newest):
                newest = moment
        marks[obj] = (column, newest)
    return marks


def _all_after(project: Project, obj: str, batch_id: int, column: str, mark: datetime) -> bool:
    rows = 0
    for (raw,) in project.db.conn.execute("SELECT raw FROM staging WHERE object = ? AND batch_id = ?", (obj, batch_id)):
        moment = _moment(json.loads(raw).get(column))
        if moment is None or moment < mark:
            return False
        rows += 1
    return rows > 0


def _classify(project: Project, delta_id: int, batch_id: int, complete: dict[str, bool]) -> None:
    conn = project.db.conn
    conn.execute(
        "INSERT INTO source_changes (delta_id, object, source_id, change, old_hash, new_hash, old_raw) "
        "SELECT ?, s.object, s.source_id, CASE WHEN b.source_id IS NULL THEN 'new' "
        "WHEN b.row_hash = s.row_hash THEN 'unchanged' ELSE 'changed' END, b.row_hash, s.row_hash, "
        "CASE WHEN b.row_hash != s.row_hash THEN b.raw END "
        "FROM staging s LEFT JOIN temp.delta_before b ON b.object = s.object AND b.source_id = s.source_id "
        "WHERE s.batch_id = ?",
        (delta_id, batch_id),
    )
    for obj, is_complete in complete.items():
        if is_complete:
            conn.execute(
                "INSERT INTO source_changes (delta_id, object, source_id, change, old_hash, new_hash, old_raw) "
                "SELECT ?, b.object, b.source_id, 'deleted', b.row_hash, NULL, b.raw FROM temp.delta_before b "
                "JOIN staging s ON s.object = b.object AND s.source_id = b.source_id "
                "WHERE b.object = ? AND s.batch_id != ?",
                (delta_id, obj, batch_id),
            )


def _deletion_rules(playbook: Playbook, obj: str) -> list[dict[str, Any]]:
    """The playbook's "deleted at the source" markers of an object (``skip_when`` rules that say so)."""
    return [
        rule for part in playbook.obj(obj).parts for rule in part.skip_when if "delet" in str(rule.get("reason", ""))
    ]


def _flag_api_deletions(project: Project, playbook: Playbook, delta_id: int) -> None:
    """Rows the source now flags deleted (and did not before) are deletions, not changes.

    A row that arrives already flagged and was not staged before is nothing to do (``unchanged``) and leaves
    staging: it was deleted by an earlier delta and comes back in the source's re-read overlap (ServiceTitan
    exports repeat their latest rows), or it was created and deleted between two extractions. Staged again
    it would count as new, and a later apply would report it again."""
    columns = role_columns(project)
    conn = project.db.conn
    for obj in {r["object"] for r in project.query(
        "SELECT DISTINCT object FROM source_changes WHERE delta_id = ? AND change IN ('changed', 'new')", (delta_id,)
    )}:  # fmt: skip
        rules = [r for r in _deletion_rules(playbook, obj) if columns.get(obj, {}).get(r["role"])]
        if not rules:
            continue

        def flagged(raw: dict[str, Any], rules: list[dict[str, Any]] = rules, obj: str = obj) -> bool:
            for rule in rules:
                value = raw.get(columns[obj][rule["role"]])
                if value is not None and str(value).strip().lower() in {str(v).lower() for v in rule["in"]}:
                    return True
            return False

        for row in project.query(
            "SELECT c.source_id, c.change, c.old_raw, s.raw FROM source_changes c JOIN staging s ON "
            "s.object = c.object AND s.source_id = c.source_id WHERE c.delta_id = ? AND c.object = ? AND "
            "c.change IN ('changed', 'new')",
            (delta_id, obj),
        ):
            if not flagged(json.loads(row["raw"])):
                continue
            if row["change"] == "new":
                conn.execute(
                    "UPDATE source_changes SET change = 'unchanged' WHERE delta_id = ? AND object = ? AND "
                    "source_id = ?",
                    (delta_id, obj, row["source_id"]),
                )
                conn.execute("DELETE FROM staging WHERE object = ? AND source_id = ?", (obj, row["source_id"]))
            elif not flagged(json.loads(row["old_raw"] or "{}")):
                conn.execute(
                    "UPDATE source_changes SET change = 'deleted' WHERE delta_id = ? AND object = ? AND source_id = ?",
                    (delta_id, obj, row["source_id"]),
                )


def _unstage_deleted(project: Project, delta_id: int) -> None:
    """Deleted records leave staging (their last row stays in ``source_changes.old_raw``)."""
    conn = project.db.conn
    conn.execute(
        "DELETE FROM staging WHERE (object, source_id) IN (SELECT object, source_id FROM source_changes "
        "WHERE delta_id = ? AND change = 'deleted')",
        (delta_id,),
    )
    conn.execute(
        "UPDATE source_objects SET record_count = (SELECT COUNT(*) FROM staging WHERE staging.object = "
        "source_objects.name)"
    )


def _counts(project: Project, delta_id: int) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CHANGES, 0))
    for row in project.query(
        "SELECT object, change, COUNT(*) AS n FROM source_changes WHERE delta_id = ? GROUP BY object, change",
        (delta_id,),
    ):
        counts[row["object"]][row["change"]] = row["n"]
    return [{"source_object": obj, **counts[obj]} for obj in sorted(counts)]


# ---------------------------------------------------------------------------------------------- plans


def _plan(project: Project, delta_id: int) -> DeltaPlan:
    info = project.meta(f"delta:{delta_id}") or {}
    return DeltaPlan(
        delta_id, info.get("mode", "files"), dict(info.get("complete", {})), _counts(project, delta_id),
        list(info.get("warnings", [])),
    )  # fmt: skip


def delta_ids(project: Project) -> list[int]:
    return [int(r["d"]) for r in project.query("SELECT DISTINCT delta_id AS d FROM source_changes ORDER BY d")]


def pending_delta(project: Project) -> DeltaPlan | None:
    """The latest detected delta that was not (fully) applied yet, or None."""
    for delta_id in reversed(delta_ids(project)):
        if (project.meta(f"delta:{delta_id}") or {}).get("status") != "applied":
            return _plan(project, delta_id)
    return None


def delta_of_run(project: Project, run_id: int) -> list[int]:
    """The deltas a delta run applied."""
    return [d for d in delta_ids(project) if (project.meta(f"delta:{d}") or {}).get("run_id") == run_id]
