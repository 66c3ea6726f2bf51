"""A spec shown on sample values, fast enough for every keystroke, and values as the destination stores them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.mapping.transforms.base import TransformError
from crmmigrator_gui.engine.mapping.transforms.catalog import validate
from crmmigrator_gui.engine.mapping.transforms.convert import convert, template_columns
from crmmigrator_gui.engine.mapping.transforms.structure import merge_groups


def render(value: Any) -> str:
    """The text the destination will store: Decimal exact, dates ISO, date-times in UTC with Z."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return str(to_json_value(value))
    if isinstance(value, list):  # decompose: the records a row becomes
        return "; ".join(
            f"{r['part']}: skipped ({r['skipped']})" if r.get("skipped") else f"{r['part']} → {r['key']}" for r in value
        )
    return str(value)


def _row_summary(spec: dict[str, Any], row: dict[str, Any]) -> str:
    kind = spec["type"]
    if kind == "join":
        columns = spec.get("columns") or template_columns(spec.get("template") or "")
    elif kind == "decompose":
        columns = spec["id_columns"]
    else:
        return ""
    return " | ".join(f"{c}={row.get(c)}" for c in columns if row.get(c) not in (None, ""))


def preview(
    spec: dict[str, Any], samples: list[Any], *, rows: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Show ``spec`` on sample values: [{raw, value, error, notes}] with ``value`` as the destination stores it.

    ``rows`` (the whole staged rows, aligned with ``samples``) feed multi-column types; ``samples`` may be
    empty then. A spec that does not validate gives its message as every row's error instead of raising,
    so an editor can call this on every keystroke.
    """
    try:
        checked = validate(spec)
    except UsageError as exc:
        count = max(len(samples), len(rows or ()), 1)
        raws = list(samples) + [None] * (count - len(samples))
        return [{"raw": raws[i], "value": "", "error": str(exc), "notes": []} for i in range(count)]
    if checked["type"] == "merge":
        return [
            {
                "raw": g["group"],
                "value": "\n".join(f"{c}: {t}" for c, t in g["columns"].items() if t is not None),
                "error": None,
                "notes": [f"{g['members']} row(s) → {g['key']}"],
            }
            for g in merge_groups(checked, rows or [])
        ]
    results = []
    count = max(len(samples), len(rows or ()))
    for index in range(count):
        row = rows[index] if rows is not None and index < len(rows) else None
        raw = samples[index] if index < len(samples) else (_row_summary(checked, row) if row is not None else None)
        try:
            result = convert(checked, samples[index] if index < len(samples) else None, row=row)
        except TransformError as exc:
            results.append({"raw": raw, "value": "", "error": str(exc), "notes": []})
            continue
        results.append({"raw": raw, "value": render(result.value), "error": None, "notes": list(result.notes)})
    return results


def to_json_value(value: Any, column_type: str | None = None) -> Any:
    """Python value → JSON for the Web API (Decimal stays exact; dates ISO; date-times with Z)."""
    if isinstance(value, datetime):
        if column_type == "DateOnly":
            return value.date().isoformat()
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        if column_type in ("DateTime",):
            # A date-only value going into a date-time column: noon UTC shows the same calendar day
            # in every time zone from UTC-12 to UTC+11, so the date never shifts.
            return f"{value.isoformat()}T12:00:00Z"
        return value.isoformat()
    return value
