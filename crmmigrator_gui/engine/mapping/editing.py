"""Editing the transform of one field-map row: validate, store (audited), and preview on the project's real rows.

The GUI's transform editor and ``map transform`` call these. Previews bind the playbook's defaults (phone
region, time zone) exactly as the payload builders do at load, so what the editor shows is what is sent.
:func:`describe_object` turns the playbook's parts and grouped parts into ``decompose``/``merge`` specs so the
editor can show, and preview, how rows become records.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Playbook, destination_key, load_playbook
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso

#: Staged rows read at most when looking for distinct sample values (keeps a preview instant on big objects).
SCAN_LIMIT = 5000
_FIXED_TYPES = ("key", "lookup", "owner")  # the playbook decides these rows' meaning, not the editor


def _field_row(project: Project, row_id: int) -> dict[str, Any]:
    rows = project.query(
        "SELECT id, source_object, source_field, target_entity, target_field, transform, status FROM field_maps "
        "WHERE id = ?",
        (row_id,),
    )
    if not rows:
        raise MigratorError(f"no field-map row {row_id}")
    row = rows[0]
    row["transform"] = json.loads(row["transform"] or "{}")
    return row


def _playbook(project: Project) -> Playbook:
    return load_playbook(project.source, project.target, project.edition)


def bound_spec(project: Project, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the playbook's defaults, as the payload builders bind it at load."""
    playbook = _playbook(project)
    return transforms.bind(spec, region=playbook.raw.get("default_phone_region"), tz=playbook.default_timezone)


def _columns_read(spec: dict[str, Any], source_field: str) -> list[str]:
    try:
        spec = transforms.validate(spec)  # "A, B" → ["A", "B"]; a half-typed spec reads the row's own column
    except UsageError:
        return [source_field]
    if spec["type"] == "join":
        return list(spec.get("columns") or transforms.template_columns(spec.get("template") or "")) or [source_field]
    return [source_field]


def set_transform(project: Project, row_id: int, spec: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
    """Validate ``spec`` and store it on the row, which becomes confirmed by ``actor`` (one audited step).

    Raises UsageError for a bad spec, a column the object does not have, a row with no destination, a
    ``decompose``/``merge`` descriptor (those describe the playbook's parts, not a field), or a change of type
    on a key, lookup or owner row. Returns ``{"row", "transform", "changed"}``.
    """
    row = _field_row(project, row_id)
    where = f"{row['source_object']}.{row['source_field']}"
    normal = transforms.validate(spec)
    kind = normal["type"]
    if kind in ("decompose", "merge"):
        raise UsageError(f"{kind} describes how the playbook's parts build records; it is not set on a field")
    if row["target_entity"] is None:
        raise UsageError(f"{where} is not mapped; choose its destination field before its transform")
    stored = row["transform"]
    if stored.get("type") in _FIXED_TYPES and kind != stored.get("type"):
        raise UsageError(
            f"{where} → {row['target_entity']}.{row['target_field']} is the record's {stored['type']}; "
            "its type comes from the playbook"
        )
    if kind == "join":
        known = set(project.source_columns(row["source_object"]))
        for column in _columns_read(normal, row["source_field"]):
            if column not in known:
                raise UsageError(f"transform join: {row['source_object']} has no column {column!r}")
    for key in ("custom_type", "to"):  # schema hints and the lookup's parent travel with the row
        if key in stored and key not in normal and (key != "to" or kind == "lookup"):
            normal[key] = stored[key]
    if normal == stored and row["status"] == "confirmed":
        return {"row": row_id, "transform": normal, "changed": False}
    who = actor or current_actor()
    with project.step("map transform", {"row": row_id, "source": where, "before": stored, "after": normal}, actor=who):
        conn = project.db.conn
        conn.execute(
            "UPDATE field_maps SET transform = ?, status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
            "WHERE id = ?",
            (json.dumps(normal), who, now_iso(), row_id),
        )
        pending = conn.execute(
            "SELECT (SELECT COUNT(*) FROM field_maps WHERE status = 'proposed') + "
            "(SELECT COUNT(*) FROM value_maps WHERE status = 'proposed')"
        ).fetchone()[0]
        if not pending:  # as confirm_rows does: the last confirmation confirms the object map
            conn.execute(
                "UPDATE object_maps SET status = 'confirmed', confirmed_by = ?, confirmed_at = ? "
                "WHERE status != 'confirmed'",
                (who, now_iso()),
            )
    return {"row": row_id, "transform": normal, "changed": True}


def sample_rows(project: Project, row_id: int, spec: dict[str, Any] | None = None, limit: int = 20) -> list[dict]:
    """Up to ``limit`` staged rows with distinct, non-empty values in the columns the spec reads.

    An editor can keep these and call :func:`transforms.preview` on every keystroke without the database.
    """
    row = _field_row(project, row_id)
    columns = _columns_read(spec or row["transform"], row["source_field"])
    seen: set[tuple[str, ...]] = set()
    picked: list[dict[str, Any]] = []
    for scanned, (_sid, raw) in enumerate(project.iter_staged(row["source_object"])):
        if scanned >= SCAN_LIMIT or len(picked) >= limit:
            break
        values = tuple("" if raw.get(c) is None else str(raw.get(c)).strip() for c in columns)
        if any(values) and values not in seen:
            seen.add(values)
            picked.append(raw)
    return picked


def preview_row(
    project: Project, row_id: int, spec: dict[str, Any] | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """``spec`` (or the row's stored transform) on the row's real staged values: [{raw, value, error, notes}].

    Multi-column specs see the whole row (``raw`` then names the columns read). A lookup shows where each
    value resolves through the crosswalk.
    """
    row = _field_row(project, row_id)
    chosen = spec if spec is not None else row["transform"]
    rows = sample_rows(project, row_id, chosen, limit)
    kind = transforms.ALIASES.get(chosen.get("type") or "text", chosen.get("type") or "text")
    multi = kind in ("join", "decompose", "merge")
    samples = [] if multi else [r.get(row["source_field"]) for r in rows]
    results = transforms.preview(bound_spec(project, chosen), samples, rows=rows)
    if kind == "lookup" and chosen.get("to"):
        _resolve_lookups(project, chosen["to"], results)
    return results


def _resolve_lookups(project: Project, to: str, results: list[dict[str, Any]]) -> None:
    playbook = _playbook(project)
    try:
        parent = playbook.part(to)
    except (KeyError, MigratorError):
        for result in results:
            result["notes"].append(f"the playbook has no part {to!r}")
        return
    for result in results:
        if result["error"] or not result["value"]:
            continue
        key = destination_key(playbook, parent.obj, result["value"], parent.name)
        dest = project.scalar("SELECT dest_id FROM xref WHERE target_entity = ? AND key = ?", (parent.entity, key))
        result["notes"].append(
            f"crosswalk: {parent.entity} {dest}" if dest else f"crosswalk: no {parent.entity} loaded for {key} yet"
        )


# ---------------------------------------------------------------------------------------------- structure


def describe_object(project: Project, obj_name: str) -> list[dict[str, Any]]:
    """The playbook's record structure for one imported object as validated ``decompose``/``merge`` specs.

    ``decompose`` appears when a row becomes several records (e.g. a customer → account + contact), ``merge``
    for each grouped part (e.g. form answers → one note per booking). Roles map to the mapped source columns.
    """
    if obj_name not in project.source_object_names():
        raise MigratorError(f"no imported object {obj_name!r}")
    playbook = _playbook(project)
    obj = playbook.obj(obj_name)
    columns = role_columns(project).get(obj_name, {})
    roles = {role: columns.get(role) for role in obj.roles}
    id_field = project.scalar("SELECT id_field FROM source_objects WHERE name = ?", (obj_name,))
    id_columns = id_field.split(" + ") if id_field else [columns[r] for r in obj.id_roles if r in columns]
    raw_parts = {p["part"]: p for o in playbook.raw.get("objects", []) if o["name"] == obj_name for p in o["parts"]}
    specs: list[dict[str, Any]] = []
    plain = [p for p in obj.parts if not p.group_by]
    if len(plain) > 1 and id_columns:
        parts = []
        for part in plain:
            described: dict[str, Any] = {"part": part.name, "entity": part.entity}
            if part.skip_when:
                described["skip_when"] = [dict(rule) for rule in part.skip_when]
            empty_rules = raw_parts.get(part.name, {}).get("skip_when_empty")
            if empty_rules and project.target == "salesforce":  # only the Salesforce builder reads these
                described["skip_when_empty"] = list(empty_rules)
            parts.append(described)
        specs.append(
            transforms.validate(
                {
                    "type": "decompose",
                    "object": obj_name,
                    "key_prefix": playbook.key_prefix,
                    "id_columns": id_columns,
                    "parts": parts,
                    "roles": roles,
                }
            )
        )
    for part in obj.parts:
        if part.group_by:
            specs.append(
                transforms.validate(
                    {
                        "type": "merge",
                        "object": obj_name,
                        "part": part.name,
                        "entity": part.entity,
                        "key_prefix": playbook.key_prefix,
                        "group_by": list(part.group_by),
                        "roles": roles,
                        "aggregate": part.aggregate,
                    }
                )
            )
    return specs


def preview_object(project: Project, obj_name: str, limit: int = 20) -> list[dict[str, Any]]:
    """Each structure spec of the object with its preview on staged rows: [{"spec", "preview"}].

    ``decompose`` shows the records of the first ``limit`` rows; ``merge`` the first ``limit`` whole groups
    (all their rows, wherever they sit in the export).
    """
    out = []
    for spec in describe_object(project, obj_name):
        if spec["type"] == "decompose":
            rows = [raw for _sid, raw in islice(project.iter_staged(obj_name), limit)]
        else:
            wanted: set[str] = set()
            rows = []
            for _sid, raw in project.iter_staged(obj_name):
                gid = transforms.merge_group_id(spec, raw)
                if gid not in wanted and len(wanted) >= limit:
                    continue
                wanted.add(gid)
                rows.append(raw)
        out.append({"spec": spec, "preview": transforms.preview(spec, [], rows=rows)})
    return out
