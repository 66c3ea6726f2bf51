"""The offline review workbook: the map goes to the customer as XLSX and comes back with their edits.

The customer who knows the data rarely runs the app, so the map travels as a workbook: one sheet per
source object (and one for its value maps), dropdowns of valid destinations and option labels, confidence
colours, reasons and a notes column. The round trip has to be lossless and safe:

- every data row carries a hidden key (JSON of its identity and of the values it was exported with) and a
  check keyed by the project id, so the customer may sort and filter freely, while a workbook of another
  project, a tampered key, an added, deleted or duplicated row is recognised and named;
- the import is a three-way comparison (value exported, cell now, project now): a cell nobody touched is
  never a change even if the map moved on in the app, and a cell changed on both sides is a conflict;
- cells are read with python-calamine and normalised (numbers as floats, empty strings vs None, CRLF), so an
  unedited round trip through Excel, LibreOffice or Google Sheets yields no change;
- text is written through :mod:`..report.safe_cells`, so no source value or note can become a formula;
- ``read_review`` only reads; ``apply_review`` writes in one audited step once the consultant confirms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, InputError, MigratorError, UsageError
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.report.safe_cells import append_row, is_risky, set_cell, xlsx_text

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


@dataclass
class Change:
    """One edit the customer made. ``row`` is the Excel row; ``target`` names a value's destination column."""

    kind: str  # field | value | note
    sheet: str
    row: int
    source_object: str
    source_field: str
    source_value: str | None
    column: str
    before: str | None
    after: str | None
    row_id: int | None = None  # field_maps.id (field rows)
    target: str | None = None  # "entity.field" a value row belongs to

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReviewError:
    sheet: str
    row: int | None
    column: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = [f"sheet {self.sheet!r}"] + ([f"row {self.row}"] if self.row else [])
        where += [f"column {self.column!r}"] if self.column else []
        return f"{', '.join(where)}: {self.message}"


@dataclass
class ReviewDiff:
    """What the returned workbook would change; nothing is applied until ``apply_review``."""

    workbook: str
    exported_at: str | None
    changes: list[Change] = field(default_factory=list)
    errors: list[ReviewError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "workbook": self.workbook,
            "exported_at": self.exported_at,
            "changes": [c.to_json() for c in self.changes],
            "errors": [e.to_json() for e in self.errors],
        }


# ---------------------------------------------------------------------------------------------- export


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


# ---------------------------------------------------------------------------------------------- read


def _text(value: Any) -> str:
    """A cell as text, the same whichever program saved it (floats, bools, dates, CRLF, padding)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def _shown(value: str) -> str:
    """How an exported text reads back (the writer replaced XML-illegal characters)."""
    return _text(xlsx_text(value))


def read_review(project: Project, path: Path | str) -> ReviewDiff:
    """Compare a returned workbook with the project: the customer's changes and every problem, nothing written."""
    from python_calamine import CalamineError, CalamineWorkbook, PasswordError, XmlError, ZipError

    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    try:
        wb = CalamineWorkbook.from_path(str(path))
        meta_rows = wb.get_sheet_by_name(META).to_python(skip_empty_area=False) if META in wb.sheet_names else []
    except (CalamineError, PasswordError, XmlError, ZipError, OSError, ValueError) as exc:
        raise InputError(f"not a readable .xlsx workbook ({exc})", file=path.name) from exc
    meta = {_text(r[0]): r[1:] for r in meta_rows if r and _text(r[0]) not in ("sheet", "row")}
    if not meta_rows or _text((meta.get("format") or [""])[0]) != FORMAT:
        raise InputError("not a CRM Migrator review workbook (its hidden '_review' sheet is missing)", file=path.name)
    pid = project.meta("project_id")
    if not pid or _text(meta["project_id"][0]) != pid:
        raise InputError(
            f"this workbook belongs to another project ({_text((meta.get('project') or [''])[0])}, "
            f"{_text((meta.get('pair') or [''])[0])}); export a review workbook from this project",
            file=path.name,
        )
    diff = ReviewDiff(path.name, _text((meta.get("exported_at") or [""])[0]) or None)
    expected: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    for r in meta_rows:
        if r and _text(r[0]) == "sheet":
            kinds[str(r[1])] = _text(r[2])
            expected.setdefault(str(r[1]), {})
        elif r and _text(r[0]) == "row":
            expected.setdefault(str(r[1]), {})[str(r[2])] = None
    lists = _stored_lists(project)
    reader = _Reader(project, pid, lists, diff)
    for sheet, kind in kinds.items():
        if sheet not in wb.sheet_names:
            diff.errors.append(ReviewError(sheet, None, None, "sheet is missing or was renamed; give it back its name"))
            continue
        reader.sheet(sheet, kind, wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False), expected[sheet])
    reader.check_duplicate_targets()
    return diff


class _Reader:
    def __init__(self, project: Project, pid: str, lists: dict[str, Any], diff: ReviewDiff) -> None:
        self.project, self.pid, self.lists, self.diff = project, pid, lists, diff
        self.fields = {r["id"]: r for r in _field_rows(project)}
        self.values = {
            (v["source_object"], v["source_field"], v["target_entity"], v["target_field"], v["source_value"]): v
            for v in _value_rows(project)
        }

    def error(self, sheet: str, row: int | None, column: str | None, message: str) -> None:
        self.diff.errors.append(ReviewError(sheet, row, column, message))

    def sheet(self, sheet: str, kind: str, rows: list[list[Any]], expected: dict[str, Any]) -> None:
        columns = FIELD_COLUMNS if kind == "fields" else VALUE_COLUMNS
        header = {_text(h): i for i, h in enumerate(rows[0] if rows else [])}
        missing = [c for c in (*columns, KEY, CHECK) if c not in header]
        for name in missing:
            self.error(sheet, 1, name, "column is missing or was renamed; give it back its heading")
        if missing:
            return
        seen: dict[str, int] = {}
        for index, raw in enumerate(rows[1:], 2):
            cells = {name: raw[i] if i < len(raw) else "" for name, i in header.items()}
            key = cells[KEY] if isinstance(cells[KEY], str) else ""
            if not key.strip():
                if any(_text(cells[c]) for c in columns):
                    self.error(sheet, index, None, "row was added: only exported rows can be read back; "
                               "write wishes in a Notes cell instead")  # fmt: skip
                continue
            if key not in expected or not hmac.compare_digest(_text(cells[CHECK]), _check(self.pid, key)):
                self.error(sheet, index, KEY, "the hidden key of this row was changed (tampered key); "
                           "copy the row back from the exported workbook")  # fmt: skip
                continue
            if key in seen:
                self.error(sheet, index, None, f"row appears twice (also row {seen[key]}); delete the copy")
                continue
            seen[key] = index
            parts = json.loads(key)
            (self._field if parts[0] == "f" else self._value)(sheet, index, parts, cells)
        for key in expected:
            if key not in seen:
                parts = json.loads(key)
                what = parts[3] if parts[0] == "f" else f"{parts[2]} = {parts[5]!r}"
                self.error(sheet, None, None, f"the row for {what} was deleted; put it back (clear its "
                           "destination to leave the column behind)")  # fmt: skip

    def _tampered(self, sheet: str, row: int, cells: dict[str, Any], column: str, exported: str) -> bool:
        if _text(cells[column]) != _shown(exported):
            self.error(sheet, row, column, f"this cell identifies the row and must stay {exported!r} (tampered key)")
            return True
        return False

    def _field(self, sheet: str, row: int, parts: list[Any], cells: dict[str, Any]) -> None:
        _kind, row_id, obj, source_field, exported_target, exported_notes = parts
        if self._tampered(sheet, row, cells, FIELD, source_field):
            return
        current = self.fields.get(row_id)
        if current is None or (current["source_object"], current["source_field"]) != (obj, source_field):
            self.error(sheet, row, None, "this row is no longer in the project's map (it changed since the "
                       "export); export a fresh workbook")  # fmt: skip
            return
        now_target = _target(current["target_entity"], current["target_field"])
        cell = _text(cells[DEST])
        base = dict(kind="field", sheet=sheet, row=row, source_object=obj, source_field=source_field,
                    source_value=None, row_id=row_id)  # fmt: skip
        if cell != _shown(exported_target):
            transform = json.loads(current["transform"] or "{}").get("type")
            choices = {t.lower(): t for t in self.lists["targets"].get(obj, [])}
            if transform in FIXED:
                self.error(sheet, row, DEST, f"this destination builds a {transform} and is fixed; "
                           f"set it back to {exported_target!r} and explain in Notes")  # fmt: skip
            elif cell and cell.lower() not in choices:
                self.error(sheet, row, DEST, f"unknown destination {cell!r} for {obj}; pick one from the dropdown")
            elif (after := choices.get(cell.lower()) if cell else "") == now_target:
                pass  # the app already made the same change
            elif now_target != exported_target:
                self.error(sheet, row, DEST, f"changed in the app too (now {now_target or 'unmapped'!r}); "
                           "export a fresh workbook")  # fmt: skip
            else:
                self.diff.changes.append(Change(**base, column=DEST, before=now_target or None, after=after or None))
        self._note(sheet, row, cells, exported_notes, current["notes"] or "", base)

    def _value(self, sheet: str, row: int, parts: list[Any], cells: dict[str, Any]) -> None:
        _kind, obj, source_field, entity, column, source_value, exported_label, exported_notes = parts
        if self._tampered(sheet, row, cells, FIELD, source_field) or self._tampered(
            sheet, row, cells, VALUE, source_value
        ):
            return
        current = self.values.get((obj, source_field, entity, column, source_value))
        if current is None:
            self.error(sheet, row, None, "this value is no longer in the project's map; export a fresh workbook")
            return
        target = _target(entity, column)
        base = dict(kind="value", sheet=sheet, row=row, source_object=obj, source_field=source_field,
                    source_value=source_value, target=target)  # fmt: skip
        cell = _text(cells[DEST_VALUE])
        now_label = current["target_label"] or ""
        if cell != _shown(exported_label):
            spec = self.lists["options"].get(target) or {}
            labels = {o["label"].strip().lower(): o["label"] for o in spec.get("options", [])}
            if cell and cell.lower() not in labels and not spec.get("open"):
                close = ", ".join(sorted(labels.values())[:8])
                self.error(sheet, row, DEST_VALUE, f"{cell!r} is not a value of {target} (choose from: {close})")
            elif (after := labels.get(cell.lower(), cell) if cell else "") == now_label:
                pass  # the app already made the same change
            elif now_label != exported_label:
                self.error(sheet, row, DEST_VALUE, f"changed in the app too (now {now_label!r}); "
                           "export a fresh workbook")  # fmt: skip
            else:
                self.diff.changes.append(
                    Change(**base, column=DEST_VALUE, before=now_label or None, after=after or None)
                )
        self._note(sheet, row, cells, exported_notes, current["notes"] or "", base)

    def _note(self, sheet: str, row: int, cells: dict[str, Any], exported: str, now: str, base: dict[str, Any]) -> None:
        cell = _text(cells[NOTES])
        if cell in (_shown(exported), _text(now)):
            return  # untouched, or the app already holds the same note
        if _text(now) != _text(exported):
            self.error(sheet, row, NOTES, "the note was changed in the app too; export a fresh workbook")
            return
        change = Change(**{**base, "kind": "note"}, column=NOTES, before=now or None, after=cell or None)
        self.diff.changes.append(change)

    def check_duplicate_targets(self) -> None:
        """Two rows of one source column may not land on the same destination (the map's unique key)."""
        final = {r["id"]: _target(r["target_entity"], r["target_field"]) for r in self.fields.values()}
        for change in self.diff.changes:
            if change.kind == "field" and change.row_id is not None:
                final[change.row_id] = change.after or ""
        for change in self.diff.changes:
            if change.kind != "field" or not change.after:
                continue
            twins = [i for i, t in final.items() if t == change.after and i != change.row_id
                     and self.fields[i]["source_object"] == change.source_object
                     and self.fields[i]["source_field"] == change.source_field]  # fmt: skip
            if twins:
                self.error(change.sheet, change.row, DEST, f"{change.source_field} already goes to {change.after} "
                           "in another row")  # fmt: skip


# ---------------------------------------------------------------------------------------------- apply


def apply_review(project: Project, diff: ReviewDiff, *, actor: str | None = None) -> int:
    """Apply a reviewed diff in one audited step; any error (or a map moved since reading) applies nothing."""
    if diff.errors:
        first = diff.errors[0]
        raise InputError(
            f"{first.message} ({len(diff.errors)} problem(s) in the workbook; nothing was applied)",
            file=f"{diff.workbook}, sheet {first.sheet!r}",
            row=first.row,
            column=first.column,
        )
    who = actor or current_actor()
    at = now_iso()
    options = _stored_lists(project)["options"]
    with project.step("map import", {"workbook": diff.workbook, "changes": [c.to_json() for c in diff.changes]},
                      actor=who):  # fmt: skip
        for change in diff.changes:
            _apply(project, change, who, at, diff.workbook, options)
    return len(diff.changes)


def _apply(project: Project, c: Change, who: str, at: str, workbook: str, options: dict[str, Any]) -> None:
    conn = project.db.conn
    stale = InputError(
        "changed in the project after the workbook was read; read it again", file=f"{workbook}, sheet {c.sheet!r}",
        row=c.row, column=c.column,
    )  # fmt: skip
    summary = f"{c.before or '(empty)'} → {c.after or '(empty)'} (from workbook {workbook})"
    if c.row_id is not None:
        rows = project.query("SELECT * FROM field_maps WHERE id = ?", (c.row_id,))
        if not rows or (rows[0]["source_object"], rows[0]["source_field"]) != (c.source_object, c.source_field):
            raise stale
        current = rows[0]
        if c.kind == "note":
            if (current["notes"] or None) != c.before:
                raise stale
            conn.execute("UPDATE field_maps SET notes = ? WHERE id = ?", (c.after or "", c.row_id))
            return
        if (_target(current["target_entity"], current["target_field"]) or None) != c.before:
            raise stale
        entity, _, column = (c.after or "").partition(".")
        conn.execute(
            "UPDATE field_maps SET target_entity = ?, target_field = ?, status = ?, confirmed_by = ?, "
            "confirmed_at = ?, origin = 'user', customer_change = ? WHERE id = ?",
            (entity or None, column or None, "confirmed" if c.after else "unmapped", who, at, summary, c.row_id),
        )
        return
    entity, _, column = (c.target or "").partition(".")
    where = "source_object = ? AND source_field = ? AND target_entity = ? AND target_field = ? AND source_value = ?"
    ident = (c.source_object, c.source_field, entity, column, c.source_value)
    rows = project.query(f"SELECT target_label, notes FROM value_maps WHERE {where}", ident)
    if not rows:
        raise stale
    if c.kind == "note":
        if (rows[0]["notes"] or None) != c.before:
            raise stale
        conn.execute(f"UPDATE value_maps SET notes = ? WHERE {where}", (c.after or "", *ident))
        return
    if (rows[0]["target_label"] or None) != c.before:
        raise stale
    stored = next(
        (o.get("value") for o in (options.get(c.target or "") or {}).get("options", []) if o["label"] == c.after),
        None,
    )
    conn.execute(
        f"UPDATE value_maps SET target_label = ?, target_value = ?, status = 'confirmed', confirmed_by = ?, "
        f"confirmed_at = ?, customer_change = ? WHERE {where}",
        (c.after, None if stored is None else str(stored), who, at, summary, *ident),
    )
