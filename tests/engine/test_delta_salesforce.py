"""Delta pickup on a Salesforce destination (embedded sandbox, everything read back over HTTP with SOQL).

Deletions applied: each record is snapshotted (createable fields, lookups as Ids) and deleted children first;
rolling the delta back re-creates them parents first under new Ids (Salesforce cannot restore an Id over the
API), with their external id, lookups re-pointed to re-created parents, and xref/crosswalk following the new Ids,
so a rollback of the full load afterwards still empties the org. New and changed records are created and
updated like any load."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.delta import delta
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target.connection import destination
from tests.engine.conftest import confirmed_project

# Stamped by the platform on every write (an update, a restore, a re-create): not data.
VOLATILE = {"Id", "LastModifiedDate", "SystemModstamp", "LastModifiedById", "LastViewedDate", "LastReferencedDate"}


@pytest.fixture
def loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path, "salesforce", records=150, seed=5)
    first = load(project)
    assert first.status == "completed", first.failures[:3]
    yield project, first, tmp_path / "export" / "octopuspro_export.xlsx"
    project.close()


def _entities(project: Project) -> list[str]:
    playbook = load_playbook(project.source, project.target, project.edition)
    return sorted({p.entity for p in load_order(playbook, project.source_object_names())})


def _by_key(project: Project) -> dict[str, dict[str, dict]]:
    """entity -> external id -> every field but the volatile ones, read with SOQL; a lookup is shown as the
    ``entity:external id`` of the record it points at (re-created records have new Ids)."""
    key_column = load_playbook(project.source, project.target, project.edition).key_column
    read: dict[str, tuple[object, list[dict]]] = {}
    names: dict[str, str] = {}
    with destination(project) as client:
        for entity in _entities(project):
            meta = client.describe(entity)
            fields = sorted({"Id", *(f.name for f in meta.fields.values() if f.type != "address")})
            rows = [r for r in client.query(f"SELECT {', '.join(fields)} FROM {entity}") if r.get(key_column)]
            read[entity] = (meta, rows)
            names.update({str(r["Id"])[:15]: f"{entity}:{r[key_column]}" for r in rows})
    out: dict[str, dict[str, dict]] = {}
    for entity, (meta, rows) in read.items():
        out[entity] = {}
        for row in rows:
            record = {}
            for name, value in row.items():
                if name == "attributes" or name in VOLATILE:
                    continue
                if meta.field(name).type == "reference" and isinstance(value, str):
                    value = names.get(value[:15], value)
                record[name] = value
            out[entity][row[key_column]] = record
    return out


def _ids(project: Project, entity: str, keys: list[str]) -> dict[str, str]:
    """external id -> Id of the live records carrying those keys (SOQL over HTTP)."""
    key_column = load_playbook(project.source, project.target, project.edition).key_column
    quoted = ", ".join("'" + k.replace("'", "\\'") + "'" for k in keys)
    with destination(project) as client:
        rows = client.query(f"SELECT Id, {key_column} FROM {entity} WHERE {key_column} IN ({quoted})")
        return {r[key_column]: r["Id"] for r in rows}


def test_deletions_apply_then_roll_back_to_the_same_records_with_new_ids(loaded, tmp_path):
    project, full, export = loaded
    playbook = load_playbook(project.source, project.target, project.edition)
    newer = make_newer_export(export, tmp_path / "newer", new=2, changed=2, removed=4, seed=5)
    assert sorted(newer.removed) == ["payments", "quotes"]
    gone: dict[str, list[str]] = {}  # entity -> keys the delta must delete
    for obj, sids in newer.removed.items():
        for part in (p for p in load_order(playbook, project.source_object_names()) if p.obj == obj):
            gone.setdefault(part.entity, []).extend(destination_key(playbook, obj, sid, part.name) for sid in sids)
    old_ids = {entity: _ids(project, entity, keys) for entity, keys in gone.items()}
    assert all(len(old_ids[e]) == len(keys) for e, keys in gone.items())  # all loaded before the delta
    before = _by_key(project)

    result = delta(project, newer.files, deletes="apply")
    assert result.status == "completed", result.failures[:3]
    listed = result.to_json()["delta"]["deleted"]
    assert sorted((d["target_entity"], d["applied"]) for d in listed) == sorted(
        (e, "deleted") for e, keys in gone.items() for _k in keys
    )
    for entity, keys in gone.items():
        assert _ids(project, entity, keys) == {}, entity  # gone from the org
        assert not project.query(f"SELECT 1 FROM xref WHERE target_entity = ? AND key IN ({','.join('?' * len(keys))})",
                                 (entity, *keys))  # fmt: skip
    rows = project.query("SELECT key, prior FROM crosswalk WHERE run_id = ? AND action = 'deleted'", (result.run_id,))
    assert len(rows) == sum(len(k) for k in gone.values())
    assert all(r["prior"] for r in rows)
    after_delta = _by_key(project)
    for entity, keys in gone.items():
        assert len(after_delta[entity]) == len(before[entity]) - len(keys) + sum(
            1 for k in after_delta[entity] if k not in before[entity]
        )

    undone = rollback(project, run_id=result.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    for entity, keys in sorted(gone.items()):
        assert f"{entity}: {len(keys)} record(s) re-created with new Salesforce Ids" in " ".join(undone[0].warnings)
        now = _ids(project, entity, keys)
        assert sorted(now) == sorted(keys)
        assert all(now[k][:15] != old_ids[entity][k][:15] for k in keys)  # new Ids …
        for key in keys:  # … that the xref and the full load's crosswalk rows follow
            assert (
                project.scalar("SELECT dest_id FROM xref WHERE target_entity = ? AND key = ?", (entity, key))
                == now[key]
            )
            assert (
                project.scalar(
                    "SELECT dest_id FROM crosswalk WHERE run_id = ? AND target_entity = ? AND key = ?",
                    (full.run_id, entity, key),
                )
                == now[key]
            )
    audited = project.query("SELECT detail FROM audit WHERE action LIKE 'rollback re-create%'")
    assert sum(len(json.loads(r["detail"])["recreated"]) for r in audited) == sum(len(k) for k in gone.values())
    restored = _by_key(project)
    assert {e: len(r) for e, r in restored.items()} == {e: len(r) for e, r in before.items()}  # counts exact
    recreated = {(e, k) for e, keys in gone.items() for k in keys}
    for entity in before:
        for key, record in before[entity].items():
            differs = {n for n, v in record.items() if restored[entity][key].get(n) != v}
            # Same values and lookups to the same records; only an auto-number (not createable) is assigned anew.
            assert differs == ({"QuoteNumber"} if (entity, key) in recreated and entity == "Quote" else set()), (
                entity, key, differs,
            )  # fmt: skip

    undone = rollback(project, run_id=full.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    assert all(not rows for rows in _by_key(project).values())  # the org holds nothing the migration wrote


def test_new_and_changed_records_are_created_and_updated(loaded, tmp_path):
    project, _full, export = loaded
    playbook = load_playbook(project.source, project.target, project.edition)
    newer = make_newer_export(export, tmp_path / "newer", new=2, changed=2, removed=0, seed=7)
    before = _by_key(project)
    result = delta(project, newer.files, deletes="apply")
    assert result.status == "completed", result.failures[:3]
    counts = {o["source_object"]: o for o in result.objects}
    assert counts["customers"]["created"] == len(newer.new["customers"])
    assert counts["customers"]["updated"] >= len(newer.changed["customers"])
    after = _by_key(project)
    for n, sid in enumerate(newer.new["customers"], start=1):
        key = destination_key(playbook, "customers", sid, "contact")
        assert key not in before["Contact"]
        assert (after["Contact"][key]["FirstName"], after["Contact"][key]["LastName"]) == (f"New{n}", f"Customer 7.{n}")
    for sid in newer.changed["customers"]:
        key = destination_key(playbook, "customers", sid, "contact")
        wanted = newer.values["customers"][sid]["Last name"]
        assert before["Contact"][key]["LastName"] != wanted
        assert after["Contact"][key]["LastName"] == wanted  # read back over HTTP
    for sid in newer.new["bookings"]:
        key = destination_key(playbook, "bookings", sid, "job")
        assert key in after["Job__c"]
        assert key not in before["Job__c"]
    undone = rollback(project, run_id=result.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    assert _by_key(project) == before


def test_a_deletion_that_would_cascade_to_records_that_stay_is_refused(loaded, tmp_path):
    """Deleting an Account in Salesforce deletes its Opportunities too; those of a removed customer's bookings
    stay in the source, so the Account is left in place (its Contact, which takes nothing along, goes)."""
    project, _full, export = loaded
    playbook = load_playbook(project.source, project.target, project.edition)
    newer = make_newer_export(export, tmp_path / "newer", new=0, changed=0, removed=4, seed=3,
                              removed_objects=["customers"])  # fmt: skip
    accounts = {sid: destination_key(playbook, "customers", sid, "account") for sid in newer.removed["customers"]}
    ids = _ids(project, "Account", list(accounts.values()))
    with destination(project) as client:
        quoted = ", ".join(f"'{i}'" for i in ids.values())
        opportunities = list(client.query(f"SELECT Id, AccountId FROM Opportunity WHERE AccountId IN ({quoted})"))
    with_children = {k for k, i in ids.items() if any(o["AccountId"][:15] == i[:15] for o in opportunities)}
    assert with_children, "the seed must remove at least one customer with bookings"
    result = delta(project, newer.files, deletes="apply")
    actions = {
        (r["target_entity"], r["key"]): (r["action"], r["error_message"])
        for r in project.query(
            "SELECT target_entity, key, action, error_message FROM crosswalk WHERE run_id = ?", (result.run_id,)
        )
    }
    for sid, key in accounts.items():
        assert actions[("Contact", destination_key(playbook, "customers", sid, "contact"))][0] == "deleted"
        action, message = actions[("Account", key)]
        if key in with_children:
            assert action == "delete_failed"
            assert "cascade" in message
        else:
            assert action == "deleted"
    assert sorted(_ids(project, "Account", list(accounts.values()))) == sorted(with_children)  # refused ones stay
    with destination(project) as client:
        left = list(
            client.query(f"SELECT Id FROM Opportunity WHERE Id IN ({', '.join(repr(o['Id']) for o in opportunities)})")
        )
    assert len(left) == len(opportunities)  # nothing was taken along
