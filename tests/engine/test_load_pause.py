"""Pause/resume between batches and live failures in progress events, on the embedded Dataverse sandbox."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.progress import CancelToken, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from tests.engine.conftest import open_sandbox

PAUSE = 0.6  # seconds the test keeps the run paused


@pytest.fixture
def signed_project(mapped_project):
    record_signoff(mapped_project, "tester")
    return mapped_project


def keys_at_destination(project: Project, logical: str) -> Counter[str]:
    """new_sourcesystemid values stored at the destination, counted (straight from the sandbox's store)."""
    sandbox = open_sandbox(project)
    try:
        table = sandbox.store.table(sandbox.catalog.entities[logical])
        rows = sandbox.store.conn.execute(f"SELECT json_extract(data, '$.new_sourcesystemid') FROM {table}")
        return Counter(r[0] for r in rows if r[0])
    finally:
        sandbox.close()


def test_pause_from_a_callback_and_resume_from_another_thread(signed_project):
    token = CancelToken()
    seen: list[tuple[float, ProgressEvent]] = []
    resumer: list[threading.Thread] = []

    def later_resume() -> None:
        time.sleep(PAUSE)
        token.resume()

    def progress(event: ProgressEvent) -> None:
        seen.append((time.monotonic(), event))
        if event.obj.startswith("bookings") and 0 < event.done < event.total and not resumer and not event.message:
            token.pause()  # asked from the worker's own callback: takes effect at the next checkpoint
            resumer.append(threading.Thread(target=later_resume))
            resumer[0].start()

    started = time.monotonic()
    result = load(signed_project, progress=progress, cancel=token, batch_size=10)
    wall = time.monotonic() - started
    resumer[0].join(5)

    assert result.status == "completed"
    events = [e for _t, e in seen]
    paused_at = next(i for i, e in enumerate(events) if e.paused)
    assert events[paused_at].message == "paused"
    assert events[paused_at + 1].message == "resumed"
    assert not events[paused_at + 1].paused
    assert sum(1 for e in events if e.paused) == 1
    # Paused time is no run time: the run's seconds leave the pause out.
    assert result.seconds < wall - PAUSE * 0.8
    # …nor rate time: between the batch before the pause and the one after it, the active time the rate is
    # computed from is the wall time minus the pause.
    before = paused_at - 1
    after = next(i for i in range(paused_at + 2, len(events)) if events[i].obj == events[before].obj)
    (t0, e0), (t1, e1) = seen[before], seen[after]
    active = e1.done / e1.rate - e0.done / e0.rate
    assert active < (t1 - t0) - PAUSE * 0.8
    assert (e1.eta_seconds is not None and e1.eta_seconds < PAUSE) or e1.done == e1.total
    # No duplicates, no gaps.
    for o in result.objects:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
    jobs = keys_at_destination(signed_project, "new_job")
    assert len(jobs) == signed_project.staged_count("bookings")
    assert set(jobs.values()) == {1}


def test_cancel_while_paused_then_load_resumes_without_duplicates(signed_project):
    token = CancelToken()

    def progress(event: ProgressEvent) -> None:
        if event.obj.startswith("bookings") and event.done and not token.paused and not event.message:
            token.pause()
            threading.Timer(0.2, token.cancel).start()

    partial = load(signed_project, progress=progress, cancel=token, batch_size=10)
    assert partial.status == "cancelled"
    assert partial.seconds < 5
    resumed = load(signed_project, batch_size=10)
    assert resumed.run_id == partial.run_id
    assert resumed.status == "completed"
    jobs = keys_at_destination(signed_project, "new_job")
    assert len(jobs) == signed_project.staged_count("bookings")
    assert set(jobs.values()) == {1}


def test_failures_arrive_live_for_exactly_the_failed_records(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    export = generate_export(tmp_path / "export", records=300, seed=3, variant="dirty")
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    try:
        import_paths(project, export.files)
        run_automap(project)
        accept(project, actor="tester")
        record_signoff(project, "tester")
        events: list[ProgressEvent] = []
        result = load(project, progress=events.append, batch_size=25)
        assert result.status == "completed_with_failures"

        live = [f for e in events for f in e.failures]
        assert live
        assert all(f.code and f.message for f in live)
        per_part = [(e.obj, f.source_id) for e in events for f in e.failures]
        assert len(per_part) == len(set(per_part))  # each failure reported once (per destination part)
        # Exactly the source records the run counts as failed (skipped ones are not failures).
        failed = Counter(obj for obj, _sid in {(f.source_object, f.source_id) for f in live})
        for o in result.objects:
            assert failed.get(o["source_object"], 0) == o["failed"], o["source_object"]
        ledger = {
            (r["source_object"], r["source_id"], r["error_code"])
            for r in project.query(
                "SELECT source_object, source_id, error_code FROM crosswalk WHERE run_id = ? AND action = 'failed'",
                (result.run_id,),
            )
        }
        assert {(f.source_object, f.source_id, f.code) for f in live} == ledger
        live_ids = {(f.source_object, f.source_id) for f in live}
        skipped = {(f["source_object"], f["source_id"]) for f in result.failures if f["action"] == "skipped"}
        only_skipped = skipped - {(obj, sid) for obj, sid, _code in ledger}
        assert only_skipped
        assert not only_skipped & live_ids
        # Plain language first, the cause after (a bad amount names the cell's value).
        bad = next(f for f in live if f.code == "BAD_VALUE")
        assert bad.message.startswith("a source value could not be converted: ")
    finally:
        project.close()
