"""Value maps: every distinct source value of a mapped choice column, its count and a destination option.

Why the destination decides: option sets differ per environment (Dataverse assigns option integers per org,
Salesforce picklists are per org), so a suggestion is only as good as the metadata it was checked against.
The destination's choice columns are read once and cached in the project (meta key ``destination_options``)
so the map can be reviewed offline. Custom choice columns the playbook's schema has not created yet are
*planned*: their labels are known, their stored values are not (the load resolves those by label).

Suggestions (the rules live in :mod:`.value_match`), in order: the playbook's ``value_map.suggest``; the
same label at the destination ignoring case, spaces and punctuation (InProgress = In Progress, Enroute = En
Route); a close spelling (rapidfuzz: Canceled ≈ Cancelled), never across a negating prefix (Active ≠
Inactive) or different numbers. A value with no suggestion is ``unmapped`` and blocks the load until someone
decides: an option, a new option added through the metadata API (:func:`add_option`), or "leave empty"
(:func:`set_value` with an empty label).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from rapidfuzz import fuzz, process

from crmmigrator_gui.engine.errors import DestinationError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.mapping.value_match import FUZZY_MARGIN as FUZZY_MARGIN
from crmmigrator_gui.engine.mapping.value_match import FUZZY_MIN as FUZZY_MIN
from crmmigrator_gui.engine.mapping.value_match import _same, _stored, suggest_option
from crmmigrator_gui.engine.mapping.value_match import compact as compact
from crmmigrator_gui.engine.mapping.value_match import mapped_value as mapped_value
from crmmigrator_gui.engine.mapping.value_match import resolve_option as resolve_option
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso

OPTIONS_META_KEY = "destination_options"  # {entity: {"present", "read_at", "fields", "columns": {field: column}}}
REASONS_META_KEY = "value_map_reasons"  # {"obj|field|entity|target|value": why this target was proposed}
DV_CHOICE_TYPES = ("Picklist", "Status", "State")
SOLUTION = "crmmigrator"  # the solution new Dataverse options are added to (as plan.schema)
NOT_CHOICE: dict[str, Any] = {"not_choice": True}  # the column exists at the destination and is not a choice
_SKIP_TRANSFORMS = ("key", "lookup", "owner")

_MAPPED = (
    "EXISTS (SELECT 1 FROM field_maps f WHERE f.source_object = v.source_object AND f.source_field = "
    "v.source_field AND f.target_entity = v.target_entity AND f.target_field = v.target_field "
    "AND f.status != 'unmapped')"
)


# ---------------------------------------------------------------------------------------------- options


def _choice(kind: str, origin: str, options: list[dict[str, Any]], **flags: bool) -> dict[str, Any]:
    return {"kind": kind, "origin": origin, "restricted": True, "custom": False, **flags, "options": options}


def fetch_options(project: Project, client: Any, entities: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Read the choice columns of ``entities`` from the destination (network only, no project writes)."""
    out: dict[str, dict[str, Any]] = {}
    read_at = now_iso()
    names = {}
    if project.target == "salesforce":
        names = {str(o.get("name", "")).lower(): str(o["name"]) for o in client.describe_global()}
    for entity in sorted(set(entities)):
        out[entity] = {"present": False, "read_at": read_at, "fields": [], "columns": {}}
        if project.target == "salesforce" and entity.lower() in names:
            name = names[entity.lower()]
            out[entity].update(present=True, fields=[f.name for f in client.describe(name).fields.values()])
            for field, spec in client.picklist_fields(name).items():
                flags = {"restricted": spec["restricted"], "custom": spec["custom"]}
                out[entity]["columns"][field] = _choice(spec["type"], "destination", spec["options"], **flags)
        elif project.target != "salesforce" and client.entity_exists(entity):
            meta = client.entity(entity)
            out[entity].update(present=True, fields=sorted(meta.attributes))
            for name, attr in meta.attributes.items():
                if attr.type in DV_CHOICE_TYPES:
                    options = [{"value": v, "label": text} for v, text in attr.options.items()]
                    out[entity]["columns"][name] = _choice(attr.type, "destination", options)
    return out


def _planned(playbook: Playbook) -> dict[tuple[str, str], dict[str, Any]]:
    """Choice columns the playbook's schema creates, with the labels they will have."""
    labels: dict[tuple[str, str], list[str]] = defaultdict(list)
    for obj in playbook.objects:
        for role in obj.roles.values():
            for target in role.targets if role.value_map else ():
                place = playbook.entity_of_target(obj, target)
                if place:
                    labels[place].extend(role.value_map.get("suggest", {}).values())  # type: ignore[union-attr]
    planned = {}
    for column in playbook.schema.get("columns", []):
        if column.get("type") != "Picklist":
            continue
        restricted = bool(column.get("restricted")) if playbook.target == "salesforce" else False
        # Schema apply creates a Dataverse choice (or an open Salesforce picklist) with the value map's labels.
        names = list(column.get("values") or []) + ([] if restricted else labels[(column["entity"], column["name"])])
        options = [{"value": None, "label": label} for label in dict.fromkeys(names)]
        kind = "picklist" if playbook.target == "salesforce" else "Picklist"
        flags = {"restricted": restricted, "custom": True, "open": not restricted}
        planned[(column["entity"], column["name"])] = _choice(kind, "planned", options, **flags)
    return planned


def _api_name(project: Project, field: str) -> str:
    if project.target == "salesforce":
        from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

        return custom_field_name(field)
    return field


def _column(
    project: Project, playbook: Playbook, cache: dict[str, Any], entity: str, field: str
) -> dict[str, Any] | None:
    """The choice column (destination or planned), ``NOT_CHOICE``, or None when nothing is known."""
    name = _api_name(project, field).lower()
    ent = cache.get(entity)
    if ent:
        for key, column in ent.get("columns", {}).items():
            if key.lower() == name:
                return dict(column)
        if ent.get("present") and name in {f.lower() for f in ent.get("fields", [])}:
            return NOT_CHOICE
    for (p_entity, p_field), column in _planned(playbook).items():
        if p_entity.lower() == entity.lower() and p_field.lower() == name:
            return dict(column)
    return None


def _merge(project: Project, fetched: Mapping[str, dict[str, Any]], *, write: bool = True) -> dict[str, Any]:
    """Fresh reads replace cached entities; planned columns (and labels added to them) survive until created."""
    cache = dict(project.meta(OPTIONS_META_KEY, {}) or {})
    for entity, fresh in fetched.items():
        present = {f.lower() for f in fresh["fields"]}
        kept = {n: c for n, c in (cache.get(entity) or {}).get("columns", {}).items() if c.get("origin") == "planned"}
        columns = {**{n: c for n, c in kept.items() if n.lower() not in present}, **fresh["columns"]}
        cache[entity] = {**fresh, "columns": columns}
    if write:
        project.set_meta(OPTIONS_META_KEY, cache)
    return cache


def destination_options(
    project: Project, target_entity: str, target_field: str, client: Any = None
) -> list[dict[str, Any]]:
    """The options of one destination choice column ``[{value, label}]``: read fresh (and cached) with a
    client, else from the cache, else the planned labels; ``[]`` for a column that is not a choice."""
    if client is not None:
        fetched = fetch_options(project, client, [target_entity])
        with project.step("value options read", {"entity": target_entity, "field": target_field}):
            _merge(project, fetched)
    playbook = load_playbook(project.source, project.target, project.edition)
    column = _column(project, playbook, project.meta(OPTIONS_META_KEY, {}) or {}, target_entity, target_field)
    return [] if column in (None, NOT_CHOICE) else list(column["options"])  # type: ignore[index]


# ---------------------------------------------------------------------------------------------- store


KEY_COLUMNS = ("source_object", "source_field", "target_entity", "target_field", "source_value")


def _key(row: Mapping[str, Any]) -> str:
    return "|".join(str(row[k]) for k in KEY_COLUMNS)


def _option_for(options: list[dict[str, Any]], label: str | None, stored: str | None = None) -> dict[str, Any] | None:
    """The option a label names; with ``stored``, the stored one first while it still carries the label."""
    same = [o for o in options if _same(o["label"], label)]
    return next((o for o in same if _stored(o) == stored), same[0] if same else None)


def store_value_maps(
    project: Project,
    playbook: Playbook,
    client: Any = None,
    *,
    fetched: Mapping[str, dict[str, Any]] | None = None,
    only: tuple[str, str] | None = None,
) -> dict[str, int]:
    """List every distinct value of every mapped choice column with a suggestion; confirmed rows keep theirs.

    Choice columns are enum roles with a playbook value map and any mapped column the destination (cached or
    read now through ``client``) says is a choice. ``only=(object, field)`` limits the work to one source
    column (after a retarget). Runs in the caller's step when there is one, else in its own.
    """
    if client is not None and fetched is None:
        fetched = fetch_options(project, client, _mapped_entities(project, only))
    if project.db.conn.in_transaction:
        return _store(project, playbook, fetched, only)
    detail: dict[str, Any] = {"only": only}
    with project.step("value maps", detail):
        detail.update(_store(project, playbook, fetched, only))
    return {k: v for k, v in detail.items() if k != "only"}


def _mapped_entities(project: Project, only: tuple[str, str] | None = None) -> list[str]:
    sql = "SELECT DISTINCT target_entity FROM field_maps WHERE target_entity IS NOT NULL"
    params: tuple[str, ...] = ()
    if only:
        sql, params = sql + " AND source_object = ? AND source_field = ?", only
    return [r["target_entity"] for r in project.query(sql, params)]


def _store(
    project: Project, playbook: Playbook, fetched: Mapping[str, dict[str, Any]] | None, only: tuple[str, str] | None
) -> dict[str, int]:
    conn = project.db.conn
    cache = _merge(project, fetched) if fetched else dict(project.meta(OPTIONS_META_KEY, {}) or {})
    reasons = dict(project.meta(REASONS_META_KEY, {}) or {})
    sql = (
        "SELECT source_object, source_field, target_entity, target_field, role, transform FROM field_maps "
        "WHERE target_entity IS NOT NULL AND status != 'unmapped'"
    )
    rows = [
        r
        for r in project.query(sql)
        if json.loads(r["transform"]).get("type") not in _SKIP_TRANSFORMS
        and (only is None or (r["source_object"], r["source_field"]) == only)
    ]
    plans: list[tuple[dict[str, Any], Mapping[str, str] | None, dict[str, Any] | None]] = []
    for row in rows:
        suggest = _playbook_suggest(playbook, row["source_object"], row["role"])
        column = _column(project, playbook, cache, row["target_entity"], row["target_field"])
        if column is NOT_CHOICE or (column is None and suggest is None):
            continue
        plans.append((row, suggest, column))
    counts = _distinct(project, {(r["source_object"], r["source_field"]) for r, _s, _c in plans})
    stats = {"columns": len(plans), "values": 0, "proposed": 0, "unmapped": 0}
    live: set[tuple[str, str, str, str, str]] = set()
    for row, suggest, column in plans:
        obj, field, entity, target = (
            row[k] for k in ("source_object", "source_field", "target_entity", "target_field")
        )
        for value, count in counts[(obj, field)].items():
            label, stored, reason = suggest_option(value, suggest, column)
            status = "proposed" if label is not None else "unmapped"
            live.add((obj, field, entity, target, value))
            conn.execute(
                "INSERT INTO value_maps (source_object, source_field, target_entity, target_field, source_value, "
                "count, target_label, target_value, status) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "count = excluded.count, "
                "target_label = iif(status = 'confirmed', target_label, excluded.target_label), "
                "target_value = iif(status = 'confirmed', target_value, excluded.target_value), "
                "status = iif(status = 'confirmed', status, excluded.status)",
                (obj, field, entity, target, value, count, label, stored, status),
            )
            confirmed = project.scalar(
                "SELECT status = 'confirmed' FROM value_maps WHERE source_object = ? AND source_field = ? AND "
                "target_entity = ? AND target_field = ? AND source_value = ?",
                (obj, field, entity, target, value),
            )
            if not confirmed:
                reasons["|".join((obj, field, entity, target, value))] = reason
                stats[status] += 1
            stats["values"] += 1
    # Unconfirmed rows whose value or column is gone; decisions the user made are kept.
    for old in project.query(
        "SELECT source_object, source_field, target_entity, target_field, source_value FROM value_maps "
        "WHERE status != 'confirmed'"
    ):
        ident = tuple(old.values())
        if only is not None and ident[:2] != only:
            continue
        if ident not in live:
            conn.execute(
                "DELETE FROM value_maps WHERE source_object = ? AND source_field = ? AND target_entity = ? AND "
                "target_field = ? AND source_value = ?",
                ident,
            )
            reasons.pop("|".join(ident), None)
    project.set_meta(REASONS_META_KEY, reasons)
    return stats


def _playbook_suggest(playbook: Playbook, source_object: str, role_name: str | None) -> Mapping[str, str] | None:
    """The playbook's ``value_map.suggest`` for an enum role (None for any other column)."""
    if not role_name or source_object not in {o.name for o in playbook.objects}:
        return None
    role = playbook.obj(source_object).roles.get(role_name)
    return role.value_map.get("suggest", {}) if role and role.kind == "enum" and role.value_map else None


def _distinct(project: Project, columns: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, int]]:
    """Counts of every distinct non-blank value, one pass over each object's staged rows."""
    counts: dict[tuple[str, str], dict[str, int]] = {c: defaultdict(int) for c in columns}
    by_object: dict[str, list[str]] = defaultdict(list)
    for obj, field in columns:
        by_object[obj].append(field)
    for obj, fields in by_object.items():
        for _sid, raw in project.iter_staged(obj):
            for field in fields:
                value = raw.get(field)
                if value is not None and str(value).strip():
                    counts[(obj, field)][str(value).strip()] += 1
    return counts


# ---------------------------------------------------------------------------------------------- review


def value_rows(
    project: Project, *, source_object: str | None = None, source_field: str | None = None
) -> list[dict[str, Any]]:
    """Value-map rows of mapped columns, most frequent first, each with its reason and the column's options."""
    sql = (
        "SELECT v.rowid AS id, v.source_object, v.source_field, v.target_entity, v.target_field, v.source_value, "
        "v.count, v.target_label, v.target_value, v.status, v.confirmed_by, v.confirmed_at, v.notes, "
        f"v.customer_change FROM value_maps v WHERE {_MAPPED}"
    )
    params: list[str] = []
    for column, wanted in (("source_object", source_object), ("source_field", source_field)):
        if wanted is not None:
            sql += f" AND v.{column} = ?"
            params.append(wanted)
    rows = project.query(
        sql + " ORDER BY v.source_object, v.source_field, v.target_entity, v.count DESC", tuple(params)
    )
    playbook = load_playbook(project.source, project.target, project.edition)
    cache = project.meta(OPTIONS_META_KEY, {}) or {}
    reasons = project.meta(REASONS_META_KEY, {}) or {}
    options: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        place = (row["target_entity"], row["target_field"])
        if place not in options:
            column = _column(project, playbook, cache, *place)
            options[place] = [] if column in (None, NOT_CHOICE) else list(column["options"])  # type: ignore[index]
        row["options"] = options[place]
        row["reason"] = reasons.get(_key(row), "")
    return rows


def unmapped_values(project: Project) -> list[dict[str, Any]]:
    """Values of mapped choice columns nobody has decided about yet (pre-flight lists them; load refuses)."""
    return [r for r in value_rows(project) if r["status"] == "unmapped"]


def pending_values(project: Project) -> tuple[int, int]:
    """(proposed, unmapped) value rows of mapped columns: both block the load."""
    row = project.db.conn.execute(
        "SELECT COALESCE(SUM(v.status = 'proposed'), 0), COALESCE(SUM(v.status = 'unmapped'), 0) "
        f"FROM value_maps v WHERE {_MAPPED}"
    ).fetchone()
    return int(row[0]), int(row[1])


def set_value(project: Project, row_id: int, target_label: str | None, *, actor: str | None = None) -> dict[str, Any]:
    """Decide one value: a destination option by label (or by its stored value), or ``""`` to leave it empty.

    The label is checked against the column's options (a UsageError names the closest ones); the row becomes
    confirmed by ``actor`` now, with the option's stored value.
    """
    rows = project.query("SELECT rowid AS id, * FROM value_maps WHERE rowid = ?", (row_id,))
    if not rows:
        raise MigratorError(f"no value-map row {row_id}")
    row = rows[0]
    who = actor or current_actor()
    entity, field = row["target_entity"], row["target_field"]
    label: str | None = (target_label or "").strip() or None
    stored: str | None = None
    reason = f"left empty by {who}"
    if label is not None:
        playbook = load_playbook(project.source, project.target, project.edition)
        column = _column(project, playbook, project.meta(OPTIONS_META_KEY, {}) or {}, entity, field)
        options = [] if column in (None, NOT_CHOICE) else list(column["options"])  # type: ignore[index]
        option = _option_for(options, label) or next(
            (o for o in options if o["value"] is not None and str(o["value"]) == label), None
        )
        if option is not None:
            label, stored = option["label"], _stored(option)
        elif column is None or (column is not NOT_CHOICE and (column.get("open") or not column.get("restricted"))):
            stored = label if column and column.get("origin") == "destination" else None  # an open picklist's value
        else:
            labels = [str(o["label"]) for o in options]
            close = [m[0] for m in process.extract(label, labels, scorer=fuzz.WRatio, limit=3)] if labels else []
            raise UsageError(
                f"{entity}.{field} has no option {label!r}"
                + (f"; closest: {', '.join(close)}" if close else "")
                + "; or add it as a new option first (`map value … --add-option`)"
            )
        reason = f"set by {who}"
    with project.step("map value", {"row": row_id, "source_value": row["source_value"], "label": label}, actor=who):
        project.db.conn.execute(
            "UPDATE value_maps SET target_label = ?, target_value = ?, status = 'confirmed', confirmed_by = ?, "
            "confirmed_at = ? WHERE rowid = ?",
            (label, stored, who, now_iso(), row_id),
        )
        reasons = dict(project.meta(REASONS_META_KEY, {}) or {})
        reasons[_key(row)] = reason
        project.set_meta(REASONS_META_KEY, reasons)
    return {"id": row_id, "target_label": label, "target_value": stored, "status": "confirmed", "confirmed_by": who}


def add_option(
    project: Project, target_entity: str, target_field: str, label: str, *, actor: str | None = None, client: Any = None
) -> dict[str, Any]:
    """Add ``label`` to a destination choice column through its metadata API; returns ``{value, label}``.

    Dataverse: ``InsertOptionValue`` + publish. Salesforce: a value on a custom picklist through Tooling
    (standard picklists raise MigratorError: Setup only). Idempotent: an existing label returns its option. A
    planned column (not created yet) records the label so ``schema apply`` creates it (``value`` None). Unmapped
    values of the column that now match are proposed again. Runs network calls first, then one audited step.
    """
    text = label.strip()
    if not text:
        raise UsageError("give the new option a label")
    who = actor or current_actor()
    playbook = load_playbook(project.source, project.target, project.edition)
    if client is None:
        from crmmigrator_gui.engine.target.connection import destination

        with destination(project) as opened:
            option, fetched, planned = _add(project, playbook, opened, target_entity, target_field, text)
    else:
        option, fetched, planned = _add(project, playbook, client, target_entity, target_field, text)
    detail = {"entity": target_entity, "field": target_field, "label": option["label"], "value": option["value"]}
    with project.step("value option add", detail, actor=who):
        cache = _merge(project, fetched)
        if planned is not None:
            column = dict(planned)
            column["options"] = [*column["options"], option]
            ent = cache.setdefault(target_entity, {"present": False, "read_at": now_iso(), "fields": [], "columns": {}})
            ent.setdefault("columns", {})[_api_name(project, target_field)] = column
            project.set_meta(OPTIONS_META_KEY, cache)
        _repropose_unmapped(project, playbook, cache, target_entity, target_field)
    return {
        "value": option["value"],
        "label": option["label"],
        **({"planned": True} if option["value"] is None else {}),
    }


def _add(
    project: Project, playbook: Playbook, client: Any, entity: str, field: str, label: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(option, fresh reads, planned column or None) — the destination call itself."""
    fetched = fetch_options(project, client, [entity])
    column = _column(project, playbook, _merge(project, fetched, write=False), entity, field)
    if column is None:
        raise MigratorError(f"{entity}.{field} does not exist at the destination and the playbook does not create it")
    if column is NOT_CHOICE:
        raise MigratorError(f"{entity}.{field} is not a choice column at the destination")
    existing = next((o for o in column["options"] if _same(o["label"], label)), None)
    if existing is not None:
        return existing, fetched, None
    if column["origin"] == "planned":
        if not column.get("open"):
            raise MigratorError(
                f"{entity}.{field} is created as a restricted picklist by `schema apply`; run it first, then add "
                f"{label!r}"
            )
        return {"value": None, "label": label}, fetched, column
    name = _api_name(project, field)
    if project.target == "salesforce":
        if not column.get("custom"):
            raise MigratorError(
                f"{entity}.{name} is a standard picklist: the API cannot add values to it; add {label!r} in Setup → "
                f"Object Manager → {entity} → Fields & Relationships → {name} → Values, then refresh the map"
            )
        client.add_picklist_value(entity, name, label)
    else:
        if column["kind"] != "Picklist":
            raise MigratorError(
                f"{entity}.{field} is a {column['kind'].lower()} column: add the status reason {label!r} in the "
                "maker portal (it needs a state), then refresh the map"
            )
        client.insert_option_value(entity, name, label, solution=SOLUTION)
    fetched = fetch_options(project, client, [entity])
    created = _column(project, playbook, {entity: fetched[entity]}, entity, field)
    option = next((o for o in (created or {}).get("options", []) if _same(o["label"], label)), None)
    if option is None:
        raise DestinationError(f"{entity}.{field}: the new option {label!r} does not show in the metadata read back")
    return option, fetched, None


def _repropose_unmapped(project: Project, playbook: Playbook, cache: dict[str, Any], entity: str, field: str) -> None:
    column = _column(project, playbook, cache, entity, field)
    if column in (None, NOT_CHOICE):
        return
    reasons = dict(project.meta(REASONS_META_KEY, {}) or {})
    for row in project.query(
        "SELECT rowid AS id, * FROM value_maps WHERE target_entity = ? AND target_field = ? AND status = 'unmapped'",
        (entity, field),
    ):
        role = project.scalar(
            "SELECT role FROM field_maps WHERE source_object = ? AND source_field = ? AND role IS NOT NULL",
            (row["source_object"], row["source_field"]),
        )
        suggest = _playbook_suggest(playbook, row["source_object"], role)
        label, stored, reason = suggest_option(row["source_value"], suggest, column)
        if label is not None:
            project.db.conn.execute(
                "UPDATE value_maps SET target_label = ?, target_value = ?, status = 'proposed' WHERE rowid = ?",
                (label, stored, row["id"]),
            )
            reasons[_key(row)] = reason
    project.set_meta(REASONS_META_KEY, reasons)


def refresh_options(project: Project, client: Any = None, *, actor: str | None = None) -> dict[str, int]:
    """Re-read every mapped choice column and pin stored values: fill or correct ``target_value`` from the
    label, and flag values whose label the destination no longer has (``unmapped`` again). This is a map
    change like any other: a sign-off given before it no longer holds if a stored value moved."""
    if client is None:
        from crmmigrator_gui.engine.target.connection import destination

        with destination(project) as opened:
            return refresh_options(project, opened, actor=actor)
    playbook = load_playbook(project.source, project.target, project.edition)
    fetched = fetch_options(project, client, _mapped_entities(project))
    stats = {"entities": len(fetched), "pinned": 0, "lost": 0}
    with project.step("value options refresh", stats, actor=actor or current_actor()):
        cache = _merge(project, fetched)
        reasons = dict(project.meta(REASONS_META_KEY, {}) or {})
        for row in project.query(
            "SELECT rowid AS id, * FROM value_maps v WHERE target_label IS NOT NULL AND " + _MAPPED
        ):
            column = _column(project, playbook, cache, row["target_entity"], row["target_field"])
            if column in (None, NOT_CHOICE) or column["origin"] != "destination":  # type: ignore[index]
                continue
            option = _option_for(column["options"], row["target_label"], row["target_value"])  # type: ignore[index]
            if option is None:
                project.db.conn.execute(
                    "UPDATE value_maps SET status = 'unmapped', target_value = NULL WHERE rowid = ?", (row["id"],)
                )
                reasons[_key(row)] = f"{row['target_label']!r} is no longer an option at the destination"
                stats["lost"] += 1
            elif _stored(option) != row["target_value"]:
                project.db.conn.execute(
                    "UPDATE value_maps SET target_value = ? WHERE rowid = ?", (_stored(option), row["id"])
                )
                stats["pinned"] += 1
        project.set_meta(REASONS_META_KEY, reasons)
    return stats
