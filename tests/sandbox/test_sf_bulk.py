"""Bulk API 2.0 ingest and query jobs (reference §4)."""

from __future__ import annotations

import csv
import io

import httpx

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import V, client_fixture, create, ext_client_fixture, run_ingest, sb_fixture, wait_job  # noqa: F401


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_insert_job_lifecycle_and_results(client: httpx.Client) -> None:
    r = client.post(
        f"{V}/jobs/ingest",
        json={
            "object": "Account",
            "operation": "insert",
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    )
    info = r.json()
    assert r.status_code == 200
    assert info["state"] == "Open"
    assert info["id"].startswith("750")
    assert info["contentUrl"] == f"services/data/v62.0/jobs/ingest/{info['id']}/batches"
    job = info["id"]
    data = 'Name,Phone,Description\nAcme,555,"multi\nline, quoted ""x"""\n,1,missing name\nZoë,#N/A,\n'
    r = client.put(f"{V}/jobs/ingest/{job}/batches", content=data.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 201
    assert r.content == b""
    again = client.put(f"{V}/jobs/ingest/{job}/batches", content=data.encode(), headers={"Content-Type": "text/csv"})
    assert again.status_code == 400
    assert "Found multiple contents" in again.json()[0]["message"]
    assert client.patch(f"{V}/jobs/ingest/{job}", json={"state": "UploadComplete"}).json()["state"] == "UploadComplete"
    done = wait_job(client, "ingest", job)
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == ("JobComplete", 3, 1)
    ok = client.get(f"{V}/jobs/ingest/{job}/successfulResults/")
    assert ok.headers["content-type"].startswith("text/csv")
    assert ok.text.splitlines()[0] == '"sf__Id","sf__Created","Name","Phone","Description"'
    good = rows(ok.text)
    assert [g["Name"] for g in good] == ["Acme", "Zoë"]
    assert all(g["sf__Created"] == "true" for g in good)
    acme = client.get(f"{V}/sobjects/Account/{good[0]['sf__Id']}").json()
    assert acme["Description"] == 'multi\nline, quoted "x"'
    bad = rows(client.get(f"{V}/jobs/ingest/{job}/failedResults/").text)
    assert bad[0]["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert client.get(f"{V}/jobs/ingest/{job}/unprocessedrecords/").text.strip() == '"Name","Phone","Description"'
    assert client.delete(f"{V}/jobs/ingest/{job}").status_code == 204
    assert client.get(f"{V}/jobs/ingest/{job}").status_code == 404


def test_upsert_update_delete_with_relationship_columns(ext_client: httpx.Client) -> None:
    c = ext_client
    parent = create(c, "Account", {"Name": "P", "Source_System_ID__c": "A-1"})
    info = run_ingest(
        c,
        {"object": "Contact", "operation": "upsert", "externalIdFieldName": "Source_System_ID__c"},
        "LastName,Source_System_ID__c,Account.Source_System_ID__c,Email\r\n",
    )
    assert info["state"] == "Failed"
    assert "LineEnding" in info["errorMessage"]
    info = run_ingest(
        c,
        {
            "object": "Contact",
            "operation": "upsert",
            "externalIdFieldName": "Source_System_ID__c",
            "lineEnding": "CRLF",
        },
        "LastName,Source_System_ID__c,Account.Source_System_ID__c,Email\r\n"
        "Ng,P-1,A-1,ng@example.com\r\nOrtiz,P-2,NOPE,\r\nSolo,P-3,,\r\n",
    )
    assert info["numberRecordsProcessed"] == 3
    assert info["numberRecordsFailed"] == 1
    ok = rows(c.get(f"{V}/jobs/ingest/{info['id']}/successfulResults/").text)
    ng = c.get(f"{V}/sobjects/Contact/{ok[0]['sf__Id']}").json()
    assert ng["AccountId"] == parent
    assert ng["Email"] == "ng@example.com"
    failed = rows(c.get(f"{V}/jobs/ingest/{info['id']}/failedResults/").text)
    assert failed[0]["sf__Error"].startswith("INVALID_FIELD:Foreign key external ID: NOPE not found")
    # second run: same keys update; empty cell keeps the value, #N/A clears it
    info = run_ingest(
        c,
        {"object": "Contact", "operation": "upsert", "externalIdFieldName": "Source_System_ID__c"},
        "LastName,Source_System_ID__c,Email,Account.Source_System_ID__c\nNg2,P-1,,#N/A\n",
    )
    ok2 = rows(c.get(f"{V}/jobs/ingest/{info['id']}/successfulResults/").text)
    assert ok2[0]["sf__Created"] == "false"
    assert ok2[0]["sf__Id"] == ok[0]["sf__Id"]
    ng = c.get(f"{V}/sobjects/Contact/{ok[0]['sf__Id']}").json()
    assert (ng["LastName"], ng["Email"], ng["AccountId"]) == ("Ng2", "ng@example.com", None)
    info = run_ingest(
        c, {"object": "Contact", "operation": "update"}, f"Id,Title\n{ok[0]['sf__Id']},Boss\n003000000000000AAA,x\n"
    )
    assert info["numberRecordsFailed"] == 1
    info = run_ingest(c, {"object": "Contact", "operation": "delete"}, f"Id\n{ok[0]['sf__Id']}\n")
    assert info["numberRecordsFailed"] == 0
    assert c.get(f"{V}/sobjects/Contact/{ok[0]['sf__Id']}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    info = run_ingest(c, {"object": "Contact", "operation": "hardDelete"}, f"Id\n{ok[0]['sf__Id']}\n")
    assert info["numberRecordsFailed"] == 0
    assert c.get(f"{V}/sobjects/Contact/{ok[0]['sf__Id']}").json()[0]["errorCode"] == "NOT_FOUND"


def test_job_level_failures(client: httpx.Client) -> None:
    r = client.post(f"{V}/jobs/ingest", json={"object": "Nope", "operation": "insert"})
    assert r.status_code == 400
    assert isinstance(r.json(), list)
    r = client.post(
        f"{V}/jobs/ingest", json={"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"}
    )
    assert r.status_code == 400
    info = run_ingest(client, {"object": "Account", "operation": "insert"}, "Name,Bogus\nA,1\n")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Bogus"
    info = run_ingest(client, {"object": "Account", "operation": "delete"}, "Id,Name\n001000000000000AAA,x\n")
    assert info["state"] == "Failed"
    info = run_ingest(
        client, {"object": "Account", "operation": "insert", "columnDelimiter": "PIPE"}, "Name|Phone\nA|1\n"
    )
    assert info["state"] == "JobComplete"
    assert info["numberRecordsFailed"] == 0
    assert client.get(f"{V}/jobs/ingest/750000000000000AAA").status_code == 404
    r = client.post(f"{V}/jobs/ingest", json={"object": "Account", "operation": "insert"})
    job = r.json()["id"]
    assert client.patch(f"{V}/jobs/ingest/{job}", json={"state": "Aborted"}).json()["state"] == "Aborted"
    put = client.put(f"{V}/jobs/ingest/{job}/batches", content=b"Name\nx\n", headers={"Content-Type": "text/csv"})
    assert put.status_code == 400
    listing = client.get(f"{V}/jobs/ingest").json()
    assert listing["done"] is True
    assert any(j["id"] == job for j in listing["records"])


def test_query_job_paging(sb: SalesforceSandbox, client: httpx.Client) -> None:
    acme = create(client, "Account", {"Name": "Acme, Inc", "AnnualRevenue": 10})
    for i in range(5):
        create(client, "Contact", {"LastName": f"C{i}", "AccountId": acme if i % 2 == 0 else None})
    gone = create(client, "Contact", {"LastName": "Gone"})
    client.delete(f"{V}/sobjects/Contact/{gone}")
    r = client.post(
        f"{V}/jobs/query",
        json={
            "operation": "query",
            "query": "SELECT Id, LastName, Account.Name, CreatedDate FROM Contact ORDER BY LastName",
        },
    )
    assert r.status_code == 200
    assert r.json()["state"] == "UploadComplete"
    assert r.json()["jobType"] == "V2Query"
    job = r.json()["id"]
    info = wait_job(client, "query", job)
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 5
    create(client, "Contact", {"LastName": "After"})  # not in the snapshot
    pages, locator = [], None
    while locator != "null":
        params = {"maxRecords": 2, **({"locator": locator} if locator else {})}
        r = client.get(f"{V}/jobs/query/{job}/results", params=params)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        locator = r.headers["Sforce-Locator"]
        got = rows(r.text)
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(got)
        pages.append(got)
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [row for p in pages for row in p]
    assert [x["LastName"] for x in flat] == ["C0", "C1", "C2", "C3", "C4"]
    assert list(flat[0]) == ["Id", "LastName", "Account.Name", "CreatedDate"]
    assert flat[0]["Account.Name"] == "Acme, Inc"
    assert flat[1]["Account.Name"] == ""
    r = client.post(
        f"{V}/jobs/query", json={"operation": "queryAll", "query": "SELECT Id FROM Contact WHERE IsDeleted = true"}
    )
    assert wait_job(client, "query", r.json()["id"])["numberRecordsProcessed"] == 1
    r = client.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Id, Bad FROM Contact"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = client.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT COUNT() FROM Contact"})
    assert r.status_code == 400
    limits = client.get(f"{V}/limits").json()
    assert limits["DailyBulkV2QueryJobs"]["Remaining"] == 10000 - 2
