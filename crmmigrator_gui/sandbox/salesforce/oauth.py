"""OAuth 2.0 endpoints (reference §1): token, authorize (+PKCE), revoke, userinfo/identity.

Flows: ``authorization_code`` (code issued by ``/services/oauth2/authorize`` to a loopback redirect,
S256 ``code_verifier`` checked, redirect_uri must be identical), ``refresh_token`` (no rotation),
``client_credentials`` (refused on login./test.salesforce.com hosts, as the real service does), and
``jwt-bearer``. JWT assertions must be well-formed RS256 tokens with iss/sub/aud/exp, aud must be a login
host or this instance, exp must be in the future; the signature is *not* verified (the sandbox has no
connected-app certificate store) — ``sub`` selects the User by Username, else the integration user.
Any client_id is accepted (one implicit connected app); client_credentials needs a client_secret. Token
responses carry the §1.7 fields; ``signature`` = Base64(HMAC-SHA256(client_secret or client_id,
id + issued_at)). Errors use ``{"error","error_description"}`` with HTTP 400 (401 for bad client auth).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlparse

from .errors import OAuthError, SFError, invalid_session, not_found

if TYPE_CHECKING:
    from .app import Request, Result, SalesforceSandbox

GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
CODE_TTL = 15 * 60


def mint(sb: SalesforceSandbox, kind: str, user_id: str, client_id: str, scope: str, extra: dict | None = None) -> str:
    if kind == "access":
        token = f"{sb.org_id[:15]}!AQ{secrets.token_urlsafe(60)}"
    elif kind == "refresh":
        token = "5Aep" + secrets.token_urlsafe(64)
    else:
        token = "aPrx" + secrets.token_urlsafe(40)
    sb.store.execute(
        "INSERT INTO _tokens VALUES (?,?,?,?,?,?,?)",
        (token, kind, user_id, client_id, scope, time.time(), json.dumps(extra or {})),
    )
    return token


def lookup(sb: SalesforceSandbox, token: str, kind: str) -> dict[str, Any] | None:
    rows = sb.store.execute(
        "SELECT user_id, client_id, scope, issued, extra FROM _tokens WHERE token=? AND kind=?", (token, kind)
    )
    if not rows:
        return None
    user_id, client_id, scope, issued, extra = rows[0]
    return {"user_id": user_id, "client_id": client_id, "scope": scope, "issued": issued, "extra": json.loads(extra)}


def handle(sb: SalesforceSandbox, req: Request) -> Result:
    path = req.path.rstrip("/")
    if path.startswith("/id/"):
        return _identity(sb, req, path)
    name = path.rsplit("/", 1)[-1]
    if name == "token":
        if req.method != "POST":
            raise OAuthError("invalid_request", "must use HTTP POST", 400)
        return 200, {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}, _token(sb, req)
    if name == "authorize":
        return _authorize(sb, req)
    if name == "revoke":
        token = _form(req).get("token") or req.query.get("token", "")
        if not token or not sb.store.execute("SELECT 1 FROM _tokens WHERE token=?", (token,)):
            raise OAuthError("unsupported_token_type", "this token type is not supported")
        sb.store.execute("DELETE FROM _tokens WHERE token=?", (token,))
        return 200, {}, None
    if name == "userinfo":
        return _identity(sb, req, "")
    if name == "introspect":
        token = _form(req).get("token", "")
        found = lookup(sb, token, "access") or lookup(sb, token, "refresh")
        if found is None:
            return 200, {}, {"active": False}
        return (
            200,
            {},
            {
                "active": True,
                "scope": found["scope"],
                "client_id": found["client_id"],
                "sub": found["user_id"],
                "token_type": "access_token",
                "iat": int(found["issued"]),
            },
        )
    raise not_found()


def _form(req: Request) -> dict[str, str]:
    ctype = req.headers.get("content-type", "")
    if "json" in ctype:
        try:
            return {k: str(v) for k, v in json.loads(req.body or b"{}").items()}
        except ValueError:
            return {}
    return dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))


def _client(req: Request, form: dict[str, str]) -> tuple[str, str]:
    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            return cid, secret
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "invalid client credentials", 401) from exc
    return form.get("client_id", ""), form.get("client_secret", "")


def _token(sb: SalesforceSandbox, req: Request) -> dict[str, Any]:
    form = _form(req)
    grant = form.get("grant_type", "")
    client_id, secret = _client(req, form)
    host = urlparse(req.origin).hostname or ""
    if grant == "client_credentials":
        if host in LOGIN_HOSTS:
            raise OAuthError("invalid_grant", "request not supported on this domain")
        if not client_id or not secret:
            raise OAuthError("invalid_client", "invalid client credentials", 400)
        return _response(sb, req, sb.admin_id, client_id, secret, "api", refresh=False)
    if grant == "authorization_code":
        code = form.get("code", "")
        found = lookup(sb, code, "code")
        if not code or found is None:
            raise OAuthError("invalid_grant", "invalid authorization code")
        sb.store.execute("DELETE FROM _tokens WHERE token=?", (code,))
        extra = found["extra"]
        if time.time() - found["issued"] > CODE_TTL:
            raise OAuthError("invalid_grant", "expired authorization code")
        if client_id != found["client_id"]:
            raise OAuthError("invalid_client", "client identifier invalid", 400)
        if form.get("redirect_uri", "") != extra.get("redirect_uri"):
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        challenge = extra.get("code_challenge")
        verifier = form.get("code_verifier", "")
        if challenge:
            if not verifier:
                raise OAuthError("invalid_request", "missing code_verifier")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not 43 <= len(verifier) <= 128 or digest != challenge:
                raise OAuthError("invalid_grant", "invalid code verifier")
        elif not secret:
            raise OAuthError("invalid_client", "invalid client credentials", 400)
        scope = found["scope"]
        return _response(sb, req, found["user_id"], client_id, secret, scope, refresh=_wants_refresh(scope))
    if grant == "refresh_token":
        found = lookup(sb, form.get("refresh_token", ""), "refresh")
        if found is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        if client_id and client_id != found["client_id"]:
            raise OAuthError("invalid_client", "client identifier invalid", 400)
        return _response(sb, req, found["user_id"], found["client_id"], secret, found["scope"], refresh=False)
    if grant == GRANT_JWT:
        user_id = _jwt_user(sb, req, form.get("assertion", ""))
        return _response(sb, req, user_id, "jwt", "", "api", refresh=False)
    if grant == "password":
        raise OAuthError("invalid_grant", "authentication failure")
    raise OAuthError("unsupported_grant_type", "grant type not supported")


def _wants_refresh(scope: str) -> bool:
    parts = scope.split()
    return "refresh_token" in parts or "offline_access" in parts or "full" in parts


def _response(
    sb: SalesforceSandbox, req: Request, user_id: str, client_id: str, secret: str, scope: str, *, refresh: bool
) -> dict[str, Any]:
    issued = str(int(time.time() * 1000))
    identity = f"{req.origin}/id/{sb.org_id}/{user_id}"
    out: dict[str, Any] = {"access_token": mint(sb, "access", user_id, client_id, scope)}
    if refresh:
        out["refresh_token"] = mint(sb, "refresh", user_id, client_id, scope)
    sig = hmac.new((secret or client_id).encode(), (identity + issued).encode(), hashlib.sha256).digest()
    out.update(
        signature=base64.b64encode(sig).decode(),
        scope=scope,
        instance_url=req.origin,
        id=identity,
        token_type="Bearer",
        issued_at=issued,
    )
    return out


def _b64json(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _jwt_user(sb: SalesforceSandbox, req: Request, assertion: str) -> str:
    parts = assertion.split(".")
    try:
        if len(parts) != 3 or not parts[2]:
            raise ValueError("three parts")
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "invalid assertion")
    if not all(claims.get(k) for k in ("iss", "sub", "aud", "exp")):
        raise OAuthError("invalid_grant", "invalid assertion")
    auds = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    allowed = {f"https://{h}" for h in LOGIN_HOSTS} | {req.origin}
    if not any(str(a).rstrip("/") in allowed for a in auds):
        raise OAuthError("invalid_grant", "audience is invalid")
    try:
        expired = float(claims["exp"]) < time.time()
    except (TypeError, ValueError) as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if expired:
        raise OAuthError("invalid_grant", "expired authorization code")
    user = sb.records.find_one(sb.catalog.objects["User"], "Username", claims["sub"])
    if user is not None and user.get("IsActive") is False:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    return user["Id"] if user else sb.admin_id


def _authorize(sb: SalesforceSandbox, req: Request) -> Result:
    """No login page: the sandbox user approves at once and the browser is redirected with ``code``."""
    q = req.query
    redirect = q.get("redirect_uri", "")
    parsed = urlparse(redirect)
    if not q.get("client_id"):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if parsed.scheme not in ("http", "https") or parsed.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
    if q.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response type not supported")
    if q.get("code_challenge") and q.get("code_challenge_method", "S256") != "S256":
        raise OAuthError("invalid_request", "invalid code_challenge_method")
    scope = q.get("scope") or "api refresh_token"
    code = mint(
        sb,
        "code",
        sb.admin_id,
        q["client_id"],
        scope,
        {"redirect_uri": redirect, "code_challenge": q.get("code_challenge")},
    )
    params = {"code": code}
    if "state" in q:
        params["state"] = q["state"]
    sep = "&" if parsed.query else "?"
    return 302, {"Location": f"{redirect}{sep}{urlencode(params)}"}, None


def _identity(sb: SalesforceSandbox, req: Request, path: str) -> Result:
    auth = req.headers.get("authorization", "")
    found = lookup(sb, auth.partition(" ")[2].strip(), "access") or lookup(
        sb, req.query.get("oauth_token", ""), "access"
    )
    if found is None:
        raise SFError(403, "Bad_OAuth_Token", "Bad_OAuth_Token") if path else invalid_session()
    user = sb.store.get(sb.catalog.objects["User"], found["user_id"])
    row = user[0] if user else {}
    base = f"{req.origin}/services/data/v{{version}}"
    return (
        200,
        {},
        {
            "id": f"{req.origin}/id/{sb.org_id}/{found['user_id']}",
            "user_id": found["user_id"],
            "organization_id": sb.org_id,
            "username": row.get("Username"),
            "display_name": row.get("Name"),
            "email": row.get("Email"),
            "active": row.get("IsActive", True),
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": base + "/",
                "sobjects": base + "/sobjects/",
                "query": base + "/query/",
                "profile": f"{req.origin}/{found['user_id']}",
            },
            "is_app_installed": True,
        },
    )
