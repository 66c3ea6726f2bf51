"""Tooling API (``/tooling/sobjects/CustomField|CustomObject``) and field-level security (reference §9).

``CustomField`` takes ``FullName`` ``Obj.Field__c`` (``Activity.X__c`` adds it to Task and Event) and a
Metadata block (type Text/TextArea/LongTextArea/Html/Number/Currency/Percent/Checkbox/Date/DateTime/Email/
Phone/Url/Picklist/MultiselectPicklist/Lookup/MasterDetail/AutoNumber). A Tooling-created field can be read
back (``GET …/CustomField/{id}``), found with a Tooling query (``/tooling/query?q=SELECT Id FROM CustomField
WHERE DeveloperName = 'X' AND TableEnumOrId = 'Y'``; custom objects are named by their ``01I`` id there, as in
an org) and updated with ``PATCH …/CustomField/{id}`` ``{"Metadata": …}`` — how a value is added to a custom
picklist; values left out of an update become inactive, the type cannot change. Schema changes are logged to
the store and replayed on start. FLS choice (documented in ``catalog``): a Tooling-created, non-required field is
hidden until a ``FieldPermissions`` row with ``PermissionsRead`` exists for it (any permission set counts —
PermissionSetAssignment is not modelled, the API user holds them all); ``PermissionsEdit`` makes it writable.

Setup metadata (issue 6, the rebuild package): a package's ``setup`` block installs read-only standard objects
served by REST SOQL (Report, Dashboard, ProcessDefinition; op ``setup_object``) and Tooling-only rows
(FlowDefinitionView, ApexTrigger, ValidationRule; op ``tooling_record``), answered by ``/tooling/query`` with
``=``/``!=`` conditions, ``ORDER BY`` and ``EntityDefinition.*`` parent paths; ``Metadata`` of a ValidationRule
(its formula) only for a one-row query, as in an org.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ids
from .catalog import SObject
from .errors import SFError, bad, not_found

if TYPE_CHECKING:
    from .app import Request, Result, SalesforceSandbox

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c$")
_SIMPLE = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Html": "textarea",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Checkbox": "boolean",
    "Date": "date",
    "DateTime": "datetime",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
    "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "AutoNumber": "string",
    "EncryptedText": "encryptedstring",
}


def field_spec(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata API field definition -> compact catalog spec."""
    kind = meta.get("type")
    if kind not in _SIMPLE:
        raise bad("FIELD_INTEGRITY_EXCEPTION", f"Invalid field type: {kind}")
    spec: dict[str, Any] = {"name": name, "type": _SIMPLE[kind], "label": meta.get("label") or name[:-3]}
    if kind in ("Text", "EncryptedText"):
        spec["length"] = int(meta.get("length") or 255)
        if not 1 <= spec["length"] <= 255:
            raise bad("FIELD_INTEGRITY_EXCEPTION", "Length must be between 1 and 255")
    elif kind in ("LongTextArea", "Html"):
        spec["length"] = min(int(meta.get("length") or 32768), 131072)
    elif kind == "TextArea":
        spec["length"] = 255
    elif kind in ("Email", "Phone"):
        spec["length"] = 80 if kind == "Email" else 40
    elif kind == "Url":
        spec["length"] = 255
    elif kind in ("Number", "Currency", "Percent"):
        spec["precision"] = int(meta.get("precision") or 18)
        spec["scale"] = int(meta.get("scale") or 0)
    elif kind == "Checkbox":
        spec["default"] = str(meta.get("defaultValue", "false")).lower() == "true"
    elif kind in ("Picklist", "MultiselectPicklist"):
        vs = meta.get("valueSet") or {}
        values = (vs.get("valueSetDefinition") or {}).get("value") or []
        spec["picklist"] = [[v["fullName"], v.get("label") or v["fullName"]] for v in values]
        defaults = [v["fullName"] for v in values if v.get("default")]
        if defaults and kind == "Picklist":
            spec["default"] = defaults[0]
        spec["restricted"] = bool(vs.get("restricted"))
        spec["length"] = 255 if kind == "Picklist" else 4099
    elif kind in ("Lookup", "MasterDetail"):
        target = meta.get("referenceTo")
        if not target:
            raise bad("FIELD_INTEGRITY_EXCEPTION", "referenceTo is required for a relationship field")
        child = meta.get("relationshipName") or name[:-3] + "s"
        spec.update(
            length=18,
            referenceTo=[target],
            relationshipName=name[:-3] + "__r",
            childRelationship=child.removesuffix("__r") + "__r",
        )
        if kind == "MasterDetail":
            spec.update(required=True, cascade=True)
    elif kind == "AutoNumber":
        spec.update(autoNumber=meta.get("displayFormat") or "{0}", length=30)
    for key in ("externalId", "unique", "caseSensitive"):
        if meta.get(key):
            spec[key] = True
    if meta.get("required") and kind not in ("Checkbox", "AutoNumber"):
        spec["required"] = True
    return spec


def _index_new(sb: SalesforceSandbox, obj: SObject) -> None:
    sb.store.ensure(obj)


def replay(sb: SalesforceSandbox, op: str, payload: dict[str, Any]) -> None:
    if op == "object":
        sb.catalog.add_object(payload["name"], payload["spec"])
    elif op == "setup_object":  # a standard, read-only object (Report …): not custom, no lookups point at it
        sb.catalog._register(SObject(payload["name"], payload["spec"], sb.catalog.system))
    elif op in ("field", "field_update"):  # an update replaces the field's spec (same name, same type)
        for obj_name in payload["objects"]:
            sb.catalog.add_field(obj_name, payload["spec"], tooling=payload.get("tooling", True))


def _apply(sb: SalesforceSandbox, op: str, payload: dict[str, Any]) -> None:
    replay(sb, op, payload)
    sb.store.log_op(op, payload)
    names = [payload["name"]] if op == "object" else payload["objects"]
    for name in names:
        _index_new(sb, sb.catalog.objects[name])


def apply_package(sb: SalesforceSandbox, schema: dict[str, Any]) -> None:
    """Install a managed-package-like schema (custom objects and fields, FLS already granted)."""
    for name, spec in schema.get("objects", {}).items():
        spec = {
            **spec,
            "keyPrefix": spec.get("keyPrefix") or sb.catalog.next_custom_prefix(),
            "owner": ["Group", "User"],
        }
        # A package object has a CustomObject id (01I) like any other: Tooling rows name it by that id.
        rid = ids.make_id("01I", sb.store.next_counter())
        _apply(sb, "object", {"name": name, "spec": spec, "id": rid, "full": name})
    for obj_name, fields in schema.get("fields", {}).items():
        for spec in fields:
            _apply(sb, "field", {"objects": [obj_name], "spec": spec, "tooling": False})
    _install_setup(sb, schema.get("setup") or {})


def _install_setup(sb: SalesforceSandbox, setup: dict[str, Any]) -> None:
    """Setup metadata of the package: read-only REST objects with their rows, and Tooling-only rows."""
    custom = {str(p["name"]).lower(): str(p["id"]) for p in _latest(sb).values() if p["kind"] == "CustomObject"}

    def table_id(name: Any) -> Any:
        return custom.get(str(name).lower(), name) if isinstance(name, str) and name.endswith("__c") else name

    for name, spec in (setup.get("objects") or {}).items():
        sb.store.log_op("setup_object", {"name": name, "spec": spec})
        replay(sb, "setup_object", {"name": name, "spec": spec})
        sb.store.ensure(sb.catalog.objects[name])
    for name, rows in (setup.get("records") or {}).items():
        obj = sb.catalog.objects[name]
        for values in rows:
            resolved = {k: table_id(v) if k == "TableEnumOrId" else v for k, v in values.items() if v is not None}
            sb.records.insert_values(obj, resolved)
    for kind, rows in (setup.get("tooling") or {}).items():
        definition = DEFINITIONS[kind]
        for values in rows:
            rid = ids.make_id(definition.prefix, sb.store.next_counter())
            record = {name: None for name in definition.fields}
            record.update({k: v for k, v in values.items() if k in definition.fields})
            for key in _TABLE_KEYS & set(record):
                if record[key]:
                    record["_table"] = record[key]
                    record[key] = table_id(record[key])
            if kind == "FlowDefinitionView":
                record["DurableId"] = rid
            record["Id"] = rid
            metadata = {k[0].lower() + k[1:]: v for k, v in values.items() if k in definition.metadata}
            sb.store.log_op("tooling_record", {"kind": kind, "id": rid, "values": record, "metadata": metadata})


def load_grants(sb: SalesforceSandbox) -> None:
    fp = sb.catalog.objects["FieldPermissions"]
    grants: dict[str, tuple[bool, bool]] = {}
    for row in sb.records.iter_rows(fp, "deleted=0"):
        key = row.get("Field") or ""
        read, edit = grants.get(key, (False, False))
        grants[key] = (read or bool(row.get("PermissionsRead")), edit or bool(row.get("PermissionsEdit")))
    sb.catalog.grants = grants


class FieldPermissionsHook:
    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb

    def before_insert(self, values: dict[str, Any]) -> dict[str, Any]:
        obj_name, _, field_name = str(values.get("Field", "")).partition(".")
        obj = self.sb.catalog.get(obj_name)
        f = obj.field(field_name) if obj else None
        declared = self.sb.catalog.get(str(values.get("SobjectType", "")))
        if obj is None or f is None or declared is not obj:
            raise bad("INVALID_FIELD", f"Invalid field: {values.get('Field')}", ["Field"])
        if not f.nillable:
            raise bad(
                "FIELD_INTEGRITY_EXCEPTION",
                f"Field {values['Field']} is required; you can't set permissions on required fields.",
                ["Field"],
            )
        if values.get("PermissionsEdit") and not values.get("PermissionsRead"):
            raise bad("FIELD_INTEGRITY_EXCEPTION", "Permission Edit depends on permission(s): Read")
        values.update(Field=f"{obj.name}.{f.name}", SobjectType=obj.name)
        return values

    def after_insert(self, rid: str, row: dict[str, Any]) -> None:
        load_grants(self.sb)

    def after_change(self) -> None:
        load_grants(self.sb)


def handle(sb: SalesforceSandbox, req: Request, segs: list[str]) -> Result:
    if segs == ["query"]:
        if req.method != "GET":
            raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,HEAD")
        return 200, {}, tooling_query(sb, req, req.query.get("q", ""))
    if len(segs) == 3 and segs[0] == "sobjects" and segs[1] in DEFINITIONS and req.method == "GET":
        found = next((r for r in _definition_rows(sb, segs[1]) if ids.to18(segs[2]) == r["Id"]), None)
        if found is None:
            raise not_found()
        return 200, {}, {"attributes": _definition_attributes(req, segs[1], found["Id"]), **_public(found)}
    if len(segs) < 2 or segs[0] != "sobjects" or segs[1] not in ("CustomField", "CustomObject"):
        raise not_found()
    kind = segs[1]
    if len(segs) == 3 and req.method == "GET":
        payload = _latest(sb).get(segs[2])
        if payload is None:
            raise not_found()
        return 200, {}, _record(req, kind, payload, sb)
    if len(segs) == 3 and req.method == "PATCH" and kind == "CustomField":
        body = req.json()
        with sb.store.transaction():
            _update_field(sb, segs[2], body.get("Metadata") if isinstance(body, dict) else None)
        return 204, {}, None
    if len(segs) != 2 or req.method != "POST":
        raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,HEAD,POST")
    body = req.json()
    full = str(body.get("FullName") or "")
    meta = body.get("Metadata") or {}
    if not isinstance(meta, dict) or not full:
        raise bad("REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName, Metadata]", ["FullName"])
    with sb.store.transaction():
        if kind == "CustomObject":
            return _create_object(sb, full, meta)
        return _create_field(sb, full, meta)


def _latest(sb: SalesforceSandbox) -> dict[str, dict[str, Any]]:
    """Tooling id -> the newest logged payload for it (a field update supersedes the create)."""
    found: dict[str, dict[str, Any]] = {}
    for op, payload in sb.store.ops():
        if payload.get("id") and op in ("object", "field", "field_update"):
            found[payload["id"]] = {**payload, "kind": "CustomObject" if op == "object" else "CustomField"}
    return found


def _table_enum_or_id(sb: SalesforceSandbox, payload: dict[str, Any]) -> str:
    """``TableEnumOrId`` as an org reports it: a standard object's name, ``Activity``, a custom object's id."""
    table = str(payload.get("full") or "").partition(".")[0] or (payload.get("objects") or [""])[0]
    if table.endswith("__c"):
        for other in _latest(sb).values():
            if other["kind"] == "CustomObject" and str(other.get("name", "")).lower() == table.lower():
                return str(other["id"])
    return table


def _record(req: Request, kind: str, payload: dict[str, Any], sb: SalesforceSandbox) -> dict[str, Any]:
    name = payload.get("name") or payload["spec"]["name"]
    record = {
        "attributes": {"type": kind, "url": f"/services/data/v{req.version}/tooling/sobjects/{kind}/{payload['id']}"},
        "Id": payload["id"],
        "DeveloperName": name[:-3],
        "NamespacePrefix": None,
        "FullName": payload.get("full", name),
        "Metadata": payload.get("meta"),
    }
    if kind == "CustomField":
        record["TableEnumOrId"] = _table_enum_or_id(sb, payload)
    return record


_TOOLING_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w.]+)(?:\s+(?P<dir>ASC|DESC))?)?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*(\w+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*$")
_FILTERABLE = {"Id", "DeveloperName", "TableEnumOrId", "FullName", "NamespacePrefix"}


def tooling_query(sb: SalesforceSandbox, req: Request, soql: str) -> dict[str, Any]:
    """The Tooling query subset a migration needs: ``SELECT … FROM CustomField|CustomObject WHERE a = 'x' AND …``.

    As in an org, ``Metadata`` and ``FullName`` can only be selected when the query returns at most one row.
    """
    match = _TOOLING_SOQL.match(soql)
    if not match:
        raise bad("MALFORMED_QUERY", f"unexpected token in the Tooling query: {soql[:80]!r}")
    setup_kind = next((k for k in DEFINITIONS if k.lower() == match["obj"].lower()), None)
    if setup_kind is not None:
        return _definition_query(sb, req, setup_kind, match)
    if match["order"]:
        raise bad("MALFORMED_QUERY", "the sandbox's Tooling query on CustomField/CustomObject takes no ORDER BY")
    kind = next((k for k in ("CustomField", "CustomObject") if k.lower() == match["obj"].lower()), None)
    if kind is None:
        raise bad("INVALID_TYPE", f"sObject type '{match['obj']}' is not supported by the sandbox's Tooling API.")
    fields = [f.strip() for f in match["fields"].split(",") if f.strip()]
    allowed = {*_FILTERABLE, "Metadata"} - ({"TableEnumOrId"} if kind == "CustomObject" else set())
    for name in fields:
        if name not in allowed:
            raise bad("INVALID_FIELD", f"No such column '{name}' on entity '{kind}'.")
    conditions: list[tuple[str, str]] = []
    for part in re.split(r"\s+AND\s+", match["where"] or "", flags=re.IGNORECASE) if match["where"] else []:
        cond = _CONDITION.match(part)
        if not cond or cond[1] not in _FILTERABLE:
            raise bad("MALFORMED_QUERY", f"the sandbox's Tooling query supports only Field = 'value' AND …: {part!r}")
        conditions.append((cond[1], cond[2].replace("\\'", "'")))
    rows = []
    for payload in _latest(sb).values():
        if payload["kind"] != kind:
            continue
        record = _record(req, kind, payload, sb)
        if all(str(record.get(f) or "").lower() == value.lower() for f, value in conditions):
            rows.append({"attributes": record["attributes"], **{f: record.get(f) for f in fields}})
    if match["limit"]:
        rows = rows[: int(match["limit"])]
    if len(rows) > 1 and {"Metadata", "FullName"} & set(fields):
        raise bad(
            "MALFORMED_QUERY",
            "When retrieving results with Metadata or FullName fields, the query qualifications must specify no "
            "more than one row for retrieval. Result size: " + str(len(rows)),
        )
    return {"size": len(rows), "totalSize": len(rows), "done": True, "entityTypeName": kind, "records": rows}


def _update_field(sb: SalesforceSandbox, rid: str, meta: Any) -> None:
    """``PATCH /tooling/sobjects/CustomField/{id}``: replace the field's metadata (same type; dropped values go
    inactive, as deleting a picklist value in an org needs a separate replace-and-delete step)."""
    current = _latest(sb).get(rid)
    if current is None or current["kind"] != "CustomField":
        raise not_found()
    if not isinstance(meta, dict):
        raise bad("REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"])
    old = current["spec"]
    spec = field_spec(old["name"], meta)
    if spec["type"] != old["type"]:
        raise bad("FIELD_INTEGRITY_EXCEPTION", f"Cannot change the type of {current.get('full')} through the API.")
    if "picklist" in spec:
        seen: set[str] = set()
        for value, _label in spec["picklist"]:
            if value.lower() in seen:
                raise bad(
                    "DUPLICATE_VALUE", f"duplicate value found: {value} duplicates value on record with id: {rid}"
                )
            seen.add(value.lower())
        dropped = [v for v, _l in old.get("picklist") or [] if v.lower() not in seen]
        inactive = [*(old.get("inactive") or []), *dropped]
        if inactive:
            spec["inactive"] = list(dict.fromkeys(inactive))
            spec["picklist"] = [*spec["picklist"], *([v, v] for v in dropped)]
    for key in ("relationshipName", "childRelationship", "referenceTo"):
        if key in old:
            spec[key] = old[key]
    payload = {key: current[key] for key in ("objects", "tooling", "id", "full") if key in current}
    _apply(sb, "field_update", {**payload, "spec": spec, "meta": meta})


def _created(rid: str) -> Result:
    return 201, {}, {"id": rid, "success": True, "errors": [], "warnings": [], "infos": []}


def _create_field(sb: SalesforceSandbox, full: str, meta: dict[str, Any]) -> Result:
    obj_name, _, name = full.partition(".")
    objects = ["Task", "Event"] if obj_name == "Activity" else [obj_name]
    resolved = [sb.catalog.get(o) for o in objects]
    if any(o is None for o in resolved) or not _NAME.match(name):
        raise bad("INVALID_FIELD", f"Invalid FullName: {full}", ["FullName"])
    for obj in resolved:
        assert obj is not None
        if obj.field(name):
            raise bad("DUPLICATE_DEVELOPER_NAME", f"There is already a field named {name[:-3]} on {obj.name}.")
    spec = field_spec(name, meta)
    for target in spec.get("referenceTo", []):
        if sb.catalog.get(target) is None:
            raise bad(
                "FIELD_INTEGRITY_EXCEPTION", f"referenceTo value of '{target}' does not resolve to a valid sObject type"
            )
    rid = ids.make_id("00N", sb.store.next_counter())
    _apply(
        sb,
        "field",
        {
            "objects": [o.name for o in resolved if o],
            "spec": spec,
            "tooling": True,
            "id": rid,
            "full": full,
            "meta": meta,
        },
    )
    return _created(rid)


def _create_object(sb: SalesforceSandbox, full: str, meta: dict[str, Any]) -> Result:
    if not _NAME.match(full):
        raise bad("INVALID_FIELD", f"Invalid FullName: {full}", ["FullName"])
    if sb.catalog.get(full) is not None:
        raise bad("DUPLICATE_DEVELOPER_NAME", f"There is already an object named {full[:-3]}.")
    name_field = meta.get("nameField") or {"type": "Text", "label": f"{meta.get('label') or full[:-3]} Name"}
    name_spec: dict[str, Any] = {
        "name": "Name",
        "type": "string",
        "length": 80,
        "label": name_field.get("label"),
        "idLookup": True,
    }
    if name_field.get("type") == "AutoNumber":
        name_spec.update(autoNumber=name_field.get("displayFormat") or "{0}", readonly=True, length=30)
    else:
        name_spec["required"] = True
    spec = {
        "label": meta.get("label") or full[:-3],
        "labelPlural": meta.get("pluralLabel") or (meta.get("label") or full[:-3]) + "s",
        "keyPrefix": sb.catalog.next_custom_prefix(),
        "owner": ["Group", "User"],
        "fields": [name_spec],
    }
    rid = ids.make_id("01I", sb.store.next_counter())
    _apply(sb, "object", {"name": full, "spec": spec, "id": rid, "full": full, "meta": meta})
    return _created(rid)


# -- setup metadata served by Tooling queries (FlowDefinitionView, ApexTrigger, ValidationRule) -------------------


@dataclass(frozen=True)
class Definition:
    """One Tooling-only setup entity: its key prefix, its queryable fields and what its ``Metadata`` holds."""

    prefix: str
    fields: tuple[str, ...]
    metadata: tuple[str, ...] = ()  # source keys copied (lower-camel-cased) into ``Metadata``
    parent: str | None = None  # relationship name answering ``<parent>.QualifiedApiName`` / ``.DeveloperName``


_USAGE = (
    *(f"UsageBefore{event}" for event in ("Insert", "Update", "Delete")),
    *(f"UsageAfter{event}" for event in ("Insert", "Update", "Delete", "Undelete")),
)
DEFINITIONS: dict[str, Definition] = {
    "FlowDefinitionView": Definition(
        "300",
        tuple(
            "Id DurableId ApiName Label Description ProcessType TriggerType RecordTriggerType TriggerObjectOrEventId "
            "TriggerObjectOrEventLabel IsActive IsTemplate NamespacePrefix ActiveVersionId LatestVersionId".split()
        ),
    ),
    "ApexTrigger": Definition(
        "01q",
        (*"Id Name TableEnumOrId Status ApiVersion Body IsValid NamespacePrefix".split(), *_USAGE, "UsageIsBulk"),
    ),
    "ValidationRule": Definition(
        "03d",
        tuple(
            "Id ValidationName EntityDefinitionId Active Description ErrorDisplayField ErrorMessage "
            "NamespacePrefix".split()
        ),
        metadata=("Active", "Description", "ErrorConditionFormula", "ErrorDisplayField", "ErrorMessage"),
        parent="EntityDefinition",
    ),
}
_TABLE_KEYS = {"TableEnumOrId", "TriggerObjectOrEventId", "EntityDefinitionId"}
_DEF_CONDITION = re.compile(r"^\s*([\w.]+)\s*(=|!=)\s*('(?:[^'\\]|\\.)*'|true|false|null)\s*$", re.IGNORECASE)


def _definition_rows(sb: SalesforceSandbox, kind: str) -> list[dict[str, Any]]:
    return [
        {**payload["values"], "_metadata": payload.get("metadata") or {}}
        for op, payload in sb.store.ops()
        if op == "tooling_record" and payload.get("kind") == kind
    ]


def _definition_attributes(req: Request, kind: str, rid: str) -> dict[str, str]:
    return {"type": kind, "url": f"/services/data/v{req.version}/tooling/sobjects/{kind}/{rid}"}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _definition_value(req: Request, kind: str, row: dict[str, Any], name: str) -> Any:
    """A selected column: a field, ``Metadata``, or a ``<parent>.<field>`` path (nested, as an org nests it)."""
    definition = DEFINITIONS[kind]
    leaf = name.partition(".")[2]
    if leaf:
        table = row.get("_table")
        if not table:
            return None
        value = table if leaf.lower() == "qualifiedapiname" else str(table).removesuffix("__c")
        url = f"/services/data/v{req.version}/tooling/sobjects/EntityDefinition/{table}"
        return {"attributes": {"type": "EntityDefinition", "url": url}, leaf: value}
    if name.lower() == "metadata":
        return {**{k: None for k in (m[0].lower() + m[1:] for m in definition.metadata)}, **row["_metadata"]}
    return row.get(next(f for f in definition.fields if f.lower() == name.lower()))


def _definition_column(kind: str, name: str) -> str:
    """The canonical spelling of a selectable column, or INVALID_FIELD as an org answers."""
    definition = DEFINITIONS[kind]
    head, _, leaf = name.partition(".")
    if leaf and definition.parent and head.lower() == definition.parent.lower():
        for known in ("QualifiedApiName", "DeveloperName"):
            if leaf.lower() == known.lower():
                return f"{definition.parent}.{known}"
    elif not leaf:
        if name.lower() == "metadata" and definition.metadata:
            return "Metadata"
        for f in definition.fields:
            if f.lower() == name.lower():
                return f
    raise bad("INVALID_FIELD", f"No such column '{name}' on entity '{kind}'.")


def _literal(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    return text[1:-1].replace("\\'", "'")


def _matches(value: Any, op: str, wanted: Any) -> bool:
    if isinstance(value, dict):  # a parent path: compare its one leaf
        value = next(iter(v for k, v in value.items() if k != "attributes"), None)
    if isinstance(wanted, str) and value is not None:
        equal = str(value).lower() == wanted.lower()
    else:
        equal = value == wanted
    return equal if op == "=" else not equal


def _definition_query(sb: SalesforceSandbox, req: Request, kind: str, match: re.Match[str]) -> dict[str, Any]:
    fields = [_definition_column(kind, f.strip()) for f in match["fields"].split(",") if f.strip()]
    conditions: list[tuple[str, str, Any]] = []
    for part in re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE) if match["where"] else []:
        cond = _DEF_CONDITION.match(part)
        if not cond:
            raise bad("MALFORMED_QUERY", f"the sandbox's Tooling query supports Field = value AND …: {part!r}")
        column = _definition_column(kind, cond[1])
        if column == "Metadata":
            raise bad("INVALID_FIELD", f"field 'Metadata' can not be filtered in a query call on {kind}")
        conditions.append((column, cond[2], _literal(cond[3])))
    rows = [
        row
        for row in _definition_rows(sb, kind)
        if all(_matches(_definition_value(req, kind, row, c), op, v) for c, op, v in conditions)
    ]
    if match["order"]:
        column = _definition_column(kind, match["order"])

        def key(row: dict[str, Any]) -> tuple[bool, str]:
            value = _definition_value(req, kind, row, column)
            if isinstance(value, dict):
                value = next(iter(v for k, v in value.items() if k != "attributes"), None)
            return (value is None, str(value).lower())

        rows.sort(key=key, reverse=(match["dir"] or "").upper() == "DESC")
    if match["limit"]:
        rows = rows[: int(match["limit"])]
    if "Metadata" in fields and len(rows) > 1:
        raise bad(
            "MALFORMED_QUERY",
            "When retrieving results with Metadata or FullName fields, the query qualifications must specify no "
            "more than one row for retrieval. Result size: " + str(len(rows)),
        )
    records = []
    for row in rows:
        record: dict[str, Any] = {"attributes": _definition_attributes(req, kind, row["Id"])}
        for f in fields:
            value = _definition_value(req, kind, row, f)
            head = f.partition(".")[0]
            if head != f and isinstance(record.get(head), dict) and isinstance(value, dict):
                record[head].update(value)  # two leaves of one parent share its nested object
            else:
                record[head] = value
        records.append(record)
    return {"size": len(records), "totalSize": len(records), "done": True, "queryLocator": None,
            "entityTypeName": kind, "records": records}  # fmt: skip
