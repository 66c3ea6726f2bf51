"""Bulk actions ``CreateMultiple`` / ``UpdateMultiple`` / ``UpsertMultiple`` bound to an entity set.

Like standard (SQL) tables in Dataverse, each call is one transaction: the first failing target rolls back
everything and its error is the response. CreateMultiple validates all targets and writes them with a single
``executemany`` because this is the product's main load path (batches of 100-500 rows).

Tables whose catalog entry does not list the message answer ``400`` with the platform's "method does not
support entities of type" error (the bound action itself exists in CSDL for every table, so the real service
fails in the message pipeline, not in routing).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import errors as E
from .catalog import BULK_MESSAGES, Entity
from .errors import DataverseError, bad_request
from .odata import parse_key_segment

if TYPE_CHECKING:
    from .app import DataverseSandbox, Request, Result

_URL_PREFIX = re.compile(r"^(?:https?://[^/]+)?/?(?:api/data/v9\.\d/)?")


def _targets(req: Request, ent: Entity) -> list[dict[str, Any]]:
    body = req.json()
    targets = body.get("Targets") if isinstance(body, dict) else None
    if not isinstance(targets, list) or not targets:
        raise bad_request(
            "The parameter 'Targets' is required and must be a non-empty collection.", E.PAYLOAD_PARSE
        )
    expected = f"Microsoft.Dynamics.CRM.{ent.name}"
    for t in targets:
        if not isinstance(t, dict):
            raise bad_request("Each item of 'Targets' must be an entity object.", E.PAYLOAD_PARSE)
        otype = t.get("@odata.type")
        if otype is None:
            raise bad_request(
                "The '@odata.type' annotation is mandatory for each item of 'Targets' "
                f"(expected '{expected}').",
                E.PAYLOAD_PARSE,
            )
        if str(otype).lstrip("#") != expected:
            raise bad_request(
                f"A target of type '{otype}' cannot be used with the {ent.set_name} entity set "
                f"(expected '{expected}').",
                E.PAYLOAD_PARSE,
            )
    return targets


def _key_segment(sb: DataverseSandbox, ent: Entity, odata_id: Any) -> str:
    if not isinstance(odata_id, str):
        raise bad_request("'@odata.id' must be a string.", E.PAYLOAD_PARSE)
    path = _URL_PREFIX.sub("", odata_id.strip(), count=1)
    m = re.match(r"^([A-Za-z_]\w*)\((.*)\)$", path)
    if not m or m.group(1) != ent.set_name:
        raise bad_request(
            f"The '@odata.id' value '{odata_id}' does not address a row of {ent.set_name}.", E.PAYLOAD_PARSE
        )
    return m.group(2)


def handle(sb: DataverseSandbox, req: Request, ent: Entity, message: str) -> Result:
    if message not in BULK_MESSAGES:
        raise E.segment_not_found(f"Microsoft.Dynamics.CRM.{message}")
    if message not in ent.bulk:
        raise DataverseError(
            400,
            E.UNSUPPORTED_MESSAGE,
            f"The '{message}' method does not support entities of type '{ent.name}'. "
            "MessageProcessorCache returned MessageProcessor.Empty.",
        )
    targets = _targets(req, ent)
    records, store = sb.records, sb.store
    with store.transaction():
        if message == "CreateMultiple":
            rows = [records.build_new(ent, t) for t in targets]
            records.insert(ent, rows)
            return (
                200,
                {},
                {
                    "@odata.context": f"{req.base}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse",
                    "Ids": [rid for rid, _ in rows],
                },
            )
        if message == "UpdateMultiple":
            seen: set[str] = set()
            for t in targets:
                if "@odata.id" in t:
                    raise bad_request(
                        "UpdateMultiple does not support alternate keys; identify each target by "
                        f"its primary key '{ent.pk}'.",
                        E.PAYLOAD_PARSE,
                    )
                rid = t.get(ent.pk)
                if not isinstance(rid, str):
                    raise bad_request(
                        f"Each target must contain the primary key '{ent.pk}'.", E.PAYLOAD_PARSE
                    )
                rid = rid.lower()
                if rid in seen:
                    continue
                seen.add(rid)
                row = store.get(ent, rid)
                if row is None:
                    raise E.not_found(ent.name, rid)
                records.save(ent, rid, records.build_update(ent, row, t), old=row)
            return 204, {}, None
        segments, seen_refs = [], set()
        for t in targets:
            if "@odata.id" in t:
                segment = _key_segment(sb, ent, t["@odata.id"])
            elif isinstance(t.get(ent.pk), str):
                segment = t[ent.pk]
            else:
                raise bad_request(
                    "Each UpsertMultiple target needs '@odata.id' (a key reference) or its primary "
                    f"key '{ent.pk}'.",
                    E.PAYLOAD_PARSE,
                )
            kind, value = parse_key_segment(segment)
            pairs = {kind: value} if kind == "id" else value
            identity = repr(sorted((k, v.lower() if isinstance(v, str) else v) for k, v in pairs.items()))
            if identity in seen_refs:
                raise bad_request(
                    f"Duplicate key in Targets: {segment}. UpsertMultiple does not accept more than "
                    "one target for the same record.",
                    E.DUPLICATE_PK,
                )
            seen_refs.add(identity)
            segments.append(segment)
        for t, segment in zip(targets, segments, strict=True):
            rid, key_values = records.resolve(ent, segment)
            body = {k: v for k, v in t.items() if k not in ("@odata.id", ent.pk)}
            if rid is not None:
                row = store.get(ent, rid) or {}
                merged = records.build_update(ent, row, body, drop=tuple(key_values or ()))
                records.save(ent, rid, merged, old=row)
            else:
                new_id = None if key_values else segment.lower()
                records.insert(ent, [records.build_new(ent, body, rid=new_id, key_values=key_values)])
        return 204, {}, None
