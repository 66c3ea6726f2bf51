"""The Dataverse Web API sandbox as a WSGI application.

``DataverseSandbox`` wires the catalog, the SQLite store and the request handlers together and routes
``/api/data/v9.x/…`` URLs the way the real service does (entity set names are case-sensitive). It can be
mounted in-process (``httpx.WSGITransport``) or served on loopback
(``crmmigrator_gui.sandbox.server``), so the
product's real HTTP client code runs unchanged against it.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from decimal import Decimal
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from . import batch, bulk, service
from . import errors as E
from .catalog import Catalog, Entity
from .errors import DataverseError, bad_request
from .faults import Faults
from .metadata import Metadata
from .records import Records, etag, now_iso
from .store import Store

_VERSION_RE = re.compile(r"^/api/data/(v9\.[0-2])(/.*)?$")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"


def reason(status: int) -> str:
    return _REASONS.get(status, "Error")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()


def split_path(path: str) -> list[str]:
    """Split on ``/`` outside parentheses and quotes (key values may contain slashes)."""
    out, buf, depth, quote = [], [], 0, False
    for ch in path:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == "/" and depth == 0 and not quote:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


class Request:
    """One (outer or batch-inner) request, already split into the parts handlers need."""

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, base: str):
        self.method = method.upper()
        self.path = path
        self.query_string = query
        self.query = dict(parse_qsl(query, keep_blank_values=True))
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.base = base
        self.prefer = self._prefer(self.headers.get("prefer", ""))

    @staticmethod
    def _prefer(text: str) -> dict[str, str]:
        out = {}
        for part in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", text):
            name, _, value = part.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"')
        return out

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"Error reading JSON payload: {exc}", E.PAYLOAD_PARSE) from exc


Result = tuple[int, dict[str, str], Any]


class DataverseSandbox:
    """Embedded Dataverse Web API emulator (WSGI callable).

    Args:
        db_path: SQLite file (state survives restarts) or None for an in-memory database.
        faults: fault-injection spec, see :mod:`.faults`.
        key_activation_seconds: how long a new alternate key stays ``Pending`` before its index is built.
        publisher_prefixes: customization prefixes accepted for custom names.
        reject_disabled_owner: refuse disabled users as ``ownerid`` (commonly reported, unverified).
        bulk_messages: per-table override of the catalog's bulk-message support, e.g.
            ``{"account": []}`` to simulate an org where accounts lack CreateMultiple (tests the fallback).
    """

    prefixes = ("/api/data/",)  # path prefixes it answers when mounted by sandbox.hosting

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        faults: str | None = None,
        key_activation_seconds: float = 0.3,
        publisher_prefixes: tuple[str, ...] = ("new_",),
        reject_disabled_owner: bool = True,
        bulk_messages: dict[str, list[str]] | None = None,
    ):
        self.key_activation_seconds = key_activation_seconds
        self.publisher_prefixes = publisher_prefixes
        self.reject_disabled_owner = reject_disabled_owner
        self.faults = Faults(faults)
        self.store = Store(db_path)
        self.catalog = Catalog.load_default()
        for op, payload in self.store.ops():
            self.catalog.apply(op, payload)
        for name, messages in (bulk_messages or {}).items():
            self.catalog.entities[name].d["BulkMessages"] = list(messages)
        for ent in self.catalog.entities.values():
            self.store.table(ent)
        self.records = Records(self)
        self.metadata = Metadata(self)
        self._count = 0
        self._count_lock = threading.Lock()
        if self.store.get_value("seeded") is None:
            self._seed()
        self.whoami_user_id: str = self.store.get_value("whoami") or ""
        self.business_unit_id: str = self.store.get_value("businessunit") or ""
        self.organization_id: str = self.store.get_value("organization") or ""
        self.currency_id: str = self.store.get_value("currency") or ""

    # -- seeding and admin API -------------------------------------------------------------------------------

    def _seed_row(self, entity: str, rid: str, values: dict[str, Any]) -> str:
        ent = self.catalog.entities[entity]
        row = dict(values)
        stamp = now_iso()
        if "statecode" in ent.attrs:
            row.setdefault("statecode", 0)
            row.setdefault("statuscode", ent.default_status(0))
        if "ownerid" in ent.attrs:
            row.update({"ownerid": self.whoami_user_id, "ownerid@t": "systemuser"})
        row.update(createdon=stamp, modifiedon=stamp, versionnumber=self.store.next_version())
        self.store.insert_many(ent, [(rid, row)])
        return rid

    def _seed(self) -> None:
        ids = {k: str(uuid.uuid4()) for k in ("bu", "user", "team", "cur", "sched", "uom", "price", "org")}
        self.whoami_user_id, self.business_unit_id = ids["user"], ids["bu"]
        bu = {"businessunitid": ids["bu"], "businessunitid@t": "businessunit"}
        with self.store.transaction():
            self._seed_row("businessunit", ids["bu"], {"name": "crmmigrator-sandbox", "isdisabled": False})
            self._seed_row(
                "systemuser",
                ids["user"],
                {
                    "firstname": "#",
                    "lastname": "CRM Migrator App",
                    "fullname": "# CRM Migrator App",
                    "internalemailaddress": "crmmigrator-app@sandbox.localhost",
                    "isdisabled": False,
                    "domainname": "crmmigrator-app@sandbox.localhost",
                    "applicationid": str(uuid.uuid4()),
                    **bu,
                },
            )
            self._seed_row("team", ids["team"], {"name": "crmmigrator-sandbox", "teamtype": 0, "isdefault": True, **bu})
            self._seed_row(
                "transactioncurrency",
                ids["cur"],
                {
                    "currencyname": "US Dollar",
                    "isocurrencycode": "USD",
                    "currencysymbol": "$",
                    "exchangerate": 1.0,
                    "currencyprecision": 2,
                },
            )
            self._seed_row("uomschedule", ids["sched"], {"name": "Default Unit", "baseuomname": "Primary Unit"})
            self._seed_row(
                "uom",
                ids["uom"],
                {
                    "name": "Primary Unit",
                    "quantity": 1.0,
                    "isschedulebaseuom": True,
                    "uomscheduleid": ids["sched"],
                    "uomscheduleid@t": "uomschedule",
                    "baseuom": ids["uom"],
                    "baseuom@t": "uom",
                },
            )
            self._seed_row(
                "pricelevel",
                ids["price"],
                {
                    "name": "Default Price List",
                    "transactioncurrencyid": ids["cur"],
                    "transactioncurrencyid@t": "transactioncurrency",
                },
            )
            self._seed_row(
                "organization",
                ids["org"],
                {
                    "name": "CRM Migrator Sandbox",
                    "maxuploadfilesize": 5242880,
                    "basecurrencyid": ids["cur"],
                    "basecurrencyid@t": "transactioncurrency",
                },
            )
            for name, key in (
                ("whoami", "user"),
                ("businessunit", "bu"),
                ("organization", "org"),
                ("currency", "cur"),
                ("team", "team"),
                ("seeded", "bu"),
            ):
                self.store.set_value(name, ids[key])

    def add_user(self, fullname: str, email: str, *, disabled: bool = False) -> str:
        """Provision a systemuser (admin side, no HTTP); idempotent by e-mail. Returns the systemuserid."""
        ent = self.catalog.entities["systemuser"]
        first, _, last = fullname.strip().rpartition(" ")
        values = {
            "firstname": first or None,
            "lastname": last or fullname,
            "fullname": fullname,
            "internalemailaddress": email,
            "domainname": email,
            "isdisabled": disabled,
        }
        with self.store.transaction():
            hit = self.store.find_by_key(ent, [ent.attrs["internalemailaddress"]], [email])
            if hit:
                rid, row = hit
                row.update(values)
                row.update(modifiedon=now_iso(), versionnumber=self.store.next_version())
                self.store.update(ent, rid, row)
                return rid
            return self._seed_row(
                "systemuser",
                str(uuid.uuid4()),
                {**values, "businessunitid": self.business_unit_id, "businessunitid@t": "businessunit"},
            )

    def max_upload_size(self) -> int:
        row = self.store.get(self.catalog.entities["organization"], self.organization_id) or {}
        return int(row.get("maxuploadfilesize") or 5242880)

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    def close(self) -> None:
        self.store.close()

    # -- WSGI ------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._count_lock:
            self._count += 1
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
        origin = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        path = environ.get("PATH_INFO", "")
        m = _VERSION_RE.match(path)
        headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["CONTENT-TYPE"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        extra: dict[str, str] = {}
        try:
            if not m:
                raise E.segment_not_found(path.strip("/").split("/")[0] or "/")
            req = Request(
                environ.get("REQUEST_METHOD", "GET"),
                (m.group(2) or "/")[1:],
                environ.get("QUERY_STRING", ""),
                headers,
                body,
                f"{origin}/api/data/{m.group(1)}/",
            )
            auth = req.headers.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                raise DataverseError(
                    401,
                    E.AUTH_MISSING,
                    "Bearer token is missing or empty: send 'Authorization: Bearer <access token>'.",
                    {
                        "WWW-Authenticate": "Bearer authorization_uri=https://login."
                        "microsoftonline.com/common/oauth2/authorize, resource_id="
                        f"{origin}/"
                    },
                )
            caller = Faults.caller(auth)
            with self.faults.admit(caller):
                status, out_headers, payload = self.dispatch(req)
            extra["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(self.faults.remaining(caller))
        except DataverseError as err:
            status, out_headers, payload = err.status, err.headers, err.body()
        return self._respond(start_response, status, out_headers, payload, extra)

    def _respond(
        self, start_response: Any, status: int, headers: dict[str, str], payload: Any, extra: dict[str, str]
    ) -> list[bytes]:
        data, ctype = self.render(payload)
        request_id = str(uuid.uuid4())
        out = [
            ("OData-Version", "4.0"),
            ("x-ms-service-request-id", request_id),
            ("REQ_ID", request_id),
            ("x-ms-dop-hint", str(self.faults.dop_hint)),
        ]
        if ctype and "content-type" not in {k.lower() for k in headers}:
            out.append(("Content-Type", ctype))
        out += list(headers.items()) + list(extra.items())
        out.append(("Content-Length", str(len(data))))
        out.append(("Date", formatdate(usegmt=True)))  # every real answer carries the server's clock
        start_response(f"{status} {reason(status)}", out)
        return [data]

    @staticmethod
    def render(payload: Any) -> tuple[bytes, str | None]:
        if payload is None:
            return b"", None
        if isinstance(payload, bytes):
            return payload, None
        if isinstance(payload, str):
            return payload.encode(), "text/plain; charset=utf-8"
        return encode_json(payload), JSON_TYPE

    # -- routing ---------------------------------------------------------------------------------------------

    def execute(self, req: Request, refs: dict[str, str] | None = None) -> Result:
        """Dispatch, turning DataverseError into an error result (used for batch parts)."""
        try:
            return self.dispatch(req, refs)
        except DataverseError as err:
            return err.status, err.headers, err.body()

    def dispatch(self, req: Request, refs: dict[str, str] | None = None) -> Result:
        segs = split_path(req.path)
        head = segs[0]
        if head == "" and len(segs) == 1:
            return 200, {}, service.service_document(self, req)
        if head == "$metadata":
            return 200, {"Content-Type": "application/xml"}, service.csdl(self).encode()
        if head == "$batch":
            if req.method != "POST":
                raise self._method(req)
            return batch.handle(self, req)
        if head in ("WhoAmI", "WhoAmI()"):
            return 200, {}, service.whoami(self, req)
        if head in ("PublishXml", "PublishAllXml") and req.method == "POST":
            return 204, {}, None
        if head == "InsertOptionValue" and req.method == "POST":
            from .schema import insert_option_value

            value = insert_option_value(self, req.json())
            return (
                200,
                {},
                {
                    "@odata.context": req.base + "$metadata#Microsoft.Dynamics.CRM.InsertOptionValueResponse",
                    "NewOptionValue": value,
                },
            )
        if head == "CloseIncident":
            if req.method != "POST":
                raise self._method(req)
            self.records.close_incident(req.json(), refs)
            return 204, {}, None
        name, _, key = head.partition("(")
        if name in ("EntityDefinitions", "RelationshipDefinitions"):
            return self.metadata.handle(req, segs)
        if name == "sdkmessagefilters" and not key:
            return 200, {}, service.sdkmessagefilters(self, req)
        ent = self.catalog.by_set.get(name)
        if ent is None:
            raise E.segment_not_found(head)
        if not key:
            return self._collection(req, ent, segs[1:], refs)
        if not key.endswith(")"):
            raise E.segment_not_found(head)
        return self._single(req, ent, key[:-1], segs[1:], refs)

    def _method(self, req: Request) -> DataverseError:
        return DataverseError(
            405, E.INVALID_PROPERTY, f"The requested resource does not support http method '{req.method}'."
        )

    def _collection(self, req: Request, ent: Entity, rest: list[str], refs: dict[str, str] | None) -> Result:
        if rest:
            if rest == ["$count"] and req.method == "GET":
                where, params = service.where_clause(self, ent, req)
                return 200, {}, str(self.store.count(ent, where, params, 5000))
            if len(rest) == 1 and rest[0].startswith("Microsoft.Dynamics.CRM."):
                if req.method != "POST":
                    raise self._method(req)
                return bulk.handle(self, req, ent, rest[0][23:])
            raise E.segment_not_found(rest[0])
        if req.method == "GET":
            return service.query(self, req, ent)
        if req.method != "POST":
            raise self._method(req)
        rid, row = self.records.create(ent, req.json(), refs)
        return self._write_result(req, ent, rid, row, created=True)

    def _write_result(self, req: Request, ent: Entity, rid: str, row: dict[str, Any], created: bool) -> Result:
        location = f"{req.base}{ent.set_name}({rid})"
        if req.prefer.get("return") == "representation":
            attrs = self.records.select_attrs(ent, service.select_with_pk(ent, req))
            body = {
                "@odata.context": f"{req.base}$metadata#{ent.set_name}/$entity",
                **self.records.format_row(ent, rid, row, attrs, req.prefer.get("odata.include-annotations")),
            }
            headers = {"Preference-Applied": "return=representation", "ETag": etag(row)}
            if not created:
                headers["OData-EntityId"] = location
            return (201 if created else 200), headers, body
        return 204, {"OData-EntityId": location}, None

    def _single(self, req: Request, ent: Entity, key: str, rest: list[str], refs: dict[str, str] | None) -> Result:
        if rest:
            return service.property_request(self, req, ent, key, rest)
        if req.method == "GET":
            rid, _ = self.records.resolve(ent, key)
            row = self.store.get(ent, rid) if rid else None
            if row is None:
                raise E.not_found(ent.name, key)
            inm = req.headers.get("if-none-match", "")
            annotations = req.prefer.get("odata.include-annotations")
            if inm and inm != "null" and not annotations and inm.strip() == etag(row):
                return 304, {"ETag": etag(row)}, None
            attrs = self.records.select_attrs(ent, service.select_with_pk(ent, req))
            body = {
                "@odata.context": f"{req.base}$metadata#{ent.set_name}/$entity",
                **self.records.format_row(ent, rid, row, attrs, annotations),
            }
            return 200, {"ETag": etag(row)}, body
        if req.method == "PATCH":
            created, rid, row = self.records.upsert(
                ent, key, req.json(), req.headers.get("if-match"), req.headers.get("if-none-match"), refs
            )
            return self._write_result(req, ent, rid, row, created)
        if req.method == "DELETE":
            self.records.delete(ent, key)
            return 204, {}, None
        raise self._method(req)

    def next_link(self, req: Request, token: str) -> str:
        params = [(k, v) for k, v in parse_qsl(req.query_string, keep_blank_values=True) if k != "$skiptoken"]
        params.append(("$skiptoken", token))
        query = urlencode(params, safe="$,'()", quote_via=quote)
        return f"{req.base}{req.path}?{query}"
