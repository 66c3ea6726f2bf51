"""Object and field metadata: loads ``catalog.json`` and renders describe payloads (reference §2.3).

Field specs are compact (``required``, ``readonly``, ``createonly``, ``default`` …) and expanded here into
the describe attributes clients rely on, so "required on create" is always
``createable and not nillable and not defaultedOnCreate`` exactly as Salesforce defines it. Custom fields
and objects created through Tooling are applied as data (``add_field`` / ``add_object``) and replayed from
the store's ops log on restart. Field-level security: fields created through Tooling start hidden (absent
from describe, ``INVALID_FIELD`` in queries and writes) until a FieldPermissions row grants read (and edit
for writes), per reference §9; required fields are always visible because they cannot take FieldPermissions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "base64": "xsd:base64Binary",
}
AUDIT_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById")
TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox", "encryptedstring"}


class Field:
    """One field; ``spec`` is the compact catalog entry, kept verbatim for persistence."""

    def __init__(self, spec: dict[str, Any], *, custom: bool = False, tooling: bool = False):
        self.spec = spec
        self.name: str = spec["name"]
        self.type: str = spec["type"]
        self.label: str = spec.get("label") or _label(self.name)
        self.length: int = int(spec.get("length", 0 if self.type not in TEXT_TYPES else 255))
        self.precision: int = int(spec.get("precision", 0))
        self.scale: int = int(spec.get("scale", 0))
        readonly = bool(spec.get("readonly") or spec.get("formula") or spec.get("autoNumber"))
        self.createable = not readonly
        self.updateable = not readonly and not spec.get("createonly")
        self.default = spec.get("default")
        self.defaulted = self.default is not None or bool(spec.get("defaulted")) or self.type == "boolean"
        self.nillable = spec.get("nillable", not spec.get("required") and self.type != "boolean")
        self.unique = bool(spec.get("unique"))
        self.external_id = bool(spec.get("externalId"))
        self.case_sensitive = bool(spec.get("caseSensitive"))
        self.id_lookup = bool(spec.get("idLookup") or self.external_id or self.type == "id")
        self.auto_number: str | None = spec.get("autoNumber")
        self.formula: dict[str, Any] | None = spec.get("formula")
        self.reference_to: list[str] = list(spec.get("referenceTo") or [])
        self.relationship: str | None = spec.get("relationshipName")
        self.child_relationship: str | None = spec.get("childRelationship")
        self.cascade = bool(spec.get("cascade"))
        self.restricted = bool(spec.get("restricted"))
        self.audit = bool(spec.get("audit"))
        self.custom = custom
        self.tooling = tooling  # created through Tooling: subject to FieldPermissions
        self.picklist: list[dict[str, Any]] = []
        for entry in spec.get("picklist") or []:
            value, label = (entry, entry) if isinstance(entry, str) else (entry[0], entry[1])
            self.picklist.append(
                {
                    "active": value not in (spec.get("inactive") or []),
                    "defaultValue": value == self.default,
                    "label": label,
                    "validFor": None,
                    "value": value,
                }
            )

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES or self.type in ("id", "reference")

    def active_values(self) -> set[str]:
        return {p["value"] for p in self.picklist if p["active"]}

    def describe(self, *, createable: bool, updateable: bool) -> dict[str, Any]:
        text = self.type in TEXT_TYPES or self.type in ("id", "reference")
        return {
            "aggregatable": self.type not in ("textarea", "base64", "multipicklist"),
            "autoNumber": bool(self.auto_number),
            "byteLength": self.length * 3 if text else 0,
            "calculated": bool(self.formula),
            "calculatedFormula": None,
            "caseSensitive": self.case_sensitive,
            "controllerName": None,
            "createable": createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type != "picklist" else None,
            "defaultedOnCreate": self.defaulted or self.name in ("Id", "OwnerId") or self.name in AUDIT_FIELDS,
            "dependentPicklist": False,
            "digits": self.precision if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.type not in ("textarea", "base64"),
            "groupable": self.type not in ("textarea", "base64", "double", "currency", "percent", "datetime"),
            "htmlFormatted": False,
            "idLookup": self.id_lookup,
            "label": self.label,
            "length": self.length if text else 0,
            "name": self.name,
            "nameField": self.name == "Name",
            "namePointing": False,
            "nillable": self.nillable,
            "picklistValues": self.picklist,
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": self.precision if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship,
            "restrictedPicklist": self.restricted,
            "scale": self.scale if self.type in ("double", "currency", "percent") else 0,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type not in ("textarea", "base64", "multipicklist"),
            "type": self.type,
            "unique": self.unique,
            "updateable": updateable,
        }


class SObject:
    def __init__(self, name: str, spec: dict[str, Any], system: list[dict[str, Any]], custom: bool = False):
        self.name = name
        self.spec = spec
        self.custom = custom
        self.label: str = spec.get("label") or _label(name)
        self.label_plural: str = spec.get("labelPlural") or self.label + "s"
        self.key_prefix: str = spec["keyPrefix"]
        self.audit = bool(spec.get("audit")) or custom
        self.createable = spec.get("createable", True)
        self.updateable = spec.get("updateable", True)
        self.deletable = spec.get("deletable", True)
        self.fields: dict[str, Field] = {}
        self._lower: dict[str, Field] = {}
        wanted = spec.get("system")
        for fspec in system:
            if wanted is None or fspec["name"] in wanted:
                self.add(Field(fspec))
        if spec.get("owner"):
            self.add(
                Field(
                    {
                        "name": "OwnerId",
                        "type": "reference",
                        "length": 18,
                        "referenceTo": spec["owner"],
                        "relationshipName": "Owner",
                        "nillable": False,
                        "defaulted": True,
                    }
                )
            )
        for fspec in spec.get("fields", []):
            self.add(Field(fspec, custom=fspec["name"].endswith("__c")))

    def add(self, field: Field) -> None:
        self.fields[field.name] = field
        self._lower[field.name.lower()] = field

    def field(self, name: str) -> Field | None:
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        low = name.lower()
        for f in self.fields.values():
            if f.relationship and f.relationship.lower() == low:
                return f
        return None


class Catalog:
    def __init__(self, data: dict[str, Any]):
        self.system: list[dict[str, Any]] = data["systemFields"]
        self.custom_targets: list[str] = data.get("customObjectTargets", [])
        self.objects: dict[str, SObject] = {}
        self._lower: dict[str, SObject] = {}
        self.by_prefix: dict[str, SObject] = {}
        self.grants: dict[str, tuple[bool, bool]] = {}  # "Obj.Field" -> (read, edit)
        self.audit_permission = False
        for name, spec in data["objects"].items():
            self._register(SObject(name, spec, self.system))

    @classmethod
    def load_default(cls) -> Catalog:
        return cls(json.loads((_HERE / "catalog.json").read_text(encoding="utf-8")))

    def _register(self, obj: SObject) -> None:
        self.objects[obj.name] = obj
        self._lower[obj.name.lower()] = obj
        self.by_prefix[obj.key_prefix] = obj

    def get(self, name: str) -> SObject | None:
        return self._lower.get(name.lower())

    def object_for_id(self, rid: str) -> SObject | None:
        return self.by_prefix.get(rid[:3])

    # -- visibility / field-level security ---------------------------------------------------------------------

    def visible(self, obj: SObject, f: Field) -> bool:
        if not f.tooling or not f.nillable:
            return True
        return self.grants.get(f"{obj.name}.{f.name}", (False, False))[0]

    def editable(self, obj: SObject, f: Field) -> bool:
        if not f.tooling or not f.nillable:
            return True
        return self.grants.get(f"{obj.name}.{f.name}", (False, False))[1]

    def lookup(self, obj: SObject, name: str) -> Field | None:
        f = obj.field(name)
        return f if f is not None and self.visible(obj, f) else None

    def createable(self, obj: SObject, f: Field) -> bool:
        if f.name in AUDIT_FIELDS and f.audit:
            return self.audit_permission and obj.audit
        return f.createable and self.editable(obj, f)

    def updateable(self, obj: SObject, f: Field) -> bool:
        return f.updateable and self.editable(obj, f)

    # -- schema changes (Tooling) --------------------------------------------------------------------------

    def add_object(self, name: str, spec: dict[str, Any]) -> SObject:
        obj = SObject(name, spec, self.system, custom=True)
        self._register(obj)
        for target in self.custom_targets:
            holder, _, field_name = target.partition(".")
            f = self.objects[holder].field(field_name)
            if f is not None and name not in f.reference_to:
                f.reference_to.append(name)
        return obj

    def add_field(self, obj_name: str, spec: dict[str, Any], tooling: bool = True) -> Field:
        obj = self.objects[obj_name]
        field = Field(spec, custom=True, tooling=tooling)
        obj.add(field)
        return field

    def next_custom_prefix(self) -> str:
        n = 0
        while True:
            prefix = f"a0{'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'[n % 36]}"
            if n >= 36:
                prefix = f"a{'123456789'[(n // 36 - 1) % 9]}{'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'[n % 36]}"
            if prefix not in self.by_prefix:
                return prefix
            n += 1

    # -- describe ------------------------------------------------------------------------------------------

    def urls(self, obj: SObject, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
            "describe": f"{base}/describe",
            "sobject": base,
        }

    def global_entry(self, obj: SObject, version: str) -> dict[str, Any]:
        return {
            "activateable": False,
            "createable": obj.createable,
            "custom": obj.custom,
            "customSetting": False,
            "deletable": obj.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": obj.key_prefix,
            "label": obj.label,
            "labelPlural": obj.label_plural,
            "layoutable": True,
            "mergeable": obj.name in ("Account", "Contact", "Lead", "Case"),
            "mruEnabled": True,
            "name": obj.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": obj.deletable,
            "updateable": obj.updateable,
            "urls": self.urls(obj, version),
        }

    def describe(self, obj: SObject, version: str, record_types: list[dict[str, Any]]) -> dict[str, Any]:
        fields = [
            f.describe(createable=self.createable(obj, f), updateable=self.updateable(obj, f))
            for f in obj.fields.values()
            if self.visible(obj, f)
        ]
        children = []
        for other in self.objects.values():
            for f in other.fields.values():
                if obj.name in f.reference_to and self.visible(other, f):
                    children.append(
                        {
                            "cascadeDelete": f.cascade,
                            "childSObject": other.name,
                            "deprecatedAndHidden": False,
                            "field": f.name,
                            "junctionIdListNames": [],
                            "junctionReferenceTo": [],
                            "relationshipName": f.child_relationship,
                            "restrictedDelete": False,
                        }
                    )
        master = {
            "active": True,
            "available": True,
            "defaultRecordTypeMapping": not record_types,
            "developerName": "Master",
            "master": True,
            "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/012000000000000AAA"},
        }
        rts = [
            {
                "active": bool(rt.get("IsActive")),
                "available": True,
                "defaultRecordTypeMapping": i == 0,
                "developerName": rt["DeveloperName"],
                "master": False,
                "name": rt["Name"],
                "recordTypeId": rt["Id"],
                "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/{rt['Id']}"},
            }
            for i, rt in enumerate(record_types)
        ]
        return {
            **self.global_entry(obj, version),
            "childRelationships": children,
            "compactLayoutable": True,
            "fields": fields,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [*rts, master],
            "searchLayoutable": True,
            "supportedScopes": [{"label": "All", "name": "everything"}],
            "urls": self.urls(obj, version),
        }


def _label(name: str) -> str:
    base = name[:-3] if name.endswith("__c") else name
    if base.endswith("Id") and len(base) > 2:
        base = base[:-2] + " ID"
    out = []
    for i, ch in enumerate(base.replace("_", " ")):
        if ch.isupper() and i and base[i - 1].islower():
            out.append(" ")
        out.append(ch)
    return "".join(out).replace("  ", " ")
