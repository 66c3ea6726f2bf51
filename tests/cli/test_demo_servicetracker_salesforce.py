"""End to end: `crmmigrator demo --source servicetracker --target salesforce` (org to org).

The demo seeds the project's embedded *source* org (``<project>.source.sqlite``, ServiceTracker package),
extracts it and loads into a separate embedded *destination* org (``<project>.sandbox.sqlite``, plain
Sales Cloud). Every source record is accounted for, the only skips are children of work orders that sit
in the source recycle bin, a second load changes nothing and ``rollback --all`` leaves no migrated record.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmmigrator_gui.engine.mapping.playbook import load_playbook

pytestmark = pytest.mark.slow

SEED_003 = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "003_9576e09d65c44206.txt"
OBJECTS = {
    "User", "Account", "Contact", "Site__c", "Part__c", "Asset__c", "Contract__c", "Work_Order__c",
    "Work_Order_Line__c", "Inspection__c", "ContentVersion",
}  # fmt: skip


def _query(path: str, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
    """Read an embedded org file directly (admin side), following ``nextRecordsUrl``."""
    from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

    org = SalesforceSandbox(path)
    try:
        headers = {"Authorization": f"Bearer {org.issue_token()}"}
        with httpx.Client(transport=httpx.WSGITransport(app=org), base_url="http://org.localhost") as http:
            body = http.get(
                f"/services/data/v62.0/{'queryAll' if all_rows else 'query'}", params={"q": soql}, headers=headers
            ).json()
            records = list(body["records"])
            while body.get("nextRecordsUrl"):
                body = http.get(body["nextRecordsUrl"], headers=headers).json()
                records += body["records"]
            return records
    finally:
        org.close()


def _target_entities() -> set[str]:
    playbook = load_playbook("servicetracker", "salesforce", "enterprise")
    return {part.entity for obj in playbook.objects for part in obj.parts}


def test_servicetracker_to_salesforce_demo_accounts_for_everything_reloads_nothing_and_rolls_back(cli):
    ran = cli("demo", "--source", "servicetracker", "--target", "salesforce", "--records", "2000", "--json")
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
    assert objects["Work_Order__c"]["target_entity"] == "Case"
    assert objects["ContentVersion"]["target_entity"] == "Task"

    # two emulator instances: the source org holds the ServiceTracker package, the destination does not
    source = data["project"] + ".source.sqlite"
    destination = data["sandbox"]
    assert Path(source).exists()
    assert Path(destination).exists()
    assert source != destination
    deleted_orders = {
        r["Id"] for r in _query(source, "SELECT Id FROM Work_Order__c WHERE IsDeleted = true", all_rows=True)
    }
    assert deleted_orders
    for failure in data["failures"]:  # only children of work orders in the source recycle bin
        assert failure["action"] == "skipped", failure
        assert failure["code"] == "MISSING_PARENT", failure
        match = re.search(r"parent Work_Order__c '(\w+)'", failure["message"])
        assert match, failure
        assert match.group(1) in deleted_orders, failure
    cases = _query(
        destination, "SELECT Status, Priority, Source_Status__c, Legacy_Id__c, Source_System_ID__c FROM Case"
    )
    assert len(cases) == objects["Work_Order__c"]["created"]
    assert {c["Status"] for c in cases} <= {"New", "Working", "Closed"}
    assert {c["Priority"] for c in cases} <= {"Low", "Medium", "High"}
    assert all(c["Source_System_ID__c"] == f"ST-Work_Order__c-{c['Legacy_Id__c']}-case" for c in cases)
    assert any("no active user" in w for w in data["warnings"])

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    assert sum(o["updated"] for o in again.json["objects"]) == 0

    undone = cli("rollback", data["project"], "--all", "--json")
    assert undone.code == 0, undone.stderr
    runs = undone.json.get("runs", [undone.json])
    assert all(r["status"] == "rolled_back" for r in runs)
    assert sum(o["deleted"] for r in runs for o in r["objects"]) >= sum(o["created"] for o in objects.values())
    for entity in sorted(_target_entities()):
        left = _query(destination, f"SELECT Id FROM {entity} WHERE Source_System_ID__c != null")
        assert left == [], entity


def _seed_003_rows() -> list[str]:
    lines = SEED_003.read_text(encoding="utf-8").splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(r"^\| ServiceTracker \| .+ \| Compatibility \| \|$", line)
    )
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(line.split(" | ")[0].lstrip("| ").strip())
    return rows


@pytest.mark.parametrize("edition", ["enterprise", "professional"])
def test_every_row_of_seed_003_is_in_the_salesforce_playbook(edition):
    """No ServiceTracker → Salesforce seed exists: the playbook mirrors seed 003's rows (→ Dynamics 365)."""
    if not SEED_003.exists():
        pytest.skip("shared/seeds is not beside this checkout")
    rows = _seed_003_rows()
    assert len(rows) == 15
    playbook = load_playbook("servicetracker", "salesforce", edition)
    assert sorted(r["row"] for r in playbook.seed_rows) == sorted(rows)
    names = {o.name for o in playbook.objects}
    assert names == OBJECTS
    for row in playbook.seed_rows:
        assert row.get("objects"), row
        assert set(row["objects"]) <= names, row
        assert row.get("destination"), row
        assert row.get("handling"), row
    assert any("no seed" in note and "seed 003" in note for note in playbook.raw["notes"])
