"""One spec applied to one value (or, for joins and structure types, to the whole source row).

Placeholders (``N/A``, ``none``, ``-``) in a typed column mean "no value"; free text keeps what people wrote.
``default`` replaces an empty source value and is converted like one; ``case`` applies to any text result.
"""

from __future__ import annotations

import re
from typing import Any

from crmmigrator_gui.engine.mapping.transforms.base import ALIASES, Converted, TransformError
from crmmigrator_gui.engine.mapping.transforms.contacts import _email, _phone
from crmmigrator_gui.engine.mapping.transforms.markup import html_to_text, rtf_to_text
from crmmigrator_gui.engine.mapping.transforms.names import _name_part, recase
from crmmigrator_gui.engine.mapping.transforms.scalar import (
    _date,
    _integer,
    _money,
    parse_bool,
    parse_money,
    parse_time,
)
from crmmigrator_gui.engine.mapping.transforms.structure import decompose_records, merge_group_id

_PLACEHOLDERS = {"n/a", "na", "none", "null", "-", "--", "nil", "#n/a"}  # "no value" in a typed column
_FREE_TEXT = {"text", "memo", "longtext", "names", "trim", "case", "name_split", "html_to_text", "rtf_to_text"}


def _trim(spec: dict[str, Any], text: str, notes: list[str]) -> str:
    return " ".join(text.split()) if spec.get("collapse", True) else text.strip()


_SINGLE: dict[str, Any] = {
    "text": lambda s, t, n: " ".join(t.split()),
    "memo": lambda s, t, n: t.strip(),
    "trim": _trim,
    "case": lambda s, t, n: " ".join(t.split()),
    "name_split": _name_part,
    "email": _email,
    "phone": _phone,
    "money": _money,
    "decimal": lambda s, t, n: parse_money(t, decimal_separator=s.get("decimal_separator")),
    "integer": _integer,
    "boolean": lambda s, t, n: parse_bool(t),
    "time": lambda s, t, n: parse_time(t),
    "date": _date,
    "datetime": _date,
    "html_to_text": lambda s, t, n: html_to_text(t),
    "rtf_to_text": lambda s, t, n: rtf_to_text(t),
    "postcode": lambda s, t, n: t.strip(),
    "url": lambda s, t, n: t.strip(),
}
for _kind in ("enum", "lookup", "key", "owner", "reference", "id", "secret"):
    _SINGLE[_kind] = _SINGLE["text"]


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def template_columns(template: str) -> list[str]:
    """The ``{Column}`` placeholders of a join template, in order, once each."""
    return list(dict.fromkeys(name.strip() for name in _PLACEHOLDER.findall(template)))


def _cell(row: dict[str, Any], column: str) -> str:
    if column not in row:
        raise TransformError(f"no column {column!r} in this row")
    value = row[column]
    return "" if value is None else str(value).strip()


def _join(spec: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    template = spec.get("template")
    columns = spec.get("columns") or (template_columns(template) if template else [])
    if row is None:
        raise TransformError(f"joins several columns ({', '.join(columns)}): it needs the whole source row")
    if template:
        lines = []
        for line in template.replace("\\n", "\n").split("\n"):
            names = _PLACEHOLDER.findall(line)
            values = {name: _cell(row, name.strip()) for name in names}
            if names and not any(values.values()):
                continue  # "Gate: {Gate Code}" with no gate code leaves no "Gate:" line
            lines.append(_PLACEHOLDER.sub(lambda m, v=values: v[m.group(1)], line).rstrip())
        text = "\n".join(lines).strip()
        return text or None
    labels = bool(spec.get("labels"))
    separator = spec.get("separator")
    if separator is None:
        separator = "\n" if labels else " "
    items = [(c, _cell(row, c)) for c in columns]
    text = separator.join(f"{c}: {v}" if labels else v for c, v in items if v)
    return text or None


def convert(spec: dict[str, Any], raw: Any, *, row: dict[str, Any] | None = None) -> Converted:
    """Convert one source value (or, for multi-column types, the whole ``row``) and collect notes.

    Raises TransformError with a message fit for the user when the value cannot be converted.
    """
    kind = ALIASES.get(spec.get("type") or "text", spec.get("type") or "text")
    notes: list[str] = []
    value: Any
    if kind == "constant":
        value = spec.get("value")
    elif kind == "join":
        value = _join(spec, row)
    elif kind == "decompose":
        value = decompose_records(spec, row if row is not None else {})
    elif kind == "merge":
        value = merge_group_id(spec, row if row is not None else {})
    else:
        value = _convert_text(kind, spec, raw, notes)
    if (value is None or value == "") and spec.get("default") not in (None, ""):
        value = _convert_text(kind if kind in _SINGLE else "text", spec, str(spec["default"]), notes)
    if isinstance(value, str) and spec.get("case"):
        value = recase(value, spec["case"])
    return Converted(value, tuple(notes))


def _convert_text(kind: str, spec: dict[str, Any], raw: Any, notes: list[str]) -> Any:
    if raw is None:
        return None
    text = str(raw)
    stripped = text.strip()
    if not stripped:
        return None
    if kind not in _FREE_TEXT and stripped.lower() in _PLACEHOLDERS:
        return None  # "N/A", "none", "-" in a typed column mean "no value", not a bad value
    handler = _SINGLE.get(kind)
    if handler is None:
        return stripped
    value = handler(spec, text, notes)
    return None if value == "" else value


def apply(spec: dict[str, Any], raw: Any, *, row: dict[str, Any] | None = None) -> Any:
    """Convert one raw source value; ``None`` means "leave the destination column empty"."""
    return convert(spec, raw, row=row).value
