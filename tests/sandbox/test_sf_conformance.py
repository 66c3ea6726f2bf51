"""Conformance with simple-salesforce 1.12.10, a client we did not write, over real TLS on loopback.

simple-salesforce hard-codes ``https://`` (reference §1.8), so the emulator is served with a trustme CA.
The session sets ``trust_env = False``: requests lets ``REQUESTS_CA_BUNDLE`` from the environment override
``session.verify``, which would otherwise reject the test CA. Its login helpers target
``https://{domain}.salesforce.com`` and cannot reach a custom host, so direct-session mode is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import add_field, make_client, serve_tls

simple_salesforce = pytest.importorskip("simple_salesforce")
from simple_salesforce import Salesforce  # noqa: E402
from simple_salesforce.exceptions import (  # noqa: E402
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SalesforceSandbox, Salesforce]]:
    sb = SalesforceSandbox()
    c = make_client(sb)
    add_field(c, sb, "Account")
    add_field(c, sb, "Account", "Legacy_Key__c", {"label": "Legacy", "type": "Text", "length": 20, "externalId": True})
    with serve_tls(sb, tmp_path_factory.mktemp("tls")) as served:
        session = requests.Session()
        session.verify = served.ca_path
        session.trust_env = False
        sf = Salesforce(instance_url=served.instance_url, session_id=sb.issue_token(), version="62.0", session=session)
        yield sb, sf
    sb.close()


def test_crud_and_upsert(org: tuple[SalesforceSandbox, Salesforce]) -> None:
    sb, sf = org
    created = sf.Account.create({"Name": "Acme", "Source_System_ID__c": "SS-1"})
    assert created["success"] is True
    assert created["id"].startswith("001")
    assert sf.Account.get(created["id"])["Name"] == "Acme"
    assert sf.Account.get_by_custom_id("Source_System_ID__c", "SS-1")["Id"] == created["id"]
    assert sf.Account.update(created["id"], {"Phone": "555"}) == 204
    assert sf.Account.upsert("Source_System_ID__c/SS-2", {"Name": "Beta"}) == 201
    assert sf.Account.upsert("Source_System_ID__c/SS-2", {"Name": "Beta 2"}) == 200
    assert sf.Account.delete(created["id"]) == 204
    assert sf.limits()["DailyApiRequests"]["Max"] == 100_000
    usage = sf.api_usage["api-usage"]  # parsed from Sforce-Limit-Info
    assert usage.total == 100_000
    assert usage.used == sb.api_usage


def test_errors_map_to_exception_classes(org: tuple[SalesforceSandbox, Salesforce]) -> None:
    _, sf = org
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.Contact.create({"FirstName": "no last name"})
    assert bad.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("001000000000000AAA")
    for i in range(2):
        sf.Account.create({"Name": f"Twin {i}", "Legacy_Key__c": "TWIN"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Account.upsert("Legacy_Key__c/TWIN", {"Name": "x"})
    with pytest.raises(SalesforceMalformedRequest) as bad_q:
        sf.query("SELECT Nope FROM Account")
    assert bad_q.value.content[0]["errorCode"] == "INVALID_FIELD"
    expired = Salesforce(
        instance_url=sf.base_url.split("/services")[0], session_id="not-a-token", version="62.0", session=sf.session
    )
    with pytest.raises(SalesforceExpiredSession):
        expired.describe()


def test_describe(org: tuple[SalesforceSandbox, Salesforce]) -> None:
    _, sf = org
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Case", "WorkOrder"} <= names
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["Source_System_ID__c"]["externalId"] is True
    assert sf.Account.metadata()["objectDescribe"]["keyPrefix"] == "001"


def test_query_paging(org: tuple[SalesforceSandbox, Salesforce]) -> None:
    _, sf = org
    leads = [{"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "C"} for i in range(200)]
    for _ in range(3):
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": leads})
    sf.headers["Sforce-Query-Options"] = "batchSize=250"
    try:
        first = sf.query("SELECT Id FROM Lead")
        assert first["done"] is False
        assert len(first["records"]) == 250
        more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
        assert len(more["records"]) == 250
        assert sum(1 for _ in sf.query_all_iter("SELECT Id FROM Lead")) == 600
        assert sf.query_all("SELECT Id FROM Lead")["totalSize"] == 600
    finally:
        del sf.headers["Sforce-Query-Options"]
    lead = sf.query("SELECT Id FROM Lead LIMIT 1")["records"][0]["Id"]
    sf.Lead.delete(lead)
    assert sf.query_all("SELECT Id FROM Lead WHERE IsDeleted = true", include_deleted=True)["totalSize"] == 1


def test_composite_through_restful(org: tuple[SalesforceSandbox, Salesforce]) -> None:
    _, sf = org
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v62.0/sobjects/Account",
                "referenceId": "a",
                "body": {"Name": "Comp"},
            },
            {
                "method": "POST",
                "url": "/services/data/v62.0/sobjects/Contact",
                "referenceId": "c",
                "body": {"LastName": "Ng", "AccountId": "@{a.id}"},
            },
        ],
    }
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [x["httpStatusCode"] for x in out] == [201, 201]


def test_bulk2_insert_upsert_query(org: tuple[SalesforceSandbox, Salesforce], tmp_path: Path) -> None:
    _, sf = org
    res = sf.bulk2.Account.insert(
        records=[{"Name": "Bulk A"}, {"Name": "Bulk B", "Source_System_ID__c": "B-1"}], wait=0.05
    )
    assert res[0]["numberRecordsProcessed"] == 2
    assert res[0]["numberRecordsFailed"] == 0
    job = res[0]["job_id"]
    ok = sf.bulk2.Account.get_successful_records(job)
    header = ok.splitlines()[0].split(",")
    assert header[:2] == ['"sf__Id"', '"sf__Created"']
    assert set(header[2:]) == {'"Name"', '"Source_System_ID__c"'}
    up = sf.bulk2.Account.upsert(
        records=[{"Source_System_ID__c": "B-1", "Name": "Bulk B2"}, {"Source_System_ID__c": "B-2", "Name": ""}],
        external_id_field="Source_System_ID__c",
        wait=0.05,
    )
    assert up[0]["numberRecordsProcessed"] == 2
    assert up[0]["numberRecordsFailed"] == 1
    failed = sf.bulk2.Account.get_failed_records(up[0]["job_id"])
    assert "REQUIRED_FIELD_MISSING" in failed
    pages = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name FROM Account WHERE Name LIKE 'Bulk%' ORDER BY Name", max_records=1, wait=0.05
        )
    )
    assert len(pages) == 2
    assert '"Bulk B2"' in pages[1]
    files = sf.bulk2.Account.download("SELECT Id FROM Account", path=str(tmp_path), max_records=2, wait=0.05)
    assert sum(f["number_of_records"] for f in files) == sf.query("SELECT COUNT() FROM Account")["totalSize"]
