"""Delta pickup against the embedded Dataverse sandbox: classification by row hash (complete vs changes-only
exports), apply (created / updated read back over HTTP, unchanged untouched), deletions reported or applied,
idempotence and resume after a cancel."""

from __future__ import annotations

import json
import sqlite3

import pytest

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.errors import BlockedError, UsageError
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
from crmmigrator_gui.engine.mapping.signoff import record_signoff, signoff_status
from crmmigrator_gui.engine.progress import CancelToken
from crmmigrator_gui.engine.run.delta import apply_delta, delta, detect_delta, pending_delta
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.target.connection import destination, embedded_sandbox_path
from tests.engine.conftest import confirmed_project


def _loaded(tmp_path):
    project = confirmed_project(tmp_path, records=300, seed=3)
    if not signoff_status(project)["valid"]:
        record_signoff(project, "test")
    result = load(project)
    assert result.status == "completed"
    return project


@pytest.fixture
def loaded(tmp_path):
    project = _loaded(tmp_path)
    yield project
    project.close()


def _newer(tmp_path, name="newer", **options):
    return make_newer_export(tmp_path / "export" / "octopuspro_export.xlsx", tmp_path / name, **options)


def _changes(project, delta_id, change):
    rows = project.query(
        "SELECT object, source_id FROM source_changes WHERE delta_id = ? AND change = ? ORDER BY object, source_id",
        (delta_id, change),
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["object"], []).append(row["source_id"])
    return out


def _sorted(ids: dict[str, list[str]]) -> dict[str, list[str]]:
    return {obj: sorted(v) for obj, v in ids.items() if v}


def _versions(project) -> dict[tuple[str, str], int]:
    """(sandbox table, row id) -> versionnumber: any write to a row bumps it."""
    conn = sqlite3.connect(embedded_sandbox_path(project))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'e_%'")]
        return {
            (t, rid): json.loads(data).get("versionnumber")
            for t in tables
            for rid, data in conn.execute(f'SELECT id, data FROM "{t}"')
        }
    finally:
        conn.close()


def test_classification_of_a_newer_export_is_exact(loaded, tmp_path):
    newer = _newer(tmp_path, new=4, changed=4, removed=2, seed=5)
    plan = detect_delta(loaded, newer.files)

    assert plan.mode == "files"
    assert all(plan.complete.values())
    assert _sorted(_changes(loaded, plan.delta_id, "new")) == _sorted(newer.new)
    assert _sorted(_changes(loaded, plan.delta_id, "changed")) == _sorted(newer.changed)
    assert _sorted(_changes(loaded, plan.delta_id, "deleted")) == _sorted(newer.removed)
    by_obj = {o["source_object"]: o for o in plan.objects}
    for obj, unchanged in newer.unchanged.items():
        assert by_obj[obj]["unchanged"] == unchanged, obj
    assert plan.pending == 4 + 4 + 2
    # Deleted rows left staging (so no later load re-creates them); their last row is kept.
    for obj, ids in newer.removed.items():
        for sid in ids:
            assert loaded.scalar("SELECT COUNT(*) FROM staging WHERE object = ? AND source_id = ?", (obj, sid)) == 0
            old = loaded.scalar(
                "SELECT old_raw FROM source_changes WHERE delta_id = ? AND object = ? AND source_id = ?",
                (plan.delta_id, obj, sid),
            )
            assert old
            assert json.loads(old)
    assert pending_delta(loaded).delta_id == plan.delta_id


def test_changes_only_export_does_not_report_deletions(loaded, tmp_path):
    newer = _newer(
        tmp_path, new=2, changed=2, removed=1, seed=9, new_objects=["bookings"], changed_objects=["bookings"],
        removed_objects=["quotes"], changes_only=["bookings"], omit=["services"],
    )  # fmt: skip
    plan = detect_delta(loaded, newer.files)
    by_obj = {o["source_object"]: o for o in plan.objects}

    assert plan.complete["bookings"] is False
    assert by_obj["bookings"]["deleted"] == 0  # 100+ bookings absent from the file: not deletions
    assert by_obj["bookings"]["new"] == 2
    assert by_obj["bookings"]["changed"] == 2
    assert by_obj["bookings"]["unchanged"] == 0
    assert any("bookings" in w and "changes-only" in w for w in plan.warnings)
    assert plan.complete["services"] is False
    assert "services" not in by_obj
    assert any(w.startswith("services:") for w in plan.warnings)
    assert loaded.staged_count("bookings") == 105 + 2  # nothing left staging
    # A complete sheet in the same export still reports its absences.
    assert plan.complete["quotes"] is True
    assert _sorted(_changes(loaded, plan.delta_id, "deleted")) == _sorted(newer.removed)


def test_apply_creates_new_updates_changed_and_leaves_unchanged_untouched(loaded, tmp_path):
    newer = _newer(tmp_path, new=4, changed=4, removed=2, seed=5)
    before = _versions(loaded)
    result = delta(loaded, newer.files)
    assert result.kind == "delta"
    assert result.status == "completed"
    by_obj = {o["source_object"]: o for o in result.objects}
    assert (by_obj["customers"]["created"], by_obj["customers"]["updated"]) == (2, 2)
    assert (by_obj["bookings"]["created"], by_obj["bookings"]["updated"]) == (2, 2)
    assert all(o["failed"] == 0 for o in result.objects)

    playbook = load_playbook(loaded.source, loaded.target, loaded.edition)
    with destination(loaded) as client:
        contacts = client.entity("contact")
        for sid, edits in newer.values["customers"].items():
            key = destination_key(playbook, "customers", sid, "contact")
            row = client.find_by_keys(contacts, playbook.key_column, [key], ["lastname"])[key]
            assert row["lastname"] == edits["Last name"]
        jobs = client.entity("new_job")
        keys = {destination_key(playbook, "bookings", sid, "job"): sid for sid in newer.new["bookings"]}
        found = client.find_by_keys(jobs, playbook.key_column, list(keys), [jobs.primary_id])
        assert set(found) == set(keys)  # the new bookings arrived

    # Only the delta's records were written: every other row keeps its version, and the run's crosswalk
    # holds no unchanged customer or booking.
    after = _versions(loaded)
    touched = {k for k in before if after.get(k) != before[k]}
    written = {
        r["dest_id"]
        for r in loaded.query(
            "SELECT dest_id FROM crosswalk WHERE run_id = ? AND action IN ('created', 'updated')", (result.run_id,)
        )
    }
    assert touched
    assert {rid for _t, rid in touched} <= written
    in_run = {(r["source_object"], r["source_id"]) for r in loaded.query(
        "SELECT DISTINCT source_object, source_id FROM crosswalk WHERE run_id = ?", (result.run_id,))}  # fmt: skip
    changed = {(o, s) for o, ids in newer.new.items() for s in ids} | {
        (o, s) for o, ids in newer.changed.items() for s in ids
    }
    assert {(o, s) for o, s in in_run if o in ("customers", "bookings")} <= changed

    # Deletions were only reported: the destination still holds them.
    report = result.to_json()["delta"]
    assert {(d["source_object"], d["source_id"]) for d in report["deleted"]} == {
        (o, s) for o, ids in newer.removed.items() for s in ids
    }
    assert all(d["applied"] == "reported" for d in report["deleted"])
    assert all(o["deleted_applied"] == 0 for o in report["objects"])
    with destination(loaded) as client:
        for obj, ids in newer.removed.items():
            part = load_playbook(loaded.source, loaded.target, loaded.edition).obj(obj).parts[0]
            meta = client.entity(part.entity)
            keys = [destination_key(playbook, obj, sid, part.name) for sid in ids]
            assert set(client.find_by_keys(meta, playbook.key_column, keys, [meta.primary_id])) == set(keys)
    assert pending_delta(loaded) is None


def test_applied_deletions_remove_records_and_a_later_load_never_recreates_them(loaded, tmp_path):
    newer = _newer(tmp_path, new=0, changed=0, removed=2, seed=5)
    result = delta(loaded, newer.files, deletes="apply")
    report = result.to_json()["delta"]
    assert sum(o["deleted_applied"] for o in report["objects"]) == 2
    deleted = loaded.query("SELECT * FROM crosswalk WHERE run_id = ? AND action = 'deleted'", (result.run_id,))
    assert len(deleted) == 2
    assert {d["dest_id"] for d in report["deleted"]} == {d["dest_id"] for d in deleted}
    for row in deleted:
        snapshot = json.loads(row["prior"])
        assert snapshot["new_sourcesystemid"] == row["key"]  # the snapshot can re-create it
    assert any(
        json.loads(a["detail"]).get("run_id") == result.run_id
        for a in loaded.query("SELECT detail FROM audit WHERE action = 'delta deletions'")
    )

    def present():
        with destination(loaded) as client:
            out = set()
            for row in deleted:
                meta = client.entity(row["target_entity"])
                if client.send("GET", f"{meta.entity_set}({row['dest_id']})").status_code == 200:
                    out.add(row["key"])
                found = client.find_by_keys(meta, "new_sourcesystemid", [row["key"]], [meta.primary_id])
                out |= set(found)
            return out

    assert present() == set()
    again = load(loaded)  # a new full load: the deleted records are not staged, so not re-created
    assert again.status == "completed"
    assert present() == set()


def test_delta_applied_twice_writes_nothing_the_second_time(loaded, tmp_path):
    newer = _newer(tmp_path, new=4, changed=4, removed=2, seed=5)
    first = delta(loaded, newer.files, deletes="apply")
    assert sum(o["created"] + o["updated"] for o in first.objects) > 0
    second = delta(loaded, newer.files, deletes="apply")
    assert sum(o["created"] + o["updated"] for o in second.objects) == 0
    counts = second.to_json()["delta"]["objects"]
    assert all(o["new"] == o["changed"] == o["deleted"] == 0 for o in counts)
    assert second.run_id != first.run_id


def test_cancelled_delta_resumes_without_duplicates(loaded, tmp_path):
    newer = _newer(tmp_path, new=6, changed=4, removed=0, seed=11)
    detect_delta(loaded, newer.files)
    cancel = CancelToken()
    events = []

    def stop_after_first_batch(event):
        events.append(event)
        if event.step == "load" and event.done:
            cancel.cancel()

    first = apply_delta(loaded, progress=stop_after_first_batch, cancel=cancel)
    assert first.status == "cancelled"
    assert pending_delta(loaded) is not None
    second = apply_delta(loaded)
    assert second.status == "completed"
    assert second.run_id == first.run_id
    playbook = load_playbook(loaded.source, loaded.target, loaded.edition)
    conn = sqlite3.connect(embedded_sandbox_path(loaded))
    try:
        for obj, part, table in (("customers", "account", "e_account"), ("bookings", "job", "e_new_job")):
            for sid in newer.new[obj]:
                key = destination_key(playbook, obj, sid, part)
                n = conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE json_extract(data, '$.new_sourcesystemid') = ?", (key,)
                ).fetchone()[0]
                assert n == 1, key
    finally:
        conn.close()
    by_obj = {o["source_object"]: o for o in second.objects}
    assert by_obj["customers"]["created"] == 3
    assert by_obj["bookings"]["created"] == 3
    assert pending_delta(loaded) is None


def test_files_source_without_paths_is_a_usage_error(loaded):
    with pytest.raises(UsageError, match="pass the newer export"):
        detect_delta(loaded)


def test_delta_refuses_without_a_valid_signoff(loaded, tmp_path):
    with loaded.step("stale signoff (test)"):
        loaded.db.conn.execute(
            "INSERT INTO signoffs (at, actor, map_fingerprint) VALUES ('2025-01-01T00:00:00+00:00', 'x', 'stale')"
        )
    newer = _newer(tmp_path, new=1, changed=0, removed=0, seed=2, new_objects=["customers"])
    with pytest.raises(BlockedError):
        delta(loaded, newer.files)
    assert pending_delta(loaded) is None  # refused before anything was staged


def test_report_has_a_delta_section_in_every_format(loaded, tmp_path):
    from openpyxl import load_workbook

    from crmmigrator_gui.engine.report.files import render_html, write_report
    from crmmigrator_gui.engine.report.report import build_report, to_text

    newer = _newer(tmp_path, new=4, changed=4, removed=2, seed=5)
    result = delta(loaded, newer.files, deletes="apply")
    report = build_report(loaded, read_back=False)
    (section,) = report["delta"]
    assert section["run_id"] == result.run_id
    assert section["run_status"] == "completed"
    by_obj = {o["source_object"]: o for o in section["objects"]}
    assert (by_obj["customers"]["new"], by_obj["customers"]["changed"]) == (2, 2)
    assert (by_obj["customers"]["created"], by_obj["customers"]["updated"]) == (2, 2)
    assert by_obj["quotes"]["deleted"] == by_obj["quotes"]["deleted_applied"] == 1
    assert by_obj["quotes"]["unchanged"] == newer.unchanged["quotes"]
    assert section["totals"]["deleted_applied"] == 2
    assert "delta 1" in to_text(report)
    assert "2 deleted (2 applied)" in to_text(report)
    html = render_html(report)
    assert "<h2>Delta</h2>" in html
    out = tmp_path / "report.xlsx"
    write_report(out, report)
    book = load_workbook(out, read_only=True)
    try:
        rows = [list(r) for r in book["Delta"].iter_rows(values_only=True)]
    finally:
        book.close()
    quotes = next(r for r in rows[1:] if r[3] == "quotes")
    assert quotes[:4] == [1, result.run_id, "completed", "quotes"]
    assert quotes[7:9] == [1, 1]


def test_report_counts_what_a_delta_loaded_as_loaded(loaded, tmp_path):
    """Per-object reconciliation describes where each source record stands now: the full load overlaid with the
    deltas applied after it (a rolled-back delta no longer counts)."""
    from crmmigrator_gui.engine.report.report import build_report
    from crmmigrator_gui.engine.run.rollback import rollback

    before = {o["source_object"]: o for o in build_report(loaded, read_back=False)["objects"]}
    newer = _newer(tmp_path, new=4, changed=4, removed=0, seed=7)
    result = delta(loaded, newer.files)
    after = {o["source_object"]: o for o in build_report(loaded, read_back=False)["objects"]}
    for obj, new_ids in newer.new.items():
        if not new_ids:
            continue
        assert after[obj]["source_records"] == before[obj]["source_records"] + len(new_ids)
        assert after[obj]["loaded"] == before[obj]["loaded"] + len(new_ids), obj  # the delta's creations count
    rollback(loaded, run_id=result.run_id)
    undone = {o["source_object"]: o for o in build_report(loaded, read_back=False)["objects"]}
    for obj in newer.new:
        assert undone[obj]["loaded"] == before[obj]["loaded"], obj  # staged still, but no longer loaded
