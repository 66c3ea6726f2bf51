"""Writing the review workbook, and the format both sides of its round trip share.

One sheet per source object (and one for its value maps), with dropdowns of valid destinations and option
labels. Every data row carries a hidden key (JSON of its identity and of the values it was exported with) and a check
keyed by the project id, so :mod:`.workbook` can recognise sorted, tampered, added or deleted rows. The
dropdown lists are stored in the project at export time, so the import validates against the lists the
customer saw, offline. Text goes through :mod:`..report.safe_cells`, so no source value or note can become a
formula. Callers import :func:`export_review` from :mod:`.workbook`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.report.safe_cells import append_row, is_risky, set_cell

FORMAT = "crmmigrator-review/1"
README, LISTS, META = "Read me", "_lists", "_review"
DEST, NOTES, FIELD, VALUE, DEST_VALUE = (
    "Destination (table.column)", "Notes", "Source field", "Source value", "Destination value",
)  # fmt: skip
KEY, CHECK = "_key", "_check"
LISTS_META = "review_lists"  # project meta: the lists the last export offered (read back offline)
FIELD_COLUMNS = (FIELD, "Sample values", "Fill rate", DEST, "Confidence", "Why", "Status", "Transform", NOTES)
VALUE_COLUMNS = (FIELD, VALUE, "Count", DEST, DEST_VALUE, "Status", NOTES)
FIXED = ("key", "lookup", "owner")  # rows that build keys and links: their destination is not the customer's call
GREEN, AMBER, RED, GREY, EDIT = "C6EFCE", "FFEB9C", "FFC7CE", "EDEDED", "FFFFFF"


def export_review(project: Project, path: Path | str) -> dict[str, Any]:
    """Write the review workbook (atomically) and remember the lists it offered; returns counts."""
    from crmmigrator_gui.engine.report.files import _atomic
    from crmmigrator_gui.engine.target.connection import project_id

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise UsageError(f"{path.name}: the review workbook is an .xlsx file")
    fields = _field_rows(project)
    if not fields:
        raise BlockedError("the map is empty; run `crmmigrator automap` first")
    values = _value_rows(project)
    lists = _collect_lists(project, online=True)  # network first: no transaction held meanwhile
    detail: dict[str, Any] = {"workbook": path.name, "metadata": lists["metadata"]}
    with project.step("map export", detail):
        pid = project_id(project)
        project.set_meta(LISTS_META, lists)
        wb, counts = _build(project, pid, fields, values, lists)
        _atomic(path, wb.save)
        detail.update(counts)  # audited as the step closes
    return {"path": str(path), **counts}


def _field_rows(project: Project) -> list[dict[str, Any]]:
    return project.query(
        "SELECT id, source_object, source_field, target_entity, target_field, transform, confidence, reason, "
        "status, confirmed_by, notes FROM field_maps ORDER BY source_object, id"
    )


def _value_rows(project: Project) -> list[dict[str, Any]]:
    return project.query(
        "SELECT source_object, source_field, target_entity, target_field, source_value, count, target_label, "
        "status, notes FROM value_maps ORDER BY source_object, source_field, target_entity, target_field, "
        "count DESC, source_value"
    )


def _collect_lists(project: Project, *, online: bool) -> dict[str, Any]:
    """The dropdowns: valid destinations per source object, and option labels per value-mapped column.

    From what the project knows (its map, the playbook's targets and custom schema, the labels its value
    maps chose) plus, when ``online``, the destination's metadata. The export stores the result in the
    project, so the import validates against the same lists the customer saw, offline, and never trusts
    the (editable) lists sheet of the returned workbook.
    """
    from crmmigrator_gui.engine.mapping.playbook import load_playbook

    try:
        playbook = load_playbook(project.source, project.target, project.edition)
    except MigratorError:
        playbook = None
    rows = project.query("SELECT source_object, target_entity, target_field, role FROM field_maps")
    entities_of: dict[str, set[str]] = {}
    for r in project.query("SELECT source_object, target_entity FROM object_maps") + rows:
        entities_of.setdefault(r["source_object"], set()).update([r["target_entity"]] if r["target_entity"] else [])
    columns: dict[str, set[str]] = {}
    for r in rows:
        if r["target_entity"] and r["target_field"]:
            columns.setdefault(r["target_entity"], set()).add(r["target_field"])
    extra: dict[str, list[str]] = {}  # "entity.field" -> labels the playbook knows
    spec_of: dict[str, dict[str, Any]] = {}
    if playbook is not None:
        for obj in playbook.objects:
            for role in obj.roles.values():
                for target in role.targets:
                    found = playbook.entity_of_target(obj, target)
                    if found:
                        columns.setdefault(found[0], set()).add(found[1])
                        suggest = (role.value_map or {}).get("suggest", {})
                        extra.setdefault(_target(*found), []).extend(str(v) for v in suggest.values())
        for column in playbook.schema["columns"]:
            columns.setdefault(column["entity"], set()).add(column["name"])
            spec_of[_target(column["entity"], column["name"])] = column
            extra.setdefault(_target(column["entity"], column["name"]), []).extend(column.get("values") or [])
        for rel in playbook.schema["relationships"]:
            columns.setdefault(rel["entity"], set()).add(rel["column"])
        for entity in playbook.target_entities():
            columns.setdefault(entity, set()).add(playbook.key_column)
    value_targets = {
        _target(r["target_entity"], r["target_field"]): r
        for r in project.query("SELECT DISTINCT target_entity, target_field FROM value_maps")
    }
    for r in project.query("SELECT DISTINCT target_entity, target_field, target_label FROM value_maps "
                           "WHERE target_label IS NOT NULL ORDER BY target_label"):  # fmt: skip
        extra.setdefault(_target(r["target_entity"], r["target_field"]), []).append(r["target_label"])
    all_entities = sorted(set().union(*entities_of.values()) if entities_of else set())
    status, meta_columns, meta_options = "not read (offline)", {}, {}
    if online:
        status, meta_columns, meta_options = _destination_metadata(project, all_entities, list(value_targets))
    # The value maps' offline cache of destination choices (values.py), read as data: fresh metadata wins.
    cached = {e: c for e, c in (project.meta("destination_options", {}) or {}).items() if isinstance(c, dict)}
    for entity, names in [*((e, c.get("fields") or []) for e, c in cached.items()), *meta_columns.items()]:
        columns.setdefault(entity, set()).update(names)
    targets = {
        obj: sorted(_target(e, c) for e in entities for c in columns.get(e, ()))
        for obj, entities in entities_of.items()
    }
    prefix = f"{project.meta('publisher_prefix', 'new')}_"
    options: dict[str, dict[str, Any]] = {}
    for target in value_targets:
        entity, _, column = target.partition(".")
        kept = {k.lower(): c for k, c in ((cached.get(entity) or {}).get("columns") or {}).items()}.get(column.lower())
        found, restricted = meta_options.get(target) or ((kept or {}).get("options") or [], None)
        if target not in meta_options and kept and "restricted" in kept:
            restricted = bool(kept["restricted"])
        labels = [{"value": o.get("value"), "label": str(o["label"])} for o in found]
        known = {o["label"].strip().lower() for o in labels}
        for label in extra.get(target, []):
            if label.strip() and label.strip().lower() not in known:
                known.add(label.strip().lower())
                labels.append({"value": None, "label": label})
        custom = column.endswith("__c") if project.target == "salesforce" else column.startswith(prefix)
        if restricted is None:
            restricted = bool(spec_of.get(target, {}).get("restricted", False))
        options[target] = {"options": labels, "open": custom and not restricted}
    return {"targets": targets, "options": options, "metadata": status}


def _destination_metadata(
    project: Project, entities: list[str], value_targets: list[str]
) -> tuple[str, dict[str, list[str]], dict[str, tuple[list[dict[str, Any]], bool | None]]]:
    """Writable columns per entity and option lists per value column, read from the destination."""
    import httpx

    from crmmigrator_gui.engine.errors import DestinationError
    from crmmigrator_gui.engine.target.connection import destination

    columns: dict[str, list[str]] = {}
    options: dict[str, tuple[list[dict[str, Any]], bool | None]] = {}
    absent: list[str] = []
    try:
        with destination(project) as client:
            for entity in entities:
                wanted = [t.partition(".")[2] for t in value_targets if t.partition(".")[0] == entity]
                try:
                    if project.target == "salesforce":
                        described = client.describe(entity)
                        columns[entity] = [f.name for f in described.fields.values() if f.createable or f.updateable]
                        for name in wanted:
                            if (f := described.field(name)) is not None:
                                picks = [{"value": v, "label": v} for v in f.picklist_values]
                                options[_target(entity, name)] = (picks, f.restricted_picklist)
                    else:
                        meta = client.entity(entity)
                        attrs = meta.attributes.values()
                        columns[entity] = [a.name for a in attrs if a.valid_create or a.valid_update]
                        for name in wanted:
                            if (a := meta.attributes.get(name)) is not None:
                                picks = [{"value": v, "label": t} for v, t in a.options.items()]
                                options[_target(entity, name)] = (picks, None)
                except DestinationError:
                    absent.append(entity)  # a custom table the schema step has not created yet
    except (MigratorError, httpx.HTTPError) as exc:
        return f"not available ({exc}); the lists hold what the project knows", {}, {}
    return "read from the destination" + (f" ({', '.join(absent)} not created yet)" if absent else ""), columns, options


def _stored_lists(project: Project) -> dict[str, Any]:
    return project.meta(LISTS_META) or _collect_lists(project, online=False)


def _target(entity: str | None, column: str | None) -> str:
    return f"{entity}.{column}" if entity and column else ""


def _key_json(parts: list[Any]) -> str:
    return json.dumps(parts, ensure_ascii=True, separators=(",", ":"))


def _check(pid: str, key: str) -> str:
    """A per-project seal of a row's key: it tells a hand-edited key or another project's row (not a secret)."""
    return "k" + hmac.new(pid.encode(), key.encode(), hashlib.sha256).hexdigest()[:16]  # "k": never read as a number


def _sheet_name(wanted: str, used: set[str]) -> str:
    base = "".join("_" if ch in "[]:*?/\\" else ch for ch in wanted).strip("'") or "Sheet"
    name, n = base[:31], 2
    while name.lower() in used or name.lower() in {README.lower(), LISTS, META, "history"}:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(name.lower())
    return name


class _ListSheet:
    """The hidden sheet the dropdowns point at (inline lists stop at 255 characters and commas)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: dict[tuple[str, ...], str] = {}

    def formula(self, title: str, items: list[str]) -> str:
        from openpyxl.utils import get_column_letter, quote_sheetname

        joined = ",".join(items)
        if len(joined) <= 255 and not any("," in i or '"' in i or not i.strip() or is_risky(i) for i in items):
            return f'"{joined}"'
        key = tuple(items)
        if key not in self.seen:
            column = len(self.seen) + 1
            set_cell(self.ws.cell(1, column), title)
            for row, item in enumerate(items, 2):
                set_cell(self.ws.cell(row, column), item)
            letter = get_column_letter(column)
            self.seen[key] = f"{quote_sheetname(LISTS)}!${letter}$2:${letter}${len(items) + 1}"
        return self.seen[key]


def _build(
    project: Project, pid: str, fields: list[dict[str, Any]], values: list[dict[str, Any]], lists: dict[str, Any]
) -> tuple[Any, dict[str, int]]:
    from openpyxl import Workbook

    from crmmigrator_gui.engine.mapping.signoff import map_fingerprint

    wb = Workbook()
    readme = wb.active
    readme.title = README
    objects = list(dict.fromkeys(r["source_object"] for r in fields))
    samples = {
        (p["object"], p["field"]): (json.loads(p["samples"]), p["fill_rate"])
        for p in project.query("SELECT object, field, samples, fill_rate FROM profiles")
    }
    used: set[str] = set()
    sheets: list[tuple[str, str, str, Any]] = []  # name, kind, object, worksheet
    for obj in objects:
        sheets.append((name := _sheet_name(obj, used), "fields", obj, wb.create_sheet(name)))
        if any(v["source_object"] == obj for v in values):
            sheets.append((name := _sheet_name(f"{obj} values", used), "values", obj, wb.create_sheet(name)))
    list_sheet = _ListSheet(wb.create_sheet(LISTS))
    meta = wb.create_sheet(META)
    exported_at = now_iso()
    for pair in (
        ("format", FORMAT), ("project_id", pid), ("project", project.path.name),
        ("pair", f"{project.source} → {project.target}"), ("exported_at", exported_at),
        ("map_fingerprint", map_fingerprint(project)),
    ):  # fmt: skip
        append_row(meta, pair)
    rows = 0
    for name, kind, obj, ws in sheets:
        append_row(meta, ("sheet", name, kind, obj))
        if kind == "fields":
            keys = _write_fields(ws, pid, obj, [r for r in fields if r["source_object"] == obj], samples, lists,
                                 list_sheet)  # fmt: skip
        else:
            keys = _write_values(ws, pid, [v for v in values if v["source_object"] == obj], lists, list_sheet)
        for key in keys:
            append_row(meta, ("row", name, key))
        rows += len(keys)
    _write_readme(readme, project, exported_at, lists, sheets)
    for ws in (list_sheet.ws, meta):
        ws.sheet_state = "hidden"
        ws.protection.sheet = True
    return wb, {"sheets": len(sheets), "rows": rows, "fields": len(fields), "values": len(values)}


def _style_header(ws: Any, columns: tuple[str, ...], widths: tuple[int, ...]) -> None:
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    append_row(ws, (*columns, KEY, CHECK))
    for index, cell in enumerate(ws[1], 1):
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="D9E1F2")
        letter = get_column_letter(index)
        if index > len(columns):
            ws.column_dimensions[letter].hidden = True
        else:
            ws.column_dimensions[letter].width = widths[index - 1]
    ws.freeze_panes = "B2"


def _finish_sheet(ws: Any, editable: tuple[str, ...], columns: tuple[str, ...], fixed: set[tuple[int, int]]) -> None:
    """Lock all but the editable cells; sorting and filtering stay allowed (no password: it guides, not guards)."""
    from openpyxl.styles import PatternFill, Protection
    from openpyxl.utils import get_column_letter

    last = ws.max_row
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns) + 2)}{max(last, 2)}"
    ws.protection.sheet = True
    ws.protection.sort = ws.protection.autoFilter = False
    ws.protection.formatColumns = ws.protection.formatRows = False
    ws.page_setup.orientation = "landscape"  # printed for a review meeting: all columns on the page width
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    grey, white = PatternFill("solid", fgColor=GREY), PatternFill("solid", fgColor=EDIT)
    for row in range(2, last + 1):
        for index, name in enumerate(columns, 1):
            cell = ws.cell(row, index)
            if name in editable and (row, index) not in fixed:
                cell.protection = Protection(locked=False)
                if cell.fill.fill_type is None:
                    cell.fill = white
            elif cell.fill.fill_type is None:
                cell.fill = grey


def _confidence_fill(confidence: float) -> Any:
    from openpyxl.styles import PatternFill

    return PatternFill("solid", fgColor=GREEN if confidence >= 0.9 else AMBER if confidence >= 0.6 else RED)


def _validation(ws: Any, formula: str, cells: str, *, open_list: bool, what: str) -> None:
    from openpyxl.worksheet.datavalidation import DataValidation

    dv = DataValidation(type="list", formula1=formula, allow_blank=True, showErrorMessage=True,
                        errorStyle="warning" if open_list else "stop", errorTitle=f"Not a known {what}",
                        error=f"Pick a {what} from the list, or leave the cell empty.")  # fmt: skip
    ws.add_data_validation(dv)
    dv.add(cells)


def _write_fields(
    ws: Any, pid: str, obj: str, rows: list[dict[str, Any]], samples: dict[Any, Any], lists: dict[str, Any],
    list_sheet: _ListSheet,
) -> list[str]:  # fmt: skip
    _style_header(ws, FIELD_COLUMNS, (24, 34, 9, 34, 11, 60, 22, 22, 40))
    keys, fixed = [], set()
    for r in rows:
        found, fill = samples.get((obj, r["source_field"]), ([], None))
        transform = json.loads(r["transform"] or "{}")
        kind = transform.get("type") or ""
        target = _target(r["target_entity"], r["target_field"])
        key = _key_json(["f", r["id"], obj, r["source_field"], target, r["notes"] or ""])
        status = r["status"] + (f" by {r['confirmed_by']}" if r["confirmed_by"] else "")
        shown = " · ".join(" ".join(str(s).split()) for s in found[:3])  # one line per row, for reading
        row = append_row(ws, (r["source_field"], shown, fill, target or None, round(r["confidence"], 2), r["reason"],
                              status, kind + (f" → {transform['to']}" if transform.get("to") else ""),
                              r["notes"] or None, key, _check(pid, key)))  # fmt: skip
        ws.cell(row, 3).number_format = "0%"
        ws.cell(row, 5).number_format = "0.00"
        ws.cell(row, 5).fill = _confidence_fill(r["confidence"])
        if kind in FIXED:
            fixed.add((row, 4))
        keys.append(key)
    _finish_sheet(ws, (DEST, NOTES), FIELD_COLUMNS, fixed)
    targets = lists["targets"].get(obj) or []
    if rows and targets:
        _validation(ws, list_sheet.formula(f"{obj} destinations", targets), f"D2:D{len(rows) + 1}",
                    open_list=False, what="destination")  # fmt: skip
    return keys


def _write_values(
    ws: Any, pid: str, rows: list[dict[str, Any]], lists: dict[str, Any], list_sheet: _ListSheet
) -> list[str]:
    from openpyxl.styles import PatternFill

    _style_header(ws, VALUE_COLUMNS, (24, 28, 8, 34, 30, 22, 40))
    keys, groups = [], {}
    for r in rows:
        target = _target(r["target_entity"], r["target_field"])
        key = _key_json(["v", r["source_object"], r["source_field"], r["target_entity"], r["target_field"],
                         r["source_value"], r["target_label"] or "", r["notes"] or ""])  # fmt: skip
        row = append_row(ws, (r["source_field"], r["source_value"], r["count"], target, r["target_label"],
                              r["status"], r["notes"] or None, key, _check(pid, key)))  # fmt: skip
        if r["status"] == "unmapped" or not r["target_label"]:
            ws.cell(row, 5).fill = PatternFill("solid", fgColor=RED)
        groups.setdefault(target, []).append(row)
        keys.append(key)
    _finish_sheet(ws, (DEST_VALUE, NOTES), VALUE_COLUMNS, set())
    for target, numbers in groups.items():
        column = lists["options"].get(target) or {}
        labels = [o["label"] for o in column.get("options", [])]
        if labels:
            formula = list_sheet.formula(f"{target} values", labels)
            cells = f"E{min(numbers)}:E{max(numbers)}"  # contiguous: rows are ordered by destination column
            _validation(ws, formula, cells, open_list=bool(column.get("open")), what="destination value")
    return keys


README_TEXT = f"""# Data migration map for review
{{intro}}

# What to do
Each object sheet lists the columns of your export and where each one goes in the new CRM.
White cells are yours: '{DEST}' (pick from the dropdown, or clear it to leave the column behind) and '{NOTES}'.
Each '<object> values' sheet maps the values found in your data to values of the new CRM: pick one in '{DEST_VALUE}'.
Grey cells are information (samples, fill rate, confidence, why) and are not read back.
Write questions, wishes and context in '{NOTES}': notes travel back into the project with your edits.

# Confidence colours
{GREEN}0.90 or more: the proposal is very likely right
{AMBER}0.60 to 0.89: please check
{RED}below 0.60, or a value without a match: needs your decision

# Please don't
rename, add or delete sheets or columns, or delete rows (clear the destination instead);
unhide or edit the hidden columns '{KEY}' and '{CHECK}': they let us find each row again.
Sorting and filtering are fine. Excel sorts a protected sheet only after Review → Unprotect Sheet (no password).

Destination metadata: {{metadata}}.

# Sheets"""


def _write_readme(ws: Any, project: Project, exported_at: str, lists: dict[str, Any], sheets: list[Any]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill

    intro = f"Project {project.path.name} ({project.source} → {project.target}), exported {exported_at}."
    lines = README_TEXT.format(intro=intro, metadata=lists["metadata"]).splitlines()
    lines += [f"{name}: {'field' if kind == 'fields' else 'value'} map of {obj}" for name, kind, obj, _ws in sheets]
    for line in lines:
        colour = line[:6] if line[:6] in (GREEN, AMBER, RED) else None
        text = line[6:] if colour else line.removeprefix("# ")
        row = append_row(ws, (text,))
        if colour:
            ws.cell(row, 1).fill = PatternFill("solid", fgColor=colour)
        elif line.startswith("# "):
            ws.cell(row, 1).font = Font(bold=True, size=13 if row == 1 else 11)
    for (cell,) in ws.iter_rows(min_col=1, max_col=1):
        cell.alignment = Alignment(wrap_text=True)
    ws.column_dimensions["A"].width = 110
    ws.protection.sheet = True
