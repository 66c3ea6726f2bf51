"""Acceptance (issue 6): rollback after a full load plus a delta, with some records updated rather than created
and deletions applied, leaves the destination identical to a snapshot taken before the first run."""

from __future__ import annotations

import json
import sqlite3

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.mapping.signoff import record_signoff, signoff_status
from crmmigrator_gui.engine.run.delta import delta
from crmmigrator_gui.engine.run.load import ensure_schema, load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target.connection import destination, embedded_sandbox_path
from tests.engine.conftest import confirmed_project

# Bookkeeping the platform stamps on every write (or on a re-create: overriddencreatedon carries the original
# createdon back, so createdon itself must match).
BOOKKEEPING = {"modifiedon", "modifiedby", "modifiedby@t", "versionnumber", "overriddencreatedon"}


def _snapshot(project) -> dict[str, dict[str, dict]]:
    """Every row of every table of the sandbox, all columns but the bookkeeping ones (a null column and an
    absent one are the same record: Dataverse returns both as null)."""
    conn = sqlite3.connect(embedded_sandbox_path(project))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'e_%'")]
        out = {}
        for table in tables:
            rows = {
                rid: {k: v for k, v in json.loads(data).items() if k not in BOOKKEEPING and v is not None}
                for rid, data in conn.execute(f'SELECT id, data FROM "{table}"')
            }
            if rows:
                out[table] = rows
        return out
    finally:
        conn.close()


def test_rollback_of_delta_then_full_load_restores_the_destination_exactly(tmp_path):
    project = confirmed_project(tmp_path, records=300, seed=3)
    if not signoff_status(project)["valid"]:
        record_signoff(project, "test")
    newer = make_newer_export(
        tmp_path / "export" / "octopuspro_export.xlsx", tmp_path / "newer", new=4, changed=4, removed=4, seed=5,
        changed_objects=["customers", "bookings", "quotes"], removed_objects=["quotes", "payments"],
    )  # fmt: skip
    playbook = load_playbook(project.source, project.target, project.edition)
    changed_customer = newer.changed["customers"][0]
    removed_quote = newer.removed["quotes"][0]
    # Records that already exist at the destination, carrying source ids: the full load UPDATES them. One
    # of them (a quote) is then deleted by the delta; another (a customer's contact) is changed by it.
    with destination(project) as client:
        ensure_schema(project, playbook, client)  # the custom source-id column (schema, not rows)
        account = client.send(
            "POST", "accounts", {"name": "Pre-existing account", "telephone1": "+61 2 5550 0000",
                                 "new_sourcesystemid": destination_key(playbook, "customers", changed_customer,
                                                                       "account")},
        )  # fmt: skip
        assert account.status_code == 204, account.text
        account_id = account.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
        for body in (
            {"lastname": "Before", "firstname": "Pre", "jobtitle": "kept by rollback",
             "new_sourcesystemid": destination_key(playbook, "customers", changed_customer, "contact")},
            {"name": "Pre-existing quote", "description": "made by hand",
             "customerid_account@odata.bind": f"/accounts({account_id})",
             "new_sourcesystemid": destination_key(playbook, "quotes", removed_quote, "quote")},
        ):  # fmt: skip
            entity_set = "contacts" if "lastname" in body else "quotes"
            response = client.send("POST", entity_set, body)
            assert response.status_code == 204, response.text
    before = _snapshot(project)

    full = load(project)
    assert full.status == "completed"
    assert {o["source_object"]: o["updated"] for o in full.objects}["customers"] == 1
    assert {o["source_object"]: o["updated"] for o in full.objects}["quotes"] == 1
    result = delta(project, newer.files, deletes="apply")
    assert result.status == "completed"
    deleted = {r["key"] for r in project.query(
        "SELECT key FROM crosswalk WHERE run_id = ? AND action = 'deleted'", (result.run_id,))}  # fmt: skip
    assert destination_key(playbook, "quotes", removed_quote, "quote") in deleted  # an updated record deleted
    assert len(deleted) == 4
    assert _snapshot(project) != before

    undone = rollback(project, run_id=result.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    for key in deleted:  # re-created with the same primary id, and the xref points at it again
        row = project.query("SELECT dest_id FROM crosswalk WHERE run_id = ? AND key = ?", (result.run_id, key))[0]
        assert project.scalar("SELECT dest_id FROM xref WHERE key = ?", (key,)) == row["dest_id"]
    undone = rollback(project, run_id=full.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures

    after = _snapshot(project)
    assert after.keys() == before.keys()
    for table in before:
        assert after[table] == before[table], table
    project.close()
