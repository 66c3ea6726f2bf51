"""Read-side endpoints: entity-set queries with paging, single properties, and the service-level documents
(service document, CSDL ``$metadata``, ``WhoAmI``, ``sdkmessagefilters``).

Paging follows the real service: ``Prefer: odata.maxpagesize`` (default and maximum 5000), an opaque
``$skiptoken`` in ``@odata.nextLink``, no ``$skip``. Without ``$orderby`` the token is a keyset position
(the last row's insertion sequence), so deleting rows while paging - as a rollback does - never skips rows.
With ``$orderby`` it is an offset.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from . import errors as E
from .catalog import METADATA_NS, Entity
from .errors import DataverseError, bad_request
from .odata import evaluate, parse_filter, parse_orderby, parse_select, to_sql
from .records import EDM_TYPES
from .store import col_expr

if TYPE_CHECKING:
    from .app import DataverseSandbox, Request, Result

MAX_PAGE = 5000
_KIND = {"String": "str", "Memo": "str", "Uniqueidentifier": "guid", "Boolean": "bool", "EntityName": "str"}


def resolver(ent: Entity):
    def resolve(name: str) -> tuple[str, str]:
        if name == ent.pk:
            return "id", "guid"
        m = re.match(r"^_(\w+)_value$", name)
        attr = ent.attrs.get(m.group(1) if m else name)
        if attr is None or attr.is_lookup != bool(m) or attr.name == ent.pk:
            if "/" in name:
                raise bad_request(
                    f"Navigation paths such as '{name}' are not supported in $filter by the CRM "
                    "Migrator sandbox; filter on _<lookup>_value instead."
                )
            raise E.unknown_select(name, ent.name)
        if attr.is_lookup:
            return col_expr(attr), "guid"
        if attr.type == "DateTime":
            return col_expr(attr), "date" if attr.behavior == "DateOnly" else "datetime"
        return col_expr(attr), _KIND.get(attr.type, "num")

    return resolve


def where_clause(sb: DataverseSandbox, ent: Entity, req: Request) -> tuple[str, list[Any]]:
    flt = req.query.get("$filter")
    if not flt:
        return "", []
    params: list[Any] = []
    return to_sql(parse_filter(flt), resolver(ent), params), params


def select_with_pk(ent: Entity, req: Request) -> list[str] | None:
    select = parse_select(req.query.get("$select"))
    if select is not None and ent.pk not in select:
        select = [*select, ent.pk]
    return select


def _token(data: dict[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _untoken(text: str) -> dict[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    raise bad_request("The $skiptoken value is not valid.")


def query(sb: DataverseSandbox, req: Request, ent: Entity) -> Result:
    q = req.query
    for unsupported in ("$skip", "$apply", "fetchXml", "savedQuery", "userQuery", "$search"):
        if unsupported in q:
            raise bad_request(f"The query parameter {unsupported} is not supported")
    if "$expand" in q:
        raise bad_request("$expand is not supported by the CRM Migrator sandbox.")
    select = select_with_pk(ent, req)
    attrs = sb.records.select_attrs(ent, select)
    where, params = where_clause(sb, ent, req)
    resolve = resolver(ent)
    order_terms = []
    if q.get("$orderby"):
        for name, desc in parse_orderby(q["$orderby"]):
            expr, kind = resolve(name)
            order_terms.append(
                f"{expr}{' COLLATE NOCASE' if kind == 'str' else ''} {'DESC' if desc else 'ASC'}"
            )
    order = ", ".join([*order_terms, "seq"])
    applied = []
    page = MAX_PAGE
    maxpage = req.prefer.get("odata.maxpagesize")
    if maxpage:
        try:
            page = max(1, min(MAX_PAGE, int(maxpage)))
        except ValueError as exc:
            raise bad_request(f"Invalid odata.maxpagesize value '{maxpage}'.") from exc
        applied.append(f"odata.maxpagesize={page}")
    top = None
    if "$top" in q and not maxpage:
        try:
            top = int(q["$top"])
        except ValueError as exc:
            raise bad_request(f"Invalid $top value '{q['$top']}'.") from exc
        if top < 0:
            raise bad_request("$top must not be negative.")
    token = _untoken(q["$skiptoken"]) if q.get("$skiptoken") else {}
    page_where, page_params, offset = where, list(params), 0
    if order_terms:
        offset = int(token.get("o", 0))
    elif "s" in token:
        page_where = f"({where}) AND seq > ?" if where else "seq > ?"
        page_params.append(int(token["s"]))
    limit = min(top, MAX_PAGE) if top is not None else page
    rows = sb.store.query(ent, page_where, page_params, order, limit + (0 if top is not None else 1), offset)
    more = top is None and len(rows) > limit
    rows = rows[:limit]
    annotations = req.prefer.get("odata.include-annotations")
    if annotations:
        applied.append(f'odata.include-annotations="{annotations}"')
    select_ctx = f"({','.join(select)})" if select is not None else ""
    body: dict[str, Any] = {"@odata.context": f"{req.base}$metadata#{ent.set_name}{select_ctx}"}
    if q.get("$count", "").lower() == "true":
        body["@odata.count"] = sb.store.count(ent, where, params, MAX_PAGE)
    body["value"] = [sb.records.format_row(ent, rid, row, attrs, annotations) for _, rid, row in rows]
    if more:
        nxt = {"o": offset + limit} if order_terms else {"s": rows[-1][0]}
        body["@odata.nextLink"] = sb.next_link(req, _token(nxt))
    headers = {"Preference-Applied": ",".join(applied)} if applied else {}
    return 200, headers, body


def property_request(sb: DataverseSandbox, req: Request, ent: Entity, key: str, rest: list[str]) -> Result:
    """``accounts(id)/name``, ``…/name/$value``, ``DELETE …/description``, ``…/primarycontactid/$ref``."""
    prop = rest[0]
    rid, _ = sb.records.resolve(ent, key)
    row = sb.store.get(ent, rid) if rid else None
    if row is None:
        raise E.not_found(ent.name, key)
    if len(rest) == 2 and rest[1] == "$ref":
        if prop not in ent.navs:
            raise E.segment_not_found(prop)
        if req.method == "DELETE":
            sb.records.update(ent, rid, row, {f"{prop}@odata.bind": None})
            return 204, {}, None
        if req.method == "PUT":
            ref = req.json().get("@odata.id")
            sb.records.update(ent, rid, row, {f"{prop}@odata.bind": ref})
            return 204, {}, None
        raise DataverseError(
            405, E.INVALID_PROPERTY, f"The requested resource does not support http method '{req.method}'."
        )
    if prop in ent.collections and len(rest) == 1:
        return _collection_property(sb, req, ent, rid, row, prop)
    m = re.match(r"^_(\w+)_value$", prop)
    attr = ent.attrs.get(m.group(1) if m else prop)
    if attr is None or attr.is_lookup != bool(m):
        raise E.segment_not_found(prop)
    if req.method == "GET":
        value = rid if attr.name == ent.pk else row.get(attr.name)
        if len(rest) == 2 and rest[1] == "$value":
            return 200, {}, "" if value is None else str(value)
        if value is None:
            return 204, {}, None
        return (
            200,
            {},
            {"@odata.context": f"{req.base}$metadata#{ent.set_name}({rid})/{prop}", "value": value},
        )
    if req.method == "DELETE":
        sb.records.update(ent, rid, row, {attr.name: None})
        return 204, {}, None
    if req.method == "PUT":
        sb.records.update(ent, rid, row, {attr.name: req.json().get("value")})
        return 204, {}, None
    raise DataverseError(
        405, E.INVALID_PROPERTY, f"The requested resource does not support http method '{req.method}'."
    )


def _collection_property(
    sb: DataverseSandbox, req: Request, ent: Entity, rid: str, row: dict[str, Any], prop: str
) -> Result:
    """``GET emails(id)/email_activity_parties`` lists them; ``PUT`` with ``{"value":[…]}`` replaces them."""
    spec = ent.collections[prop]
    cent = sb.catalog.entities[spec["Entity"]]
    link = cent.attrs[spec["Attribute"]]
    if req.method == "GET":
        rows = sb.store.query(cent, f"{col_expr(link)} = ?", [rid], "seq", MAX_PAGE)
        attrs = sb.records.select_attrs(cent, select_with_pk(cent, req))
        annotations = req.prefer.get("odata.include-annotations")
        return (
            200,
            {},
            {
                "@odata.context": f"{req.base}$metadata#{cent.set_name}",
                "value": [sb.records.format_row(cent, crid, crow, attrs, annotations) for _, crid, crow in rows],
            },
        )
    if req.method == "PUT":
        body = req.json()
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise bad_request(f"The body of PUT {prop} must be {{\"value\": [ … ]}}.", E.PAYLOAD_PARSE)
        sb.records.update(ent, rid, row, {prop: items})
        return 204, {}, None
    raise DataverseError(
        405, E.INVALID_PROPERTY, f"The requested resource does not support http method '{req.method}'."
    )


def service_document(sb: DataverseSandbox, req: Request) -> dict[str, Any]:
    sets = [
        {"name": e.set_name, "kind": "EntitySet", "url": e.set_name} for e in sb.catalog.entities.values()
    ]
    return {"@odata.context": req.base + "$metadata", "value": sets}


def whoami(sb: DataverseSandbox, req: Request) -> dict[str, Any]:
    return {
        "@odata.context": req.base + "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
        "BusinessUnitId": sb.business_unit_id,
        "UserId": sb.whoami_user_id,
        "OrganizationId": sb.organization_id,
    }


def sdkmessagefilters(sb: DataverseSandbox, req: Request) -> dict[str, Any]:
    """Virtual rows (message × table) so the bulk-support probe of reference §6 works."""
    rows = []
    for ent in sb.catalog.entities.values():
        for msg in ("Create", "Update", "Delete", "Retrieve", *sorted(ent.bulk)):
            fid = str(uuid.uuid5(METADATA_NS, f"sdkmessagefilter/{ent.name}/{msg}"))
            rows.append(
                {
                    "sdkmessagefilterid": fid,
                    "sdkmessageid/name": msg,
                    "primaryobjecttypecode": ent.name,
                    "isvisible": True,
                    "iscustomprocessingstepallowed": True,
                }
            )
    flt = req.query.get("$filter")
    if flt:
        node = parse_filter(flt)
        rows = [r for r in rows if evaluate(node, r)]
    select = parse_select(req.query.get("$select")) or [
        "sdkmessagefilterid",
        "primaryobjecttypecode",
        "isvisible",
        "iscustomprocessingstepallowed",
    ]
    for name in select:
        if name not in (
            "sdkmessagefilterid",
            "primaryobjecttypecode",
            "isvisible",
            "iscustomprocessingstepallowed",
        ):
            raise E.unknown_select(name, "sdkmessagefilter")
    value = [{"@odata.etag": 'W/"1"', **{k: r[k] for k in select}} for r in rows]
    return {"@odata.context": f"{req.base}$metadata#sdkmessagefilters({','.join(select)})", "value": value}


def csdl(sb: DataverseSandbox) -> str:
    """A minimal but valid CSDL: entity types with structural properties, lookups and navigation."""
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>',
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for ent in sb.catalog.entities.values():
        out.append(f'<EntityType Name="{ent.name}"><Key><PropertyRef Name="{ent.pk}"/></Key>')
        for attr in ent.attrs.values():
            if attr.is_lookup:
                out.append(f'<Property Name="_{attr.name}_value" Type="Edm.Guid"/>')
                continue
            edm = (
                "Edm.Date"
                if attr.type == "DateTime" and attr.behavior == "DateOnly"
                else EDM_TYPES.get(attr.type, "Edm.String")
            )
            extra = f' MaxLength="{attr.max_length}"' if attr.max_length else ""
            out.append(f'<Property Name="{attr.name}" Type="{edm}"{extra}/>')
        for nav, (_, targets) in ent.navs.items():
            out.append(f'<NavigationProperty Name={quoteattr(nav)} Type="mscrm.{targets[0]}"/>')
        out.append("</EntityType>")
    out.append('<EntityContainer Name="System">')
    out += [
        f'<EntitySet Name="{e.set_name}" EntityType="Microsoft.Dynamics.CRM.{e.name}"/>'
        for e in sb.catalog.entities.values()
    ]
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "".join(out)
