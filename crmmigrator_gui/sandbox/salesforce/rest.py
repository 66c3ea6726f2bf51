"""``/sobjects`` resources: describeGlobal, describe, CRUD, upsert by external id, blobs, updated/deleted.

Status codes and bodies follow reference §2.4: create 201 ``{"id","success","errors"}`` + Location; update
and delete 204; upsert 201/200 with ``created`` (v46+), 300 with the matching record URLs, 404 for an
unknown external-id field; GET of a deleted row 404 ``ENTITY_IS_DELETED``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import files, ids
from . import values as V
from .catalog import SObject
from .errors import MultipleMatches, SFError, bad, not_found
from .store import col, table

if TYPE_CHECKING:
    from .app import Request, Result, SalesforceSandbox


def _obj(sb: SalesforceSandbox, name: str) -> SObject:
    obj = sb.catalog.get(name)
    if obj is None:
        raise not_found()
    return obj


def record_types(sb: SalesforceSandbox, obj: SObject) -> list[dict[str, Any]]:
    rt = sb.catalog.objects["RecordType"]
    return sb.records.iter_rows(rt, f"deleted=0 AND {col('SobjectType')}=?", (obj.name,))


def handle(sb: SalesforceSandbox, req: Request, segs: list[str]) -> Result:
    if not segs:
        if req.method != "GET":
            raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,HEAD")
        return (
            200,
            {},
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [sb.catalog.global_entry(o, req.version) for o in sb.catalog.objects.values()],
            },
        )
    obj = _obj(sb, segs[0])
    rest = segs[1:]
    if not rest:
        if req.method == "GET":
            last5 = f"deleted=0 AND seq > (SELECT COALESCE(MAX(seq), 0) - 5 FROM {table(obj)})"
            recent = sb.records.iter_rows(obj, last5)
            return (
                200,
                {},
                {
                    "objectDescribe": sb.catalog.global_entry(obj, req.version),
                    "recentItems": [sb.records.format(obj, r, req.version, ["Id"]) for r in recent],
                },
            )
        if req.method != "POST":
            raise SFError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,HEAD,POST"
            )
        body = files.multipart_body(sb, req, obj) if "multipart" in req.headers.get("content-type", "") else req.json()
        if not isinstance(body, dict):
            raise bad("JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY value")
        rid = sb.records.create(obj, body)
        location = f"/services/data/v{req.version}/sobjects/{obj.name}/{rid}"
        return 201, {"Location": location}, {"id": rid, "success": True, "errors": []}
    head = rest[0]
    if head == "describe" and len(rest) == 1:
        return 200, {}, sb.catalog.describe(obj, req.version, record_types(sb, obj))
    if head in ("updated", "deleted") and len(rest) == 1:
        return 200, {}, _changed(sb, req, obj, head)
    if len(rest) == 1:
        if head.lower() == "id" and req.method == "POST":
            rid = sb.records.create(obj, req.json())
            return (
                201,
                {"Location": f"/services/data/v{req.version}/sobjects/{obj.name}/{rid}"},
                {"id": rid, "success": True, "errors": [], "created": True},
            )
        return _by_id(sb, req, obj, head)
    if len(rest) == 2:
        rid = ids.to18(head)
        blob_field = sb.catalog.lookup(obj, rest[1])
        if rid and rid[:3] == obj.key_prefix and blob_field is not None and blob_field.type == "base64":
            sb.records.load(obj, rid)
            data = sb.store.get_blob(rid)
            if data is None:
                raise not_found()
            return 200, {"Content-Type": "application/octetstream"}, data
        return _by_external(sb, req, obj, head, rest[1])
    raise not_found()


def _by_id(sb: SalesforceSandbox, req: Request, obj: SObject, key: str) -> Result:
    rid = ids.to18(key)
    if rid is None or rid[:3] != obj.key_prefix:
        raise not_found()
    if req.method == "GET":
        row = sb.records.load(obj, rid)
        fields = [f for f in req.query.get("fields", "").split(",") if f.strip()] or None
        return 200, {}, sb.records.format(obj, row, req.version, fields)
    if req.method == "PATCH":
        sb.records.update(obj, rid, req.json())
        return 204, {}, None
    if req.method == "DELETE":
        sb.records.delete(obj, rid)
        return 204, {}, None
    raise SFError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are HEAD,GET,PATCH,DELETE"
    )


def _by_external(sb: SalesforceSandbox, req: Request, obj: SObject, field_name: str, value: str) -> Result:
    ext = sb.records.ext_field(obj, field_name)
    if req.method == "GET":
        hits = sb.store.find(obj, ext, V.coerce(ext, value), limit=10) if ext.name != "Id" else []
        if not hits:
            raise not_found()
        if len(hits) > 1:
            return 300, {}, [f"/services/data/v{req.version}/sobjects/{obj.name}/{h[0]}" for h in hits]
        fields = [f for f in req.query.get("fields", "").split(",") if f.strip()] or None
        return 200, {}, sb.records.format(obj, hits[0][1], req.version, fields)
    if req.method == "PATCH":
        body = req.json() if req.body.strip() else {}
        try:
            created, rid = sb.records.upsert(obj, ext.name, value, body)
        except MultipleMatches as many:
            return 300, {}, [f"/services/data/v{req.version}/sobjects/{obj.name}/{i}" for i in many.ids]
        out = {"id": rid, "success": True, "errors": [], "created": created}
        if created:
            return 201, {"Location": f"/services/data/v{req.version}/sobjects/{obj.name}/{rid}"}, out
        return 200, {}, out
    if req.method == "DELETE":
        hits = sb.store.find(obj, ext, V.coerce(ext, value), limit=10)
        if not hits:
            raise not_found()
        if len(hits) > 1:
            return 300, {}, [f"/services/data/v{req.version}/sobjects/{obj.name}/{h[0]}" for h in hits]
        sb.records.delete(obj, hits[0][0])
        return 204, {}, None
    raise SFError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are HEAD,GET,PATCH,DELETE"
    )


def _changed(sb: SalesforceSandbox, req: Request, obj: SObject, kind: str) -> dict[str, Any]:
    """``/updated`` and ``/deleted`` over SystemModstamp (minute granularity, 30-day window)."""
    try:
        start = V.parse_datetime(req.query["start"])
        end = V.parse_datetime(req.query["end"])
    except KeyError as exc:
        raise bad("MISSING_ARGUMENT", f"{exc.args[0]} not specified") from exc
    if start is None or end is None or end < start:
        raise bad("INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    now = V.parse_datetime(V.now())
    assert now is not None
    if start < now - timedelta(days=30):
        raise bad("INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    lo = V.fmt_datetime(start.replace(second=0, microsecond=0))
    hi = V.fmt_datetime(end.replace(second=0, microsecond=0))
    stamp = col("SystemModstamp")
    rows = sb.store.execute(
        f"SELECT id, {stamp} FROM {table(obj)} WHERE deleted=? AND {stamp} >= ? AND {stamp} < ? "
        "ORDER BY seq LIMIT 600001",
        (1 if kind == "deleted" else 0, lo, hi),
    )
    if len(rows) > 600000:
        raise bad("EXCEEDED_ID_LIMIT", "too many ids")
    if kind == "updated":
        return {"ids": [r[0] for r in rows], "latestDateCovered": hi}
    return {
        "deletedRecords": [{"id": r[0], "deletedDate": r[1]} for r in rows],
        "earliestDateAvailable": V.fmt_datetime(now - timedelta(days=15)),
        "latestDateCovered": hi,
    }
