"""Raw-HTTP conformance with ``requests`` (not httpx) over a real loopback socket.

Cross-checks the transport assumptions of the httpx-based product client: the same flows as Microsoft's SDK
test, written the way third-party Python clients such as ``dataverse-api`` write them - including ``$batch``
bodies with LF-only line endings (the reference asks for CRLF; the real service may answer ``400 0x80048d19``
"Stream was not readable" to LF, but the emulator tolerates it because those clients exist).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from crmmigrator_gui.sandbox.server import start_background

HEADERS = {
    "Authorization": "Bearer raw-requests",
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Content-Type": "application/json; charset=utf-8",
}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server, thread, base = start_background()
    try:
        yield f"{base}/api/data/v9.2/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()


@pytest.fixture
def s(api) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(HEADERS)
        yield session


def _id(response: requests.Response) -> str:
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def test_crud_round_trip(s, api):
    r = s.post(api + "accounts", json={"name": "Raw", "revenue": 1234.5})
    rid = _id(r)
    r = s.get(api + f"accounts({rid})", params={"$select": "name,revenue"})
    assert r.status_code == 200
    assert r.json()["revenue"] == 1234.5
    assert r.headers["ETag"].startswith('W/"')
    r = s.patch(api + f"accounts({rid})", json={"name": "Raw 2"}, headers={"If-Match": "*",
                                                                            "Prefer": "return=representation"})
    assert r.status_code == 200
    assert r.json()["name"] == "Raw 2"
    assert s.delete(api + f"accounts({rid})").status_code == 204
    r = s.get(api + f"accounts({rid})")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x80040217"
    assert s.get(api + "Accounts").json()["error"]["code"] == "0x8006088a"
    r = requests.get(api + "WhoAmI")  # no token
    assert r.status_code == 401
    assert "WWW-Authenticate" in r.headers


def test_metadata_key_and_upsert(s, api):
    r = s.get(api + "EntityDefinitions", params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
                                                 "$filter": "LogicalName eq 'contact'"})
    assert r.json()["value"][0]["EntitySetName"] == "contacts"
    column = {"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_RawKey",
              "AttributeType": "String", "AttributeTypeName": {"Value": "StringType"}, "MaxLength": 50,
              "RequiredLevel": {"Value": "None", "CanBeChanged": True},
              "DisplayName": {"LocalizedLabels": [{"Label": "Raw key", "LanguageCode": 1033}]}}
    assert s.post(api + "EntityDefinitions(LogicalName='contact')/Attributes", json=column).status_code == 204
    r = s.post(api + "EntityDefinitions(LogicalName='contact')/Keys",
               json={"SchemaName": "new_contact_rawkey", "KeyAttributes": ["new_rawkey"],
                     "DisplayName": {"LocalizedLabels": [{"Label": "k", "LanguageCode": 1033}]}})
    assert r.status_code == 204
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = s.get(api + "EntityDefinitions(LogicalName='contact')/Keys").json()["value"]
        if keys[0]["EntityKeyIndexStatus"] == "Active":
            break
        time.sleep(0.05)
    r = s.patch(api + "contacts(new_rawkey='R-1')", json={"lastname": "Created"})
    created = _id(r)
    r = s.patch(api + "contacts(new_rawkey='R-1')", json={"lastname": "Updated"})
    assert _id(r) == created
    r = s.patch(api + "contacts(new_rawkey='R-1')", json={"lastname": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = s.post(api + "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", "@odata.id": "contacts(new_rawkey='R-1')", "lastname": "M1"},
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", "@odata.id": "contacts(new_rawkey='R-2')", "lastname": "M2"},
    ]})
    assert r.status_code == 204
    rows = s.get(api + "contacts", params={"$select": "lastname,new_rawkey", "$filter": "new_rawkey ne null",
                                           "$orderby": "new_rawkey"}).json()["value"]
    assert [(r["new_rawkey"], r["lastname"]) for r in rows] == [("R-1", "M1"), ("R-2", "M2")]


def test_create_multiple_and_paging(s, api):
    targets = [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": f"RawPage {i:03d}"} for i in range(23)]
    r = s.post(api + "accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})
    assert r.status_code == 200
    assert len(r.json()["Ids"]) == 23
    url: str | None = api + "accounts?$select=name&$filter=startswith(name,'RawPage')&$count=true"
    seen, pages = [], 0
    while url:
        r = s.get(url, headers={"Prefer": "odata.maxpagesize=10"})
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = r.json()
        if pages == 0:
            assert body["@odata.count"] == 23
        seen += [v["name"] for v in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 3
    assert seen == [f"RawPage {i:03d}" for i in range(23)]
    assert s.get(api + "accounts", params={"$skip": "10"}).status_code == 400


def _lf_batch(api: str, boundary: str) -> str:
    cs = "changeset_" + uuid.uuid4().hex
    path = api.split("://", 1)[1].split("/", 1)[1]  # api/data/v9.2/
    lines = [
        f"--{boundary}",
        f"Content-Type: multipart/mixed; boundary={cs}",
        "",
        f"--{cs}",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 1",
        "",
        f"POST /{path}accounts HTTP/1.1",
        "Content-Type: application/json; type=entry",
        "",
        json.dumps({"name": "LF parent"}),
        f"--{cs}",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        f"POST {api}contacts HTTP/1.1",
        "Content-Type: application/json; type=entry",
        "",
        json.dumps({"lastname": "LF child", "parentcustomerid_account@odata.bind": "$1"}),
        f"--{cs}--",
        f"--{boundary}",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        f"GET /{path}contacts?$select=lastname,_parentcustomerid_value&$filter=lastname%20eq%20'LF%20child' HTTP/1.1",
        "Accept: application/json",
        "",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\n".join(lines)


def test_lf_only_batch_with_changeset_and_content_id(s, api):
    boundary = "batch_" + uuid.uuid4().hex
    r = s.post(api + "$batch", data=_lf_batch(api, boundary).encode(),
               headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = r.text
    assert text.count("HTTP/1.1 204 No Content") == 2
    assert "HTTP/1.1 200 OK" in text
    assert "changesetresponse_" in text
    parent = s.get(api + "accounts", params={"$filter": "name eq 'LF parent'", "$select": "name"}).json()["value"][0]
    assert f'"_parentcustomerid_value":"{parent["accountid"]}"' in text


def test_batch_failure_without_continue_on_error(s, api):
    boundary = "batch_x"
    body = "\r\n".join([
        f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
        f"POST {api}accounts HTTP/1.1", "Content-Type: application/json", "", json.dumps({"name": "x" * 161}),
        f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
        f"POST {api}accounts HTTP/1.1", "Content-Type: application/json", "", json.dumps({"name": "never"}),
        f"--{boundary}--", ""])
    r = s.post(api + "$batch", data=body.encode(), headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    assert r.status_code == 400
    assert "0x80044331" in r.text
    assert s.get(api + "accounts", params={"$filter": "name eq 'never'"}).json()["value"] == []


def test_requests_over_tls_with_the_sandbox_ca(tmp_path):
    pytest.importorskip("trustme")
    server, thread, base = start_background(data=str(tmp_path / "tls.sqlite"), tls=True)
    try:
        r = requests.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS, verify=server.ca_path, timeout=10)
        assert r.status_code == 200
        assert r.json()["UserId"]
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()


def test_dropped_connection_surfaces_as_connection_error():
    server, thread, base = start_background(faults="drop=1")
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()
