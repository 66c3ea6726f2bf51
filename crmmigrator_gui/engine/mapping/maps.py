"""The stored map: object map, field map and value maps, and the confirm gate.

Every confirmation records who and when. ``assert_confirmed`` is the single gate that load
calls: nothing moves while any mapped row or value is unconfirmed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping.automap import Proposal, propose
from crmmigrator_gui.engine.mapping.names import normalize
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso


def run_automap(project: Project) -> tuple[list[Proposal], list[Proposal]]:
    """Propose and store the map; rows the user already confirmed or set are kept."""
    if not project.source_object_names():
        raise BlockedError("nothing imported yet; run `crmmigrator import` first")
    playbook = load_playbook(project.source, project.target, project.edition)
    proposals, unmapped = propose(project)
    with project.step("automap", {"proposals": len(proposals), "unmapped": len(unmapped)}):
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
        _store_value_maps(project, playbook)
    return proposals, unmapped


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
    if value in suggest:
        return suggest[value]
    wanted = normalize(value).replace(" ", "")
    for key, label in suggest.items():
        if normalize(key).replace(" ", "") == wanted:
            return label
    return value.strip().title() if custom else None


def _store_value_maps(project: Project, playbook: Playbook) -> None:
    distinct: dict[tuple[str, str], Counter[str]] = {}
    for row in project.query(
        "SELECT source_object, source_field, target_entity, target_field, role, transform FROM field_maps "
        "WHERE role IS NOT NULL AND target_entity IS NOT NULL"
    ):
        obj = playbook.obj(row["source_object"])
        role = obj.roles.get(row["role"])
        if role is None or role.kind != "enum" or not role.value_map:
            continue
        if json.loads(row["transform"]).get("type") in ("key", "lookup", "owner"):
            continue  # the same column may also drive a lookup; only its choice target gets a value map
        custom = row["target_field"].startswith(playbook.key_column.split("_")[0] + "_")
        source = (obj.name, row["source_field"])
        if source not in distinct:  # one column can feed several choice targets: count its values once
            counts: Counter[str] = Counter()
            for _sid, raw in project.iter_staged(obj.name):
                value = raw.get(row["source_field"])
                if value is not None and str(value).strip():
                    counts[str(value).strip()] += 1
            distinct[source] = counts
        for value, count in distinct[source].items():
            label = _suggest(value, role.value_map.get("suggest", {}), custom)
            project.db.conn.execute(
                "INSERT INTO value_maps (source_object, source_field, target_entity, target_field, source_value, "
                "count, target_label, status) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "count = excluded.count WHERE value_maps.status = 'confirmed'",
                (
                    obj.name,
                    row["source_field"],
                    row["target_entity"],
                    row["target_field"],
                    value,
                    count,
                    label,
                    "proposed" if label else "unmapped",
                ),
            )
            project.db.conn.execute(
                "UPDATE value_maps SET count = ?, target_label = ?, status = ? WHERE source_object = ? AND "
                "source_field = ? AND target_entity = ? AND target_field = ? AND source_value = ? "
                "AND status != 'confirmed'",
                (
                    count,
                    label,
                    "proposed" if label else "unmapped",
                    obj.name,
                    row["source_field"],
                    row["target_entity"],
                    row["target_field"],
                    value,
                ),
            )


def field_rows(project: Project) -> list[dict[str, Any]]:
    rows = project.query(
        "SELECT source_object, source_field, target_entity, target_field, role, transform, confidence, reason, "
        "status, confirmed_by, confirmed_at, origin FROM field_maps ORDER BY source_object, id"
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
        # Value maps carry no score: a suggested target is confirmed with the field rows.
        conn.execute(
            "UPDATE value_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? WHERE status = 'proposed'",
            (who, at),
        )
        if not _unconfirmed_count(project):
            conn.execute(
                "UPDATE object_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
                "WHERE status != 'confirmed'",
                (who, at),
            )
    return count


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
            return
        entity, dot, target_field = target.partition(".")
        if not dot or not target_field:
            raise UsageError("target must be TARGET_ENTITY.TARGET_FIELD")
        conn.execute(
            "INSERT INTO field_maps (source_object, source_field, target_entity, target_field, transform, "
            "confidence, reason, status, confirmed_by, confirmed_at, origin) VALUES (?,?,?,?,?,1.0,?, "
            "'confirmed', ?, ?, 'user')",
            (obj_name, field, entity, target_field, json.dumps({"type": "text"}), f"set by {who}", who, now_iso()),
        )


def _unconfirmed_count(project: Project) -> int:
    fields = project.scalar("SELECT COUNT(*) FROM field_maps WHERE status = 'proposed'") or 0
    values = project.scalar("SELECT COUNT(*) FROM value_maps WHERE status = 'proposed'") or 0
    return int(fields) + int(values)


def is_confirmed(project: Project) -> bool:
    has_rows = bool(project.scalar("SELECT COUNT(*) FROM field_maps WHERE status = 'confirmed'"))
    return has_rows and _unconfirmed_count(project) == 0


def assert_confirmed(project: Project) -> None:
    """The confirm gate: raise BlockedError (exit 3) while anything mapped is unconfirmed."""
    if not project.scalar("SELECT COUNT(*) FROM field_maps"):
        raise BlockedError("the map is empty; run `crmmigrator automap` and confirm it first")
    pending = _unconfirmed_count(project)
    if pending or not is_confirmed(project):
        raise BlockedError(f"the map has {pending} unconfirmed row(s); review with `map show`, then `map accept --all`")


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
            return
        entity, dot, field = target.partition(".")
        if not dot or not field:
            raise UsageError("target must be ENTITY.FIELD")
        project.db.conn.execute(
            "UPDATE field_maps SET target_entity = ?, target_field = ?, status = 'confirmed', confirmed_by = ?, "
            "confirmed_at = ?, origin = 'user', reason = reason || ' (changed by ' || ? || ')' WHERE id = ?",
            (entity, field, who, now_iso(), who, row_id),
        )


def field_rows_with_ids(project: Project) -> list[dict[str, Any]]:
    """Field-map rows with their ids and the first sample values, for an editable grid."""
    samples = {
        (p["object"], p["field"]): json.loads(p["samples"])
        for p in project.query("SELECT object, field, samples FROM profiles")
    }
    rows = project.query(
        "SELECT id, source_object, source_field, target_entity, target_field, confidence, reason, status, "
        "confirmed_by, confirmed_at FROM field_maps ORDER BY source_object, id"
    )
    for row in rows:
        row["samples"] = samples.get((row["source_object"], row["source_field"]), [])[:3]
    return rows
