"""Describe, record CRUD, upsert and validation errors (reference §2.2-2.4, §6.3, §8, §10)."""

from __future__ import annotations

import httpx
import pytest

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from crmmigrator_gui.sandbox.salesforce.ids import checksum, to18

from .sf_helpers import V, add_field, client_fixture, create, ext_client_fixture, make_client, sb_fixture  # noqa: F401


def test_describe_global_and_object(client: httpx.Client) -> None:
    body = client.get(f"{V}/sobjects").json()
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    names = {o["name"]: o for o in body["sobjects"]}
    for name in (
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "OpportunityLineItem",
        "Product2",
        "Pricebook2",
        "PricebookEntry",
        "Quote",
        "QuoteLineItem",
        "Order",
        "OrderItem",
        "Case",
        "Task",
        "Event",
        "Note",
        "ContentVersion",
        "ContentDocument",
        "ContentDocumentLink",
        "User",
        "Asset",
        "WorkOrder",
        "WorkOrderLineItem",
        "ServiceAppointment",
        "RecordType",
    ):
        assert name in names, name
    prefixes = {
        "Account": "001",
        "Contact": "003",
        "Opportunity": "006",
        "Case": "500",
        "Task": "00T",
        "Event": "00U",
        "Product2": "01t",
        "ContentVersion": "068",
        "ContentDocument": "069",
        "User": "005",
    }
    assert {n: names[n]["keyPrefix"] for n in prefixes} == prefixes
    assert names["Account"]["urls"]["rowTemplate"] == f"{V}/sobjects/Account/{{ID}}"
    d = client.get(f"{V}/sobjects/Contact/describe").json()
    fields = {f["name"]: f for f in d["fields"]}
    last = fields["LastName"]
    assert (last["type"], last["length"], last["nillable"], last["createable"], last["defaultedOnCreate"]) == (
        "string",
        80,
        False,
        True,
        False,
    )
    acct = fields["AccountId"]
    assert acct["referenceTo"] == ["Account"]
    assert acct["relationshipName"] == "Account"
    assert fields["Name"]["calculated"] is True
    assert fields["Name"]["createable"] is False
    assert fields["CreatedDate"]["createable"] is False
    case = {f["name"]: f for f in client.get(f"{V}/sobjects/Case/describe").json()["fields"]}
    assert case["OwnerId"]["referenceTo"] == ["Group", "User"]
    assert case["CaseNumber"]["autoNumber"] is True
    assert case["CaseNumber"]["updateable"] is False
    status = case["Status"]
    assert status["type"] == "picklist"
    assert {"active", "defaultValue", "label", "value", "validFor"} <= status["picklistValues"][0].keys()
    lead = {f["name"]: f for f in client.get(f"{V}/sobjects/Lead/describe").json()["fields"]}
    assert lead["Status"]["restrictedPicklist"] is True
    children = {
        c["relationshipName"]: c for c in client.get(f"{V}/sobjects/Account/describe").json()["childRelationships"]
    }
    assert children["Contacts"]["childSObject"] == "Contact"
    assert children["Contacts"]["field"] == "AccountId"
    assert client.get(f"{V}/sobjects/Nope/describe").status_code == 404


def test_crud_lifecycle(client: httpx.Client) -> None:
    r = client.post(f"{V}/sobjects/Account", json={"Name": "Acme", "Phone": "555"})
    assert r.status_code == 201
    body = r.json()
    assert body["success"] is True
    assert body["errors"] == []
    rid = body["id"]
    assert len(rid) == 18
    assert rid[:3] == "001"
    assert rid[15:] == checksum(rid[:15])
    assert r.headers["Location"] == f"{V}/sobjects/Account/{rid}"
    rec = client.get(f"{V}/sobjects/Account/{rid[:15]}").json()  # 15-char ids accepted, 18 returned
    assert rec["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{rid}"}
    assert rec["Id"] == rid
    assert rec["Name"] == "Acme"
    assert rec["IsDeleted"] is False
    assert rec["CreatedDate"].endswith("+0000")
    assert rec["CreatedDate"][19] == "."
    assert rec["CreatedById"] == rec["OwnerId"] == rec["LastModifiedById"]
    assert client.get(f"{V}/sobjects/Account/{rid.lower()}").status_code == 200  # 18-char is case-insensitive
    part = client.get(f"{V}/sobjects/Account/{rid}", params={"fields": "Name,Phone"}).json()
    assert set(part) == {"attributes", "Name", "Phone"}
    r = client.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": None, "Website": "acme.example"})
    assert r.status_code == 204
    assert r.content == b""
    rec2 = client.get(f"{V}/sobjects/Account/{rid}").json()
    assert rec2["Phone"] is None
    assert rec2["SystemModstamp"] >= rec["SystemModstamp"]
    assert client.delete(f"{V}/sobjects/Account/{rid}").status_code == 204
    for method in ("GET", "PATCH"):
        r = client.request(method, f"{V}/sobjects/Account/{rid}", json={"Name": "x"})
        assert r.status_code == 404
        assert r.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    missing = client.get(f"{V}/sobjects/Account/001000000000000AAA")
    assert missing.status_code == 404
    assert missing.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    assert client.get(f"{V}/sobjects/Account/not-an-id").status_code == 404


@pytest.mark.parametrize(
    ("obj", "body", "code", "fields"),
    [
        ("Contact", {"FirstName": "A"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ("Opportunity", {"Name": "x"}, "REQUIRED_FIELD_MISSING", ["CloseDate", "StageName"]),
        ("Account", {"Name": "x", "Phone": "1" * 41}, "STRING_TOO_LONG", ["Phone"]),
        ("Account", {"Name": "x", "Bogus": 1}, "INVALID_FIELD", ["Bogus"]),
        ("Case", {"CaseNumber": "1"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CaseNumber"]),
        (
            "Account",
            {"Name": "x", "CreatedDate": "2020-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        (
            "Lead",
            {"LastName": "x", "Company": "y", "Status": "Nope"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Status"],
        ),
        ("Contact", {"LastName": "x", "AccountId": "abc"}, "MALFORMED_ID", ["AccountId"]),
        ("Contact", {"LastName": "x", "AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
        ("Contact", {"LastName": "x", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
    ],
)
def test_validation_errors(client: httpx.Client, obj: str, body: dict, code: str, fields: list[str]) -> None:
    r = client.post(f"{V}/sobjects/{obj}", json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert isinstance(err, list)
    assert err[0]["errorCode"] == code
    assert err[0]["fields"] == fields


def test_field_label_leads_messages(client: httpx.Client) -> None:
    r = client.post(f"{V}/sobjects/Lead", json={"LastName": "x", "Company": "y", "Status": "Foo"})
    assert r.json()[0]["message"] == "Lead Status: bad value for restricted picklist field: Foo" or r.json()[0][
        "message"
    ].endswith("bad value for restricted picklist field: Foo")
    r = client.post(f"{V}/sobjects/Account", json={"Name": "x", "Phone": "1" * 41})
    assert r.json()[0]["message"].startswith("Phone: data value too large:")


def test_id_in_body_and_wrong_type_reference(client: httpx.Client) -> None:
    r = client.post(f"{V}/sobjects/Account", json={"Name": "x", "Id": "001000000000000AAA"})
    assert r.status_code == 400
    assert r.json()[0]["message"] == "The Id field should not be specified in the sobject data."
    cid = create(client, "Contact", {"LastName": "Ng"})
    r = client.post(f"{V}/sobjects/Contact", json={"LastName": "x", "AccountId": cid})
    assert r.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_defaults_and_derived_fields(client: httpx.Client) -> None:
    tid = create(client, "Task", {"Subject": "Call"})
    task = client.get(f"{V}/sobjects/Task/{tid}").json()
    assert (task["Status"], task["Priority"], task["IsClosed"]) == ("Not Started", "Normal", False)
    cid = create(client, "Case", {"Subject": "Boiler"})
    case = client.get(f"{V}/sobjects/Case/{cid}").json()
    assert case["Status"] == "New"
    assert case["CaseNumber"] == "00000001"
    con = create(client, "Contact", {"FirstName": "Ana", "LastName": "Ng"})
    assert client.get(f"{V}/sobjects/Contact/{con}").json()["Name"] == "Ana Ng"


def test_upsert_by_external_id(ext_client: httpx.Client) -> None:
    c = ext_client
    url = f"{V}/sobjects/Account/Source_System_ID__c/C-1001"
    r = c.patch(url, json={"Name": "Acme"})
    assert r.status_code == 201
    first = r.json()
    assert first["created"] is True
    assert first["success"] is True
    assert first["errors"] == []
    r = c.patch(url, json={"Name": "Acme 2"})
    assert r.status_code == 200
    assert r.json() == {**first, "created": False}
    got = c.get(url).json()
    assert got["Name"] == "Acme 2"
    assert got["Source_System_ID__c"] == "C-1001"
    assert (
        c.patch(
            f"{V}/sobjects/Account/c-1001".replace("c-1001", "Source_System_ID__c/c-1001"),
            json={"Name": "case-insensitive"},
        ).status_code
        == 200
    )
    r = c.patch(f"{V}/sobjects/Account/NoSuch__c/1", json={"Name": "x"})
    assert r.status_code == 404
    assert r.json()[0]["errorCode"] == "NOT_FOUND"
    r = c.patch(f"{V}/sobjects/Account/Phone/555", json={"Name": "x"})  # exists but not an external id
    assert r.status_code == 404
    dup = c.post(f"{V}/sobjects/Account", json={"Name": "Dup", "Source_System_ID__c": "C-1001"})
    assert dup.status_code == 400
    assert dup.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    assert first["id"] in dup.json()[0]["message"]


def test_upsert_multiple_matches_300(sb: SalesforceSandbox, client: httpx.Client) -> None:
    add_field(
        client, sb, "Account", "Legacy_Key__c", {"label": "Legacy", "type": "Text", "length": 20, "externalId": True}
    )
    ids = [create(client, "Account", {"Name": f"A{i}", "Legacy_Key__c": "K"}) for i in range(2)]
    r = client.patch(f"{V}/sobjects/Account/Legacy_Key__c/K", json={"Name": "x"})
    assert r.status_code == 300
    assert r.json() == [f"{V}/sobjects/Account/{i}" for i in ids]
    assert client.get(f"{V}/sobjects/Account/Legacy_Key__c/K").status_code == 300


def test_parent_reference_by_external_id(ext_client: httpx.Client) -> None:
    c = ext_client
    aid = c.patch(f"{V}/sobjects/Account/Source_System_ID__c/C-1", json={"Name": "Parent"}).json()["id"]
    cid = create(c, "Contact", {"LastName": "Ng", "Account": {"Source_System_ID__c": "C-1"}})
    assert c.get(f"{V}/sobjects/Contact/{cid}").json()["AccountId"] == aid
    r = c.post(f"{V}/sobjects/Contact", json={"LastName": "Ng", "Account": {"Source_System_ID__c": "missing"}})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "Foreign key external ID: missing not found" in r.json()[0]["message"]
    r = c.post(f"{V}/sobjects/Contact", json={"LastName": "Ng", "Account": {"Phone": "1"}})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    # upsert with a parent reference in the body
    r = c.patch(
        f"{V}/sobjects/Contact/Source_System_ID__c/P-1",
        json={"LastName": "Ng", "Account": {"Source_System_ID__c": "C-1"}},
    )
    assert r.status_code == 201


def test_audit_fields_switch() -> None:
    on = SalesforceSandbox(audit_fields_permission=True)
    c = make_client(on)
    fields = {f["name"]: f for f in c.get(f"{V}/sobjects/Account/describe").json()["fields"]}
    assert fields["CreatedDate"]["createable"] is True
    assert fields["CreatedDate"]["updateable"] is False
    assert fields["SystemModstamp"]["createable"] is False
    rid = create(
        c,
        "Account",
        {
            "Name": "Old",
            "CreatedDate": "2019-03-05T14:22:11.000+0000",
            "LastModifiedDate": "2019-04-01T00:00:00Z",
            "CreatedById": on.admin_id,
        },
    )
    rec = c.get(f"{V}/sobjects/Account/{rid}").json()
    assert rec["CreatedDate"] == "2019-03-05T14:22:11.000+0000"
    assert rec["LastModifiedDate"] == "2019-04-01T00:00:00.000+0000"
    assert rec["SystemModstamp"] > "2020"
    r = c.patch(f"{V}/sobjects/Account/{rid}", json={"CreatedDate": "2018-01-01T00:00:00Z"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    r = c.post(f"{V}/sobjects/Order", json={"EffectiveDate": "2024-01-01", "CreatedDate": "2019-01-01T00:00:00Z"})
    assert r.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"  # Order isn't an audit-field object
    on.close()


def test_updated_and_deleted_resources(client: httpx.Client) -> None:
    rid = create(client, "Account", {"Name": "A"})
    gone = create(client, "Account", {"Name": "B"})
    client.delete(f"{V}/sobjects/Account/{gone}")
    window = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
    too_old = client.get(f"{V}/sobjects/Account/updated/", params=window)  # more than 30 days back
    assert too_old.status_code == 400
    assert too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(minutes=2)).isoformat()}
    upd = client.get(f"{V}/sobjects/Account/updated/", params=window)
    assert upd.status_code == 200
    assert rid in upd.json()["ids"]
    assert gone not in upd.json()["ids"]
    dele = client.get(f"{V}/sobjects/Account/deleted/", params=window).json()
    assert [d["id"] for d in dele["deletedRecords"]] == [gone]


def test_ids_helpers() -> None:
    assert to18("001xx000003DGb2") == "001xx000003DGb2AAG"
    assert to18("001XX000003DGB2AAG".lower()) is not None
    assert to18("001xx000003DGb2AAB") is None
    assert to18("abc") is None


def test_persistence_across_restart(tmp_path) -> None:
    db = tmp_path / "org.sqlite"
    first = SalesforceSandbox(db)
    c = make_client(first)
    add_field(c, first, "Account")
    rid = create(c, "Account", {"Name": "Kept", "Source_System_ID__c": "K-1"})
    first.close()
    second = SalesforceSandbox(db)
    c2 = make_client(second)
    assert c2.get(f"{V}/sobjects/Account/Source_System_ID__c/K-1").json()["Id"] == rid
    assert second.admin_id == first.admin_id
    second.close()
