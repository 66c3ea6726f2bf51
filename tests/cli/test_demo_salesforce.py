"""End to end: `crmmigrator demo --target salesforce` loads into the embedded Salesforce org over HTTP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

OBJECTS = {"services", "customers", "fieldworkers", "bookings", "invoices", "payments", "quotes", "form_responses"}


@pytest.mark.parametrize("source", ["octopuspro", "generic"])
def test_salesforce_demo_accounts_for_every_record_reloads_nothing_and_rolls_back(cli, source):
    ran = cli("demo", "--source", source, "--target", "salesforce", "--records", "2000", "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["kind"] == "load"
    assert data["status"] == "completed", data["failures"][:3]
    objects = {o["source_object"]: o for o in data["objects"]}
    assert set(objects) == OBJECTS
    assert 1800 <= sum(o["source_records"] for o in objects.values()) <= 2200
    for o in objects.values():
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
    assert data["requests"] > 0

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    assert sum(o["updated"] for o in again.json["objects"]) == 0

    undone = cli("rollback", data["project"], "--all", "--json")
    assert undone.code == 0, undone.stderr
    runs = undone.json.get("runs", [undone.json])
    assert all(r["status"] == "rolled_back" for r in runs)
    deleted = sum(o["deleted"] for r in runs for o in r["objects"])
    assert deleted >= sum(o["created"] for o in objects.values()) - objects["form_responses"]["created"]
