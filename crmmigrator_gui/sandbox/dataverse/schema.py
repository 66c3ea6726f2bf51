"""Metadata writes: custom tables, columns, lookups (one-to-many relationships), alternate keys, options.

Each write validates the request the way the real service does (publisher prefix, duplicates, supported
types), expands it into a full catalog definition, appends it to the store's metadata log and applies it to
the live catalog. Replaying the same log at start-up rebuilds the catalog, so metadata survives restarts.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import errors as E
from .catalog import KEY_TYPES, Attribute, Entity, metadata_id
from .errors import DataverseError, bad_request

if TYPE_CHECKING:
    from .app import DataverseSandbox

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_KINDS = {
    "StringAttributeMetadata": "String",
    "MemoAttributeMetadata": "Memo",
    "IntegerAttributeMetadata": "Integer",
    "DecimalAttributeMetadata": "Decimal",
    "MoneyAttributeMetadata": "Money",
    "DoubleAttributeMetadata": "Double",
    "DateTimeAttributeMetadata": "DateTime",
    "BooleanAttributeMetadata": "Boolean",
    "PicklistAttributeMetadata": "Picklist",
    "BigIntAttributeMetadata": "BigInt",
}
OPTION_BASE = 100000000


def label(text: str | None) -> dict[str, Any]:
    loc = {"Label": text or "", "LanguageCode": 1033, "IsManaged": False}
    return {"LocalizedLabels": [loc] if text else [], "UserLocalizedLabel": loc if text else None}


def _label(lab: Any) -> str | None:
    if isinstance(lab, dict):
        locs = lab.get("LocalizedLabels") or []
        if locs:
            return locs[0].get("Label")
        user = lab.get("UserLocalizedLabel")
        return user.get("Label") if user else None
    return lab if isinstance(lab, str) else None


def _check_name(sb: DataverseSandbox, schema_name: Any, what: str) -> str:
    if not isinstance(schema_name, str) or not _NAME_RE.match(schema_name):
        raise bad_request(
            f"The {what} SchemaName '{schema_name}' is invalid: use letters, digits and "
            "underscores, starting with a letter.",
            E.METADATA_INVALID,
        )
    low = schema_name.lower()
    if not any(low.startswith(p.lower()) and len(low) > len(p) for p in sb.publisher_prefixes):
        raise bad_request(
            f"The {what} SchemaName '{schema_name}' must start with a customization prefix of the "
            f"solution publisher ({', '.join(sb.publisher_prefixes)}).",
            E.METADATA_INVALID,
        )
    return low


def collection_name(logical: str) -> str:
    return logical + ("es" if logical.endswith(("s", "x", "ch", "sh")) else "s")


def _a(ln: str, sn: str, t: str, req: str = "None", c: bool = True, u: bool = True, **kw: Any) -> dict:
    return {
        "LogicalName": ln,
        "SchemaName": sn,
        "AttributeType": t,
        "RequiredLevel": req,
        "IsValidForCreate": c,
        "IsValidForUpdate": u,
        **kw,
    }


def standard_columns(logical: str, schema_name: str, owned: str) -> list[dict[str, Any]]:
    """The columns the platform adds to every custom table."""
    cols = [
        _a(
            logical + "id",
            schema_name + "Id",
            "Uniqueidentifier",
            "SystemRequired",
            True,
            False,
            IsPrimaryId=True,
        ),
        _a("createdon", "CreatedOn", "DateTime", c=False, u=False, DateTimeBehavior="UserLocal"),
        _a("modifiedon", "ModifiedOn", "DateTime", c=False, u=False, DateTimeBehavior="UserLocal"),
        _a("overriddencreatedon", "OverriddenCreatedOn", "DateTime", u=False, DateTimeBehavior="UserLocal"),
        _a("versionnumber", "VersionNumber", "BigInt", c=False, u=False),
        _a(
            "createdby",
            "CreatedBy",
            "Lookup",
            c=False,
            u=False,
            Targets=["systemuser"],
            Navigation={"systemuser": "createdby"},
        ),
        _a(
            "modifiedby",
            "ModifiedBy",
            "Lookup",
            c=False,
            u=False,
            Targets=["systemuser"],
            Navigation={"systemuser": "modifiedby"},
        ),
        _a(
            "importsequencenumber",
            "ImportSequenceNumber",
            "Integer",
            u=False,
            MinValue=-2147483648,
            MaxValue=2147483647,
        ),
        _a(
            "statecode",
            "statecode",
            "State",
            "SystemRequired",
            False,
            True,
            Options=[
                {"Value": 0, "Label": "Active", "DefaultStatus": 1},
                {"Value": 1, "Label": "Inactive", "DefaultStatus": 2},
            ],
        ),
        _a(
            "statuscode",
            "statuscode",
            "Status",
            Options=[
                {"Value": 1, "Label": "Active", "State": 0},
                {"Value": 2, "Label": "Inactive", "State": 1},
            ],
        ),
    ]
    if owned == "UserOwned":
        cols.append(
            _a(
                "ownerid",
                "OwnerId",
                "Owner",
                "SystemRequired",
                Targets=["systemuser", "team"],
                Navigation={"systemuser": "ownerid", "team": "ownerid"},
            )
        )
        cols.append(
            _a(
                "owningbusinessunit",
                "OwningBusinessUnit",
                "Lookup",
                c=False,
                u=False,
                Targets=["businessunit"],
                Navigation={"businessunit": "owningbusinessunit"},
            )
        )
    return cols


def build_attribute(
    sb: DataverseSandbox, ent_name: str, body: dict[str, Any], existing: dict[str, Attribute] | None = None
) -> dict[str, Any]:
    """Validate an AttributeMetadata payload and expand it into a catalog attribute definition."""
    if not isinstance(body, dict):
        raise bad_request("The attribute definition must be a JSON object.", E.PAYLOAD_PARSE)
    otype = str(body.get("@odata.type", "")).rsplit(".", 1)[-1]
    if otype == "LookupAttributeMetadata":
        raise bad_request(
            "Lookup columns are created through RelationshipDefinitions "
            "(OneToManyRelationshipMetadata with a Lookup).",
            E.METADATA_INVALID,
        )
    kind = _KINDS.get(otype)
    if kind is None:
        raise bad_request(
            f"Attribute type '{otype or body.get('AttributeType')}' is not supported by the CRM "
            "Migrator sandbox.",
            E.METADATA_INVALID,
        )
    logical = _check_name(sb, body.get("SchemaName"), "attribute")
    if existing is not None and logical in existing:
        raise bad_request(
            f"An attribute with the specified name {logical} already exists on entity {ent_name}.",
            E.METADATA_DUPLICATE,
        )
    req = (body.get("RequiredLevel") or {}).get("Value", "None")
    if req not in ("None", "ApplicationRequired", "Recommended"):
        raise bad_request(f"RequiredLevel '{req}' is not valid for a custom attribute.", E.METADATA_INVALID)
    d = _a(
        logical,
        body["SchemaName"],
        kind,
        req,
        IsCustomAttribute=True,
        DisplayName=_label(body.get("DisplayName")) or body["SchemaName"],
        MetadataId=metadata_id("attr", ent_name, logical),
    )
    if body.get("IsPrimaryName"):
        d["IsPrimaryName"] = True

    def bounded(key: str, default: Any, lo: Any, hi: Any) -> Any:
        value = body.get(key)
        value = default if value is None else value
        if not isinstance(value, int | float | Decimal) or isinstance(value, bool) or not lo <= value <= hi:
            raise bad_request(f"{key} {value} is outside the valid range {lo}..{hi}.", E.METADATA_INVALID)
        # Request bodies parse numbers as Decimal; the metadata log stores plain JSON numbers.
        return int(value) if value == int(value) else float(value)

    if kind == "String":
        d["MaxLength"] = bounded("MaxLength", 100, 1, 4000)
        d["Format"] = (body.get("FormatName") or {}).get("Value") or body.get("Format") or "Text"
    elif kind == "Memo":
        d["MaxLength"] = bounded("MaxLength", 2000, 1, 1048576)
        d["Format"] = "TextArea"
    elif kind == "Integer":
        d["MinValue"] = bounded("MinValue", -2147483648, -2147483648, 2147483647)
        d["MaxValue"] = bounded("MaxValue", 2147483647, -2147483648, 2147483647)
    elif kind == "BigInt":
        d["MinValue"], d["MaxValue"] = -9223372036854775808, 9223372036854775807
    elif kind in ("Decimal", "Double"):
        d["Precision"] = bounded("Precision", 2, 0, 10 if kind == "Decimal" else 5)
        d["MinValue"] = bounded("MinValue", -100000000000, -100000000000, 100000000000)
        d["MaxValue"] = bounded("MaxValue", 100000000000, -100000000000, 100000000000)
    elif kind == "Money":
        d["Precision"] = bounded("Precision", 2, 0, 4)
        d["MinValue"] = bounded("MinValue", -922337203685477, -922337203685477, 922337203685477)
        d["MaxValue"] = bounded("MaxValue", 922337203685477, -922337203685477, 922337203685477)
    elif kind == "DateTime":
        beh = (body.get("DateTimeBehavior") or {}).get("Value") or "UserLocal"
        if beh not in ("UserLocal", "DateOnly", "TimeZoneIndependent"):
            raise bad_request(f"DateTimeBehavior '{beh}' is not valid.", E.METADATA_INVALID)
        d["DateTimeBehavior"] = beh
        d["Format"] = body.get("Format") or ("DateOnly" if beh == "DateOnly" else "DateAndTime")
    elif kind == "Boolean":
        opts = body.get("OptionSet") or {}
        d["TrueLabel"] = _label((opts.get("TrueOption") or {}).get("Label")) or "Yes"
        d["FalseLabel"] = _label((opts.get("FalseOption") or {}).get("Label")) or "No"
        d["DefaultValue"] = bool(body.get("DefaultValue", False))
    elif kind == "Picklist":
        if body.get("GlobalOptionSet@odata.bind") or (body.get("OptionSet") or {}).get("IsGlobal"):
            raise bad_request(
                "Global option sets are not supported by the CRM Migrator sandbox; define a local OptionSet.",
                E.METADATA_INVALID,
            )
        options, next_value = [], OPTION_BASE
        for o in (body.get("OptionSet") or {}).get("Options") or []:
            value = o.get("Value")
            if value is None:
                value = max([next_value, *(x["Value"] + 1 for x in options)])
            if any(x["Value"] == value for x in options):
                raise bad_request(f"The option value {value} is used more than once.", E.METADATA_DUPLICATE)
            options.append({"Value": value, "Label": _label(o.get("Label")) or str(value)})
            next_value = max(next_value, value + 1)
        d["Options"] = options
    return d


def create_entity(sb: DataverseSandbox, body: dict[str, Any]) -> Entity:
    if not isinstance(body, dict):
        raise bad_request("The entity definition must be a JSON object.", E.PAYLOAD_PARSE)
    schema_name = body.get("SchemaName")
    logical = _check_name(sb, schema_name, "entity")
    if sb.catalog.get(logical) is not None:
        raise bad_request(
            f"An entity with the specified name already exists. Name: {logical}", E.METADATA_DUPLICATE
        )
    owned = body.get("OwnershipType", "UserOwned")
    if owned not in ("UserOwned", "OrganizationOwned"):
        raise bad_request(f"OwnershipType '{owned}' is not valid.", E.METADATA_INVALID)
    attrs_in = body.get("Attributes") or []
    primaries = [a for a in attrs_in if isinstance(a, dict) and a.get("IsPrimaryName")]
    if (
        len(primaries) != 1
        or str(primaries[0].get("@odata.type", "")).rsplit(".", 1)[-1] != "StringAttributeMetadata"
    ):
        raise bad_request(
            "The Attributes collection must contain exactly one StringAttributeMetadata with "
            "IsPrimaryName set to true.",
            E.METADATA_INVALID,
        )
    columns = standard_columns(logical, schema_name, owned)
    known = {c["LogicalName"]: Attribute(c) for c in columns}
    for a in attrs_in:
        built = build_attribute(sb, logical, a, known)
        known[built["LogicalName"]] = Attribute(built)
        columns.append(built)
    primary = next(c for c in columns if c.get("IsPrimaryName"))
    entity_set = body.get("EntitySetName") or collection_name(logical)
    if entity_set in sb.catalog.by_set:
        raise bad_request(f"The EntitySetName {entity_set} is already used.", E.METADATA_DUPLICATE)
    otc = max(10000, *(e.d.get("ObjectTypeCode") or 0 for e in sb.catalog.entities.values())) + 1
    d = {
        "LogicalName": logical,
        "SchemaName": schema_name,
        "EntitySetName": entity_set,
        "PrimaryIdAttribute": logical + "id",
        "PrimaryNameAttribute": primary["LogicalName"],
        "ObjectTypeCode": otc,
        "OwnershipType": owned,
        "HasNotes": bool(body.get("HasNotes")),
        "HasActivities": bool(body.get("HasActivities")),
        "IsActivity": False,
        "IsCustomEntity": True,
        "DisplayName": _label(body.get("DisplayName")) or schema_name,
        "DisplayCollectionName": _label(body.get("DisplayCollectionName")) or schema_name + "s",
        "Description": _label(body.get("Description")),
        "MetadataId": metadata_id("entity", logical),
        "BulkMessages": ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"],
        "StateRules": {},
        "Keys": [],
        "Attributes": columns,
    }
    with sb.store.transaction():
        sb.store.log_op("entity", d)
        sb.catalog.apply_entity(d)
    sb.store.table(sb.catalog.entities[logical])
    return sb.catalog.entities[logical]


def create_attribute(sb: DataverseSandbox, ent: Entity, body: dict[str, Any]) -> Attribute:
    d = build_attribute(sb, ent.name, body, ent.attrs)
    d.pop("IsPrimaryName", None)
    with sb.store.transaction():
        sb.store.log_op("attribute", {"entity": ent.name, "attribute": d})
        sb.catalog.apply_attribute({"entity": ent.name, "attribute": d})
    return ent.attrs[d["LogicalName"]]


def create_relationship(sb: DataverseSandbox, body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The relationship definition must be a JSON object.", E.PAYLOAD_PARSE)
    otype = str(body.get("@odata.type", "")).rsplit(".", 1)[-1]
    if otype != "OneToManyRelationshipMetadata":
        raise bad_request(
            f"Relationship type '{otype}' is not supported by the CRM Migrator sandbox.", E.METADATA_INVALID
        )
    rel_schema = body.get("SchemaName")
    _check_name(sb, rel_schema, "relationship")
    referenced = sb.catalog.get(str(body.get("ReferencedEntity")))
    referencing = sb.catalog.get(str(body.get("ReferencingEntity")))
    if referenced is None or referencing is None:
        missing = body.get("ReferencedEntity") if referenced is None else body.get("ReferencingEntity")
        raise DataverseError(
            404, E.RECORD_NOT_FOUND, f"Could not find an entity with specified entity name: {missing}"
        )
    if any(
        r["SchemaName"].lower() == rel_schema.lower()
        for e in sb.catalog.entities.values()
        for r in e.many_to_one()
    ):
        raise bad_request(f"A relationship with the name {rel_schema} already exists.", E.METADATA_DUPLICATE)
    lookup = body.get("Lookup") or {}
    lookup_schema = lookup.get("SchemaName")
    logical = _check_name(sb, lookup_schema, "lookup attribute")
    if logical in referencing.attrs or lookup_schema in referencing.navs:
        raise bad_request(
            f"An attribute with the specified name {logical} already exists on entity {referencing.name}.",
            E.METADATA_DUPLICATE,
        )
    req = (lookup.get("RequiredLevel") or {}).get("Value", "None")
    d = _a(
        logical,
        lookup_schema,
        "Lookup",
        req if req != "SystemRequired" else "None",
        IsCustomAttribute=True,
        Targets=[referenced.name],
        Navigation={referenced.name: lookup_schema},
        Relationships={referenced.name: rel_schema},
        DisplayName=_label(lookup.get("DisplayName")) or lookup_schema,
        MetadataId=metadata_id("attr", referencing.name, logical),
    )
    with sb.store.transaction():
        sb.store.log_op("attribute", {"entity": referencing.name, "attribute": d})
        sb.catalog.apply_attribute({"entity": referencing.name, "attribute": d})
    return {"MetadataId": metadata_id("rel", rel_schema), "SchemaName": rel_schema}


def create_key(sb: DataverseSandbox, ent: Entity, body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The key definition must be a JSON object.", E.PAYLOAD_PARSE)
    logical = _check_name(sb, body.get("SchemaName"), "key")
    if any(k["LogicalName"] == logical for k in ent.keys):
        raise bad_request(f"An entity key with the name {logical} already exists.", E.METADATA_DUPLICATE)
    if len(ent.keys) >= 10:
        raise bad_request(f"Entity {ent.name} already has the maximum of 10 keys.", E.METADATA_INVALID)
    names = body.get("KeyAttributes")
    if not isinstance(names, list) or not names or len(names) > 16:
        raise bad_request("KeyAttributes must list between 1 and 16 attributes.", E.METADATA_INVALID)
    for n in names:
        attr = ent.attrs.get(n)
        if attr is None:
            raise DataverseError(
                404, E.RECORD_NOT_FOUND, f"Could not find attribute {n} on entity {ent.name}."
            )
        if attr.type not in KEY_TYPES or attr.name == ent.pk:
            raise bad_request(
                f"Attribute {n} of type {attr.type} cannot be part of an entity key.", E.METADATA_INVALID
            )
    if any(set(k["KeyAttributes"]) == set(names) for k in ent.keys):
        raise bad_request("An entity key with the same attributes already exists.", E.METADATA_DUPLICATE)
    key = {
        "MetadataId": metadata_id("key", ent.name, logical),
        "SchemaName": body["SchemaName"],
        "LogicalName": logical,
        "KeyAttributes": list(names),
        "EntityKeyIndexStatus": "Pending",
        "DisplayName": _label(body.get("DisplayName")) or body["SchemaName"],
        "CreatedAt": time.time(),
    }
    with sb.store.transaction():
        sb.store.log_op("key", {"entity": ent.name, "key": key})
        sb.catalog.apply_key({"entity": ent.name, "key": key})
    sb.metadata.refresh_keys(ent)
    return key


def delete_key(sb: DataverseSandbox, ent: Entity, key: dict[str, Any]) -> None:
    with sb.store.transaction():
        sb.store.drop_key_index(ent, key["LogicalName"])
        sb.store.log_op("drop_key", {"entity": ent.name, "key": key["LogicalName"]})
        sb.catalog.apply_drop_key({"entity": ent.name, "key": key["LogicalName"]})


def insert_option_value(sb: DataverseSandbox, body: dict[str, Any]) -> int:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", E.PAYLOAD_PARSE)
    if body.get("OptionSetName"):
        raise bad_request(
            "Global option sets are not supported by the CRM Migrator sandbox.", E.METADATA_INVALID
        )
    ent = sb.catalog.get(str(body.get("EntityLogicalName")))
    attr = ent.attrs.get(str(body.get("AttributeLogicalName"))) if ent else None
    if ent is None or attr is None or attr.type != "Picklist":
        raise DataverseError(
            404,
            E.RECORD_NOT_FOUND,
            f"Could not find picklist attribute "
            f"{body.get('AttributeLogicalName')} on entity "
            f"{body.get('EntityLogicalName')}.",
        )
    value = body.get("Value")
    if value is None:
        value = max([OPTION_BASE - 1, *attr.options]) + 1
    if not isinstance(value, int) or isinstance(value, bool) or value in attr.options:
        raise bad_request(f"The option value {value} already exists or is not valid.", E.METADATA_DUPLICATE)
    text = _label(body.get("Label")) or str(value)
    with sb.store.transaction():
        payload = {"entity": ent.name, "attribute": attr.name, "value": value, "label": text}
        sb.store.log_op("option", payload)
        sb.catalog.apply_option(payload)
    return value
