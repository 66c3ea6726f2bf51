"""ServiceTitan emulator: token endpoint, the two required headers, tenant checks (reference §1.2)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client, fetch_token, raw_client

CUSTOMERS = "/crm/v2/tenant/1234567/customers"


@pytest.fixture(scope="module")
def sb() -> Iterator[ServiceTitanSandbox]:
    sandbox = ServiceTitanSandbox(records=50, rate_limit_per_second=10_000)
    yield sandbox
    sandbox.close()


@pytest.fixture
def raw(sb: ServiceTitanSandbox) -> Iterator[httpx.Client]:
    with raw_client(sb) as client:
        yield client


def form(sb: ServiceTitanSandbox, **over: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret, **over}


def test_token_flow(sb: ServiceTitanSandbox, raw: httpx.Client) -> None:
    r = raw.post("/connect/token", data=form(sb))
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"]
    assert isinstance(body["scope"], str)
    assert r.headers["cache-control"] == "no-store"
    ok = raw.get(CUSTOMERS, headers={"Authorization": f"Bearer {body['access_token']}", "ST-App-Key": sb.app_key})
    assert ok.status_code == 200


def test_credentials_are_documented_constants(sb: ServiceTitanSandbox) -> None:
    assert sb.client_id.startswith("cid.")
    assert sb.client_secret.startswith("cs1.")
    assert sb.app_key.startswith("ak1.")
    assert ServiceTitanSandbox(records=10).app_key == sb.app_key


@pytest.mark.parametrize("grant", ["authorization_code", "password", "refresh_token"])
def test_other_grant_types_rejected(sb: ServiceTitanSandbox, raw: httpx.Client, grant: str) -> None:
    r = raw.post("/connect/token", data=form(sb, grant_type=grant))
    assert r.status_code == 400
    assert r.json() == {"error": "unsupported_grant_type"}


def test_bad_client_secret(sb: ServiceTitanSandbox, raw: httpx.Client) -> None:
    r = raw.post("/connect/token", data=form(sb, client_secret="cs1.wrong"))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_client")
    r = raw.post("/connect/token", data=form(sb, client_id="cid.unknown"))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_client")


def test_basic_auth_client_credentials(sb: ServiceTitanSandbox, raw: httpx.Client) -> None:
    good = base64.b64encode(f"{sb.client_id}:{sb.client_secret}".encode()).decode()
    grant = {"grant_type": "client_credentials"}
    r = raw.post("/connect/token", data=grant, headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200
    bad = base64.b64encode(f"{sb.client_id}:nope".encode()).decode()
    r = raw.post("/connect/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {bad}"})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")


def test_token_endpoint_only_accepts_post(raw: httpx.Client) -> None:
    assert raw.get("/connect/token").status_code == 405


def _problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"type", "title", "status", "traceId", "errors", "data"}
    assert body["status"] == status
    return body


def test_both_headers_required(sb: ServiceTitanSandbox, raw: httpx.Client) -> None:
    token = fetch_token(raw, sb)
    bearer = {"Authorization": f"Bearer {token}"}
    body = _problem(raw.get(CUSTOMERS, headers=bearer), 401)
    assert "ST-App-Key" in body["errors"]
    r = raw.get(CUSTOMERS, headers={"ST-App-Key": sb.app_key})
    _problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = _problem(raw.get(CUSTOMERS, headers={**bearer, "ST-App-Key": "ak1.other"}), 401)
    assert "ST-App-Key" in body["errors"]
    r = raw.get(CUSTOMERS, headers={"Authorization": "Bearer not-issued", "ST-App-Key": sb.app_key})
    _problem(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    _problem(raw.get(CUSTOMERS, headers={"Authorization": f"Basic {token}", "ST-App-Key": sb.app_key}), 401)


def test_expired_token(sb: ServiceTitanSandbox) -> None:
    with api_client(sb) as client:
        assert client.get(CUSTOMERS).status_code == 200
        sb.expire_tokens()
        r = client.get(CUSTOMERS)
        _problem(r, 401)
        assert "expired" in r.headers["www-authenticate"]


def test_short_token_ttl_is_configurable() -> None:
    sandbox = ServiceTitanSandbox(records=10, faults="token_ttl=60")
    with raw_client(sandbox) as raw:
        assert raw.post("/connect/token", data=form(sandbox)).json()["expires_in"] == 60
    sandbox.close()


def test_tenant_checks(sb: ServiceTitanSandbox) -> None:
    with api_client(sb) as client:
        body = _problem(client.get("/crm/v2/tenant/7654321/customers"), 403)
        assert "tenant" in body["errors"]
        _problem(client.get("/crm/v2/tenant/abc/customers"), 404)
        _problem(client.get("/nosuchmodule/v2/tenant/1234567/customers"), 404)
        _problem(client.get("/crm/v2/tenant/1234567/no-such-resource"), 404)
        _problem(client.get("/crm/v2/tenant/1234567/customers/999"), 404)
        _problem(client.post(CUSTOMERS, json={}), 405)


def test_auth_checked_before_tenant(raw: httpx.Client) -> None:
    _problem(raw.get("/crm/v2/tenant/7654321/customers"), 401)


def test_prefixes_cover_all_routes(sb: ServiceTitanSandbox) -> None:
    assert "/connect/token" in sb.prefixes
    for prefix in ("/crm/v2/", "/jpm/v2/", "/dispatch/v2/", "/settings/v2/", "/accounting/v2/", "/pricebook/v2/",
                   "/forms/v2/", "/sales/v2/", "/marketing/v2/"):
        assert prefix in sb.prefixes
