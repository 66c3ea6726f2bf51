"""The rebuild reference package: what cannot migrate as data, for the admin to rebuild natively.

Seeds promise "we deliver a written inventory" of automations, portal settings and forms. The
playbook lists them (``rebuild`` items and seed rows marked ``rebuild``); this module adds what the
project actually saw (objects, columns, distinct status values that drove value maps) and writes a
JSON export plus a Markdown inventory, atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.report.files import _atomic, write_json_atomic


def rebuild_package(project: Project) -> dict[str, Any]:
    playbook = load_playbook(project.source, project.target, project.edition)
    items = list(playbook.raw.get("rebuild", []))
    for row in playbook.seed_rows:
        if row.get("rebuild"):
            items.append({"item": row["row"], "why": row["rebuild"], "destination": row.get("destination", "")})
    statuses = project.query(
        "SELECT source_object, source_field, source_value, count, target_entity, target_field, target_label "
        "FROM value_maps ORDER BY source_object, source_field, count DESC"
    )
    objects = [
        {"source_object": r["name"], "records": r["record_count"], "columns": json.loads(r["columns"])}
        for r in project.query("SELECT name, record_count, columns FROM source_objects ORDER BY name")
    ]
    return {
        "pair": playbook.title,
        "edition": project.edition,
        "generated_at": now_iso(),
        "rebuild": items,
        "source_objects": objects,
        "status_values": statuses,
        "notes": list(playbook.raw.get("notes", [])),
    }


def write_rebuild_package(project: Project, folder: Path) -> list[Path]:
    package = rebuild_package(project)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "rebuild_reference.json"
    md_path = folder / "REBUILD.md"
    write_json_atomic(json_path, package)
    _atomic(md_path, lambda p: p.write_text(_markdown(package), encoding="utf-8"))
    return [json_path, md_path]


def _markdown(package: dict[str, Any]) -> str:
    lines = [f"# Rebuild reference — {package['pair']} ({package['edition']})", "",
             f"Generated {package['generated_at']}. These do not migrate as data; rebuild them natively.", ""]
    for item in package["rebuild"]:
        lines.append(f"- **{item['item']}** — {item['why']}")
        if item.get("rebuild_path"):
            lines.append(f"  - Recommended: {item['rebuild_path']}")
    lines += ["", "## What the export contained", ""]
    for obj in package["source_objects"]:
        lines.append(f"- {obj['source_object']}: {obj['records']} records, {len(obj['columns'])} columns")
    if package["status_values"]:
        lines += ["", "## Status and choice values seen (configure these at the destination)", ""]
        for row in package["status_values"]:
            lines.append(f"- {row['source_object']}.{row['source_field']} = {row['source_value']!r} "
                         f"({row['count']}) → {row['target_entity']}.{row['target_field']} "
                         f"{row['target_label'] or '(unmapped)'}")
    if package["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in package["notes"]]
    return "\n".join(lines) + "\n"
