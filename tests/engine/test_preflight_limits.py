"""Pre-flight against the destination's limits: the Dynamics 365 Sales Professional custom-table cap, attachment
size (organization.maxuploadfilesize, read from the destination), the API budget arithmetic, and the complexity
grade and timeline on small and large projects."""

from __future__ import annotations

import base64
import csv
import math

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan import schema
from crmmigrator_gui.engine.plan.preflight import preflight
from crmmigrator_gui.engine.plan.preflight.estimate import (
    DV_METADATA_PER_ENTITY,
    GradeInputs,
    PartVolume,
    grade,
    requests_needed,
    timeline_days,
)
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import destination


def _octopus(tmp_path, *, edition="enterprise", target="dynamics365", records=150):
    export = generate_export(tmp_path / "export", records=records, seed=4)
    project = Project.create(tmp_path / f"{edition}.cmproj", source="octopuspro", target=target, edition=edition)
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    return project


def project_playbook(project):
    return load_playbook(project.source, project.target, project.edition)


def _existing_custom_tables(project, count):
    items = [
        schema.SchemaItem("table", f"new_legacy{i}", f"new_legacy{i}", {"label": f"Legacy {i}", "plural": "Legacy"})
        for i in range(count)
    ]
    with destination(project) as client:
        schema.apply(client, items)  # through the metadata API, as an admin would have


def test_professional_cap_counts_the_maps_tables_and_the_orgs(tmp_path):
    project = _octopus(tmp_path, edition="professional")
    needed = {t.name for t in schema.manifest(project, project_playbook(project)) if t.kind == "table"}
    assert len(needed) == 4  # job, field worker, payment, custom invoice on Professional
    _existing_custom_tables(project, 11)
    within = [f for f in preflight(project)["findings"] if f["code"] == "EDITION_TABLE_LIMIT"]
    assert len(within) == 1
    assert within[0]["severity"] == "info"
    assert "15 of the 15" in within[0]["message"]
    _existing_custom_tables(project, 12)  # one more table: 16
    result = preflight(project)
    over = [f for f in result["findings"] if f["code"] == "EDITION_TABLE_LIMIT"]
    assert len(over) == 1
    assert over[0]["blocking"]
    assert "16 custom tables" in over[0]["message"]
    assert set(over[0]["detail"]["needed"]) == needed
    assert len(over[0]["detail"]["existing"]) == 12
    assert "edition: the Professional custom-table cap is exceeded" in result["grade"]["reasons"]
    project.close()


def test_enterprise_has_no_table_cap(tmp_path):
    project = _octopus(tmp_path)
    assert not [f for f in preflight(project)["findings"] if f["code"] == "EDITION_TABLE_LIMIT"]
    project.close()


def test_attachments_over_the_orgs_upload_limit(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    with open(folder / "files.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Title", "PathOnClient", "VersionData", "FirstPublishLocationId"])
        writer.writerow(["0681", "Site photo", "a.jpg", base64.b64encode(b"x" * 1200).decode(), "a0W1"])
        writer.writerow(["0682", "Manual", "b.pdf", base64.b64encode(b"y" * 3000).decode(), "a0W1"])
    project = Project.create(tmp_path / "st.cmproj", source="servicetracker", target="dynamics365")
    import_paths(project, [folder / "files.csv"])
    run_automap(project)
    accept(project, actor="tester")
    with destination(project) as client:  # the admin lowers the limit (reference §9: PATCH organizations)
        org = next(iter(client.query("organizations", select=["organizationid", "maxuploadfilesize"])))
        assert org["maxuploadfilesize"] == 5_242_880
        client.send("PATCH", f"organizations({org['organizationid']})", {"maxuploadfilesize": 2000}, {"If-Match": "*"})
    result = preflight(project)
    big = [f for f in result["findings"] if f["code"] == "ATTACHMENT_TOO_LARGE"]
    assert [(f["object"], f["field"], f["source_id"]) for f in big] == [("ContentVersion", "VersionData", "0682")]
    assert big[0]["blocking"]
    assert big[0]["detail"] == {"size": 4000, "limit": 2000, "measured_on": "base64"}
    assert result["estimate"]["basis"]["attachments"] == "organization.maxuploadfilesize"
    missing = [f for f in result["findings"] if f["code"] == "MISSING_OBJECT"]
    assert missing
    assert missing[0]["detail"]["records"] == 2
    project.close()


def test_request_arithmetic_follows_the_load_engine():
    account = PartVolume("customers.account", "account", 1000)
    contact = PartVolume("customers.contact", "contact", 999, links=10)
    requests, writes = requests_needed("dynamics365", [account, contact], users=60)
    metadata = DV_METADATA_PER_ENTITY * 2 + 2
    key_reads = math.ceil(1000 / 250) + math.ceil(999 / 250) + math.ceil(10 / 250)
    batches = math.ceil(1000 / 500) + math.ceil(999 / 500) + math.ceil(10 / 500)
    assert requests == metadata + key_reads + batches + math.ceil(60 / 50)
    assert writes == 1000 + 999 + 10
    small = PartVolume("a.b", "Account", 150)  # Collections of 200
    bulk = PartVolume("c.d", "Contact", 5000)  # Bulk 2.0 from 2,000 rows
    files = PartVolume("e.f", "ContentVersion", 0, files=10)
    requests, writes = requests_needed("salesforce", [small, bulk, files])
    assert requests == (2 * 3 + 3) + (1 + 1) + (25 + 6) + (10 + 3)
    assert writes == 150 + 5000 + 10


def test_api_budget_against_the_entitlement(tmp_path):
    project = _octopus(tmp_path)
    normal = preflight(project)
    budget = [f for f in normal["findings"] if f["code"] == "API_BUDGET"]
    assert [f["severity"] for f in budget] == ["info"]
    assert normal["estimate"]["api_budget"]["limit"] == 40_000  # one licensed user (reference §12)
    units = normal["estimate"]["api_budget"]["entitlement_units"]
    assert units == normal["estimate"]["requests"] + normal["estimate"]["writes"]
    with project.step("entitlement"):
        project.set_meta("api_entitlement_24h", units // 3)
    tight = preflight(project)
    over = [f for f in tight["findings"] if f["code"] == "API_BUDGET"]
    assert [f["severity"] for f in over] == ["warning"]  # entitlements are enforced softly
    assert f"over {math.ceil(units / (units // 3))} days" in over[0]["message"]
    assert tight["estimate"]["api_budget"]["share"] > 1
    assert tight["estimate"]["timeline_days"][0] > normal["estimate"]["timeline_days"][0]
    project.close()


def test_salesforce_daily_limit_blocks_when_the_load_cannot_finish(tmp_path):
    project = _octopus(tmp_path, target="salesforce", records=80)
    with project.step("limit"):
        project.set_meta("api_entitlement_24h", 10)
    result = preflight(project)
    budget = [f for f in result["findings"] if f["code"] == "API_BUDGET"]
    assert len(budget) == 1
    assert budget[0]["blocking"]
    assert "REQUEST_LIMIT_EXCEEDED" in budget[0]["message"]
    assert budget[0]["detail"]["needed"] == result["estimate"]["requests"] > 10
    project.close()


def test_grade_and_timeline_grow_with_the_project():
    small = GradeInputs(objects=3, records=800)
    standard = GradeInputs(objects=8, records=40_000, decomposed=1, custom_tables=3, unclear_fields=0.12)
    large = GradeInputs(objects=12, records=900_000, decomposed=2, merged=1, custom_tables=6, failing_share=0.02)
    huge = GradeInputs(objects=15, records=3_000_000, custom_tables=8, failing_share=0.06, api_share=2.5)
    levels = [grade(i)["level"] for i in (small, standard, large, huge)]
    assert levels == ["Simple", "Standard", "Complex", "Advanced"]
    assert any("over 2M" in r for r in grade(huge)["reasons"])
    assert timeline_days(small, 2, 0.01, 0)[0] == [1, 3]
    assert timeline_days(standard, 30, 0.1, 0)[0] == [2, 7]  # "8-object category — 2–7 days"
    days, basis = timeline_days(large, 900_000 / 50 / 60, 0.4, 3)
    assert days[0] > 3
    assert days[1] > 10
    assert "loading" in basis
    assert "blocking" in basis
    assert timeline_days(huge, 10_000, 2.5, 0)[0][1] >= 2 * timeline_days(large, 10_000, 2.5, 0)[0][1] - 1
