"""SalesforceClient against the Salesforce sandbox (in-process over WSGI, and once over a real socket)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.target.salesforce import RecordResult, SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import (
    cell,
    collection_chunks,
    flat_record,
    in_chunks,
    json_record,
    soql_string,
    split_dotted,
)
from crmmigrator_gui.engine.target.sf_types import bulk_error, limit_info
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

INSTANCE = "https://acme.my.salesforce.com"
EXT = "Source_System_ID__c"


def fast_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.01))


class Recording(httpx.WSGITransport):
    """WSGI transport that remembers ``METHOD path`` of every request."""

    def __init__(self, app: SalesforceSandbox) -> None:
        super().__init__(app=app)
        self.calls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def make_client(
    sb: SalesforceSandbox, transport: httpx.BaseTransport | None = None, sleep=fast_sleep
) -> SalesforceClient:
    token = sb.issue_token()
    return SalesforceClient(INSTANCE, lambda: token, transport=transport or httpx.WSGITransport(app=sb), sleep=sleep)


def add_ext_fields(client: SalesforceClient, *objects: str) -> None:
    for obj in objects:
        client.create_custom_field(
            obj, EXT, type="Text", label="Source System ID", length=64, external_id=True, unique=True
        )


@pytest.fixture
def sb() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox()
    yield sandbox
    sandbox.close()


@pytest.fixture
def client(sb: SalesforceSandbox) -> Iterator[SalesforceClient]:
    c = make_client(sb)
    yield c
    c.close()


@pytest.fixture
def ready(client: SalesforceClient) -> SalesforceClient:
    """Account and Contact with the migration's external-id field, plus a restricted picklist on Account."""
    add_ext_fields(client, "Account", "Contact")
    client.create_custom_field("Account", "Tier__c", type="Picklist", label="Tier", picklist_values=["Gold", "Silver"])
    return client


def soql_one(client: SalesforceClient, soql: str) -> dict:
    rows = list(client.query(soql))
    assert len(rows) == 1, rows
    return rows[0]


# -- describe and schema ----------------------------------------------------------------------------------------


def test_describe_types_lengths_picklists_and_cache(client: SalesforceClient) -> None:
    account = client.describe("Account")
    name = account.field("name")
    assert name is not None
    assert (name.type, name.length, name.nillable, name.createable) == ("string", 255, False, True)
    assert name.required_on_create
    assert "Name" in account.required_fields
    phone = account.field("Phone")
    assert phone is not None
    assert (phone.type, phone.length) == ("phone", 40)
    kind = account.field("Type")
    assert kind is not None
    assert kind.type == "picklist"
    assert "Prospect" in kind.picklist_values
    assert not kind.restricted_picklist
    status = client.describe("Lead").field("Status")
    assert status is not None
    assert status.restricted_picklist
    assert status.defaulted_on_create
    assert not status.required_on_create
    contact = client.describe("Contact")
    account_id = contact.field("AccountId")
    assert account_id is not None
    assert (account_id.type, account_id.reference_to, account_id.relationship_name) == (
        "reference",
        ["Account"],
        "Account",
    )
    assert contact.by_relationship("account") is account_id
    full_name = contact.field("Name")
    assert full_name is not None
    assert full_name.calculated
    assert not full_name.createable
    assert account.field(EXT) is None  # not there yet
    assert account.key_prefix == "001"
    before = client.requests
    assert client.describe("account") is account  # cached, case-insensitive
    assert client.requests == before
    client.invalidate("Account")
    assert client.describe("Account") is not account
    assert client.requests == before + 1
    names = {o["name"] for o in client.describe_global()}
    assert {"Account", "Contact", "Task", "ContentVersion"} <= names
    assert client.sobject_for_id("003000000000001AAA") == "Contact"
    assert client.limits()["DailyApiRequests"]["Max"] == 100_000


def test_create_custom_field_via_tooling_is_visible_and_idempotent(client: SalesforceClient) -> None:
    add_ext_fields(client, "Account", "Contact")
    for obj in ("Account", "Contact"):
        f = client.describe(obj).field(EXT)
        assert f is not None, obj
        assert (f.type, f.length, f.external_id, f.unique, f.custom) == ("string", 64, True, True, True)
        assert f.createable
        assert f.updateable
        assert client.describe(obj).external_id_fields == [EXT]
    add_ext_fields(client, "Account")  # already exists: no error, nothing duplicated
    grants = list(client.query(f"SELECT Id FROM FieldPermissions WHERE Field = 'Account.{EXT}'"))
    assert len(grants) == 1
    client.create_custom_field("Activity", "Legacy_Created__c", type="DateTime", label="Legacy Created")
    for obj in ("Task", "Event"):
        legacy = client.describe(obj).field("Legacy_Created__c")
        assert legacy is not None
        assert legacy.type == "datetime"
    client.create_custom_field("Account", "Tier__c", type="picklist", label="Tier", picklist_values=["Gold", "Silver"])
    tier = client.describe("Account").field("Tier__c")
    assert tier is not None
    assert (tier.picklist_values, tier.restricted_picklist) == (["Gold", "Silver"], True)
    with pytest.raises(DestinationError, match="Invalid FullName"):
        client.create_custom_field("Nope", "X__c", type="Text", label="X")


# -- Collections --------------------------------------------------------------------------------------------------


def test_upsert_collection_created_flag_and_per_record_errors(ready: SalesforceClient) -> None:
    rows = [
        {EXT: "A-1", "Name": "Acme", "Phone": "555-0100", "Tier__c": "Gold"},
        {EXT: "A-2", "Phone": "555-0101"},  # Name missing
        {EXT: "A-3", "Name": "Too long phone", "Phone": "5" * 41},
        {EXT: "A-4", "Name": "Bad tier", "Tier__c": "Platinum"},
        {EXT: "A-5", "Name": "Globex", "AnnualRevenue": Decimal("1250000.50")},
    ]
    results = ready.upsert_collection("Account", EXT, rows)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[0].created is True
    assert results[0].id
    assert results[0].id.startswith("001")
    assert results[1].errors == [("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"])]
    assert results[2].codes == ["STRING_TOO_LONG"]
    assert results[2].errors[0][2] == ["Phone"]
    assert "max length=40" in results[2].message
    assert results[3].codes == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    assert results[3].errors[0][2] == ["Tier__c"]
    again = ready.upsert_collection("Account", EXT, [{EXT: "A-1", "Name": "Acme Ltd"}, {EXT: "A-6", "Name": "New"}])
    assert [(r.ok, r.created) for r in again] == [(True, False), (True, True)]
    assert again[0].id == results[0].id
    acme = soql_one(ready, f"SELECT Name, Phone, Tier__c FROM Account WHERE {EXT} = 'A-1'")
    assert (acme["Name"], acme["Phone"], acme["Tier__c"]) == ("Acme Ltd", "555-0100", "Gold")
    revenue = soql_one(ready, f"SELECT AnnualRevenue FROM Account WHERE {EXT} = 'A-5'")
    assert revenue["AnnualRevenue"] == 1250000.5
    assert not list(ready.query(f"SELECT Id FROM Account WHERE {EXT} IN ('A-2','A-3','A-4')"))


def test_upsert_collection_chunks_of_200_and_all_or_none(ready: SalesforceClient) -> None:
    before = ready.requests
    rows = [{EXT: f"C-{i:04d}", "Name": f"Company {i}"} for i in range(450)]
    results = ready.upsert_collection("Account", EXT, rows)
    assert ready.requests - before == 3
    assert all(r.ok and r.created for r in results)
    assert len({r.id for r in results}) == 450
    atomic = ready.upsert_collection("Account", EXT, [{EXT: "D-1", "Name": "ok"}, {EXT: "D-2"}], all_or_none=True)
    assert [r.ok for r in atomic] == [False, False]
    assert atomic[0].codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert atomic[1].codes == ["REQUIRED_FIELD_MISSING"]
    assert not list(ready.query(f"SELECT Id FROM Account WHERE {EXT} = 'D-1'"))


def test_parent_references_by_external_id(ready: SalesforceClient) -> None:
    parents = ready.upsert_collection("Account", EXT, [{EXT: "P-1", "Name": "One"}, {EXT: "P-2", "Name": "Two"}])
    contacts = [
        {EXT: "K-1", "LastName": "Ng", "Account": {EXT: "P-1"}},  # nested (REST style)
        {EXT: "K-2", "LastName": "Li", f"Account.{EXT}": "P-2"},  # dotted (Bulk style) works here too
        {EXT: "K-3", "LastName": "Orphan", "Account": {EXT: "P-404"}},
    ]
    results = ready.upsert_collection("Contact", EXT, contacts)
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].codes == ["INVALID_FIELD"]
    assert "P-404" in results[2].message
    found = ready.find_by_external_ids("Contact", EXT, ["K-1", "K-2"], ["AccountId", f"Account.{EXT}"])
    assert found["K-1"]["AccountId"] == parents[0].id
    assert found["K-2"]["AccountId"] == parents[1].id
    assert found["K-2"]["Account"][EXT] == "P-2"
    cleared = ready.upsert_collection("Contact", EXT, [{EXT: "K-2", f"Account.{EXT}": None}])
    assert cleared[0].ok
    assert cleared[0].created is False
    assert soql_one(ready, f"SELECT AccountId FROM Contact WHERE {EXT} = 'K-2'")["AccountId"] is None


def test_create_update_and_delete_collections(ready: SalesforceClient) -> None:
    created = ready.create_collection(
        [
            {"attributes": {"type": "Account"}, "Name": "Mixed A"},
            {"attributes": {"type": "Contact"}, "LastName": "Mixed C"},
            {"attributes": {"type": "Account"}},  # Name missing
        ]
    )
    assert [r.ok for r in created] == [True, True, False]
    assert created[0].id
    assert created[0].id.startswith("001")
    assert created[1].id
    assert created[1].id.startswith("003")
    updated = ready.update_collection(
        [
            {"Id": created[0].id, "Phone": "555"},  # type inferred from the Id prefix
            {"attributes": {"type": "Contact"}, "Id": created[1].id, "Title": "Boss"},
            {"Name": "no id"},
        ]
    )
    assert [r.ok for r in updated] == [True, True, False]
    assert updated[2].codes == ["MISSING_ARGUMENT"]
    assert soql_one(ready, f"SELECT Phone FROM Account WHERE Id = '{created[0].id}'")["Phone"] == "555"
    assert created[0].id
    assert created[1].id
    deleted = ready.delete_collection([created[0].id, created[1].id, "001000000000000AAA"])
    assert [r.ok for r in deleted] == [True, True, False]
    assert deleted[2].errors[0][0] in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED", "MALFORMED_ID")
    gone = list(ready.query(f"SELECT Id, IsDeleted FROM Account WHERE Id = '{created[0].id}'", all_rows=True))
    assert gone[0]["IsDeleted"] is True
    assert not list(ready.query(f"SELECT Id FROM Account WHERE Id = '{created[0].id}'"))


def test_find_by_external_ids_chunks_and_pages(ready: SalesforceClient) -> None:
    rows = [{EXT: f"F-{i:04d}", "Name": f"Firm {i}"} for i in range(450)]
    assert all(r.ok for r in ready.upsert_collection("Account", EXT, rows))
    ready.query_batch_size = 200
    assert len(list(ready.query("SELECT Id FROM Account"))) == 450  # three pages via nextRecordsUrl
    ready.soql_url_budget = 2_000  # force several IN (...) statements
    transport_calls = ready.requests
    wanted = [f"F-{i:04d}" for i in range(450)] + ["f-0007", "MISSING", ""]
    found = ready.find_by_external_ids("Account", EXT, wanted, ["Name"])
    assert ready.requests - transport_calls >= 4
    assert len(found) == 450
    assert found["F-0123"]["Name"] == "Firm 123"
    assert found["F-0123"]["Id"].startswith("001")
    assert "MISSING" not in found
    assert "f-0007" not in found  # same record as F-0007 (case-insensitive field): reported once, first spelling


def test_query_paging_with_big_batch(ready: SalesforceClient) -> None:
    rows = [{EXT: f"Q-{i:05d}", "Name": f"Q {i}"} for i in range(2_100)]
    ready.bulk_upsert("Account", EXT, rows, poll_interval=0.01)
    assert sum(1 for _ in ready.query("SELECT Id FROM Account")) == 2_100  # 2,000 + 100


# -- Bulk 2.0 -----------------------------------------------------------------------------------------------------


def test_bulk_upsert_2500_rows_maps_failures_to_external_ids(ready: SalesforceClient) -> None:
    rows = [{EXT: f"B-{i:05d}", "Name": f'Bulk, "quoted" {i}', "Phone": "555"} for i in range(2_500)]
    rows[17]["Name"] = None  # -> #N/A -> required field missing
    rows[999]["Phone"] = "9" * 41
    rows[2_222]["Tier__c"] = "Bronze"
    rows[5]["Description"] = "multi\nline, with comma é"
    before = ready.requests
    results = ready.bulk_upsert("Account", EXT, rows, poll_interval=0.01)
    bulk_requests = ready.requests - before
    assert len(results) == 2_500
    bad = {i: r for i, r in enumerate(results) if not r.ok}
    assert set(bad) == {17, 999, 2_222}
    assert bad[17].codes == ["REQUIRED_FIELD_MISSING"]
    assert bad[17].errors[0][2] == ["Name"]
    assert bad[999].codes == ["STRING_TOO_LONG"]
    assert bad[999].errors[0][2] == ["Phone"]
    assert bad[2_222].codes == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    assert all(r.created is True and r.id for i, r in enumerate(results) if i not in bad)
    found = ready.find_by_external_ids("Account", EXT, ["B-00005", "B-00017", "B-02499"], ["Name", "Description"])
    assert found["B-00005"]["Id"] == results[5].id
    assert found["B-00005"]["Name"] == 'Bulk, "quoted" 5'
    assert found["B-00005"]["Description"] == "multi\nline, with comma é"
    assert found["B-02499"]["Id"] == results[2_499].id
    assert "B-00017" not in found
    assert bulk_requests < 60  # create, upload, close, results + polls (fast test polling)
    again = ready.bulk_upsert(
        "Account", EXT, [{EXT: "B-00001", "Name": "Renamed"}, {EXT: "B-09999", "Name": "New"}], poll_interval=0.01
    )
    assert [(r.ok, r.created) for r in again] == [(True, False), (True, True)]
    assert again[0].id == results[1].id


def test_bulk_relationship_columns_and_na_clears(ready: SalesforceClient) -> None:
    accounts = ready.upsert_collection("Account", EXT, [{EXT: "R-1", "Name": "R1"}, {EXT: "R-2", "Name": "R2"}])
    contacts = [
        {EXT: "RC-1", "LastName": "Dotted", f"Account.{EXT}": "R-1", "Title": "CEO", "Phone": "1"},
        {EXT: "RC-2", "LastName": "Nested", "Account": {EXT: "R-2"}, "Title": "CTO", "Phone": "2"},
        {EXT: "RC-3", "LastName": "Orphan", f"Account.{EXT}": "R-404"},
    ]
    results = ready.bulk_upsert("Contact", EXT, contacts, poll_interval=0.01)
    assert [r.ok for r in results] == [True, True, False]
    assert "R-404" in results[2].message
    found = ready.find_by_external_ids("Contact", EXT, ["RC-1", "RC-2"], ["AccountId", "Title", "Phone"])
    assert found["RC-1"]["AccountId"] == accounts[0].id
    assert found["RC-2"]["AccountId"] == accounts[1].id
    # None -> #N/A clears; an absent key (empty cell) leaves the value alone; a None reference clears the lookup
    update = [{EXT: "RC-1", "Phone": None}, {EXT: "RC-2", "Title": "", f"Account.{EXT}": None}]
    assert all(r.ok for r in ready.bulk_upsert("Contact", EXT, update, poll_interval=0.01))
    found = ready.find_by_external_ids("Contact", EXT, ["RC-1", "RC-2"], ["AccountId", "Title", "Phone"])
    assert (found["RC-1"]["Phone"], found["RC-1"]["Title"]) == (None, "CEO")
    assert (found["RC-2"]["Title"], found["RC-2"]["Phone"], found["RC-2"]["AccountId"]) == (None, "2", None)


def test_bulk_insert_update_and_bulk_delete(ready: SalesforceClient) -> None:
    inserted = ready.bulk_upsert(
        "Account",
        EXT,
        [{"Name": f"Ins {i}"} for i in range(5)] + [{"Phone": "x"}],
        operation="insert",
        poll_interval=0.01,
    )
    assert [r.ok for r in inserted] == [True] * 5 + [False]
    ids = [r.id for r in inserted if r.ok]
    assert all(ids)
    updated = ready.bulk_upsert(
        "Account",
        EXT,
        [{"Id": i, "Phone": f"55{n}"} for n, i in enumerate(ids)],
        operation="update",
        poll_interval=0.01,
    )
    assert all(r.ok for r in updated)
    assert soql_one(ready, f"SELECT Phone FROM Account WHERE Id = '{ids[3]}'")["Phone"] == "553"
    removed = ready.bulk_delete("Account", [*ids[:4], "001000000000000AAA"], poll_interval=0.01)
    assert [r.ok for r in removed] == [True, True, True, True, False]
    assert removed[0].id == ids[0]
    left = list(ready.query("SELECT Id FROM Account WHERE Name LIKE 'Ins %'"))
    assert [r["Id"] for r in left] == [ids[4]]
    assert len(list(ready.query("SELECT Id FROM Account WHERE IsDeleted = true", all_rows=True))) == 4


def test_bulk_job_failure_is_reported_per_row(ready: SalesforceClient) -> None:
    results = ready.bulk_upsert("Account", EXT, [{EXT: "X-1", "Name": "a", "No_Such__c": "1"}], poll_interval=0.01)
    assert not results[0].ok
    assert results[0].codes == ["BULK_JOB_FAILED"]
    assert "No_Such__c" in results[0].message


def test_upsert_switches_between_collections_and_bulk(sb: SalesforceSandbox) -> None:
    transport = Recording(sb)
    c = make_client(sb, transport)
    add_ext_fields(c, "Account")
    c.bulk_threshold = 300
    transport.calls.clear()
    small = c.upsert("Account", EXT, [{EXT: f"S-{i}", "Name": "s"} for i in range(299)])
    assert all(r.ok for r in small)
    assert transport.calls == [f"PATCH /services/data/v62.0/composite/sobjects/Account/{EXT}"] * 2
    transport.calls.clear()
    big = c.upsert("Account", EXT, [{EXT: f"S-{i}", "Name": "b"} for i in range(300)])
    assert all(r.ok for r in big)
    assert [r.created for r in big[:299]] == [False] * 299
    assert big[299].created is True
    assert transport.calls[0] == "POST /services/data/v62.0/jobs/ingest"
    assert not any("composite" in call for call in transport.calls)
    c.close()


def test_requests_per_1000_records(sb: SalesforceSandbox) -> None:
    c = make_client(sb, sleep=time.sleep)  # real polling cadence (0.5 s, growing)
    add_ext_fields(c, "Account")
    rows = [{EXT: f"M-{i:04d}", "Name": f"Measure {i}"} for i in range(1_000)]
    before = c.requests
    assert all(r.ok for r in c.upsert_collection("Account", EXT, rows))
    collections = c.requests - before
    before = c.requests
    assert all(r.ok for r in c.bulk_upsert("Account", EXT, rows))
    bulk = c.requests - before
    print(f"\nrequests per 1,000 records: collections={collections} bulk={bulk}")
    assert collections == 5
    assert 5 <= bulk <= 12
    c.close()


# -- files and audit fields -----------------------------------------------------------------------------------------


def test_upload_file_json_and_multipart_link_to_record(ready: SalesforceClient) -> None:
    account = ready.upsert_collection("Account", EXT, [{EXT: "FILE-1", "Name": "Files"}])[0].id
    assert account
    small = b"\x89PNG\r\n\x1a\n small"
    vid = ready.upload_file("Signature job 77", "sig.png", small, first_publish_location_id=account)
    assert vid.startswith("068")
    ready.file_json_max_bytes = 16  # force multipart for the next one
    big = bytes(range(256)) * 40
    vid2 = ready.upload_file('Invoice "7"', "inv oice.pdf", big, first_publish_location_id=account)
    for version, data in ((vid, small), (vid2, big)):
        doc = ready.content_document_id(version)
        assert doc
        assert doc.startswith("069")
        links = list(ready.query(f"SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'"))
        assert [link["LinkedEntityId"] for link in links] == [account]
        blob = ready._send("GET", f"sobjects/ContentVersion/{version}/VersionData")
        assert blob.content == data
    title = soql_one(ready, f"SELECT Title, PathOnClient FROM ContentVersion WHERE Id = '{vid2}'")
    assert (title["Title"], title["PathOnClient"]) == ('Invoice "7"', "inv oice.pdf")


def test_audit_fields_follow_the_org_permission() -> None:
    off = SalesforceSandbox()
    on = SalesforceSandbox(audit_fields_permission=True)
    try:
        c_off, c_on = make_client(off), make_client(on)
        assert c_off.audit_fields_enabled() is False
        assert c_off.audit_fields_enabled("Account") is False
        refused = c_off.create_collection(
            [{"Subject": "Old call", "CreatedDate": "2019-03-04T05:06:07Z"}], sobject="Task"
        )
        assert refused[0].codes == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
        assert c_on.audit_fields_enabled() is True
        stamp = datetime(2019, 3, 4, 5, 6, 7, tzinfo=UTC)
        accepted = c_on.create_collection([{"Subject": "Old call", "CreatedDate": stamp}], sobject="Task")
        assert accepted[0].ok, accepted[0].message
        task = soql_one(c_on, f"SELECT CreatedDate FROM Task WHERE Id = '{accepted[0].id}'")
        assert task["CreatedDate"].startswith("2019-03-04T05:06:07")
    finally:
        off.close()
        on.close()


# -- retries, limits, sessions ----------------------------------------------------------------------------------


def test_lock_faults_are_retried_to_success() -> None:
    sb = SalesforceSandbox(faults="lock=0.3,seed=2")
    try:
        c = make_client(sb)
        add_ext_fields(c, "Account")
        for batch in range(20):  # many small calls: each write request draws its own fault
            rows = [{EXT: f"L-{batch}-{i}", "Name": f"Locked {i}"} for i in range(30)]
            assert all(r.ok for r in c.upsert_collection("Account", EXT, rows))
        after_collections = c.lock_retried
        assert after_collections > 0
        for job in range(5):  # job create, CSV upload and close are writes too
            bulk_rows = [{EXT: f"LB-{job}-{i}", "Name": f"Bulk locked {i}"} for i in range(60)]
            assert all(r.ok for r in c.bulk_upsert("Account", EXT, bulk_rows, poll_interval=0.01))
        assert c.lock_retried > after_collections
        assert len(list(c.query("SELECT Id FROM Account"))) == 900
    finally:
        sb.close()


def _collection_answer(request: httpx.Request, locked: set[str]) -> httpx.Response:
    body = json.loads(request.content)
    out = []
    for rec in body["records"]:
        key = rec[EXT]
        if key in locked:
            locked.discard(key)
            out.append(
                {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock", "fields": []}]}
            )
        else:
            out.append({"id": "001" + key.rjust(15, "0"), "success": True, "errors": [], "created": True})
    return httpx.Response(200, json=out, headers={"Sforce-Limit-Info": "api-usage=7/15000"})


def test_per_record_lock_errors_resend_only_those_records() -> None:
    sent: list[list[str]] = []
    locked = {"2", "4"}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append([r[EXT] for r in json.loads(request.content)["records"]])
        return _collection_answer(request, locked)

    c = SalesforceClient(INSTANCE, lambda: "t", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    results = c.upsert_collection("Account", EXT, [{EXT: str(i), "Name": "x"} for i in range(1, 6)])
    assert sent == [["1", "2", "3", "4", "5"], ["2", "4"]]
    assert all(r.ok for r in results)
    assert [r.id for r in results] == ["001" + str(i).rjust(15, "0") for i in range(1, 6)]
    assert c.api_usage == (7, 15000)
    assert c.lock_retried == 2


def test_all_or_none_lock_resends_the_whole_chunk() -> None:
    sent: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        sent.append([r[EXT] for r in records])
        if len(sent) == 1:
            lock = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "lock", "fields": []}
            rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "rolled back", "fields": []}
            return httpx.Response(
                200, json=[{"success": False, "errors": [rolled]}, {"success": False, "errors": [lock]}]
            )
        return httpx.Response(
            200, json=[{"id": f"001{i}", "success": True, "errors": [], "created": True} for i in (1, 2)]
        )

    c = SalesforceClient(INSTANCE, lambda: "t", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    results = c.upsert_collection("Account", EXT, [{EXT: "1", "Name": "a"}, {EXT: "2", "Name": "b"}], all_or_none=True)
    assert sent == [["1", "2"], ["1", "2"]]
    assert [r.id for r in results] == ["0011", "0012"]


def test_unknown_external_id_field_is_a_destination_error(client: SalesforceClient) -> None:
    with pytest.raises(DestinationError, match="404 NOT_FOUND") as err:
        client.upsert_collection("Account", "Nope__c", [{"Nope__c": "1", "Name": "x"}])
    assert err.value.status == 404


def test_lock_retries_are_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _collection_answer(request, {"1"})  # locked every time

    c = SalesforceClient(INSTANCE, lambda: "t", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    c.lock_retries = 2
    results = c.upsert_collection("Account", EXT, [{EXT: "1", "Name": "x"}])
    assert results[0].codes == ["UNABLE_TO_LOCK_ROW"]
    assert c.requests == 3


def test_transient_503_and_concurrency_403_are_retried() -> None:
    sb = SalesforceSandbox(faults="503=0.15,403=0.15,seed=5")
    try:
        c = make_client(sb)
        add_ext_fields(c, "Account")
        wanted = []
        for batch in range(20):
            rows = [{EXT: f"T-{batch}-{i}", "Name": f"Transient {i}"} for i in range(20)]
            assert all(r.ok for r in c.upsert_collection("Account", EXT, rows))
            wanted += [r[EXT] for r in rows]
        assert len(c.find_by_external_ids("Account", EXT, wanted, [])) == 400
        assert c.http.retries > 0  # 503s, retried by the shared RetryingHttp
    finally:
        sb.close()


def test_daily_api_limit_stops_with_a_clear_error() -> None:
    sb = SalesforceSandbox(daily_api_limit=5)
    try:
        c = make_client(sb)
        for _ in range(5):  # the budget: 5 calls
            c.invalidate()
            c.describe("Account")
        c.invalidate()
        with pytest.raises(DestinationError) as err:
            c.describe("Account")
        assert err.value.code == "REQUEST_LIMIT_EXCEEDED"
        assert err.value.status == 403
        assert "DailyApiRequests" in str(err.value)
        assert "6 of 5" in str(err.value)
        assert c.api_usage == (6, 5)
    finally:
        sb.close()


def test_api_usage_tracks_the_limit_header(client: SalesforceClient, sb: SalesforceSandbox) -> None:
    assert client.api_usage is None
    client.describe("Account")
    first = client.api_usage
    assert first == (sb.api_usage, 100_000)
    list(client.query("SELECT Id FROM Account"))
    assert client.api_usage == (first[0] + 1, 100_000)


def test_expired_session_asks_to_reconnect_or_uses_a_refreshed_token(sb: SalesforceSandbox) -> None:
    c = make_client(sb)
    c.describe("Account")
    sb.expire_tokens()
    with pytest.raises(DestinationError, match="reconnect") as err:
        c.describe("Contact")
    assert (err.value.status, err.value.code) == (401, "INVALID_SESSION_ID")
    fresh = sb.issue_token()
    handed_out = iter(["expired-token"])  # a provider whose cached token died, and that refreshes on the next call
    refreshing = SalesforceClient(
        INSTANCE, lambda: next(handed_out, fresh), transport=httpx.WSGITransport(app=sb), sleep=fast_sleep
    )
    assert refreshing.describe("Contact").name == "Contact"
    assert refreshing.requests == 2


# -- over a real socket ---------------------------------------------------------------------------------------------


def test_against_the_served_sandbox() -> None:
    from crmmigrator_gui.sandbox.server import start_background

    server, thread, base_url = start_background()
    try:
        sf = server.get_app().salesforce
        assert sf is not None
        token = sf.issue_token()
        c = SalesforceClient(base_url, lambda: token, sleep=fast_sleep)
        add_ext_fields(c, "Account", "Contact")
        acc = c.upsert("Account", EXT, [{EXT: "S-1", "Name": "Served"}])
        assert acc[0].ok
        assert acc[0].created
        rows = [{EXT: f"SC-{i}", "LastName": f"C{i}", f"Account.{EXT}": "S-1"} for i in range(50)]
        assert all(r.ok for r in c.bulk_upsert("Contact", EXT, rows, poll_interval=0.02))
        c.query_batch_size = 200
        found = c.find_by_external_ids("Contact", EXT, [r[EXT] for r in rows], ["AccountId"])
        assert {f["AccountId"] for f in found.values()} == {acc[0].id}
        vid = c.upload_file("Served file", "a.txt", b"hello", first_publish_location_id=acc[0].id)
        assert c.content_document_id(vid)
        assert c.api_usage is not None
        c.close()
    finally:
        server.shutdown()
        server.server_close()
        server.get_app().close()
        thread.join(timeout=5)


# -- codec units ----------------------------------------------------------------------------------------------------


def test_codec_helpers() -> None:
    assert bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --") == (
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [Name]",
        ["Name"],
    )
    assert bulk_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--") == (
        "INVALID_CROSS_REFERENCE_KEY",
        "invalid cross reference id",
        [],
    )
    assert bulk_error("STRING_TOO_LONG:Phone: data value too large: 999 (max length=40):Phone --")[1] == (
        "Phone: data value too large: 999 (max length=40)"
    )
    assert limit_info("api-usage=25/15000;per-app-api-usage=17/250(appName=MyApp)") == (25, 15000)
    assert limit_info(None) is None
    assert [cell(v) for v in (None, "", True, False, 3, Decimal("1.50"), 1e-7, ["A", "B"])] == [
        "#N/A",
        "#N/A",
        "true",
        "false",
        "3",
        "1.5",
        "0.0000001",
        "A;B",
    ]
    assert cell(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00.000Z"
    assert split_dotted("Account:What.Ext__c") == ("Account", "What", "Ext__c")
    assert split_dotted("Account.Ext__c") == (None, "Account", "Ext__c")
    assert split_dotted("Name") is None
    assert flat_record({"What": {"attributes": {"type": "Case"}, "Ext__c": "1"}, "Subject": "x"}) == {
        "Case:What.Ext__c": "1",
        "Subject": "x",
    }
    assert json_record({"Case:What.Ext__c": "1"}, "Task", lambda rel: None) == {
        "attributes": {"type": "Task"},
        "What": {"attributes": {"type": "Case"}, "Ext__c": "1"},
    }
    assert json_record({"Account.Ext__c": None}, "Contact", lambda rel: "AccountId")["AccountId"] is None
    assert soql_string("O'Brien\\x") == "'O\\'Brien\\\\x'"
    assert list(collection_chunks(["A"] * 450)) == [list(range(200)), list(range(200, 400)), list(range(400, 450))]
    alternating = ["A", "B"] * 8
    assert [len(c) for c in collection_chunks(alternating)] == [10, 6]
    statements = list(in_chunks("SELECT Id FROM A WHERE X IN (", [f"'{i:04d}'" for i in range(300)], ")", 500))
    assert len(statements) > 3
    assert all(len(s) < 500 for s in statements)
    assert RecordResult(False, errors=[("A", "b", ["F"])]).message == "A: b [F]"
