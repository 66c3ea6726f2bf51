"""Pre-flight findings: blocking ones stop the load, warnings name the record and the reason."""

from __future__ import annotations

from crmmigrator_gui.engine.plan.preflight import preflight


def test_confirmed_project_has_only_owner_warnings_and_sandbox_schema_info(mapped_project):
    result = preflight(mapped_project)
    assert result["blocking"] == 0
    codes = {f["code"] for f in result["findings"]}
    assert codes <= {"UNMATCHED_OWNER", "SCHEMA_MISSING"}
    owners = [f for f in result["findings"] if f["code"] == "UNMATCHED_OWNER"]
    assert owners  # the fixture provisions only ~80% of the field workers as users
    assert all(f["source_id"] and "@" in f["message"] for f in owners)
    schema = [f for f in result["findings"] if f["code"] == "SCHEMA_MISSING"]
    assert all(f["severity"] == "info" for f in schema)  # the embedded sandbox is provisioned by load


def test_unconfirmed_map_blocks(mapped_project):
    mapped_project.db.conn.execute("UPDATE field_maps SET status = 'proposed' WHERE id = 1")
    result = preflight(mapped_project)
    assert result["blocking"] == 1
    assert result["findings"][0]["code"] == "MAP_UNCONFIRMED"


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
    project.close()
