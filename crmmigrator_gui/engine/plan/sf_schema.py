"""The Salesforce schema a map needs: custom objects, the ``Source_System_ID__c`` key and custom fields.

The Salesforce counterpart of :mod:`.schema` with the same three calls: ``manifest`` lists what the
confirmed map requires (a unique External ID key on every target object, the playbook's custom objects,
fields and lookups, and the tenant custom fields proposed by automap); ``missing`` compares it with
describe (a field the integration user cannot see counts as missing: Tooling-created fields stay hidden
until FieldPermissions grant them); ``apply`` creates what is missing through the Tooling API, one item
at a time, idempotently (``DUPLICATE_DEVELOPER_NAME`` is fine and field permissions are still granted).

Activity objects take their custom fields on ``Activity`` (Task and Event share them, reference §7.1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.progress import ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.engine.target.sf_types import rest_errors

ACTIVITY_OBJECTS = ("Task", "Event")
KEY_LENGTH = 100
# automap's custom-column type (Dataverse vocabulary) -> Tooling field type and size
_CUSTOM_TYPES: dict[str, dict[str, Any]] = {
    "String": {"type": "Text", "length": 255},
    "Memo": {"type": "LongTextArea", "length": 32768},
    "Integer": {"type": "Number", "precision": 18, "scale": 0},
    "Decimal": {"type": "Number", "precision": 18, "scale": 4},
    "Money": {"type": "Currency", "precision": 18, "scale": 2},
    "Boolean": {"type": "Checkbox"},
    "DateOnly": {"type": "Date"},
    "DateTime": {"type": "DateTime"},
}


@dataclass
class SchemaItem:
    kind: str  # object | field
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


def custom_field_name(target_field: str) -> str:
    """A field-map target as a Salesforce API name: automap's ``new_cf_gate_code`` -> ``CF_gate_code__c``.

    Standard and ``__c`` names pass through. Salesforce names start with a letter, hold letters, digits and
    single underscores, do not end with one, and are at most 40 characters before ``__c``.
    """
    if target_field.endswith("__c") or not target_field.startswith("new_cf_"):
        return target_field
    body = re.sub(r"[^A-Za-z0-9]+", "_", target_field[len("new_cf_") :]).strip("_") or "field"
    return f"CF_{body}"[:40].rstrip("_") + "__c"


def tooling_object(entity: str) -> str:
    """Where Tooling puts a field of ``entity`` (Task/Event fields live on Activity)."""
    return "Activity" if entity in ACTIVITY_OBJECTS else entity


def manifest(project: Project, playbook: Playbook) -> list[SchemaItem]:
    """Everything the confirmed (or proposed) map needs in the org, in creation order."""
    mapped = {
        r["target_entity"]
        for r in project.query("SELECT DISTINCT target_entity FROM field_maps WHERE target_entity IS NOT NULL")
    }
    entities = [e for e in playbook.target_entities() if e in mapped or not mapped]
    items: list[SchemaItem] = []
    for table in playbook.schema["tables"]:
        if table["name"] in entities:
            items.append(SchemaItem("object", table["name"], table["name"], dict(table)))
    for entity in entities:
        items.append(
            SchemaItem(
                "field",
                entity,
                playbook.key_column,
                {
                    "type": "Text",
                    "length": KEY_LENGTH,
                    "external_id": True,
                    "unique": True,
                    "label": "Source System ID",
                },
            )
        )
    labels = _value_labels(project)
    for column in playbook.schema["columns"]:
        if column["entity"] not in entities:
            continue
        spec = dict(column)
        if spec.get("type") == "Picklist":
            values = list(spec.get("values") or [])
            if not spec.get("restricted"):  # an open picklist also lists the labels the value maps chose
                values += [v for v in labels.get((column["entity"], column["name"]), []) if v not in values]
            spec["values"] = values
        items.append(SchemaItem("field", column["entity"], column["name"], spec))
    seen = {(i.entity, i.name) for i in items}
    for row in project.query(
        "SELECT DISTINCT target_entity, target_field, transform, source_field FROM field_maps "
        "WHERE (target_field LIKE 'new_cf_%' OR target_field LIKE 'CF\\_%' ESCAPE '\\') "
        "AND status != 'unmapped' AND target_entity IS NOT NULL"
    ):
        name = custom_field_name(row["target_field"])
        if (row["target_entity"], name) in seen:
            continue
        seen.add((row["target_entity"], name))
        transform = json.loads(row["transform"])
        spec = {**_CUSTOM_TYPES.get(transform.get("custom_type", "String"), _CUSTOM_TYPES["String"])}
        spec["label"] = row["source_field"][:40]
        items.append(SchemaItem("field", row["target_entity"], name, spec))
    for rel in playbook.schema["relationships"]:
        if rel["entity"] in entities:
            spec = {"type": "Lookup", "reference_to": rel["target"], "label": rel.get("label", rel["column"][:-3])}
            items.append(SchemaItem("field", rel["entity"], rel["column"], spec))
    return items


def _value_labels(project: Project) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for row in project.query(
        "SELECT DISTINCT target_entity, target_field, target_label FROM value_maps WHERE target_label IS NOT NULL "
        "ORDER BY target_label"
    ):
        out.setdefault((row["target_entity"], row["target_field"]), []).append(row["target_label"])
    return out


def _object_exists(client: SalesforceClient, name: str) -> bool:
    return any(str(o.get("name", "")).lower() == name.lower() for o in client.describe_global())


def missing(client: SalesforceClient, items: list[SchemaItem]) -> list[SchemaItem]:
    """The manifest items the org does not have yet, or that the integration user cannot see."""
    client.invalidate()
    absent: list[SchemaItem] = []
    exists: dict[str, bool] = {}
    for item in items:
        present = exists.setdefault(item.entity, _object_exists(client, item.entity))
        if item.kind == "object" or not present:
            if not present:
                absent.append(item)
            continue
        meta = client.describe(item.entity)
        f = meta.field(item.name)
        if f is None or not f.updateable:
            absent.append(item)
        elif item.spec.get("external_id") and not f.external_id:
            absent.append(item)
    return absent


def _create_object(client: SalesforceClient, item: SchemaItem) -> None:
    label = item.spec.get("label") or item.name[:-3].replace("_", " ")
    metadata = {
        "label": label,
        "pluralLabel": item.spec.get("plural") or f"{label}s",
        "nameField": {"type": "Text", "label": f"{label} Name"},
        "deploymentStatus": "Deployed",
        "sharingModel": "ReadWrite",
    }
    response = client._send("POST", "tooling/sobjects/CustomObject", {"FullName": item.name, "Metadata": metadata})
    if response.status_code >= 400 and rest_errors(response)[0][0] != "DUPLICATE_DEVELOPER_NAME":
        client._check(response, f"creating the custom object {item.name}")
    client.invalidate()


def apply(
    client: SalesforceClient, items: list[SchemaItem], *, progress: ProgressCallback = no_progress
) -> list[SchemaItem]:
    """Create the missing items through Tooling, sequentially; returns what was created (or granted)."""
    todo = missing(client, items)
    for done, item in enumerate(todo, 1):
        progress(ProgressEvent("schema", item.entity, done, len(todo), message=f"{item.kind} {item.name}"))
        if item.kind == "object":
            _create_object(client, item)
            continue
        spec = item.spec
        try:
            _create_field(client, item, spec)
        except DestinationError as exc:
            # The sandbox (unlike an org) refuses FieldPermissions on checkboxes as "required" fields; the
            # field exists and is visible there, which the final `missing` check confirms.
            if spec.get("type") != "Checkbox" or exc.code != "FIELD_INTEGRITY_EXCEPTION":
                raise
            client.invalidate()
    client.invalidate()
    still = missing(client, items) if todo else []
    if still:
        names = ", ".join(f"{i.entity}.{i.name}" for i in still[:6])
        raise DestinationError(f"Salesforce still lacks {len(still)} schema item(s) after creating them ({names})")
    return todo


def _create_field(client: SalesforceClient, item: SchemaItem, spec: dict[str, Any]) -> None:
    client.create_custom_field(
        tooling_object(item.entity),
        item.name,
        type=spec.get("type", "Text"),
        label=spec.get("label") or item.name[:-3].replace("_", " "),
        length=spec.get("length"),
        external_id=bool(spec.get("external_id")),
        unique=bool(spec.get("unique")),
        picklist_values=spec.get("values") or None,
        restricted=bool(spec.get("restricted", False)),
        precision=spec.get("precision"),
        scale=spec.get("scale"),
        reference_to=spec.get("reference_to"),
    )
