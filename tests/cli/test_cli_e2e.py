"""End to end: the real CLI as a subprocess against the embedded and the served sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "octopuspro" / "standard"


def _balanced(objects):
    for o in objects:
        assert o["created"] + o["updated"] + o["unchanged"] + o["failed"] + o["skipped"] == o["source_records"], o


def test_demo_loads_every_record(cli):
    ran = cli("demo", "--source", "octopuspro", "--target", "dynamics365", "--records", "400", "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["kind"] == "load"
    assert data["status"] == "completed"
    names = {o["source_object"] for o in data["objects"]}
    assert {
        "customers",
        "bookings",
        "invoices",
        "payments",
        "quotes",
        "services",
        "fieldworkers",
        "form_responses",
    } <= names
    for o in data["objects"]:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
    assert data["requests"] > 0
    sample = data["sample"]  # the demo walked the gate: a real sample, read back, signed off, rolled back
    assert sample["run_id"] < data["run_id"]
    assert sample["records"] > 0
    assert sample["flagged"] == 0


def test_load_refuses_until_a_sample_of_the_current_map_is_signed_off(cli, tmp_path):
    """Issue 6: the full load exits 3 (one line, nothing loaded) without a sign-off valid for the current map."""
    for args in (
        ("new", "g.cmproj", "--source", "octopuspro", "--target", "dynamics365"),
        ("import", "g.cmproj", str(SAMPLE)),
        ("automap", "g.cmproj"),
        ("map", "g.cmproj", "accept", "--all"),
    ):
        ran = cli(*args)
        assert ran.code == 0, ran.stderr
    refused = cli("load", "g.cmproj")
    assert refused.code == 3, refused.stderr
    assert refused.stderr.strip() == "error: no valid sign-off: no sample has been signed off yet"
    early = cli("signoff", "g.cmproj", "--by", "tester")
    assert early.code == 3, early.stderr
    assert "run `crmmigrator sample PROJECT` first" in early.stderr

    sample = cli("sample", "g.cmproj", "--json")
    assert sample.code == 0, sample.stderr
    assert cli("signoff", "g.cmproj", "--by", "tester").code == 0
    shown = cli("map", "g.cmproj", "show", "--json").json
    phone = next(r for r in shown["fields"] if r["target_entity"] and r["transform"].get("type") == "phone")
    changed = cli("map", "g.cmproj", "transform", f"{phone['source_object']}.{phone['source_field']}",
                  '{"type": "phone", "extension": "drop"}', "--target",
                  f"{phone['target_entity']}.{phone['target_field']}", "--by", "consultant")  # fmt: skip
    assert changed.code == 0, changed.stderr
    stale = cli("load", "g.cmproj")
    assert stale.code == 3, stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1
    assert "no valid sign-off: the map changed after the sign-off by tester" in stale.stderr
    assert "Traceback" not in stale.stderr
    assert cli("signoff", "g.cmproj", "--by", "tester").code == 3  # the sample showed the old map

    again = cli("sample", "g.cmproj", "--json")
    assert again.code == 0, again.stderr
    assert cli("signoff", "g.cmproj", "--by", "tester").code == 0
    loaded = cli("load", "g.cmproj", "--json")
    assert loaded.code == 0, loaded.stderr
    assert loaded.json["kind"] == "load"
    _balanced(loaded.json["objects"])
    assert sum(o["created"] + o["updated"] + o["unchanged"] for o in loaded.json["objects"]) > 0


@pytest.fixture
def export(tmp_path):
    return generate_export(tmp_path / "export", records=300, seed=11)


def test_full_cycle_idempotent_and_rollback(cli, signed_off, tmp_path, export):
    assert cli("new", "p.cmproj", "--source", "octopuspro", "--target", "dynamics365").code == 0
    ran = cli("import", "p.cmproj", *[str(f) for f in export.files], "--json")
    assert ran.code == 0, ran.stderr
    ran = cli("automap", "p.cmproj", "--json")
    assert ran.code == 0, ran.stderr
    proposals = ran.json["proposals"]
    assert proposals
    assert all(0 <= p["confidence"] <= 1 and p["reason"] for p in proposals)
    assert any(u["source_field"] == "Password" for u in ran.json["unmapped"]) or all(
        p["source_field"] != "Password" for p in proposals
    )

    blocked = cli("load", "p.cmproj", "--json")
    assert blocked.code == 3, blocked.stderr
    assert "unconfirmed" in blocked.stderr
    assert "Traceback" not in blocked.stderr

    assert cli("map", "p.cmproj", "accept", "--all").code == 0
    unsigned = cli("load", "p.cmproj", "--json")
    assert unsigned.code == 3, unsigned.stderr
    assert unsigned.stderr.strip() == "error: no valid sign-off: no sample has been signed off yet"
    assert unsigned.stdout == ""
    sample = signed_off("p.cmproj", keep_sample=True)  # kept: the full load adopts it, rollback --all undoes both
    first = cli("load", "p.cmproj", "--json")
    assert first.code == 0, first.stderr
    _balanced(first.json["objects"])
    assert sum(o["created"] for o in first.json["objects"]) > 0
    adopted = sum(o["created"] for o in sample["objects"])
    assert sum(o["updated"] + o["unchanged"] for o in first.json["objects"]) >= adopted > 0

    second = cli("load", "p.cmproj", "--json")
    assert second.code == 0, second.stderr
    assert sum(o["created"] for o in second.json["objects"]) == 0
    assert sum(o["unchanged"] for o in second.json["objects"]) == sum(
        o["source_records"] for o in second.json["objects"]
    ) - sum(o["skipped"] for o in second.json["objects"])

    report = cli("report", "p.cmproj", "--json")
    assert report.code == 0
    assert report.json["totals"]["loaded"] > 0

    rolled = cli("rollback", "p.cmproj", "--all", "--json")
    assert rolled.code == 0, rolled.stderr
    _assert_sandbox_empty(cli, tmp_path / "p.cmproj.sandbox.sqlite")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cli, data: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmmigrator_gui", "sandbox", "serve", "--port", str(port), "--data", str(data)],
        env=cli.env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/api/data/v9.2/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def _assert_sandbox_empty(cli, data: Path) -> None:
    proc, url = _serve(cli, data)
    try:
        headers = {"Authorization": "Bearer sandbox", "Accept": "application/json"}
        for entity_set in (
            "accounts",
            "contacts",
            "opportunities",
            "invoices",
            "quotes",
            "products",
            "annotations",
            "new_jobs",
            "new_payments",
            "new_fieldworkers",
        ):
            r = httpx.get(
                f"{url}/api/data/v9.2/{entity_set}",
                headers=headers,
                params={"$filter": "new_sourcesystemid ne null", "$select": "new_sourcesystemid"},
            )
            assert r.status_code == 200, (entity_set, r.text)
            assert r.json()["value"] == [], entity_set
    finally:
        proc.terminate()
        proc.wait(10)


def test_served_sandbox_is_queryable_like_a_real_org(cli, signed_off, tmp_path, export):
    proc, url = _serve(cli, tmp_path / "served.sqlite")
    try:
        assert cli("new", "s.cmproj", "--source", "octopuspro", "--target", "dynamics365").code == 0
        ran = cli("connect", "s.cmproj", "target", "--url", url, "--auth", "sandbox", "--test", "--json")
        assert ran.code == 0, ran.stderr
        assert ran.json["test"]["ok"] is True
        assert cli("import", "s.cmproj", *[str(f) for f in export.files]).code == 0
        assert cli("automap", "s.cmproj").code == 0
        assert cli("map", "s.cmproj", "accept", "--all").code == 0
        signed_off("s.cmproj")  # rolled back: the count below is of records the full load created
        loaded = cli("load", "s.cmproj", "--json")
        assert loaded.code == 0, loaded.stderr
        customers = next(o for o in loaded.json["objects"] if o["source_object"] == "customers")
        headers = {"Authorization": "Bearer anything", "Accept": "application/json", "Prefer": "odata.maxpagesize=50"}
        r = httpx.get(
            f"{url}/api/data/v9.2/accounts",
            headers=headers,
            params={
                "$select": "name,new_sourcesystemid,_primarycontactid_value",
                "$filter": "startswith(new_sourcesystemid,'OCTO-customers-')",
                "$count": "true",
            },
        )
        assert r.status_code == 200
        body = r.json()
        assert body["@odata.count"] == customers["created"]
        assert len(body["value"]) == 50
        assert "@odata.nextLink" in body
        assert all(row["_primarycontactid_value"] for row in body["value"])
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_file_names_file_row_column_and_leaves_project(cli, tmp_path):
    assert cli("new", "b.cmproj", "--source", "octopuspro", "--target", "dynamics365").code == 0
    good = tmp_path / "customers.csv"
    good.write_text("Customer ID,First name,Last name,Email\nC1,Ann,Lee,a@x.com\n", encoding="utf-8")
    assert cli("import", "b.cmproj", str(good)).code == 0
    bad = tmp_path / "bookings.csv"
    bad.write_text(
        "Booking ID,Customer ID,Service,Status\nB1,C1,Clean,Done\nB2,C1,Clean,Done,EXTRA\n", encoding="utf-8"
    )
    before = (tmp_path / "b.cmproj").read_bytes()
    ran = cli("import", "b.cmproj", str(bad))
    assert ran.code == 1
    line = ran.stderr.strip().splitlines()[-1]
    assert "bookings.csv" in line
    assert "row 3" in line
    assert "column" in line
    assert "Traceback" not in ran.stderr
    shown = cli("map", "b.cmproj", "show", "--json")
    assert shown.code == 0
    import sqlite3

    conn = sqlite3.connect(tmp_path / "b.cmproj")
    assert conn.execute("SELECT COUNT(*) FROM staging WHERE object = 'bookings'").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'import'").fetchone()[0] == 1
    conn.close()
    assert before  # the file still exists and opened fine above


def test_usage_errors_exit_2(cli):
    assert cli("new").code == 2
    assert cli("load").code == 2


def test_unseen_export_imports_maps_and_loads(cli, signed_off, tmp_path):
    unseen = generate_export(tmp_path / "unseen", records=300, seed=5, variant="unseen")
    assert cli("new", "u.cmproj", "--source", "octopuspro", "--target", "dynamics365").code == 0
    ran = cli("import", "u.cmproj", str(tmp_path / "unseen"), "--json")
    assert ran.code == 0, ran.stderr
    imported = {o["source_object"]: o["records"] for o in ran.json["objects"]}
    for name, count in unseen.counts.items():
        if count:
            assert imported.get(name) == count, (name, imported)
    assert cli("automap", "u.cmproj").code == 0
    assert cli("map", "u.cmproj", "accept", "--all").code == 0
    signed_off("u.cmproj", keep_sample=True)
    loaded = cli("load", "u.cmproj", "--json")
    assert loaded.code == 0, loaded.stderr + json.dumps(loaded.json.get("failures", [])[:3])
    _balanced(loaded.json["objects"])
    for o in loaded.json["objects"]:
        assert o["failed"] == 0, o
        assert o["skipped"] == 0, o


def test_demo_with_injected_faults_loads_every_record_exactly_once(cli, tmp_path):
    ran = cli(
        "demo",
        "--records",
        "300",
        "--dir",
        str(tmp_path / "d"),
        "--faults",
        "429=0.05,503=0.05,seed=9,retry_after=0",
        "--json",
    )
    assert ran.code == 0, ran.stderr
    for o in ran.json["objects"]:
        assert o["created"] == o["source_records"], o
    again = cli("load", str(tmp_path / "d" / "demo.cmproj"), "--json")
    assert again.code == 0, again.stderr
    assert sum(o["created"] for o in again.json["objects"]) == 0
    _assert_sandbox_empty_after_rollback(cli, tmp_path / "d" / "demo.cmproj")


def _assert_sandbox_empty_after_rollback(cli, project: Path) -> None:
    assert cli("rollback", str(project), "--all").code == 0
    _assert_sandbox_empty(cli, Path(str(project) + ".sandbox.sqlite"))
