"""ServiceTracker org seed (item 4; source-platforms §3): describe, SOQL, queryAll and Bulk query over it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import V, make_client, wait_job

OBJECTS = ("Site__c", "Asset__c", "Contract__c", "Part__c", "Work_Order__c", "Work_Order_Line__c", "Inspection__c")


@pytest.fixture(scope="module")
def st() -> Iterator[SalesforceSandbox]:
    sb = SalesforceSandbox(seed="servicetracker:60")
    yield sb
    sb.close()


@pytest.fixture
def stc(st: SalesforceSandbox) -> Iterator[httpx.Client]:
    with make_client(st) as c:
        yield c


def test_seed_counts_and_describe(st: SalesforceSandbox, stc: httpx.Client) -> None:
    counts = st.seed_counts
    for name in ("Account", "Contact", *OBJECTS):
        assert counts[name] >= 20, name
    assert counts["Account"] == 60
    assert counts["Work_Order__c"] == 120
    glob = {o["name"]: o for o in stc.get(f"{V}/sobjects").json()["sobjects"]}
    assert all(glob[o]["custom"] for o in OBJECTS)
    wo = {f["name"]: f for f in stc.get(f"{V}/sobjects/Work_Order__c/describe").json()["fields"]}
    assert [p["value"] for p in wo["Status__c"]["picklistValues"]] == [
        "Open",
        "In Progress",
        "On Hold",
        "Closed Complete",
        "Cancelled",
    ]
    assert [p["value"] for p in wo["Priority__c"]["picklistValues"]] == ["Low", "Medium", "High", "Critical"]
    assert wo["Account__c"]["referenceTo"] == ["Account"]
    assert wo["Account__c"]["relationshipName"] == "Account__r"
    assert wo["Technician__c"]["referenceTo"] == ["User"]
    assert wo["Name"]["autoNumber"] is True
    assert wo["Skills_Required__c"]["type"] == "multipicklist"
    acct = {f["name"]: f for f in stc.get(f"{V}/sobjects/Account/describe").json()["fields"]}
    assert acct["ST_Customer_Number__c"]["externalId"] is True


def test_seed_query_relationships_and_recycle_bin(st: SalesforceSandbox, stc: httpx.Client) -> None:
    r = stc.get(
        f"{V}/query",
        params={
            "q": "SELECT Id, Name, Status__c, Account__r.Name, Technician__r.Email, "
            "SystemModstamp FROM Work_Order__c ORDER BY SystemModstamp, Id LIMIT 5"
        },
    )
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert recs[0]["Name"].startswith("WO-")
    assert recs[0]["Account__r"]["Name"]
    stamps = [x["SystemModstamp"] for x in recs]
    assert stamps == sorted(stamps)
    assert stamps[0].endswith("+0000")
    live = stc.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Work_Order__c"}).json()["totalSize"]
    everything = stc.get(f"{V}/queryAll", params={"q": "SELECT COUNT() FROM Work_Order__c"}).json()["totalSize"]
    deleted = stc.get(f"{V}/queryAll", params={"q": "SELECT Id FROM Work_Order__c WHERE IsDeleted = true"}).json()
    assert everything == st.seed_counts["Work_Order__c"]
    assert deleted["totalSize"] == everything - live > 0
    spread = stc.get(
        f"{V}/query", params={"q": "SELECT COUNT() FROM Work_Order__c WHERE SystemModstamp > 2025-06-30T00:00:00Z"}
    ).json()["totalSize"]
    assert 0 < spread < live  # delta extraction has something to filter
    tags = stc.get(f"{V}/query", params={"q": "SELECT Id FROM Work_Order__c WHERE Skills_Required__c INCLUDES ('Gas')"})
    assert 0 < tags.json()["totalSize"] < live
    files = stc.get(f"{V}/query", params={"q": "SELECT COUNT() FROM ContentDocumentLink"}).json()["totalSize"]
    assert files >= 3


def test_seed_bulk_query(stc: httpx.Client) -> None:
    r = stc.post(
        f"{V}/jobs/query",
        json={
            "operation": "queryAll",
            "query": "SELECT Id, Name, Work_Order__r.Name, IsDeleted FROM Work_Order_Line__c",
        },
    )
    job = r.json()["id"]
    assert wait_job(stc, "query", job)["state"] == "JobComplete"
    total, locator = 0, ""
    while locator != "null":
        res = stc.get(
            f"{V}/jobs/query/{job}/results", params={"maxRecords": 50, **({"locator": locator} if locator else {})}
        )
        total += int(res.headers["Sforce-NumberOfRecords"])
        locator = res.headers["Sforce-Locator"]
    assert total == 180


def test_seed_is_deterministic() -> None:
    start = time.monotonic()
    a, b = SalesforceSandbox(seed="servicetracker:20"), SalesforceSandbox(seed="servicetracker:20")
    ca, cb = make_client(a), make_client(b)
    soql = {"q": "SELECT Id, Name, Subject__c, CreatedDate, Account__r.Name FROM Work_Order__c ORDER BY Id"}
    assert ca.get(f"{V}/queryAll", params=soql).json() == cb.get(f"{V}/queryAll", params=soql).json()
    assert a.seed_counts == b.seed_counts
    assert time.monotonic() - start < 20
    with pytest.raises(ValueError, match="unknown seed"):
        SalesforceSandbox(seed="salesforce")
