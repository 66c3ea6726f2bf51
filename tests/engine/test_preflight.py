"""Pre-flight: the CLI contract's document, the gates that block, progress and cancel, and no writes anywhere
but the project's audit log."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.errors import CancelledError
from crmmigrator_gui.engine.plan.preflight import CODES, preflight
from crmmigrator_gui.engine.progress import CancelToken
from crmmigrator_gui.engine.target.connection import destination

CONTRACT_KEYS = {"severity", "code", "object", "field", "source_id", "message"}


def test_result_follows_the_cli_contract(mapped_project):
    result = preflight(mapped_project)
    json.dumps(result)  # `preflight --json` prints it as it is
    assert isinstance(result["blocking"], int)
    assert result["blocking"] == sum(f["severity"] == "blocking" for f in result["findings"])
    assert result["warnings"] == sum(f["severity"] == "warning" for f in result["findings"])
    for finding in result["findings"]:
        assert CONTRACT_KEYS <= set(finding), finding
        assert finding["severity"] in ("blocking", "warning", "info")
        assert finding["blocking"] == (finding["severity"] == "blocking")
        assert finding["code"] in CODES
        assert finding["code"].isupper()
        assert finding["message"]
    severities = [f["severity"] for f in result["findings"]]
    assert severities == sorted(severities, key=["blocking", "warning", "info"].index)  # blocking first
    assert sum(v["count"] for v in result["summary"].values()) == len(result["findings"])
    assert result["grade"]["level"] in ("Simple", "Standard", "Complex", "Advanced")
    assert result["grade"]["reasons"]
    estimate = result["estimate"]
    assert estimate["requests"] > 0
    assert estimate["load_minutes"] >= 0
    lo, hi = estimate["timeline_days"]
    assert 1 <= lo <= hi
    assert {"limit", "window", "share"} <= set(estimate["api_budget"])
    assert result["records"]["would_load"] > 0


def test_clean_confirmed_project_has_no_blocking_findings(mapped_project):
    result = preflight(mapped_project)
    assert result["blocking"] == 0, [f for f in result["findings"] if f["blocking"]]
    owners = [f for f in result["findings"] if f["code"] == "UNMATCHED_OWNER"]
    assert owners  # the fixture provisions only ~80% of the field workers as users
    assert all(f["source_id"] and "@" in f["message"] and "migration user" in f["message"] for f in owners)
    schema = [f for f in result["findings"] if f["code"] == "SCHEMA_MISSING"]
    assert schema
    assert all(f["severity"] == "info" for f in schema)


def test_unconfirmed_map_blocks(mapped_project):
    mapped_project.db.conn.execute("UPDATE field_maps SET status = 'proposed' WHERE id = 1")
    result = preflight(mapped_project)
    assert result["blocking"] >= 1
    assert result["findings"][0]["code"] == "MAP_UNCONFIRMED"


def test_nothing_staged_blocks(tmp_path):
    from crmmigrator_gui.engine.project.store import Project

    project = Project.create(tmp_path / "empty.cmproj", source="octopuspro", target="dynamics365")
    result = preflight(project)
    assert [f["code"] for f in result["findings"] if f["blocking"]] == ["NOTHING_STAGED"]
    project.close()


def test_preflight_writes_nothing_at_the_destination_and_one_audit_row(mapped_project):
    audit_before = mapped_project.scalar("SELECT COUNT(*) FROM audit")
    first = preflight(mapped_project)
    second = preflight(mapped_project)
    with destination(mapped_project) as client:
        assert not client.entity_exists("new_job")  # the custom table the map needs is still not there
    assert [f for f in first["findings"] if f["code"] == "SCHEMA_MISSING"] == [
        f for f in second["findings"] if f["code"] == "SCHEMA_MISSING"
    ]
    assert mapped_project.scalar("SELECT COUNT(*) FROM audit") == audit_before + 2
    last = mapped_project.query("SELECT action, detail FROM audit ORDER BY id DESC LIMIT 1")[0]
    assert last["action"] == "preflight"
    assert json.loads(last["detail"])["blocking"] == second["blocking"]
    assert mapped_project.scalar("SELECT COUNT(*) FROM runs") == 0


def test_progress_events_and_cancel(mapped_project):
    events = []
    preflight(mapped_project, progress=events.append)
    rows = [e for e in events if e.obj]
    assert rows
    assert all(e.step == "preflight" for e in events)
    assert rows[-1].done == rows[-1].total  # the last row event is complete
    assert [e.done for e in rows] == sorted(e.done for e in rows)
    assert events[-1].message.endswith("blocking finding(s)")

    token = CancelToken()
    audit_before = mapped_project.scalar("SELECT COUNT(*) FROM audit")

    def cancel_midway(event):
        if event.obj and event.done:
            token.cancel()

    with pytest.raises(CancelledError):
        preflight(mapped_project, progress=cancel_midway, cancel=token)
    assert mapped_project.scalar("SELECT COUNT(*) FROM audit") == audit_before  # nothing recorded


def test_unmapped_choice_values_are_counted_and_block(mapped_project):
    row = mapped_project.query(
        "SELECT source_object, source_field, source_value, count FROM value_maps WHERE target_entity = 'new_job' "
        "ORDER BY count DESC LIMIT 1"
    )[0]
    mapped_project.db.conn.execute(
        "UPDATE value_maps SET status = 'unmapped', target_label = NULL, target_value = NULL "
        "WHERE source_object = ? AND source_field = ? AND source_value = ?",
        (row["source_object"], row["source_field"], row["source_value"]),
    )
    result = preflight(mapped_project)
    found = [f for f in result["findings"] if f["code"] == "UNMAPPED_VALUE"]
    assert len(found) == 1
    assert found[0]["severity"] == "blocking"
    assert (found[0]["object"], found[0]["field"]) == (row["source_object"], row["source_field"])
    assert found[0]["detail"]["value"] == row["source_value"]
    assert found[0]["detail"]["count"] == row["count"]
    assert len(found[0]["detail"]["source_ids"]) == min(10, row["count"])


def test_fallback_owner_is_named_and_checked(mapped_project):
    from tests.engine.conftest import open_sandbox

    sandbox = open_sandbox(mapped_project)
    sandbox.add_user("Dana Dispatcher", "dana@example.com")
    sandbox.add_user("Old Boss", "old.boss@example.com", disabled=True)
    sandbox.close()
    with mapped_project.step("set fallback owner"):
        mapped_project.set_meta("fallback_owner", "Dana@example.com")
    result = preflight(mapped_project)
    owners = [f for f in result["findings"] if f["code"] == "UNMATCHED_OWNER"]
    assert owners
    assert all("Dana Dispatcher <dana@example.com>" in f["message"] for f in owners)
    assert not [f for f in result["findings"] if f["code"] == "FALLBACK_OWNER_UNKNOWN"]
    with mapped_project.step("set fallback owner"):
        mapped_project.set_meta("fallback_owner", "old.boss@example.com")
    problems = [f for f in preflight(mapped_project)["findings"] if f["code"] == "FALLBACK_OWNER_UNKNOWN"]
    assert len(problems) == 1
    assert problems[0]["blocking"]
    assert "disabled" in problems[0]["message"]


def test_salesforce_without_audit_fields_is_a_clear_warning(tmp_path, monkeypatch):
    from crmmigrator_gui.engine.demo.octopuspro import generate_export
    from crmmigrator_gui.engine.mapping.maps import accept, run_automap
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.source.importer import import_paths
    from crmmigrator_gui.engine.target.salesforce import SalesforceClient

    export = generate_export(tmp_path / "export", records=120, seed=2)
    project = Project.create(tmp_path / "sf.cmproj", source="octopuspro", target="salesforce")
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    monkeypatch.setattr(SalesforceClient, "audit_fields_enabled", lambda self, sobject="Task": False)
    result = preflight(project)
    audit = [f for f in result["findings"] if f["code"] == "AUDIT_FIELDS_OFF"]
    assert len(audit) == 1
    assert "Set Audit Fields upon Record Creation" in audit[0]["message"]
    assert result["blocking"] == 0
    assert result["estimate"]["api_budget"]["basis"] == "Salesforce /limits DailyApiRequests"
    project.close()
