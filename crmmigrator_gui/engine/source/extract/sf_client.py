"""A small Salesforce REST client for extraction: sign-in, retries and request counting.

Why not ``target.http.RetryingHttp``: Salesforce signals its limits differently from Dataverse.
``REQUEST_LIMIT_EXCEEDED`` comes as 403 (retry later for the concurrent long-request limit, stop
for the rolling 24-hour total), row-lock contention as 400 ``UNABLE_TO_LOCK_ROW``, an expired
token as 401 ``INVALID_SESSION_ID`` (sign in again once). The client-credentials token carries no
expiry, so we simply re-mint on 401 (reference salesforce-api §1.3, §1.5, §8.3).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from crmmigrator_gui.engine.errors import MigratorError

RETRY_STATUS = {429, 500, 502, 503, 504}
RETRY_CODES = {"UNABLE_TO_LOCK_ROW", "UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"}


class SourceError(MigratorError):
    """The source org refused or failed a request; nothing was staged."""


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce REST error body (a JSON array) or an OAuth error."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", "")), str(body[0].get("message", ""))
    if isinstance(body, dict):
        return str(body.get("error", "")), str(body.get("error_description", ""))
    return "", str(body)[:200]


class SalesforceClient:
    """Authenticated calls to one org's instance URL.

    Args:
        login_url: where ``/services/oauth2/token`` lives (the My Domain host); None with a static token.
        client_id / secret: client-credentials app; with ``client_id=None`` the secret is a static token.
        instance_url: API host for a static token (client credentials learn it from the token response).
        transport: optional httpx transport (the embedded emulator runs in-process over WSGI).
    """

    def __init__(
        self,
        *,
        login_url: str | None,
        client_id: str | None,
        secret: str,
        instance_url: str | None = None,
        token_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 120.0,
    ) -> None:
        self._login_url = (login_url or "").rstrip("/")
        self._token_url = token_url
        self._client_id = client_id
        self._secret = secret
        self._static = client_id is None
        self.instance_url = (instance_url or login_url or "").rstrip("/")
        self._token: str | None = secret if self._static else None
        self._max_retries = max_retries
        self._sleep = sleep
        self.requests = 0
        self.retries = 0
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"Sforce-Call-Options": "client=CRMMigrator", "Accept-Encoding": "gzip"},
        )

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ auth
    def _sign_in(self) -> None:
        if self._static:
            raise SourceError("the source org refused the stored token (401); run `connect source` again")
        url = self._token_url or f"{self._login_url}/services/oauth2/token"
        response = self._send(
            "POST",
            url,
            data={"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._secret},
            authorized=False,
        )
        if response.status_code != 200:
            code, message = error_of(response)
            raise SourceError(f"sign-in to the source org failed: {code} {message}".strip())
        body = response.json()
        self._token = str(body["access_token"])
        self.instance_url = str(body.get("instance_url") or self.instance_url).rstrip("/")

    # ------------------------------------------------------------------ requests
    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.instance_url}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with sign-in, retries and backoff; returns a 2xx response or raises SourceError."""
        if self._token is None:
            self._sign_in()
        attempt = 0
        signed_in_again = False
        while True:
            response = self._send(method, self.url(path), **kwargs)
            if response.status_code < 300:
                return response
            code, message = error_of(response)
            if response.status_code == 401 and not signed_in_again:
                signed_in_again = True
                self._sign_in()
                continue
            retry = response.status_code in RETRY_STATUS or code in RETRY_CODES
            if response.status_code == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                if "TotalRequests" in message:
                    raise SourceError(
                        "the source org's 24-hour API allowance is used up (REQUEST_LIMIT_EXCEEDED); "
                        "extract again when the window rolls: nothing was staged"
                    )
                retry = True  # ConcurrentPerOrgLongTxn: too many long requests at once, retry later
            if retry and attempt < self._max_retries:
                attempt += 1
                self.retries += 1
                self._backoff(attempt)
                continue
            raise SourceError(f"{method} {path.split('?')[0]} failed: HTTP {response.status_code} {code} {message}")

    def _send(self, method: str, url: str, *, authorized: bool = True, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            headers = dict(kwargs.pop("headers", None) or {})
            if authorized and self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self.requests += 1
            try:
                return self._http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                attempt += 1
                if attempt > self._max_retries:
                    raise SourceError(
                        f"cannot reach the source org at {self.instance_url or self._login_url} "
                        f"({type(exc).__name__}); check the network and extract again"
                    ) from exc
                self.retries += 1
                kwargs["headers"] = headers
                self._backoff(attempt)

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(10.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2))

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()
