"""sObject Collections and Composite (reference §3.1, §3.2)."""

from __future__ import annotations

import httpx

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import V, client_fixture, create, ext_client_fixture, sb_fixture  # noqa: F401

COLL = f"{V}/composite/sobjects"


def _acct(name: str | None, **extra: object) -> dict:
    rec: dict = {"attributes": {"type": "Account"}, **extra}
    if name is not None:
        rec["Name"] = name
    return rec


def test_collections_create_partial_success_in_order(client: httpx.Client) -> None:
    r = client.post(
        COLL,
        json={
            "allOrNone": False,
            "records": [_acct("A"), {"attributes": {"type": "Contact"}, "FirstName": "x"}, _acct("C")],
        },
    )
    assert r.status_code == 200
    res = r.json()
    assert [x["success"] for x in res] == [True, False, True]
    assert res[0]["id"].startswith("001")
    assert res[0]["errors"] == []
    assert res[1]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [LastName]",
            "fields": ["LastName"],
        }
    ]
    total = client.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Account"}).json()["totalSize"]
    assert total == 2


def test_collections_all_or_none_rolls_back(client: httpx.Client) -> None:
    r = client.post(COLL, json={"allOrNone": True, "records": [_acct("A"), _acct(None), _acct("C")]})
    res = r.json()
    assert r.status_code == 200
    assert [x["success"] for x in res] == [False, False, False]
    assert res[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert res[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert res[2]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert client.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Account"}).json()["totalSize"] == 0


def test_collections_limit_and_type_required(client: httpx.Client) -> None:
    r = client.post(COLL, json={"records": [_acct(f"A{i}") for i in range(201)]})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    r = client.post(COLL, json={"records": [{"Name": "no type"}]})
    assert r.status_code == 200
    assert r.json()[0]["errors"][0]["statusCode"] == "INVALID_TYPE"
    r = client.delete(COLL, params={"ids": ",".join(["001000000000000AAA"] * 201)})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collections_update_get_delete(client: httpx.Client) -> None:
    a, b = create(client, "Account", {"Name": "A"}), create(client, "Account", {"Name": "B"})
    r = client.patch(COLL, json={"records": [_acct("A2", id=a), _acct("B2", id=b, Phone="9" * 50)]})
    res = r.json()
    assert res[0] == {"id": a, "success": True, "errors": []}
    assert res[1]["success"] is False
    assert res[1]["id"] == b
    assert res[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    got = client.get(f"{COLL}/Account", params={"ids": f"{a},{b},001000000000000AAA", "fields": "Id,Name"}).json()
    assert got[0]["Name"] == "A2"
    assert got[1]["Name"] == "B"
    assert got[2] is None
    r = client.delete(COLL, params={"ids": f"{a},001000000000000AAA", "allOrNone": "false"})
    res = r.json()
    assert res[0] == {"id": a, "success": True, "errors": []}
    assert res[1]["success"] is False
    r = client.delete(COLL, params={"ids": f"{b},001000000000000AAA", "allOrNone": "true"})
    assert r.json()[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert client.get(f"{V}/sobjects/Account/{b}").status_code == 200


def test_collections_upsert(ext_client: httpx.Client) -> None:
    c = ext_client
    existing = create(c, "Account", {"Name": "Old", "Source_System_ID__c": "E-1"})
    r = c.patch(
        f"{COLL}/Account/Source_System_ID__c",
        json={
            "allOrNone": False,
            "records": [
                _acct("Updated", Source_System_ID__c="E-1"),
                _acct("New", Source_System_ID__c="E-2"),
                _acct("Dup", Source_System_ID__c="E-3"),
                _acct("Dup", Source_System_ID__c="e-3"),
            ],
        },
    )
    res = r.json()
    assert res[0] == {"id": existing, "success": True, "errors": [], "created": False}
    assert res[1]["created"] is True
    assert res[1]["success"] is True
    assert res[2]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    r = c.patch(f"{COLL}/Account/Nope__c", json={"records": [_acct("x", Nope__c="1")]})
    assert r.status_code == 404


def test_composite_references_and_headers(ext_client: httpx.Client) -> None:
    body = {
        "allOrNone": True,
        "collateSubrequests": False,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Account/Source_System_ID__c/C-1",
                "referenceId": "acct",
                "body": {"Name": "Acme"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Case",
                "referenceId": "job",
                "body": {"AccountId": "@{acct.id}", "Subject": "Boiler"},
            },
            {
                "method": "GET",
                "url": f"{V}/sobjects/Case/@{{job.id}}?fields=CaseNumber,AccountId",
                "referenceId": "num",
            },
            {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Case", "referenceId": "q"},
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Case/@{{q.records[0].Id}}",
                "referenceId": "upd",
                "body": {"Priority": "High"},
            },
        ],
    }
    r = ext_client.post(f"{V}/composite", json=body)
    assert r.status_code == 200
    out = r.json()["compositeResponse"]
    assert [x["httpStatusCode"] for x in out] == [201, 201, 200, 200, 204]
    assert [x["referenceId"] for x in out] == ["acct", "job", "num", "q", "upd"]
    assert out[1]["httpHeaders"]["Location"].startswith(f"{V}/sobjects/Case/500")
    assert out[2]["body"]["AccountId"] == out[0]["body"]["id"]
    assert out[2]["body"]["CaseNumber"] == "00000001"


def test_composite_all_or_none_halts_and_rolls_back(client: httpx.Client) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a", "body": {"Name": "Kept?"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "c", "body": {"FirstName": "no last"}},
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "b", "body": {"Name": "Later"}},
        ],
    }
    out = client.post(f"{V}/composite", json=body).json()["compositeResponse"]
    assert [x["httpStatusCode"] for x in out] == [400, 400, 400]
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert out[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert out[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert client.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Account"}).json()["totalSize"] == 0


def test_composite_without_all_or_none_and_limits(sb: SalesforceSandbox, client: httpx.Client) -> None:
    body = {
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "c", "body": {}},
            {"method": "GET", "url": f"{V}/sobjects/Contact/@{{c.id}}", "referenceId": "g"},
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a", "body": {"Name": "ok"}},
        ]
    }
    before = sb.api_usage
    out = client.post(f"{V}/composite", json=body).json()["compositeResponse"]
    assert sb.api_usage == before + 1  # the composite counts as one call
    assert [x["httpStatusCode"] for x in out] == [400, 400, 201]
    assert out[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    too_many = {
        "compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)]
    }
    r = client.post(f"{V}/composite", json=too_many)
    assert r.status_code == 400
