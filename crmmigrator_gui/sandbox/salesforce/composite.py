"""sObject Collections (``/composite/sobjects``) and Composite (``/composite``), reference §3.1-3.2.

Collections: <=200 records, results in request order with ``statusCode`` errors, HTTP 200 even when items
fail; ``allOrNone`` runs everything in one transaction, rolls back on the first failure and reports
``ALL_OR_NONE_OPERATION_ROLLED_BACK`` for the innocent records. Composite: <=25 subrequests executed in
order through the normal router, ``@{ref.path}`` substitution in URLs and bodies, ``allOrNone`` rollback
with ``PROCESSING_HALTED`` for the others; the whole call counts as one API request.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import ids
from .errors import MultipleMatches, SFError, bad, not_found

if TYPE_CHECKING:
    from .app import Request, Result, SalesforceSandbox

MAX_RECORDS = 200
MAX_SUBREQUESTS = 25
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


class _Rollback(Exception):
    pass


def handle(sb: SalesforceSandbox, req: Request, segs: list[str]) -> Result:
    if not segs:
        if req.method != "POST":
            raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are POST")
        return _composite(sb, req)
    if segs[0] == "sobjects":
        return _collections(sb, req, segs[1:])
    raise not_found()


def _too_many() -> SFError:
    return bad(
        "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
    )


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _run(sb: SalesforceSandbox, items: list[Any], all_or_none: bool, op: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    failed = False
    try:
        with sb.store.transaction():
            for item in items:
                try:
                    with sb.store.transaction():
                        results.append(op(item))
                except SFError as err:
                    failed = True
                    results.append({"id": _item_id(item), "success": False, "errors": [err.save_result()]})
                    if all_or_none:
                        raise _Rollback() from err
            if all_or_none and failed:
                raise _Rollback()
    except _Rollback:
        out = []
        for i in range(len(items)):
            if i < len(results) and not results[i]["success"]:
                out.append(results[i])
            else:
                out.append({"id": None, "success": False, "errors": [dict(ROLLED_BACK)]})
        return [{k: v for k, v in r.items() if k != "id" or v} for r in out]
    return [{k: v for k, v in r.items() if k != "id" or v is not None} for r in results]


def _item_id(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("id") or item.get("Id")
    return item if isinstance(item, str) else None


def _type_of(sb: SalesforceSandbox, record: dict[str, Any]) -> Any:
    attrs = record.get("attributes")
    name = attrs.get("type") if isinstance(attrs, dict) else None
    obj = sb.catalog.get(name) if name else None
    if obj is None:
        raise bad(
            "INVALID_TYPE",
            "Must specify a type in attributes" if not name else f"sObject type '{name}' is not supported.",
        )
    return obj


def _collections(sb: SalesforceSandbox, req: Request, segs: list[str]) -> Result:
    if req.method in ("GET", "DELETE") or (req.method == "POST" and segs):
        if req.method == "POST":
            body = req.json()
            id_list, fields = body.get("ids") or [], ",".join(body.get("fields") or [])
        else:
            id_list = [i for i in req.query.get("ids", "").split(",") if i]
            fields = req.query.get("fields", "")
        if len(id_list) > MAX_RECORDS:
            raise bad("EXCEEDED_ID_LIMIT", f"More than {MAX_RECORDS} ids specified")
        if req.method == "DELETE":

            def delete(rid: str) -> dict[str, Any]:
                canonical = ids.to18(rid)
                obj = sb.catalog.object_for_id(canonical) if canonical else None
                if obj is None:
                    raise bad("MALFORMED_ID", f"malformed id {rid}")
                try:
                    return {"id": sb.records.delete(obj, canonical), "success": True, "errors": []}
                except SFError as err:
                    if err.code == "NOT_FOUND":
                        raise bad("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id") from err
                    raise bad(err.code, err.message) from err

            return 200, {}, _run(sb, id_list, _flag(req.query.get("allOrNone")), delete)
        if not segs:
            raise bad("MISSING_ARGUMENT", "sObject type is required")
        obj = sb.catalog.get(segs[0])
        if obj is None:
            raise not_found()
        if not fields:
            raise bad("MISSING_ARGUMENT", "fields not specified")
        out = []
        for rid in id_list:
            canonical = ids.to18(rid)
            hit = sb.store.get(obj, canonical) if canonical and canonical[:3] == obj.key_prefix else None
            out.append(
                None if hit is None or hit[1] else sb.records.format(obj, hit[0], req.version, fields.split(","))
            )
        return 200, {}, out
    body = req.json()
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise bad("JSON_PARSER_ERROR", "records is required")
    if len(records) > MAX_RECORDS:
        raise _too_many()
    all_or_none = _flag(body.get("allOrNone"))
    if req.method == "POST":

        def create(rec: dict[str, Any]) -> dict[str, Any]:
            obj = _type_of(sb, rec)
            if rec.get("id") or rec.get("Id"):
                raise bad("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return {"id": sb.records.create(obj, rec), "success": True, "errors": []}

        return 200, {}, _run(sb, records, all_or_none, create)
    if req.method != "PATCH":
        raise SFError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,POST,PATCH,DELETE"
        )
    if not segs:

        def update(rec: dict[str, Any]) -> dict[str, Any]:
            obj = _type_of(sb, rec)
            rid = rec.get("id") or rec.get("Id")
            if not rid:
                raise bad("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            canonical = ids.to18(str(rid))
            if canonical is None or canonical[:3] != obj.key_prefix:
                raise bad("MALFORMED_ID", f"bad id {rid}", ["Id"])
            body = {k: v for k, v in rec.items() if k.lower() != "id"}
            try:
                return {"id": sb.records.update(obj, canonical, body), "success": True, "errors": []}
            except SFError as err:
                if err.status == 404:
                    raise bad(
                        "ENTITY_IS_DELETED" if err.code == "ENTITY_IS_DELETED" else "INVALID_CROSS_REFERENCE_KEY",
                        err.message if err.code == "ENTITY_IS_DELETED" else "invalid cross reference id",
                    ) from err
                raise

        return 200, {}, _run(sb, records, all_or_none, update)
    if len(segs) != 2:
        raise not_found()
    obj = sb.catalog.get(segs[0])
    if obj is None:
        raise not_found()
    ext = sb.records.ext_field(obj, segs[1])
    seen: dict[str, int] = {}
    for rec in records:
        key = str(next((v for k, v in rec.items() if k.lower() == ext.name.lower()), "")).lower()
        seen[key] = seen.get(key, 0) + 1

    def upsert(rec: dict[str, Any]) -> dict[str, Any]:
        if _type_of(sb, rec) is not obj:
            raise bad("INVALID_TYPE", "all records must be of the type in the URL")
        value = next((v for k, v in rec.items() if k.lower() == ext.name.lower()), None)
        if value in (None, ""):
            raise bad("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
        if seen.get(str(value).lower(), 0) > 1:
            raise bad("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [ext.name])
        try:
            created, rid = sb.records.upsert(obj, ext.name, value, rec)
        except MultipleMatches as many:
            raise bad(
                "DUPLICATE_EXTERNAL_ID",
                f"{ext.name}: more than one record found for external id field: {many.ids}",
                [ext.name],
            ) from None
        return {"id": rid, "success": True, "errors": [], "created": created}

    return 200, {}, _run(sb, records, all_or_none, upsert)


# -- composite ---------------------------------------------------------------------------------------------------


def _lookup(results: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in results:
        raise KeyError(ref)
    value = results[ref]
    for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = part
        value = value[int(index)] if index else value[name]
    return value


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        full = _REF.fullmatch(value)
        if full:
            return _lookup(results, full.group(1), full.group(2))
        return _REF.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    return value


def _composite(sb: SalesforceSandbox, req: Request) -> Result:
    from .app import Request as Sub

    body = req.json()
    subs = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subs, list) or not subs:
        raise bad("JSON_PARSER_ERROR", "compositeRequest is required")
    if len(subs) > MAX_SUBREQUESTS:
        raise bad("LIMIT_EXCEEDED", f"Composite request limit exceeded: maximum of {MAX_SUBREQUESTS} subrequests")
    all_or_none = _flag(body.get("allOrNone"))
    halted = [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed.",
        }
    ]
    responses: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    failed = False
    try:
        with sb.store.transaction():
            for sub in subs:
                ref_id = sub.get("referenceId", "")
                if failed and all_or_none:
                    responses.append({"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref_id})
                    continue
                try:
                    url = _substitute(sub.get("url", ""), results)
                    payload = _substitute(sub.get("body"), results) if "body" in sub else None
                except (KeyError, IndexError, TypeError) as exc:
                    msg = f"Invalid reference specified. No value for {exc} found. Provided referenceId ({ref_id})"
                    responses.append(
                        {
                            "body": [{"errorCode": "PROCESSING_HALTED", "message": msg}],
                            "httpHeaders": {},
                            "httpStatusCode": 400,
                            "referenceId": ref_id,
                        }
                    )
                    failed = True
                    continue
                parts = urlsplit(url)
                m = re.match(r"^/services/data/v(\d+\.\d)(/.*)$", parts.path)
                if not m:
                    status, headers, out = 404, {}, not_found().rest()
                else:
                    data = json.dumps(payload).encode() if payload is not None else b""
                    inner = Sub(
                        sub.get("method", "GET"),
                        m.group(2),
                        parts.query,
                        {"content-type": "application/json"},
                        data,
                        req.origin,
                        m.group(1),
                    )
                    try:
                        with sb.store.transaction():
                            status, headers, out = sb.dispatch(inner)
                    except SFError as err:
                        status, headers, out = err.status, err.headers, err.rest()
                if status >= 400:
                    failed = True
                else:
                    results[ref_id] = out
                responses.append({"body": out, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref_id})
            if failed and all_or_none:
                raise _Rollback()
    except _Rollback:
        responses = [
            r if r["httpStatusCode"] >= 400 else {**r, "body": halted, "httpHeaders": {}, "httpStatusCode": 400}
            for r in responses
        ]
    return 200, {}, {"compositeResponse": responses}
