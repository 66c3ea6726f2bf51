"""The destination as it will be after ``schema apply``: real metadata plus what the map still needs.

Pre-flight builds every payload before anything exists at the destination. On a fresh org (and always on
the embedded sandbox, which ``load`` provisions) the custom tables, columns, lookups and options of the map
are missing, and building against the bare metadata would fail every record with ``MISSING_COLUMN``. So
the builders get a client whose metadata is the destination's, overlaid with the schema manifest — typed
and sized exactly as ``schema apply`` will create it — and nothing is ever written.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.plan import schema
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.dataverse import AttributeMeta, EntityMeta
from crmmigrator_gui.engine.target.sf_types import FieldMeta, SObjectMeta

# Tooling field types -> describe types
_SF_TYPES = {
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
}
_SF_LENGTHS = {"Email": 80, "Phone": 40, "Url": 255, "TextArea": 255, "LongTextArea": 131072, "Html": 131072}


def _platform_columns(logical: str, primary: str) -> dict[str, AttributeMeta]:
    """The columns Dataverse adds to every user-owned custom table (and the primary name column)."""
    columns = [
        AttributeMeta(f"{logical}id", "Uniqueidentifier", "SystemRequired", valid_update=False),
        AttributeMeta(primary, "String", max_length=200),
        AttributeMeta("createdon", "DateTime", valid_create=False, valid_update=False, date_behavior="UserLocal"),
        AttributeMeta("modifiedon", "DateTime", valid_create=False, valid_update=False, date_behavior="UserLocal"),
        AttributeMeta("overriddencreatedon", "DateTime", valid_update=False, date_behavior="UserLocal"),
        AttributeMeta("importsequencenumber", "Integer", valid_update=False),
        AttributeMeta("statecode", "State", "SystemRequired", valid_create=False, options={0: "Active", 1: "Inactive"}),
        AttributeMeta("statuscode", "Status", options={1: "Active", 2: "Inactive"}, option_states={1: 0, 2: 1}),
        AttributeMeta("ownerid", "Owner", "SystemRequired"),
    ]
    return {a.name: a for a in columns}


class PlannedDataverse:
    """A read-only stand-in for :class:`DataverseClient` whose ``entity()`` answers with planned metadata.

    Everything else (``lookup_id``, ``query``, ``whoami`` …) is the real client's: reads only.
    """

    def __init__(self, client: Any, project: Project, playbook: Playbook) -> None:
        self._client = client
        self._items: dict[str, list[Any]] = defaultdict(list)
        for item in schema.manifest(project, playbook):
            self._items[item.entity].append(item)
        self._planned: dict[str, EntityMeta] = {}
        self._exists: dict[str, bool] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def exists(self, logical: str) -> bool:
        if logical not in self._exists:
            self._exists[logical] = bool(self._client.entity_exists(logical))
        return self._exists[logical]

    def entity(self, logical: str) -> EntityMeta:
        if logical in self._planned:
            return self._planned[logical]
        items = self._items.get(logical, [])
        if self.exists(logical):
            meta = copy.deepcopy(self._client.entity(logical))
        elif any(i.kind == "table" for i in items):
            table = next(i for i in items if i.kind == "table").spec
            primary = table.get("primary", "new_name")
            meta = EntityMeta(
                logical=logical,
                entity_set=logical + ("es" if logical.endswith(("s", "x", "ch", "sh")) else "s"),
                primary_id=f"{logical}id",
                primary_name=primary,
                attributes=_platform_columns(logical, primary),
                navigation={("ownerid", "systemuser"): "ownerid"},
                keys={},
            )
        else:
            raise DestinationError(f"{logical} does not exist at the destination and the map does not create it")
        for item in items:
            spec = item.spec
            if item.kind == "column" and item.name not in meta.attributes:
                # The very body `schema apply` posts, so the plan cannot drift from what gets created.
                body = schema._column_body(item, [])
                meta.attributes[item.name] = AttributeMeta(
                    item.name,
                    body["AttributeType"],
                    max_length=body.get("MaxLength"),
                    date_behavior=(body.get("DateTimeBehavior") or {}).get("Value"),
                )
            elif item.kind == "relationship":
                if item.name not in meta.attributes:
                    meta.attributes[item.name] = AttributeMeta(item.name, "Lookup")
                meta.navigation.setdefault((item.name, spec["target"]), spec.get("schema_name") or item.name)
            elif item.kind == "option":
                attr = meta.attributes.get(item.name)
                if attr is not None and meta.option_value(item.name, spec["label"]) is None:
                    attr.options[100_000_000 + len(attr.options)] = spec["label"]
        if logical == "annotation":  # tables created with HasNotes get a note relationship of their own
            for table in (i for entity_items in self._items.values() for i in entity_items if i.kind == "table"):
                meta.navigation.setdefault(("objectid", table.entity), f"objectid_{table.entity}")
        self._planned[logical] = meta
        return meta


class PlannedSalesforce:
    """The Salesforce counterpart: ``describe()`` answers with the org's describe plus the manifest's fields."""

    def __init__(self, client: Any, project: Project, playbook: Playbook) -> None:
        from crmmigrator_gui.engine.plan import sf_schema

        self._client = client
        self._items: dict[str, list[Any]] = defaultdict(list)
        for item in sf_schema.manifest(project, playbook):
            self._items[item.entity.lower()].append(item)
        self._planned: dict[str, SObjectMeta] = {}
        self._names: set[str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def exists(self, sobject: str) -> bool:
        if self._names is None:
            self._names = {str(o.get("name", "")).lower() for o in self._client.describe_global()}
        return sobject.lower() in self._names

    def describe(self, sobject: str) -> SObjectMeta:
        key = sobject.lower()
        if key in self._planned:
            return self._planned[key]
        items = self._items.get(key, [])
        if self.exists(sobject):
            base = copy.deepcopy(self._client.describe(sobject))
            fields = dict(base.fields)
        elif any(i.kind == "object" for i in items):
            base = None
            fields = {
                "Id": FieldMeta("Id", "Record ID", "id"),
                "Name": FieldMeta("Name", "Name", "string", length=80, createable=True, updateable=True),
                "OwnerId": FieldMeta(
                    "OwnerId",
                    "Owner",
                    "reference",
                    createable=True,
                    updateable=True,
                    reference_to=["User"],
                    relationship_name="Owner",
                    defaulted_on_create=True,
                ),
            }
        else:
            raise DestinationError(f"{sobject} does not exist in Salesforce and the map does not create it")
        for item in items:
            if item.kind != "field":
                continue
            spec = item.spec
            existing = next((f for n, f in fields.items() if n.lower() == item.name.lower()), None)
            if existing is not None and existing.updateable:
                continue
            tooling = spec.get("type", "Text")
            kind = _SF_TYPES.get(tooling, "string")
            if tooling == "Number" and not spec.get("scale"):
                kind = "double"
            fields[item.name] = FieldMeta(
                item.name,
                spec.get("label") or item.name,
                kind,
                length=int(spec.get("length") or _SF_LENGTHS.get(tooling, 255 if kind == "string" else 0)),
                precision=int(spec.get("precision") or 0),
                scale=int(spec.get("scale") or 0),
                createable=True,
                updateable=True,
                external_id=bool(spec.get("external_id")),
                unique=bool(spec.get("unique")),
                custom=True,
                picklist_values=list(spec.get("values") or []),
                restricted_picklist=bool(spec.get("restricted")),
                reference_to=[spec["reference_to"]] if spec.get("reference_to") else [],
                relationship_name=(item.name[:-3] + "__r") if kind == "reference" else None,
            )
        meta = SObjectMeta(
            name=base.name if base else sobject,
            label=base.label if base else sobject,
            key_prefix=base.key_prefix if base else None,
            custom=base.custom if base else True,
            createable=True,
            updateable=True,
            deletable=True,
            queryable=True,
            undeletable=False,
            fields=fields,
        )
        self._planned[key] = meta
        return meta

    def audit_fields_enabled(self, sobject: str = "Task") -> bool:
        created = self.describe(sobject).field("CreatedDate")
        return bool(created and created.createable)
