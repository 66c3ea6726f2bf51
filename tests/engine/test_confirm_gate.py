"""The confirm gate in the engine: nothing loads while a mapped row or value is undecided; every
confirmation says who and when; any change to the map after a sample sign-off invalidates the sign-off."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest

from crmmigrator_gui.engine.errors import BlockedError
from crmmigrator_gui.engine.mapping import maps, values
from crmmigrator_gui.engine.mapping.signoff import record_signoff, signoff_status
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.paths import resources_dir
from tests.engine.conftest import open_sandbox, sign_off_for_tests


@pytest.fixture
def proposed_project(tmp_path, monkeypatch):
    """The checked-in OctopusPro sample, automapped on the embedded sandbox and not confirmed yet."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = Project.create(tmp_path / "t.cmproj", source="octopuspro", target="dynamics365")
    import_paths(project, [resources_dir() / "samples" / "octopuspro" / "standard"])
    maps.run_automap(project)
    yield project
    project.close()


def _choice_row(project: Project) -> dict:
    """The field-map row of the customers' type column (a choice column with a playbook value map)."""
    return project.query(
        "SELECT id, source_object, source_field, target_entity, target_field FROM field_maps "
        "WHERE source_object = 'customers' AND target_field = 'new_customertype'"
    )[0]


def _runs(project: Project) -> int:
    return int(project.scalar("SELECT COUNT(*) FROM runs"))


def _stamped(row: dict, who: str) -> None:
    assert row["confirmed_by"] == who
    assert datetime.fromisoformat(row["confirmed_at"]).utcoffset() is not None  # when, with its time zone


def test_a_proposed_field_row_or_value_row_blocks_the_load(mapped_project) -> None:
    maps.assert_confirmed(mapped_project)
    conn = mapped_project.db.conn
    conn.execute("UPDATE value_maps SET status = 'proposed' WHERE rowid = (SELECT MIN(rowid) FROM value_maps)")
    with pytest.raises(BlockedError, match="1 unconfirmed row") as caught:
        load(mapped_project)
    assert caught.value.exit_code == 3
    assert _runs(mapped_project) == 0  # refused before anything started
    conn.execute("UPDATE value_maps SET status = 'confirmed'")
    conn.execute("UPDATE field_maps SET status = 'proposed' WHERE id = (SELECT MIN(id) FROM field_maps)")
    assert not maps.is_confirmed(mapped_project)
    with pytest.raises(BlockedError, match="unconfirmed"):
        load(mapped_project)
    assert _runs(mapped_project) == 0


def test_a_value_with_no_option_blocks_until_decided_and_leave_empty_loads_nothing(mapped_project) -> None:
    row = _choice_row(mapped_project)
    # The customers' type now feeds the standard customertypecode (Competitor, …, Customer, …): no option fits.
    maps.retarget_row(mapped_project, row["id"], "account.customertypecode", actor="consultant")
    undecided = values.unmapped_values(mapped_project)
    assert {r["target_field"] for r in undecided} == {"customertypecode"}
    assert {r["source_value"] for r in undecided} == {"Personal", "Business"}
    with pytest.raises(BlockedError, match="2 source value"):
        maps.assert_confirmed(mapped_project)
    assert not maps.is_confirmed(mapped_project)
    old = [r for r in mapped_project.query("SELECT * FROM value_maps") if r["target_field"] == "new_customertype"]
    assert old, "the previous target's decisions are kept (they no longer count: that column is not mapped)"

    for r in undecided:
        values.set_value(mapped_project, r["id"], "", actor="consultant")  # decided: leave it empty
    maps.assert_confirmed(mapped_project)
    decided = [r for r in values.value_rows(mapped_project) if r["target_field"] == "customertypecode"]
    assert all(r["status"] == "confirmed" and r["target_label"] is None for r in decided)
    for r in decided:
        _stamped(r, "consultant")
        assert r["reason"] == "left empty by consultant"

    with pytest.raises(BlockedError, match="map changed after the sign-off"):
        load(mapped_project)  # the retarget and the decisions are not what the fixture's sign-off covered
    sign_off_for_tests(mapped_project)
    result = load(mapped_project)
    assert result.status == "completed", result.failures[:3]
    sandbox = open_sandbox(mapped_project)
    try:
        client = httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url="http://sb")
        params = {"$select": "accountid", "$filter": "customertypecode ne null"}
        got = client.get("/api/data/v9.2/accounts", params=params, headers={"Authorization": "Bearer t"})
        assert got.status_code == 200, got.text
        assert got.json()["value"] == []
        params["$filter"] = "new_sourcesystemid ne null"
        loaded = client.get("/api/data/v9.2/accounts", params=params, headers={"Authorization": "Bearer t"})
        assert len(loaded.json()["value"]) == mapped_project.staged_count("customers")
    finally:
        sandbox.close()


def test_accept_confirms_values_only_with_their_confirmed_field_rows(proposed_project) -> None:
    row = _choice_row(proposed_project)
    proposed_project.db.conn.execute("UPDATE field_maps SET confidence = 0.1 WHERE id = ?", (row["id"],))
    maps.accept(proposed_project, min_confidence=0.5, actor="lead")
    still = [r for r in values.value_rows(proposed_project) if r["target_field"] == "new_customertype"]
    assert still
    assert {r["status"] for r in still} == {"proposed"}
    with pytest.raises(BlockedError):
        maps.assert_confirmed(proposed_project)
    maps.confirm_rows(proposed_project, [row["id"]], actor="reviewer")
    for r in [r for r in values.value_rows(proposed_project) if r["target_field"] == "new_customertype"]:
        _stamped(r, "reviewer")
    maps.assert_confirmed(proposed_project)


def test_every_confirmation_records_who_and_when(proposed_project) -> None:
    rows = maps.field_rows_with_ids(proposed_project)
    first = next(r for r in rows if r["status"] == "proposed")
    maps.confirm_rows(proposed_project, [first["id"]], actor="ana")
    maps.accept(proposed_project, actor="ben")
    by_id = {r["id"]: r for r in maps.field_rows_with_ids(proposed_project)}
    _stamped(by_id[first["id"]], "ana")
    assert {r["confirmed_by"] for r in by_id.values() if r["status"] == "confirmed"} >= {"ana", "ben"}
    for r in values.value_rows(proposed_project):
        assert r["confirmed_by"] in ("ana", "ben")
    objects = proposed_project.query("SELECT confirmed_by, confirmed_at FROM object_maps")
    assert objects
    for r in objects:
        _stamped(r, "ben")

    choice = _choice_row(proposed_project)
    name_col = proposed_project.query(
        "SELECT source_field FROM field_maps WHERE source_object = 'customers' AND target_entity = 'account' "
        "AND role IS NOT NULL AND transform NOT LIKE '%key%' AND transform NOT LIKE '%lookup%' AND id != ? LIMIT 1",
        (choice["id"],),
    )[0]
    maps.set_field(proposed_project, f"customers.{name_col['source_field']}", "account.description", actor="cai")
    maps.retarget_row(proposed_project, choice["id"], "account.accountcategorycode", actor="dee")
    value_row = values.value_rows(proposed_project, source_object="customers")[0]
    values.set_value(proposed_project, value_row["id"], "Standard", actor="eve")

    fields = {(r["source_field"], r["target_field"]): r for r in maps.field_rows(proposed_project)}
    _stamped(fields[(name_col["source_field"], "description")], "cai")
    _stamped(fields[(choice["source_field"], "accountcategorycode")], "dee")
    value_row = next(r for r in values.value_rows(proposed_project) if r["id"] == value_row["id"])
    _stamped(value_row, "eve")
    assert value_row["target_value"] == "2"  # Standard, read from the destination's metadata
    audit = {(a["action"], a["actor"]) for a in proposed_project.query("SELECT action, actor FROM audit")}
    assert {("map confirm", "ana"), ("map accept", "ben"), ("map set", "cai"), ("map retarget", "dee"),
            ("map value", "eve")} <= audit  # fmt: skip


def _retarget(project: Project) -> None:
    row = _choice_row(project)
    maps.retarget_row(project, row["id"], "account.description", actor="consultant")


def _set_value(project: Project) -> None:
    row = next(r for r in values.value_rows(project) if r["target_field"] == "statuscode")
    other = next(o for o in row["options"] if o["label"] != row["target_label"])
    values.set_value(project, row["id"], other["label"], actor="consultant")


def _transform(project: Project) -> None:
    row = _choice_row(project)
    spec = json.dumps({"type": "text", "case": "upper"})
    project.db.conn.execute("UPDATE field_maps SET transform = ? WHERE id = ?", (spec, row["id"]))


def _leave_empty(project: Project) -> None:
    values.set_value(project, values.value_rows(project)[0]["id"], "", actor="consultant")


@pytest.mark.parametrize("change", [_retarget, _set_value, _transform, _leave_empty])
def test_a_map_change_after_the_sample_signoff_invalidates_it(mapped_project, change) -> None:
    record_signoff(mapped_project, "Dana Customer")
    assert signoff_status(mapped_project)["valid"] is True
    mapped_project.db.conn.execute("UPDATE value_maps SET notes = 'asked the customer'")  # notes are not the map
    assert signoff_status(mapped_project)["valid"] is True
    change(mapped_project)
    status = signoff_status(mapped_project)
    assert status["valid"] is False
    assert "changed after the sign-off by Dana Customer" in status["reason"]
