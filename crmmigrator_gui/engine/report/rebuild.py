"""The rebuild reference package: what cannot migrate as data, for the admin to rebuild natively.

The seeds promise a JSON export of the source's workflows, automations, forms and report definitions "where the
source exposes them", plus a written inventory with the recommended rebuild path. Two inputs are merged:

* what the source exposed (``source.extract.definitions``, stored in project meta ``source_definitions``): each
  definition becomes an inventory entry with the rebuild path for the project's destination and an effort hint;
* the playbook's knowledge (``rebuild`` items and seed rows marked ``rebuild``), which also covers what no API
  exposes (Dispatch Pro's dispatch rules, OctopusPro's portal), plus the objects and status values the project saw.

Effort rule (a hint for planning, not an estimate): **L** for code (an active Apex trigger becomes a plug-in or
Apex again); **M** for active declarative logic (flows, approval processes, reports, dashboards); **S** for
configuration rows (zones, job types, tag types, business units, campaigns), validation rules, and anything the
source marks inactive (check it is still wanted before rebuilding it).

``rebuild_package`` never touches the network (the reconciliation report embeds it); ``write_rebuild_package``
reads the definitions first when an API source has none stored, and says in the package when it could not.
Both files are rendered in memory first and then written atomically, so a failure leaves the old package whole.
Every string is the source's own text; Markdown table cells only escape pipes and line breaks.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.source.extract.definitions import NOT_EXPOSED, read_definitions, stored_definitions

FORMAT = "crmmigrator.rebuild/2"
API_SOURCES = ("servicetracker", "dispatchpro")
KIND_TITLES = {
    "flow": "Flows and processes",
    "trigger": "Apex triggers",
    "validation_rule": "Validation rules",
    "approval_process": "Approval processes",
    "report": "Reports",
    "dashboard": "Dashboards",
    "zone": "Zones (territories)",
    "business_unit": "Business units",
    "job_type": "Job types",
    "tag_type": "Tag types",
    "campaign": "Campaigns",
}
EFFORT_RULE = (
    "L: code (an active Apex trigger); M: active declarative logic (flows, approval processes, reports, dashboards); "
    "S: configuration rows (zones, job types, tag types, business units, campaigns), validation rules, and anything "
    "inactive at the source (confirm it is still wanted first)."
)
_BASE_EFFORT = {"trigger": "L", "flow": "M", "approval_process": "M", "report": "M", "dashboard": "M"}

#: destination -> kind -> recommended rebuild path ("{obj}" = where the source object's records now live).
PATHS: dict[str, dict[str, str]] = {
    "dynamics365": {
        "flow": "Power Automate cloud flow (Dataverse trigger 'When a row is added, modified or deleted'{obj})",
        "flow:scheduled": "Power Automate scheduled cloud flow (Recurrence trigger) over the migrated tables",
        "flow:screen": "Power Apps canvas app or custom page (a screen flow is a UI; Power Automate has no screens)",
        "flow:before_save": "Dataverse business rule or synchronous plug-in{obj} (field updates before save)",
        "trigger": "Dataverse plug-in (C#) registered on the same messages{obj}; a cloud flow if the logic is simple",
        "validation_rule": "Business rule (show error message){obj}; a plug-in for cross-record checks",
        "approval_process": "Power Automate approvals ('Start and wait for an approval'){obj}",
        "report": "Model-driven view and chart, or a Power BI report",
        "dashboard": "Model-driven dashboard, or a Power BI dashboard",
        "zone": "Sales territory (territory table) with its ZIPs/cities as criteria; a flow sets it from new_zone",
        "business_unit": "Owner team per business unit (a Dataverse business unit where security must follow it)",
        "job_type": "Choice value for the job type column (Field Service incident type with duration, if licensed)",
        "tag_type": "Choice value of a multi-select tags column (Dataverse has no record tags)",
        "campaign": "Campaign (Dynamics 365 Sales marketing) and a lead source choice value",
        "": "Rebuild natively in Dynamics 365 (Power Automate, business rules, forms)",
    },
    "salesforce": {
        "flow": "Record-triggered Flow (after save){obj}; retrieve the source Flow with the Metadata API to adapt it",
        "flow:scheduled": "Schedule-triggered Flow",
        "flow:screen": "Screen Flow (retrieve it with the Metadata API, re-point it at the destination objects)",
        "flow:before_save": "Record-triggered Flow (fast field updates, before save){obj}",
        "flow:process_builder": "Record-triggered Flow{obj} (Process Builder is retired: 'Migrate to Flow' first)",
        "trigger": "Apex trigger on the destination object{obj} (deploy with tests), or a record-triggered Flow",
        "validation_rule": "Validation rule{obj} (the formula carries over after renaming fields)",
        "approval_process": "Approval process{obj} (or Flow Approval Orchestration)",
        "report": "Custom report type over the destination objects, then the report",
        "dashboard": "Lightning dashboard over the rebuilt reports",
        "zone": "Enterprise Territory Management territory with a ZIP/city assignment rule",
        "business_unit": "Queue (and public group) per business unit, with a Case assignment rule",
        "job_type": "Case Type picklist value (a Field Service Work Type with its duration, if licensed)",
        "tag_type": "Topic, or a multi-select picklist value",
        "campaign": "Campaign record and a Lead Source picklist value",
        "": "Rebuild natively in Salesforce (Flow, validation rules, Lightning pages)",
    },
}


def rebuild_path(kind: str, definition: dict[str, Any], target: str, destination: str | None = None) -> str:
    """The recommended rebuild path of one definition at ``target``; ``destination`` names where its records went."""
    paths = PATHS.get(target, PATHS["dynamics365"])
    details = definition.get("details") or {}
    key = kind
    if kind == "flow":
        process, trigger = details.get("process_type"), details.get("trigger_type")
        if process == "Flow":
            key = "flow:screen"
        elif trigger == "Scheduled":
            key = "flow:scheduled"
        elif trigger == "RecordBeforeSave":
            key = "flow:before_save"
        elif process == "Workflow" and "flow:process_builder" in paths:
            key = "flow:process_builder"
    template = paths.get(key) or paths[""]
    where = ""
    if definition.get("object"):
        where = f" on {destination} (from {definition['object']})" if destination else f" ({definition['object']})"
    return template.replace("{obj}", where)


def effort(kind: str, definition: dict[str, Any]) -> str:
    """S/M/L by the module's documented rule."""
    if definition.get("active") is False:
        return "S"
    return _BASE_EFFORT.get(kind, "S")


def inventory(definitions: list[dict[str, Any]], target: str, playbook: Playbook | None = None) -> list[dict]:
    """Inventory entries: each definition with its rebuild path and effort hint, ordered by kind then name."""
    destinations: dict[str, str] = {}
    if playbook is not None:
        for part in playbook.parts():
            destinations.setdefault(part.obj, part.entity)
    order = {kind: i for i, kind in enumerate(KIND_TITLES)}
    entries = []
    for item in definitions:
        kind = str(item.get("kind") or "")
        destination = destinations.get(str(item.get("object") or ""))
        entries.append(
            {
                "kind": kind,
                "name": item.get("name") or "",
                "api_name": item.get("api_name"),
                "object": item.get("object"),
                "destination_entity": destination,
                "active": item.get("active"),
                "details": dict(item.get("details") or {}),
                "rebuild_path": rebuild_path(kind, item, target, destination),
                "effort": effort(kind, item),
            }
        )
    entries.sort(key=lambda e: (order.get(e["kind"], len(order)), e["kind"], str(e["name"]).lower()))
    return entries


def _summary(entries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for entry in entries:
        row = summary.setdefault(entry["kind"], {"count": 0, "active": 0, "S": 0, "M": 0, "L": 0})
        row["count"] += 1
        row["active"] += entry["active"] is not False
        row[entry["effort"]] += 1
    return summary


def _source_status(project: Project, stored: dict[str, Any] | None, note: str | None) -> dict[str, Any]:
    """What the package can say about the source's definitions (read, not exposed, or not read and why)."""
    if stored is None and project.source not in API_SOURCES:  # export files: nothing to read, known offline
        stored = {"exposed": False, "why": NOT_EXPOSED.get(project.source, "export files carry records only")}
    if stored is None:
        why = note or "the source's definitions were not read; write the package again while connected to the source"
        return {"status": "not_read", "exposed": True, "why": why}
    if not stored.get("exposed"):
        return {
            "status": "not_exposed",
            "exposed": False,
            "why": stored.get("why", ""),
            "read_at": stored.get("read_at"),
        }
    return {
        "status": "read",
        "exposed": True,
        "platform": stored.get("platform"),
        "endpoint": stored.get("endpoint"),
        "read_at": stored.get("read_at"),
        "warnings": list(stored.get("warnings") or []),
        "not_exposed": list(stored.get("not_exposed") or []),
        **({"note": note} if note else {}),
    }


def rebuild_package(project: Project, *, note: str | None = None) -> dict[str, Any]:
    """The package as a dict (offline: uses the stored definitions only)."""
    playbook = load_playbook(project.source, project.target, project.edition)
    items = [dict(item) for item in playbook.raw.get("rebuild", [])]
    for row in playbook.seed_rows:
        if row.get("rebuild"):
            items.append(
                {
                    "item": row["row"],
                    "why": row["rebuild"],
                    "destination": row.get("destination", ""),
                    "rebuild_path": row.get("rebuild_path") or row.get("destination", ""),
                }
            )
    statuses = project.query(
        "SELECT source_object, source_field, source_value, count, target_entity, target_field, target_label "
        "FROM value_maps ORDER BY source_object, source_field, count DESC"
    )
    objects = [
        {"source_object": r["name"], "records": r["record_count"], "columns": json.loads(r["columns"])}
        for r in project.query("SELECT name, record_count, columns FROM source_objects ORDER BY name")
    ]
    stored = stored_definitions(project)
    entries = inventory(list((stored or {}).get("definitions") or []), project.target, playbook)
    return {
        "format": FORMAT,
        "pair": playbook.title,
        "source": project.source,
        "target": project.target,
        "edition": project.edition,
        "generated_at": now_iso(),
        "definitions": _source_status(project, stored, note),
        "summary": _summary(entries),
        "effort_rule": EFFORT_RULE,
        "inventory": entries,
        "rebuild": items,
        "source_objects": objects,
        "status_values": statuses,
        "notes": list(playbook.raw.get("notes", [])),
    }


def write_rebuild_package(project: Project, folder: Path, *, online: bool = True) -> list[Path]:
    """Write ``rebuild_reference.json`` and ``REBUILD.md`` into ``folder``.

    With ``online`` and an API source whose definitions were never read, they are read first (and stored); a
    failure to read does not stop the package, which then says that they were not read and why.
    """
    note = None
    if stored_definitions(project) is None and project.source in API_SOURCES:
        if online:
            try:
                read_definitions(project)
            except MigratorError as exc:
                note = f"the source's definitions could not be read: {exc}"
        else:
            note = "the source's definitions were not read (offline); the inventory lists the playbook's items only"
    package = rebuild_package(project, note=note)
    json_text = json.dumps(package, indent=2, default=str, ensure_ascii=False) + "\n"
    md_text = render_markdown(package)
    json_path = folder / "rebuild_reference.json"
    md_path = folder / "REBUILD.md"
    _write_together({json_path: json_text, md_path: md_text})
    return [json_path, md_path]


def _write_together(files: dict[Path, str]) -> None:
    """Write every file to a temporary sibling first, then swap them all in: a failure leaves the old package."""
    temps: dict[Path, Path] = {}
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.close(fd)
            temps[path] = Path(tmp)
            temps[path].write_text(text, encoding="utf-8")
            umask = os.umask(0)  # mkstemp makes owner-only files; a package is for sharing
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- Markdown


def cell(value: Any) -> str:
    """One Markdown table cell: the source's text with pipes escaped and line breaks kept as ``<br>``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = re.sub(r"\\(?=\|)", r"\\\\", str(value)).replace("|", "\\|")  # a backslash before a pipe stays one
    return re.sub(r"\r\n|\r|\n", "<br>", text)


def _details(entry: dict[str, Any]) -> str:
    details = dict(entry["details"])
    body = details.pop("body", None)  # trigger code goes to the JSON only; the table names its events
    if body:
        details["body"] = f"{len(str(body).splitlines())} lines of Apex (see the JSON)"
    return "; ".join(f"{key.replace('_', ' ')}: {_flat(value)}" for key, value in details.items())


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _field(entity: Any, field: Any) -> str | None:
    return f"{entity}.{field}" if entity and field else None


def _active(value: Any) -> str:
    return "—" if value is None else ("active" if value else "inactive")


def render_markdown(package: dict[str, Any]) -> str:
    """The written inventory for the admin: counts, a table per kind, the playbook items, then status values."""
    status = package["definitions"]
    lines = [
        f"# Rebuild reference — {package['pair']} ({package['edition']})",
        "",
        f"Generated {package['generated_at']}. What follows does not migrate as data: rebuild it natively at the "
        "destination. The same content is in `rebuild_reference.json`.",
        "",
        "## What the source exposed",
        "",
    ]
    if status["status"] == "read":
        lines.append(f"Read from {status.get('platform')} ({status.get('endpoint')}) at {status.get('read_at')}.")
        lines += [f"- Not read: {warning}" for warning in status.get("warnings") or []]
        lines += [f"- Not exposed by the source: {item}" for item in status.get("not_exposed") or []]
        if status.get("note"):
            lines.append(f"- {status['note']}")
    elif status["status"] == "not_exposed":
        lines.append(f"Nothing: {status['why']}")
    else:
        lines.append(f"Not read: {status['why']}.")
    summary = package["summary"]
    if summary:
        lines += [
            "",
            "| Kind | Definitions | Active | Effort S | Effort M | Effort L |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind, row in summary.items():
            title = KIND_TITLES.get(kind, kind)
            lines.append(f"| {cell(title)} | {row['count']} | {row['active']} | {row['S']} | {row['M']} | {row['L']} |")
        lines += ["", f"Effort hint — {package['effort_rule']}"]
    for kind in summary:
        entries = [e for e in package["inventory"] if e["kind"] == kind]
        lines += ["", f"## {KIND_TITLES.get(kind, kind)}", ""]
        lines += ["| Name | API name | Object | Status | Details | Recommended rebuild | Effort |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for e in entries:
            obj = e["object"] if not e["destination_entity"] else f"{e['object']} → {e['destination_entity']}"
            lines.append(
                f"| {cell(e['name'])} | {cell(e['api_name'])} | {cell(obj)} | {_active(e['active'])} | "
                f"{cell(_details(e))} | {cell(e['rebuild_path'])} | {e['effort']} |"
            )
    if package["rebuild"]:
        lines += ["", "## Playbook items (configuration no export or API carries)", ""]
        lines += ["| Item | Why | Recommended rebuild |", "|---|---|---|"]
        for item in package["rebuild"]:
            lines.append(
                f"| {cell(item.get('item'))} | {cell(item.get('why'))} | "
                f"{cell(item.get('rebuild_path') or item.get('destination'))} |"
            )
    lines += ["", "## What the project staged", ""]
    if package["source_objects"]:
        lines += ["| Source object | Records | Columns |", "|---|---:|---:|"]
        for obj in package["source_objects"]:
            lines.append(f"| {cell(obj['source_object'])} | {obj['records']} | {len(obj['columns'])} |")
    else:
        lines.append("Nothing staged yet.")
    if package["status_values"]:
        lines += ["", "## Status and choice values seen (configure these at the destination)", ""]
        lines += [
            "| Source field | Value | Records | Destination field | Destination value |",
            "|---|---|---:|---|---|",
        ]
        for row in package["status_values"]:
            lines.append(
                f"| {cell(row['source_object'] + '.' + row['source_field'])} | {cell(row['source_value'])} | "
                f"{row['count']} | {cell(_field(row['target_entity'], row['target_field']))} | "
                f"{cell(row['target_label'] or '(unmapped)')} |"
            )
    if package["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in package["notes"]]
    return "\n".join(lines) + "\n"
