"""The custom-schema manifest as files for the destination's admin: XLSX to read, JSON to script.

Many organisations do not let an integration user customise, so the admin creates the tables, columns,
alternate keys and External IDs the map needs, or lets ``crmmigrator schema PROJECT apply`` do it. Each row
says everything needed to create the item exactly as ``apply`` would: lengths and precisions are those
``apply`` sends (read from the same metadata builders, not restated here), option values are gathered onto
their column, and the key / External ID / unique flags are on the column they make unique.

Input: the items of ``plan.schema.manifest`` (Dataverse) or ``plan.sf_schema.manifest`` (Salesforce), as
``item.to_json()`` dicts with a ``missing`` flag (see :func:`flag_missing`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.report.files import _atomic, write_json_atomic
from crmmigrator_gui.engine.report.safe_cells import append_row

COLUMNS = (
    "Missing",
    "Kind",
    "Table / object",
    "API name",
    "Display name",
    "Type",
    "Length / precision",
    "Option values",
    "Alternate key / External ID / unique",
    "Required",
    "How to create it",
)
APPLY_HINT = "or let `crmmigrator schema PROJECT apply` create it"
SALESFORCE_KINDS = ("object", "field")


def flag_missing(items: Iterable[Any], absent: Iterable[Any]) -> list[dict[str, Any]]:
    """``[{**item.to_json(), "missing": bool}]`` from a manifest and what ``missing()`` returned for it."""

    def ident(item: Any) -> tuple[str, str, str, str]:
        return item.kind, item.entity, item.name, json.dumps(item.spec, sort_keys=True, default=str)

    gone = {ident(i) for i in absent}
    return [{**item.to_json(), "missing": ident(item) in gone} for item in items]


def destination_of(items: list[Mapping[str, Any]]) -> str:
    return "salesforce" if items and all(i["kind"] in SALESFORCE_KINDS for i in items) else "dynamics365"


def manifest_rows(items: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One admin-readable row per item, keyed by :data:`COLUMNS` (items without a flag count as missing)."""
    items = list(items)
    row_of = _salesforce_row if destination_of(items) == "salesforce" else _dataverse_row
    options: dict[tuple[str, str], list[str]] = {}
    keys: dict[tuple[str, str], list[str]] = {}
    for item in items:
        if item["kind"] == "option":
            options.setdefault((item["entity"], item["name"]), []).append(str(item["label"]))
        elif item["kind"] == "key":
            for column in item.get("attributes") or []:
                keys.setdefault((item["entity"], column), []).append(f"alternate key {item['name']}")
    rows = []
    for item in items:
        cells = row_of(item, options, keys)
        rows.append(
            dict(
                zip(
                    COLUMNS,
                    ("yes" if item.get("missing", True) else "no", item["kind"], item["entity"], *cells),
                    strict=True,
                )
            )
        )
    return rows


def _dataverse_row(
    item: Mapping[str, Any], options: dict[tuple[str, str], list[str]], keys: dict[tuple[str, str], list[str]]
) -> tuple[str, ...]:
    """API name, display name, type, length, options, key, required, how (what ``schema.apply`` sends)."""
    from crmmigrator_gui.engine.plan.schema import SchemaItem, _column_body

    kind, entity, name = item["kind"], item["entity"], item["name"]
    spec = {k: v for k, v in item.items() if k not in ("kind", "entity", "name", "missing")}
    label = str(spec.get("label") or name)
    tables = "Power Apps (make.powerapps.com) → Tables"
    if kind == "table":
        primary = spec.get("primary", "new_name")
        return (
            name,
            f"{label} / {spec.get('plural', label)}",
            "Table (user-owned, notes on)",
            f"primary column {primary}: 200 characters",
            "",
            "",
            "",
            f"{tables} → New table; {APPLY_HINT}",
        )
    if kind == "column":
        choices = options.get((entity, name), [])
        body = _column_body(SchemaItem(kind, entity, name, spec), choices)
        col_type = str(spec.get("type", "String"))
        if body.get("MaxLength"):
            size = f"{body['MaxLength']} characters"
        elif "PrecisionSource" in body:
            size = "currency precision"
        elif "Precision" in body:
            size = f"{body['Precision']} decimal places"
        else:
            size = {"DateOnly": "date only (never shifts a day)", "DateTime": "date and time (user local)"}.get(
                col_type, ""
            )
        return (
            name,
            label,
            "Choice" if col_type == "Picklist" else col_type,
            size,
            "; ".join(choices),
            "; ".join(keys.get((entity, name), [])),
            "optional",
            f"{tables} → {entity} → Columns → New column; {APPLY_HINT}",
        )
    if kind == "relationship":
        return (
            str(spec.get("schema_name") or name),
            label,
            f"Lookup → {spec.get('target')}",
            "",
            "",
            "",
            "optional",
            f"{tables} → {entity} → Relationships → New many-to-one to {spec.get('target')}; {APPLY_HINT}",
        )
    if kind == "option":
        return (
            name,
            label,
            "Choice option",
            "",
            label,
            "",
            "",
            f"{tables} → {entity} → Columns → {name} → add the option '{label}'; {APPLY_HINT}",
        )
    if kind == "key":
        attributes = ", ".join(spec.get("attributes") or [])
        return (
            name,
            "Source system id key",
            "Alternate key",
            "",
            attributes,
            f"alternate key on {attributes}",
            "",
            f"{tables} → {entity} → Keys → New key on {attributes}; wait until it is Active; {APPLY_HINT}",
        )
    return name, label, kind, "", "", "", "", APPLY_HINT


def _salesforce_row(
    item: Mapping[str, Any], options: dict[tuple[str, str], list[str]], keys: dict[tuple[str, str], list[str]]
) -> tuple[str, ...]:
    """The same columns for Salesforce, sized by the Tooling metadata ``sf_schema.apply`` sends."""
    from crmmigrator_gui.engine.plan.sf_schema import tooling_object
    from crmmigrator_gui.engine.target.sf_tooling import TOOLING_TYPES, field_metadata

    kind, entity, name = item["kind"], item["entity"], item["name"]
    label = str(item.get("label") or name)
    setup = "Setup → Object Manager"
    if kind == "object":
        return (
            name,
            f"{label} / {item.get('plural') or label + 's'}",
            "Custom object",
            "name field: text",
            "",
            "",
            "",
            f"{setup} → Create → Custom Object (deployed); {APPLY_HINT}",
        )
    metadata_type = TOOLING_TYPES.get(str(item.get("type", "Text")).replace(" ", "").lower(), str(item.get("type")))
    try:
        meta = field_metadata(
            metadata_type,
            label,
            name,
            length=item.get("length"),
            external_id=bool(item.get("external_id")),
            unique=bool(item.get("unique")),
            picklist_values=item.get("values") or None,
            restricted=bool(item.get("restricted")),
            precision=item.get("precision"),
            scale=item.get("scale"),
            reference_to=item.get("reference_to"),
        )
    except ValueError:
        meta = {"type": metadata_type}
    if "length" in meta:
        size = f"{meta['length']} characters"
    elif "precision" in meta:
        size = f"{meta['precision']} digits, {meta['scale']} decimal places"
    else:
        size = ""
    values = [v["fullName"] for v in (meta.get("valueSet") or {}).get("valueSetDefinition", {}).get("value", [])]
    flags = [f for f, on in (("External ID", meta.get("externalId")), ("unique", meta.get("unique"))) if on]
    shown_type = f"Lookup → {item.get('reference_to')}" if metadata_type == "Lookup" else metadata_type
    if values and item.get("restricted"):
        shown_type += " (restricted)"
    where = tooling_object(entity)
    return (
        name,
        label,
        shown_type,
        size,
        "; ".join(values),
        ", ".join(flags),
        "optional",
        f"{setup} → {where} → Fields & Relationships → New; then Field-Level Security: Visible and Editable "
        f"for the integration user's profile; {APPLY_HINT}",
    )


def write_manifest(items: Iterable[Mapping[str, Any]], path: Path | str) -> dict[str, Any]:
    """Write the manifest as ``.xlsx`` or ``.json`` (by suffix), atomically; returns path and counts."""
    path = Path(path)
    items = [dict(i) for i in items]
    rows = manifest_rows(items)
    missing = sum(r["Missing"] == "yes" for r in rows)
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_json_atomic(
            path,
            {
                "destination": destination_of(items),
                "missing": missing,
                "items": [
                    {**i, "missing": r["Missing"] == "yes", "admin": r} for i, r in zip(items, rows, strict=True)
                ],
            },
        )
    elif suffix == ".xlsx":
        _atomic(path, lambda tmp: _xlsx(tmp, destination_of(items), rows, missing))
    else:
        raise UsageError(f"{path.name}: write the manifest as .xlsx or .json")
    return {"path": str(path), "items": len(rows), "missing": missing}


def _xlsx(path: Path, destination: str, rows: list[dict[str, str]], missing: int) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = "Manifest"
    append_row(ws, COLUMNS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="D9E1F2")
    todo = PatternFill("solid", fgColor="FFEB9C")
    for row in rows:
        number = append_row(ws, [row[c] for c in COLUMNS])
        if row["Missing"] == "yes":
            for cell in ws[number]:
                cell.fill = todo
    for letter, width in zip("ABCDEFGHIJK", (9, 12, 22, 36, 30, 22, 24, 40, 34, 10, 90), strict=True):
        ws.column_dimensions[letter].width = width
    for cell in ws["K"]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "D2"
    ws.auto_filter.ref = f"A1:K{max(len(rows) + 1, 2)}"
    about = wb.create_sheet("About")
    name = "Dynamics 365 (Dataverse)" if destination == "dynamics365" else "Salesforce"
    for line in (
        (f"Custom schema the migration map needs in {name}",),
        (f"{len(rows)} item(s), {missing} missing (highlighted on the Manifest sheet).",),
        ("Create the missing items in the order listed (tables before their columns, columns before keys),",),
        ("or let the consultant run `crmmigrator schema PROJECT apply`: it creates only what is missing,",),
        (
            "publishes the customisations and waits until alternate keys are Active"
            if destination == "dynamics365"
            else "and grants field-level security to the integration user",
        ),
    ):
        append_row(about, line)
    about["A1"].font = Font(bold=True, size=13)
    about.column_dimensions["A"].width = 110
    wb.save(path)
