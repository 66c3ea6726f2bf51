"""A "newer export" of a generated OctopusPro export: what the customer sends on cutover day.

Why: delta pickup is judged by whether it finds exactly the records that changed, so tests need a newer
export whose differences are known. This module reads a standard export (the workbook
:func:`~crmmigrator_gui.engine.demo.octopuspro.generate_export` writes) and writes a new workbook with the
same sheets in which ``new`` rows were added, ``changed`` rows had one mapped text field edited (bookings
also get a later ``Modified`` time, as the source would stamp them) and ``removed`` rows are gone. It
returns what it did, per object, so a test can check the delta's classification id by id.

``changes_only`` names objects written the way many platforms export "changes since": only their new and
changed rows, all stamped after the previous export's newest ``Modified``. Delta detection must not read
the absence of every other row as a deletion. ``omit`` leaves whole sheets out (a partial export).

Deterministic for a seed. Values are written as text cells exactly as the reader gave them, so an
untouched row hashes the same as before.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from crmmigrator_gui.engine.demo.octopuspro import _STANDARD_SHEETS, _atomic_write
from crmmigrator_gui.engine.source.readers import open_tables

# Source id columns per object (form responses: booking + form + question, as the importer joins them).
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("Customer ID",),
    "bookings": ("Booking ID",),
    "fieldworkers": ("ID",),
    "invoices": ("Invoice number",),
    "payments": ("Payment ID",),
    "quotes": ("Quote number",),
    "services": ("Service",),
    "form_responses": ("Booking ID", "Form", "Question"),
}
# The field a "changed" row gets edited, per object (mapped text, so the destination must follow).
CHANGE_FIELDS = {"customers": "Last name", "bookings": "Access notes", "quotes": "Status", "payments": "Reference"}
NEW_OBJECTS = ("customers", "bookings")
CHANGED_OBJECTS = ("customers", "bookings")
REMOVED_OBJECTS = ("quotes", "payments")  # leaves: nothing else refers to them
MODIFIED = "Modified"


@dataclass
class NewerExport:
    """What :func:`make_newer_export` wrote and did, per source object (source ids as the importer forms them)."""

    files: list[Path]
    new: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)  # rows present and untouched (complete sheets only)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # obj -> sid -> {column: new}
    changes_only: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)


def make_newer_export(
    export: Path | Collection[Path],
    out_dir: Path,
    *,
    new: int = 4,
    changed: int = 4,
    removed: int = 2,
    seed: int = 1,
    new_objects: Collection[str] = NEW_OBJECTS,
    changed_objects: Collection[str] = CHANGED_OBJECTS,
    removed_objects: Collection[str] = REMOVED_OBJECTS,
    changes_only: Collection[str] = (),
    omit: Collection[str] = (),
) -> NewerExport:
    """Write ``out_dir/octopuspro_export.xlsx``: the given standard export with ``new`` rows added, ``changed``
    rows edited and ``removed`` rows left out, spread round-robin over the named objects.

    Raises ValueError when an object has too few rows for what was asked."""
    paths = [export] if isinstance(export, Path) else list(export)
    titles = {title: obj for obj, title, _c in _STANDARD_SHEETS}
    sheets: dict[str, tuple[str, list[str], list[list[str | None]]]] = {}  # obj -> (title, columns, rows)
    for path in paths:
        for table in open_tables(Path(path)):
            obj = titles.get(table.sheet or table.name)
            if obj is None:
                continue
            sheets[obj] = (table.sheet or table.name, list(table.columns), [v for _n, v in table.iter_rows()])
    rng = random.Random(seed)
    result = NewerExport(files=[], changes_only=sorted(changes_only), omitted=sorted(omit))
    mark = _high_water(sheets)
    touched: dict[str, set[int]] = {obj: set() for obj in sheets}

    def sid(obj: str, columns: list[str], row: list[str | None]) -> str:
        return "|".join(str(row[columns.index(c)] or "").strip() for c in ID_COLUMNS[obj])

    # Removed first, so changed rows and new rows' parents are chosen among the rows that stay.
    for obj, count in _spread(removed, removed_objects).items():
        _title, columns, rows = sheets[obj]
        picks = _pick(rng, [i for i in range(len(rows)) if i not in touched[obj]], count, obj, "remove")
        touched[obj].update(picks)
        result.removed[obj] = [sid(obj, columns, rows[i]) for i in sorted(picks)]
    gone = {obj: set(ids) for obj, ids in result.removed.items()}
    for obj, count in _spread(changed, changed_objects).items():
        _title, columns, rows = sheets[obj]
        column = CHANGE_FIELDS[obj]
        picks = _pick(rng, [i for i in range(len(rows)) if i not in touched[obj]], count, obj, "change")
        touched[obj].update(picks)
        for n, index in enumerate(sorted(picks), start=1):
            row = rows[index]
            before = row[columns.index(column)] or ""
            row[columns.index(column)] = f"{before} (rev {seed}.{n})".strip()
            edits = {column: row[columns.index(column)] or ""}
            if MODIFIED in columns:
                row[columns.index(MODIFIED)] = edits[MODIFIED] = _stamp(mark, n)
            key = sid(obj, columns, row)
            result.changed.setdefault(obj, []).append(key)
            result.values.setdefault(obj, {})[key] = edits
    added: dict[str, list[list[str | None]]] = {}
    for obj, count in _spread(new, new_objects).items():
        _title, columns, rows = sheets[obj]
        next_id = max(int(str(r[columns.index(ID_COLUMNS[obj][0])])) for r in rows) + 1
        for n in range(count):
            row = list(rows[rng.randrange(len(rows))])
            row[columns.index(ID_COLUMNS[obj][0])] = str(next_id + n)
            if obj == "customers":
                row[columns.index("First name")] = f"New{n + 1}"
                row[columns.index("Last name")] = f"Customer {seed}.{n + 1}"
                row[columns.index("Email")] = f"new{n + 1}.s{seed}@example.com"
            elif obj == "bookings":
                kept = [r for r in sheets["customers"][2] if str(r[0]) not in gone.get("customers", set())]
                row[columns.index("Customer ID")] = str(kept[rng.randrange(len(kept))][0])
                row[columns.index("Access notes")] = f"new booking {seed}.{n + 1}"
                for column in ("Created", MODIFIED):
                    row[columns.index(column)] = _stamp(mark, n + 1)
            added.setdefault(obj, []).append(row)
            result.new.setdefault(obj, []).append(sid(obj, columns, row))

    book = Workbook(write_only=True)
    for obj, (title, columns, rows) in sheets.items():
        if obj in omit:
            continue
        if obj in changes_only:
            changed_rows = set(result.changed.get(obj, ()))
            kept_rows = [r for r in rows if sid(obj, columns, r) in changed_rows]
        else:
            removed_ids = set(result.removed.get(obj, ()))
            kept_rows = [r for r in rows if sid(obj, columns, r) not in removed_ids]
            result.unchanged[obj] = len(kept_rows) - len(result.changed.get(obj, ()))
        sheet = book.create_sheet(title)
        sheet.append(columns)
        for row in kept_rows + added.get(obj, []):
            sheet.append(row)
    out = Path(out_dir) / "octopuspro_export.xlsx"
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, lambda temp: book.save(temp))
    result.files = [out]
    return result


def _spread(total: int, objects: Collection[str]) -> dict[str, int]:
    """``total`` round-robin over ``objects`` (in the order given)."""
    names = list(objects)
    counts: dict[str, int] = {}
    for n in range(total):
        obj = names[n % len(names)]
        counts[obj] = counts.get(obj, 0) + 1
    return counts


def _pick(rng: random.Random, pool: list[int], count: int, obj: str, what: str) -> list[int]:
    if count > len(pool):
        raise ValueError(f"{obj}: cannot {what} {count} rows, only {len(pool)} available")
    return rng.sample(pool, count)


def _high_water(sheets: dict[str, tuple[str, list[str], list[list[Any]]]]) -> datetime:
    """The newest ``Modified`` of the previous export (bookings), or the generator's reference day."""
    stamps = []
    for _title, columns, rows in sheets.values():
        if MODIFIED in columns:
            for row in rows:
                text = row[columns.index(MODIFIED)]
                if text:
                    stamps.append(datetime.fromisoformat(str(text)))
    return max(stamps) if stamps else datetime(2025, 3, 14, 9, 0)


def _stamp(mark: datetime, n: int) -> str:
    """A modified time after the previous export's newest: minutes past it, one per row."""
    return (mark + timedelta(minutes=n)).isoformat(timespec="seconds")
