"""Salesforce value types: per-record results, describe metadata, and the parsers for error shapes.

Salesforce reports errors in four shapes (reference §8.1): a REST JSON array of
``{"errorCode","message","fields"}``, Collections/SaveResult items with ``statusCode`` instead of
``errorCode``, the Bulk 2.0 ``sf__Error`` cell ``CODE:message:fields --``, and OAuth's
``{"error","error_description"}``. All of them are normalised here to ``(code, message, fields)`` so the
load engine sees one shape whichever API carried the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

ErrorItem = tuple[str, str, list[str]]  # (errorCode, message, field API names)

LOCK_CODE = "UNABLE_TO_LOCK_ROW"
ROLLED_BACK_CODE = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass
class RecordResult:
    """Outcome of one record in a Collections call or a Bulk 2.0 job, in the caller's input order.

    ``created`` is True/False for upserts and inserts (None when the API does not say, e.g. deletes and
    failures). ``errors`` is a list of ``(code, message, fields)``.
    """

    ok: bool
    id: str | None = None
    created: bool | None = None
    errors: list[ErrorItem] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [e[0] for e in self.errors]

    @property
    def message(self) -> str:
        """All errors as one line, e.g. ``STRING_TOO_LONG: Phone: data value too large … [Phone]``."""
        parts = []
        for code, message, fields in self.errors:
            suffix = f" [{', '.join(fields)}]" if fields else ""
            parts.append(f"{code}: {message}{suffix}")
        return "; ".join(parts)


@dataclass
class FieldMeta:
    """The describe attributes the migration relies on (reference §2.3)."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = False
    updateable: bool = False
    defaulted_on_create: bool = False
    calculated: bool = False
    auto_number: bool = False
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    case_sensitive: bool = False
    custom: bool = False
    picklist_values: list[str] = field(default_factory=list)  # active values only
    restricted_picklist: bool = False
    default_value: Any = None
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    polymorphic: bool = False

    @property
    def required_on_create(self) -> bool:
        """Salesforce's own definition: createable, not nillable, not defaulted on create."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @classmethod
    def from_describe(cls, raw: dict[str, Any]) -> FieldMeta:
        return cls(
            name=raw["name"],
            label=raw.get("label") or raw["name"],
            type=raw.get("type", "string"),
            length=int(raw.get("length") or 0),
            precision=int(raw.get("precision") or 0),
            scale=int(raw.get("scale") or 0),
            nillable=bool(raw.get("nillable", True)),
            createable=bool(raw.get("createable", False)),
            updateable=bool(raw.get("updateable", False)),
            defaulted_on_create=bool(raw.get("defaultedOnCreate", False)),
            calculated=bool(raw.get("calculated", False)),
            auto_number=bool(raw.get("autoNumber", False)),
            external_id=bool(raw.get("externalId", False)),
            id_lookup=bool(raw.get("idLookup", False)),
            unique=bool(raw.get("unique", False)),
            case_sensitive=bool(raw.get("caseSensitive", False)),
            custom=bool(raw.get("custom", False)),
            picklist_values=[
                str(p["value"]) for p in raw.get("picklistValues") or [] if p.get("active", True) and "value" in p
            ],
            restricted_picklist=bool(raw.get("restrictedPicklist", False)),
            default_value=raw.get("defaultValue"),
            reference_to=list(raw.get("referenceTo") or []),
            relationship_name=raw.get("relationshipName"),
            polymorphic=bool(raw.get("polymorphicForeignKey", False)),
        )


@dataclass
class SObjectMeta:
    """One object's describe, with case-insensitive field and relationship lookups."""

    name: str
    label: str
    key_prefix: str | None
    custom: bool
    createable: bool
    updateable: bool
    deletable: bool
    queryable: bool
    undeletable: bool
    fields: dict[str, FieldMeta]
    child_relationships: list[dict[str, Any]] = field(default_factory=list)
    record_types: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): f for name, f in self.fields.items()}
        self._rel = {f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name}

    def field(self, name: str) -> FieldMeta | None:
        return self._lower.get(name.lower())

    def by_relationship(self, relationship: str) -> FieldMeta | None:
        """The lookup field behind a relationship name (``Account`` -> ``AccountId``, ``Job__r`` -> ``Job__c``)."""
        return self._rel.get(relationship.lower())

    @property
    def external_id_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.external_id]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.required_on_create]

    @classmethod
    def from_describe(cls, raw: dict[str, Any]) -> SObjectMeta:
        fields = {f["name"]: FieldMeta.from_describe(f) for f in raw.get("fields") or []}
        return cls(
            name=raw["name"],
            label=raw.get("label") or raw["name"],
            key_prefix=raw.get("keyPrefix"),
            custom=bool(raw.get("custom", False)),
            createable=bool(raw.get("createable", True)),
            updateable=bool(raw.get("updateable", True)),
            deletable=bool(raw.get("deletable", True)),
            queryable=bool(raw.get("queryable", True)),
            undeletable=bool(raw.get("undeletable", False)),
            fields=fields,
            child_relationships=list(raw.get("childRelationships") or []),
            record_types=list(raw.get("recordTypeInfos") or []),
        )


# -- error shapes ---------------------------------------------------------------------------------------------


def _item(raw: Any) -> ErrorItem:
    if not isinstance(raw, dict):
        return "UNKNOWN_EXCEPTION", str(raw), []
    code = raw.get("errorCode") or raw.get("statusCode") or raw.get("error") or "UNKNOWN_EXCEPTION"
    message = raw.get("message") or raw.get("error_description") or ""
    fields = raw.get("fields") or []
    return str(code), str(message), [str(f) for f in fields] if isinstance(fields, list) else [str(fields)]


def rest_errors(response: httpx.Response) -> list[ErrorItem]:
    """Errors from a REST error response (array, single object, OAuth shape or plain text)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()[:300]
        return [(f"HTTP_{response.status_code}", text or response.reason_phrase, [])]
    if isinstance(body, list) and body:
        return [_item(x) for x in body]
    if isinstance(body, dict):
        return [_item(body)]
    return [(f"HTTP_{response.status_code}", response.reason_phrase, [])]


def save_result(raw: dict[str, Any]) -> RecordResult:
    """A Collections SaveResult item -> RecordResult (``statusCode`` here, ``errorCode`` tolerated)."""
    errors = [_item(e) for e in raw.get("errors") or []]
    ok = bool(raw.get("success")) and not errors
    created = raw.get("created")
    return RecordResult(
        ok=ok, id=raw.get("id") or None, created=bool(created) if created is not None else None, errors=errors
    )


def bulk_error(text: str) -> ErrorItem:
    """``sf__Error`` cell ``CODE:message:fields --`` -> (code, message, fields); messages may contain colons."""
    body = text.strip()
    if body.endswith("--"):
        body = body[:-2].rstrip()
    code, sep, rest = body.partition(":")
    if not sep:
        return "UNKNOWN_EXCEPTION", text.strip(), []
    message, sep, fields_text = rest.rpartition(":")
    if not sep or (fields_text and not re.fullmatch(r"[\w.;, ]*", fields_text)):
        return code.strip(), rest.strip(), []
    fields = [f.strip() for f in re.split(r"[;,]", fields_text) if f.strip()]
    return code.strip(), message.strip(), fields


def limit_info(header: str | None) -> tuple[int, int] | None:
    """``api-usage=25/15000[;per-app-api-usage=…]`` -> (25, 15000)."""
    if not header:
        return None
    match = _LIMIT_INFO.search(header)
    return (int(match.group(1)), int(match.group(2))) if match else None
