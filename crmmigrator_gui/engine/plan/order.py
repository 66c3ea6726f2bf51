"""Load order and record grouping, shared by the load, the report and rollback.

Parents load before children: a part that looks up another part waits for it; owners
(field workers matched to users) are resolved before anything is written. Forward links
(account → its primary contact) are not ordering edges: they are a second pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook
from crmmigrator_gui.engine.project.store import Project


def load_order(playbook: Playbook, imported: Iterable[str]) -> list[Part]:
    """Topological order of the parts of the imported objects (playbook order breaks ties)."""
    present = set(imported)
    parts = [p for p in playbook.parts() if p.obj in present]
    names = {p.qualified for p in parts}
    deps: dict[str, set[str]] = {
        p.qualified: {lk["to"] for lk in p.lookups if lk["to"] in names and lk["to"] != p.qualified} for p in parts
    }
    ordered: list[Part] = []
    done: set[str] = set()
    while len(ordered) < len(parts):
        ready = [p for p in parts if p.qualified not in done and deps[p.qualified] <= done]
        if not ready:
            cycle = ", ".join(sorted(names - done))
            raise MigratorError(f"the playbook's lookups form a cycle among: {cycle}")
        ordered.append(ready[0])
        done.add(ready[0].qualified)
    return ordered


def role_columns(project: Project) -> dict[str, dict[str, str]]:
    """object -> role -> source column, from the stored field map."""
    result: dict[str, dict[str, str]] = defaultdict(dict)
    for row in project.query(
        "SELECT source_object, source_field, role FROM field_maps WHERE role IS NOT NULL ORDER BY id"
    ):
        result[row["source_object"]].setdefault(row["role"], row["source_field"])
    return result


def group_id(part: Part, raw: dict[str, Any], columns: dict[str, str]) -> str:
    values = []
    for role in part.group_by:
        value = raw.get(columns.get(role, ""))
        values.append("" if value is None else str(value).strip())
    return "~".join(values)


def members_by_record(project: Project, part: Part) -> dict[str, list[str]]:
    """Destination record id (source id, or group id for merged parts) -> staged source ids."""
    if not part.group_by:
        return {sid: [sid] for sid, _raw in project.iter_staged(part.obj)}
    columns = role_columns(project).get(part.obj, {})
    groups: dict[str, list[str]] = defaultdict(list)
    for sid, raw in project.iter_staged(part.obj):
        groups[group_id(part, raw, columns)].append(sid)
    return dict(groups)
