"""The rebuild reference package reads what the source exposes (issue 6, Deliver 7).

ServiceTracker: the Salesforce emulator seeded with the ServiceTracker package, served on loopback and reached
through a client-credentials source connection (secret in the keyring), as a real My Domain host would be.
Dispatch Pro: the embedded ServiceTitan emulator in-process. Expected names come from the emulator over raw
HTTP (or from its seed data), never from the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report import rebuild
from crmmigrator_gui.engine.report.rebuild import rebuild_package, render_markdown, write_rebuild_package
from crmmigrator_gui.engine.source.extract.definitions import META_KEY, read_definitions
from crmmigrator_gui.engine.target.connection import configure, embedded_source_path
from crmmigrator_gui.sandbox.hosting import sibling_data_path
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from crmmigrator_gui.sandbox.server import start_background
from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client, tenant_path

API = "/services/data/v62.0"
SEED = json.loads(
    (Path(rebuild.__file__).parents[2] / "sandbox" / "salesforce" / "servicetracker.json").read_text(encoding="utf-8")
)["setup"]


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    """A served ServiceTracker org and a raw HTTP client holding an admin token."""
    data = tmp_path_factory.mktemp("org") / "org.sqlite"
    SalesforceSandbox(sibling_data_path(str(data), "salesforce"), seed="servicetracker:10").close()
    server, _thread, base_url = start_background(data=str(data))
    sf = server.get_app().salesforce
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {sf.issue_token()}"})
    yield base_url, http
    http.close()
    server.shutdown()
    server.server_close()
    server.get_app().close()


def _st_project(tmp_path: Path, base_url: str, target: str) -> Project:
    project = Project.create(tmp_path / f"st-{target}.cmproj", source="servicetracker", target=target)
    configure(project, "source", url=base_url, auth="client-credentials", tenant=None, client_id="st-app",
              token_url=None, username=None, secret="st-secret")  # fmt: skip
    return project


def _records(http: httpx.Client, kind: str, soql: str) -> list[dict]:
    path = f"{API}/tooling/query" if kind == "tooling" else f"{API}/query"
    response = http.get(path, params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()["records"]


def _section(markdown: str, title: str) -> list[list[str]]:
    """The data rows of the table under ``## title``, split on unescaped pipes."""
    block = markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]  # drop the header
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("dynamics365", {"flow": "Power Automate cloud flow", "trigger": "Dataverse plug-in",
                         "validation_rule": "Business rule", "report": "Power BI",
                         "approval_process": "Power Automate approvals", "dashboard": "Model-driven dashboard"}),
        ("salesforce", {"flow": "Record-triggered Flow", "trigger": "Apex trigger",
                        "validation_rule": "Validation rule", "report": "Custom report type",
                        "approval_process": "Approval process", "dashboard": "Lightning dashboard"}),
    ],
)  # fmt: skip
def test_servicetracker_definitions_read_over_http_reach_the_package(tmp_path, org, target, expected):
    base_url, http = org
    project = _st_project(tmp_path, base_url, target)
    json_path, md_path = write_rebuild_package(project, tmp_path / "out")  # nothing stored: reads online
    package = json.loads(json_path.read_text(encoding="utf-8"))
    assert package["definitions"]["status"] == "read"
    assert project.meta(META_KEY)["definitions"], "stored for offline use"
    by_kind: dict[str, dict[str, dict]] = {}
    for entry in package["inventory"]:
        by_kind.setdefault(entry["kind"], {})[entry["api_name"]] = entry
    # Every definition the org answers over HTTP is in the inventory, and nothing else.
    flows = _records(http, "tooling", "SELECT ApiName, IsActive FROM FlowDefinitionView")
    triggers = _records(http, "tooling", "SELECT Name, TableEnumOrId FROM ApexTrigger")
    rules = _records(http, "tooling", "SELECT Id, ValidationName FROM ValidationRule")
    reports = _records(http, "rest", "SELECT DeveloperName FROM Report")
    dashboards = _records(http, "rest", "SELECT DeveloperName FROM Dashboard")
    approvals = _records(http, "rest", "SELECT DeveloperName, TableEnumOrId FROM ProcessDefinition")
    assert set(by_kind["flow"]) == {r["ApiName"] for r in flows}
    assert set(by_kind["trigger"]) == {r["Name"] for r in triggers}
    assert set(by_kind["validation_rule"]) == {r["ValidationName"] for r in rules}
    assert set(by_kind["report"]) == {r["DeveloperName"] for r in reports}
    assert set(by_kind["dashboard"]) == {r["DeveloperName"] for r in dashboards}
    assert set(by_kind["approval_process"]) == {r["DeveloperName"] for r in approvals}
    for kind, words in expected.items():
        entries = by_kind[kind].values()
        if kind == "flow":  # record-triggered ones; scheduled and screen flows have their own paths
            entries = [e for e in entries if e["details"].get("trigger_type") == "RecordAfterSave"]
            assert entries
        assert all(words in e["rebuild_path"] for e in entries), kind
    screen = by_kind["flow"]["ST_Technician_Check_In"]["rebuild_path"]
    assert ("Power Apps" if target == "dynamics365" else "Screen Flow") in screen
    # Objects named by a custom object's 01I id come back by API name, mapped to their destination entity.
    raw = next(r for r in triggers if r["Name"] == "WorkOrderTrigger")
    assert raw["TableEnumOrId"].startswith("01I")
    work_order = by_kind["trigger"]["WorkOrderTrigger"]
    assert work_order["object"] == "Work_Order__c"
    assert work_order["destination_entity"] == ("incident" if target == "dynamics365" else "Case")
    assert work_order["effort"] == "L"
    assert by_kind["trigger"]["InspectionFailFollowUp"]["effort"] == "S"
    # A rule's formula lives only in its Metadata (one row per query): it was read.
    rule = next(r for r in SEED["tooling"]["ValidationRule"] if r["ValidationName"] == "Line_Quantity_Range")
    assert by_kind["validation_rule"]["Line_Quantity_Range"]["details"]["formula"] == rule["ErrorConditionFormula"]
    assert package["summary"]["flow"]["count"] == len(flows)
    assert package["summary"]["flow"]["active"] == sum(r["IsActive"] for r in flows)
    actions = [r["action"] for r in project.query("SELECT action FROM audit")]
    assert actions.count("read source definitions") == 1
    assert md_path.exists()


def test_markdown_has_a_row_per_seeded_definition_with_pipes_escaped(tmp_path, org):
    base_url, _http = org
    project = _st_project(tmp_path, base_url, "dynamics365")
    _json_path, md_path = write_rebuild_package(project, tmp_path / "out")
    markdown = md_path.read_text(encoding="utf-8")
    for title, kind, key in (
        ("Flows and processes", "FlowDefinitionView", "Label"),
        ("Apex triggers", "ApexTrigger", "Name"),
        ("Validation rules", "ValidationRule", "ValidationName"),
    ):
        rows = _section(markdown, title)
        assert sorted(r[0] for r in rows) == sorted(x[key] for x in SEED["tooling"][kind]), title
        assert all(len(r) == 7 for r in rows), title  # no stray pipe split a row
    for title, obj, key in (("Reports", "Report", "Name"), ("Dashboards", "Dashboard", "Title"),
                            ("Approval processes", "ProcessDefinition", "Name")):  # fmt: skip
        rows = _section(markdown, title)
        assert sorted(r[0] for r in rows) == sorted(x[key] for x in SEED["records"][obj]), title
        assert all(len(r) == 7 for r in rows), title
    cycle = next(r for r in _section(markdown, "Reports") if r[0] == "Work Order Cycle Time")
    described = next(x for x in SEED["records"]["Report"] if x["Name"] == "Work Order Cycle Time")["Description"]
    assert "|" in described
    assert described.replace("|", "\\|") in cycle[4]
    rule = next(r for r in _section(markdown, "Validation rules") if r[0] == "Line_Quantity_Range")
    assert "Quantity__c < 1 \\|\\| Quantity__c > 999" in rule[4]


def test_servicetitan_configuration_becomes_territories_teams_and_types(tmp_path):
    results = {}
    for target in ("dynamics365", "salesforce"):
        project = Project.create(tmp_path / f"dp-{target}.cmproj", source="dispatchpro", target=target)
        ServiceTitanSandbox(embedded_source_path(project), records=20, seed=5).close()
        stored = read_definitions(project)
        assert stored["exposed"]
        assert not stored["warnings"]
        results[target] = rebuild_package(project)
    sandbox = ServiceTitanSandbox(embedded_source_path(project), records=20, seed=5)
    try:
        with api_client(sandbox) as http:

            def names(module: str, resource: str) -> dict[str, dict]:
                body = http.get(tenant_path(sandbox, module, resource), params={"active": "Any", "pageSize": 500})
                return {str(row["id"]): row for row in body.json()["data"]}

            expected = {
                "zone": names("dispatch", "zones"),
                "job_type": names("jpm", "job-types"),
                "tag_type": names("settings", "tag-types"),
                "business_unit": names("settings", "business-units"),
                "campaign": names("marketing", "campaigns"),
            }
    finally:
        sandbox.close()
    paths = {"dynamics365": {"zone": "Sales territory", "business_unit": "Owner team", "job_type": "Choice value"},
             "salesforce": {"zone": "Enterprise Territory Management", "business_unit": "Queue",
                            "job_type": "Case Type picklist value"}}  # fmt: skip
    for target, package in results.items():
        for kind, rows in expected.items():
            entries = {e["api_name"]: e for e in package["inventory"] if e["kind"] == kind}
            assert set(entries) == set(rows), (target, kind)
            assert all(entries[i]["name"] == rows[i]["name"] for i in rows)
            assert all(entries[i]["active"] == rows[i]["active"] for i in rows)
            assert {e["effort"] for e in entries.values()} == {"S"}
        for kind, words in paths[target].items():
            assert all(words in e["rebuild_path"] for e in package["inventory"] if e["kind"] == kind), kind
        job_types = {e["api_name"]: e for e in package["inventory"] if e["kind"] == "job_type"}
        for rid, row in expected["job_type"].items():
            assert job_types[rid]["details"]["duration_minutes"] == row["duration"] // 60
        assert any("no API" in text for text in package["definitions"]["not_exposed"])


def test_a_file_source_states_that_nothing_was_exposed(tmp_path):
    project = Project.create(tmp_path / "o.cmproj", source="octopuspro", target="dynamics365")
    json_path, md_path = write_rebuild_package(project, tmp_path / "out")
    package = json.loads(json_path.read_text(encoding="utf-8"))
    assert package["definitions"]["status"] == "not_exposed"
    assert package["definitions"]["exposed"] is False
    assert "records only" in package["definitions"]["why"]
    assert package["inventory"] == []
    assert package["summary"] == {}
    assert package["rebuild"], "the playbook's items are still listed"
    markdown = md_path.read_text(encoding="utf-8")
    assert f"Nothing: {package['definitions']['why']}" in markdown
    assert {r[0] for r in _section(markdown, "Playbook items (configuration no export or API carries)")} == {
        item["item"] for item in package["rebuild"]
    }


def test_api_source_that_cannot_be_read_says_so_and_stores_nothing(tmp_path, org):
    base_url, _http = org
    project = _st_project(tmp_path, f"{base_url}/no-such-org", "salesforce")  # sign-in answers 404
    json_path, md_path = write_rebuild_package(project, tmp_path / "out")
    package = json.loads(json_path.read_text(encoding="utf-8"))
    assert package["definitions"]["status"] == "not_read"
    assert "could not be read" in package["definitions"]["why"]
    assert package["inventory"] == []
    assert project.meta(META_KEY) is None
    assert "Not read: the source's definitions could not be read" in md_path.read_text(encoding="utf-8")
    (tmp_path / "offline").mkdir()
    offline = _st_project(tmp_path / "offline", base_url, "salesforce")
    package = json.loads(write_rebuild_package(offline, tmp_path / "o", online=False)[0].read_text(encoding="utf-8"))
    assert package["definitions"]["status"] == "not_read"
    assert "offline" in package["definitions"]["why"]
    assert offline.meta(META_KEY) is None


def test_json_round_trips_to_the_same_markdown_and_reading_again_refreshes(tmp_path, org):
    base_url, _http = org
    project = _st_project(tmp_path, base_url, "salesforce")
    first = read_definitions(project)
    json_path, md_path = write_rebuild_package(project, tmp_path / "out", online=False)  # stored: no network
    loaded = json.loads(json_path.read_text(encoding="utf-8"))
    assert render_markdown(loaded) == md_path.read_text(encoding="utf-8")
    again = rebuild_package(project)
    assert {k: v for k, v in again.items() if k != "generated_at"} == {
        k: v for k, v in loaded.items() if k != "generated_at"
    }
    second = read_definitions(project)
    assert second["definitions"] == first["definitions"]
    assert project.meta(META_KEY)["read_at"] == second["read_at"]
    assert [r["action"] for r in project.query("SELECT action FROM audit")].count("read source definitions") == 2


def test_package_writing_is_atomic(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "g.cmproj", source="generic", target="salesforce")
    out = tmp_path / "out"
    paths = write_rebuild_package(project, out)
    before = {p.name: p.read_bytes() for p in paths}
    real_write = Path.write_text
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(self.name)
        if len(calls) == 2:  # the second file of the pair
            raise OSError("disk full")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        write_rebuild_package(project, out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old pair intact, no temp files left
    monkeypatch.setattr(rebuild, "render_markdown", lambda package: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_rebuild_package(project, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_tooling_queries_behave_like_an_org(org):
    _base_url, http = org
    refused = http.get(f"{API}/tooling/query", params={"q": "SELECT Metadata FROM ValidationRule"})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "MALFORMED_QUERY"
    unknown = http.get(f"{API}/tooling/query", params={"q": "SELECT Nope FROM ApexTrigger"})
    assert unknown.status_code == 400
    assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    body = http.get(
        f"{API}/tooling/query",
        params={"q": "SELECT ValidationName, EntityDefinition.QualifiedApiName FROM ValidationRule "
                     "WHERE Active = true ORDER BY ValidationName DESC"},
    ).json()  # fmt: skip
    names = [r["ValidationName"] for r in body["records"]]
    active = [r["ValidationName"] for r in SEED["tooling"]["ValidationRule"] if r["Active"]]
    assert names == sorted(active, key=str.lower, reverse=True)
    assert body["totalSize"] == len(names)
    assert body["done"] is True
    assert all(r["attributes"]["type"] == "ValidationRule" for r in body["records"])
    assert all(r["EntityDefinition"]["QualifiedApiName"].endswith("__c") for r in body["records"])
    insert = http.post(f"{API}/sobjects/Report", json={"Name": "x"})
    assert insert.status_code == 400
    assert insert.json()[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"
