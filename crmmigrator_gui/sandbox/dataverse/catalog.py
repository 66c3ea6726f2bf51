"""The table catalog: which entities, columns, navigation properties and keys exist.

The standard tables come from ``catalog.json`` (data, so lengths, options and navigation names can be fixed
without code changes). Metadata created through the Web API (custom tables, columns, lookups, keys) is
applied on top by the same small set of ``apply_*`` functions, both when it is created and when the store
replays its persisted metadata log at start-up; that is why those functions take already-validated,
fully-expanded definitions and never raise for user errors.
"""

from __future__ import annotations

import copy
import json
import uuid
from importlib import resources
from typing import Any

METADATA_NS = uuid.UUID("6f1c2a52-5b0e-4a43-9d65-0c1f3e1a8b11")
LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
CHOICE_TYPES = frozenset({"Picklist", "State", "Status"})
KEY_TYPES = frozenset({"String", "Integer", "Decimal", "DateTime", "Lookup", "Picklist", "Customer", "Owner"})
BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def metadata_id(*parts: str) -> str:
    """Stable MetadataId, so ids survive restarts without being stored."""
    return str(uuid.uuid5(METADATA_NS, "/".join(parts)))


class Attribute:
    """One column, with the facts validation needs pulled out of its definition dict."""

    __slots__ = (
        "behavior",
        "create",
        "d",
        "max",
        "max_length",
        "min",
        "name",
        "navs",
        "options",
        "precision",
        "read",
        "required",
        "status_state",
        "targets",
        "type",
        "update",
    )

    def __init__(self, d: dict[str, Any]):
        self.d = d
        self.name: str = d["LogicalName"]
        self.type: str = d["AttributeType"]
        self.create: bool = d.get("IsValidForCreate", True)
        self.update: bool = d.get("IsValidForUpdate", True)
        self.read: bool = d.get("IsValidForRead", True)
        self.required: str = d.get("RequiredLevel", "None")
        self.max_length: int | None = d.get("MaxLength")
        self.precision: int | None = d.get("Precision")
        self.min = d.get("MinValue")
        self.max = d.get("MaxValue")
        self.behavior: str = d.get("DateTimeBehavior", "UserLocal")
        self.targets: list[str] = d.get("Targets", [])
        self.navs: dict[str, str] = d.get("Navigation", {})
        opts = d.get("Options") or []
        self.options: dict[int, str] = {o["Value"]: o["Label"] for o in opts}
        self.status_state: dict[int, int] = {o["Value"]: o["State"] for o in opts if "State" in o}

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES


class Entity:
    """One table: its attributes, navigation properties, keys and rules."""

    def __init__(self, d: dict[str, Any]):
        self.d = d
        self.name: str = d["LogicalName"]
        self.set_name: str = d["EntitySetName"]
        self.pk: str = d["PrimaryIdAttribute"]
        self.primary_name: str | None = d.get("PrimaryNameAttribute")
        self.rules: dict[str, Any] = d.get("StateRules", {})
        # collection-valued navigation properties that may be sent inline on create/update, e.g.
        # {"phonecall_activity_parties": {"Entity": "activityparty", "Attribute": "activityid"}}
        self.collections: dict[str, dict[str, str]] = d.get("CollectionNavigations", {})
        self.attrs: dict[str, Attribute] = {}
        self.navs: dict[str, tuple[Attribute, list[str]]] = {}
        for ad in d["Attributes"]:
            self._index(ad)

    def _index(self, ad: dict[str, Any]) -> Attribute:
        attr = Attribute(ad)
        self.attrs[attr.name] = attr
        for target, nav in attr.navs.items():
            self.navs.setdefault(nav, (attr, []))[1].append(target)
        return attr

    def add_attribute(self, ad: dict[str, Any]) -> Attribute:
        self.d["Attributes"].append(ad)
        return self._index(ad)

    def add_target(self, attr_name: str, target: str, nav: str) -> None:
        attr = self.attrs[attr_name]
        if target not in attr.targets:
            attr.targets.append(target)
        attr.navs[target] = nav
        targets = self.navs.setdefault(nav, (attr, []))[1]
        if target not in targets:
            targets.append(target)

    @property
    def keys(self) -> list[dict[str, Any]]:
        return self.d.setdefault("Keys", [])

    @property
    def bulk(self) -> set[str]:
        return set(self.d.get("BulkMessages", []))

    @property
    def state_attr(self) -> Attribute | None:
        return self.attrs.get("statecode")

    def default_status(self, state: int) -> int | None:
        st = self.attrs.get("statecode")
        if st is None:
            return None
        for o in st.d["Options"]:
            if o["Value"] == state:
                return o.get("DefaultStatus")
        return None

    def many_to_one(self) -> list[dict[str, Any]]:
        """ManyToOneRelationships as the metadata API reports them (one per lookup target)."""
        out = []
        for attr in self.attrs.values():
            rels = attr.d.get("Relationships", {})
            for target, nav in attr.navs.items():
                schema = rels.get(target) or f"{target}_{self.name}_{attr.name}"
                out.append(
                    {
                        "MetadataId": metadata_id("rel", schema),
                        "SchemaName": schema,
                        "RelationshipType": "OneToManyRelationship",
                        "ReferencedEntity": target,
                        "ReferencedAttribute": target_pk_guess(target),
                        "ReferencingEntity": self.name,
                        "ReferencingAttribute": attr.name,
                        "ReferencingEntityNavigationPropertyName": nav,
                        "ReferencedEntityNavigationPropertyName": schema,
                        "IsCustomRelationship": schema in rels.values()
                        and attr.d.get("IsCustomAttribute", False),
                    }
                )
        return out


ACTIVITIES = ("task", "phonecall", "appointment", "email")
_PK_OVERRIDES = {name: "activityid" for name in ACTIVITIES}


def target_pk_guess(entity: str) -> str:
    return _PK_OVERRIDES.get(entity, entity + "id")


class Catalog:
    """All entities, indexed by logical name and by entity set name."""

    def __init__(self, doc: dict[str, Any]):
        self.entities: dict[str, Entity] = {}
        self.by_set: dict[str, Entity] = {}
        for d in doc["entities"].values():
            self._register(Entity(d))

    @classmethod
    def load_default(cls) -> Catalog:
        text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
        return cls(json.loads(text))

    def _register(self, ent: Entity) -> None:
        self.entities[ent.name] = ent
        self.by_set[ent.set_name] = ent

    def get(self, logical: str) -> Entity | None:
        return self.entities.get(logical)

    # -- metadata changes (validated by metadata.py; replayed by the store at start-up) --------------------

    def apply(self, op: str, payload: dict[str, Any]) -> None:
        getattr(self, "apply_" + op)(payload)

    def apply_entity(self, d: dict[str, Any]) -> None:
        ent = Entity(copy.deepcopy(d))
        self._register(ent)
        if d.get("HasNotes"):
            self.entities["annotation"].add_target("objectid", ent.name, f"objectid_{ent.name}")
        if d.get("HasActivities"):
            for activity in ACTIVITIES:
                if activity in self.entities:
                    self.entities[activity].add_target(
                        "regardingobjectid", ent.name, f"regardingobjectid_{ent.name}_{activity}"
                    )

    def apply_attribute(self, p: dict[str, Any]) -> None:
        self.entities[p["entity"]].add_attribute(copy.deepcopy(p["attribute"]))

    def apply_option(self, p: dict[str, Any]) -> None:
        attr = self.entities[p["entity"]].attrs[p["attribute"]]
        attr.d.setdefault("Options", []).append({"Value": p["value"], "Label": p["label"]})
        attr.options[p["value"]] = p["label"]

    def apply_key(self, p: dict[str, Any]) -> None:
        ent = self.entities[p["entity"]]
        ent.keys[:] = [k for k in ent.keys if k["LogicalName"] != p["key"]["LogicalName"]]
        ent.keys.append(copy.deepcopy(p["key"]))

    def apply_drop_key(self, p: dict[str, Any]) -> None:
        ent = self.entities[p["entity"]]
        ent.keys[:] = [k for k in ent.keys if k["LogicalName"] != p["key"]]
