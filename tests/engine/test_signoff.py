"""A sample sign-off is pinned to the map it was given for: any change to what moves invalidates it."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.errors import BlockedError, UsageError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.mapping.signoff import (
    assert_signed_off,
    map_fingerprint,
    record_signoff,
    signoff_status,
)


def _a_mapped_row(project) -> dict:
    return project.query(
        "SELECT id, source_object, source_field, target_entity, target_field FROM field_maps "
        "WHERE status = 'confirmed' AND target_entity IS NOT NULL AND role IS NOT NULL "
        "AND transform NOT LIKE '%key%' ORDER BY id LIMIT 1"
    )[0]


def test_no_signoff_blocks_with_exit_3(mapped_project) -> None:
    status = signoff_status(mapped_project)
    assert status == {"valid": False, "signoff": None, "reason": "no sample has been signed off yet"}
    with pytest.raises(BlockedError) as caught:
        assert_signed_off(mapped_project)
    assert caught.value.exit_code == 3


def test_signoff_is_recorded_with_who_and_audited(mapped_project) -> None:
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


def test_a_map_change_after_signoff_invalidates_it(mapped_project) -> None:
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
