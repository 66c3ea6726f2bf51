"""Load engine against the embedded Salesforce sandbox, over HTTP with the real client.

Balanced counts per source object, parent references by external id, owners from users matched by e-mail,
idempotent reloads, an update with its prior snapshot and exact rollback, rollback of everything, a
restricted picklist value with no mapping failing only its record, the Bulk 2.0 path, the audit-field
fallback and the schema gate for a real org.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from crmmigrator_gui.engine.errors import BlockedError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run import load_salesforce
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target import salesforce as sf_module
from crmmigrator_gui.engine.target.connection import SandboxTransport, embedded_sandbox_path
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from tests.engine.conftest import confirmed_project

OBJECTS = ("Product2", "PricebookEntry", "Account", "Contact", "Field_Worker__c", "Job__c", "Opportunity",
           "Invoice__c", "Payment__c", "Quote", "Task")  # fmt: skip


@pytest.fixture
def sf_project(tmp_path, monkeypatch):
    """A confirmed OctopusPro → Salesforce project over a ~300-record export; field-worker users provisioned."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path, "salesforce", records=300, seed=3)
    yield project
    project.close()


@contextmanager
def org_client(project: Project) -> Iterator[SalesforceClient]:
    org = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
    token = org.issue_token()
    client = SalesforceClient("http://sandbox.localhost", lambda: token, transport=SandboxTransport(app=org))
    try:
        yield client
    finally:
        client.close()
        org.close()


def _rows(project: Project, soql: str) -> list[dict]:
    with org_client(project) as client:
        return list(client.query(soql))


def _totals(result, key: str) -> int:
    return sum(o[key] for o in result.to_json()["objects"])


def _restage(project: Project, obj: str, change) -> str:
    sid, raw = next(project.iter_staged(obj))
    change(raw)
    project.db.conn.execute(
        "UPDATE staging SET raw = ? WHERE object = ? AND source_id = ?", (json.dumps(raw), obj, sid)
    )
    return sid


def test_load_is_balanced_references_by_external_id_owners_and_idempotent(sf_project):
    result = load(sf_project)
    assert result.status == "completed", result.failures[:3]
    for o in result.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, result.failures[:3])
    assert result.requests > 0

    accounts = {
        r["Source_System_ID__c"]: r["Id"] for r in _rows(sf_project, "SELECT Id, Source_System_ID__c FROM Account")
    }
    contacts = _rows(sf_project, "SELECT Source_System_ID__c, AccountId FROM Contact WHERE Source_System_ID__c != null")
    assert len(contacts) == sf_project.staged_count("customers")
    for contact in contacts:
        assert contact["AccountId"] == accounts[contact["Source_System_ID__c"].replace("-contact", "-account")]

    with org_client(sf_project) as client:
        admin = client.user_info()["user_id"]
        users = {r["Id"] for r in client.query("SELECT Id FROM User")}
        jobs = list(client.query("SELECT OwnerId, CreatedDate FROM Job__c"))
    owners = {j["OwnerId"] for j in jobs}
    assert owners <= users
    assert owners - {admin}, "jobs are owned by the field workers' users"
    assert all(datetime.fromisoformat(j["CreatedDate"][:10]).year < datetime.now().year + 1 for j in jobs)
    assert any(j["CreatedDate"][:4] <= "2025" for j in jobs), "original created dates kept (Set Audit Fields)"

    again = load(sf_project)
    assert _totals(again, "created") == 0
    assert _totals(again, "updated") == 0
    assert _totals(again, "failed") == 0


def test_changed_value_updates_one_record_with_prior_snapshot_and_rollback_restores_it(sf_project):
    load(sf_project)
    email_col = {}

    def change(raw):
        email_col["c"] = next(c for c in raw if "mail" in c.lower())
        email_col["was"] = raw[email_col["c"]]
        raw[email_col["c"]] = "changed@example.org"

    _restage(sf_project, "customers", change)
    second = load(sf_project)
    customers = next(o for o in second.objects if o["source_object"] == "customers")
    assert customers["updated"] == 1
    assert customers["created"] == 0
    prior = sf_project.query("SELECT prior FROM crosswalk WHERE run_id = ? AND action = 'updated'", (second.run_id,))
    assert json.loads(prior[0]["prior"]) == {"Email": email_col["was"].strip().lower()}
    assert len(_rows(sf_project, "SELECT Id FROM Contact WHERE Email = 'changed@example.org'")) == 1

    rollback(sf_project)  # the most recent run: the update
    assert not _rows(sf_project, "SELECT Id FROM Contact WHERE Email = 'changed@example.org'")
    assert _rows(sf_project, f"SELECT Id FROM Contact WHERE Email = '{email_col['was'].strip().lower()}'")

    results = rollback(sf_project, all_runs=True)
    assert all(r.status == "rolled_back" for r in results)
    for sobject in OBJECTS:
        assert not _rows(sf_project, f"SELECT Id FROM {sobject} WHERE Source_System_ID__c != null"), sobject
    assert not sf_project.query("SELECT * FROM xref")


def test_restricted_picklist_value_without_mapping_fails_only_that_record(sf_project):
    sid = _restage(
        sf_project, "invoices", lambda raw: raw.update({next(c for c in raw if "status" in c.lower()): "Disputed"})
    )
    result = load(sf_project)
    invoices = next(o for o in result.objects if o["source_object"] == "invoices")
    assert invoices["failed"] == 1
    assert invoices["created"] + invoices["skipped"] == invoices["source_records"] - 1
    failure = next(f for f in result.failures if f["source_id"] == sid)
    assert failure["code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "Disputed" in failure["message"]
    assert "restricted picklist" in failure["message"]
    assert "Invoice__c.Status__c" in failure["message"]
    assert result.status == "completed_with_failures"
    payments = next(o for o in result.objects if o["source_object"] == "payments")
    assert payments["failed"] == 0  # children of the failed invoice are skipped, not failed


def test_parts_at_the_bulk_threshold_go_through_bulk_api_2(sf_project, monkeypatch):
    monkeypatch.setattr(sf_module, "BULK_THRESHOLD", 100)
    bulk_objects: list[str] = []
    real = SalesforceClient.bulk_upsert

    def spy(self, sobject, ext_field, rows, **kwargs):
        bulk_objects.append(sobject)
        return real(self, sobject, ext_field, rows, poll_interval=0.01)

    monkeypatch.setattr(SalesforceClient, "bulk_upsert", spy)
    result = load(sf_project)
    assert result.status == "completed", result.failures[:3]
    assert {"Job__c", "Opportunity"} <= set(bulk_objects)  # bookings: over the lowered threshold
    if sf_project.staged_count("customers") >= 100:
        assert {"Account", "Contact"} <= set(bulk_objects)
    assert "Product2" not in bulk_objects  # 20 services stay on Collections
    for o in result.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
    again = load(sf_project)
    assert _totals(again, "created") == 0
    assert _totals(again, "updated") == 0
    rollback(sf_project, all_runs=True)
    assert not _rows(sf_project, "SELECT Id FROM Job__c WHERE Source_System_ID__c != null")


def test_without_set_audit_fields_created_dates_go_to_the_fallback_field(sf_project, monkeypatch):
    monkeypatch.setattr(SalesforceClient, "audit_fields_enabled", lambda self, sobject="Task": False)
    result = load(sf_project)
    assert result.status == "completed", result.failures[:3]
    assert any(
        "Set Audit Fields upon Record Creation is off" in w and "Source_Created_Date__c" in w for w in result.warnings
    )
    jobs = _rows(sf_project, "SELECT CreatedDate, Source_Created_Date__c FROM Job__c LIMIT 5")
    assert all(j["Source_Created_Date__c"] for j in jobs)
    assert all(
        j["CreatedDate"][:4] > j["Source_Created_Date__c"][:4] or j["CreatedDate"] != j["Source_Created_Date__c"]
        for j in jobs
    )


def test_a_real_org_without_the_schema_blocks_the_load(sf_project, monkeypatch):
    monkeypatch.setattr(load_salesforce, "is_sandbox", lambda project: False)
    with pytest.raises(BlockedError, match="schema PROJECT apply"):
        load(sf_project)


def test_cancel_then_resume_and_crash_before_commit_leave_no_gaps_or_duplicates(sf_project, monkeypatch):
    from crmmigrator_gui.engine.progress import CancelToken
    from crmmigrator_gui.engine.run import load as load_module

    token = CancelToken()
    seen = []

    def progress(event):
        seen.append(event)
        if len(seen) == 3:
            token.cancel()

    partial = load(sf_project, progress=progress, cancel=token, batch_size=50)
    assert partial.status == "cancelled"

    real_commit = load_module._Runner._commit
    crashed = {"done": False}

    def crashing_commit(self, part, outcomes, batch):
        if part.name == "account" and batch.items and not crashed["done"]:
            crashed["done"] = True  # Salesforce wrote this batch, but we "lose power" before committing
            raise KeyboardInterrupt("power loss")
        return real_commit(self, part, outcomes, batch)

    monkeypatch.setattr(load_module._Runner, "_commit", crashing_commit)
    with pytest.raises(KeyboardInterrupt):
        load(sf_project, batch_size=50)
    assert sf_project.scalar("SELECT COUNT(*) FROM crosswalk WHERE action = 'pending'")
    sf_project.db.conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
    resumed = load(sf_project, batch_size=50)
    assert resumed.run_id == partial.run_id
    assert resumed.status == "completed"
    customers = sf_project.staged_count("customers")
    assert next(o for o in resumed.objects if o["source_object"] == "customers")["created"] == customers
    for o in resumed.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
    assert len(_rows(sf_project, "SELECT Id FROM Account WHERE Source_System_ID__c != null")) == customers
    rollback(sf_project)
    assert not _rows(sf_project, "SELECT Id FROM Account WHERE Source_System_ID__c != null")
