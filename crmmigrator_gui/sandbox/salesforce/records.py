"""Record rules: validation, defaults, system fields, external-id references, upsert and the recycle bin.

Every write path (REST, Collections, composite, Bulk CSV, seeding) goes through :class:`Records`, so a row
is validated the same way whichever door it came in by and each endpoint only chooses how to render the
:class:`~.errors.SFError` (reference §8.1). Error codes and messages follow reference §2.4/§8.3.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import ids
from . import values as V
from .catalog import AUDIT_FIELDS, Field, SObject
from .errors import MultipleMatches, SFError, bad
from .store import col, loads, table

if TYPE_CHECKING:
    from .app import SalesforceSandbox

_SYSTEM = {"Id", "IsDeleted", "SystemModstamp", *AUDIT_FIELDS}


class Records:
    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb
        self.catalog = sb.catalog
        self.store = sb.store

    # -- reads ----------------------------------------------------------------------------------------------

    def load(self, obj: SObject, rid: str, *, allow_deleted: bool = False) -> dict[str, Any]:
        canonical = ids.to18(rid)
        hit = self.store.get(obj, canonical) if canonical and canonical[:3] == obj.key_prefix else None
        if hit is None:
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        row, deleted = hit
        if deleted and not allow_deleted:
            raise SFError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return row

    def format(self, obj: SObject, row: dict[str, Any], version: str, fields: list[str] | None = None) -> dict:
        url = f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"
        out: dict[str, Any] = {"attributes": {"type": obj.name, "url": url}}
        if fields:
            chosen = []
            for name in fields:
                f = self.catalog.lookup(obj, name.strip())
                if f is None:
                    raise bad("INVALID_FIELD", f"No such column '{name.strip()}' on sobject of type {obj.name}")
                chosen.append(f)
        else:
            chosen = [f for f in obj.fields.values() if self.catalog.visible(obj, f)]
        for f in chosen:
            out[f.name] = V.output(f, row.get(f.name), url)
        return out

    # -- input ----------------------------------------------------------------------------------------------

    def prepare(self, obj: SObject, body: dict[str, Any], *, insert: bool, csv: bool = False) -> dict[str, Any]:
        """Map a request body onto canonical field names, coercing values and resolving ext-ID references."""
        out: dict[str, Any] = {}
        denied: list[str] = []
        for key, value in body.items():
            if key == "attributes":
                continue
            f = self.catalog.lookup(obj, key)
            if f is None:
                rel = obj.relationship(key)
                if rel is not None and isinstance(value, dict) and self.catalog.visible(obj, rel):
                    if not (self.catalog.createable(obj, rel) if insert else self.catalog.updateable(obj, rel)):
                        denied.append(rel.name)
                        continue
                    out[rel.name] = self.resolve_foreign(obj, rel, value)
                    continue
                if key.lower() == "id" and insert:
                    raise bad("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
                raise bad("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])
            if f.name == "Id":
                if insert:
                    raise bad("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
                continue
            writable = self.catalog.createable(obj, f) if insert else self.catalog.updateable(obj, f)
            if not writable:
                denied.append(f.name)
                continue
            value = V.coerce(f, value, csv=csv)
            if value is V.SKIP:
                continue
            if f.type == "reference" and value is not None:
                value = self.check_reference(obj, f, value)
            out[f.name] = value
        if denied:
            raise bad(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(denied)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                denied,
            )
        return out

    def check_reference(self, obj: SObject, f: Field, value: str) -> str:
        rid = ids.to18(value)
        if rid is None:
            raise bad("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
        target = self.catalog.object_for_id(rid)
        if target is None or target.name not in f.reference_to:
            raise bad("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [f.name])
        hit = self.store.get(target, rid)
        if hit is None:
            raise bad("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if hit[1]:
            raise bad("ENTITY_IS_DELETED", "entity is deleted", [f.name])
        if f.name == "OwnerId" and target.name == "User" and hit[0].get("IsActive") is False:
            raise bad(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{rid}] as owner of {obj.label.lower()}",
                [f.name],
            )
        return rid

    def resolve_foreign(self, obj: SObject, rel: Field, ref: dict[str, Any]) -> str:
        """``{"Account": {"Ext__c": "X"}}`` -> the parent's id (reference §2.4, foreign keys by external ID)."""
        keys = [k for k in ref if k != "attributes"]
        type_name = (ref.get("attributes") or {}).get("type") if isinstance(ref.get("attributes"), dict) else None
        if len(rel.reference_to) > 1 and not type_name:
            raise bad("INVALID_FIELD", f"Polymorphic reference {rel.relationship} requires attributes.type", [rel.name])
        parent = self.catalog.get(type_name or rel.reference_to[0])
        if parent is None or parent.name not in rel.reference_to or len(keys) != 1:
            raise bad("INVALID_FIELD", f"Invalid foreign key reference for field {rel.relationship}", [rel.name])
        ext = self.catalog.lookup(parent, keys[0])
        if ext is None or not (ext.external_id or ext.id_lookup):
            raise bad(
                "INVALID_FIELD",
                f"Field name provided, {keys[0]} is not an External ID or indexed field for {parent.name}",
                [rel.name],
            )
        value = ref[keys[0]]
        if ext.name == "Id":
            rid = ids.to18(value)
            hits = [(rid, {})] if rid and self.store.get(parent, rid) else []
        else:
            hits = self.store.find(parent, ext, V.coerce(ext, value) if value is not None else None)
        if not hits:
            raise bad(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {ext.name} in entity {parent.name}",
                [rel.name],
            )
        if len(hits) > 1:
            raise bad(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} matched more than one record for field {ext.name} "
                f"in entity {parent.name}",
                [rel.name],
            )
        return hits[0][0]

    # -- writes ---------------------------------------------------------------------------------------------

    def create(
        self, obj: SObject, body: dict[str, Any], *, csv: bool = False, system: dict[str, Any] | None = None
    ) -> str:
        if not obj.createable:
            raise bad("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support insert")
        with self.store.transaction():
            values = self.prepare(obj, body, insert=True, csv=csv)
            return self.insert_values(obj, values, system)

    def insert_values(self, obj: SObject, values: dict[str, Any], system: dict[str, Any] | None = None) -> str:
        hook = self.sb.hooks.get(obj.name)
        if hook is not None:
            values = hook.before_insert(values)
        missing = []
        for f in obj.fields.values():
            if f.name in values or f.name in _SYSTEM:
                continue
            if f.auto_number:
                values[f.name] = self._auto_number(obj, f)
            elif f.name == "OwnerId":
                values[f.name] = self.sb.current_user()
            elif f.default is not None:
                values[f.name] = f.default
            elif f.type == "boolean":
                values[f.name] = False
        for f in obj.fields.values():
            if f.createable and not f.nillable and not f.defaulted and values.get(f.name) is None:
                if f.name not in _SYSTEM and f.name != "OwnerId":
                    missing.append(f.name)
        if missing:
            raise bad("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        rid = ids.make_id(obj.key_prefix, self.store.next_counter())
        stamp = V.now()
        user = self.sb.current_user()
        row = {"Id": rid, "IsDeleted": False, **values}
        row.setdefault("CreatedDate", stamp)
        row.setdefault("CreatedById", user)
        row.setdefault("LastModifiedDate", row["CreatedDate"] if "CreatedDate" in values else stamp)
        row.setdefault("LastModifiedById", row["CreatedById"])
        row["SystemModstamp"] = stamp
        row.update(system or {})
        self._derive(obj, row)
        self._check_unique(obj, row, rid)
        self.store.insert(obj, rid, row)
        if hook is not None:
            hook.after_insert(rid, row)
        return rid

    def update(self, obj: SObject, rid: str, body: dict[str, Any], *, csv: bool = False) -> str:
        with self.store.transaction():
            row = self.load(obj, rid)
            values = self.prepare(obj, body, insert=False, csv=csv)
            return self.update_values(obj, row, values)

    def update_values(self, obj: SObject, row: dict[str, Any], values: dict[str, Any]) -> str:
        if not obj.updateable:
            raise bad("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support update")
        nulled = [n for n, v in values.items() if v is None and not obj.fields[n].nillable]
        if nulled:
            raise bad("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(nulled)}]", nulled)
        row.update(values)
        stamp = V.now()
        row.update(LastModifiedDate=stamp, LastModifiedById=self.sb.current_user(), SystemModstamp=stamp)
        self._derive(obj, row)
        self._check_unique(obj, row, row["Id"], changed=set(values))
        self.store.update(obj, row["Id"], row)
        self._changed(obj)
        return row["Id"]

    def upsert(
        self, obj: SObject, ext_name: str, ext_value: Any, body: dict[str, Any], *, csv: bool = False
    ) -> tuple[bool, str]:
        """Insert or update by external id; raises MultipleMatches when several rows match."""
        ext = self.ext_field(obj, ext_name)
        with self.store.transaction():
            body = {k: v for k, v in body.items() if k.lower() != ext.name.lower() or ext.name == "Id"}
            if ext.name == "Id":
                if ext_value in (None, ""):
                    return True, self.create(obj, {k: v for k, v in body.items() if k.lower() != "id"}, csv=csv)
                body = {k: v for k, v in body.items() if k.lower() != "id"}
                return False, self.update(obj, ext_value, body, csv=csv)
            value = V.coerce(ext, ext_value)
            hits = self.store.find(obj, ext, value, limit=10)
            if len(hits) > 1:
                raise MultipleMatches([h[0] for h in hits])
            if hits:
                values = self.prepare(obj, body, insert=False, csv=csv)
                return False, self.update_values(obj, hits[0][1], values)
            if not self.catalog.createable(obj, ext):
                raise bad("INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {ext.name}.", [ext.name])
            values = self.prepare(obj, body, insert=True, csv=csv)
            values[ext.name] = value
            return True, self.insert_values(obj, values)

    def ext_field(self, obj: SObject, name: str) -> Field:
        f = self.catalog.lookup(obj, name)
        if f is None or not (f.external_id or f.id_lookup):
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        return f

    def delete(self, obj: SObject, rid: str, *, hard: bool = False) -> str:
        if not obj.deletable:
            raise bad("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
        with self.store.transaction():
            row = self.load(obj, rid, allow_deleted=hard)
            self._delete_row(obj, row, hard)
            return row["Id"]

    def _delete_row(self, obj: SObject, row: dict[str, Any], hard: bool) -> None:
        for child in self.catalog.objects.values():
            for f in child.fields.values():
                if f.cascade and obj.name in f.reference_to:
                    for cid in self.store.children(child, f, row["Id"]):
                        hit = self.store.get(child, cid)
                        if hit:
                            self._delete_row(child, hit[0], hard)
        if hard:
            self.store.purge(obj, row["Id"])
        else:
            stamp = V.now()
            row.update(IsDeleted=True, SystemModstamp=stamp, _DeletedDate=stamp)
            self.store.update(obj, row["Id"], row, deleted=True)
        self._changed(obj)

    def _changed(self, obj: SObject) -> None:
        hook = self.sb.hooks.get(obj.name)
        if hook is not None and hasattr(hook, "after_change"):
            hook.after_change()

    # -- helpers --------------------------------------------------------------------------------------------

    def _auto_number(self, obj: SObject, f: Field) -> str:
        key = f"auto:{obj.name}.{f.name}"
        number = int(self.store.get_value(key) or 0) + 1
        self.store.set_value(key, str(number))
        fmt = f.auto_number or "{0}"
        return re.sub(r"\{(0+)\}", lambda m: str(number).zfill(len(m.group(1))), fmt)

    def _derive(self, obj: SObject, row: dict[str, Any]) -> None:
        for f in obj.fields.values():
            spec = f.formula
            if not spec:
                continue
            if "concat" in spec:
                row[f.name] = " ".join(str(row[p]) for p in spec["concat"] if row.get(p)) or None
            elif "in" in spec:
                source, members = spec["in"]
                row[f.name] = row.get(source) in members

    def _check_unique(self, obj: SObject, row: dict[str, Any], rid: str, changed: set[str] | None = None) -> None:
        for f in obj.fields.values():
            if not f.unique or row.get(f.name) is None or (changed is not None and f.name not in changed):
                continue
            for other, _ in self.store.find(obj, f, row[f.name], limit=2):
                if other != rid:
                    raise bad(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {f.name} duplicates value on record with id: {other}",
                        [],
                    )

    def iter_rows(self, obj: SObject, where: str = "1=1", params: tuple = ()) -> list[dict[str, Any]]:
        rows = self.store.execute(f"SELECT data FROM {table(obj)} WHERE {where} ORDER BY seq", params)
        return [loads(r[0]) for r in rows]

    def find_one(self, obj: SObject, field: str, value: Any) -> dict[str, Any] | None:
        rows = self.store.execute(
            f"SELECT data FROM {table(obj)} WHERE deleted=0 AND {col(field)}=? ORDER BY seq LIMIT 1", (value,)
        )
        return loads(rows[0][0]) if rows else None
