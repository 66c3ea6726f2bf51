"""Record shaping for the two write paths: JSON bodies (REST/Collections) and Bulk 2.0 CSV.

Callers may reference a parent by external id in either of two spellings, and both paths accept both:

- nested (REST style): ``{"Account": {"Source_System_ID__c": "C-1"}}``; polymorphic lookups carry the
  parent type: ``{"What": {"attributes": {"type": "Account"}, "Source_System_ID__c": "C-1"}}``;
- dotted (Bulk CSV style): ``{"Account.Source_System_ID__c": "C-1"}``; polymorphic:
  ``{"Account:What.Source_System_ID__c": "C-1"}`` (reference §4.2).

Null handling is the same on both paths: ``None`` or ``""`` clears the field (JSON ``null``; CSV ``#N/A``),
and a key that is absent leaves the field unchanged (CSV empty cell). A dotted/nested reference whose value
is ``None`` clears the lookup itself. The literal text ``#N/A`` cannot be sent through Bulk as data.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from crmmigrator_gui.engine.target.batch import json_default

NULL_CELL = "#N/A"
NUMERIC_TYPES = {"int", "double", "currency", "percent", "long"}


# -- scalar values --------------------------------------------------------------------------------------------


def wire_datetime(value: datetime) -> str:
    """ISO 8601 with milliseconds and an explicit zone; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return json_default(value)


def to_json(payload: Any) -> bytes:
    return json.dumps(payload, default=_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _number_text(value: Decimal | float) -> str:
    text = format(Decimal(str(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def cell(value: Any) -> str:
    """One Python value as Bulk 2.0 CSV text (reference §4.2); None and "" become ``#N/A`` (set null)."""
    if value is None or value == "":
        return NULL_CELL
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (Decimal, float)):
        return _number_text(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return ";".join(str(v) for v in value) or NULL_CELL
    return str(value)


# -- parent references ----------------------------------------------------------------------------------------


def split_dotted(key: str) -> tuple[str | None, str, str] | None:
    """``Account:What.Ext__c`` -> ("Account", "What", "Ext__c"); ``Account.Ext__c`` -> (None, "Account", …)."""
    if "." not in key:
        return None
    rel_part, _, ext = key.partition(".")
    parent_type, _, relationship = rel_part.rpartition(":")
    if not relationship or not ext or "." in ext:
        return None
    return (parent_type or None), relationship, ext


def _nested_ref(value: Any) -> tuple[str | None, str, Any] | None:
    """``{"attributes": {"type": T}, "Ext__c": v}`` -> (T, "Ext__c", v); anything else -> None."""
    if not isinstance(value, dict):
        return None
    keys = [k for k in value if k != "attributes"]
    if len(keys) != 1:
        return None
    attrs = value.get("attributes")
    parent_type = attrs.get("type") if isinstance(attrs, dict) else None
    return parent_type, keys[0], value[keys[0]]


def json_record(
    record: dict[str, Any], sobject: str | None, lookup_field: Callable[[str], str | None]
) -> dict[str, Any]:
    """A caller record as a Collections item: dotted references nested, ``attributes.type`` set.

    ``lookup_field(relationship)`` names the lookup field behind a relationship (from describe); it is used
    only when a reference is cleared (``{"Account.Ext__c": None}`` -> ``{"AccountId": None}``).
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        dotted = split_dotted(key)
        if dotted is not None:
            parent_type, relationship, ext = dotted
            if value is None or value == "":
                name = lookup_field(relationship)
                if name is None:
                    raise ValueError(f"cannot clear {key}: {relationship} is not a relationship on {sobject}")
                out[name] = None
                continue
            ref: dict[str, Any] = {ext: value}
            if parent_type:
                ref = {"attributes": {"type": parent_type}, **ref}
            out[relationship] = ref
            continue
        nested = _nested_ref(value)
        if nested is not None and nested[2] in (None, ""):
            name = lookup_field(key)
            if name is not None:
                out[name] = None
                continue
        out[key] = value
    attrs = record.get("attributes")
    type_name = (attrs or {}).get("type") if isinstance(attrs, dict) else None
    type_name = type_name or sobject
    if type_name:
        out = {"attributes": {"type": type_name}, **out}
    return out


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A caller record as Bulk CSV columns: nested references become ``[Type:]Rel.Ext`` columns."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        nested = _nested_ref(value)
        if nested is not None:
            parent_type, ext, ref_value = nested
            out[f"{parent_type + ':' if parent_type else ''}{key}.{ext}"] = ref_value
            continue
        if isinstance(value, dict):
            raise ValueError(f"column {key!r}: a nested value must be one external-id reference")
        out[key] = value
    return out


# -- CSV ------------------------------------------------------------------------------------------------------


def csv_header(rows: list[dict[str, Any]], first: list[str] | None = None) -> list[str]:
    """Ordered union of the row keys (case-insensitive), with ``first`` columns leading."""
    seen: dict[str, str] = {}
    for name in first or []:
        seen.setdefault(name.lower(), name)
    for row in rows:
        for key in row:
            seen.setdefault(key.lower(), key)
    return list(seen.values())


def csv_line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(values)
    return buf.getvalue().encode("utf-8")


def row_cells(row: dict[str, Any], header: list[str]) -> list[str]:
    lower = {k.lower(): v for k, v in row.items()}
    return [cell(lower[h.lower()]) if h.lower() in lower else "" for h in header]


def read_csv(data: bytes) -> Iterator[dict[str, str]]:
    text = data.decode("utf-8-sig")
    yield from csv.DictReader(io.StringIO(text, newline=""))


# -- multipart (blob inserts, reference §6.1) -------------------------------------------------------------------


def multipart_body(fields: dict[str, Any], blob_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """``multipart/form-data`` with the record JSON (``entity_content``) and the raw bytes -> (body, type)."""
    boundary = f"crmmigrator-{uuid.uuid4().hex}"
    safe_name = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="entity_content"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            to_json(fields),
            f"\r\n--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{blob_field}"; filename="{safe_name}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f'multipart/form-data; boundary="{boundary}"'


# -- SOQL -----------------------------------------------------------------------------------------------------


def soql_string(value: str) -> str:
    """A quoted SOQL string literal (backslash escapes, reference §5)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace('"', '\\"')
    )
    return f"'{escaped}'"


def soql_literal(value: Any, field_type: str) -> str:
    if field_type in NUMERIC_TYPES:
        return _number_text(Decimal(str(value)))
    return soql_string(str(value))


def in_chunks(prefix: str, literals: list[str], suffix: str, budget: int) -> Iterator[str]:
    """``prefix lit1,lit2,… suffix`` statements whose URL-encoded length stays within ``budget``."""
    fixed = len(quote_plus(prefix + suffix))
    current: list[str] = []
    size = fixed
    for lit in literals:
        cost = len(quote_plus(lit)) + 3  # "," encodes as %2C
        if current and size + cost > budget:
            yield prefix + ",".join(current) + suffix
            current, size = [], fixed
        current.append(lit)
        size += cost
    if current:
        yield prefix + ",".join(current) + suffix


# -- Collections chunking -------------------------------------------------------------------------------------


def collection_chunks(types: list[str], size: int = 200, max_runs: int = 10) -> Iterator[list[int]]:
    """Index chunks of <= ``size`` records with <= ``max_runs`` runs of one type (reference §3.1)."""
    chunk: list[int] = []
    runs = 0
    previous: str | None = None
    for i, type_name in enumerate(types):
        new_run = type_name != previous
        if chunk and (len(chunk) >= size or (new_run and runs >= max_runs)):
            yield chunk
            chunk, runs, new_run = [], 0, True
        if new_run:
            runs += 1
        chunk.append(i)
        previous = type_name
    if chunk:
        yield chunk
