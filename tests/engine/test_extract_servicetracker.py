"""ServiceTracker extraction against the Salesforce emulator served on a real loopback socket.

The org is seeded with the ServiceTracker package before the server starts (the served emulator reopens
the same data file). The project reaches it through a source connection (client credentials at
``base_url``), exactly as it would reach a real My Domain host.
"""

from __future__ import annotations

import json

import httpx
import pytest

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.extract import servicetracker
from crmmigrator_gui.engine.target.connection import configure
from crmmigrator_gui.sandbox.hosting import sibling_data_path
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from crmmigrator_gui.sandbox.server import start_background

OBJECTS = (
    "User", "Account", "Contact", "Site__c", "Part__c", "Asset__c", "Contract__c", "Work_Order__c",
    "Work_Order_Line__c", "Inspection__c", "ContentVersion",
)  # fmt: skip
API = "/services/data/v62.0"


class Org:
    def __init__(self, base_url: str, server) -> None:
        self.base_url = base_url
        self.server = server
        self.sf = server.get_app().salesforce
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {self.sf.issue_token()}"})

    def live_ids(self, obj: str) -> set[str]:
        ids: set[str] = set()
        body = self.http.get(f"{API}/query", params={"q": f"SELECT Id FROM {obj}"}).json()
        while True:
            ids |= {r["Id"] for r in body["records"]}
            if body["done"]:
                return ids
            body = self.http.get(body["nextRecordsUrl"]).json()

    def first_id(self, obj: str) -> str:
        return self.http.get(f"{API}/query", params={"q": f"SELECT Id FROM {obj} LIMIT 1"}).json()["records"][0]["Id"]


def _serve(tmp_path, faults: str | None = None, size: int = 100):
    data = tmp_path / "org.sqlite"
    seeded = SalesforceSandbox(sibling_data_path(str(data), "salesforce"), seed=f"servicetracker:{size}")
    seeded.close()
    server, thread, base_url = start_background(data=str(data), faults=faults)
    return server, thread, base_url


@pytest.fixture
def org(tmp_path):
    server, _thread, base_url = _serve(tmp_path)
    org = Org(base_url, server)
    yield org
    org.http.close()
    server.shutdown()
    server.server_close()
    server.get_app().close()


def _project(tmp_path, base_url: str, name: str = "p") -> Project:
    project = Project.create(tmp_path / f"{name}.cmproj", source="servicetracker", target="dynamics365")
    configure(
        project, "source", url=base_url, auth="client-credentials", tenant=None, client_id="st-app",
        token_url=None, username=None, secret="st-secret",
    )  # fmt: skip
    return project


def _snapshot(project: Project) -> dict:
    return {
        "staging": project.query("SELECT object, source_id, row_hash, raw FROM staging ORDER BY object, source_id"),
        "meta": project.query("SELECT key, value FROM meta ORDER BY key"),
        "audit": project.scalar("SELECT COUNT(*) FROM audit"),
        "batches": project.scalar("SELECT COUNT(*) FROM import_batches"),
    }


def test_describe_inventory_and_soql_paging_stage_every_row_once(tmp_path, org, monkeypatch):
    monkeypatch.setattr(servicetracker, "SOQL_BATCH", 200)  # the smallest page: 300 lines need 2 pages
    project = _project(tmp_path, org.base_url)
    result = servicetracker.extract(project, bulk_threshold=10**9)
    by_obj = {o["source_object"]: o for o in result.objects}
    assert set(by_obj) == set(OBJECTS)
    for obj in OBJECTS:
        live = org.live_ids(obj)
        staged = {sid for sid, _raw in project.iter_staged(obj)}
        assert staged == live, obj
        assert by_obj[obj]["records"] == by_obj[obj]["new"] == len(live), obj
        assert by_obj[obj]["changed"] == by_obj[obj]["deleted"] == 0
    assert by_obj["Work_Order_Line__c"]["records"] > 200  # more than one page
    schema = project.meta("source_schema")
    status = next(f for f in schema["objects"]["Work_Order__c"]["fields"] if f["name"] == "Status__c")
    assert status["type"] == "picklist"
    assert status["restricted"]
    assert status["picklist"] == ["Open", "In Progress", "On Hold", "Closed Complete", "Cancelled"]
    tech = next(f for f in schema["objects"]["Work_Order__c"]["fields"] if f["name"] == "Technician__c")
    assert tech["reference_to"] == ["User"]
    checkpoint = project.meta("extract_checkpoint")
    assert all(checkpoint["objects"][o]["SystemModstamp"] for o in OBJECTS)
    assert {checkpoint["objects"][o]["via"] for o in OBJECTS} == {"soql"}
    files = dict(project.iter_staged("ContentVersion"))
    assert all(raw["VersionData"] for raw in files.values())  # bodies downloaded, base64
    wo = next(iter(dict(project.iter_staged("Work_Order__c")).values()))
    assert "Technician__r.Email" in wo
    assert wo["IsDeleted"] == "false"
    assert result.requests > len(OBJECTS) * 2
    project.close()


def test_bulk_query_matches_soql_row_for_row(tmp_path, org):
    soql = _project(tmp_path, org.base_url, "soql")
    bulk = _project(tmp_path, org.base_url, "bulk")
    servicetracker.extract(soql, bulk_threshold=10**9)
    result = servicetracker.extract(bulk, bulk_threshold=1)
    via = {o: bulk.meta("extract_checkpoint")["objects"][o]["via"] for o in OBJECTS}
    assert via["Work_Order__c"] == via["Account"] == "bulk"
    assert via["ContentVersion"] == "soql"  # Bulk cannot read base64 fields
    for obj in OBJECTS:
        a = {
            r["source_id"]: r["row_hash"]
            for r in soql.query("SELECT source_id, row_hash FROM staging WHERE object=?", (obj,))
        }
        b = {
            r["source_id"]: r["row_hash"]
            for r in bulk.query("SELECT source_id, row_hash FROM staging WHERE object=?", (obj,))
        }
        assert a == b, obj  # same ids, and the same normalised values
    assert {o["source_object"]: o["new"] for o in result.objects}["Work_Order_Line__c"] == len(
        org.live_ids("Work_Order_Line__c")
    )
    soql.close()
    bulk.close()


def test_delta_reports_exactly_one_changed_and_one_deleted(tmp_path, org):
    project = _project(tmp_path, org.base_url)
    servicetracker.extract(project, bulk_threshold=50)  # big objects by Bulk, the delta by SOQL
    work_order, inspection = org.first_id("Work_Order__c"), org.first_id("Inspection__c")
    assert (
        org.http.patch(
            f"{API}/sobjects/Work_Order__c/{work_order}", json={"Subject__c": "Edited in the org"}
        ).status_code
        == 204
    )
    assert org.http.delete(f"{API}/sobjects/Inspection__c/{inspection}").status_code == 204
    result = servicetracker.extract(project, bulk_threshold=50)
    by_obj = {o["source_object"]: o for o in result.objects}
    assert by_obj["Work_Order__c"]["changed"] == 1
    assert by_obj["Work_Order__c"]["deleted"] == 0
    assert by_obj["Inspection__c"]["deleted"] == 1
    assert by_obj["Inspection__c"]["changed"] == 0
    assert sum(o["changed"] for o in result.objects) == 1
    assert sum(o["deleted"] for o in result.objects) == 1
    assert sum(o["new"] for o in result.objects) == 0
    staged = dict(project.iter_staged("Inspection__c"))
    assert staged[inspection]["IsDeleted"] == "true"  # the deleted marker the load skips on
    assert dict(project.iter_staged("Work_Order__c"))[work_order]["Subject__c"] == "Edited in the org"
    # A third run finds nothing new; --since forces the whole window and still changes nothing.
    again = servicetracker.extract(project)
    assert sum(o["changed"] + o["deleted"] + o["new"] for o in again.objects) == 0
    forced = servicetracker.extract(project, since="2000-01-01T00:00:00Z")
    by_obj = {o["source_object"]: o for o in forced.objects}
    assert by_obj["Work_Order__c"]["records"] == len(org.live_ids("Work_Order__c"))
    assert sum(o["changed"] + o["deleted"] + o["new"] for o in forced.objects) == 0
    project.close()


def test_limits_and_lock_faults_still_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(servicetracker.SalesforceClient, "_backoff", lambda self, attempt: None)
    server, _thread, base_url = _serve(tmp_path, faults="lock=0.1,503=0.05,403=0.05,seed=1", size=40)
    try:
        project = _project(tmp_path, base_url)
        result = servicetracker.extract(project, bulk_threshold=30)
        clean = Org(base_url, server)
        clean.sf.faults = type(clean.sf.faults).parse(None)  # count with the faults switched off
        for obj in OBJECTS:
            assert {sid for sid, _raw in project.iter_staged(obj)} == clean.live_ids(obj), obj
        assert any(v["via"] == "bulk" for v in project.meta("extract_checkpoint")["objects"].values())
        assert any("retried" in w for w in result.warnings)  # the faults did fire
        clean.http.close()
        project.close()
    finally:
        server.shutdown()
        server.server_close()
        server.get_app().close()


def test_failed_extraction_leaves_the_project_unchanged(tmp_path, org, monkeypatch):
    project = Project.create(tmp_path / "p.cmproj", source="servicetracker", target="dynamics365")
    configure(
        project, "source", url=org.base_url, auth="static-token", tenant=None, client_id=None, token_url=None,
        username=None, secret=org.sf.issue_token(),
    )  # fmt: skip
    servicetracker.extract(project)
    org.http.patch(f"{API}/sobjects/Account/{org.first_id('Account')}", json={"Name": "Renamed"})
    before = _snapshot(project)
    real = servicetracker._extract_object
    calls = {"n": 0}

    def revoke_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            org.sf.expire_tokens()  # the admin revokes the session: the next call answers 401
        return real(*args, **kwargs)

    monkeypatch.setattr(servicetracker, "_extract_object", revoke_midway)
    with pytest.raises(MigratorError, match="refused the stored token"):
        servicetracker.extract(project)
    assert _snapshot(project) == before
    assert json.dumps(project.meta("extract_checkpoint"))  # the last committed marks are still there
    project.close()


def test_values_normalise_the_same_from_json_and_csv():
    norm = servicetracker._norm
    assert norm(True, "boolean") == norm("true", "boolean") == "true"
    assert norm(120.0, "double") == norm("120", "double") == "120"
    assert norm(12.50, "currency") == norm("12.5", "currency") == "12.5"
    assert norm("2025-03-05T14:22:11.000+0000", "datetime") == norm("2025-03-05T14:22:11.000Z", "datetime")
    assert norm("", "string") is None
    assert norm("00123", "string") == "00123"
    with pytest.raises(MigratorError):
        servicetracker._soql_datetime("yesterday")
