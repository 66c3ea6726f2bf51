"""A closed status that failed to apply (a paid invoice left open at the destination) is corrected by the next
load: the failure is recorded on the record's crosswalk row (``STATE_NOT_SET``), so the record is not carried as
settled; the next load reads its state, applies the status as an update (prior state snapshotted) and counts it
``updated``; rolling that load back reopens exactly those records. The state ops are faulted in the client."""

from __future__ import annotations

import pytest

from crmmigrator_gui.engine.run.load import STATE_NOT_SET, load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.target.batch import BatchResult
from crmmigrator_gui.engine.target.connection import destination
from crmmigrator_gui.engine.target.dataverse import DataverseClient


def _is_state_op(op) -> bool:
    return (
        op.method == "PATCH"
        and bool(op.body)
        and set(op.body) <= {"statecode", "statuscode"}
        and (op.body.get("statecode") not in (None, 0))
    )


@pytest.fixture
def fault_states(monkeypatch):
    """Make the next ``times`` batches that carry closing state ops answer 400 for those ops (nothing sent)."""
    original = DataverseClient.batch
    left = {"n": 0, "faulted": 0}

    def batch(self, ops, *args, **kwargs):
        if left["n"] <= 0 or not any(_is_state_op(op) for op in ops):
            return original(self, ops, *args, **kwargs)
        left["n"] -= 1
        passed = [op for op in ops if not _is_state_op(op)]
        answers = iter(original(self, passed, *args, **kwargs) if passed else [])
        out = []
        for op in ops:
            if _is_state_op(op):
                left["faulted"] += 1
                out.append(BatchResult(400, {}, {"error": {"code": "0x80040265", "message": "injected state fault"}}))
            else:
                out.append(next(answers))
        return out

    monkeypatch.setattr(DataverseClient, "batch", batch)

    def arm(times: int = 1) -> dict[str, int]:
        left["n"], left["faulted"] = times, 0
        return left

    return arm


def _invoice_states(project) -> dict[str, tuple[int, int]]:
    """Invoice key -> (statecode, statuscode), read over HTTP."""
    with destination(project) as client:
        rows = client.query("invoices", select=["new_sourcesystemid", "statecode", "statuscode"])
        return {r["new_sourcesystemid"]: (r["statecode"], r["statuscode"]) for r in rows}


def _invoices(result) -> dict:
    return next(o for o in result.objects if o["source_object"] == "invoices")


def test_failed_status_is_applied_by_the_next_load_and_rolled_back(mapped_project, fault_states):
    project = mapped_project
    fault = fault_states(1)
    first = load(project)
    assert first.status == "completed"
    closing = fault["faulted"]
    assert closing > 0  # the export has paid invoices: their status is set after create
    not_set = [w for w in first.warnings if "status not set" in w]
    assert len(not_set) == closing
    marked = project.query(
        "SELECT key, action FROM crosswalk WHERE run_id = ? AND error_code = ?", (first.run_id, STATE_NOT_SET)
    )
    assert {r["action"] for r in marked} == {"created"}
    assert len(marked) == closing
    keys = {r["key"] for r in marked}
    after_first = _invoice_states(project)
    assert all(after_first[k][0] == 0 for k in keys)  # left open at the destination

    second = load(project)
    assert second.status == "completed"
    assert not [w for w in second.warnings if "status not set" in w]
    invoices = _invoices(second)
    assert invoices["updated"] == closing  # only the records whose status was missing
    assert invoices["created"] == 0
    assert invoices["unchanged"] == invoices["source_records"] - closing
    assert all(o["updated"] == 0 for o in second.objects if o["source_object"] != "invoices")
    fixed = _invoice_states(project)
    assert all(fixed[k][0] != 0 for k in keys)
    priors = project.query("SELECT key, prior FROM crosswalk WHERE run_id = ? AND action = 'updated'", (second.run_id,))
    assert {r["key"] for r in priors} == keys
    assert all('"statecode": 0' in r["prior"] for r in priors)  # the open state, snapshotted before the write

    third = load(project)  # settled now: carried, nothing written
    assert all(o["created"] == o["updated"] == 0 for o in third.objects)

    undone = rollback(project, run_id=third.run_id)
    assert [r.status for r in undone] == ["rolled_back"]
    undone = rollback(project, run_id=second.run_id)
    assert [r.status for r in undone] == ["rolled_back"], undone[0].failures
    assert _invoice_states(project) == after_first  # reopened exactly as the first load left them


def test_a_status_only_update_that_fails_again_counts_unchanged_and_is_retried(mapped_project, fault_states):
    project = mapped_project
    fault = fault_states(1)
    load(project)
    closing = fault["faulted"]
    fault = fault_states(1)
    second = load(project)
    assert fault["faulted"] == closing  # the second load tried again …
    invoices = _invoices(second)
    assert invoices["updated"] == 0
    assert invoices["unchanged"] == invoices["source_records"]
    assert not project.query("SELECT 1 FROM crosswalk WHERE run_id = ? AND action = 'pending_update'", (second.run_id,))
    assert (
        project.scalar(
            "SELECT COUNT(*) FROM crosswalk WHERE run_id = ? AND action = 'unchanged' AND error_code = ?",
            (second.run_id, STATE_NOT_SET),
        )
        == closing
    )
    third = load(project)
    assert _invoices(third)["updated"] == closing
    states = _invoice_states(project)
    assert sum(1 for s in states.values() if s[0] != 0) >= closing
