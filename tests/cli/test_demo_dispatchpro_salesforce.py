"""Dispatch Pro (ServiceTitan) → Salesforce Sales Cloud end to end: the real CLI as a subprocess extracts the
embedded ServiceTitan emulator over HTTP, maps with the dispatchpro-salesforce playbook and loads into the
embedded Salesforce org. Every record is accounted for, jobs land on Case with their timeline (Tasks with the
original event times, Events per appointment), a second load creates nothing, a nameless customer's Contact
gets a last name from the customer's street (``fallback_template``), and ``rollback --all`` leaves no
migrated record."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.target.connection import SandboxTransport
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

pytestmark = pytest.mark.slow

OBJECTS = {"technicians", "job_types", "customers", "locations", "customer_contacts", "jobs", "appointments",
           "job_history", "job_attachments", "estimates", "estimate_items", "invoices", "invoice_items",
           "payments"}  # fmt: skip
SOBJECTS = ("Skill__c", "Product2", "Account", "Contact", "Case", "Event", "Task", "Opportunity", "Quote",
            "Line_Item__c", "Invoice__c", "Invoice_Line__c", "Payment__c")  # fmt: skip


@contextmanager
def org(path: str | Path) -> Iterator[SalesforceClient]:
    sandbox = SalesforceSandbox(Path(path), audit_fields_permission=True)
    token = sandbox.issue_token()
    client = SalesforceClient("http://sandbox.localhost", lambda: token, transport=SandboxTransport(app=sandbox))
    try:
        yield client
    finally:
        client.close()
        sandbox.close()


def _staged(project: str, obj: str) -> dict[str, dict]:
    with sqlite3.connect(project) as db:
        return {sid: json.loads(raw) for sid, raw in db.execute(
            "SELECT source_id, raw FROM staging WHERE object = ?", (obj,))}  # fmt: skip


def test_playbook_targets_salesforce_objects():
    playbook = load_playbook("dispatchpro", "salesforce")
    assert playbook.key_column == "Source_System_ID__c"
    entities = {p.qualified: p.entity for p in playbook.parts()}
    assert entities["jobs.case"] == "Case"
    assert entities["job_history.history"] == "Task"
    assert entities["appointments.event"] == "Event"
    assert entities["estimates.quote"] == "Quote"
    assert entities["estimates.opportunity"] == "Opportunity"
    assert entities["technicians.skill"] == "Skill__c"
    assert playbook.obj("technicians").match_user == {"role": "email", "column": "Email"}
    rebuilt = {r["row"] for r in playbook.seed_rows if r.get("rebuild")}
    assert rebuilt == {"Dispatch Pro Playbook / Workflow", "Report / Dashboard"}
    assert entities["invoices.invoice"] == "Invoice__c"
    assert entities["invoice_items.line"] == "Invoice_Line__c"
    assert entities["payments.payment"] == "Payment__c"


def test_demo_accounts_for_every_record_reloads_nothing_and_rolls_back(cli, tmp_path):
    ran = cli("demo", "--source", "dispatchpro", "--target", "salesforce", "--records", "300", "--dir", "d", "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["kind"] == "load"
    assert data["status"] == "completed", data["failures"][:3]
    objects = {o["source_object"]: o for o in data["objects"]}
    assert set(objects) == OBJECTS
    for o in objects.values():
        assert o["source_records"] > 0, o
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
    for failure in data["failures"]:  # skips only for rows deleted at the source, with the reason
        assert failure["action"] == "skipped", failure
        assert "deleted in ServiceTitan" in failure["message"], failure
    assert data["requests"] > 0
    project, sandbox = (str(tmp_path / data[k]) for k in ("project", "sandbox"))  # cli runs in tmp_path

    jobs = _staged(project, "jobs")
    history = _staged(project, "job_history")
    with org(sandbox) as client:
        cases = list(client.query(
            "SELECT Id, Subject, Status, Priority, Job_Status__c, Job_Priority__c, Source_Job_Number__c, "
            "Service_Type__c, CreatedDate, AccountId, Job_Type__c, Source_System_ID__c FROM Case"))  # fmt: skip
        assert len(cases) == sum(1 for j in jobs.values() if j.get("active") != "false")
        by_key = {c["Source_System_ID__c"]: c for c in cases}
        sid, job = next(iter(jobs.items()))
        case = by_key[f"DP-jobs-{sid}-case"]
        assert case["Source_Job_Number__c"] == job["jobNumber"]
        assert case["CreatedDate"][:19] == job["createdOn"][:19]  # Set Audit Fields: the original date
        assert case["AccountId"]
        assert case["Job_Type__c"]
        assert case["Service_Type__c"]
        assert {c["Job_Priority__c"] for c in cases} <= {"Low", "Normal", "High", "Urgent"}  # 4 levels, not 8
        assert {c["Priority"] for c in cases} <= {"Low", "Medium", "High"}
        closed = {c["Job_Status__c"] for c in cases if c["Status"] == "Closed"}
        assert closed <= {"Completed", "Canceled"}
        tasks = list(client.query(
            "SELECT Subject, CreatedDate, WhatId, Source_System_ID__c FROM Task "
            "WHERE Source_System_ID__c LIKE 'DP-job_history-%'"))  # fmt: skip
        assert len(tasks) == len(history)
        task = next(t for t in tasks if t["Source_System_ID__c"] == f"DP-job_history-{next(iter(history))}-history")
        event = next(iter(history.values()))
        assert task["Subject"] == event["eventType"]
        assert task["CreatedDate"][:19] == event["date"][:19]  # the original event time
        assert task["WhatId"] == by_key[f"DP-jobs-{event['jobId']}-case"]["Id"]
        events = list(client.query("SELECT WhatId FROM Event"))
        assert len(events) == objects["appointments"]["created"]
        assert all(e["WhatId"] for e in events)
        files = list(client.query("SELECT File_Name__c, WhatId FROM Task WHERE File_Name__c != null"))
        assert len(files) == objects["job_attachments"]["created"]
        lines = list(client.query("SELECT Quote__c FROM Line_Item__c"))
        assert len(lines) == objects["estimate_items"]["created"]
        assert all(li["Quote__c"] for li in lines)
        invoices = list(client.query("SELECT Case__c, Account__c, Total__c, Payment_Status__c FROM Invoice__c"))
        assert len(invoices) == objects["invoices"]["created"]
        assert all(i["Case__c"] and i["Account__c"] for i in invoices)
        assert {i["Payment_Status__c"] for i in invoices} <= {"Unpaid", "Partially Paid", "Paid"}
        inv_lines = list(client.query("SELECT Invoice__c FROM Invoice_Line__c"))
        assert len(inv_lines) == objects["invoice_items"]["created"]
        assert all(li["Invoice__c"] for li in inv_lines)
        payments = list(client.query("SELECT Invoice__c, Account__c, Amount__c FROM Payment__c"))
        assert len(payments) == objects["payments"]["created"]
        assert all(p["Invoice__c"] and p["Account__c"] for p in payments)
        valued = [c for c in client.query("SELECT Invoice_Total__c FROM Case") if c["Invoice_Total__c"]]
        assert len(valued) == len({i["Case__c"] for i in invoices})

    again = cli("load", project, "--json")
    assert again.code == 0, again.stderr
    for o in again.json["objects"]:
        assert o["created"] == 0, o
        assert o["updated"] == 0, o
        assert o["failed"] == 0, o

    # A customer that loses its name at the source: the Account falls back to its street, and the Contact
    # (LastName is required in Salesforce) to the customer's street and city through ``fallback_template``.
    contacts = _staged(project, "customer_contacts")
    customers = _staged(project, "customers")
    cid = next(c["customerId"] for c in contacts.values() if c["customerId"] in customers)
    customers[cid]["name"] = None
    with sqlite3.connect(project) as db:
        db.execute("UPDATE staging SET raw = ? WHERE object = 'customers' AND source_id = ?",
                   (json.dumps(customers[cid]), cid))  # fmt: skip
    renamed = cli("load", project, "--json")
    assert renamed.code == 0, renamed.stderr
    assert sum(o["updated"] for o in renamed.json["objects"]) >= 2
    with org(sandbox) as client:
        (contact,) = client.query(
            f"SELECT LastName FROM Contact WHERE Source_System_ID__c = 'DP-customer_contacts-{cid}-contact'"
        )
        street = " ".join(str(customers[cid]["address.street"] or "").split())
        assert contact["LastName"].startswith(street)

    undone = cli("rollback", project, "--all", "--json")
    assert undone.code == 0, undone.stderr
    runs = undone.json.get("runs", [undone.json])
    assert all(r["status"] == "rolled_back" for r in runs)
    with org(sandbox) as client:
        for sobject in SOBJECTS:
            left = list(client.query(f"SELECT Id FROM {sobject} WHERE Source_System_ID__c != null"))
            assert left == [], sobject
