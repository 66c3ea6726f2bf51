"""Service-level behaviour: auth, routing, common headers, service documents (items 1-2, 11 headers)."""

from __future__ import annotations

import re

import httpx

from .conftest import API, make_client

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_missing_token_gets_bearer_challenge(sandbox):
    with httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url=API) as anon:
        r = anon.get("WhoAmI")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith(
            "Bearer authorization_uri=https://login.microsoftonline"
        )
        assert set(r.json()["error"]) == {"code", "message"}
        assert anon.get("WhoAmI", headers={"Authorization": "Bearer "}).status_code == 401


def test_whoami_returns_seeded_application_user(client, sandbox):
    r = client.get("WhoAmI")
    assert r.status_code == 200
    body = r.json()
    assert body["UserId"] == sandbox.whoami_user_id
    assert GUID.match(body["BusinessUnitId"])
    assert GUID.match(body["OrganizationId"])
    user = client.get(f"systemusers({sandbox.whoami_user_id})", params={"$select": "fullname"}).json()
    assert user["fullname"] == "# CRM Migrator App"


def test_common_headers_on_every_response(client):
    r = client.get("WhoAmI")
    assert r.headers["OData-Version"] == "4.0"
    assert r.headers["x-ms-dop-hint"] == "4"
    assert GUID.match(r.headers["x-ms-service-request-id"])
    bad = client.get("Accounts")
    assert bad.headers["x-ms-dop-hint"] == "4"
    assert "x-ms-service-request-id" in bad.headers


def test_entity_sets_are_case_sensitive(client):
    r = client.get("Account")
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "0x8006088a", "message": "Resource not found for the segment 'Account'."}
    }
    assert client.get("accounts").status_code == 200


def test_service_document_and_csdl(client):
    sets = {v["name"] for v in client.get("").json()["value"]}
    assert {"accounts", "contacts", "opportunities", "transactioncurrencies", "annotations"} <= sets
    r = client.get("$metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert '<EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/>' in r.text
    assert '<NavigationProperty Name="parentcustomerid_account" Type="mscrm.account"/>' in r.text


def test_seed_rows_exist(client):
    assert client.get("transactioncurrencies", params={"$filter": "isocurrencycode eq 'USD'"}).json()["value"]
    assert client.get("uomschedules", params={"$filter": "name eq 'Default Unit'"}).json()["value"]
    assert client.get("uoms", params={"$filter": "name eq 'Primary Unit'"}).json()["value"]
    assert client.get("pricelevels", params={"$filter": "name eq 'Default Price List'"}).json()["value"]
    assert len(client.get("businessunits").json()["value"]) == 1
    assert len(client.get("teams").json()["value"]) == 1
    org = client.get("organizations", params={"$select": "maxuploadfilesize"}).json()["value"]
    assert org[0]["maxuploadfilesize"] == 5242880


def test_request_count_counts_http_requests(sandbox, client):
    before = sandbox.request_count
    client.get("WhoAmI")
    client.get("nope")
    assert sandbox.request_count == before + 2


def test_add_user_is_idempotent_by_email(sandbox, client):
    uid = sandbox.add_user("Dana Tech", "dana@example.com")
    assert sandbox.add_user("Dana Tech", "DANA@example.com", disabled=True) == uid
    row = client.get(
        f"systemusers({uid})", params={"$select": "fullname,internalemailaddress,isdisabled"}
    ).json()
    assert row["fullname"] == "Dana Tech"
    assert row["isdisabled"] is True
    found = client.get("systemusers", params={"$filter": "internalemailaddress eq 'dana@example.com'"})
    assert [u["systemuserid"] for u in found.json()["value"]] == [uid]


def test_systemusers_cannot_be_addressed_by_named_key(client, sandbox):
    r = client.get(f"systemusers(systemuserid={sandbox.whoami_user_id})")
    assert r.status_code == 400
    assert "The key in the request URI is not valid" in r.json()["error"]["message"]


def test_persistence_across_restart(tmp_path):
    from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

    from .conftest import create, source_key

    db = tmp_path / "dv.sqlite"
    sb = DataverseSandbox(db, key_activation_seconds=0)
    with make_client(sb) as c:
        source_key(c)
        rid = create(c, "accounts", {"name": "Persisted", "new_sourcesystemid": "P-1"})
        who = sb.whoami_user_id
    sb.close()
    sb2 = DataverseSandbox(db, key_activation_seconds=0)
    try:
        assert sb2.whoami_user_id == who
        with make_client(sb2) as c:
            row = c.get("accounts(new_sourcesystemid='P-1')", params={"$select": "name"}).json()
            assert row["accountid"] == rid
            assert row["name"] == "Persisted"
            assert len(c.get("transactioncurrencies").json()["value"]) == 1
    finally:
        sb2.close()
