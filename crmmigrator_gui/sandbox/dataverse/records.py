"""Row semantics: payload validation, create / update / upsert / delete, key addressing, row output.

This is where the sandbox enforces what the platform enforces (and only that): unknown properties, lengths,
option values, state/status pairs, SystemRequired columns, lookups that must resolve through declared
navigation properties, and alternate-key uniqueness. ApplicationRequired columns are *not* enforced, exactly
like the real API. Non-writable columns are silently dropped.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from . import errors as E
from .catalog import Attribute, Entity
from .errors import DataverseError, bad_request
from .odata import GUID_RE, normalize_datetime, parse_key_segment

if TYPE_CHECKING:
    from .app import DataverseSandbox

_ISO_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EDM_TYPES = {  # attribute type -> OData primitive type (also used by $metadata)
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Integer": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Decimal": "Edm.Decimal",
    "Money": "Edm.Decimal",
    "Double": "Edm.Double",
    "Boolean": "Edm.Boolean",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Uniqueidentifier": "Edm.Guid",
    "DateTime": "Edm.DateTimeOffset",
    "EntityName": "Edm.String",
}
_URL_PREFIX = re.compile(r"^(?:https?://[^/]+)?/?(?:api/data/v9\.\d/)?")
CHILDREN = "@children"  # transient row key: inline collection items, written after the row itself
_STATE_COLUMNS = frozenset({"statecode", "statuscode"})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(row: dict[str, Any]) -> str:
    return f'W/"{row.get("versionnumber", 0)}"'


def _convert_error(value: Any, attr: Attribute) -> DataverseError:
    edm = (
        "Edm.Date"
        if attr.type == "DateTime" and attr.behavior == "DateOnly"
        else EDM_TYPES.get(attr.type, "Edm.String")
    )
    return bad_request(f"Cannot convert the literal '{value}' to the expected type '{edm}'.")


def _out_of_range(value: Any, attr: Attribute, ent: Entity) -> DataverseError:
    return bad_request(
        f"A validation error occurred. The value {value} of '{attr.name}' on record of type "
        f"'{ent.name}' is outside the valid range.",
        E.OUT_OF_RANGE,
    )


class Records:
    """Row operations bound to one sandbox (catalog, store, identity, options)."""

    def __init__(self, sandbox: DataverseSandbox):
        self.sb = sandbox
        self.store = sandbox.store
        self.catalog = sandbox.catalog

    # -- value validation ------------------------------------------------------------------------------------

    def check_value(self, ent: Entity, attr: Attribute, v: Any) -> Any:
        t = attr.type
        if v is None:
            if attr.required == "SystemRequired":
                raise self.required_error(ent, attr)
            return None
        if t in ("String", "Memo"):
            if not isinstance(v, str):
                raise _convert_error(v, attr)
            if attr.max_length is not None and len(v) > attr.max_length:
                raise bad_request(
                    f"The length of the '{attr.name}' attribute of the '{ent.name}' entity exceeded "
                    f"the maximum allowed length of '{attr.max_length}'.",
                    E.MAX_LENGTH,
                )
            return v
        if t in ("Integer", "BigInt", "Picklist", "State", "Status"):
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float | Decimal) and v == int(v) and t in ("Integer", "BigInt"):
                    v = int(v)
                else:
                    raise _convert_error(v, attr)
            if t in ("Picklist", "State", "Status"):
                if v not in attr.options:
                    raise _out_of_range(v, attr, ent)
            elif (attr.min is not None and v < attr.min) or (attr.max is not None and v > attr.max):
                raise _out_of_range(v, attr, ent)
            return v
        if t in ("Money", "Decimal", "Double"):
            if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
                raise _convert_error(v, attr)
            if (attr.min is not None and v < attr.min) or (attr.max is not None and v > attr.max):
                raise _out_of_range(v, attr, ent)
            if isinstance(v, Decimal):
                if attr.precision is not None:
                    try:
                        v = v.quantize(Decimal(1).scaleb(-attr.precision), ROUND_HALF_EVEN)
                    except InvalidOperation as exc:
                        raise _out_of_range(v, attr, ent) from exc
                return int(v) if v == v.to_integral_value() else float(v)
            return v
        if t == "Boolean":
            if not isinstance(v, bool):
                raise _convert_error(v, attr)
            return v
        if t == "DateTime":
            return self._check_datetime(ent, attr, v)
        if t == "Uniqueidentifier":
            if not isinstance(v, str) or not GUID_RE.match(v):
                raise _convert_error(v, attr)
            return v.lower()
        return v

    def _check_datetime(self, ent: Entity, attr: Attribute, v: Any) -> str:
        if not isinstance(v, str):
            raise _convert_error(v, attr)
        if attr.behavior == "DateOnly":
            if not _ISO_DATE.match(v):
                raise _convert_error(v, attr)
            out = v
        else:
            if _ISO_DATE.match(v):
                v = v + "T00:00:00Z"
            if not _ISO_DT.match(v):
                if re.match(r"^\d{4}-\d{2}-\d{2}T[\d:.]+$", v):
                    raise bad_request(
                        f"The time zone information is missing on the DateTimeOffset value '{v}'. "
                        "A DateTimeOffset value must contain the time zone information."
                    )
                raise _convert_error(v, attr)
            try:
                out = normalize_datetime(v)
            except ValueError as exc:
                raise _convert_error(v, attr) from exc
        if out < "1753-01-01":
            raise bad_request(
                f"The date-time format for {attr.name} is invalid, or value is outside the supported range.",
                E.OUT_OF_RANGE,
            )
        return out

    def required_error(self, ent: Entity, attr: Attribute) -> DataverseError:
        return bad_request(
            f"Attribute '{attr.name}' cannot be NULL: it is required (SystemRequired) on "
            f"entity '{ent.name}'.",
            E.REQUIRED_MISSING,
        )

    # -- payload -> column values ----------------------------------------------------------------------------

    def coerce(
        self, ent: Entity, body: dict[str, Any], creating: bool, refs: dict[str, str] | None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.", E.PAYLOAD_PARSE)
        values: dict[str, Any] = {}
        attrs = ent.attrs
        for key, v in body.items():
            if key[0] == "@":
                continue
            if "@" in key:
                prop, ann = key.split("@", 1)
                if ann != "odata.bind":
                    continue
                nav = ent.navs.get(prop)
                if nav is None:
                    raise E.undeclared_nav(prop)
                attr, targets = nav
                if not (attr.create if creating else attr.update):
                    continue
                if v is None:
                    if attr.required == "SystemRequired":
                        raise self.required_error(ent, attr)
                    values[attr.name] = None
                    values[attr.name + "@t"] = None
                else:
                    values[attr.name], values[attr.name + "@t"] = self.resolve_bind(
                        v, attr, targets, prop, refs
                    )
                continue
            attr = attrs.get(key)
            if attr is None and key in ent.collections:
                if not isinstance(v, list):
                    raise bad_request(
                        f"The value of the collection navigation property '{key}' must be a JSON array.",
                        E.PAYLOAD_PARSE,
                    )
                values.setdefault(CHILDREN, []).append((key, v))
                continue
            if attr is None:
                if key in ent.navs and v is None:
                    nattr = ent.navs[key][0]
                    if not (nattr.create if creating else nattr.update):
                        continue
                    if nattr.required == "SystemRequired":
                        raise self.required_error(ent, nattr)
                    values[nattr.name] = values[nattr.name + "@t"] = None
                    continue
                if key in ent.navs and isinstance(v, dict | list):
                    raise bad_request(
                        "Deep insert is not supported by the CRM Migrator sandbox; create the "
                        "related row first and bind it with @odata.bind."
                    )
                raise E.invalid_property(key, ent.name)
            if attr.is_lookup:
                if v is None:
                    if not (attr.create if creating else attr.update):
                        continue
                    if attr.required == "SystemRequired":
                        raise self.required_error(ent, attr)
                    values[attr.name] = values[attr.name + "@t"] = None
                    continue
                raise E.invalid_property(key, ent.name)
            if not (attr.create if creating else attr.update):
                continue
            values[key] = self.check_value(ent, attr, v)
        return values

    def resolve_bind(
        self, value: Any, attr: Attribute, targets: list[str], nav: str, refs: dict[str, str] | None
    ) -> tuple[str, str]:
        """Resolve a bind URL to (row id, target logical name)."""
        if not isinstance(value, str):
            raise bad_request(f"The value of '{nav}@odata.bind' must be a URL string.", E.PAYLOAD_PARSE)
        ref = value.strip()
        if ref.startswith("$"):
            resolved = (refs or {}).get(ref[1:])
            if resolved is None:
                raise bad_request(
                    f"Content-ID Reference: '{ref}' does not exist in the batch context.", E.BATCH_INVALID
                )
            ref = resolved
        path = _URL_PREFIX.sub("", ref, count=1)
        m = re.match(r"^([A-Za-z_][\w]*)\((.*)\)$", path)
        if not m:
            raise bad_request(
                f"The value '{value}' of '{nav}@odata.bind' is not a valid entity reference URL.",
                E.PAYLOAD_PARSE,
            )
        tent = self.catalog.by_set.get(m.group(1))
        if tent is None:
            raise E.segment_not_found(m.group(1))
        if tent.name not in targets:
            raise bad_request(
                f"A reference to '{tent.name}' cannot be bound to the navigation property '{nav}' "
                f"whose target is '{'/'.join(targets)}'.",
                E.PAYLOAD_PARSE,
            )
        rid, _ = self.resolve(tent, m.group(2))
        if rid is None:
            raise E.not_found(tent.name, m.group(2))
        if tent.name == "systemuser" and attr.type == "Owner" and self.sb.reject_disabled_owner:
            row = self.store.get(tent, rid)
            if row and row.get("isdisabled"):
                raise bad_request(
                    f"The specified user (Id = {rid}) is disabled. Consider enabling this user.",
                    E.DISABLED_OWNER,
                )
        return rid, tent.name

    # -- addressing ------------------------------------------------------------------------------------------

    def resolve(self, ent: Entity, segment: str) -> tuple[str | None, dict[str, Any] | None]:
        """Key segment -> (row id or None, key column values or None for a primary-key address)."""
        kind, val = parse_key_segment(segment)
        if kind == "id":
            return (val if self.store.exists(ent, val) else None), None
        if len(val) == 1 and ent.pk in val:
            if ent.rules.get("NoAlternateKeyAddressing"):
                raise E.invalid_key(ent.name)
            rid = str(val[ent.pk]).lower()
            if not GUID_RE.match(rid):
                raise E.invalid_key(ent.name)
            return (rid if self.store.exists(ent, rid) else None), None
        if ent.rules.get("NoAlternateKeyAddressing"):
            raise E.invalid_key(ent.name)
        names = {re.sub(r"^_(.*)_value$", r"\1", k): v for k, v in val.items()}
        self.sb.metadata.refresh_keys(ent)
        for key in ent.keys:
            if set(key["KeyAttributes"]) == set(names) and key["EntityKeyIndexStatus"] == "Active":
                attrs = [ent.attrs[n] for n in key["KeyAttributes"]]
                values = [names[n] for n in key["KeyAttributes"]]
                hit = self.store.find_by_key(ent, attrs, values)
                key_values = {
                    a.name: (self.check_value(ent, a, v) if not a.is_lookup else v)
                    for a, v in zip(attrs, values, strict=True)
                }
                return (hit[0] if hit else None), key_values
        raise E.invalid_key(ent.name)

    # -- writes ----------------------------------------------------------------------------------------------

    def build_new(
        self,
        ent: Entity,
        body: dict[str, Any],
        refs: dict[str, str] | None = None,
        rid: str | None = None,
        key_values: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Validate a create payload and return (id, stored row) without writing it."""
        values = self.coerce(ent, body, True, refs)
        body_pk = values.pop(ent.pk, None)
        rid = rid or body_pk or str(uuid.uuid4())
        if key_values:
            for name, v in key_values.items():
                values[name] = v
                if ent.attrs[name].is_lookup:
                    values[name + "@t"] = ent.attrs[name].targets[0]
        self._apply_defaults(ent, values)
        self._apply_state(ent, values, None)
        for attr in ent.attrs.values():
            if (
                attr.required == "SystemRequired"
                and attr.create
                and attr.name != ent.pk
                and values.get(attr.name) is None
            ):
                raise self.required_error(ent, attr)
        self._auto_number(ent, values)
        self._line_item(ent, values, None)
        self._computed(ent, values)
        stamp = now_iso()
        if values.get("overriddencreatedon"):
            values["createdon"], values["overriddencreatedon"] = values["overriddencreatedon"], stamp
        else:
            values["createdon"] = stamp
        values["modifiedon"] = stamp
        values["createdby"] = values["modifiedby"] = self.sb.whoami_user_id
        values["createdby@t"] = values["modifiedby@t"] = "systemuser"
        values["versionnumber"] = self.store.next_version()
        return rid, values

    def create(
        self,
        ent: Entity,
        body: dict[str, Any],
        refs: dict[str, str] | None = None,
        rid: str | None = None,
        key_values: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        with self.store.transaction():
            rid, row = self.build_new(ent, body, refs, rid, key_values)
            self.insert(ent, [(rid, row)], refs)
        return rid, row

    def insert(
        self, ent: Entity, rows: list[tuple[str, dict[str, Any]]], refs: dict[str, str] | None = None
    ) -> None:
        """Write rows made by :meth:`build_new`, then their inline children and the parent totals."""
        with self.store.transaction():
            children = [(rid, row.pop(CHILDREN, None)) for rid, row in rows]
            self.store.insert_many(ent, rows)
            for rid, items in children:
                if items:
                    self._write_children(ent, rid, items, refs, replace=False)
            self._after_line_change(ent, [row for _, row in rows])

    def save(
        self,
        ent: Entity,
        rid: str,
        merged: dict[str, Any],
        refs: dict[str, str] | None = None,
        old: dict[str, Any] | None = None,
    ) -> None:
        """Write a row made by :meth:`build_update` (children replace the previous collection)."""
        with self.store.transaction():
            items = merged.pop(CHILDREN, None)
            self.store.update(ent, rid, merged)
            if items:
                self._write_children(ent, rid, items, refs, replace=True)
            self._after_line_change(ent, [merged] + ([old] if old else []))

    def build_update(
        self,
        ent: Entity,
        row: dict[str, Any],
        body: dict[str, Any],
        refs: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        values = self.coerce(ent, body, False, refs)
        for name in drop:
            values.pop(name, None)
            values.pop(name + "@t", None)
        self._check_closed(ent, row, values)
        self._apply_state(ent, values, row)
        self._line_item(ent, values, row)
        merged = {**row, **values}
        self._computed(ent, merged)
        merged["modifiedon"] = now_iso()
        merged["modifiedby"] = self.sb.whoami_user_id
        merged["versionnumber"] = self.store.next_version()
        return merged

    def update(
        self,
        ent: Entity,
        rid: str,
        row: dict[str, Any],
        body: dict[str, Any],
        refs: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        with self.store.transaction():
            merged = self.build_update(ent, row, body, refs, drop)
            self.save(ent, rid, merged, refs, old=row)
        return merged

    def upsert(
        self,
        ent: Entity,
        segment: str,
        body: dict[str, Any],
        if_match: str | None,
        if_none_match: str | None,
        refs: dict[str, str] | None = None,
    ) -> tuple[bool, str, dict[str, Any]]:
        """PATCH semantics of reference §3. Returns (created, id, row)."""
        with self.store.transaction():
            rid, key_values = self.resolve(ent, segment)
            if rid is not None:
                row = self.store.get(ent, rid) or {}
                if if_none_match and if_none_match.strip() == "*":
                    raise DataverseError(
                        412, E.DUPLICATE_PK, "A record with matching key values already exists."
                    )
                if if_match and if_match.strip() != "*" and _etag_value(if_match) != _etag_value(etag(row)):
                    raise DataverseError(
                        412,
                        "0x80060882",
                        "The version of the existing record doesn't match the RowVersion property provided.",
                    )
                drop = tuple(key_values) if key_values else ()
                return False, rid, self.update(ent, rid, row, body, refs, drop)
            if if_match:
                raise E.not_found(ent.name, segment)
            new_id = None if key_values else parse_key_segment(segment)[1]
            if isinstance(new_id, dict):
                new_id = str(new_id.get(ent.pk)).lower()
            rid, row = self.create(ent, body, refs, rid=new_id, key_values=key_values)
            return True, rid, row

    def delete(self, ent: Entity, segment: str) -> None:
        with self.store.transaction():
            rid, _ = self.resolve(ent, segment)
            row = self.store.get(ent, rid) if rid else None
            if rid is None or row is None:
                raise E.not_found(ent.name, segment)
            self._check_line_parent(ent, row)
            self.store.delete(ent, rid)
            self._cascade_delete(ent, rid)
            self._after_line_change(ent, [row])

    def close_incident(self, body: Any, refs: dict[str, str] | None = None) -> None:
        """``CloseIncident``: resolve a case (the only way to reach statecode 1 = Resolved).

        The ``incidentresolution`` activity it creates in Dataverse is validated but not stored.
        """
        ent = self.catalog.entities["incident"]
        resolution = body.get("IncidentResolution") if isinstance(body, dict) else None
        status = body.get("Status") if isinstance(body, dict) else None
        if not isinstance(resolution, dict):
            raise bad_request("The parameter 'IncidentResolution' is required.", E.PAYLOAD_PARSE)
        if isinstance(status, bool) or not isinstance(status, int):
            raise bad_request("The parameter 'Status' is required and must be an integer.", E.PAYLOAD_PARSE)
        ref = resolution.get("incidentid@odata.bind")
        if ref is None:
            raise bad_request(
                "IncidentResolution must bind the case with 'incidentid@odata.bind'.", E.REQUIRED_MISSING
            )
        subject = resolution.get("subject")
        if subject is not None and (not isinstance(subject, str) or len(subject) > 200):
            raise bad_request(
                "The length of the 'subject' attribute of the 'incidentresolution' entity exceeded the "
                "maximum allowed length of '200'.",
                E.MAX_LENGTH,
            )
        attr = Attribute({"LogicalName": "incidentid", "AttributeType": "Lookup", "Targets": ["incident"]})
        with self.store.transaction():
            rid, _ = self.resolve_bind(ref, attr, ["incident"], "incidentid", refs)
            row = self.store.get(ent, rid) or {}
            if ent.attrs["statuscode"].status_state.get(status) != 1:
                raise self._pair_error(ent, status, 1)
            if row.get("statecode") != 0:
                raise bad_request(
                    f"The incident {rid} is not active (statecode {row.get('statecode')}) and cannot be resolved.",
                    E.INVALID_STATE,
                )
            row.update(
                statecode=1,
                statuscode=status,
                modifiedon=now_iso(),
                modifiedby=self.sb.whoami_user_id,
                versionnumber=self.store.next_version(),
            )
            self.store.update(ent, rid, row)

    # -- rules -----------------------------------------------------------------------------------------------

    def _apply_defaults(self, ent: Entity, values: dict[str, Any]) -> None:
        if "ownerid" in ent.attrs and values.get("ownerid") is None:
            values["ownerid"], values["ownerid@t"] = self.sb.whoami_user_id, "systemuser"
        if "owningbusinessunit" in ent.attrs:
            values["owningbusinessunit"], values["owningbusinessunit@t"] = (
                self.sb.business_unit_id,
                "businessunit",
            )
        if (
            "transactioncurrencyid" in ent.attrs
            and values.get("transactioncurrencyid") is None
            and ent.name != "transactioncurrency"
        ):
            values["transactioncurrencyid"] = self.sb.currency_id
            values["transactioncurrencyid@t"] = "transactioncurrency"
        for attr in ent.attrs.values():
            if attr.type == "Boolean" and attr.name not in values:
                values[attr.name] = attr.d.get("DefaultValue", False)

    def _apply_state(self, ent: Entity, values: dict[str, Any], row: dict[str, Any] | None) -> None:
        if ent.state_attr is None:
            return
        if row is None:
            state = ent.rules.get("CreateState", 0)
            if "statecode" in values and ent.state_attr.create:
                state = values["statecode"]
            values["statecode"] = state
            status = values.get("statuscode")
            if status is None:
                values["statuscode"] = ent.default_status(state)
            elif ent.attrs["statuscode"].status_state.get(status) != state:
                raise self._pair_error(ent, status, state)
            return
        if "statecode" not in values and "statuscode" not in values:
            return
        old_state = row.get("statecode", 0)
        state = values.get("statecode", old_state)
        if state is None:
            raise self.required_error(ent, ent.state_attr)
        status = values.get("statuscode")
        if status is None:
            status = ent.default_status(state) if state != old_state else row.get("statuscode")
        if ent.attrs["statuscode"].status_state.get(status) != state:
            raise self._pair_error(ent, status, state)
        refused = ent.rules.get("RefusedPatchStates", {})
        if state != old_state and str(state) in refused:
            label = ent.state_attr.options.get(state, state)
            raise bad_request(
                f"This message can not be used to set the state of {ent.name} to {label}. In order "
                f"to set state of {ent.name} to {label} use the {refused[str(state)]} message "
                "instead.",
                E.INVALID_STATE,
            )
        values["statecode"], values["statuscode"] = state, status

    def _pair_error(self, ent: Entity, status: Any, state: Any) -> DataverseError:
        label = ent.state_attr.options.get(state, state) if ent.state_attr else state
        return bad_request(
            f"{status} is not a valid status code for state code {ent.d['SchemaName']}State."
            f"{label} on {ent.name}.",
            E.INVALID_STATE,
        )

    def _check_closed(self, ent: Entity, row: dict[str, Any], values: dict[str, Any]) -> None:
        """Completed/canceled activities are read-only: only a state change (e.g. reopen) is accepted."""
        closed = ent.rules.get("ReadOnlyStates")
        if not closed or row.get("statecode") not in closed:
            return
        changed = [k for k in values if k not in _STATE_COLUMNS and not k.endswith("@t")]
        if changed:
            label = ent.state_attr.options.get(row.get("statecode")) if ent.state_attr else row.get("statecode")
            raise bad_request(
                f"This {ent.name} is {str(label).lower()} and cannot be modified (attempted to change "
                f"'{changed[0]}'). Closed activities are read-only; reopen it first by setting "
                "statecode 0.",
                E.RECORD_CLOSED,
            )

    def _auto_number(self, ent: Entity, values: dict[str, Any]) -> None:
        for name, pattern in ent.rules.get("AutoNumber", {}).items():
            if values.get(name) is None:
                n = self.store.next_version() % 100000
                values[name] = pattern.format(n=n, r=uuid.uuid4().hex[:6].upper())

    def _line_parent(self, ent: Entity, row: dict[str, Any]) -> tuple[Entity, str | None, dict[str, Any] | None]:
        rule = ent.rules["LineItem"]
        parent_attr = ent.attrs[rule["Parent"]]
        pent = self.catalog.entities[parent_attr.targets[0]]
        pid = row.get(parent_attr.name)
        return pent, pid, (self.store.get(pent, pid) if pid else None)

    def _check_line_parent(self, ent: Entity, row: dict[str, Any]) -> None:
        rule = ent.rules.get("LineItem")
        if not rule:
            return
        pent, pid, prow = self._line_parent(ent, row)
        if prow is None:
            raise E.not_found(pent.name, str(pid))
        state = prow.get("statecode", 0)
        if state not in rule["ParentEditableStates"]:
            label = pent.state_attr.options.get(state, state) if pent.state_attr else state
            editable = "/".join(
                str(pent.state_attr.options.get(s, s)) if pent.state_attr else str(s)
                for s in rule["ParentEditableStates"]
            )
            raise bad_request(
                f"The {pent.name} {pid} is {label} (statecode {state}): its lines can only be added, changed or "
                f"deleted while it is {editable}.",
                E.INVALID_STATE,
            )

    def _line_item(self, ent: Entity, values: dict[str, Any], row: dict[str, Any] | None) -> None:
        """Quote/order/invoice/opportunity line rules of reference §13 plus the calculated amounts."""
        if not ent.rules.get("LineItem"):
            return
        merged = {**(row or {}), **values}
        self._check_line_parent(ent, merged)
        pent, _, prow = self._line_parent(ent, merged)
        assert prow is not None
        if merged.get("isproductoverridden"):
            if merged.get("productid"):
                raise bad_request(
                    f"A write-in {ent.name} (isproductoverridden = true) cannot also reference a catalog product "
                    "(productid).",
                    E.INVALID_STATE,
                )
            for name in ("productdescription", "priceperunit"):
                if merged.get(name) is None:
                    raise bad_request(
                        f"Attribute '{name}' is required for a write-in product (isproductoverridden = true) on "
                        f"entity '{ent.name}'.",
                        E.REQUIRED_MISSING,
                    )
        else:
            for name in ("productid", "uomid"):
                if merged.get(name) is None:
                    raise bad_request(
                        f"Attribute '{name}' is required for an existing (catalog) product on entity "
                        f"'{ent.name}'; for a write-in product set isproductoverridden = true, productdescription "
                        "and priceperunit.",
                        E.REQUIRED_MISSING,
                    )
            price_list = prow.get("pricelevelid")
            if not price_list:
                raise bad_request(
                    f"The {pent.name} has no price list (pricelevelid): catalog products can only be added to a "
                    f"{pent.name} with a price list.",
                    E.INVALID_STATE,
                )
            ppl = self.catalog.entities["productpricelevel"]
            hit = self.store.find_by_key(
                ppl,
                [ppl.attrs["pricelevelid"], ppl.attrs["productid"], ppl.attrs["uomid"]],
                [price_list, merged["productid"], merged["uomid"]],
            )
            if hit is None:
                raise bad_request(
                    f"The product {merged['productid']} with unit {merged['uomid']} is not in the price list "
                    f"{price_list} of the {pent.name} (no productpricelevel row for this product and unit).",
                    E.INVALID_STATE,
                )
            if not merged.get("ispriceoverridden"):
                values["priceperunit"] = merged["priceperunit"] = hit[1].get("amount") or 0
        qty = merged.get("quantity")
        price = _dec(merged.get("priceperunit"))
        base = (price * _dec(qty)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        extended = base - _dec(merged.get("manualdiscountamount")) - _dec(merged.get("volumediscountamount"))
        extended += _dec(merged.get("tax"))
        values["baseamount"] = _num(base)
        values["extendedamount"] = _num(extended)
        values["pricingerrorcode"] = 4 if qty is None else 0

    def _after_line_change(self, ent: Entity, rows: list[dict[str, Any]]) -> None:
        """Recalculate the header totals of every header touched by these line rows."""
        rule = ent.rules.get("LineItem")
        if not rule:
            return
        parent_attr = ent.attrs[rule["Parent"]]
        pent = self.catalog.entities[parent_attr.targets[0]]
        for pid in {r.get(parent_attr.name) for r in rows if r and r.get(parent_attr.name)}:
            prow = self.store.get(pent, pid)
            if prow is None:
                continue
            lines, tax, discount = self.store.sums(
                ent,
                [ent.attrs["extendedamount"], ent.attrs["tax"], ent.attrs["manualdiscountamount"]],
                parent_attr,
                pid,
            )
            total = _dec(lines) - _dec(prow.get("discountamount")) + _dec(prow.get("freightamount"))
            prow.update(
                totallineitemamount=_num(_dec(lines)),
                totaltax=_num(_dec(tax)),
                totaldiscountamount=_num(_dec(discount) + _dec(prow.get("discountamount"))),
                totalamount=_num(total),
                modifiedon=now_iso(),
                versionnumber=self.store.next_version(),
            )
            self.store.update(pent, pid, prow)

    def _write_children(
        self,
        ent: Entity,
        rid: str,
        items: list[tuple[str, list[Any]]],
        refs: dict[str, str] | None,
        replace: bool,
    ) -> None:
        """Inline collection items (activity parties): each becomes a row of the related table."""
        for nav, values in items:
            spec = ent.collections[nav]
            cent = self.catalog.entities[spec["Entity"]]
            link = cent.attrs[spec["Attribute"]]
            if replace:
                self.store.delete_where(cent, link, rid)
            allowed = ent.d.get("PartyTypes")
            rows = []
            for item in values:
                if not isinstance(item, dict):
                    raise bad_request(f"Each item of '{nav}' must be a JSON object.", E.PAYLOAD_PARSE)
                body = {k: v for k, v in item.items() if not k.startswith(link.name)}
                body[f"{link.navs[ent.name]}@odata.bind"] = f"/{ent.set_name}({rid})"
                crid, crow = self.build_new(cent, body, refs)
                mask = crow.get("participationtypemask")
                if allowed and mask not in allowed:
                    raise bad_request(
                        f"participationtypemask {mask} is not valid for a party of a {ent.name} (allowed: "
                        f"{', '.join(str(a) for a in allowed)}).",
                        E.OUT_OF_RANGE,
                    )
                rows.append((crid, crow))
            self.store.insert_many(cent, rows)

    def _cascade_delete(self, ent: Entity, rid: str) -> None:
        for spec in ent.collections.values():
            cent = self.catalog.entities[spec["Entity"]]
            self.store.delete_where(cent, cent.attrs[spec["Attribute"]], rid)
        for other in self.catalog.entities.values():
            rule = other.rules.get("LineItem")
            if rule and ent.name in other.attrs[rule["Parent"]].targets:
                self.store.delete_where(other, other.attrs[rule["Parent"]], rid)

    def _computed(self, ent: Entity, values: dict[str, Any]) -> None:
        if ent.name in ("contact", "systemuser"):
            values["fullname"] = " ".join(p for p in (values.get("firstname"), values.get("lastname")) if p)
        elif ent.name == "annotation":
            body = values.get("documentbody")
            if body:
                limit = self.sb.max_upload_size()
                if len(body) > limit:
                    raise bad_request("Attachment file size is too big.", E.ATTACHMENT_TOO_BIG)
            values["isdocument"] = bool(body)
            values["filesize"] = (len(body) * 3 // 4 - body.count("=")) if body else 0
            values["objecttypecode"] = values.get("objectid@t")
        elif ent.name == "customeraddress":
            values["objecttypecode"] = values.get("parentid@t")
            parts = [values.get(n) for n in ("line1", "line2", "line3", "city", "stateorprovince", "postalcode")]
            values["composite"] = "\n".join(p for p in [*parts, values.get("country")] if p) or None
        if ent.d.get("IsActivity"):
            values["activitytypecode"] = ent.name

    # -- output ----------------------------------------------------------------------------------------------

    def select_attrs(self, ent: Entity, select: list[str] | None) -> list[Attribute]:
        if select is None:
            return [a for a in ent.attrs.values() if a.read]
        out = []
        for name in select:
            m = re.match(r"^_(\w+)_value$", name)
            attr = ent.attrs.get(m.group(1) if m else name)
            if attr is None or attr.is_lookup != bool(m):
                raise E.unknown_select(name, ent.name)
            out.append(attr)
        return out

    def format_row(
        self,
        ent: Entity,
        rid: str,
        row: dict[str, Any],
        attrs: list[Attribute],
        annotations: str | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": etag(row)}
        fmt = bool(annotations) and ("*" in annotations or "FormattedValue" in annotations)
        lk = bool(annotations) and ("*" in annotations or "Microsoft.Dynamics.CRM" in annotations)
        for attr in attrs:
            name = attr.name
            if name == ent.pk:
                out[name] = rid
                continue
            v = row.get(name)
            if attr.is_lookup:
                key = f"_{name}_value"
                if v is not None and lk:
                    t = row.get(name + "@t") or (attr.targets[0] if attr.targets else None)
                    out[key + "@Microsoft.Dynamics.CRM.associatednavigationproperty"] = attr.navs.get(t, name)
                    out[key + "@Microsoft.Dynamics.CRM.lookuplogicalname"] = t
                out[key] = v
                continue
            if fmt and v is not None:
                if attr.options:
                    out[name + "@OData.Community.Display.V1.FormattedValue"] = attr.options.get(v, str(v))
                elif attr.type == "Boolean":
                    out[name + "@OData.Community.Display.V1.FormattedValue"] = attr.d.get(
                        "TrueLabel" if v else "FalseLabel", str(v)
                    )
            out[name] = v
        return out


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _etag_value(text: str) -> str:
    return text.strip().removeprefix("W/").strip('"')
