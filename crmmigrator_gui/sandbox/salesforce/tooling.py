"""Tooling API (``/tooling/sobjects/CustomField|CustomObject``) and field-level security (reference §9).

``CustomField`` takes ``FullName`` ``Obj.Field__c`` (``Activity.X__c`` adds it to Task and Event) and a
Metadata block (type Text/TextArea/LongTextArea/Html/Number/Currency/Percent/Checkbox/Date/DateTime/Email/
Phone/Url/Picklist/MultiselectPicklist/Lookup/MasterDetail/AutoNumber). Schema changes are logged to the
store and replayed on start. FLS choice (documented in ``catalog``): a Tooling-created, non-required field is
hidden until a ``FieldPermissions`` row with ``PermissionsRead`` exists for it (any permission set counts —
PermissionSetAssignment is not modelled, the API user holds them all); ``PermissionsEdit`` makes it writable.
"""

from __future__ import annotations

import re
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
    elif op == "field":
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
        _apply(sb, "object", {"name": name, "spec": spec})
    for obj_name, fields in schema.get("fields", {}).items():
        for spec in fields:
            _apply(sb, "field", {"objects": [obj_name], "spec": spec, "tooling": False})


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
    if len(segs) < 2 or segs[0] != "sobjects" or segs[1] not in ("CustomField", "CustomObject"):
        raise not_found()
    kind = segs[1]
    if len(segs) == 3 and req.method == "GET":
        for _, payload in sb.store.ops():
            if payload.get("id") == segs[2]:
                return 200, {}, _record(req, kind, payload)
        raise not_found()
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


def _record(req: Request, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    name = payload.get("name") or payload["spec"]["name"]
    return {
        "attributes": {"type": kind, "url": f"/services/data/v{req.version}/tooling/sobjects/{kind}/{payload['id']}"},
        "Id": payload["id"],
        "DeveloperName": name[:-3],
        "FullName": payload.get("full", name),
        "TableEnumOrId": (payload.get("objects") or [name])[0],
        "Metadata": payload.get("meta"),
    }


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
