"""Exact rollback on Salesforce: full load over pre-existing Accounts + a delta, rolled back to a snapshot
taken before the first run (read over HTTP with the client); a record changed in the org after the run is
refused with what differs and who changed it, then rolled back with ``force``."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.load_salesforce import ensure_schema
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target.connection import destination
from tests.engine.conftest import confirmed_project

VOLATILE = {"LastModifiedDate", "SystemModstamp", "LastModifiedById", "LastViewedDate", "LastReferencedDate"}
SEEDED = 3


@pytest.fixture
def sf_project(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path, "salesforce", records=150, seed=5)
    yield project
    project.close()


def snapshot(project: Project) -> dict[str, dict[str, dict]]:
    """Every record of every object the load writes, all fields but the volatile audit ones, by Id."""
    playbook = load_playbook(project.source, project.target, project.edition)
    objects = sorted({p.entity for p in load_order(playbook, project.source_object_names())})
    with destination(project) as client:
        out = {}
        for name in objects:
            meta = client.describe(name)
            fields = sorted(f for f in meta.fields if f not in VOLATILE and meta.fields[f].type != "address")
            rows = client.query(f"SELECT {', '.join(fields)} FROM {name}")
            out[name] = {r["Id"]: {k: v for k, v in r.items() if k != "attributes"} for r in rows}
        return out


def _seed(project: Project) -> dict[str, str]:
    """The schema as the load provisions it, then SEEDED Accounts carrying the load's keys: key -> Id."""
    playbook = load_playbook(project.source, project.target, project.edition)
    part = next(p for p in load_order(playbook, project.source_object_names()) if p.entity == "Account")
    sids = [sid for sid, _raw in list(project.iter_staged(part.obj))[:SEEDED]]
    with destination(project) as client:
        ensure_schema(project, playbook, client)
        client.invalidate()
        keys = [destination_key(playbook, part.obj, sid, part.name) for sid in sids]
        records = [
            {"Name": f"Pre-existing {n}", "Description": "kept", playbook.key_column: k} for n, k in enumerate(keys)
        ]
        results = client.create_collection(records, sobject="Account")
        assert all(r.ok for r in results), [r.message for r in results]
        return {k: str(r.id) for k, r in zip(keys, results, strict=True)}


def _restage(project: Project, obj: str, index: int, change) -> None:
    sid, raw = list(project.iter_staged(obj))[index]
    change(raw)
    with project.transaction():
        project.db.conn.execute(
            "UPDATE staging SET raw = ? WHERE object = ? AND source_id = ?", (json.dumps(raw), obj, sid)
        )


def _email(project: Project) -> str:
    _sid, raw = next(project.iter_staged("customers"))
    return next(c for c in raw if "mail" in c.lower())


@pytest.fixture
def seeded(sf_project):
    keys = _seed(sf_project)
    return sf_project, keys, snapshot(sf_project)


def test_full_load_plus_delta_rolls_back_to_the_snapshot_after_reopening(seeded):
    project, keys, before = seeded
    first = load(project)
    assert first.status == "completed", first.failures[:3]
    updated = project.query("SELECT key FROM crosswalk WHERE target_entity = 'Account' AND action = 'updated'")
    assert {r["key"] for r in updated} == set(keys)  # the pre-existing Accounts were updated, not created
    email = _email(project)
    _restage(project, "customers", 0, lambda raw: raw.update({email: "delta-seeded@example.org"}))
    _restage(project, "customers", SEEDED + 2, lambda raw: raw.update({email: "delta-new@example.org"}))
    second = load(project)
    assert sum(o["updated"] for o in second.objects) >= 2
    loaded = snapshot(project)
    assert len(loaded["Contact"]) > len(before["Contact"])
    assert {loaded["Account"][i]["Name"] for i in keys.values()} != {
        before["Account"][i]["Name"] for i in keys.values()
    }
    path = project.path
    project.close()

    reopened = Project.open(path)
    try:
        results = rollback(reopened, all_runs=True)
        assert [r.status for r in results] == ["rolled_back", "rolled_back"], [r.failures[:2] for r in results]
        assert all(not r.failures for r in results)
        after = snapshot(reopened)
        for name, rows in before.items():
            assert after[name] == rows, name
    finally:
        reopened.close()


def test_a_record_changed_in_the_org_is_refused_then_forced(seeded):
    project, keys, before = seeded
    load(project)
    key, account_id = next(iter(keys.items()))
    created = project.query(
        "SELECT key, dest_id, source_id FROM crosswalk WHERE target_entity = 'Contact' AND action = 'created'"
    )[0]
    with destination(project) as client:
        results = client.update_collection(
            [{"Id": account_id, "Name": "Renamed in the org"}, {"Id": created["dest_id"], "LastName": "Edited"}]
        )
        assert all(r.ok for r in results), [r.message for r in results]

    partial = rollback(project)[0]
    assert partial.status == "rollback_incomplete"
    refused = {f["key"]: f for f in partial.failures if f["action"] == "refused"}
    assert set(refused) == {key, created["key"]}
    assert refused[key]["fields"]["Name"]["theirs"] == "Renamed in the org"
    assert refused[created["key"]]["fields"]["LastName"]["theirs"] == "Edited"
    assert refused[created["key"]]["modified_by"]  # LastModifiedBy.Name
    assert created["source_id"] in refused[created["key"]]["message"]
    after = snapshot(project)
    assert after["Contact"] == {created["dest_id"]: after["Contact"][created["dest_id"]]}  # only the edited one
    assert after["Account"][account_id]["Name"] == "Renamed in the org"

    forced = rollback(project, force=True)[0]
    assert forced.status == "rolled_back"
    assert {f["key"] for f in forced.failures if f["action"] == "forced"} == set(refused)
    assert snapshot(project) == before
