"""Build Salesforce records from staged rows, the confirmed map and describe metadata.

The Salesforce counterpart of :class:`~crmmigrator_gui.engine.plan.payloads.PayloadBuilder`, and a
subclass of it: field rules, value maps, role columns, staged-row caches, ``skip_when``, ``template`` /
``fallback_concat`` / ``from`` derivations, grouped parts and owner candidates work the same way. What
differs is the destination's vocabulary:

- values are converted by describe type (``date`` → ``YYYY-MM-DD``, ``datetime`` → ISO with ``Z``,
  money as ``Decimal``), text is checked against describe ``length``;
- picklists take *values* (not integers): the value map's label, or the source value itself, matched
  against describe's active values; a value outside a *restricted* picklist fails only that record with
  ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`` instead of being sent;
- lookups become parent references by external id (``{"Account": {"Source_System_ID__c": key}}``, with
  ``attributes.type`` on polymorphic lookups), relationship names read from describe; the parent's
  destination id (crosswalk) is kept alongside for diffing and rollback;
- ``CreatedDate`` (a playbook target, or ``derived``) is an insert-only audit field: sent on insert when
  "Set Audit Fields upon Record Creation" is on, else kept in the part's ``audit_fallback`` field with a
  run warning;
- extra derivations: ``{"from_role", "map", "default"}`` (a picklist value chosen from a role's value, e.g.
  Opportunity.StageName from the booking status) and ``{"parent_value": {"object", "by_role", "role"}}``
  (a typed value of the referenced staged record, e.g. a task's date from its booking); a ``from``
  derivation may add ``fallback_template`` (same parent, used when ``template`` comes out empty) and
  ``fallback_text`` (when both are empty, e.g. a required Contact.LastName); part options
  ``skip_when_empty`` and ``constant_lookups`` ``{"column", "sobject", "where"}`` (the standard price book).

File parts (Salesforce Files, reference §6.1). A part with a ``file`` spec and ``"entity": "ContentVersion"``
uploads one file per source record instead of upserting a record::

    {"part": "attachment", "entity": "ContentVersion",
     "file": {"body_role": "body", "filename_role": "filename", "title_role": "title",
              "parent_column": "FirstPublishLocationId", "max_bytes": 2147483648},
     "lookups": [{"column": "FirstPublishLocationId", "to": "Work_Order__c.case", "by_role": "parent"}],
     "skip_when": [...]}

- ``body_role``: the staged file body as base64 text (the extractors stage downloads that way); a record
  without a body (a link-only version, a body that was not downloaded) is skipped with the reason;
- ``filename_role`` → ``PathOnClient`` (falls back to the title, then the source id); ``title_role`` →
  ``Title`` (falls back to the file name without its extension);
- the parent is an ordinary playbook lookup (so load order puts the file after its parent) whose column is
  ``parent_column`` (default ``FirstPublishLocationId``); it resolves through the xref to the parent's
  Salesforce id like any other lookup, and Salesforce links the new ContentDocument to that record;
- ``max_bytes`` (optional) lowers :data:`FILE_MAX_BYTES`, the REST limit for a ContentVersion (2 GB through
  multipart, reference §6.1 / §9): a larger file fails alone with ``FILE_TOO_LARGE`` and is never sent;
- mapped fields of the part (e.g. ``Description``) and ``constants`` are written on the new version together
  with the ``Source_System_ID__c`` key right after the upload (the upload call carries only the file).

:meth:`SfPayloadBuilder.build_file` returns a :class:`FilePayload`; the runner
(:mod:`crmmigrator_gui.engine.run.load_salesforce`) uploads it with ``upload_file`` one file at a time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook
from crmmigrator_gui.engine.mapping.values import mapped_value
from crmmigrator_gui.engine.plan.payloads import BuildError, FieldRule, PayloadBuilder, Skip
from crmmigrator_gui.engine.plan.sf_schema import custom_field_name
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.engine.target.sf_types import FieldMeta, SObjectMeta

AUDIT_FIELD = "CreatedDate"
DEFAULT_AUDIT_FALLBACK = "Source_Created_Date__c"
TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "encryptedstring", "combobox", "picklist", "multipicklist"}
NUMBER_TYPES = {"currency", "double", "percent"}
PICKLIST_TYPES = {"picklist", "multipicklist", "combobox"}
FILE_MAX_BYTES = 2 * 1024 * 1024 * 1024  # ContentVersion through REST multipart (reference §6.1, §9)
FILE_TOO_LARGE = "FILE_TOO_LARGE"

__all__ = ["FILE_MAX_BYTES", "BuildError", "FilePayload", "Ref", "SfPayload", "SfPayloadBuilder", "Skip", "diff"]


@dataclass
class Ref:
    """A lookup written as a parent reference by external id; ``dest_id`` is the parent's Salesforce id."""

    field: str  # AccountId, Job__c, WhatId
    relationship: str  # Account, Job__r, What
    parent_type: str | None  # set on polymorphic lookups (attributes.type)
    parent_key: str
    dest_id: str | None

    def wire(self, key_column: str) -> dict[str, Any]:
        ref: dict[str, Any] = {key_column: self.parent_key}
        if self.parent_type:
            ref = {"attributes": {"type": self.parent_type}, **ref}
        return ref


@dataclass
class SfPayload:
    key: str
    body: dict[str, Any]  # field API name -> JSON-ready value (ids for OwnerId and user lookups)
    refs: dict[str, Ref] = field(default_factory=dict)
    insert_only: dict[str, Any] = field(default_factory=dict)  # audit fields: sent on insert only
    warnings: list[str] = field(default_factory=list)

    def record(self, key_column: str, *, insert: bool) -> dict[str, Any]:
        """The record as sent: scalars, parent references by external id, the key (and audit fields on insert)."""
        out = {k: v for k, v in self.body.items() if v is not None or not insert}
        for ref in self.refs.values():
            out[ref.relationship] = ref.wire(key_column)
        if insert:
            out.update(self.insert_only)
        out[key_column] = self.key
        return out

    def query_fields(self) -> list[str]:
        return sorted(set(self.body) | {r.field for r in self.refs.values()})


@dataclass
class FilePayload(SfPayload):
    """One Salesforce File to upload: the bytes, their names and the record to publish them on."""

    title: str = ""
    filename: str = ""
    data: bytes = b""
    parent_id: str = ""  # FirstPublishLocationId: the parent's Salesforce id (from the xref)

    @property
    def checksum(self) -> str:
        return hashlib.md5(self.data).hexdigest()  # ContentVersion.Checksum is the MD5 of the body

    def identity(self) -> dict[str, Any]:
        """What tells this upload apart without its key (crash recovery before the key was written)."""
        return {
            "Title": self.title,
            "PathOnClient": self.filename,
            "FirstPublishLocationId": self.parent_id,
            "ContentSize": len(self.data),
            "Checksum": self.checksum,
        }


class SfPayloadBuilder(PayloadBuilder):
    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: SalesforceClient,
        xref: dict[tuple[str, str], str],
        fallback_owner: str,
    ) -> None:
        super().__init__(project, playbook, client, xref, fallback_owner)  # type: ignore[arg-type]
        self.sf = client
        self.transform_of: dict[tuple[str, str], dict[str, Any]] = {}
        for row in project.query(
            "SELECT source_object, source_field, transform FROM field_maps WHERE status = 'confirmed' ORDER BY id"
        ):
            spec = json.loads(row["transform"])
            if spec.get("type") not in ("key", "lookup", "owner"):
                self.transform_of.setdefault((row["source_object"], row["source_field"]), self.bind(spec))
        self._specs = {(o["name"], p["part"]): p for o in playbook.raw.get("objects", []) for p in o.get("parts", [])}
        self._audit: dict[str, bool] = {}
        self._sf_constants: dict[tuple[str, str], str | None] = {}
        self.run_warnings: list[str] = []

    # ------------------------------------------------------------------ helpers
    def spec(self, part: Part) -> dict[str, Any]:
        return self._specs.get((part.obj, part.name), {})

    def audit_on(self, sobject: str) -> bool:
        if sobject not in self._audit:
            self._audit[sobject] = self.sf.audit_fields_enabled(sobject)
        return self._audit[sobject]

    def _warn(self, text: str) -> None:
        if text not in self.run_warnings:
            self.run_warnings.append(text)

    def _sf_constant(self, sobject: str, where: str) -> str | None:
        if (sobject, where) not in self._sf_constants:
            rows = list(self.sf.query(f"SELECT Id FROM {sobject} WHERE {where} LIMIT 1"))
            self._sf_constants[(sobject, where)] = str(rows[0]["Id"]) if rows else None
        return self._sf_constants[(sobject, where)]

    def entity_set(self, logical: str) -> str:  # Dataverse-only notion; Salesforce names objects directly
        return logical

    # ------------------------------------------------------------------ files
    def file_spec(self, part: Part) -> dict[str, Any] | None:
        """The part's ``file`` spec (see the module docstring), or None for a record part."""
        spec = self.spec(part).get("file")
        return dict(spec) if isinstance(spec, dict) else None

    def build_file(self, part: Part, source_id: str, raw: dict[str, Any], meta: SObjectMeta) -> FilePayload:
        """A file part's upload: skip rules, mapped fields and the parent lookup as for records, then the body.

        Raises Skip (deleted at the source, parent not loaded, no body) or BuildError (``BAD_VALUE`` for a
        body that is not base64, ``FILE_TOO_LARGE`` above the limit — the file is not sent).
        """
        spec = self.file_spec(part) or {}
        parent_column = spec.get("parent_column", "FirstPublishLocationId")
        record = self.build(part, source_id, raw, meta)
        ref = record.refs.pop(parent_column, None)
        if ref is None or not ref.dest_id:
            raise Skip(f"no parent record for the file ({parent_column})")
        obj = part.obj
        title = self.role_value(obj, spec.get("title_role", "title"), raw) or ""
        filename = self.role_value(obj, spec.get("filename_role", "filename"), raw) or title or source_id
        filename = filename.replace("\\", "/").rsplit("/", 1)[-1] or source_id
        title = title or (filename.rsplit(".", 1)[0] if "." in filename else filename)
        text = self.role_value(obj, spec.get("body_role", "body"), raw)
        if not text:
            raise Skip(f"the file {filename!r} has no body in the extract (a link, or not downloaded)", "SOURCE_STATE")
        limit = min(int(spec.get("max_bytes") or FILE_MAX_BYTES), FILE_MAX_BYTES)
        # the decoded size, estimated before decoding a huge body (line breaks would count: hence the margin)
        size = (len(text) - text[-2:].count("=")) * 3 // 4
        if size > limit + limit // 10:
            raise BuildError(FILE_TOO_LARGE, _too_large(filename, size, limit, about=True))
        try:
            data = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BuildError("BAD_VALUE", f"the body of {filename!r} is not base64: {exc}") from exc
        if len(data) > limit:
            raise BuildError(FILE_TOO_LARGE, _too_large(filename, len(data), limit))
        for name in ("Title", "PathOnClient", "VersionData", "FirstPublishLocationId", "ContentDocumentId"):
            record.body.pop(name, None)  # set by the upload itself
        return FilePayload(
            key=record.key,
            body=record.body,
            warnings=record.warnings,
            title=title[:255],
            filename=filename,
            data=data,
            parent_id=ref.dest_id,
        )

    # ------------------------------------------------------------------ build
    def build(  # type: ignore[override]
        self,
        part: Part,
        source_id: str,
        raw: dict[str, Any],
        meta: SObjectMeta,
        group: list[dict[str, Any]] | None = None,
    ) -> SfPayload:
        obj = part.obj
        spec = self.spec(part)
        if group is None:
            for rule in part.skip_when:
                if self._matches(obj, {rule["role"]: rule["in"]}, raw):
                    raise Skip(rule.get("reason", f"{rule['role']} is {raw.get(rule['role'])!r}"), "SOURCE_STATE")
        for rule in spec.get("skip_when_empty", ()):
            if not self.role_value(obj, rule["role"], raw):
                raise Skip(rule.get("reason", f"no {rule['role'].replace('_', ' ')}"), "SOURCE_STATE")
        payload = SfPayload(key=self.key(part, source_id), body={})
        for rule in self.rules.get((obj, part.entity), []):
            self._sf_rule(part, rule, raw, meta, payload)
        for column, value in part.constants.items():
            payload.body.setdefault(column, value)
        for column, dspec in part.derived.items():
            self._sf_derive(part, column, dspec, source_id, raw, meta, payload)
        if group is not None:
            self._aggregate(part, group, meta, payload)
        for lookup in part.lookups:
            self._sf_lookup(part, lookup, raw, meta, payload)
        for const in part.constant_lookups:
            dest = self._sf_constant(const["sobject"], const["where"])
            if dest is None:
                raise BuildError("MISSING_REFERENCE", f"no {const['sobject']} matches {const['where']} in Salesforce")
            payload.body[const["column"]] = dest
        if part.owner:
            payload.body["OwnerId"] = self._owner(part, raw)
        if part.user_lookup:
            user = self.user_by_worker_id.get(source_id)
            if user:
                payload.body[part.user_lookup["column"]] = user
        return payload

    def _owner(self, part: Part, raw: dict[str, Any]) -> str:
        """The first matched user among the record's field workers (same rules as the Dataverse builder)."""
        assert part.owner is not None
        names = self.role_value(part.obj, part.owner["by_role"], raw) or ""
        if part.owner.get("via"):
            candidates = self._children(part.owner["via"], names)
        else:
            candidates = [n.strip().lower() for n in names.replace(";", ",").split(",") if n.strip()]
        users = self.user_by_worker_name
        if part.owner.get("match") == "id":
            users = {k.lower(): v for k, v in self.user_by_worker_id.items()}
        elif part.owner.get("match") == "id_or_name":
            users = {**self.user_by_worker_name, **{k.lower(): v for k, v in self.user_by_worker_id.items()}}
        for name in candidates:
            if name in users:
                return users[name]
        return self.fallback_owner

    def _aggregate(self, part: Part, group: list[dict[str, Any]], meta: SObjectMeta, payload: SfPayload) -> None:
        members = self.member_values(part.obj, group)
        for column, spec in part.aggregate.items():
            text = transforms.aggregate_value(spec, members)  # the merge the editor previews
            if text is None:
                continue
            f = meta.field(column)
            limit = f.length if f and f.length else 0
            if limit and len(text) > limit:
                raise BuildError("STRING_TOO_LONG", f"{column} is {len(text)} characters; the limit is {limit}")
            payload.body[column] = text

    def _sf_rule(self, part: Part, rule: FieldRule, raw: dict[str, Any], meta: SObjectMeta, payload: SfPayload) -> None:
        value = self.apply_transform(part.obj, rule, raw, payload.warnings)
        if value is None:
            return
        target = custom_field_name(rule.target_field)
        f = meta.field(target)
        if f is not None and f.type in PICKLIST_TYPES:
            mapping = self.value_maps.get((part.obj, rule.source_field, part.entity, rule.target_field), {})
            entry = mapped_value(mapping, raw.get(rule.source_field), value)
            if entry == (None, None):
                return  # decided: leave the field empty
            if entry is None and mapping:
                payload.warnings.append(f"{rule.source_field}={value!r} has no mapped value; sent as is")
            value = (entry[1] or entry[0]) if entry else value  # the picklist's API value, else its label
        self.put(part, meta, payload, target, value, f"column {rule.source_field!r}")

    def put(self, part: Part, meta: SObjectMeta, payload: SfPayload, name: str, value: Any, what: str) -> None:
        """Convert ``value`` for ``name`` by describe type and place it (audit fields: insert-only or fallback)."""
        if name == AUDIT_FIELD:
            if self.audit_on(part.entity):
                payload.insert_only[name] = _datetime_text(value)
                return
            fallback = self.spec(part).get("audit_fallback", {}).get(AUDIT_FIELD, DEFAULT_AUDIT_FALLBACK)
            if not fallback:
                return
            self._warn(
                f"Set Audit Fields upon Record Creation is off: original created dates kept in "
                f"{part.entity}.{fallback} instead"
            )
            name = fallback
        f = meta.field(name)
        if f is None:
            raise BuildError(
                "MISSING_COLUMN",
                f"{part.entity}.{name} does not exist in Salesforce (or the integration user cannot see it); "
                "run `crmmigrator schema PROJECT apply`",
            )
        if f.type == "date" and isinstance(value, datetime) and value.tzinfo is not None:
            # a source date-time into a date field: the calendar day where it happened, not in UTC
            value = value.astimezone(ZoneInfo(self.playbook.default_timezone)).date()
        payload.body[f.name] = convert(part.entity, f, value, what)

    def _sf_derive(
        self,
        part: Part,
        column: str,
        spec: dict[str, Any],
        source_id: str,
        raw: dict[str, Any],
        meta: SObjectMeta,
        payload: SfPayload,
    ) -> None:
        body = payload.body
        f = meta.field(column)
        limit = f.length if f is not None and f.type in TEXT_TYPES and f.length else 0
        if spec.get("key"):
            body.setdefault(column, payload.key)
        elif "from_role" in spec:
            value = self.role_value(part.obj, spec["from_role"], raw) or ""
            mapping = {str(k).lower(): v for k, v in spec.get("map", {}).items()}
            chosen = mapping.get(value.lower(), spec.get("default"))
            if chosen and not body.get(column):
                self.put(part, meta, payload, column, chosen, f"{spec['from_role']} {value!r}")
        elif "parent_value" in spec:
            if column == AUDIT_FIELD and payload.insert_only.get(column):
                return
            if column != AUDIT_FIELD and body.get(column) is not None:
                return
            value = self._parent_value(part, spec["parent_value"], raw)
            if value is not None:
                self.put(part, meta, payload, column, value, f"{spec['parent_value']['object']} value")
        elif "from" in spec:
            text = self._from_parents(part, spec, raw)
            if not text and spec.get("fallback_template"):  # e.g. a nameless customer: its street
                text = self._from_parents(part, {**spec, "template": spec["fallback_template"]}, raw)
            text = text or spec.get("fallback_text")
            if text and not body.get(column):
                if f is not None and f.type == "date":
                    text = text[:10]
                body[column] = text[:limit] if limit else text
        elif "template" in spec:
            if not body.get(column):
                obj = self.playbook.obj(part.obj)
                values = {role: self.role_value(part.obj, role, raw) or "" for role in obj.roles}
                text = " ".join(spec["template"].format(**values).split()).strip(" –-") or source_id
                body[column] = text[:limit] if limit else text
        elif "fallback_concat" in spec and not body.get(column):
            obj = self.playbook.obj(part.obj)
            values = {role: self.role_value(part.obj, role, raw) or "" for role in obj.roles}
            joined = " ".join(values[r] for r in spec["fallback_concat"] if values.get(r)).strip()
            text = joined or spec.get("fallback_text", source_id)
            body[column] = text[:limit] if limit else text

    def _parent_value(self, part: Part, spec: dict[str, Any], raw: dict[str, Any]) -> Any:
        """A typed value of the staged record this one references (its column's confirmed transform)."""
        ident = self.role_value(part.obj, spec["by_role"], raw)
        parent = self._staged(spec["object"]).get(ident) if ident else None
        column = self.role_columns.get(spec["object"], {}).get(spec["role"])
        if parent is None or column is None:
            return None
        transform = self.transform_of.get((spec["object"], column), {"type": "text"})
        try:
            return transforms.apply(transform, parent.get(column), row=parent)
        except transforms.TransformError:
            return None  # the parent itself reports the bad value

    def _sf_lookup(
        self, part: Part, lookup: dict[str, Any], raw: dict[str, Any], meta: SObjectMeta, payload: SfPayload
    ) -> None:
        resolved = self.resolve_parent(part, lookup, raw)
        if resolved is None:
            return
        target_part, key, dest = resolved
        f = meta.field(lookup["column"])
        if f is None or not f.relationship_name:
            raise BuildError(
                "MISSING_COLUMN",
                f"{part.entity}.{lookup['column']} is not a lookup the integration user can see; "
                "run `crmmigrator schema PROJECT apply`",
            )
        parent_type = target_part.entity if len(f.reference_to) > 1 else None
        payload.refs[f.name] = Ref(f.name, f.relationship_name, parent_type, key, dest)


# ---------------------------------------------------------------------------------------------- values


def _too_large(filename: str, size: int, limit: int, *, about: bool = False) -> str:
    return (
        f"the file {filename!r} is {'about ' if about else ''}{_mb(size)}; "
        f"Salesforce accepts files up to {_mb(limit)} through the REST API "
        "(ContentVersion, reference §6.1), so it was not sent — move it by hand or split it"
    )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _datetime_text(value: Any) -> str:
    if isinstance(value, str):
        value = _parse_iso(value) or value
    if isinstance(value, (date, datetime)):
        return str(transforms.to_json_value(value, "DateTime"))
    return str(value)


def _parse_iso(text: str) -> datetime | date | None:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return None


def _picklist(entity: str, f: FieldMeta, value: str, what: str) -> str:
    if f.type == "multipicklist":
        return ";".join(
            _picklist(
                entity,
                FieldMeta(
                    f.name,
                    f.label,
                    "picklist",
                    picklist_values=f.picklist_values,
                    restricted_picklist=f.restricted_picklist,
                ),
                v.strip(),
                what,
            )
            for v in value.split(";")
            if v.strip()
        )
    wanted = value.strip().rstrip(".").lower()
    for option in f.picklist_values:
        if option.rstrip(".").lower() == wanted:
            return option
    if f.restricted_picklist:
        allowed = ", ".join(f.picklist_values[:12])
        raise BuildError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{what}: {value!r} is not a value of the restricted picklist {entity}.{f.name} ({allowed}); "
            "map it to one of these values in the value map and load again",
        )
    return value


def convert(entity: str, f: FieldMeta, value: Any, what: str) -> Any:
    """A Python value as JSON for a Salesforce field of describe type ``f.type``."""
    if value is None:
        return None
    kind = f.type
    try:
        if kind in NUMBER_TYPES:
            return value if isinstance(value, Decimal) else transforms.parse_money(str(value))
        if kind in ("int", "long"):
            return int(Decimal(str(value)))
        if kind == "boolean":
            return value if isinstance(value, bool) else transforms.parse_bool(str(value))
        if kind == "date":
            if isinstance(value, str):
                value = _parse_iso(value) or value
            return transforms.to_json_value(value, "DateOnly") if isinstance(value, (date, datetime)) else value
        if kind == "datetime":
            return _datetime_text(value)
    except (transforms.TransformError, InvalidOperation, ValueError) as exc:
        raise BuildError("BAD_VALUE", f"{what}: {exc}") from exc
    if kind in ("reference", "id"):
        return str(value)
    text = transforms.to_json_value(value)
    text = text if isinstance(text, str) else str(text)
    if kind in PICKLIST_TYPES:
        text = _picklist(entity, f, text, what)
    if f.length and len(text) > f.length:
        raise BuildError("STRING_TOO_LONG", f"{what} is {len(text)} characters; {entity}.{f.name} holds {f.length}")
    return text


# ---------------------------------------------------------------------------------------------- diff


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 19 or value[4:5] != "-":
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def same(ours: Any, theirs: Any) -> bool:
    if ours is None or ours == "":
        return theirs is None or theirs == ""
    if theirs is None:
        return False
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return bool(ours) == bool(theirs) and isinstance(ours, bool) == isinstance(theirs, bool)
    if isinstance(ours, (int, float, Decimal)) and isinstance(theirs, (int, float, Decimal)):
        return Decimal(str(ours)) == Decimal(str(theirs))
    a, b = _instant(ours), _instant(theirs)
    if a is not None and b is not None:
        return a == b
    return str(ours) == str(theirs)


def wire_prior(value: Any) -> Any:
    """A value read from Salesforce as it can be written back (``…+0000`` date-times as ``…Z``)."""
    instant = _instant(value)
    return transforms.to_json_value(instant.astimezone(UTC)) if instant is not None else value


def diff(
    meta: SObjectMeta, payload: SfPayload, row: dict[str, Any], key_column: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes as a record to upsert, prior values by field for exact rollback); empty when nothing differs."""
    current = {k.lower(): v for k, v in row.items()}
    changes: dict[str, Any] = {}
    prior: dict[str, Any] = {}
    for name, value in payload.body.items():
        f = meta.field(name)
        if f is not None and not f.updateable:
            continue
        theirs = current.get(name.lower())
        if not same(value, theirs):
            changes[name] = value
            prior[name] = wire_prior(theirs)
    for ref in payload.refs.values():
        f = meta.field(ref.field)
        if f is not None and not f.updateable:
            continue
        theirs = current.get(ref.field.lower())
        if (theirs or None) != ref.dest_id:
            changes[ref.relationship] = ref.wire(key_column)
            prior[ref.field] = theirs
    return changes, prior
