"""ContentVersion (JSON + multipart), Tooling custom fields/objects and field-level security (reference §6.1, §9)."""

from __future__ import annotations

import base64

import httpx

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import V, add_field, client_fixture, create, sb_fixture  # noqa: F401


def test_content_version_json_creates_document_and_link(client: httpx.Client) -> None:
    case = create(client, "Case", {"Subject": "Boiler"})
    data = b"\x89PNG\r\n\x1a\n fake"
    r = client.post(
        f"{V}/sobjects/ContentVersion",
        json={
            "Title": "Signature job 77",
            "PathOnClient": "sig.png",
            "VersionData": base64.b64encode(data).decode(),
            "FirstPublishLocationId": case,
        },
    )
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    assert vid.startswith("068")
    ver = client.get(f"{V}/sobjects/ContentVersion/{vid}").json()
    assert ver["ContentDocumentId"].startswith("069")
    assert ver["ContentSize"] == len(data)
    assert ver["VersionData"] == f"{V}/sobjects/ContentVersion/{vid}/VersionData"
    assert ver["FileExtension"] == "png"
    assert ver["IsLatest"] is True
    blob = client.get(f"{V}/sobjects/ContentVersion/{vid}/VersionData")
    assert blob.status_code == 200
    assert blob.content == data
    q = client.get(f"{V}/query", params={"q": f"SELECT ContentDocumentId FROM ContentVersion WHERE Id = '{vid}'"})
    doc = q.json()["records"][0]["ContentDocumentId"]
    links = client.get(
        f"{V}/query",
        params={"q": f"SELECT LinkedEntityId, ShareType FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'"},
    ).json()
    assert [x["LinkedEntityId"] for x in links["records"]] == [case]
    # a new version of the same document
    r = client.post(
        f"{V}/sobjects/ContentVersion",
        json={"PathOnClient": "sig2.png", "VersionData": base64.b64encode(b"v2").decode(), "ContentDocumentId": doc},
    )
    assert r.status_code == 201
    assert client.get(f"{V}/sobjects/ContentVersion/{vid}").json()["IsLatest"] is False
    r = client.post(f"{V}/sobjects/ContentVersion", json={"Title": "no data"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_content_version_multipart(client: httpx.Client) -> None:
    acct = create(client, "Account", {"Name": "Acme"})
    payload = bytes(range(256)) * 40
    boundary = "boundary_string"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="entity_content"\r\n'
            "Content-Type: application/json\r\n\r\n"
            f'{{"Title":"Invoice","PathOnClient":"inv.pdf","FirstPublishLocationId":"{acct}"}}\r\n'
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: form-data; name="VersionData"; filename="inv.pdf"\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = client.post(
        f"{V}/sobjects/ContentVersion",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    assert client.get(f"{V}/sobjects/ContentVersion/{vid}/VersionData").content == payload
    assert client.get(f"{V}/sobjects/ContentVersion/{vid}").json()["FileType"] == "PDF"


def test_tooling_field_hidden_until_field_permissions(sb: SalesforceSandbox, client: httpx.Client) -> None:
    """Reference §9: API-created fields are invisible (describe, SOQL, writes) until FLS is granted."""
    add_field(client, sb, "Case", grant=False)
    fields = [f["name"] for f in client.get(f"{V}/sobjects/Case/describe").json()["fields"]]
    assert "Source_System_ID__c" not in fields
    r = client.get(f"{V}/query", params={"q": "SELECT Source_System_ID__c FROM Case"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = client.post(f"{V}/sobjects/Case", json={"Subject": "x", "Source_System_ID__c": "J-1"})
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = client.post(
        f"{V}/sobjects/FieldPermissions",
        json={
            "ParentId": sb.permset_id,
            "SobjectType": "Case",
            "Field": "Case.Source_System_ID__c",
            "PermissionsRead": True,
        },
    )
    assert r.status_code == 201
    described = {f["name"]: f for f in client.get(f"{V}/sobjects/Case/describe").json()["fields"]}
    f = described["Source_System_ID__c"]
    assert (f["custom"], f["externalId"], f["unique"], f["length"], f["createable"]) == (True, True, True, 64, False)
    r = client.patch(f"{V}/sobjects/Case/Source_System_ID__c/J-1", json={"Subject": "x"})
    assert r.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"  # read-only FLS
    fp = client.get(
        f"{V}/query", params={"q": "SELECT Id FROM FieldPermissions WHERE Field = 'Case.Source_System_ID__c'"}
    )
    fp_id = fp.json()["records"][0]["Id"]
    assert client.patch(f"{V}/sobjects/FieldPermissions/{fp_id}", json={"PermissionsEdit": True}).status_code == 204
    r = client.patch(f"{V}/sobjects/Case/Source_System_ID__c/J-1", json={"Subject": "x"})
    assert r.status_code == 201
    assert r.json()["created"] is True
    r = client.post(
        f"{V}/sobjects/FieldPermissions",
        json={"ParentId": sb.permset_id, "SobjectType": "Case", "Field": "Case.Nope__c", "PermissionsRead": True},
    )
    assert r.status_code == 400


def test_tooling_errors_and_types(sb: SalesforceSandbox, client: httpx.Client) -> None:
    tooling = f"{V}/tooling/sobjects/CustomField"
    r = client.post(
        tooling, json={"FullName": "Account.Source_System_ID__c", "Metadata": {"type": "Text", "length": 10}}
    )
    assert r.status_code == 201
    assert r.json()["id"].startswith("00N")
    assert r.json()["warnings"] == []
    again = client.post(
        tooling, json={"FullName": "Account.Source_System_ID__c", "Metadata": {"type": "Text", "length": 10}}
    )
    assert again.status_code == 400
    assert again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    assert client.post(tooling, json={"FullName": "Account.NoSuffix", "Metadata": {"type": "Text"}}).status_code == 400
    assert client.post(tooling, json={"FullName": "Nope.X__c", "Metadata": {"type": "Text"}}).status_code == 400
    picklist = {
        "label": "Tier",
        "type": "Picklist",
        "valueSet": {
            "restricted": True,
            "valueSetDefinition": {
                "value": [
                    {"fullName": "Gold", "default": False, "label": "Gold"},
                    {"fullName": "Silver", "default": True, "label": "Silver"},
                ]
            },
        },
    }
    assert client.post(tooling, json={"FullName": "Activity.Tier__c", "Metadata": picklist}).status_code == 201
    for obj in ("Task", "Event"):
        client.post(
            f"{V}/sobjects/FieldPermissions",
            json={
                "ParentId": sb.permset_id,
                "SobjectType": obj,
                "Field": f"{obj}.Tier__c",
                "PermissionsRead": True,
                "PermissionsEdit": True,
            },
        )
    task = {f["name"]: f for f in client.get(f"{V}/sobjects/Task/describe").json()["fields"]}["Tier__c"]
    assert task["restrictedPicklist"] is True
    assert [p["value"] for p in task["picklistValues"]] == ["Gold", "Silver"]
    r = client.post(f"{V}/sobjects/Task", json={"Subject": "x", "Tier__c": "Bronze"})
    assert r.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    tid = create(client, "Task", {"Subject": "x"})
    assert client.get(f"{V}/sobjects/Task/{tid}").json()["Tier__c"] == "Silver"


def test_custom_object_and_lookup(sb: SalesforceSandbox, client: httpx.Client) -> None:
    r = client.post(
        f"{V}/tooling/sobjects/CustomObject",
        json={
            "FullName": "Job__c",
            "Metadata": {
                "label": "Job",
                "pluralLabel": "Jobs",
                "nameField": {"type": "AutoNumber", "label": "Job Number", "displayFormat": "J-{0000}"},
                "deploymentStatus": "Deployed",
                "sharingModel": "ReadWrite",
            },
        },
    )
    assert r.status_code == 201
    glob = {o["name"]: o for o in client.get(f"{V}/sobjects").json()["sobjects"]}
    assert glob["Job__c"]["custom"] is True
    assert glob["Job__c"]["keyPrefix"].startswith("a")
    add_field(
        client,
        sb,
        "Job__c",
        "Account__c",
        {"label": "Account", "type": "Lookup", "referenceTo": "Account", "relationshipName": "Jobs"},
    )
    add_field(client, sb, "Job__c")
    acct = create(client, "Account", {"Name": "Acme"})
    r = client.patch(f"{V}/sobjects/Job__c/Source_System_ID__c/J-77", json={"Account__c": acct})
    assert r.status_code == 201
    job = client.get(f"{V}/sobjects/Job__c/{r.json()['id']}").json()
    assert job["Name"] == "J-0001"
    assert job["Id"][:3] == glob["Job__c"]["keyPrefix"]
    rec = client.get(f"{V}/query", params={"q": "SELECT Name, Account__r.Name FROM Job__c"}).json()["records"][0]
    assert rec["Account__r"]["Name"] == "Acme"
    r = client.post(f"{V}/sobjects/Case", json={"Subject": "x"})
    assert r.status_code == 201
    child = client.post(f"{V}/sobjects/Task", json={"Subject": "x", "WhatId": r.json()["id"]})
    assert child.status_code == 201
    rel = {c["relationshipName"] for c in client.get(f"{V}/sobjects/Account/describe").json()["childRelationships"]}
    assert "Jobs__r" in rel
    visit = client.post(
        f"{V}/tooling/sobjects/CustomObject", json={"FullName": "Visit__c", "Metadata": {"label": "Visit"}}
    )
    got = client.get(f"{V}/tooling/sobjects/CustomObject/{visit.json()['id']}")
    assert got.status_code == 200
    assert got.json()["DeveloperName"] == "Visit"
