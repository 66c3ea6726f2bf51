"""End to end: `crmmigrator demo --source servicetracker` extracts from the embedded Salesforce org and loads."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

OBJECTS = {
    "User", "Account", "Contact", "Site__c", "Part__c", "Asset__c", "Contract__c", "Work_Order__c",
    "Work_Order_Line__c", "Inspection__c", "ContentVersion",
}  # fmt: skip


def test_servicetracker_demo_accounts_for_every_record_and_reloads_nothing(cli):
    ran = cli("demo", "--source", "servicetracker", "--target", "dynamics365", "--records", "2000", "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["kind"] == "load"
    assert data["status"] == "completed"
    objects = {o["source_object"]: o for o in data["objects"]}
    assert set(objects) == OBJECTS
    assert 1800 <= sum(o["source_records"] for o in objects.values()) <= 2200
    for o in objects.values():
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
    for failure in data["failures"]:  # only orphans of work orders that sit in the source recycle bin
        assert failure["action"] == "skipped", failure
        assert failure["code"] == "MISSING_PARENT", failure
        assert failure["source_object"] in ("Inspection__c", "ContentVersion")
        assert "Work_Order__c" in failure["message"]
    assert any("no active user" in w for w in data["warnings"])  # ~20 % of technicians are not users

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    assert sum(o["updated"] for o in again.json["objects"]) == 0
