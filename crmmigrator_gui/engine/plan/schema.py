"""The destination schema a map needs: custom tables, columns, lookups, option values and keys.

``manifest`` lists what the confirmed map requires; ``missing`` compares it with the
destination's metadata; ``apply`` creates what is missing through the metadata API, one
operation at a time (overlapping customisations fail on real orgs), then waits for the
alternate keys to become Active before any key-based write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.progress import ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.dataverse import DataverseClient

SOLUTION = "crmmigrator"
LANG = 1033


@dataclass
class SchemaItem:
    kind: str  # table | column | relationship | option | key
    entity: str
    name: str
    spec: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "entity": self.entity,
            "name": self.name,
            **{k: v for k, v in self.spec.items() if k not in ("entity", "name")},
        }


def _label(text: str) -> dict[str, Any]:
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": LANG}
        ],
    }


def manifest(project: Project, playbook: Playbook) -> list[SchemaItem]:
    """Everything the confirmed (or proposed) map needs at the destination, in creation order."""
    items: list[SchemaItem] = []
    mapped_entities = {
        r["target_entity"]
        for r in project.query("SELECT DISTINCT target_entity FROM field_maps WHERE target_entity IS NOT NULL")
    }
    entities = [e for e in playbook.target_entities() if e in mapped_entities or not mapped_entities]
    for table in playbook.schema["tables"]:
        if table["name"] in entities:
            items.append(SchemaItem("table", table["name"], table["name"], table))
    for entity in entities:
        items.append(
            SchemaItem(
                "column",
                entity,
                playbook.key_column,
                {"type": "String", "max_length": 100, "label": "Source system id"},
            )
        )
    for column in playbook.schema["columns"]:
        if column["entity"] in entities:
            items.append(SchemaItem("column", column["entity"], column["name"], column))
    for row in project.query(
        "SELECT DISTINCT target_entity, target_field, transform, source_field FROM field_maps "
        "WHERE target_field LIKE 'new_cf_%' AND status != 'unmapped'"
    ):
        import json

        transform = json.loads(row["transform"])
        items.append(
            SchemaItem(
                "column",
                row["target_entity"],
                row["target_field"],
                {
                    "type": transform.get("custom_type", "String"),
                    "max_length": 4000 if transform.get("custom_type", "String") == "String" else None,
                    "label": row["source_field"][:50],
                },
            )
        )
    for rel in playbook.schema["relationships"]:
        if rel["entity"] in entities:
            items.append(SchemaItem("relationship", rel["entity"], rel["column"], rel))
    for row in project.query(
        "SELECT DISTINCT target_entity, target_field, target_label FROM value_maps "
        "WHERE target_label IS NOT NULL AND target_field LIKE 'new_%' ORDER BY target_label"
    ):
        items.append(SchemaItem("option", row["target_entity"], row["target_field"], {"label": row["target_label"]}))
    for entity in entities:
        items.append(
            SchemaItem(
                "key",
                entity,
                f"new_{entity.removeprefix('new_')}_sourcesystemid_key",
                {"attributes": [playbook.key_column]},
            )
        )
    return items


def missing(client: DataverseClient, items: list[SchemaItem]) -> list[SchemaItem]:
    """The manifest items the destination does not have yet (keys count only when Active)."""
    client.invalidate()
    absent: list[SchemaItem] = []
    known_tables: dict[str, bool] = {}
    for item in items:
        exists = known_tables.setdefault(item.entity, client.entity_exists(item.entity))
        if item.kind == "table":
            if not exists:
                absent.append(item)
            continue
        if not exists:
            absent.append(item)
            continue
        meta = client.entity(item.entity)
        if item.kind in ("column", "relationship") and item.name not in meta.attributes:
            absent.append(item)
        elif item.kind == "option":
            attr = meta.attributes.get(item.name)
            if attr is None or meta.option_value(item.name, item.spec["label"]) is None:
                absent.append(item)
        elif item.kind == "key":
            status = (meta.keys.get(item.name) or {}).get("status")
            if status != "Active":
                absent.append(item)
    return absent


_TYPE_BODIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "String": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "AttributeType": "String",
        "AttributeTypeName": {"Value": "StringType"},
        "MaxLength": s.get("max_length") or 100,
        "FormatName": {"Value": "Text"},
    },
    "Memo": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
        "AttributeType": "Memo",
        "AttributeTypeName": {"Value": "MemoType"},
        "MaxLength": s.get("max_length") or 4000,
    },
    "Money": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        "AttributeType": "Money",
        "AttributeTypeName": {"Value": "MoneyType"},
        "PrecisionSource": 2,
    },
    "Decimal": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
        "AttributeType": "Decimal",
        "AttributeTypeName": {"Value": "DecimalType"},
        "Precision": 4,
    },
    "Integer": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
        "AttributeType": "Integer",
        "AttributeTypeName": {"Value": "IntegerType"},
        "Format": "None",
    },
    "Boolean": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
        "AttributeType": "Boolean",
        "AttributeTypeName": {"Value": "BooleanType"},
        "OptionSet": {
            "@odata.type": "Microsoft.Dynamics.CRM.BooleanOptionSetMetadata",
            "TrueOption": {"Value": 1, "Label": _label("Yes")},
            "FalseOption": {"Value": 0, "Label": _label("No")},
        },
    },
    "DateOnly": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
        "AttributeType": "DateTime",
        "AttributeTypeName": {"Value": "DateTimeType"},
        "Format": "DateOnly",
        "DateTimeBehavior": {"Value": "DateOnly"},
    },
    "DateTime": lambda s: {
        "@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
        "AttributeType": "DateTime",
        "AttributeTypeName": {"Value": "DateTimeType"},
        "Format": "DateAndTime",
        "DateTimeBehavior": {"Value": "UserLocal"},
    },
}


def _column_body(item: SchemaItem, options: list[str]) -> dict[str, Any]:
    col_type = item.spec.get("type", "String")
    if col_type == "Picklist":
        body = {
            "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            "AttributeType": "Picklist",
            "AttributeTypeName": {"Value": "PicklistType"},
            "OptionSet": {
                "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [{"Value": 100000000 + i, "Label": _label(label)} for i, label in enumerate(options)],
            },
        }
    else:
        body = _TYPE_BODIES[col_type](item.spec)
    body.update(
        {
            "SchemaName": item.name,
            "RequiredLevel": {"Value": "None", "CanBeChanged": True},
            "DisplayName": _label(item.spec.get("label") or item.name),
        }
    )
    return body


def apply(
    client: DataverseClient,
    items: list[SchemaItem],
    *,
    progress: ProgressCallback = no_progress,
    key_timeout: float = 120.0,
) -> list[SchemaItem]:
    """Create the missing items, sequentially; returns what was created.

    Idempotent: only what ``missing`` reports is created, and an alternate key that exists but is still
    being built (Pending/InProgress, e.g. after a timed-out earlier run) is waited for, never posted again
    (a second POST would fail as a duplicate). Publishing follows any change; keys are polled until Active.
    """
    todo = missing(client, items)
    options_by_column: dict[tuple[str, str], list[str]] = {}
    for item in items:
        if item.kind == "option":
            options_by_column.setdefault((item.entity, item.name), []).append(item.spec["label"])
    created_columns: set[tuple[str, str]] = set()
    created: list[SchemaItem] = []
    for done, item in enumerate(todo, 1):
        progress(ProgressEvent("schema", item.entity, done, len(todo), message=f"{item.kind} {item.name}"))
        if item.kind == "key" and client.key_status(item.entity, item.name) is not None:
            continue  # exists, index still building: _wait_for_keys below polls it
        created.append(item)
        if item.kind == "option" and (item.entity, item.name) in created_columns:
            continue  # created with the column
        if item.kind == "table":
            primary = item.spec.get("primary", "new_name")
            client.post_metadata(
                "EntityDefinitions",
                {
                    "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
                    "SchemaName": item.name,
                    "DisplayName": _label(item.spec.get("label", item.name)),
                    "DisplayCollectionName": _label(item.spec.get("plural", item.name)),
                    "Description": _label("Created by CRM Migrator"),
                    "OwnershipType": "UserOwned",
                    "HasNotes": True,
                    "HasActivities": False,
                    "IsActivity": False,
                    "Attributes": [
                        {
                            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                            "IsPrimaryName": True,
                            "SchemaName": primary,
                            "AttributeType": "String",
                            "AttributeTypeName": {"Value": "StringType"},
                            "MaxLength": 200,
                            "FormatName": {"Value": "Text"},
                            "RequiredLevel": {"Value": "None", "CanBeChanged": True},
                            "DisplayName": _label("Name"),
                        }
                    ],
                },
                f"creating table {item.name}",
                SOLUTION,
            )
        elif item.kind == "column":
            client.post_metadata(
                f"EntityDefinitions(LogicalName='{item.entity}')/Attributes",
                _column_body(item, options_by_column.get((item.entity, item.name), [])),
                f"creating column {item.entity}.{item.name}",
                SOLUTION,
            )
            created_columns.add((item.entity, item.name))
        elif item.kind == "relationship":
            spec = item.spec
            client.post_metadata(
                "RelationshipDefinitions",
                {
                    "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
                    "SchemaName": f"new_{spec['target']}_{item.entity}_{item.name}",
                    "ReferencedEntity": spec["target"],
                    "ReferencingEntity": item.entity,
                    "Lookup": {
                        "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                        "AttributeType": "Lookup",
                        "AttributeTypeName": {"Value": "LookupType"},
                        "SchemaName": spec["schema_name"],
                        "DisplayName": _label(spec.get("label", item.name)),
                        "RequiredLevel": {"Value": "None", "CanBeChanged": True},
                    },
                },
                f"creating lookup {item.entity}.{item.name}",
                SOLUTION,
            )
        elif item.kind == "option":
            client.post_metadata(
                "InsertOptionValue",
                {
                    "EntityLogicalName": item.entity,
                    "AttributeLogicalName": item.name,
                    "Label": _label(item.spec["label"]),
                    "SolutionUniqueName": SOLUTION,
                },
                f"adding option {item.spec['label']!r} to {item.entity}.{item.name}",
            )
        elif item.kind == "key":
            client.post_metadata(
                f"EntityDefinitions(LogicalName='{item.entity}')/Keys",
                {
                    "SchemaName": item.name,
                    "KeyAttributes": item.spec["attributes"],
                    "DisplayName": _label("Source system id key"),
                },
                f"creating alternate key on {item.entity}",
                SOLUTION,
            )
        client.invalidate(item.entity)
    if created:
        client.post_metadata("PublishAllXml", {}, "publishing customisations")
    _wait_for_keys(client, [i for i in items if i.kind == "key"], key_timeout)
    client.invalidate()
    return created


def _wait_for_keys(client: DataverseClient, keys: list[SchemaItem], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(keys)
    delay = 0.1
    while pending:
        still = []
        for item in pending:
            status = client.key_status(item.entity, item.name)
            if status == "Failed":
                raise DestinationError(
                    f"the alternate key on {item.entity} failed to build (duplicate source ids at the destination?)"
                )
            if status != "Active":
                still.append(item)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise DestinationError("alternate keys are still being built; run the step again in a minute")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
