"""Metadata endpoints: ``EntityDefinitions`` reads (casts, ``$select``, ``$expand``), routing of writes.

The JSON mirrors the real EntityMetadata / AttributeMetadata shapes closely enough for clients to read
``EntitySetName``, ``MaxLength``, ``RequiredLevel``, option sets and navigation property names, which is
what a
migration tool needs. As in the real service, type-specific properties (``MaxLength``, ``OptionSet`` …) can
only be named in ``$select``/``$expand`` after a cast segment such as
``/Microsoft.Dynamics.CRM.StringAttributeMetadata``.

Alternate keys move from ``Pending`` to ``Active`` (or ``Failed``) lazily: the first request that looks at a
key after ``key_activation_seconds`` builds its unique index. No background thread is needed because the
state is only observable through requests.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from . import errors as E
from . import schema
from .catalog import Attribute, Entity, metadata_id
from .errors import DataverseError, bad_request
from .odata import evaluate, parse_filter, parse_select
from .schema import label

if TYPE_CHECKING:
    from .app import DataverseSandbox, Request

CAST_OF = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "EntityName": "EntityNameAttributeMetadata",
}
TYPE_PROPS = {
    "StringAttributeMetadata": {"MaxLength", "Format", "FormatName", "DatabaseLength"},
    "MemoAttributeMetadata": {"MaxLength", "Format", "DatabaseLength"},
    "IntegerAttributeMetadata": {"MinValue", "MaxValue", "Format"},
    "BigIntAttributeMetadata": {"MinValue", "MaxValue"},
    "DecimalAttributeMetadata": {"MinValue", "MaxValue", "Precision"},
    "MoneyAttributeMetadata": {"MinValue", "MaxValue", "Precision", "PrecisionSource"},
    "DoubleAttributeMetadata": {"MinValue", "MaxValue", "Precision"},
    "DateTimeAttributeMetadata": {"Format", "DateTimeBehavior", "MinSupportedValue"},
    "BooleanAttributeMetadata": {"DefaultValue", "OptionSet"},
    "PicklistAttributeMetadata": {"DefaultFormValue", "OptionSet", "GlobalOptionSet"},
    "StateAttributeMetadata": {"DefaultFormValue", "OptionSet", "GlobalOptionSet"},
    "StatusAttributeMetadata": {"DefaultFormValue", "OptionSet", "GlobalOptionSet"},
    "LookupAttributeMetadata": {"Targets", "Format"},
    "UniqueIdentifierAttributeMetadata": set(),
    "EntityNameAttributeMetadata": set(),
}
COMMON_ATTR_PROPS = {
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntityLogicalName",
    "AttributeType",
    "AttributeTypeName",
    "RequiredLevel",
    "IsCustomAttribute",
    "IsValidForCreate",
    "IsValidForUpdate",
    "IsValidForRead",
    "IsPrimaryId",
    "IsPrimaryName",
    "DisplayName",
    "Description",
    "AttributeOf",
    "IsLogical",
    "IsManaged",
    "IsValidForAdvancedFind",
    "IsRequiredForForm",
    "ColumnNumber",
    "IsSecured",
}
ENTITY_NAVS = {
    "Attributes",
    "Keys",
    "ManyToOneRelationships",
    "OneToManyRelationships",
    "ManyToManyRelationships",
}
_SEG_RE = re.compile(r"^(\w+)(?:\((.*)\))?$")


def _select(
    obj: dict[str, Any], select: list[str] | None, allowed: set[str], type_name: str
) -> dict[str, Any]:
    if select is None:
        return obj
    for name in select:
        if name not in allowed:
            raise E.unknown_select(name, type_name)
    keep = {"@odata.type", "MetadataId", *select}
    return {k: v for k, v in obj.items() if k in keep}


def _parse_expand(text: str | None) -> dict[str, dict[str, str]]:
    """``OptionSet($select=Options),GlobalOptionSet`` -> {"OptionSet": {"$select": "Options"}, ...}."""
    out: dict[str, dict[str, str]] = {}
    if not text:
        return out
    depth, start, parts = 0, 0, []
    for i, ch in enumerate(text + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    for part in filter(None, parts):
        m = re.match(r"^(\w+)(?:\((.*)\))?$", part)
        if not m:
            raise bad_request(f"Syntax error in $expand: '{text}'")
        opts = dict(o.split("=", 1) for o in (m.group(2) or "").split(";") if "=" in o)
        out[m.group(1)] = opts
    return out


class Metadata:
    """Serves and changes metadata for one sandbox."""

    def __init__(self, sandbox: DataverseSandbox):
        self.sb = sandbox
        self.catalog = sandbox.catalog

    # -- keys ------------------------------------------------------------------------------------------------

    def refresh_keys(self, ent: Entity) -> None:
        """Activate pending keys whose index build time has elapsed (lazy background job)."""
        now = time.time()
        for key in list(ent.keys):
            if key["EntityKeyIndexStatus"] != "Pending":
                continue
            if now - key.get("CreatedAt", 0) < self.sb.key_activation_seconds:
                continue
            attrs = [ent.attrs[n] for n in key["KeyAttributes"]]
            with self.sb.store.transaction():
                ok = self.sb.store.create_key_index(ent, key["LogicalName"], attrs)
                updated = {**key, "EntityKeyIndexStatus": "Active" if ok else "Failed"}
                self.sb.store.log_op("key", {"entity": ent.name, "key": updated})
                self.catalog.apply_key({"entity": ent.name, "key": updated})

    # -- JSON shapes -----------------------------------------------------------------------------------------

    def entity_json(self, ent: Entity) -> dict[str, Any]:
        d = ent.d
        return {
            "@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
            "MetadataId": d.get("MetadataId") or metadata_id("entity", ent.name),
            "LogicalName": ent.name,
            "SchemaName": d["SchemaName"],
            "EntitySetName": ent.set_name,
            "LogicalCollectionName": ent.set_name,
            "CollectionSchemaName": d["SchemaName"] + "s",
            "PrimaryIdAttribute": ent.pk,
            "PrimaryNameAttribute": ent.primary_name,
            "ObjectTypeCode": d.get("ObjectTypeCode"),
            "OwnershipType": d.get("OwnershipType"),
            "HasNotes": d.get("HasNotes", False),
            "HasActivities": d.get("HasActivities", False),
            "IsActivity": d.get("IsActivity", False),
            "IsCustomEntity": d.get("IsCustomEntity", False),
            "IsManaged": False,
            "IsValidForAdvancedFind": True,
            "ChangeTrackingEnabled": False,
            "TableType": "Standard",
            "IsCustomizable": {"Value": True, "CanBeChanged": True},
            "DisplayName": label(d.get("DisplayName")),
            "DisplayCollectionName": label(d.get("DisplayCollectionName")),
            "Description": label(d.get("Description")),
        }

    def attribute_json(
        self, ent: Entity, attr: Attribute, expand: dict[str, dict[str, str]] | None = None
    ) -> dict[str, Any]:
        d, t = attr.d, attr.type
        cast = CAST_OF.get(t, "AttributeMetadata")
        out: dict[str, Any] = {
            "@odata.type": f"#Microsoft.Dynamics.CRM.{cast}",
            "MetadataId": d.get("MetadataId") or metadata_id("attr", ent.name, attr.name),
            "LogicalName": attr.name,
            "SchemaName": d["SchemaName"],
            "EntityLogicalName": ent.name,
            "AttributeType": t,
            "AttributeTypeName": {"Value": t + "Type"},
            "RequiredLevel": {
                "Value": attr.required,
                "CanBeChanged": attr.required != "SystemRequired",
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "IsCustomAttribute": d.get("IsCustomAttribute", False),
            "IsValidForCreate": attr.create,
            "IsValidForUpdate": attr.update,
            "IsValidForRead": attr.read,
            "IsPrimaryId": d.get("IsPrimaryId", False),
            "IsPrimaryName": d.get("IsPrimaryName", False),
            "DisplayName": label(d.get("DisplayName") or d["SchemaName"]),
            "Description": label(None),
            "AttributeOf": None,
            "IsLogical": False,
            "IsManaged": False,
            "IsSecured": False,
            "IsValidForAdvancedFind": True,
            "IsRequiredForForm": attr.required != "None",
            "ColumnNumber": None,
        }
        if t in ("String", "Memo"):
            out.update(
                MaxLength=attr.max_length,
                DatabaseLength=(attr.max_length or 0) * 2,
                Format=d.get("Format", "Text" if t == "String" else "TextArea"),
            )
            if t == "String":
                out["FormatName"] = {"Value": d.get("Format", "Text")}
        elif t in ("Integer", "BigInt", "Decimal", "Money", "Double"):
            out.update(MinValue=attr.min, MaxValue=attr.max)
            if t in ("Decimal", "Money", "Double"):
                out["Precision"] = attr.precision
            if t == "Money":
                out["PrecisionSource"] = 2
            if t == "Integer":
                out["Format"] = "None"
        elif t == "DateTime":
            out.update(
                Format=d.get("Format", "DateAndTime"),
                DateTimeBehavior={"Value": attr.behavior},
                MinSupportedValue="1753-01-01T00:00:00Z",
            )
        elif attr.is_lookup:
            out.update(Targets=list(attr.targets), Format=None)
        elif t == "Boolean":
            out["DefaultValue"] = d.get("DefaultValue", False)
        elif t in ("Picklist", "State", "Status"):
            out["DefaultFormValue"] = -1 if t == "Picklist" else None
        if expand and t in ("Picklist", "State", "Status", "Boolean"):
            if "OptionSet" in expand:
                out["OptionSet"] = self.option_set_json(ent, attr, expand["OptionSet"].get("$select"))
            if "GlobalOptionSet" in expand:
                out["GlobalOptionSet"] = None
        return out

    def option_set_json(self, ent: Entity, attr: Attribute, select: str | None) -> dict[str, Any]:
        d = attr.d
        opts = []
        for o in d.get("Options", []):
            item = {
                "Value": o["Value"],
                "Color": None,
                "IsManaged": False,
                "Label": label(o["Label"]),
                "Description": label(None),
                "ExternalValue": None,
            }
            if "State" in o:
                item["State"] = o["State"]
            if "DefaultStatus" in o:
                item["DefaultStatus"] = o["DefaultStatus"]
                item["InvariantName"] = o["Label"].replace(" ", "")
            opts.append(item)
        kind = {"Picklist": "Picklist", "State": "State", "Status": "Status", "Boolean": "Boolean"}[attr.type]
        out: dict[str, Any] = {
            "MetadataId": metadata_id("optionset", ent.name, attr.name),
            "Name": f"{ent.name}_{attr.name}",
            "IsGlobal": False,
            "OptionSetType": kind,
            "IsCustomOptionSet": d.get("IsCustomAttribute", False),
        }
        if attr.type == "Boolean":
            out["TrueOption"] = {"Value": 1, "Label": label(d.get("TrueLabel", "Yes"))}
            out["FalseOption"] = {"Value": 0, "Label": label(d.get("FalseLabel", "No"))}
        else:
            out["Options"] = opts
        if select:
            keep = {s.strip() for s in select.split(",")} | {"MetadataId"}
            out = {k: v for k, v in out.items() if k in keep}
        return out

    def key_json(self, ent: Entity, key: dict[str, Any]) -> dict[str, Any]:
        return {
            "@odata.type": "#Microsoft.Dynamics.CRM.EntityKeyMetadata",
            "MetadataId": key["MetadataId"],
            "SchemaName": key["SchemaName"],
            "LogicalName": key["LogicalName"],
            "EntityLogicalName": ent.name,
            "KeyAttributes": list(key["KeyAttributes"]),
            "EntityKeyIndexStatus": key["EntityKeyIndexStatus"],
            "DisplayName": label(key.get("DisplayName")),
            "IsManaged": False,
            "AsyncJob": None,
        }

    # -- routing ---------------------------------------------------------------------------------------------

    def find_entity(self, seg_key: str | None) -> Entity:
        if seg_key is None:
            raise bad_request("An entity key is required.")
        m = re.match(r"^\s*LogicalName\s*=\s*'([^']*)'\s*$", seg_key)
        if m:
            ent = self.catalog.get(m.group(1))
        else:
            mid = seg_key.strip().lower()
            ent = next(
                (e for e in self.catalog.entities.values() if self.entity_json(e)["MetadataId"] == mid), None
            )
        if ent is None:
            raise DataverseError(
                404, E.RECORD_NOT_FOUND, f"Could not find an entity with specified entity name: {seg_key}"
            )
        return ent

    def handle(self, req: Request, segments: list[str]) -> tuple[int, dict[str, str], Any]:
        """Route ``EntityDefinitions…`` / ``RelationshipDefinitions…`` requests."""
        parsed = []
        for seg in segments:
            m = _SEG_RE.match(seg) if not seg.startswith("Microsoft.Dynamics.CRM.") else None
            parsed.append((m.group(1), m.group(2)) if m else (seg, None))
        head, head_key = parsed[0]
        with self.sb.store.lock:
            if head == "RelationshipDefinitions":
                return self._relationships(req, head_key, parsed[1:])
            if len(parsed) == 1:
                if req.method == "POST" and head_key is None:
                    ent = schema.create_entity(self.sb, req.json())
                    return (
                        204,
                        {
                            "OData-EntityId": req.base
                            + f"EntityDefinitions({self.entity_json(ent)['MetadataId']})"
                        },
                        None,
                    )
                if req.method != "GET":
                    raise DataverseError(405, E.INVALID_PROPERTY, "Method not allowed.")
                if head_key is None:
                    return 200, {}, self._entity_list(req)
                return 200, {}, self._entity_one(req, self.find_entity(head_key))
            ent = self.find_entity(head_key)
            nav, nav_key = parsed[1]
            rest = parsed[2:]
            if nav == "Attributes":
                return self._attributes(req, ent, nav_key, rest)
            if nav == "Keys":
                return self._keys(req, ent, nav_key)
            if nav in ("ManyToOneRelationships", "OneToManyRelationships") and req.method == "GET":
                rels = (
                    ent.many_to_one()
                    if nav == "ManyToOneRelationships"
                    else [
                        r
                        for e in self.catalog.entities.values()
                        for r in e.many_to_one()
                        if r["ReferencedEntity"] == ent.name
                    ]
                )
                return 200, {}, self._collection(req, rels, "OneToManyRelationshipMetadata")
            raise E.segment_not_found(nav)

    def _context(self, req: Request, what: str) -> str:
        return req.base + "$metadata#" + what

    def _collection(
        self, req: Request, items: list[dict[str, Any]], type_name: str, allowed: set[str] | None = None
    ) -> dict[str, Any]:
        flt = req.query.get("$filter")
        if flt:
            node = parse_filter(flt)
            items = [i for i in items if evaluate(node, i)]
        select = parse_select(req.query.get("$select"))
        allowed = allowed or (set(items[0]) if items else set())
        if select and items:
            items = [_select(i, select, allowed, type_name) for i in items]
        return {"@odata.context": self._context(req, type_name), "value": items}

    def _entity_with_expand(self, req: Request, ent: Entity) -> dict[str, Any]:
        obj = self.entity_json(ent)
        select = parse_select(req.query.get("$select"))
        for name, opts in _parse_expand(req.query.get("$expand")).items():
            if name == "Attributes":
                sel = parse_select(opts.get("$select"))
                obj[name] = [
                    _select(self.attribute_json(ent, a), sel, COMMON_ATTR_PROPS, "AttributeMetadata")
                    for a in ent.attrs.values()
                ]
            elif name == "Keys":
                obj[name] = [self.key_json(ent, k) for k in ent.keys]
            elif name == "ManyToOneRelationships":
                obj[name] = ent.many_to_one()
            else:
                raise E.unknown_select(name, "EntityMetadata")
            if select is not None:
                select = [*select, name]
        return _select(obj, select, set(obj) | ENTITY_NAVS, "EntityMetadata")

    def _entity_list(self, req: Request) -> dict[str, Any]:
        items = [self.entity_json(e) for e in self.catalog.entities.values()]
        flt = req.query.get("$filter")
        if flt:
            node = parse_filter(flt)
            items = [i for i in items if evaluate(node, i)]
        names = {i["LogicalName"] for i in items}
        value = [self._entity_with_expand(req, e) for e in self.catalog.entities.values() if e.name in names]
        return {"@odata.context": self._context(req, "EntityDefinitions"), "value": value}

    def _entity_one(self, req: Request, ent: Entity) -> dict[str, Any]:
        return {
            "@odata.context": self._context(req, "EntityDefinitions/$entity"),
            **self._entity_with_expand(req, ent),
        }

    def _attributes(
        self, req: Request, ent: Entity, key: str | None, rest: list[tuple[str, Any]]
    ) -> tuple[int, dict[str, str], Any]:
        if req.method == "POST" and key is None and not rest:
            attr = schema.create_attribute(self.sb, ent, req.json())
            mid = self.attribute_json(ent, attr)["MetadataId"]
            return (
                204,
                {
                    "OData-EntityId": req.base + f"EntityDefinitions(LogicalName='{ent.name}')/"
                    f"Attributes({mid})"
                },
                None,
            )
        if req.method != "GET":
            raise DataverseError(405, E.INVALID_PROPERTY, "Method not allowed.")
        cast = None
        if rest:
            seg = rest[0][0]
            if not seg.startswith("Microsoft.Dynamics.CRM.") or seg[23:] not in TYPE_PROPS:
                raise E.segment_not_found(seg)
            cast = seg[23:]
        expand = _parse_expand(req.query.get("$expand"))
        allowed = COMMON_ATTR_PROPS | (TYPE_PROPS[cast] if cast else set())
        for name in expand:
            if name not in allowed:
                raise E.unknown_select(name, cast or "AttributeMetadata")
        type_name = cast or "AttributeMetadata"
        attrs = [a for a in ent.attrs.values() if cast is None or CAST_OF.get(a.type) == cast]
        if key is not None:
            m = re.match(r"^\s*LogicalName\s*=\s*'([^']*)'\s*$", key)
            found = [
                a
                for a in attrs
                if (m and a.name == m.group(1))
                or (not m and self.attribute_json(ent, a)["MetadataId"] == key.strip().lower())
            ]
            if not found:
                raise DataverseError(
                    404, E.RECORD_NOT_FOUND, f"Could not find attribute {key} on entity {ent.name}."
                )
            obj = self.attribute_json(ent, found[0], expand)
            one_select = parse_select(req.query.get("$select"))
            if one_select is not None:
                one_select = [*one_select, *expand]
            obj = _select(obj, one_select, allowed | set(expand), type_name)
            return (
                200,
                {},
                {
                    "@odata.context": self._context(
                        req, f"EntityDefinitions('{ent.name}')/Attributes/$entity"
                    ),
                    **obj,
                },
            )
        items = [self.attribute_json(ent, a, expand) for a in attrs]
        flt = req.query.get("$filter")
        if flt:
            node = parse_filter(flt)
            items = [i for i in items if evaluate(node, i)]
        select = parse_select(req.query.get("$select"))
        if select is not None:
            select = [*select, *expand]
        items = [_select(i, select, allowed | set(expand), type_name) for i in items]
        return (
            200,
            {},
            {
                "@odata.context": self._context(req, f"EntityDefinitions('{ent.name}')/Attributes"),
                "value": items,
            },
        )

    def _keys(self, req: Request, ent: Entity, key: str | None) -> tuple[int, dict[str, str], Any]:
        if req.method == "POST" and key is None:
            created = schema.create_key(self.sb, ent, req.json())
            return (
                204,
                {
                    "OData-EntityId": req.base + f"EntityDefinitions(LogicalName='{ent.name}')/"
                    f"Keys({created['MetadataId']})"
                },
                None,
            )
        self.refresh_keys(ent)
        if key is None:
            if req.method != "GET":
                raise DataverseError(405, E.INVALID_PROPERTY, "Method not allowed.")
            items = [self.key_json(ent, k) for k in ent.keys]
            return 200, {}, self._collection(req, items, "EntityKeyMetadata")
        m = re.match(r"^\s*LogicalName\s*=\s*'([^']*)'\s*$", key)
        found = next(
            (
                k
                for k in ent.keys
                if (m and k["LogicalName"] == m.group(1).lower())
                or (not m and k["MetadataId"] == key.strip().lower())
            ),
            None,
        )
        if found is None:
            raise DataverseError(404, E.RECORD_NOT_FOUND, f"Could not find key {key} on entity {ent.name}.")
        if req.method == "DELETE":
            schema.delete_key(self.sb, ent, found)
            return 204, {}, None
        obj = _select(
            self.key_json(ent, found),
            parse_select(req.query.get("$select")),
            set(self.key_json(ent, found)),
            "EntityKeyMetadata",
        )
        return 200, {}, {"@odata.context": self._context(req, "EntityDefinitions/Keys/$entity"), **obj}

    def _relationships(self, req: Request, key: str | None, rest: list) -> tuple[int, dict[str, str], Any]:
        if req.method == "POST" and key is None:
            rel = schema.create_relationship(self.sb, req.json())
            return 204, {"OData-EntityId": req.base + f"RelationshipDefinitions({rel['MetadataId']})"}, None
        rels = [r for e in self.catalog.entities.values() for r in e.many_to_one()]
        if key is not None:
            m = re.match(r"^\s*SchemaName\s*=\s*'([^']*)'\s*$", key)
            found = [
                r
                for r in rels
                if (m and r["SchemaName"] == m.group(1)) or (not m and r["MetadataId"] == key.strip().lower())
            ]
            if not found:
                raise DataverseError(404, E.RECORD_NOT_FOUND, f"Could not find relationship {key}.")
            return (
                200,
                {},
                {"@odata.context": self._context(req, "RelationshipDefinitions/$entity"), **found[0]},
            )
        return 200, {}, self._collection(req, rels, "RelationshipMetadataBase")
