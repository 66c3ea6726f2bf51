"""OAuth client-credentials token endpoint, per-call credential checks and the per-app rate limit.

Follows reference §1.2: ``POST /connect/token`` with form-encoded ``grant_type=client_credentials``,
``client_id``, ``client_secret`` (client credentials is the only grant); every resource call needs
``Authorization: Bearer <token>`` **and** ``ST-App-Key``; the limit is 60 requests per second per
(app key, tenant) pair and a 429 carries ``Retry-After``.

Choices where §1 is silent or [C] (documented, configurable through ``faults`` extras):

* token lifetime 900 s (``token_ttl=…``), opaque random tokens, kept in memory (a restart logs clients out,
  which a client must survive anyway);
* bad client credentials answer 400 ``invalid_client`` (IdentityServer, which serves ``/connect/token``,
  does this for form-posted credentials) and 401 with ``WWW-Authenticate: Basic`` when the client sent
  them in an ``Authorization: Basic`` header (RFC 6749 §5.2);
* a missing/unknown/expired bearer token or a missing/unknown app key is 401 problem details;
* the limiter is a sliding one-second window; ``Retry-After`` is the whole seconds until a slot frees
  (at least 1).
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import threading
import time
from collections import deque
from urllib.parse import parse_qsl, unquote

from .errors import STError, unauthorized

SCOPE = "tn.crm tn.jpm tn.dispatch tn.settings tn.accounting tn.sales tn.pricebook tn.forms tn.marketing"


class Credentials:
    """The fixed, documented credentials the emulator accepts (same for every instance, by design)."""

    client_id = "cid.crmmigrator-sandbox"
    client_secret = "cs1.crmmigrator-sandbox-secret"
    app_key = "ak1.crmmigrator-sandbox-app"


class TokenIssuer:
    """Issues and validates bearer tokens. Thread-safe."""

    def __init__(self, ttl: float = 900.0):
        self.ttl = ttl
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def token_response(self, body: bytes, authorization: str) -> tuple[int, dict[str, str], dict]:
        """Answer ``POST /connect/token``; returns (status, headers, json body)."""
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = authorization.lower().startswith("basic ")
        if basic:
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raw = ""
            cid, _, secret = raw.partition(":")
            client_id, client_secret = unquote(cid), unquote(secret)
        grant = form.get("grant_type", "")
        if not grant:
            return 400, {}, {"error": "invalid_request", "error_description": "grant_type is missing"}
        if grant != "client_credentials":
            return 400, {}, {"error": "unsupported_grant_type"}
        if client_id != Credentials.client_id or client_secret != Credentials.client_secret:
            if basic:
                return 401, {"WWW-Authenticate": 'Basic realm="auth"'}, {"error": "invalid_client"}
            return 400, {}, {"error": "invalid_client"}
        token = secrets.token_urlsafe(48)
        now = time.monotonic()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.ttl
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return 200, headers, {"access_token": token, "expires_in": int(self.ttl), "token_type": "Bearer",
                              "scope": SCOPE}

    def check(self, authorization: str, app_key: str) -> None:
        """Raise 401 unless both the bearer token and the app key are valid."""
        if not authorization:
            raise unauthorized("Authorization header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Authorization header must be 'Bearer <access token>'.", token_error="invalid_request")
        with self._lock:
            expires = self._tokens.get(token.strip())
        if expires is None:
            raise unauthorized("The access token is invalid.", token_error="invalid_token")
        if expires <= time.monotonic():
            raise unauthorized("The access token expired.", token_error="invalid_token")
        if not app_key:
            raise STError(401, "Unauthorized", {"ST-App-Key": ["ST-App-Key header is missing."]})
        if app_key != Credentials.app_key:
            raise STError(401, "Unauthorized", {"ST-App-Key": ["The application key is invalid."]})

    def expire_all(self) -> None:
        """Test hook: make every issued token expired (exercises the client's refresh path)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)


class RateLimiter:
    """Sliding one-second window per (app key, tenant). Only admitted requests count."""

    def __init__(self, per_second: int):
        self.per_second = per_second
        self._hits: dict[tuple[str, int], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, app_key: str, tenant: int) -> None:
        now = time.monotonic()
        with self._lock:
            window = self._hits.setdefault((app_key, tenant), deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.per_second:
                wait = max(1, math.ceil(1.0 - (now - window[0])))
                raise STError(
                    429,
                    "Too Many Requests",
                    {"": [f"Rate limit of {self.per_second} requests per second per application exceeded."]},
                    {"Retry-After": str(wait)},
                )
            window.append(now)
