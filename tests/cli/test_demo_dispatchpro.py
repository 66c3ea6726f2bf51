"""The Dispatch Pro (ServiceTitan) demo end to end: the real CLI extracts the embedded ServiceTitan emulator
over HTTP, maps with the dispatchpro-dynamics365 playbook and loads into the embedded Dataverse sandbox: invoices land
on invoice (status reason read from metadata, closed states set after create), their lines on new_invoiceline,
payments on new_payment, and each job's opportunity carries its invoices' total as estimatedvalue."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest

pytestmark = pytest.mark.slow

OBJECTS = {"business_units", "technicians", "job_types", "customers", "locations", "customer_contacts", "jobs",
           "appointments", "job_history", "job_attachments", "estimates", "estimate_items", "invoices", "invoice_items",
           "payments"}
MIGRATED = ("e_invoice", "e_new_invoiceline", "e_new_payment", "e_opportunity", "e_account")


def _rows(sandbox: str, table: str) -> list[dict]:
    with sqlite3.connect(sandbox) as db:
        return [json.loads(r[0]) for r in db.execute(f"SELECT data FROM {table}")]


def test_demo_accounts_for_every_record_and_reloads_nothing(cli, tmp_path):
    ran = cli("demo", "--source", "dispatchpro", "--target", "dynamics365", "--records", "300", "--dir", "d",
              "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["status"] == "completed"
    assert {o["source_object"] for o in data["objects"]} == OBJECTS
    for o in data["objects"]:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
        assert o["skipped"] == 0, (o, data["failures"][:3])
        assert o["source_records"] > 0, o
    assert data["requests"] > 0

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    for o in again.json["objects"]:
        assert o["created"] == 0, o
        assert o["failed"] == 0, o
        assert o["unchanged"] == o["source_records"], o

    project, sandbox = (str(tmp_path / data[k]) for k in ("project", "sandbox"))  # cli runs in tmp_path
    with sqlite3.connect(project) as db:
        staged = {sid: json.loads(raw) for sid, raw in db.execute(
            "SELECT source_id, raw FROM staging WHERE object = 'invoices'")}  # fmt: skip
    invoices = _rows(sandbox, "e_invoice")
    assert len(invoices) == len(staged)
    assert all(i["customerid"] and i["opportunityid"] for i in invoices)
    status = {sid: s["derived.paymentStatus"] for sid, s in staged.items()}
    wanted = {"Unpaid": (0, 4), "PartiallyPaid": (2, 100002), "Paid": (2, 100001)}  # Billed / Partial / Complete
    for inv in invoices:
        sid = inv["new_sourcesystemid"].split("-")[2]
        assert (inv["statecode"], inv["statuscode"]) == wanted[status[sid]], inv  # closed states set after create
    lines = _rows(sandbox, "e_new_invoiceline")
    assert len(lines) == {o["source_object"]: o for o in data["objects"]}["invoice_items"]["created"]
    assert all(line["new_invoiceid"] for line in lines)
    assert all(p["new_invoiceid"] and p["new_accountid"] for p in _rows(sandbox, "e_new_payment"))
    opportunities = {o["new_sourcesystemid"]: o for o in _rows(sandbox, "e_opportunity")}
    for inv in staged.values():
        opp = opportunities[f"DP-jobs-{inv['job.id']}-opportunity"]
        assert Decimal(str(opp["estimatedvalue"])) >= Decimal(inv["total"]) or Decimal(inv["total"]) < 0

    delta = cli("extract", data["project"], "--json")  # nothing changed at the source since the demo
    assert delta.code == 0, delta.stderr
    assert all(o["new"] == o["changed"] == o["deleted"] == 0 for o in delta.json["objects"]), delta.json

    undone = cli("rollback", data["project"], "--all", "--json")
    assert undone.code == 0, undone.stderr
    for table in MIGRATED:
        assert [r for r in _rows(sandbox, table) if r.get("new_sourcesystemid")] == [], table
