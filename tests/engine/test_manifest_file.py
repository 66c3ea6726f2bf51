"""The custom-field manifest for the admin (XLSX and JSON) and idempotent ``schema apply`` on both sandboxes.

Requests are recorded on the way to the embedded sandboxes, so the tests see what was really sent: the
alternate keys polled until Active, the publish, the Tooling inserts and FieldPermissions grants, and a
second ``apply`` that sends no write at all.
"""

from __future__ import annotations

import json

import httpx
import pytest
from python_calamine import CalamineWorkbook

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.errors import DestinationError, UsageError
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan import schema, sf_schema
from crmmigrator_gui.engine.plan.manifest_file import COLUMNS, flag_missing, write_manifest
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import EMBEDDED_URL, SandboxTransport, embedded_sandbox_path
from crmmigrator_gui.engine.target.dataverse import DataverseClient
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.engine.target.sf_tooling import field_metadata
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox


class Recording(SandboxTransport):
    """The in-process sandbox transport, keeping (method, path) of every request."""

    def __init__(self, app) -> None:
        super().__init__(app=app)
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return super().handle_request(request)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.sent if m != "GET"]


def _dataverse(project: Project, key_seconds: float) -> tuple[DataverseClient, Recording, DataverseSandbox]:
    sandbox = DataverseSandbox(embedded_sandbox_path(project), key_activation_seconds=key_seconds)
    transport = Recording(sandbox)
    return DataverseClient(EMBEDDED_URL, lambda: "sandbox", transport=transport), transport, sandbox


def _sheet(path) -> list[dict[str, str]]:
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Manifest").to_python()
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, (str(c) for c in r), strict=True)) for r in rows[1:]]


def _row(rows: list[dict[str, str]], entity: str, name: str, kind: str | None = None) -> dict[str, str]:
    (row,) = [r for r in rows if r["Table / object"] == entity and r["API name"] == name and kind in (None, r["Kind"])]
    return row


def test_dataverse_manifest_lists_what_is_missing_and_apply_is_idempotent(mapped_project, tmp_path):
    playbook = load_playbook(mapped_project.source, mapped_project.target, mapped_project.edition)
    items = schema.manifest(mapped_project, playbook)
    client, transport, sandbox = _dataverse(mapped_project, key_seconds=0.4)
    try:
        flagged = flag_missing(items, schema.missing(client, items))
        assert all(r["missing"] for r in flagged if r["kind"] in ("table", "key", "option"))
        written = write_manifest(flagged, tmp_path / "manifest.xlsx")
        assert written["missing"] == sum(r["missing"] for r in flagged) > 0
        rows = _sheet(tmp_path / "manifest.xlsx")
        assert len(rows) == len(items)
        key_column = _row(rows, "account", "new_sourcesystemid", "column")
        assert key_column["Missing"] == "yes"
        assert key_column["Length / precision"] == "100 characters"
        assert key_column["Alternate key / External ID / unique"] == "alternate key new_account_sourcesystemid_key"
        status = _row(rows, "new_job", "new_jobstatus", "column")
        assert status["Type"] == "Choice"
        assert {"Completed", "Cancelled", "En Route"} <= set(status["Option values"].split("; "))
        assert _row(rows, "new_job", "new_total")["Length / precision"] == "currency precision"
        assert _row(rows, "new_job", "new_cf_access_notes")["Length / precision"] == "4000 characters"
        assert _row(rows, "new_job", "new_job", "table")["Type"].startswith("Table")
        assert "Keys → New key" in _row(rows, "account", "new_account_sourcesystemid_key")["How to create it"]
        write_manifest(flagged, tmp_path / "manifest.json")
        data = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
        assert data["destination"] == "dynamics365"
        assert data["missing"] == written["missing"]
        assert data["items"][0]["admin"]["API name"] == data["items"][0]["name"]

        created = schema.apply(client, items, key_timeout=30)
        assert len(created) == written["missing"]
        key_polls = [p for m, p in transport.sent if m == "GET" and p.endswith("/Keys")]
        assert len(key_polls) > len([i for i in items if i.kind == "key"])  # polled until Active
        assert transport.writes().count(("POST", "/api/data/v9.2/PublishAllXml")) == 1
        client.invalidate()
        assert {client.key_status(i.entity, i.name) for i in items if i.kind == "key"} == {"Active"}
        assert schema.missing(client, items) == []

        transport.sent.clear()
        assert schema.apply(client, items, key_timeout=30) == []  # the second run creates nothing
        assert transport.writes() == []
        rows_after = flag_missing(items, schema.missing(client, items))
        write_manifest(rows_after, tmp_path / "after.xlsx")
        assert {r["Missing"] for r in _sheet(tmp_path / "after.xlsx")} == {"no"}
    finally:
        client.close()
        sandbox.close()


def test_a_key_still_building_is_waited_for_not_posted_again(mapped_project):
    playbook = load_playbook(mapped_project.source, mapped_project.target, mapped_project.edition)
    items = schema.manifest(mapped_project, playbook)
    client, transport, sandbox = _dataverse(mapped_project, key_seconds=1.0)
    try:
        with pytest.raises(DestinationError, match="still being built"):
            schema.apply(client, items, key_timeout=0.05)  # an interrupted run: keys posted, still Pending
        transport.sent.clear()
        assert schema.apply(client, items, key_timeout=30) == []
        assert transport.writes() == []  # no duplicate key POST, nothing to publish
        assert {client.key_status(i.entity, i.name) for i in items if i.kind == "key"} == {"Active"}
    finally:
        client.close()
        sandbox.close()


@pytest.fixture
def sf_project(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    export = generate_export(tmp_path / "export", records=60, seed=5)
    project = Project.create(tmp_path / "sf.cmproj", source="octopuspro", target="salesforce")
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    yield project
    project.close()


def test_salesforce_manifest_and_apply_grant_field_permissions_idempotently(sf_project, tmp_path):
    playbook = load_playbook(sf_project.source, sf_project.target, sf_project.edition)
    items = sf_schema.manifest(sf_project, playbook)
    org = SalesforceSandbox(embedded_sandbox_path(sf_project), audit_fields_permission=True)
    transport = Recording(org)
    token = org.issue_token()
    client = SalesforceClient(EMBEDDED_URL, lambda: token, transport=transport)
    try:
        # A run that crashed between the Tooling insert and the grant: the field exists but nobody can see it.
        meta = field_metadata("Text", "Source System ID", "Source_System_ID__c", length=100, external_id=True,
                              unique=True)  # fmt: skip
        response = client._send("POST", "tooling/sobjects/CustomField",
                                {"FullName": "Account.Source_System_ID__c", "Metadata": meta})  # fmt: skip
        assert response.status_code < 300
        absent = sf_schema.missing(client, items)
        assert ("Account", "Source_System_ID__c") in {(i.entity, i.name) for i in absent}
        flagged = flag_missing(items, absent)
        written = write_manifest(flagged, tmp_path / "manifest.xlsx")
        rows = _sheet(tmp_path / "manifest.xlsx")
        key = _row(rows, "Account", "Source_System_ID__c")
        assert (key["Missing"], key["Type"], key["Length / precision"]) == ("yes", "Text", "100 characters")
        assert key["Alternate key / External ID / unique"] == "External ID, unique"
        assert "Field-Level Security" in key["How to create it"]
        invoice_status = _row(rows, "Invoice__c", "Status__c")
        assert invoice_status["Type"] == "Picklist (restricted)"
        assert invoice_status["Option values"].startswith("Draft; Sent")
        assert _row(rows, "Job__c", "Job__c")["Type"] == "Custom object"
        with pytest.raises(UsageError):
            write_manifest(flagged, tmp_path / "manifest.csv")

        created = sf_schema.apply(client, items)
        assert len(created) == written["missing"]
        assert any(m == "POST" and p.endswith("/sobjects/FieldPermissions") for m, p in transport.sent)
        permset = client.running_permission_set()
        granted = {
            r["Field"]
            for r in client.query(
                "SELECT Field, PermissionsEdit FROM FieldPermissions WHERE ParentId = '" + permset + "'"
            )
            if r["PermissionsEdit"]
        }
        client.invalidate()
        for item in created:
            if item.kind != "field":
                continue
            owners = ("Task", "Event") if item.entity in sf_schema.ACTIVITY_OBJECTS else (item.entity,)
            assert all(client.describe(o).field(item.name).updateable for o in owners)
            if item.spec.get("type") != "Checkbox":  # the sandbox refuses FLS rows on checkboxes (see sf_schema)
                assert {f"{o}.{item.name}" for o in owners} <= granted
        assert client.describe("Account").field("Source_System_ID__c").updateable
        assert sf_schema.missing(client, items) == []

        transport.sent.clear()
        assert sf_schema.apply(client, items) == []
        assert transport.writes() == []
    finally:
        client.close()
        org.close()
