"""Propose the field map, with a confidence and a human-readable reason for every row.

Signals combined here: the header name against the playbook's synonyms (normalised, then
rapidfuzz), and the column's content profile against the role's kind (an "Email" column whose
values are phone numbers is demoted). Roles are assigned one-to-one, best score first.
Columns that match nothing become custom-column proposals where the playbook says the object
carries tenant custom fields; credentials are proposed as "do not migrate".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rapidfuzz import process

from crmmigrator_gui.engine.mapping.names import match_name, normalize, slug
from crmmigrator_gui.engine.mapping.playbook import Playbook, Role, SourceObject, load_playbook
from crmmigrator_gui.engine.project.store import Project

PROPOSE_THRESHOLD = 0.62

# Which profiled types are consistent with a role kind (profile.py's vocabulary).
_COMPATIBLE: dict[str, set[str]] = {
    "email": {"email"},
    "phone": {"phone", "integer"},
    "date": {"date", "datetime", "integer"},
    "datetime": {"datetime", "date"},
    "money": {"money", "decimal", "integer"},
    "integer": {"integer"},
    "boolean": {"boolean"},
    "postcode": {"postcode", "integer", "text"},
    "text": {"text", "longtext", "postcode", "integer", "url"},
    "memo": {"text", "longtext"},
    "enum": {"text", "boolean"},
    "names": {"text", "longtext"},
    "time": {"text", "datetime"},
}
_TYPE_WORDS = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "date": "dates",
    "datetime": "date-times",
    "money": "amounts",
    "decimal": "numbers",
    "integer": "whole numbers",
    "boolean": "yes/no values",
    "postcode": "postcodes",
    "text": "text",
    "longtext": "long text",
    "url": "web addresses",
}
_CUSTOM_TYPES = {
    "integer": "Integer",
    "decimal": "Decimal",
    "money": "Money",
    "boolean": "Boolean",
    "date": "DateOnly",
    "datetime": "DateTime",
    "longtext": "Memo",
}


@dataclass
class Proposal:
    source_object: str
    source_field: str
    target_entity: str | None
    target_field: str | None
    role: str | None
    transform: dict[str, Any]
    confidence: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "source_object": self.source_object,
            "source_field": self.source_field,
            "target_entity": self.target_entity,
            "target_field": self.target_field,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
        }


def _content_fit(role: Role, profile: dict[str, Any] | None) -> tuple[float, str]:
    """Adjustment to the name score from what the values look like, with the words for the reason."""
    if profile is None or profile["inferred_type"] == "empty":
        return -0.05, "column is empty"
    inferred = profile["inferred_type"]
    words = _TYPE_WORDS.get(inferred, inferred)
    allowed = _COMPATIBLE.get(role.kind)
    if role.kind in ("id", "reference", "secret") or allowed is None:
        return 0.0, f"values are {words}"
    if inferred in allowed:
        if role.kind in ("email", "phone", "date", "datetime", "money", "boolean") and inferred == role.kind:
            return 0.02, f"{profile['fill_rate']:.0%} filled, values parse as {words}"
        return 0.0, f"values are {words}"
    return -0.3, f"but values look like {words}, not {role.kind}"


def _transform_for(playbook: Playbook, role: Role | None, profile: dict[str, Any] | None) -> dict[str, Any]:
    kind = role.kind if role else (profile or {}).get("inferred_type", "text")
    spec: dict[str, Any] = {"type": kind}
    if kind in ("date", "datetime"):
        spec["format"] = (profile or {}).get("date_format") or playbook.default_date_format
        spec["tz"] = playbook.default_timezone
    return spec


def propose(project: Project) -> tuple[list[Proposal], list[Proposal]]:
    """Compute proposals (mapped) and unmapped rows for every imported object."""
    playbook = load_playbook(project.source, project.target, project.edition)
    proposals: list[Proposal] = []
    unmapped: list[Proposal] = []
    for row in project.query("SELECT name, columns FROM source_objects ORDER BY name"):
        obj = playbook.obj(row["name"])
        columns: list[str] = json.loads(row["columns"])
        profiles = {p["field"]: p for p in project.query("SELECT * FROM profiles WHERE object = ?", (obj.name,))}
        mapped, rest = _propose_object(playbook, obj, columns, profiles)
        proposals.extend(mapped)
        unmapped.extend(rest)
    return proposals, unmapped


def _propose_object(
    playbook: Playbook, obj: SourceObject, columns: list[str], profiles: dict[str, dict[str, Any]]
) -> tuple[list[Proposal], list[Proposal]]:
    scored: list[tuple[float, str, Role, str]] = []
    for column in columns:
        for role in obj.roles.values():
            match = match_name(column, role.synonyms)
            if match.score < 0.7:
                continue
            adjust, content_words = _content_fit(role, profiles.get(column))
            confidence = min(0.99, (0.97 if match.exact else match.score * 0.93) + adjust)
            relation = "=" if match.exact else "≈"
            reason = f"name {column!r} {relation} {match.synonym!r} ({role.name}); {content_words}"
            scored.append((confidence, column, role, reason))
    scored.sort(key=lambda s: (-s[0], columns.index(s[1])))
    assigned_columns: dict[str, tuple[float, Role, str]] = {}
    used_roles: set[str] = set()
    for confidence, column, role, reason in scored:
        if column in assigned_columns or role.name in used_roles or confidence < PROPOSE_THRESHOLD:
            continue
        assigned_columns[column] = (confidence, role, reason)
        used_roles.add(role.name)

    mapped: list[Proposal] = []
    unmapped: list[Proposal] = []
    for column in columns:
        profile = profiles.get(column)
        if column in assigned_columns:
            confidence, role, reason = assigned_columns[column]
            rows = _rows_for_role(playbook, obj, role, column, confidence, reason, profile)
            if rows:
                mapped.extend(rows)
            else:
                unmapped.append(
                    Proposal(
                        obj.name,
                        column,
                        None,
                        None,
                        role.name,
                        {},
                        confidence,
                        role.do_not_migrate or f"{reason}; used only for grouping",
                    )
                )
            continue
        prefix = obj.custom_fields_prefix or ""
        suffix = obj.custom_fields_suffix or ""
        if (
            obj.custom_fields
            and profile
            and profile["inferred_type"] != "empty"
            and column.startswith(prefix)
            and column.endswith(suffix)
        ):
            entity = obj.custom_fields
            field = f"new_cf_{slug(column[len(prefix) : len(column) - len(suffix)] or column)}"
            if playbook.key_column.endswith("__c"):  # Salesforce: custom fields are Name__c, not new_…
                from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

                field = custom_field_name(field)
            col_type = _CUSTOM_TYPES.get(profile["inferred_type"], "String")
            samples = json.loads(profile["samples"]) if isinstance(profile["samples"], str) else profile["samples"]
            if col_type == "Integer" and any(str(v).startswith("0") and len(str(v)) > 1 for v in samples):
                col_type = "String"  # codes with leading zeros ("0012") must stay text
            transform = _transform_for(playbook, None, profile)
            transform["custom_type"] = col_type
            mapped.append(
                Proposal(
                    obj.name,
                    column,
                    entity,
                    field,
                    None,
                    transform,
                    0.6,
                    f"no standard field matches {column!r}; tenant custom field → new {col_type} column "
                    f"{field} on {entity} ({profile['fill_rate']:.0%} filled)",
                )
            )
            continue
        best = process.extractOne(normalize(column), [normalize(s) for r in obj.roles.values() for s in r.synonyms])
        hint = f"; closest known name {best[0]!r} ({best[1]:.0f}%)" if best else ""
        unmapped.append(Proposal(obj.name, column, None, None, None, {}, 0.0, f"no role matches{hint}"))
    return mapped, unmapped


def _rows_for_role(
    playbook: Playbook,
    obj: SourceObject,
    role: Role,
    column: str,
    confidence: float,
    reason: str,
    profile: dict[str, Any] | None,
) -> list[Proposal]:
    if role.do_not_migrate:
        return []
    rows: list[Proposal] = []
    if role.name in obj.id_roles:
        for part in obj.parts:
            rows.append(
                Proposal(
                    obj.name,
                    column,
                    part.entity,
                    playbook.key_column,
                    role.name,
                    {"type": "key"},
                    confidence,
                    f"{reason}; source id → alternate key",
                )
            )
    for part in obj.parts:
        for lookup in part.lookups:
            if lookup["by_role"] == role.name:
                rows.append(
                    Proposal(
                        obj.name,
                        column,
                        part.entity,
                        lookup["column"],
                        role.name,
                        {"type": "lookup", "to": lookup["to"]},
                        confidence,
                        f"{reason}; lookup → {lookup['to']}",
                    )
                )
        owner = part.owner or {}
        if owner.get("by_role") == role.name:
            rows.append(
                Proposal(
                    obj.name,
                    column,
                    part.entity,
                    "ownerid",
                    role.name,
                    {"type": "owner"},
                    confidence,
                    f"{reason}; owner = field worker matched to a user by e-mail",
                )
            )
    for target in role.targets:
        resolved = playbook.entity_of_target(obj, target)
        if resolved is None:
            continue
        entity, field = resolved
        rows.append(
            Proposal(
                obj.name, column, entity, field, role.name, _transform_for(playbook, role, profile), confidence, reason
            )
        )
    return rows
