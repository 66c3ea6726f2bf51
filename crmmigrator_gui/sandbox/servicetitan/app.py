"""The ServiceTitan v2 API ("Dispatch Pro" source) emulator as a WSGI application.

``ServiceTitanSandbox`` wires the catalog, the SQLite store, the token issuer, the rate limiter and fault
injection together and answers ``/{module}/v2/tenant/{tenant}/…`` the way the real API does (reference
§1.2–§1.4), plus the token endpoint on the same host (in production it lives on auth.servicetitan.io).
It is mounted in-process with ``httpx.WSGITransport`` or served on loopback by a composite server that
routes by :attr:`ServiceTitanSandbox.prefixes`, so the product's real extraction code runs unchanged.

Request pipeline (each step answers with the §1.2 problem-details body when it refuses):
credentials (401) → tenant (404 not a number / 403 another tenant) → rate limit per (app key, tenant)
(429 + Retry-After) → injected faults (:mod:`crmmigrator_gui.sandbox.faults`) → route (404/405) → handler.
Injected faults fire before the handler runs, so they never have side effects.

Service-specific ``faults`` extras (all optional): ``rps=60`` (overrides ``rate_limit_per_second``),
``token_ttl=900``, ``max_page_size=5000``, ``page_size_mode=reject|clamp``, ``export_page_size=5000``,
``recent_overlap=3`` and ``attachment_redirect=true`` (downloads answer 302 to an unauthenticated blob URL,
the way the [C] note "follow redirects" describes).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from ..faults import DroppedConnection, FaultPlan
from . import query
from .auth import Credentials, RateLimiter, TokenIssuer
from .catalog import ENTITIES, MODULES, PREFIXES, Route, build_routes
from .errors import STError, not_found, reason
from .mutate import Mutator
from .seed import Ctx, generate
from .seed_work import attachment_bytes
from .store import Store, norm_ts

_API = re.compile(r"^/([a-z-]+)/v2/tenant/([^/]+)(/.*)?$")
_BLOB = re.compile(r"^/forms/v2/blobs/(\d+)$")
JSON_TYPE = "application/json; charset=utf-8"
_TRUE = ("1", "true", "yes", "on")


class ServiceTitanSandbox:
    """Embedded ServiceTitan v2 API emulator (WSGI callable). Thread-safe.

    Args:
        db_path: SQLite file (state survives restarts) or None for an in-memory database.
        faults: fault-injection spec (see :mod:`crmmigrator_gui.sandbox.faults` and the module docstring).
        tenant: the tenant id the API serves (path segment after ``/tenant/``).
        records: number of jobs to generate; every other entity scales with it (reference §7 sizes at 1000).
        seed: RNG seed of the generated tenant; same seed, same data.
        rate_limit_per_second: requests per second per (app key, tenant) before 429 (§1.2: 60).
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        faults: str | None = None,
        tenant: int = 1234567,
        records: int = 1000,
        seed: int = 7,
        rate_limit_per_second: int = 60,
    ):
        self.tenant = int(tenant)
        self.seed = seed
        self.plan = FaultPlan.parse(faults)
        extra = self.plan.extra
        self.limiter = RateLimiter(int(extra.get("rps", rate_limit_per_second)))
        self.tokens = TokenIssuer(float(extra.get("token_ttl", 900)))
        self.max_page_size = int(extra.get("max_page_size", 5000))
        self.clamp_page_size = extra.get("page_size_mode", "reject").lower() == "clamp"
        self.export_page_size = max(1, min(5000, int(extra.get("export_page_size", 5000))))
        self.recent_overlap = int(extra.get("recent_overlap", 3))
        self.attachment_redirect = extra.get("attachment_redirect", "false").lower() in _TRUE
        self.routes = build_routes()
        self.store = Store(db_path)
        self._count = 0
        self._count_lock = threading.Lock()
        if self.store.get_value("seeded") is None:
            self._seed(records, seed)

    # -- data -------------------------------------------------------------------------------------------------

    def _seed(self, records: int, seed: int) -> None:
        ctx = Ctx(random.Random(seed), self.tenant, max(10, int(records)))
        with self.store.transaction():
            for entity, rows in generate(ctx):
                rows.sort(key=lambda r: (norm_ts(r.get("modifiedOn") or r["_modified"]), r["id"]))
                self.store.put_many(ENTITIES[entity], rows)
            self.store.set_value("manifest", json.dumps(ctx.traps.items, ensure_ascii=False))
            self.store.set_value("seeded", json.dumps({"records": records, "seed": seed}))

    @property
    def counts(self) -> dict[str, int]:
        """Rows per entity (active and inactive) as currently stored."""
        rows = self.store.query("SELECT entity, count(*) FROM rows GROUP BY entity ORDER BY entity", [])
        return {entity: int(n) for entity, n in rows}

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """The injected data-quality traps: ``[{"entity", "id", "field", "trap"}]`` (reference §7)."""
        return json.loads(self.store.get_value("manifest") or "[]")

    def mutate(self, n: int = 20) -> dict[str, Any]:
        """Simulate cutover activity (see :mod:`.mutate`); returns what changed, per category and entity."""
        calls = int(self.store.get_value("mutations") or "0") + 1
        with self.store.transaction():
            report = Mutator(self.store, random.Random(f"{self.seed}:{calls}")).run(max(1, n))
            self.store.set_value("mutations", str(calls))
        return report

    # -- public conveniences ----------------------------------------------------------------------------------

    #: path prefixes a composite server routes here; a class attribute so hosts can read it before building.
    prefixes: tuple[str, ...] = PREFIXES

    client_id = Credentials.client_id
    client_secret = Credentials.client_secret
    app_key = Credentials.app_key

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    def expire_tokens(self) -> None:
        """Test hook: expire every issued access token (the next call gets 401 invalid_token)."""
        self.tokens.expire_all()

    def close(self) -> None:
        self.store.close()

    # -- WSGI -------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._count_lock:
            self._count += 1
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        qs = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            if path.rstrip("/") == "/connect/token":
                return self._token(environ, method, start_response)
            status, headers, payload = self._api(environ, method, path, qs)
        except STError as err:
            status, headers, payload = err.status, err.headers, err.body()
        return self._respond(start_response, status, headers, payload)

    def _token(self, environ: dict[str, Any], method: str, start_response: Any) -> list[bytes]:
        if method != "POST":
            return self._respond(start_response, 405, {"Allow": "POST"}, {"error": "invalid_request"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        status, headers, payload = self.tokens.token_response(body, environ.get("HTTP_AUTHORIZATION", ""))
        return self._respond(start_response, status, headers, payload)

    def _respond(self, start_response: Any, status: int, headers: dict[str, str], payload: Any) -> list[bytes]:
        if isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {"Content-Type": JSON_TYPE, **headers}
        out = [*headers.items(), ("Content-Length", str(len(data)))]
        start_response(f"{status} {reason(status)}", out)
        return [data]

    def _api(self, environ: dict[str, Any], method: str, path: str, qs: dict[str, str]) -> tuple[int, dict, Any]:
        blob = _BLOB.match(path)
        if blob:
            return self._blob(int(blob.group(1)), qs.get("sig", ""))
        match = _API.match(path)
        if not match or match.group(1) not in MODULES:
            raise not_found()
        self.tokens.check(environ.get("HTTP_AUTHORIZATION", ""), environ.get("HTTP_ST_APP_KEY", "").strip())
        if not match.group(2).isdigit():
            raise not_found()
        if int(match.group(2)) != self.tenant:
            raise STError(403, "Forbidden", {"tenant": [f"The application has no access to tenant {match.group(2)}."]})
        self.limiter.admit(self.app_key, self.tenant)
        self._inject()
        route, ident = self._route(match.group(1), (match.group(3) or "/").strip("/"))
        if method not in ("GET", "HEAD"):
            raise STError(405, "Method Not Allowed", headers={"Allow": "GET"})
        ent = route.entity
        if route.kind == "list":
            return 200, {}, query.list_page(self.store, ent, qs, parent=ident, max_page_size=self.max_page_size,
                                            clamp=self.clamp_page_size)
        if route.kind == "export":
            return 200, {}, query.export_page(self.store, ent, qs, page_size=self.export_page_size,
                                              recent_overlap=self.recent_overlap)
        row = self.store.get(ent.name, ident or 0)
        if row is None or (not row.get("active", True) and not ent.active_filter):
            raise not_found(f"{ent.name} {ident}")
        if route.kind == "attachment":
            return self._attachment(row)
        return 200, {}, query.shape(ent, row, export=False)

    def _route(self, module: str, rest: str) -> tuple[Route, int | None]:
        parts = tuple(rest.split("/")) if rest else ()
        for route in self.routes[module]:
            if len(route.parts) != len(parts):
                continue
            ident = None
            for want, got in zip(route.parts, parts, strict=True):
                if want == "{id}" and got.isdigit():
                    ident = int(got)
                elif want != got:
                    break
            else:
                return route, ident
        raise not_found()

    def _inject(self) -> None:
        hit = self.plan.draw()
        if hit is None:
            return
        if hit.kind == "drop":
            raise DroppedConnection()
        if hit.kind == "timeout":
            time.sleep(self.plan.hang)
            raise STError(504, "Gateway Timeout")
        headers = {"Retry-After": str(hit.retry_after)} if hit.status == 429 else {}
        raise STError(hit.status, reason(hit.status), headers=headers)

    def _sig(self, aid: int) -> str:
        return hashlib.sha256(f"{self.seed}:{self.tenant}:{aid}".encode()).hexdigest()[:32]

    def _attachment(self, row: dict[str, Any]) -> tuple[int, dict, Any]:
        if self.attachment_redirect:
            return 302, {"Location": f"/forms/v2/blobs/{row['id']}?sig={self._sig(row['id'])}"}, b""
        return self._file(row)

    def _blob(self, aid: int, sig: str) -> tuple[int, dict, Any]:
        row = self.store.get("job-attachments", aid)
        if row is None or sig != self._sig(aid):
            raise STError(403, "Forbidden", {"sig": ["The blob signature is invalid."]})
        return self._file(row)

    @staticmethod
    def _file(row: dict[str, Any]) -> tuple[int, dict, Any]:
        name = row["fileName"]
        fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}",
        }
        return 200, headers, attachment_bytes(row["id"], row["contentType"])
