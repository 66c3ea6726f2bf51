"""Load engine against the embedded sandbox: idempotency, resume, exact rollback, per-record failures."""

from __future__ import annotations

import httpx
import pytest

from crmmigrator_gui.engine.errors import BlockedError
from crmmigrator_gui.engine.progress import CancelToken
from crmmigrator_gui.engine.run import load as load_module
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from tests.engine.conftest import open_sandbox


def _count(project, entity_set: str, flt: str = "new_sourcesystemid ne null") -> int:
    sandbox = open_sandbox(project)
    try:
        client = httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url="http://sb")
        rows, url = 0, f"/api/data/v9.2/{entity_set}"
        params = {"$select": "new_sourcesystemid", "$filter": flt}
        while url:
            r = client.get(url, params=params, headers={"Authorization": "Bearer t"})
            assert r.status_code == 200, r.text
            rows += len(r.json()["value"])
            url, params = r.json().get("@odata.nextLink"), None
        return rows
    finally:
        sandbox.close()


def _totals(result, key):
    return sum(o[key] for o in result.to_json()["objects"])


def test_load_is_balanced_and_a_second_load_creates_nothing(mapped_project):
    first = load(mapped_project)
    assert first.status == "completed"
    for o in first.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"]
    customers = mapped_project.staged_count("customers")
    assert _count(mapped_project, "accounts") == customers
    assert _count(mapped_project, "contacts") == customers
    second = load(mapped_project)
    assert _totals(second, "created") == 0
    assert _totals(second, "updated") == 0
    assert _count(mapped_project, "accounts") == customers


def test_unconfirmed_map_blocks_load(mapped_project):
    mapped_project.db.conn.execute("UPDATE field_maps SET status = 'proposed' WHERE id = 1")
    with pytest.raises(BlockedError, match="unconfirmed"):
        load(mapped_project)


def test_cancel_then_resume_has_no_gaps_or_duplicates(mapped_project):
    token = CancelToken()
    seen = []

    def progress(event):
        seen.append(event)
        if len(seen) == 3:
            token.cancel()

    partial = load(mapped_project, progress=progress, cancel=token, batch_size=50)
    assert partial.status == "cancelled"
    resumed = load(mapped_project, batch_size=50)
    assert resumed.run_id == partial.run_id  # same run, resumed
    assert resumed.status == "completed"
    for o in resumed.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"]
    assert _count(mapped_project, "new_jobs") == mapped_project.staged_count("bookings")


def test_crash_between_write_and_commit_is_resumed_without_duplicates(mapped_project, monkeypatch):
    real_commit = load_module._Runner._commit
    calls = {"n": 0}

    def crashing_commit(self, part, outcomes, batch):
        calls["n"] += 1
        if calls["n"] == 2:  # the destination wrote this batch, but we "lose power" before committing
            raise KeyboardInterrupt("power loss")
        return real_commit(self, part, outcomes, batch)

    monkeypatch.setattr(load_module._Runner, "_commit", crashing_commit)
    with pytest.raises(KeyboardInterrupt):
        load(mapped_project, batch_size=40)
    monkeypatch.setattr(load_module._Runner, "_commit", real_commit)
    pending = mapped_project.scalar("SELECT COUNT(*) FROM crosswalk WHERE action = 'pending'")
    assert pending > 0
    mapped_project.db.conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
    resumed = load(mapped_project, batch_size=40)
    assert resumed.status == "completed"
    customers = mapped_project.staged_count("customers")
    assert _count(mapped_project, "accounts") == customers
    created = next(o for o in resumed.objects if o["source_object"] == "customers")["created"]
    assert created == customers  # the crashed batch is attributed to this run, so rollback deletes it
    rollback(mapped_project)
    assert _count(mapped_project, "accounts") == 0


def test_update_snapshot_and_exact_rollback(mapped_project):
    load(mapped_project)
    sid, raw = next(mapped_project.iter_staged("customers"))
    email_col = next(c for c in raw if "mail" in c.lower())
    original = raw[email_col]
    raw[email_col] = "changed@example.org"
    import json

    mapped_project.db.conn.execute(
        "UPDATE staging SET raw = ? WHERE object = 'customers' AND source_id = ?", (json.dumps(raw), sid)
    )
    second = load(mapped_project)
    customers = next(o for o in second.objects if o["source_object"] == "customers")
    assert customers["updated"] == 1
    assert _count(mapped_project, "accounts", "emailaddress1 eq 'changed@example.org'") == 1
    rollback(mapped_project)  # the most recent run: the update
    assert _count(mapped_project, "accounts", "emailaddress1 eq 'changed@example.org'") == 0
    assert _count(mapped_project, "accounts", f"emailaddress1 eq '{original.strip().lower()}'") >= 1
    rollback(mapped_project)  # now the first run: everything it created goes
    for entity_set in ("accounts", "contacts", "new_jobs", "opportunities", "invoices", "annotations"):
        assert _count(mapped_project, entity_set) == 0, entity_set


def test_a_bad_value_fails_one_record_not_the_run(mapped_project):
    import json

    sid, raw = next(mapped_project.iter_staged("payments"))
    amount_col = next(c for c in raw if c.lower() == "amount")
    raw[amount_col] = "twelve dollars"
    mapped_project.db.conn.execute(
        "UPDATE staging SET raw = ? WHERE object = 'payments' AND source_id = ?", (json.dumps(raw), sid)
    )
    result = load(mapped_project)
    payments = next(o for o in result.objects if o["source_object"] == "payments")
    assert payments["failed"] == 1
    assert payments["created"] == payments["source_records"] - 1
    failure = next(f for f in result.failures if f["source_id"] == sid)
    assert failure["code"] == "BAD_VALUE"
    assert "twelve dollars" in failure["message"]
    assert result.status == "completed_with_failures"


def test_without_bulk_messages_rows_are_upserted_by_key_in_batches(mapped_project, monkeypatch):
    from crmmigrator_gui.engine.target.dataverse import DataverseClient

    monkeypatch.setattr(DataverseClient, "supports_bulk", lambda self, logical, message: False)
    first = load(mapped_project)
    assert first.status == "completed"
    for o in first.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"]
        assert o["failed"] == 0, o
    customers = mapped_project.staged_count("customers")
    assert _count(mapped_project, "accounts") == customers
    second = load(mapped_project)
    assert _totals(second, "created") == 0
    assert _count(mapped_project, "accounts") == customers
    rollback(mapped_project, all_runs=True)
    assert _count(mapped_project, "accounts") == 0
