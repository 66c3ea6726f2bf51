"""Exact rollback on Dataverse: full load over pre-existing records + a delta, rolled back to a snapshot
taken before the first run; records changed after the run are refused unless forced; resumable."""

from __future__ import annotations

import json
import re
import time

import pytest

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import ensure_schema, load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target.connection import destination
from crmmigrator_gui.engine.target.dataverse import DataverseClient

VOLATILE = {"modifiedon", "versionnumber", "@odata.etag", "_modifiedby_value", "_modifiedonbehalfby_value"}
SEEDED = 3  # customers whose account already exists at the destination: the load UPDATES them


def snapshot(project: Project) -> dict[str, dict[str, dict]]:
    """Every row of every table the load writes, read over HTTP, by id (volatile system columns left out)."""
    playbook = load_playbook(project.source, project.target, project.edition)
    entities = sorted({p.entity for p in load_order(playbook, project.source_object_names())})
    with destination(project) as client:
        out = {}
        for entity in entities:
            meta = client.entity(entity)
            out[meta.entity_set] = {
                row[meta.primary_id]: {k: v for k, v in row.items() if k not in VOLATILE and "@" not in k}
                for row in client.query(meta.entity_set)
            }
        return out


def _seed(project: Project) -> list[str]:
    """Provision the schema as the load would, then create SEEDED accounts carrying the load's keys."""
    playbook = load_playbook(project.source, project.target, project.edition)
    part = next(p for p in load_order(playbook, project.source_object_names()) if p.entity == "account")
    sids = [sid for sid, _raw in list(project.iter_staged(part.obj))[:SEEDED]]
    with destination(project) as client:
        ensure_schema(project, playbook, client)
        client.invalidate()
        for n, sid in enumerate(sids):
            body = {
                "name": f"Pre-existing {n}",
                "emailaddress1": None,
                "telephone1": "+61 2 0000 000{n}",
                "description": "kept by the customer",
                playbook.key_column: destination_key(playbook, part.obj, sid, part.name),
            }
            response = client.send("POST", "accounts", body)
            assert response.status_code == 204, response.text
    return sids


def _seeded_ids(before: dict[str, dict[str, dict]]) -> set[str]:
    return {i for i, row in before["accounts"].items() if str(row.get("name", "")).startswith("Pre-existing")}


def _restage(project: Project, obj: str, index: int, change) -> str:
    sid, raw = list(project.iter_staged(obj))[index]
    change(raw)
    with project.transaction():
        project.db.conn.execute(
            "UPDATE staging SET raw = ? WHERE object = ? AND source_id = ?", (json.dumps(raw), obj, sid)
        )
    return sid


def _email_column(project: Project) -> str:
    _sid, raw = next(project.iter_staged("customers"))
    return next(c for c in raw if "mail" in c.lower())


def _account(project: Project, key_filter: str) -> dict:
    with destination(project) as client:
        rows = list(client.query("accounts", filter=key_filter))
    assert len(rows) == 1, rows
    return rows[0]


def _patch(project: Project, account_id: str, body: dict) -> None:
    """Somebody edits the record in the destination after the run (through the API, like any user)."""
    with destination(project) as client:
        response = client.send("PATCH", f"accounts({account_id})", body, {"If-Match": "*"})
        assert response.status_code == 204, response.text


@pytest.fixture
def seeded(mapped_project):
    sids = _seed(mapped_project)
    return mapped_project, sids, snapshot(mapped_project)


def test_full_load_plus_delta_rolls_back_to_the_snapshot_after_reopening(seeded):
    project, _sids, before = seeded
    first = load(project)
    customers = next(o for o in first.objects if o["source_object"] == "customers")
    assert customers["parts"][0]["updated"] >= SEEDED, customers  # pre-existing accounts were updated
    email = _email_column(project)
    _restage(project, "customers", 0, lambda raw: raw.update({email: "delta-seeded@example.org"}))  # seeded again
    _restage(project, "customers", SEEDED + 1, lambda raw: raw.update({email: "delta-new@example.org"}))
    second = load(project)
    assert sum(o["updated"] for o in second.objects) >= 2
    assert snapshot(project) != before
    path = project.path
    project.close()  # the app is closed and reopened between the load and the rollback

    reopened = Project.open(path)
    try:
        results = rollback(reopened, all_runs=True)
        assert [r.status for r in results] == ["rolled_back", "rolled_back"], [r.failures[:2] for r in results]
        assert [r.run_id for r in results] == [second.run_id, first.run_id]  # newest first
        assert all(not r.failures for r in results)
        after = snapshot(reopened)
        for entity_set, rows in before.items():
            assert after[entity_set] == rows, entity_set  # every table, every column, by id
        kept = reopened.query("SELECT target_entity, dest_id FROM xref")  # only records that existed before
        assert {(r["target_entity"], r["dest_id"]) for r in kept} == {("account", i) for i in _seeded_ids(before)}
    finally:
        reopened.close()


def test_a_record_changed_after_the_run_is_refused_then_forced(seeded):
    project, _sids, before = seeded
    load(project)
    playbook = load_playbook(project.source, project.target, project.edition)
    key = playbook.key_column
    rows = project.query(
        "SELECT source_id, key, dest_id, action FROM crosswalk WHERE target_entity = 'account' AND action IN "
        "('created', 'updated') ORDER BY seq"
    )
    updated = next(r for r in rows if r["action"] == "updated")
    created = next(r for r in rows if r["action"] == "created")
    _patch(project, updated["dest_id"], {"name": "Renamed by the office"})
    _patch(project, created["dest_id"], {"name": "Typo fixed by the office"})
    current = _account(project, f"{key} eq '{created['key']}'")

    partial = rollback(project)[0]
    assert partial.status == "rollback_incomplete"
    refused = {f["key"]: f for f in partial.failures if f["action"] == "refused"}
    assert set(refused) == {updated["key"], created["key"]}
    assert refused[updated["key"]]["fields"]["name"]["theirs"] == "Renamed by the office"
    assert refused[created["key"]]["fields"]["name"]["theirs"] == "Typo fixed by the office"
    message = refused[created["key"]]["message"]
    assert created["source_id"] in message
    assert "changed in the destination after the run" in message
    assert "--force" in message
    assert "name" in message
    assert any("left as they are" in w for w in partial.warnings)
    # the rest was rolled back; the changed records are untouched
    after = snapshot(project)["accounts"]
    assert set(after) == set(before["accounts"]) | {created["dest_id"]}
    assert after[created["dest_id"]] == {k: v for k, v in current.items() if k not in VOLATILE and "@" not in k}
    assert after[updated["dest_id"]]["name"] == "Renamed by the office"
    assert project.scalar("SELECT status FROM runs WHERE id = ?", (partial.run_id,)) == "rollback_incomplete"
    # The report counts what is still loaded: only source records with a part the rollback left behind.
    from crmmigrator_gui.engine.report.report import build_report

    still = {
        r["source_object"]: r["n"]
        for r in project.query(
            "SELECT source_object, COUNT(DISTINCT source_id) AS n FROM crosswalk WHERE run_id = ? AND action IN "
            "('created', 'updated', 'unchanged') AND (rolled_back_at IS NULL OR action = 'unchanged') "
            "GROUP BY source_object",
            (partial.run_id,),
        )
    }
    report = build_report(project, read_back=False)
    customers = next(o for o in report["objects"] if o["source_object"] == "customers")
    assert customers["loaded"] == still["customers"] >= 2  # the two refused accounts' customers
    assert customers["rolled_back"] == customers["source_records"] - customers["loaded"] - customers["failed"] - (
        customers["skipped"]
    )

    again = rollback(project)[0]  # resumable: still refused, nothing else to do
    assert again.status == "rollback_incomplete"
    assert {f["key"] for f in again.failures} == set(refused)

    forced = rollback(project, force=True)[0]
    assert forced.status == "rolled_back"
    assert {f["key"] for f in forced.failures if f["action"] == "forced"} == set(refused)
    assert snapshot(project) == before
    audit = project.query("SELECT detail FROM audit WHERE action = 'rollback rolled_back' ORDER BY id DESC LIMIT 1")
    assert f"account {created['key']}" in json.loads(audit[0]["detail"])["forced"]  # audited as forced


def test_a_change_to_a_column_we_did_not_write_is_caught_by_its_modified_time(seeded):
    project, _sids, _before = seeded
    load(project)
    row = project.query("SELECT key, dest_id FROM crosswalk WHERE target_entity = 'account' AND action = 'created'")[0]
    time.sleep(3.1)  # past our last touch + the 2 s tolerance of whole-second clocks
    _patch(project, row["dest_id"], {"fax": "+61 2 5555 0000"})  # not a column the load writes
    time.sleep(1.02 - time.time() % 1)  # the rollback starts in a later second than the edit
    result = rollback(project)[0]
    assert result.status == "rollback_incomplete"
    (refused,) = [f for f in result.failures if f["action"] == "refused"]
    assert refused["key"] == row["key"]
    assert refused["fields"] == {}
    assert "modified after our last write" in refused["message"]
    assert refused["modified_on"]
    assert refused["modified_by"]  # who, as the destination tells it: the user's name, not a GUID
    assert not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f-]{27}", refused["modified_by"].lower()), refused["modified_by"]
    assert refused["modified_by"] in refused["message"]


def test_a_rollback_interrupted_mid_batch_resumes_without_errors(seeded, monkeypatch):
    project, _sids, before = seeded
    load(project)
    email = _email_column(project)
    _restage(project, "customers", 1, lambda raw: raw.update({email: "second@example.org"}))
    load(project)
    real_batch = DataverseClient.batch
    calls = {"n": 0}

    def crashing(self, ops, **kwargs):
        results = real_batch(self, ops, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the destination did it, but we lose the connection before recording it
            raise DestinationError("connection lost")
        return results

    monkeypatch.setattr(DataverseClient, "batch", crashing)
    with pytest.raises(DestinationError):
        rollback(project, all_runs=True)
    monkeypatch.setattr(DataverseClient, "batch", real_batch)
    assert project.scalar("SELECT COUNT(*) FROM runs WHERE status = 'rolling_back'") == 1
    results = rollback(project, all_runs=True)
    assert all(r.status == "rolled_back" for r in results), [r.failures[:2] for r in results]
    assert all(not r.failures and not r.warnings for r in results)
    assert snapshot(project) == before
