"""A sample sign-off is pinned to the map it was given for: any change to what moves invalidates it, and the
full load refuses (BlockedError, exit 3) without one valid for the current map; a sample needs none."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.errors import BlockedError, UsageError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.mapping.editing import set_transform
from crmmigrator_gui.engine.mapping.signoff import (
    assert_signed_off,
    map_fingerprint,
    record_signoff,
    signoff_status,
)
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.sample import select_sample
from tests.engine.conftest import SIGNOFF_BY, sign_off_for_tests


def _a_mapped_row(project) -> dict:
    return project.query(
        "SELECT id, source_object, source_field, target_entity, target_field FROM field_maps "
        "WHERE status = 'confirmed' AND target_entity IS NOT NULL AND role IS NOT NULL "
        "AND transform NOT LIKE '%key%' ORDER BY id LIMIT 1"
    )[0]


def test_no_signoff_blocks_with_exit_3(unsigned_project) -> None:
    mapped_project = unsigned_project
    status = signoff_status(mapped_project)
    assert status == {"valid": False, "signoff": None, "reason": "no sample has been signed off yet"}
    with pytest.raises(BlockedError) as caught:
        assert_signed_off(mapped_project)
    assert caught.value.exit_code == 3


def test_signoff_is_recorded_with_who_and_audited(unsigned_project) -> None:
    mapped_project = unsigned_project
    signed = record_signoff(mapped_project, "Dana Customer", sample_run_id=None)
    status = signoff_status(mapped_project)
    assert status["valid"] is True
    assert status["signoff"]["actor"] == "Dana Customer"
    assert assert_signed_off(mapped_project)["id"] == signed["id"]
    audit = mapped_project.query("SELECT action, detail FROM audit WHERE action = 'signoff'")
    assert len(audit) == 1
    assert json.loads(audit[0]["detail"])["by"] == "Dana Customer"
    with pytest.raises(UsageError):
        record_signoff(mapped_project, "   ")


def test_a_map_change_after_signoff_invalidates_it(unsigned_project) -> None:
    mapped_project = unsigned_project
    record_signoff(mapped_project, "Dana Customer")
    row = _a_mapped_row(mapped_project)
    maps.retarget_row(mapped_project, row["id"], f"{row['target_entity']}.description", actor="consultant")
    status = signoff_status(mapped_project)
    assert status["valid"] is False
    assert "map changed after the sign-off by Dana Customer" in status["reason"]
    with pytest.raises(BlockedError, match="run the sample again"):
        assert_signed_off(mapped_project)
    record_signoff(mapped_project, "Dana Customer")
    assert signoff_status(mapped_project)["valid"] is True


def test_transform_and_value_changes_change_the_fingerprint_but_notes_do_not(mapped_project) -> None:
    before = map_fingerprint(mapped_project)
    conn = mapped_project.db.conn
    conn.execute(
        "UPDATE field_maps SET notes = 'customer asked about this' WHERE id = (SELECT MIN(id) FROM field_maps)"
    )
    conn.execute("UPDATE field_maps SET confirmed_by = 'someone else'")
    assert map_fingerprint(mapped_project) == before
    row = _a_mapped_row(mapped_project)
    conn.execute(
        "UPDATE field_maps SET transform = ? WHERE id = ?", (json.dumps({"type": "text", "case": "upper"}), row["id"])
    )
    after_transform = map_fingerprint(mapped_project)
    assert after_transform != before
    if mapped_project.scalar("SELECT COUNT(*) FROM value_maps"):
        conn.execute(
            "UPDATE value_maps SET target_label = 'Something else' WHERE rowid = (SELECT MIN(rowid) FROM value_maps)"
        )
        assert map_fingerprint(mapped_project) != after_transform


# ---------------------------------------------------------------------------------------------- the load's gate


def test_the_full_load_refuses_without_a_signoff_and_writes_nothing(unsigned_project) -> None:
    project = unsigned_project
    runs, audits = project.scalar("SELECT COUNT(*) FROM runs"), project.scalar("SELECT COUNT(*) FROM audit")
    with pytest.raises(BlockedError) as caught:
        load(project)
    assert caught.value.exit_code == 3
    assert str(caught.value) == "no valid sign-off: no sample has been signed off yet"
    assert "\n" not in str(caught.value)
    assert project.scalar("SELECT COUNT(*) FROM runs") == runs  # refused before a run was opened
    assert project.scalar("SELECT COUNT(*) FROM audit") == audits


def test_a_transform_changed_after_the_signoff_blocks_the_load_until_signed_again(unsigned_project) -> None:
    project = unsigned_project
    sign_off_for_tests(project)
    row = project.query(
        "SELECT id FROM field_maps WHERE source_object = 'customers' AND source_field = 'Phone' "
        "AND target_entity = 'contact' AND target_field = 'telephone1'"
    )[0]
    assert set_transform(project, row["id"], {"type": "phone", "extension": "drop"}, actor="consultant")["changed"]
    with pytest.raises(BlockedError, match=f"no valid sign-off: the map changed after the sign-off by {SIGNOFF_BY}"):
        load(project)
    assert project.scalar("SELECT COUNT(*) FROM runs") == 0
    sign_off_for_tests(project)  # the customer signs off the changed map
    result = load(project)
    assert result.kind == "load"
    assert result.status == "completed"
    assert sum(o["created"] for o in result.objects) > 0


def test_a_sample_subset_loads_without_a_signoff_but_is_no_signoff_itself(unsigned_project) -> None:
    project = unsigned_project
    subset = select_sample(project, 100, seed=1)
    sampled = sum(len(ids) for ids in subset.values())
    result = load(project, subset=subset)
    assert result.kind == "sample"
    assert result.status == "completed"
    assert sum(o["created"] for o in result.objects) == sampled > 0
    assert signoff_status(project)["valid"] is False  # loading a sample signs nothing off
    with pytest.raises(BlockedError, match="no valid sign-off"):
        load(project)
