"""OAuth flows, session checks, discovery, limits and fault injection (reference §1, §2.1, §8, §11)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from crmmigrator_gui.sandbox.faults import DroppedConnection
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import BASE, V, client_fixture, make_client, sb_fixture  # noqa: F401

TOKEN = "/services/oauth2/token"
FIELDS = {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_client_credentials_token_fields_and_use(sb: SalesforceSandbox) -> None:
    raw = make_client(sb, token=False)
    r = raw.post(TOKEN, data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "sec"})
    assert r.status_code == 200
    body = r.json()
    assert FIELDS <= body.keys()
    assert "refresh_token" not in body
    assert "expires_in" not in body
    assert body["instance_url"] == BASE
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit()
    assert len(body["issued_at"]) == 13
    sig = base64.b64encode(hmac_sha256(b"sec", (body["id"] + body["issued_at"]).encode())).decode()
    assert body["signature"] == sig
    r = raw.get(f"{V}/sobjects", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200
    ident = raw.get(body["id"].replace(BASE, ""), headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ident.status_code == 200
    assert ident.json()["user_id"] == sb.admin_id


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    import hmac

    return hmac.new(key, msg, hashlib.sha256).digest()


def test_client_credentials_refused_on_login_host(sb: SalesforceSandbox) -> None:
    raw = httpx.Client(transport=httpx.WSGITransport(app=sb), base_url="https://login.salesforce.com")
    r = raw.post(TOKEN, data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "request not supported on this domain"}


def test_pkce_authorization_code_and_refresh(sb: SalesforceSandbox) -> None:
    raw = make_client(sb, token=False)
    verifier = "v" * 20 + "-._~" + "A1" * 15
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://localhost:1717/OauthRedirect"
    r = raw.get(
        "/services/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "desktop",
            "redirect_uri": redirect,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "api refresh_token",
            "state": "xyz",
        },
    )
    assert r.status_code == 302
    loc = urlparse(r.headers["Location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == redirect
    q = parse_qs(loc.query)
    assert q["state"] == ["xyz"]
    form = {"grant_type": "authorization_code", "code": q["code"][0], "client_id": "desktop", "redirect_uri": redirect}
    bad = raw.post(TOKEN, data={**form, "code_verifier": "w" * 50})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    # the failed attempt consumed the code, as a real one-time code would be
    r = raw.get(
        "/services/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "desktop",
            "redirect_uri": redirect,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "api refresh_token",
        },
    )
    form["code"] = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    mismatch = raw.post(TOKEN, data={**form, "redirect_uri": "http://localhost:1718/x", "code_verifier": verifier})
    assert mismatch.status_code == 400
    r = raw.get(
        "/services/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "desktop",
            "redirect_uri": redirect,
            "code_challenge": challenge,
            "scope": "api refresh_token",
        },
    )
    form["code"] = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    ok = raw.post(TOKEN, data={**form, "code_verifier": verifier})
    assert ok.status_code == 200, ok.text
    tokens = ok.json()
    assert FIELDS <= tokens.keys()
    assert tokens["refresh_token"]
    sb.expire_tokens()
    r = raw.get(f"{V}/limits", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    ref = raw.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "desktop"}
    )
    assert ref.status_code == 200
    assert "refresh_token" not in ref.json()
    r = raw.get(f"{V}/limits", headers={"Authorization": f"Bearer {ref.json()['access_token']}"})
    assert r.status_code == 200
    gone = raw.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "desktop"})
    assert gone.status_code == 400
    assert gone.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_authorize_rejects_non_loopback_redirect(sb: SalesforceSandbox) -> None:
    r = make_client(sb, token=False).get(
        "/services/oauth2/authorize",
        params={"response_type": "code", "client_id": "c", "redirect_uri": "https://evil.example/cb"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "redirect_uri_mismatch"


def test_jwt_bearer(sb: SalesforceSandbox) -> None:
    raw = make_client(sb, token=False)
    claims = {
        "iss": "consumer",
        "sub": "integration@crmmigrator.sandbox",
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 120,
    }
    assertion = f"{_b64({'alg': 'RS256'})}.{_b64(claims)}.c2lnbmF0dXJl"
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    r = raw.post(TOKEN, data={"grant_type": grant, "assertion": assertion})
    assert r.status_code == 200
    assert "refresh_token" not in r.json()
    assert r.json()["id"].endswith(sb.admin_id)
    expired = f"{_b64({'alg': 'RS256'})}.{_b64({**claims, 'exp': 1})}.c2ln"
    assert raw.post(TOKEN, data={"grant_type": grant, "assertion": expired}).json()["error"] == "invalid_grant"
    hs = f"{_b64({'alg': 'HS256'})}.{_b64(claims)}.c2ln"
    assert raw.post(TOKEN, data={"grant_type": grant, "assertion": hs}).status_code == 400
    assert raw.post(TOKEN, data={"grant_type": grant, "assertion": "garbage"}).status_code == 400
    other_aud = f"{_b64({'alg': 'RS256'})}.{_b64({**claims, 'aud': 'https://x.example'})}.c2ln"
    assert raw.post(TOKEN, data={"grant_type": grant, "assertion": other_aud}).status_code == 400


def test_unsupported_grant(sb: SalesforceSandbox) -> None:
    r = make_client(sb, token=False).post(TOKEN, data={"grant_type": "magic"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc"])
def test_invalid_session(sb: SalesforceSandbox, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = make_client(sb, token=False).get(f"{V}/sobjects", headers=headers)
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_versions_resources_and_limits(client: httpx.Client) -> None:
    versions = client.get("/services/data/").json()
    assert [v["version"] for v in versions] == [f"{n}.0" for n in range(58, 67)]
    assert versions[4] == {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}
    res = client.get(f"{V}/").json()
    assert res["sobjects"] == f"{V}/sobjects"
    assert res["jobs"]["ingest"] == f"{V}/jobs/ingest"
    r = client.get(f"{V}/limits")
    used, limit = r.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")
    assert limit == "100000"
    assert r.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 100000 - int(used)}
    for version in ("v57.0", "v67.0"):
        r = client.get(f"/services/data/{version}/sobjects")
        assert r.status_code == 404
        assert r.json()[0]["errorCode"] == "NOT_FOUND"
    assert client.get("/services/data/v30.0/sobjects").status_code == 410
    assert client.get("/services/data/v66.0/sobjects").status_code == 200


def test_daily_budget_exhausted() -> None:
    sb = SalesforceSandbox(daily_api_limit=3)
    c = make_client(sb)
    seen = [c.get(f"{V}/sobjects/Account/describe") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 403]
    assert seen[2].headers["Sforce-Limit-Info"] == "api-usage=3/3"
    assert seen[3].headers["Sforce-Limit-Info"] == "api-usage=4/3"
    assert seen[3].json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    sb.close()


@pytest.mark.parametrize(
    ("spec", "status", "code"),
    [
        ("503=1", 503, "SERVER_UNAVAILABLE"),
        ("429=1", 403, "REQUEST_LIMIT_EXCEEDED"),
        ("500=1", 500, "UNKNOWN_EXCEPTION"),
        ("lock=1", 400, "UNABLE_TO_LOCK_ROW"),
    ],
)
def test_faults_in_salesforce_shape(spec: str, status: int, code: str) -> None:
    """429 is not how Salesforce throttles: injected 429s answer 403 REQUEST_LIMIT_EXCEEDED (reference §9)."""
    sb = SalesforceSandbox(faults=spec)
    c = make_client(sb)
    r = c.post(f"{V}/sobjects/Account", json={"Name": "A"})
    assert r.status_code == status
    assert r.json()[0]["errorCode"] == code
    assert "Sforce-Limit-Info" in r.headers
    if spec == "lock=1":  # reads never lock
        assert c.get(f"{V}/sobjects").status_code == 200
    sb.close()


def test_drop_fault_raises() -> None:
    sb = SalesforceSandbox(faults="drop=1")
    with pytest.raises(DroppedConnection):
        make_client(sb).get(f"{V}/sobjects")
    sb.close()


def test_request_count_and_add_user(sb: SalesforceSandbox, client: httpx.Client) -> None:
    before = sb.request_count
    client.get(f"{V}/sobjects")
    assert sb.request_count == before + 1
    uid = sb.add_user("Pat Tech", "pat@example.com")
    assert uid.startswith("005")
    assert len(uid) == 18
    assert sb.add_user("Pat Tech", "pat@example.com", active=False) == uid
    row = client.get(f"{V}/sobjects/User/{uid}").json()
    assert row["Name"] == "Pat Tech"
    assert row["IsActive"] is False
