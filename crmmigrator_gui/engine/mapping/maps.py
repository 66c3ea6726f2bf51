"""The stored map: object map and field map, and the confirm gate (value maps live in :mod:`.values`).

Every confirmation records who and when. ``assert_confirmed`` is the single gate that load
calls: nothing moves while any mapped row or value is unconfirmed, or any source value of a
mapped choice column has no destination option and nobody has decided what to do with it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping import values
from crmmigrator_gui.engine.mapping.automap import Proposal, propose
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso

_T = TypeVar("_T")


def remember(project: Project) -> None:
    """Feed the user's confirmed choices to the mapping memory (best effort: a locked or unwritable memory
    file must never fail the confirmation itself, which has already committed)."""
    import sqlite3

    from crmmigrator_gui.engine.mapping.memory import remember_confirmed

    try:
        remember_confirmed(project)
    except (sqlite3.Error, OSError):
        pass


def _remembers(func: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(func)
    def wrapper(project: Project, *args: Any, **kwargs: Any) -> _T:
        result = func(project, *args, **kwargs)
        remember(project)
        return result

    return wrapper


def run_automap(project: Project, client: Any = None) -> tuple[list[Proposal], list[Proposal]]:
    """Propose and store the map; rows the user already confirmed or set are kept.

    Value maps are checked against the destination's choice columns: read through ``client``, or through
    the project's destination when none is given (the embedded sandbox by default). A destination that
    cannot be reached leaves the map to be reviewed against the cached or planned options instead.
    """
    if not project.source_object_names():
        raise BlockedError("nothing imported yet; run `crmmigrator import` first")
    playbook = load_playbook(project.source, project.target, project.edition)
    with contextlib.ExitStack() as stack:
        if client is None:  # one connection for the metadata and the option sets
            try:
                from crmmigrator_gui.engine.target.connection import destination

                client = stack.enter_context(destination(project))
            except MigratorError:
                client = None  # each reader notes "not read" and the map is proposed offline
        proposals, unmapped = propose(project, client=client)
        entities = {p.target_entity for p in proposals if p.target_entity}
        entities |= {r["target_entity"] for r in project.query("SELECT DISTINCT target_entity FROM field_maps")}
        fetched, offline = _read_options(project, client, sorted(e for e in entities if e))
    detail = {"proposals": len(proposals), "unmapped": len(unmapped), "options_not_read": offline}
    with project.step("automap", detail):
        conn = project.db.conn
        conn.execute("DELETE FROM field_maps WHERE status != 'confirmed' AND origin = 'auto'")
        kept = {
            (r["source_object"], r["source_field"])
            for r in project.query("SELECT source_object, source_field FROM field_maps")
        }
        for p in proposals + unmapped:
            if (p.source_object, p.source_field) in kept:
                continue
            conn.execute(
                "INSERT OR IGNORE INTO field_maps (source_object, source_field, target_entity, target_field, role, "
                "transform, confidence, reason, status, origin) VALUES (?,?,?,?,?,?,?,?,?, 'auto')",
                (
                    p.source_object,
                    p.source_field,
                    p.target_entity,
                    p.target_field,
                    p.role,
                    json.dumps(p.transform),
                    p.confidence,
                    p.reason,
                    "proposed" if p.target_entity else "unmapped",
                ),
            )
        _store_object_maps(project, playbook)
        detail["values"] = values.store_value_maps(project, playbook, fetched=fetched)
    return proposals, unmapped


def _read_options(project: Project, client: Any, entities: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(choice columns read from the destination, or None and why not) — before the step, so no network call
    runs inside the project's write transaction."""
    try:
        if client is not None:
            return values.fetch_options(project, client, entities), None
        from crmmigrator_gui.engine.target.connection import destination

        with destination(project) as opened:
            return values.fetch_options(project, opened, entities), None
    except MigratorError as exc:
        return None, str(exc)


def _store_object_maps(project: Project, playbook: Playbook) -> None:
    imported = set(project.source_object_names())
    seed_of = {}
    for row in playbook.seed_rows:
        for obj in row.get("objects", []):
            seed_of.setdefault(obj, row["row"])
    for obj in playbook.objects:
        if obj.name not in imported:
            continue
        for part in obj.parts:
            project.db.conn.execute(
                "INSERT INTO object_maps (source_object, part, target_entity, seed_row, status) "
                "VALUES (?,?,?,?, 'proposed') ON CONFLICT(source_object, part) DO UPDATE SET "
                "target_entity = excluded.target_entity",
                (obj.name, part.name, part.entity, seed_of.get(obj.name, obj.label)),
            )


def _suggest(value: str, suggest: dict[str, str], custom: bool) -> str | None:
    """The playbook's suggestion alone (kept for callers that have no destination options)."""
    label = values.suggest_option(value, suggest, None)[0] if suggest else None
    return label if label is not None or not custom else value.strip().title()


def field_rows(project: Project) -> list[dict[str, Any]]:
    rows = project.query(
        "SELECT source_object, source_field, target_entity, target_field, role, transform, confidence, reason, "
        "status, confirmed_by, confirmed_at, origin, notes, customer_change FROM field_maps ORDER BY source_object, id"
    )
    for row in rows:
        row["transform"] = json.loads(row["transform"])
        row["confidence"] = round(row["confidence"], 3)
    return rows


def show_map(project: Project) -> dict[str, Any]:
    return {
        "objects": project.query("SELECT * FROM object_maps ORDER BY source_object, part"),
        "fields": field_rows(project),
        "value_maps": project.query("SELECT * FROM value_maps ORDER BY source_object, source_field, count DESC"),
        "confirmed": is_confirmed(project),
    }


@_remembers
def accept(project: Project, *, min_confidence: float | None = None, actor: str | None = None) -> int:
    """Confirm proposed rows (all, or those at or above a confidence); returns how many were confirmed."""
    who = actor or current_actor()
    at = now_iso()
    threshold = -1.0 if min_confidence is None else min_confidence
    with project.step("map accept", {"min_confidence": min_confidence}, actor=who):
        conn = project.db.conn
        cur = conn.execute(
            "UPDATE field_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
            "WHERE status = 'proposed' AND confidence >= ?",
            (who, at, threshold),
        )
        count = cur.rowcount
        # Value maps carry no score: a suggested target is confirmed with its (now confirmed) field row.
        conn.execute(
            "UPDATE value_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? WHERE status = 'proposed' "
            "AND EXISTS (SELECT 1 FROM field_maps f WHERE f.source_object = value_maps.source_object AND "
            "f.source_field = value_maps.source_field AND f.target_entity = value_maps.target_entity AND "
            "f.target_field = value_maps.target_field AND f.status = 'confirmed')",
            (who, at),
        )
        if not _unconfirmed_count(project):
            conn.execute(
                "UPDATE object_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
                "WHERE status != 'confirmed'",
                (who, at),
            )
    return count


@_remembers
def set_field(project: Project, source: str, target: str, *, actor: str | None = None) -> None:
    """``map set OBJ.FIELD ENTITY.FIELD`` (or ``ENTITY.FIELD`` = ``-`` to leave the column unmapped)."""
    who = actor or current_actor()
    obj_name, dot, field = source.partition(".")
    if not dot or not field:
        raise UsageError("source must be SRC_OBJECT.SRC_FIELD")
    columns = project.scalar("SELECT columns FROM source_objects WHERE name = ?", (obj_name,))
    if columns is None:
        raise MigratorError(f"no imported object {obj_name!r}")
    if field not in json.loads(columns):
        raise MigratorError(f"{obj_name} has no column {field!r}")
    with project.step("map set", {"source": source, "target": target}, actor=who):
        conn = project.db.conn
        conn.execute(
            "DELETE FROM field_maps WHERE source_object = ? AND source_field = ? AND (role IS NULL OR "
            "transform NOT LIKE '%\"key\"%' AND transform NOT LIKE '%\"lookup\"%')",
            (obj_name, field),
        )
        if target in ("-", "none", ""):
            conn.execute(
                "INSERT INTO field_maps (source_object, source_field, transform, confidence, reason, status, "
                "confirmed_by, confirmed_at, origin) VALUES (?,?,?,1.0,'left unmapped by the user','unmapped',?,?,"
                "'user')",
                (obj_name, field, "{}", who, now_iso()),
            )
        else:
            entity, dot, target_field = target.partition(".")
            if not dot or not target_field:
                raise UsageError("target must be TARGET_ENTITY.TARGET_FIELD")
            conn.execute(
                "INSERT INTO field_maps (source_object, source_field, target_entity, target_field, transform, "
                "confidence, reason, status, confirmed_by, confirmed_at, origin) VALUES (?,?,?,?,?,1.0,?, "
                "'confirmed', ?, ?, 'user')",
                (obj_name, field, entity, target_field, json.dumps({"type": "text"}), f"set by {who}", who, now_iso()),
            )
        # A new choice target needs its own value maps (proposed: they still need a decision).
        values.store_value_maps(project, _playbook(project), only=(obj_name, field))


def _pending(project: Project) -> tuple[int, int, int]:
    """(proposed field rows, proposed value rows, undecided values) of the mapped columns."""
    fields = int(project.scalar("SELECT COUNT(*) FROM field_maps WHERE status = 'proposed'") or 0)
    proposed, unmapped = values.pending_values(project)
    return fields, proposed, unmapped


def _unconfirmed_count(project: Project) -> int:
    return sum(_pending(project))


def is_confirmed(project: Project) -> bool:
    has_rows = bool(project.scalar("SELECT COUNT(*) FROM field_maps WHERE status = 'confirmed'"))
    return has_rows and _unconfirmed_count(project) == 0


def assert_confirmed(project: Project) -> None:
    """The confirm gate: raise BlockedError (exit 3) while any mapped row or value is unconfirmed.

    A value of a mapped choice column with no destination option counts until someone decides (an option,
    a new option, or "leave empty"): loading it would silently drop the value.
    """
    if not project.scalar("SELECT COUNT(*) FROM field_maps"):
        raise BlockedError("the map is empty; run `crmmigrator automap` and confirm it first")
    fields, proposed, unmapped = _pending(project)
    if fields or proposed or unmapped or not is_confirmed(project):
        parts = [f"{fields + proposed} unconfirmed row(s)"] if fields + proposed or not unmapped else []
        if unmapped:
            parts.append(f"{unmapped} source value(s) with no destination option")
        raise BlockedError(
            f"the map is unconfirmed: {' and '.join(parts)}; review with `map show` and `map values --unmapped`, "
            "then `map accept --all` and `map value …`"
        )


@_remembers
def confirm_rows(project: Project, row_ids: list[int], *, actor: str | None = None) -> int:
    """Tick individual field-map rows as confirmed (the wizard's "confirmed" column)."""
    who = actor or current_actor()
    at = now_iso()
    with project.step("map confirm", {"rows": row_ids}, actor=who):
        count = 0
        for row_id in row_ids:
            count += project.db.conn.execute(
                "UPDATE field_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
                "WHERE id = ? AND status = 'proposed'",
                (who, at, row_id),
            ).rowcount
            # A confirmed choice column confirms its suggested value map with it.
            project.db.conn.execute(
                "UPDATE value_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? WHERE status = "
                "'proposed' AND EXISTS (SELECT 1 FROM field_maps f WHERE f.id = ? AND f.source_object = "
                "value_maps.source_object AND f.source_field = value_maps.source_field AND f.target_entity = "
                "value_maps.target_entity AND f.target_field = value_maps.target_field)",
                (who, at, row_id),
            )
        if not _unconfirmed_count(project):
            project.db.conn.execute(
                "UPDATE object_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
                "WHERE status != 'confirmed'",
                (who, at),
            )
    return count


@_remembers
def retarget_row(project: Project, row_id: int, target: str, *, actor: str | None = None) -> None:
    """Change one row's destination (``ENTITY.FIELD``, or ``-`` to unmap); the change counts as confirmed."""
    row = project.query("SELECT source_object, source_field FROM field_maps WHERE id = ?", (row_id,))
    if not row:
        raise MigratorError(f"no field-map row {row_id}")
    who = actor or current_actor()
    with project.step("map retarget", {"row": row_id, "target": target}, actor=who):
        if target in ("-", ""):
            project.db.conn.execute(
                "UPDATE field_maps SET target_entity = NULL, target_field = NULL, status = 'unmapped', "
                "confirmed_by = ?, confirmed_at = ?, origin = 'user' WHERE id = ?",
                (who, now_iso(), row_id),
            )
        else:
            entity, dot, field = target.partition(".")
            if not dot or not field:
                raise UsageError("target must be ENTITY.FIELD")
            project.db.conn.execute(
                "UPDATE field_maps SET target_entity = ?, target_field = ?, status = 'confirmed', confirmed_by = ?, "
                "confirmed_at = ?, origin = 'user', reason = reason || ' (changed by ' || ? || ')' WHERE id = ?",
                (entity, field, who, now_iso(), who, row_id),
            )
        values.store_value_maps(project, _playbook(project), only=(row[0]["source_object"], row[0]["source_field"]))


def _playbook(project: Project) -> Playbook:
    return load_playbook(project.source, project.target, project.edition)


def field_rows_with_ids(project: Project) -> list[dict[str, Any]]:
    """Field-map rows with their ids and the first sample values, for an editable grid."""
    samples = {
        (p["object"], p["field"]): json.loads(p["samples"])
        for p in project.query("SELECT object, field, samples FROM profiles")
    }
    rows = project.query(
        "SELECT id, source_object, source_field, target_entity, target_field, confidence, reason, status, "
        "confirmed_by, confirmed_at, transform, notes, customer_change FROM field_maps ORDER BY source_object, id"
    )
    for row in rows:
        row["transform"] = json.loads(row["transform"] or "{}")
        row["samples"] = samples.get((row["source_object"], row["source_field"]), [])[:3]
    return rows
