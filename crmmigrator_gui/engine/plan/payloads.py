"""Build destination payloads from staged records, the confirmed map and the destination metadata.

One ``PayloadBuilder`` per load. It knows, per (object, entity), which source columns feed
which destination columns and with what transform; resolves value maps to option integers
read from the destination (never assumed); turns lookups into ``@odata.bind`` through the
real navigation-property names and the crosswalk; and decides the owner of each record.
A record that cannot be built gets a precise reason instead of a payload.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, destination_key
from crmmigrator_gui.engine.mapping.values import mapped_value, resolve_option
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.dataverse import DataverseClient, EntityMeta


class Skip(Exception):
    """The record cannot be sent yet (e.g. its parent did not load); not a destination failure."""

    code = "MISSING_PARENT"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class BuildError(Exception):
    """The record's data cannot be converted; the user must fix the data or the map."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Payload:
    key: str
    body: dict[str, Any]
    binds: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # nav -> (column, dest id)
    post_state: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class FieldRule:
    source_field: str
    target_field: str
    transform: dict[str, Any]


class PayloadBuilder:
    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: DataverseClient,
        xref: dict[tuple[str, str], str],
        fallback_owner: str,
    ) -> None:
        self.project = project
        self.playbook = playbook
        self.client = client
        self.xref = xref
        self.fallback_owner = fallback_owner
        self.rules: dict[tuple[str, str], list[FieldRule]] = defaultdict(list)
        self.role_columns: dict[str, dict[str, str]] = defaultdict(dict)
        for row in project.query(
            "SELECT source_object, source_field, target_entity, target_field, role, transform FROM field_maps "
            "WHERE status = 'confirmed' AND target_entity IS NOT NULL ORDER BY id"
        ):
            transform = json.loads(row["transform"])
            if transform.get("type") in ("key", "lookup", "owner"):
                continue
            self.rules[(row["source_object"], row["target_entity"])].append(
                FieldRule(row["source_field"], row["target_field"], self.bind(transform))
            )
        for obj_name, columns in role_columns(project).items():
            self.role_columns[obj_name].update(columns)
        # source value -> (label, stored value); (None, None) is the decision to leave the column empty
        self.value_maps: dict[tuple[str, str, str, str], dict[str, tuple[str | None, str | None]]] = defaultdict(dict)
        for row in project.query("SELECT * FROM value_maps WHERE status = 'confirmed'"):
            self.value_maps[(row["source_object"], row["source_field"], row["target_entity"], row["target_field"])][
                row["source_value"]
            ] = (row["target_label"], row["target_value"])
        self._staged_cache: dict[str, dict[str, dict[str, Any]]] = {}
        self._constant_ids: dict[tuple[str, str], str | None] = {}
        self.user_by_worker_name: dict[str, str] = {}
        self.user_by_worker_id: dict[str, str] = {}
        self._child_index: dict[tuple[str, str, str, str], dict[str, list[str]]] = {}
        self._notes: dict[tuple[str, str], list[Any]] = {}  # (object, column) -> [notes so far, the first note]

    # ------------------------------------------------------------------ helpers
    def bind(self, transform: dict[str, Any]) -> dict[str, Any]:
        """A stored spec with the playbook's defaults (phone region, time zone) where it declares none."""
        return transforms.bind(
            transform, region=self.playbook.raw.get("default_phone_region"), tz=self.playbook.default_timezone
        )

    def apply_transform(self, obj: str, rule: FieldRule, raw: dict[str, Any], warnings: list[str]) -> Any:
        """The rule's transform on the staged row (multi-column specs read the whole row); notes become warnings."""
        try:
            result = transforms.convert(rule.transform, raw.get(rule.source_field), row=raw)
        except transforms.TransformError as exc:
            raise BuildError("BAD_VALUE", f"column {rule.source_field!r}: {exc}") from exc
        for note in result.notes:
            warnings.append(f"column {rule.source_field!r}: {note}")
            tally = self._notes.setdefault((obj, rule.source_field), [0, note])
            tally[0] += 1
        return result.value

    def transform_notes(self) -> list[str]:
        """One line per source column whose values were converted with a note, for the run's warnings."""
        return [
            f"{obj} column {column!r}: {count} value(s) converted with a note, e.g. {first}"
            for (obj, column), (count, first) in sorted(self._notes.items())
        ]

    def member_values(self, obj: str, group: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Role values of each member of a merged group, as :func:`transforms.aggregate_value` reads them."""
        roles = self.playbook.obj(obj).roles
        return [{role: self.role_value(obj, role, m) or "" for role in roles} for m in group]

    def key(self, part: Part, source_id: str) -> str:
        return destination_key(self.playbook, part.obj, source_id, part.name)

    def role_value(self, obj: str, role: str, raw: dict[str, Any]) -> str | None:
        column = self.role_columns.get(obj, {}).get(role)
        if column is None:
            return None
        value = raw.get(column)
        return None if value is None or not str(value).strip() else str(value).strip()

    def _staged(self, obj: str) -> dict[str, dict[str, Any]]:
        if obj not in self._staged_cache:
            self._staged_cache[obj] = dict(self.project.iter_staged(obj))
        return self._staged_cache[obj]

    def _constant(self, entity: str, flt: str) -> str | None:
        cache_key = (entity, flt)
        if cache_key not in self._constant_ids:
            self._constant_ids[cache_key] = self.client.lookup_id(entity, flt)
        return self._constant_ids[cache_key]

    def entity_set(self, logical: str) -> str:
        return self.client.entity(logical).entity_set

    # ------------------------------------------------------------------ build
    def build(
        self,
        part: Part,
        source_id: str,
        raw: dict[str, Any],
        meta: EntityMeta,
        group: list[dict[str, Any]] | None = None,
    ) -> Payload:
        obj = part.obj
        if group is None:
            for rule in part.skip_when:
                if self._matches(obj, {rule["role"]: rule["in"]}, raw):
                    raise Skip(rule.get("reason", f"{rule['role']} is {raw.get(rule['role'])!r}"), "SOURCE_STATE")
        payload = Payload(key=self.key(part, source_id), body={})
        body = payload.body
        for rule in self.rules.get((obj, part.entity), []):
            self._apply_rule(part, rule, raw, meta, payload)
        for column, value in part.constants.items():
            body.setdefault(column, value)
        for column, spec in part.derived.items():
            self._derive(part, column, spec, source_id, raw, body, payload)
        if group is not None:
            members = self.member_values(obj, group)
            for column, spec in part.aggregate.items():
                text = transforms.aggregate_value(spec, members)  # the merge the editor previews
                if text is None:
                    continue
                attr = meta.attributes.get(column)
                if attr and attr.max_length and len(text) > attr.max_length:
                    raise BuildError("TOO_LONG", f"{column} is {len(text)} characters; the limit is {attr.max_length}")
                body[column] = text
        for lookup in part.lookups:
            self._bind_lookup(part, lookup, raw, meta, payload)
        for const in part.constant_lookups:
            dest = self._constant(const["entity"], const["filter"])
            if dest is None:
                raise BuildError(
                    "MISSING_REFERENCE", f"no {const['entity']} matches {const['filter']} at the destination"
                )
            nav = meta.nav_property(const["column"], const["entity"])
            payload.binds[nav] = (const["column"], dest)
        if part.owner:
            names = self.role_value(obj, part.owner["by_role"], raw) or ""
            owner = self.fallback_owner
            if part.owner.get("via"):  # the first matched user among child rows (assignments of a job)
                candidates = self._children(part.owner["via"], names)
            else:
                candidates = [n.strip().lower() for n in names.replace(";", ",").split(",") if n.strip()]
            users = self.user_by_worker_name
            if part.owner.get("match") == "id":  # candidates are lower-cased; 18-char Salesforce ids stay unique
                users = {k.lower(): v for k, v in self.user_by_worker_id.items()}
            elif part.owner.get("match") == "id_or_name":  # a code column that sometimes holds the name instead
                users = {**self.user_by_worker_name, **{k.lower(): v for k, v in self.user_by_worker_id.items()}}
            for name in candidates:
                if name in users:
                    owner = users[name]
                    break
            payload.binds["ownerid"] = ("ownerid", owner)
        if part.user_lookup:
            user = self.user_by_worker_id.get(source_id)
            if user:
                nav = meta.nav_property(part.user_lookup["column"], "systemuser")
                payload.binds[nav] = (part.user_lookup["column"], user)
        body[self.playbook.key_column] = payload.key
        for nav, (_column, dest) in payload.binds.items():
            target_entity = _bind_target(meta, nav)
            body[f"{nav}@odata.bind"] = f"/{self.entity_set(target_entity)}({dest})" if dest else None
        return payload

    def _apply_rule(self, part: Part, rule: FieldRule, raw: dict[str, Any], meta: EntityMeta, payload: Payload) -> None:
        attr = meta.attributes.get(rule.target_field)
        if attr is None:
            raise BuildError(
                "MISSING_COLUMN",
                f"{part.entity}.{rule.target_field} does not exist at the destination;"
                " run `crmmigrator schema PROJECT apply`",
            )
        value = self.apply_transform(part.obj, rule, raw, payload.warnings)
        if value is None:
            return
        if attr.type in ("Picklist", "Status", "State"):
            mapping = self.value_maps.get((part.obj, rule.source_field, part.entity, rule.target_field), {})
            entry = mapped_value(mapping, raw.get(rule.source_field), value)
            if entry == (None, None):
                return  # decided: leave the column empty
            option = resolve_option(attr.options, *entry) if entry else None  # the stored integer, checked
            if option is None:
                payload.warnings.append(f"{rule.source_field}={value!r} has no mapped option; left empty")
                return
            if attr.type == "Status":
                state = attr.option_states.get(option, 0)
                if state != 0:
                    payload.post_state = {"statecode": state, "statuscode": option}
                    return
            payload.body[rule.target_field] = option
            return
        if isinstance(value, str) and attr.max_length and len(value) > attr.max_length:
            raise BuildError(
                "TOO_LONG",
                f"column {rule.source_field!r} is {len(value)} characters; "
                f"{part.entity}.{rule.target_field} holds {attr.max_length}",
            )
        if attr.type in ("Money", "Decimal") and not isinstance(value, Decimal):
            try:
                value = transforms.parse_money(str(value))
            except transforms.TransformError as exc:
                raise BuildError("BAD_VALUE", f"column {rule.source_field!r}: {exc}") from exc
        if attr.type == "String" and not isinstance(value, str):
            value = transforms.to_json_value(value)
            value = str(value)
        behavior = "DateOnly" if attr.date_behavior == "DateOnly" else ("DateTime" if attr.type == "DateTime" else None)
        payload.body[rule.target_field] = transforms.to_json_value(value, behavior)

    def _derive(
        self,
        part: Part,
        column: str,
        spec: dict[str, Any],
        source_id: str,
        raw: dict[str, Any],
        body: dict[str, Any],
        payload: Payload,
    ) -> None:
        obj = self.playbook.obj(part.obj)
        values = {role: self.role_value(part.obj, role, raw) or "" for role in obj.roles}
        if spec.get("key"):
            body.setdefault(column, payload.key)
        elif "from" in spec:
            text = self._from_parents(part, spec, raw)
            if text and not body.get(column):
                attr = self.client.entity(part.entity).attributes.get(column)
                if attr is not None and attr.type == "DateTime" and attr.date_behavior == "DateOnly":
                    text = text[:10]  # an ISO date-time from the parent into a date-only column
                body[column] = text[: attr.max_length] if attr and attr.max_length else text
        elif "template" in spec:
            if not body.get(column):
                body[column] = " ".join(spec["template"].format(**values).split()).strip(" –-") or source_id
        elif "fallback_concat" in spec and not body.get(column):
            joined = " ".join(values[r] for r in spec["fallback_concat"] if values.get(r)).strip()
            body[column] = joined or spec.get("fallback_text", source_id)

    def _matches(self, obj: str, when: dict[str, list[str]] | None, raw: dict[str, Any]) -> bool:
        """All conditions hold: the role's value (case-insensitive) is one of the listed values."""
        for role, allowed in (when or {}).items():
            value = (self.role_value(obj, role, raw) or "").lower()
            if value not in {str(a).lower() for a in allowed}:
                return False
        return True

    def _from_parents(self, part: Part, spec: dict[str, Any], raw: dict[str, Any]) -> str | None:
        """A value taken from the staged record(s) this one references (``{"from": {"by_role", "object"},
        "template": "{name}", "many": false}``); ``many`` reads a comma-separated list of ids."""
        source = spec["from"]
        value = self.role_value(part.obj, source["by_role"], raw)
        if not value:
            return None
        ids = [v.strip() for v in value.split(",") if v.strip()] if spec.get("many") else [value]
        texts = []
        for ident in ids:
            parent = self._staged(source["object"]).get(ident)
            if parent is None:
                continue
            names = {
                role: self.role_value(source["object"], role, parent) or ""
                for role in self.playbook.obj(source["object"]).roles
            }
            text = " ".join(spec.get("template", "{" + source.get("role", "name") + "}").format(**names).split())
            text = re.sub(r"(\s*,)+", ",", text.replace(" ,", ",")).strip(" ,–-")  # empty parts leave no ", ,"
            if text:
                texts.append(text)
        return ", ".join(texts) or None

    def _children(self, via: dict[str, Any], key: str) -> list[str]:
        """Values of ``via.role`` on the staged rows of ``via.object`` whose ``via.key_role`` is ``key``,
        ordered by ``via.order_by`` (then staging order); the index is built once per load."""
        index_key = (via["object"], via["key_role"], via["role"], via.get("order_by", ""))
        if index_key not in self._child_index:
            rows: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
            for position, (_sid, child) in enumerate(self._staged(via["object"]).items()):
                parent = self.role_value(via["object"], via["key_role"], child)
                value = self.role_value(via["object"], via["role"], child)
                if parent and value:
                    order = self.role_value(via["object"], via["order_by"], child) if via.get("order_by") else ""
                    rows[parent].append((order or "", position, value.lower()))
            self._child_index[index_key] = {p: [v for _o, _p, v in sorted(items)] for p, items in rows.items()}
        return self._child_index[index_key].get(key, [])

    def resolve_parent(self, part: Part, lookup: dict[str, Any], raw: dict[str, Any]) -> tuple[Part, str, str] | None:
        """(parent part, parent key, parent destination id) for a playbook lookup, shared by every destination.

        Returns None for an optional lookup with no value or no loaded parent; raises ``Skip`` otherwise.
        """
        value = self.role_value(part.obj, lookup["by_role"], raw)
        through = lookup.get("through")
        if value and through:
            parent = self._staged(through["object"]).get(value)
            value = self.role_value(through["object"], through["role"], parent) if parent else None
        if not value:
            if lookup.get("optional"):
                return None
            raise Skip(f"no {lookup['by_role'].replace('_', ' ')} value for the {lookup['column']} lookup")
        target_part = self.playbook.part(lookup["to"])
        key = destination_key(self.playbook, target_part.obj, value, target_part.name)
        dest = self.xref.get((target_part.entity, key))
        if dest is None:
            if lookup.get("optional"):
                return None
            raise Skip(f"parent {target_part.obj} {value!r} is not loaded (lookup {lookup['column']})")
        return target_part, key, dest

    def _bind_lookup(
        self, part: Part, lookup: dict[str, Any], raw: dict[str, Any], meta: EntityMeta, payload: Payload
    ) -> None:
        resolved = self.resolve_parent(part, lookup, raw)
        if resolved is None:
            return
        target_part, _key, dest = resolved
        nav = meta.nav_property(lookup["column"], target_part.entity)
        payload.binds[nav] = (lookup["column"], dest)


def _bind_target(meta: EntityMeta, nav: str) -> str:
    if nav == "ownerid":
        return "systemuser"
    for (_column, target), name in meta.navigation.items():
        if name == nav:
            return target
    raise KeyError(nav)
