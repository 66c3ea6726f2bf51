"""The Salesforce REST / Bulk API 2.0 sandbox as a WSGI application.

``SalesforceSandbox`` wires the catalog (``catalog.json``), the SQLite store and the endpoint modules
together and routes ``/services/oauth2/…``, ``/services/data/vXX.X/…`` and the identity URL ``/id/…``. The
instance URL is whatever origin the request came to, so token responses point back at the emulator whether
it is mounted in-process (``httpx.WSGITransport``) or served over http/https on loopback. Every data-API
response carries ``Sforce-Limit-Info``; the daily budget, fault injection (``FaultPlan``) and token checks
happen here, before any handler runs, so injected faults never have side effects.
"""

from __future__ import annotations

import json
import re
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..faults import DroppedConnection, FaultPlan
from . import bulk, composite, files, oauth, query, rest, tooling
from .catalog import Catalog
from .errors import OAuthError, SFError, bad, invalid_session, not_found
from .records import Records
from .seed import Seeder
from .store import Store

VERSIONS = {
    "58.0": "Summer '23",
    "59.0": "Winter '24",
    "60.0": "Spring '24",
    "61.0": "Summer '24",
    "62.0": "Winter '25",
    "63.0": "Spring '25",
    "64.0": "Summer '25",
    "65.0": "Winter '26",
    "66.0": "Spring '26",
}
_VERSION_RE = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    300: "Multiple Choices",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
JSON = "application/json;charset=UTF-8"
Result = tuple[int, dict[str, str], Any]


class Request:
    """One API request (outer, or a composite subrequest) split into what handlers need."""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        origin: str,
        version: str = "",
    ):
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        self.query = dict(parse_qsl(query_string, keep_blank_values=True))
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.origin = origin
        self.version = version

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.strip("/").split("/") if s != ""] if self.path.strip("/") else []

    def json(self) -> Any:
        if not self.body.strip():
            raise bad("JSON_PARSER_ERROR", "The request body is empty")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad("JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc


class SalesforceSandbox:
    """Embedded Salesforce org emulator (WSGI callable).

    Args:
        db_path: SQLite file (state survives restarts) or None for an in-memory org.
        faults: fault spec for :class:`~crmmigrator_gui.sandbox.faults.FaultPlan` (503, lock, drop …).
        daily_api_limit: ``DailyApiRequests`` budget; past it every data call answers 403 REQUEST_LIMIT_EXCEEDED.
        audit_fields_permission: the "Set Audit Fields upon Record Creation" permission (reference §6.3).
        seed: None (plain Sales Cloud org) or ``"servicetracker"`` / ``"servicetracker:N"`` (N rows per object).
    """

    prefixes: tuple[str, ...] = ("/services/", "/id/")

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        faults: str | None = None,
        daily_api_limit: int = 100_000,
        audit_fields_permission: bool = False,
        seed: str | None = None,
    ):
        self.faults = FaultPlan.parse(faults)
        self.daily_api_limit = daily_api_limit
        self.store = Store(db_path)
        self.catalog = Catalog.load_default()
        self.catalog.audit_permission = audit_fields_permission
        self.hooks: dict[str, Any] = {
            "ContentVersion": files.ContentVersionHook(self),
            "FieldPermissions": tooling.FieldPermissionsHook(self),
        }
        for op, payload in self.store.ops():
            tooling.replay(self, op, payload)
        for obj in self.catalog.objects.values():
            self.store.ensure(obj)
        self.records = Records(self)
        self._local = threading.local()
        self._count = 0
        self._count_lock = threading.Lock()
        self.bulk = bulk.BulkJobs(self)
        self.org_id: str = self.store.get_value("org_id") or ""
        self.admin_id: str = self.store.get_value("admin_id") or ""
        self.permset_id: str = self.store.get_value("permset_id") or ""
        if not self.org_id:
            Seeder(self).base_org()
        tooling.load_grants(self)
        self.seed_counts: dict[str, int] = json.loads(self.store.get_value("seed_counts") or "{}")
        if seed and not self.seed_counts:
            self.seed_counts = Seeder(self).servicetracker(seed)
            self.store.set_value("seed_counts", json.dumps(self.seed_counts))

    # -- admin API ----------------------------------------------------------------------------------------------

    def add_user(self, name: str, email: str, *, active: bool = True) -> str:
        """Provision a User without HTTP (admin side); idempotent by e-mail. Returns the User Id."""
        return Seeder(self).user(name, email, active=active)

    def issue_token(self, user_id: str | None = None, scope: str = "api refresh_token") -> str:
        """Mint an access token directly (tests, or a host that does its own OAuth)."""
        return oauth.mint(self, "access", user_id or self.admin_id, "sandbox-admin", scope)

    def expire_tokens(self) -> None:
        """Invalidate every access token (refresh tokens survive), to test the 401 -> refresh path."""
        self.store.execute("DELETE FROM _tokens WHERE kind='access'")

    def current_user(self) -> str:
        return getattr(self._local, "user", None) or self.admin_id

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    @property
    def api_usage(self) -> int:
        return int(self.store.get_value("api_usage") or 0)

    def close(self) -> None:
        self.bulk.stop()
        self.store.close()

    # -- WSGI -------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._count_lock:
            self._count += 1
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
        origin = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["CONTENT-TYPE"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        path = environ.get("PATH_INFO", "")
        req = Request(
            environ.get("REQUEST_METHOD", "GET"), path, environ.get("QUERY_STRING", ""), headers, body, origin
        )
        extra: dict[str, str] = {}
        try:
            if path.startswith("/services/oauth2/") or path.startswith("/id/"):
                status, out_headers, payload = oauth.handle(self, req)
            else:
                status, out_headers, payload = self._data_api(req, extra)
        except OAuthError as err:
            status, out_headers, payload = err.status, {}, err.body()
        except SFError as err:
            status, out_headers, payload = err.status, err.headers, err.rest()
        finally:
            self._local.user = None
        return self._respond(start_response, status, out_headers, payload, extra)

    def _data_api(self, req: Request, extra: dict[str, str]) -> Result:
        if req.path.rstrip("/") == "/services/data":
            return (
                200,
                {},
                [{"label": label, "url": f"/services/data/v{v}", "version": v} for v, label in VERSIONS.items()],
            )
        m = _VERSION_RE.match(req.path)
        if not m:
            raise not_found()
        token = self._authenticate(req)
        self._local.user = token["user_id"]
        usage = self._charge()
        extra["Sforce-Limit-Info"] = f"api-usage={usage}/{self.daily_api_limit}"
        if usage > self.daily_api_limit:
            raise SFError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        version = m.group(1)
        if version not in VERSIONS:
            if float(version) < 31:
                raise SFError(410, "API_VERSION_RETIRED", f"API version {version} has been retired")
            raise not_found()
        req.version, req.path = version, m.group(2) or "/"
        self._inject(req)
        return self.dispatch(req)

    def _authenticate(self, req: Request) -> dict[str, Any]:
        auth = req.headers.get("authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not tok.strip():
            raise invalid_session()
        found = oauth.lookup(self, tok.strip(), "access")
        if found is None:
            raise invalid_session()
        return found

    def _charge(self) -> int:
        with self.store.lock:
            usage = self.api_usage + 1
            self.store.set_value("api_usage", str(usage))
        return usage

    def _inject(self, req: Request) -> None:
        fault = self.faults.draw(write=req.method in ("POST", "PATCH", "PUT", "DELETE"))
        if fault is None:
            return
        if fault.kind == "drop":
            raise DroppedConnection("injected fault: connection dropped")
        if fault.kind == "timeout":
            time.sleep(self.faults.hang)
            raise SFError(504, "SERVER_UNAVAILABLE", "The request timed out.")
        if fault.kind == "lock":
            raise bad("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
        status = fault.status
        if status in (429, 403):
            raise SFError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        if status == 401:
            raise invalid_session()
        if status >= 502:
            raise SFError(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable; please retry.")
        if status >= 500:
            raise SFError(
                status,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId "
                "if you contact support: 1234567890-12345 (-1234567890)",
            )
        if status == 404:
            raise not_found()
        raise SFError(status, "UNKNOWN_EXCEPTION", f"Injected fault {status}.")

    def _respond(
        self, start_response: Any, status: int, headers: dict[str, str], payload: Any, extra: dict[str, str]
    ) -> list[bytes]:
        if payload is None:
            data, ctype = b"", None
        elif isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        else:
            data, ctype = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), JSON
        out = list(headers.items()) + list(extra.items())
        if ctype and not any(k.lower() == "content-type" for k, _ in out):
            out.append(("Content-Type", ctype))
        out.append(("Content-Length", str(len(data))))
        out.append(("Date", formatdate(usegmt=True)))  # every real answer carries the server's clock
        start_response(f"{status} {_REASONS.get(status, 'Error')}", out)
        return [data]

    # -- routing ------------------------------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Result:
        segs = req.segments
        head = segs[0] if segs else ""
        base = f"/services/data/v{req.version}"
        if not head:
            return (
                200,
                {},
                {
                    "tooling": f"{base}/tooling",
                    "metadata": f"{base}/metadata",
                    "eclair": f"{base}/eclair",
                    "folders": f"{base}/folders",
                    "prechatForms": f"{base}/prechatForms",
                    "jobs": {"ingest": f"{base}/jobs/ingest", "query": f"{base}/jobs/query"},
                    "composite": f"{base}/composite",
                    "query": f"{base}/query",
                    "queryAll": f"{base}/queryAll",
                    "search": f"{base}/search",
                    "limits": f"{base}/limits",
                    "sobjects": f"{base}/sobjects",
                    "identity": f"{req.origin}/id/{self.org_id}/{self.current_user()}",
                    "recent": f"{base}/recent",
                },
            )
        if head == "limits" and len(segs) == 1:
            return 200, {}, self._limits()
        if head == "sobjects":
            return rest.handle(self, req, segs[1:])
        if head in ("query", "queryAll"):
            return query.handle(self, req, segs[1:], all_rows=head == "queryAll")
        if head == "composite":
            return composite.handle(self, req, segs[1:])
        if head == "jobs" and len(segs) >= 2 and segs[1] in ("ingest", "query"):
            return self.bulk.handle(req, segs[1], segs[2:])
        if head == "tooling":
            return tooling.handle(self, req, segs[1:])
        raise not_found()

    def _limits(self) -> dict[str, Any]:
        usage = self.api_usage
        jobs = int(self.store.get_value("query_jobs") or 0)
        batches = int(self.store.get_value("bulk_batches") or 0)

        def entry(limit: int, used: int) -> dict[str, int]:
            return {"Max": limit, "Remaining": max(0, limit - used)}

        return {
            "DailyApiRequests": entry(self.daily_api_limit, usage),
            "DailyBulkApiBatches": entry(15000, batches),
            "DailyBulkV2QueryJobs": entry(10000, jobs),
            "DailyBulkV2QueryFileStorageMB": entry(976562, 0),
            "DataStorageMB": entry(1024, 0),
            "FileStorageMB": entry(10240, 0),
            "ConcurrentAsyncGetReportInstances": entry(200, 0),
            "SingleEmail": entry(5000, 0),
        }
