"""Delta pickup from a source API, end to end: the project's embedded source emulator (ServiceTitan for Dispatch
Pro, a Salesforce org for ServiceTracker) is extracted, mapped, signed off and loaded into the embedded Dataverse
sandbox; the tenant then changes through the emulator (ServiceTitan's cutover ``Mutator``) or the org's own REST
API; ``detect_delta`` must read only what changed since the saved checkpoint and classify it exactly, and
``apply_delta`` must create, update, report or delete at the destination, as one run that rolls back exactly.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crmmigrator_gui.engine.demo import dispatchpro, servicetracker
from crmmigrator_gui.engine.demo.runner import _provision_users
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.delta import apply_delta, detect_delta, pending_delta
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.source import extract as extract_pkg
from crmmigrator_gui.engine.source.extract import servicetitan as st_extract
from crmmigrator_gui.engine.source.extract import servicetracker as sf_extract
from crmmigrator_gui.engine.target.connection import destination, embedded_sandbox_path, embedded_source_path
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.mutate import Mutator

SF_API = "/services/data/v62.0"
# Bookkeeping the platform stamps on every write or re-create (see test_delta_rollback).
BOOKKEEPING = {"modifiedon", "modifiedby", "modifiedby@t", "versionnumber", "overriddencreatedon"}


# ---------------------------------------------------------------------------------------------- helpers


def _loaded(tmp_path, source: str, records: int) -> tuple[Project, int]:
    """A project over its embedded source emulator: extracted, mapped, signed off and fully loaded.
    Returns it with the request count of the full extraction."""
    project = Project.create(tmp_path / "p.cmproj", source=source, target="dynamics365")
    module = dispatchpro if source == "dispatchpro" else servicetracker
    _provision_users(project, module.prepare_source(project, records=records, seed=7))
    full = extract_pkg.extract(project)
    run_automap(project)
    accept(project, actor="tester")
    record_signoff(project, "test")
    result = load(project)
    assert result.status == "completed", result.failures[:3]
    return project, full.requests


class Spy:
    """The delta's extraction as it happened: its result and the URL of every request it sent."""

    def __init__(self) -> None:
        self.result = None
        self.urls: list[httpx.URL] = []

    def params(self, url: httpx.URL) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(str(url)).query).items()}


@pytest.fixture
def spy(monkeypatch):
    """Record the extraction's result (``detect_delta`` imports ``extract`` at call time) and its requests
    (a hook on the HTTP client each extractor opens)."""
    seen = Spy()
    real_extract = extract_pkg.extract

    def extract(*args, **kwargs):
        seen.result = real_extract(*args, **kwargs)
        return seen.result

    def hooked(opener, attribute):
        def open_(project):
            client, sandbox = opener(project)
            http = getattr(client, attribute)
            http = getattr(http, "_client", http)
            http.event_hooks["request"].append(lambda request: seen.urls.append(request.url))
            return client, sandbox

        return open_

    monkeypatch.setattr(extract_pkg, "extract", extract)
    monkeypatch.setattr(st_extract, "open_client", hooked(st_extract.open_client, "http"))
    monkeypatch.setattr(sf_extract, "_open_source", hooked(sf_extract._open_source, "_http"))
    return seen


def _changes(project: Project, delta_id: int) -> dict[str, dict[str, set[str]]]:
    """change -> object -> source ids (unchanged left out)."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in project.query(
        "SELECT change, object, source_id FROM source_changes WHERE delta_id = ? AND change != 'unchanged'",
        (delta_id,),
    ):
        out[row["change"]][row["object"]].add(row["source_id"])
    return {change: dict(by_obj) for change, by_obj in out.items()}


def _find(project: Project, entity_set: str, key: str, select: str) -> list[dict]:
    """Destination records whose new_sourcesystemid is ``key``, read over HTTP."""
    with destination(project) as client:
        response = client.send(
            "GET", entity_set, params={"$filter": f"new_sourcesystemid eq '{key}'", "$select": select}
        )
        assert response.status_code == 200, response.text
        return response.json()["value"]


def _snapshot(project: Project) -> dict[str, dict[str, dict]]:
    """Every row of every sandbox table, bookkeeping columns and nulls left out."""
    conn = sqlite3.connect(embedded_sandbox_path(project))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'e_%'")]
        out = {}
        for table in tables:
            rows = {
                rid: {k: v for k, v in json.loads(data).items() if k not in BOOKKEEPING and v is not None}
                for rid, data in conn.execute(f'SELECT id, data FROM "{table}"')
            }
            if rows:
                out[table] = rows
        return out
    finally:
        conn.close()


def _nothing_pending(plan) -> bool:
    return all(o["new"] == o["changed"] == o["deleted"] == 0 for o in plan.objects)


# ---------------------------------------------------------------------------------------------- ServiceTitan


def _cutover(project: Project, *, changes: bool = True, deactivate_customer: bool = False) -> dict:
    """In the tenant: 3 new customers (each with a location, a contact, a job and an appointment), 2 changed
    customers (a name, a street), 1 deactivated appointment (``active:false``: a deletion per the playbook)
    (those with ``changes``); with ``deactivate_customer`` 1 deactivated customer (the playbook migrates that
    as an Inactive account, not as a deletion). The mutator's clock runs past every ``modifiedOn`` already in
    the tenant, as cutover activity would."""
    customers = sorted(r["source_id"] for r in project.query("SELECT source_id FROM xref WHERE source_object = "
                                                             "'customers'"))  # fmt: skip
    appointment = min(r["source_id"] for r in project.query("SELECT source_id FROM xref WHERE source_object = "
                                                            "'appointments'"))  # fmt: skip
    sandbox = ServiceTitanSandbox(embedded_source_path(project))
    try:
        with sandbox.store.transaction():
            mutator = Mutator(sandbox.store, random.Random(11))
            for _ in range(3 if changes else 0):
                mutator.create_customer()
            if changes:
                renamed = sandbox.store.get("customers", int(customers[0]))
                renamed["name"] = "Renamed During Cutover"
                mutator.save("customers", renamed, "updated")
                moved = sandbox.store.get("customers", int(customers[1]))
                moved["address"]["street"] = "1 Cutover Street"
                mutator.save("customers", moved, "updated")
                gone = sandbox.store.get("appointments", int(appointment))
                gone["active"] = False
                mutator.save("appointments", gone, "deactivated")
            if deactivate_customer:
                inactive = sandbox.store.get("customers", int(customers[2]))
                inactive["active"] = False
                mutator.save("customers", inactive, "deactivated")
        return {
            "created": {e: {str(i) for i in ids} for e, ids in mutator.report["created"].items()},
            "renamed": customers[0], "moved": customers[1], "inactive": customers[2], "appointment": appointment,
        }  # fmt: skip
    finally:
        sandbox.close()


def test_servicetitan_delta_reads_only_the_changes_and_applies_them(tmp_path, spy):
    project, full_requests = _loaded(tmp_path, "dispatchpro", records=40)
    playbook = load_playbook(project.source, project.target, project.edition)
    checkpoint = project.meta(st_extract.CHECKPOINT_KEY)["objects"]
    staged_before = project.scalar("SELECT COUNT(*) FROM staging")
    before = _snapshot(project)
    cut = _cutover(project)
    spy.urls.clear()  # the full extraction's requests

    plan = detect_delta(project)

    # Exact classification, per object.
    assert plan.mode == "api"
    assert not any(plan.complete.values())  # API deltas are changes-only: absences mean nothing
    created = cut["created"]
    assert _changes(project, plan.delta_id) == {
        "new": {"customers": created["customers"], "locations": created["locations"],
                "customer_contacts": created["customer-contacts"], "jobs": created["jobs"],
                "appointments": created["appointments"]},
        "changed": {"customers": {cut["renamed"], cut["moved"]}},
        "deleted": {"appointments": {cut["appointment"]}},
    }  # fmt: skip
    assert plan.pending == 15 + 2 + 1
    assert project.scalar("SELECT COUNT(*) FROM staging WHERE object = 'appointments' AND source_id = ?",
                          (cut["appointment"],)) == 0  # fmt: skip
    # Only the changes were read: every export resumed from its saved continuation token, every list from its
    # high-water mark, attachments were listed only for the jobs this delta delivered.
    walks: dict[str, list[str]] = defaultdict(list)  # export -> the ``from`` of each of its requests
    lists, attachment_listings, zone_index = 0, 0, 0
    for url in spy.urls:
        path, params = url.path, spy.params(url)
        if "/connect/token" in path or "/blobs/" in path:
            continue
        source = next((s for s in st_extract.SOURCES if f"/{s.module}/" in path and
                       path.endswith("/" + (s.export or s.listing or ""))), None)  # fmt: skip
        if source is None:
            assert "/forms/" in path, path
            assert path.endswith("/attachments"), path
            attachment_listings += 1
        elif source.export:
            walks[source.name].append(params.get("from", ""))
        elif "modifiedOnOrAfter" in params:
            lists += 1
            assert params["modifiedOnOrAfter"] == checkpoint[source.name]["high_water"], path
        else:
            assert source.name == "zones", path  # the ZIP index that derives the delivered locations' zones
            zone_index += 1
    assert set(walks) == {s.name for s in st_extract.SOURCES if s.export}
    for name, froms in walks.items():
        assert froms[0] == checkpoint[name]["token"], name  # resumed where the full extraction stopped
        assert all(froms), name  # never a walk from the beginning
    assert lists == sum(1 for s in st_extract.SOURCES if s.listing)
    jobs = next(o for o in spy.result.objects if o["source_object"] == "jobs")
    assert attachment_listings == jobs["records"] < project.staged_count("jobs") / 4  # the delivered jobs only
    assert zone_index == 1
    assert spy.result.requests < full_requests / 2, (spy.result.requests, full_requests)
    delivered = sum(o["records"] for o in spy.result.objects)
    assert delivered < staged_before / 4  # the changed rows plus each export's short re-read overlap

    # Apply, reporting the deletion: new customers exist, the changed ones read back changed.
    result = apply_delta(project, deletes="report")
    assert result.status == "completed", result.failures[:3]
    assert result.kind == "delta"
    for sid in created["customers"]:
        key = destination_key(playbook, "customers", sid, "account")
        assert len(_find(project, "accounts", key, "name")) == 1, key
    renamed = _find(project, "accounts", destination_key(playbook, "customers", cut["renamed"], "account"), "name")
    assert [r["name"] for r in renamed] == ["Renamed During Cutover"]
    moved = _find(project, "accounts", destination_key(playbook, "customers", cut["moved"], "account"),
                  "address1_line1")  # fmt: skip
    assert [r["address1_line1"] for r in moved] == ["1 Cutover Street"]
    # The renamed customer's contact takes its last name from the customer: reloaded although its rows did
    # not change (a full load would write the new name too).
    contact = _find(project, "contacts", destination_key(playbook, "customer_contacts", cut["renamed"], "contact"),
                    "lastname")  # fmt: skip
    assert [r["lastname"] for r in contact] == ["Renamed During Cutover"]
    # The deactivated appointment is reported with its destination record, which is still there.
    appointment_key = destination_key(playbook, "appointments", cut["appointment"], "appointment")
    (present,) = _find(project, "appointments", appointment_key, "activityid")
    report = result.to_json()["delta"]
    assert report["deleted"] == [{"source_object": "appointments", "source_id": cut["appointment"],
                                  "dest_id": present["activityid"], "target_entity": "appointment",
                                  "applied": "reported"}]  # fmt: skip
    by_obj = {o["source_object"]: o for o in report["objects"]}
    assert by_obj["appointments"]["deleted"] == 1
    assert by_obj["appointments"]["deleted_applied"] == 0
    created_by_obj = {o["source_object"]: o["created"] for o in result.objects}
    assert created_by_obj["customers"] == 3
    assert created_by_obj["appointments"] == 3
    delta_run = result.run_id

    # A second detect with no source change: nothing new, changed or deleted; nothing written.
    quiet = detect_delta(project)
    assert _nothing_pending(quiet), quiet.objects
    assert _changes(project, quiet.delta_id) == {}
    untouched = _snapshot(project)
    again = apply_delta(project, deletes="report")
    assert sum(o["created"] + o["updated"] for o in again.objects) == 0
    assert again.to_json()["delta"]["deleted"] == []  # the earlier report is not repeated
    assert _snapshot(project) == untouched

    # Reviewed, the reported deletion is applied by the next delta run: removed, then restored by its rollback.
    detect_delta(project)
    applied = apply_delta(project, deletes="apply")
    assert applied.status == "completed"
    (gone,) = applied.to_json()["delta"]["deleted"]
    assert (gone["source_id"], gone["applied"], gone["dest_id"]) == (cut["appointment"], "deleted",
                                                                     present["activityid"])  # fmt: skip
    assert _find(project, "appointments", appointment_key, "activityid") == []
    assert pending_delta(project) is None
    undone = rollback(project, run_id=applied.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    restored = _find(project, "appointments", appointment_key, "activityid")
    assert [r["activityid"] for r in restored] == [present["activityid"]]  # re-created with the same id
    assert _snapshot(project) == untouched
    # And rolling back the first delta run leaves the destination as the full load left it.
    undone = rollback(project, run_id=delta_run)
    assert [r.status for r in undone] == ["rolled_back"], json.dumps(undone[0].failures, indent=1, default=str)
    assert _snapshot(project) == before
    project.close()


def test_servicetitan_deactivated_customer_is_a_status_change_that_rolls_back(tmp_path):
    project, _requests = _loaded(tmp_path, "dispatchpro", records=40)
    playbook = load_playbook(project.source, project.target, project.edition)
    before = _snapshot(project)
    cut = _cutover(project, changes=False, deactivate_customer=True)

    plan = detect_delta(project)
    # The playbook has no deletion rule for customers: active:false on a customer is a change of status.
    assert _changes(project, plan.delta_id) == {"changed": {"customers": {cut["inactive"]}}}
    result = apply_delta(project, deletes="apply")
    assert result.status == "completed", result.failures[:3]
    assert result.to_json()["delta"]["deleted"] == []
    key = destination_key(playbook, "customers", cut["inactive"], "account")
    assert [(r["statecode"], r["statuscode"]) for r in _find(project, "accounts", key, "statecode,statuscode")] == [
        (1, 2)
    ]  # Inactive
    undone = rollback(project, run_id=result.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    assert _snapshot(project) == before
    project.close()


# ---------------------------------------------------------------------------------------------- ServiceTracker


def test_servicetracker_delta_updates_a_changed_account_and_deletes_a_deleted_work_order(tmp_path, spy):
    project, _requests = _loaded(tmp_path, "servicetracker", records=300)
    playbook = load_playbook(project.source, project.target, project.edition)
    before = _snapshot(project)
    marks = {o: v["SystemModstamp"] for o, v in project.meta("extract_checkpoint")["objects"].items()}
    account = min(r["source_id"] for r in project.query("SELECT source_id FROM xref WHERE source_object = "
                                                        "'Account'"))  # fmt: skip
    loaded_lines: dict[str, set[str]] = defaultdict(set)
    for sid, raw in project.iter_staged("Work_Order_Line__c"):
        if project.scalar("SELECT COUNT(*) FROM xref WHERE source_object = 'Work_Order_Line__c' AND source_id = ?",
                          (sid,)):  # fmt: skip
            loaded_lines[raw["Work_Order__c"]].add(sid)
    work_order = min(wo for wo, lines in loaded_lines.items() if len(lines) >= 2)
    lines = loaded_lines[work_order]

    org = SalesforceSandbox(embedded_source_path(project))
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=org), base_url="http://servicetracker.localhost",
                          headers={"Authorization": f"Bearer {org.issue_token()}"}) as http:  # fmt: skip
            edit = http.patch(f"{SF_API}/sobjects/Account/{account}", json={"Name": "Renamed In The Org"})
            assert edit.status_code == 204, edit.text
            gone = http.delete(f"{SF_API}/sobjects/Work_Order__c/{work_order}")  # its lines go with it
            assert gone.status_code == 204, gone.text
    finally:
        org.close()
    spy.urls.clear()

    plan = detect_delta(project)
    assert _changes(project, plan.delta_id) == {
        "changed": {"Account": {account}},
        "deleted": {"Work_Order__c": {work_order}, "Work_Order_Line__c": lines},
    }
    # Only the window since each object's mark was queried, and deletions came from queryAll.
    soql = [spy.params(u)["q"] for u in spy.urls if u.path.endswith(("/query", "/queryAll")) and "q" in spy.params(u)]
    reads = [q for q in soql if " FROM " in q and "COUNT()" not in q and "IsDeleted = true" not in q]
    assert reads
    assert all("WHERE SystemModstamp > " in q for q in reads), reads
    deleted_reads = [u for u in spy.urls if u.path.endswith("/queryAll")]
    assert len(deleted_reads) >= len(marks)
    # A small org fits each object in one page, so the delta's per-object queryAll costs requests rather than
    # saving them; what it saves is rows: only the window since each mark (plus its overlap) is delivered.
    delivered = sum(o["records"] for o in spy.result.objects)
    assert delivered < project.scalar("SELECT COUNT(*) FROM staging") / 10, delivered

    result = apply_delta(project, deletes="apply")
    assert result.status == "completed", result.failures[:3]
    account_key = destination_key(playbook, "Account", account, "account")
    assert [r["name"] for r in _find(project, "accounts", account_key, "name")] == ["Renamed In The Org"]
    assert {o["source_object"]: o["updated"] for o in result.objects}["Account"] == 1
    report = result.to_json()["delta"]
    assert {(d["source_object"], d["source_id"], d["applied"]) for d in report["deleted"]} == {
        ("Work_Order__c", work_order, "deleted"),
        *(("Work_Order_Line__c", sid, "deleted") for sid in lines),
    }
    case_key = destination_key(playbook, "Work_Order__c", work_order, "case")
    assert _find(project, "incidents", case_key, "incidentid") == []
    for sid in lines:
        assert _find(project, "new_workorderproducts", destination_key(playbook, "Work_Order_Line__c", sid, "line"),
                     "new_workorderproductid") == []  # fmt: skip

    # Nothing changed since: the next delta is empty and writes nothing.
    quiet = detect_delta(project)
    assert _nothing_pending(quiet), quiet.objects
    untouched = _snapshot(project)
    again = apply_delta(project, deletes="apply")
    assert sum(o["created"] + o["updated"] for o in again.objects) == 0
    assert again.to_json()["delta"]["deleted"] == []
    assert _snapshot(project) == untouched

    # Rolling back the delta run restores the account's name and re-creates the work order and its lines.
    undone = rollback(project, run_id=result.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    assert _snapshot(project) == before
    project.close()
