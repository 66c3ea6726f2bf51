"""ServiceTitan v2 API client for the extractor: client-credentials token, ``ST-App-Key``, paging, exports.

Reference §1.2: every resource call carries ``Authorization: Bearer <token>`` **and** ``ST-App-Key``; the
token comes from ``POST {token_url}`` (form-encoded client credentials), is cached and refreshed 60 s before
``expires_in`` runs out (and once more if the server says it expired); the tenant id is part of every path.
Transient failures (429 with ``Retry-After``, 5xx, network errors) are retried by the shared
:class:`~crmmigrator_gui.engine.target.http.RetryingHttp`; on top of that a client-side pacer keeps us under
the documented 60 requests per second per (app key, tenant), so a long walk does not spend its time in 429s.

The same code talks to a real tenant (``https://api.servicetitan.io`` + ``https://auth.servicetitan.io``) and
to the embedded emulator (an ``httpx.WSGITransport``), so nothing here knows which one it is.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import httpx

from crmmigrator_gui.engine.errors import DestinationError, MigratorError
from crmmigrator_gui.engine.target.http import RetryingHttp

PAGE_SIZE = 5000  # §1.2: the maximum is not documented for tenant APIs; backed off when a server refuses it
TOKEN_MARGIN = 60.0  # refresh this long before expires_in (§1.2, public clients)
DEFAULT_RPS = 55  # a little under the documented 60 per second per (app key, tenant)


class SourceError(MigratorError):
    """The source API refused or failed a call in a way that stops the extraction."""


@dataclass(frozen=True)
class Endpoint:
    """Where the tenant's API lives and how to sign in."""

    base_url: str  # https://api.servicetitan.io
    token_url: str  # https://auth.servicetitan.io/connect/token
    tenant: str
    client_id: str
    client_secret: str
    app_key: str


class Pacer:
    """Sliding one-second window: at most ``rps`` request starts in any second (thread-safe)."""

    def __init__(self, rps: int, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rps = max(1, rps)
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._starts and now - self._starts[0] >= 1.0:
                    self._starts.popleft()
                if len(self._starts) < self.rps:
                    self._starts.append(now)
                    return
                delay = 1.0 - (now - self._starts[0]) + 0.001
            self._sleep(delay)


def _problem(response: httpx.Response) -> str:
    """One line from an RFC 7807 body (or an OAuth error body)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:200]
    if "error" in body and "title" not in body:
        return f"{body.get('error')}: {body.get('error_description', '')}".strip(": ")
    parts = [str(body.get("title") or response.reason_phrase)]
    for field, messages in (body.get("errors") or {}).items():
        text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{field}: {text}" if field else text)
    return " — ".join(parts)


class STClient:
    """Authenticated, paced, retrying GETs against one tenant."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        transport: httpx.BaseTransport | None = None,
        rps: int = DEFAULT_RPS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._transport = transport
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self.token_requests = 0
        self._plain_requests = 0
        self.pacer = Pacer(rps, sleep)
        self.page_size = PAGE_SIZE
        # Token endpoint and pre-signed blob downloads: no bearer token, no app key.
        self._plain = httpx.Client(transport=transport, timeout=100.0, follow_redirects=False)
        self.http = RetryingHttp(
            endpoint.base_url.rstrip("/") + "/",
            self.token,
            transport=transport,
            timeout=100.0,  # §1.2: the server cuts requests off at about 100 s
            sleep=sleep,
            default_headers={"ST-App-Key": endpoint.app_key, "Accept": "application/json"},
        )

    @property
    def requests(self) -> int:
        return self.http.requests + self.token_requests + self._plain_requests

    def close(self) -> None:
        self.http.close()
        self._plain.close()

    # ------------------------------------------------------------------ auth
    def token(self) -> str:
        with self._token_lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            self._token = self._fetch_token()
            return self._token

    def _fetch_token(self) -> str:
        ep = self.endpoint
        form = {"grant_type": "client_credentials", "client_id": ep.client_id, "client_secret": ep.client_secret}
        for attempt in range(4):
            self.pacer.wait()
            self.token_requests += 1
            try:
                response = self._plain.post(ep.token_url, data=form, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                if attempt == 3:
                    raise SourceError(
                        f"cannot reach the ServiceTitan sign-in server at {ep.token_url} ({type(exc).__name__})"
                    ) from exc
                time.sleep(0.5 * 2**attempt)
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                time.sleep(min(5.0, float(response.headers.get("Retry-After") or 0.5 * 2**attempt)))
                continue
            if response.status_code != 200:
                raise SourceError(
                    f"ServiceTitan refused the client credentials ({response.status_code} {_problem(response)}); "
                    "check --client-id and the secret, then run `crmmigrator connect … source` again"
                )
            body = response.json()
            ttl = float(body.get("expires_in") or 900)
            self._token_expires = time.monotonic() + max(5.0, ttl - TOKEN_MARGIN)
            return str(body["access_token"])
        raise SourceError("ServiceTitan sign-in kept failing; try again later")

    def _expire_token(self) -> None:
        with self._token_lock:
            self._token = None
            self._token_expires = 0.0

    # ------------------------------------------------------------------ calls
    def path(self, module: str, resource: str) -> str:
        return f"{module}/v2/tenant/{self.endpoint.tenant}/{resource}"

    def get(self, module: str, resource: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET with pacing and retries; one silent token refresh on 401; raises SourceError on refusals."""
        url = self.path(module, resource)
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        for refreshed in (False, True):
            self.pacer.wait()
            try:
                response = self.http.request("GET", url, params=query)
            except DestinationError as exc:
                if exc.status == 401 and not refreshed:
                    self._expire_token()
                    continue
                if exc.status == 401:
                    raise SourceError(self._why_unauthorized(url, query)) from exc
                raise SourceError(f"cannot reach ServiceTitan at {self.endpoint.base_url}: {exc}") from exc
            return response
        raise SourceError(self._why_unauthorized(url, query))  # pragma: no cover - loop always returns/raises

    def _why_unauthorized(self, url: str, query: dict[str, str]) -> str:
        """Ask once more without retries, to tell the user *which* credential the server refused."""
        detail = ""
        try:
            self._plain_requests += 1
            response = self._plain.get(
                urljoin(self.http.base_url, url),
                params=query,
                headers={"Authorization": f"Bearer {self.token()}", "ST-App-Key": self.endpoint.app_key},
            )
            detail = _problem(response)
        except (httpx.HTTPError, MigratorError):
            pass
        hint = "the app key (ST-App-Key)" if "app" in detail.lower() else "the client credentials or app key"
        return f"ServiceTitan refused the call to {url} (401 {detail}); check {hint} with `crmmigrator connect`"

    def get_json(self, module: str, resource: str, params: dict[str, Any] | None = None) -> Any:
        response = self.get(module, resource, params)
        if response.status_code != 200:
            raise SourceError(f"ServiceTitan GET {self.path(module, resource)}: {response.status_code} "
                              f"{_problem(response)}")
        return json.loads(response.content, parse_float=Decimal)  # money stays exact (§1.7)

    def list_all(self, module: str, resource: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every row of a transactional list (``page``/``pageSize`` until ``hasMore`` is false)."""
        size = self.page_size
        page = 1
        while True:
            response = self.get(module, resource, {**(params or {}), "page": page, "pageSize": size})
            if response.status_code == 400 and "pagesize" in response.text.lower() and size > 1:
                # The server caps pageSize lower than we asked: use the cap it names (or halve), restart the walk.
                cap = re.search(r"between\s+1\s+and\s+(\d+)", response.text)
                size = int(cap.group(1)) if cap and int(cap.group(1)) < size else max(1, size // 2)
                self.page_size = size
                page = 1
                continue
            if response.status_code != 200:
                raise SourceError(f"ServiceTitan GET {self.path(module, resource)}: {response.status_code} "
                                  f"{_problem(response)}")
            body = json.loads(response.content, parse_float=Decimal)
            yield from body.get("data") or []
            if not body.get("hasMore"):
                return
            page += 1

    def export_all(
        self, module: str, resource: str, start: str | None, on_token: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        """Every row of an export walk from ``start`` (token or date or None); reports each ``continueFrom``."""
        position = start
        while True:
            params = {"includeRecentChanges": "true"}
            if position:
                params["from"] = position
            response = self.get(module, resource, params)
            if response.status_code == 400 and position and "from" in response.text.lower():
                raise ExpiredToken(_problem(response))
            if response.status_code != 200:
                raise SourceError(f"ServiceTitan GET {self.path(module, resource)}: {response.status_code} "
                                  f"{_problem(response)}")
            body = json.loads(response.content, parse_float=Decimal)
            yield from body.get("data") or []
            token = body.get("continueFrom")
            if token:
                on_token(str(token))
                position = str(token)
            if not body.get("hasMore"):
                return

    def download(self, module: str, resource: str) -> bytes:
        """A binary download; follows a redirect to a pre-signed blob URL without our credentials."""
        response = self.get(module, resource)
        hops = 0
        while response.status_code in (301, 302, 303, 307, 308) and hops < 5:
            location = response.headers.get("Location", "")
            target = urljoin(self.http.base_url, location)
            self.pacer.wait()
            self._plain_requests += 1
            response = self._plain.get(target)
            hops += 1
        if response.status_code != 200:
            raise SourceError(f"ServiceTitan download {self.path(module, resource)}: {response.status_code} "
                              f"{_problem(response)}")
        return response.content


class ExpiredToken(SourceError):
    """A saved export continuation token was refused (tokens can expire, §1.7)."""
