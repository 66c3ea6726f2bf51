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

This module reads and applies; writing the workbook (and the lists its dropdowns offer) is
:mod:`.workbook_export`, whose :func:`export_review` and format constants are importable from here.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.mapping.workbook_export import (
    AMBER,
    CHECK,
    DEST,
    DEST_VALUE,
    EDIT,
    FIELD,
    FIELD_COLUMNS,
    FIXED,
    FORMAT,
    GREEN,
    GREY,
    KEY,
    LISTS,
    LISTS_META,
    META,
    NOTES,
    README,
    README_TEXT,
    RED,
    VALUE,
    VALUE_COLUMNS,
    _check,
    _field_rows,
    _stored_lists,
    _target,
    _value_rows,
    export_review,
)
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.report.safe_cells import xlsx_text

__all__ = [
    "AMBER",
    "CHECK",
    "DEST",
    "DEST_VALUE",
    "EDIT",
    "FIELD",
    "FIELD_COLUMNS",
    "FIXED",
    "FORMAT",
    "GREEN",
    "GREY",
    "KEY",
    "LISTS",
    "LISTS_META",
    "META",
    "NOTES",
    "README",
    "README_TEXT",
    "RED",
    "VALUE",
    "VALUE_COLUMNS",
    "Change",
    "ReviewDiff",
    "ReviewError",
    "apply_review",
    "export_review",
    "read_review",
]


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
    from crmmigrator_gui.engine.mapping.maps import remember  # maps imports values; import late, no cycle

    remember(project)  # the customer's confirmed choices teach the mapping memory too
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
