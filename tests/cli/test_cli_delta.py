"""`crmmigrator delta PROJECT [PATH...] [--deletes report|apply] [--json]` as a subprocess: JSON shape, human
summary on stderr, exit codes 0 / 2 (no newer export for a files source) / 3 (no valid sign-off) / 4 (failures)."""

from __future__ import annotations

from openpyxl import load_workbook

from crmmigrator_gui.engine.demo.newer_export import make_newer_export
from crmmigrator_gui.engine.mapping.signoff import record_signoff, signoff_status
from crmmigrator_gui.engine.run.load import load
from tests.engine.conftest import confirmed_project

RUN_KEYS = {"run_id", "kind", "status", "objects", "requests", "seconds"}
OBJECT_KEYS = {"source_object", "target_entity", "source_records", "created", "updated", "unchanged", "failed",
               "skipped"}  # fmt: skip


def _loaded_project(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))  # the subprocess uses the same home
    project = confirmed_project(tmp_path, records=300, seed=3)
    if not signoff_status(project)["valid"]:
        record_signoff(project, "test")
    assert load(project).status == "completed"
    return project


def test_delta_json_shape_and_exit_0(cli, tmp_path, monkeypatch):
    project = _loaded_project(tmp_path, monkeypatch)
    project.close()
    newer = make_newer_export(tmp_path / "export" / "octopuspro_export.xlsx", tmp_path / "newer", new=2, changed=2,
                              removed=2, seed=4)  # fmt: skip
    ran = cli("delta", "p.cmproj", str(newer.files[0]), "--deletes", "apply", "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert RUN_KEYS <= set(data)
    assert data["kind"] == "delta"
    assert data["status"] == "completed"
    assert all(OBJECT_KEYS <= set(o) for o in data["objects"])
    assert sum(o["created"] for o in data["objects"]) == 2
    assert sum(o["updated"] for o in data["objects"]) == 2
    info = data["delta"]
    assert {"delta_id", "mode", "objects", "deleted"} <= set(info)
    assert info["mode"] == "files"
    assert {"source_object", "new", "changed", "unchanged", "deleted", "deleted_applied"} <= set(info["objects"][0])
    assert sum(o["deleted_applied"] for o in info["objects"]) == 2
    assert {(d["source_object"], d["source_id"]) for d in info["deleted"]} == {
        (o, s) for o, ids in newer.removed.items() for s in ids
    }
    assert all(d["dest_id"] for d in info["deleted"])
    # Human text on stderr: the classification, then the load's counts.
    assert "new" in ran.stderr
    assert "changed" in ran.stderr
    assert "deleted" in ran.stderr
    assert "created" in ran.stderr.split("delta", 1)[1]

    again = cli("delta", "p.cmproj", str(newer.files[0]), "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] + o["updated"] for o in again.json["objects"]) == 0


def test_delta_exit_codes(cli, tmp_path, monkeypatch):
    project = _loaded_project(tmp_path, monkeypatch)
    newer = make_newer_export(tmp_path / "export" / "octopuspro_export.xlsx", tmp_path / "newer", new=0, changed=2,
                              removed=0, seed=4, changed_objects=["bookings"])  # fmt: skip
    # A changed booking whose total cannot be read as money: that record fails, the run goes on (exit 4).
    book = load_workbook(newer.files[0])
    sheet = book["Bookings"]
    header = [c.value for c in sheet[1]]
    bad = newer.changed["bookings"][0]
    for row in sheet.iter_rows(min_row=2):
        if str(row[header.index("Booking ID")].value) == bad:
            row[header.index("Total")].value = "twelve dollars"
    book.save(newer.files[0])

    usage = cli("delta", "p.cmproj", "--json")
    assert usage.code == 2, usage.stderr
    assert "pass the newer export" in usage.stderr

    with project.step("stale signoff (test)"):
        project.db.conn.execute(
            "INSERT INTO signoffs (at, actor, map_fingerprint) VALUES ('2025-01-01T00:00:00+00:00', 'x', 'stale')"
        )
    blocked = cli("delta", "p.cmproj", str(newer.files[0]), "--json")
    assert blocked.code == 3, blocked.stderr
    assert "sign-off" in blocked.stderr
    assert "Traceback" not in blocked.stderr

    record_signoff(project, "test")
    project.close()
    failed = cli("delta", "p.cmproj", str(newer.files[0]), "--json")
    assert failed.code == 4, failed.stderr
    bookings = next(o for o in failed.json["objects"] if o["source_object"] == "bookings")
    assert bookings["failed"] == 1
    assert bookings["updated"] == 1
    assert any(f["source_id"] == bad for f in failed.json["failures"])
