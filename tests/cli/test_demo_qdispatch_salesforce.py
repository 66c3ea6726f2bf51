"""Q Dispatch → Salesforce Sales Cloud end to end: the real CLI as a subprocess against the embedded org.

The demo (clean export) loads every record, a second load creates nothing and ``rollback --all`` leaves
no migrated record; the checked-in "unseen" sample folder imports, maps and loads with no code changes;
the playbook covers every object row of seed 001 (this pair has no seed of its own and mirrors it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmmigrator_gui.engine.demo.qdispatch import OBJECTS
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.target.connection import SandboxTransport
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seeds" / "001_79aba3686f6d3a21.txt"
SEED_ROWS = (
    "Customer (Company)",
    "Service Contact",
    "Work Order / Job",
    "Work Order Line Item / Service Line",
    "Technician / Dispatch Resource",
    "Schedule / Dispatch Assignment",
    "Job Status / Dispatch Status",
    "Service Notes / Job Comments",
    "Invoice / Billing Record",
    "Route / Geographic Zone",
    "Q Dispatch Source System ID",
)
UNSEEN = REPO / "resources" / "samples" / "qdispatch" / "unseen"


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


def _seed_row_names() -> list[str]:
    """The object column of seed 001's mapping table (the file lives outside the repo; fall back to the list)."""
    if not SEED.exists():
        return list(SEED_ROWS)
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Q Dispatch | Microsoft Dynamics 365 Sales |"))
    names = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        names.append(line.strip("|").split(" | ")[0].strip())
    return names


def test_playbook_covers_every_row_of_seed_001():
    playbook = load_playbook("qdispatch", "salesforce")
    names = [row["row"] for row in playbook.seed_rows]
    assert sorted(_seed_row_names()) == sorted(SEED_ROWS)
    for name in SEED_ROWS:
        assert name in names, name
    assert len(names) == len(SEED_ROWS)
    objects = {o.name for o in playbook.objects}
    assert objects == set(OBJECTS)
    for row in playbook.seed_rows:
        assert row["destination"], row["row"]
        assert row["handling"], row["row"]
        assert row["cardinality"], row["row"]
        assert row["objects"], row["row"]
        assert set(row["objects"]) <= objects, row["row"]
    assert playbook.key_column == "Source_System_ID__c"
    assert any("no seed" in note and "001" in note for note in playbook.raw["notes"])
    # the same export folders load into either pair: source objects and their roles are the D365 pair's
    d365 = load_playbook("qdispatch", "dynamics365")
    for obj in d365.objects:
        mine = playbook.obj(obj.name)
        assert mine.sheet_aliases == obj.sheet_aliases, obj.name
        assert mine.id_roles == obj.id_roles, obj.name
        assert {n: (r.synonyms, r.kind) for n, r in mine.roles.items()} == {
            n: (r.synonyms, r.kind) for n, r in obj.roles.items()
        }, obj.name


def test_demo_loads_every_record_reloads_nothing_and_rolls_back(cli, tmp_path):
    ran = cli("demo", "--source", "qdispatch", "--target", "salesforce", "--records", "2000",
              "--dir", str(tmp_path / "d"), "--json")  # fmt: skip
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["status"] == "completed", data["failures"][:3]
    objects = {o["source_object"]: o for o in data["objects"]}
    assert set(objects) == set(OBJECTS)
    for o in objects.values():
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
        assert o["skipped"] == 0, (o, data["failures"][:3])
    assert 1800 <= sum(o["source_records"] for o in objects.values()) <= 2200
    assert any("have no active user" in w for w in data["warnings"])

    conn = sqlite3.connect(data["project"])
    try:
        written = {
            (part, sid): json.loads(w)
            for part, sid, w in conn.execute("SELECT part, source_id, written FROM crosswalk WHERE written IS NOT NULL")
        }
        links = conn.execute("SELECT COUNT(*) FROM crosswalk WHERE part = 'account:link' AND action = 'linked'")
        linked = links.fetchone()[0]
        notes = dict(conn.execute("SELECT source_id, raw FROM staging WHERE object = 'service_notes'").fetchall())
    finally:
        conn.close()
    orders = [w for (part, _sid), w in written.items() if part == "serviceorder"]
    assert len({w["OwnerId"] for w in orders}) > 3  # technicians with a user own their work orders
    assert {w["Work_Order_Status__c"] for w in orders} <= {
        "Unassigned", "Scheduled", "En Route", "In Progress", "Completed", "Cancelled"}  # fmt: skip
    assert all(w["Account__r"]["Source_System_ID__c"].startswith("QDSP-customers-") for w in orders)
    task = written[("note", next(iter(notes)))]
    assert task["What"]["attributes"]["type"] == "Service_Order__c"
    assert task["Status"] == "Completed"
    assert "CreatedDate" in task
    raw_note = json.loads(notes[next(iter(notes))])
    assert "<" in task["Description"]
    assert task["Description"] == raw_note["body_html"]
    created = datetime.fromisoformat(task["CreatedDate"].replace("Z", "+00:00"))
    assert task["ActivityDate"] == created.astimezone(ZoneInfo("Australia/Brisbane")).date().isoformat()
    assert linked > 0  # branch offices point at their head office

    with org(data["sandbox"]) as client:
        branches = list(client.query("SELECT Id, ParentId FROM Account WHERE ParentId != null"))
        assert len(branches) == linked

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    assert all(o["unchanged"] == o["source_records"] for o in again.json["objects"])

    undone = cli("rollback", data["project"], "--all", "--json")
    assert undone.code == 0, undone.stderr
    runs = undone.json.get("runs", [undone.json])
    assert all(r["status"] == "rolled_back" for r in runs)
    assert sum(o["deleted"] for r in runs for o in r["objects"]) == sum(o["created"] for o in objects.values())
    entities = load_playbook("qdispatch", "salesforce").target_entities()
    with org(data["sandbox"]) as client:
        for entity in entities:
            left = list(client.query(f"SELECT Id FROM {entity} WHERE Source_System_ID__c != null"))
            assert left == [], entity


def test_unseen_sample_folder_imports_maps_and_loads_into_salesforce(cli, signed_off, tmp_path):
    project = tmp_path / "u.cmproj"
    assert cli("new", str(project), "--source", "qdispatch", "--target", "salesforce").code == 0
    imported = cli("import", str(project), str(UNSEEN), "--json")
    assert imported.code == 0, imported.stderr
    counts = {o["source_object"]: o["records"] for o in imported.json["objects"]}
    assert set(counts) == set(OBJECTS)
    assert all(counts.values())
    assert cli("automap", str(project)).code == 0
    assert cli("map", str(project), "accept", "--all").code == 0
    signed_off(str(project))  # rolled back: every record below is created by the full load
    loaded = cli("load", str(project), "--json")
    assert loaded.code == 0, loaded.stderr + json.dumps(loaded.json.get("failures", [])[:3])
    for o in loaded.json["objects"]:
        assert o["source_records"] == counts[o["source_object"]], o
        assert o["created"] == o["source_records"], o
        assert o["failed"] == 0, o
        assert o["skipped"] == 0, o
