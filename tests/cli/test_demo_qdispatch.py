"""Q Dispatch → Dynamics 365 end to end: the real CLI as a subprocess against the embedded sandbox.

The demo (clean export), a held-out-style "unseen" folder, and the dirty folder whose manifest says
exactly which records must fail or be skipped.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from crmmigrator_gui.engine.demo.qdispatch import DROPPED, FAILS, OBJECTS, SKIPPED, generate_export

pytestmark = pytest.mark.slow


def _balanced(objects):
    for o in objects:
        assert o["created"] + o["updated"] + o["unchanged"] + o["failed"] + o["skipped"] == o["source_records"], o


def test_demo_loads_every_record_and_reloads_nothing(cli, tmp_path):
    ran = cli("demo", "--source", "qdispatch", "--target", "dynamics365", "--records", "2000",
              "--dir", str(tmp_path / "d"), "--json")  # fmt: skip
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["status"] == "completed"
    assert {o["source_object"] for o in data["objects"]} == set(OBJECTS)
    for o in data["objects"]:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
        assert o["skipped"] == 0, (o, data["failures"][:3])
    assert sum(o["source_records"] for o in data["objects"]) >= 1800
    assert data["requests"] > 0

    again = cli("load", str(tmp_path / "d" / "demo.cmproj"), "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    assert all(o["unchanged"] == o["source_records"] for o in again.json["objects"])

    conn = sqlite3.connect(tmp_path / "d" / "demo.cmproj")
    try:  # technicians with a matching user own their work orders; the rest fall back and are named
        owners = Counter(
            json.loads(w)["ownerid@odata.bind"]
            for (w,) in conn.execute("SELECT written FROM crosswalk WHERE part = 'serviceorder' AND action = 'created'")
        )
    finally:
        conn.close()
    assert len(owners) > 3
    assert any("have no active user" in w for w in data["warnings"])


def _flow(cli, signed_off, tmp_path: Path, name: str, folder: Path, users: list[tuple[str, str]] | None = None):
    project = tmp_path / f"{name}.cmproj"
    assert cli("new", str(project), "--source", "qdispatch", "--target", "dynamics365").code == 0
    if users:  # an admin has invited the technicians, as the demo does
        from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

        sandbox = DataverseSandbox(Path(f"{project}.sandbox.sqlite"))
        try:
            for fullname, email in users:
                sandbox.add_user(fullname, email)
        finally:
            sandbox.close()
    imported = cli("import", str(project), str(folder), "--json")
    assert imported.code == 0, imported.stderr
    assert cli("automap", str(project)).code == 0
    assert cli("map", str(project), "accept", "--all").code == 0
    signed_off(str(project))  # sample, sign-off, sample rolled back: the full load creates every record
    loaded = cli("load", str(project), "--json")
    return project, imported.json, loaded


def test_unseen_folder_imports_maps_and_loads_without_code_changes(cli, signed_off, tmp_path):
    export = generate_export(tmp_path / "unseen", records=600, seed=5, variant="unseen")
    _project, imported, loaded = _flow(cli, signed_off, tmp_path, "u", tmp_path / "unseen", export.users)
    got = {o["source_object"]: o["records"] for o in imported["objects"]}
    assert got == export.counts
    assert loaded.code == 0, loaded.stderr + json.dumps(loaded.json.get("failures", [])[:3])
    _balanced(loaded.json["objects"])
    for o in loaded.json["objects"]:
        assert o["failed"] == 0, o
        assert o["skipped"] == 0, o
        assert o["created"] == o["source_records"], o


def test_dirty_folder_fails_exactly_where_the_manifest_says(cli, signed_off, tmp_path):
    export = generate_export(tmp_path / "dirty", records=600, seed=7, variant="dirty")
    project, imported, loaded = _flow(cli, signed_off, tmp_path, "x", tmp_path / "dirty", export.users)
    assert loaded.code == 4, loaded.stderr  # some records failed
    data = loaded.json
    _balanced(data["objects"])

    # the importer keeps one copy of each exact duplicate; distinct records match the generator's counts
    dropped = Counter(e["object"] for e in export.defects if e["effect"] == DROPPED)
    for o in imported["objects"]:
        assert o["duplicates_skipped"] == dropped.get(o["source_object"], 0), o
        assert o["records"] == export.counts[o["source_object"]], o

    expected = {
        (e["object"], e["source_id"], "failed" if e["effect"] == FAILS else "skipped")
        for e in export.defects
        if e["effect"] in (FAILS, SKIPPED)
    }
    assert len(data["failures"]) < 200  # the JSON carries them all at this size
    got = {(f["source_object"], f["source_id"], f["action"]) for f in data["failures"]}
    assert got == expected
    for failure in data["failures"]:
        assert failure["source_id"], failure
        assert failure["message"], failure
        if failure["action"] == "failed":
            assert failure["code"] == "BAD_VALUE", failure
            assert "column '" in failure["message"], failure
        else:
            assert failure["code"] == "MISSING_PARENT", failure
            assert "is not loaded" in failure["message"], failure
    counts = {o["source_object"]: o for o in data["objects"]}
    for obj, n in Counter(o for o, _s, a in expected if a == "failed").items():
        assert counts[obj]["failed"] == n
    for obj, n in Counter(o for o, _s, a in expected if a == "skipped").items():
        assert counts[obj]["skipped"] == n

    conn = sqlite3.connect(project)
    try:
        written = {
            (part, sid): json.loads(w) if w else {}
            for part, sid, w in conn.execute("SELECT part, source_id, written FROM crosswalk")
        }
        staged = {sid: json.loads(raw) for sid, raw in conn.execute(
            "SELECT source_id, raw FROM staging WHERE object = 'work_orders'")}  # fmt: skip
        options = {
            (r[0], r[1]): r[2] for r in conn.execute("SELECT source_field, source_value, target_label FROM value_maps")
        }
    finally:
        conn.close()
    # a technician's name where the code belongs still finds the technician's user as owner
    for entry in (e for e in export.defects if e["defect"] == "fk_holds_name"):
        code = entry["detail"]
        twin = next(s for s, raw in staged.items() if raw["assigned_tech_code"] == code)
        owner = written[("serviceorder", entry["source_id"])]["ownerid@odata.bind"]
        assert owner == written[("serviceorder", twin)]["ownerid@odata.bind"], entry
    # status drift is folded onto the six Q Dispatch statuses by the confirmed value map
    for entry in (e for e in export.defects if e["defect"] == "enum_drift_status"):
        before, after = entry["detail"].split(" -> ")
        assert options[("status", after)] == before, entry
    # money written as "$1,234.50" / "1.234,50" / "AUD 99.00" arrives as the amount
    for entry in (e for e in export.defects if e["defect"] == "money_format"):
        body = written[("invoice", entry["source_id"])]
        assert body, entry
        assert float(body["new_total"]) > 0, entry
