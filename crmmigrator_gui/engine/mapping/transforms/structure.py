"""``decompose`` (one row → several records) and ``merge`` (several rows → one record), as the loader builds them.

These describe the playbook's parts so the editor can show and preview them; the loader still builds parts
from the playbook, and :func:`aggregate_value` is the one merge routine both use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from crmmigrator_gui.engine.mapping.playbook import destination_key
from crmmigrator_gui.engine.mapping.transforms.base import TransformError

if TYPE_CHECKING:
    from crmmigrator_gui.engine.mapping.playbook import Playbook


class _KeyPrefix:
    """What :func:`destination_key` reads from a playbook, for descriptors that carry only the prefix."""

    def __init__(self, key_prefix: str) -> None:
        self.key_prefix = key_prefix


def _role_values(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, str]:
    values = {}
    for role, column in (spec.get("roles") or {}).items():
        value = row.get(column) if column else None
        values[role] = "" if value is None else str(value).strip()
    return values


def member_matches(when: dict[str, list[Any]] | None, values: dict[str, str]) -> bool:
    """All conditions hold: the role's value (case-insensitive) is one of the listed values."""
    for role, allowed in (when or {}).items():
        if (values.get(role) or "").lower() not in {str(a).lower() for a in allowed}:
            return False
    return True


def aggregate_value(spec: dict[str, Any], members: list[dict[str, str]]) -> str | None:
    """One aggregate column of a merged record: ``pick`` the first non-empty role value, or one ``line`` per
    member joined by line breaks (members filtered by ``when``). Shared by both payload builders and the preview.
    """
    chosen = [m for m in members if member_matches(spec.get("when"), m)]
    if "pick" in spec:
        return next((m[spec["pick"]] for m in chosen if m.get(spec["pick"])), None)
    return "\n".join(spec["line"].format(**m) for m in chosen)


def decompose_records(spec: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The destination records one source row becomes: part, table, key, and the skip reason if any."""
    source_id = "|".join("" if row.get(c) is None else str(row.get(c)).strip() for c in spec["id_columns"])
    if not source_id.strip("|"):
        raise TransformError(f"no source id (columns {', '.join(spec['id_columns'])} are empty)")
    values = _role_values(spec, row)
    prefix = cast("Playbook", _KeyPrefix(spec.get("key_prefix") or ""))
    records = []
    for part in spec["parts"]:
        reason = None
        for rule in part.get("skip_when", ()):
            if member_matches({rule["role"]: rule["in"]}, values):
                reason = rule.get("reason") or f"{rule['role']} is {values.get(rule['role'])!r}"
                break
        for rule in part.get("skip_when_empty", ()):
            if reason is None and not values.get(rule["role"]):
                reason = rule.get("reason") or f"no {rule['role'].replace('_', ' ')}"
        records.append(
            {
                "part": part["part"],
                "entity": part.get("entity"),
                "key": destination_key(prefix, spec["object"], source_id, part["part"]),
                "skipped": reason,
            }
        )
    return records


def merge_group_id(spec: dict[str, Any], row: dict[str, Any]) -> str:
    """The merged record a row belongs to: its group-by values joined by ``~`` (as the loader groups)."""
    values = _role_values(spec, row)
    return "~".join(values.get(role, "") for role in spec["group_by"])


def merge_groups(spec: dict[str, Any], rows: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """Rows grouped as the loader groups them: {group id, key, members, aggregate column → text}."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        gid = merge_group_id(spec, row)
        if gid not in groups:
            if limit is not None and len(groups) >= limit:
                continue
            groups[gid] = []
        groups[gid].append(_role_values(spec, row))
    prefix = cast("Playbook", _KeyPrefix(spec.get("key_prefix") or ""))
    return [
        {
            "group": gid,
            "key": destination_key(prefix, spec["object"], gid, spec["part"]),
            "members": len(members),
            "columns": {column: aggregate_value(agg, members) for column, agg in spec["aggregate"].items()},
        }
        for gid, members in groups.items()
    ]
