"""`load` again after a finished run retries only the failures and the not-yet-loaded (embedded Dataverse)."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.source.importer import row_hash
from crmmigrator_gui.engine.target.dataverse import DataverseClient
from tests.engine.test_load_pause import keys_at_destination


@pytest.fixture
def calls(monkeypatch):
    """Every write and key read the load sends, by table: (method, table, keys or row count)."""
    seen: list[tuple[str, str, int]] = []
    real = {name: getattr(DataverseClient, name) for name in ("find_by_keys", "create_multiple", "update_multiple")}

    def find_by_keys(self, meta, key_column, keys, select, **kw):
        seen.append(("find", meta.logical, len(keys)))
        return real["find_by_keys"](self, meta, key_column, keys, select, **kw)

    def create_multiple(self, meta, records):
        seen.append(("create", meta.logical, len(records)))
        return real["create_multiple"](self, meta, records)

    def update_multiple(self, meta, records):
        seen.append(("update", meta.logical, len(records)))
        return real["update_multiple"](self, meta, records)

    for name, fn in (("find_by_keys", find_by_keys), ("create_multiple", create_multiple),
                     ("update_multiple", update_multiple)):  # fmt: skip
        monkeypatch.setattr(DataverseClient, name, fn)
    return seen


def _map_reference(project, target_field: str) -> int:
    """Map the payments' Reference column to ``target_field``; returns how many payments carry a reference."""
    project.db.conn.execute(
        "UPDATE field_maps SET target_field = ? WHERE source_object = 'payments' AND source_field = 'Reference'",
        (target_field,),
    )
    record_signoff(project, "tester")  # the map changed: the customer signs the fixed map off again
    return sum(1 for _sid, raw in project.iter_staged("payments") if raw.get("Reference"))


def _by_object(result) -> dict[str, dict]:
    return {o["source_object"]: o for o in result.objects}


def _balanced(result) -> None:
    for o in result.objects:
        total = sum(o[k] for k in ("created", "updated", "unchanged", "failed", "skipped"))
        assert total == o["source_records"], o


def test_rerun_writes_only_the_fixed_failures_then_picks_up_a_changed_row(mapped_project, calls):
    project = mapped_project
    referenced = _map_reference(project, "new_paymentdate")  # a map that breaks one column: a reference as a date
    first = load(project, batch_size=25)
    assert first.status == "completed_with_failures"
    assert 0 < _by_object(first)["payments"]["failed"] == referenced < project.staged_count("payments")
    failed_ids = {r["source_id"] for r in first.failures if r["action"] == "failed"}
    unhashed = project.scalar(
        "SELECT COUNT(*) FROM crosswalk WHERE run_id = ? AND row_hash IS NULL AND action IN "
        "('created', 'updated', 'unchanged', 'failed', 'skipped')",
        (first.run_id,),
    )
    assert unhashed == 0  # every outcome keeps the staged row it was built from

    # Fix the cause and load again: only the failed payments are written; the payments (whose map changed)
    # are read, every other object is carried without a request.
    _map_reference(project, "new_reference")
    calls.clear()
    second = load(project, batch_size=25)
    assert second.status == "completed"
    assert second.run_id != first.run_id
    _balanced(second)
    payments = _by_object(second)["payments"]
    assert (payments["created"], payments["updated"], payments["failed"]) == (referenced, 0, 0)
    assert payments["unchanged"] == payments["source_records"] - referenced
    for name, o in _by_object(second).items():
        if name != "payments":
            assert o["unchanged"] == o["source_records"], name
    assert {table for _op, table, _n in calls} == {"new_payment"}
    assert [(op, n) for op, _t, n in calls if op != "find"] == [("create", referenced)]
    written = project.query("SELECT source_id FROM crosswalk WHERE run_id = ? AND action = 'created'", (second.run_id,))
    assert {r["source_id"] for r in written} == failed_ids
    # What remains is per run, not per record: the destination's metadata for the tables the payloads
    # reference (every carried record is still built, to compare what it would send), plus the payments' writes.
    assert second.requests < first.requests / 4
    assert set(keys_at_destination(project, "new_payment").values()) == {1}
    assert len(keys_at_destination(project, "new_payment")) == project.staged_count("payments")

    # A staged row changed since (a newer export): that record alone is read and updated.
    sid, raw = next(project.iter_staged("customers"))
    email = next(c for c in raw if "mail" in c.lower())
    raw[email] = "moved@example.org"
    project.db.conn.execute(
        "UPDATE staging SET raw = ?, row_hash = ? WHERE object = 'customers' AND source_id = ?",
        (json.dumps(raw), row_hash(raw), sid),
    )
    calls.clear()
    third = load(project, batch_size=25)
    _balanced(third)
    customers = _by_object(third)["customers"]
    assert (customers["updated"], customers["unchanged"]) == (1, customers["source_records"] - 1)
    finds = [(t, n) for op, t, n in calls if op == "find"]
    assert {t for t, _n in finds} == {"account", "contact"}
    assert {n for _t, n in finds} == {1}
    updates = [(t, n) for op, t, n in calls if op == "update"]
    assert updates
    assert {t for t, _n in updates} <= {"account", "contact"}
    assert {n for _t, n in updates} == {1}
    assert not [c for c in calls if c[0] == "create"]


def test_recheck_reads_everything_and_a_rolled_back_run_is_not_carried(mapped_project, calls):
    project = mapped_project
    record_signoff(project, "tester")
    first = load(project, batch_size=25)
    assert first.status == "completed"

    calls.clear()
    again = load(project, batch_size=25, recheck=True)
    _balanced(again)
    assert sum(o["unchanged"] for o in again.objects) == sum(o["source_records"] for o in again.objects)
    read = {t for op, t, _n in calls if op == "find"}
    assert {"account", "contact", "new_job", "quote", "invoice"} <= read
    assert not [c for c in calls if c[0] != "find"]

    calls.clear()
    carried = load(project, batch_size=25)
    assert not calls  # no record read or written …
    assert carried.requests < 50  # … only per-run metadata reads (payloads are rebuilt to compare)
    _balanced(carried)

    # Roll back the runs that carried and the first load: nothing stands any more, so the next load writes
    # everything again (carrying would leave the destination empty).
    rollback(project, all_runs=True)
    assert not keys_at_destination(project, "account")
    calls.clear()
    fresh = load(project, batch_size=25)
    _balanced(fresh)
    assert sum(o["created"] for o in fresh.objects) == sum(o["source_records"] for o in fresh.objects)
    assert len(keys_at_destination(project, "account")) == project.staged_count("customers")
