"""Salesforce Files in the load path: ServiceTracker work-order attachments → Files on the Case.

A small ServiceTracker → Salesforce project (embedded source org, extraction, confirmed map) loaded into the
embedded destination org over HTTP with the real client. The file part uploads each body as a
ContentVersion published on the Case (its ContentDocumentLink visible by SOQL, the bytes intact), a reload
uploads nothing, rollback deletes the ContentDocument (versions and links with it), a file over the REST
limit fails alone without being sent, and an upload that lost its key in a crash is found again on resume.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from crmmigrator_gui.engine.demo import servicetracker as st_demo
from crmmigrator_gui.engine.demo.runner import _provision_users
from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.plan import sf_payloads
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run import load_salesforce
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.source.extract import extract
from crmmigrator_gui.engine.target.connection import SandboxTransport, embedded_sandbox_path
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from tests.engine.conftest import sign_off_for_tests

FILES = "ContentVersion"


@pytest.fixture
def st_project(tmp_path, monkeypatch):
    """A confirmed, signed-off ServiceTracker → Salesforce project (~300 source rows, a handful of files)."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = Project.create(tmp_path / "st.cmproj", source="servicetracker", target="salesforce")
    _provision_users(project, st_demo.prepare_source(project, records=300))
    extract(project)
    run_automap(project)
    accept(project, actor="tester")
    sign_off_for_tests(project)
    yield project
    project.close()


@contextmanager
def org(project: Project) -> Iterator[tuple[SalesforceClient, httpx.Client]]:
    sandbox = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
    token = sandbox.issue_token()
    client = SalesforceClient("http://sandbox.localhost", lambda: token, transport=SandboxTransport(app=sandbox))
    raw = httpx.Client(
        transport=httpx.WSGITransport(app=sandbox),
        base_url="http://sandbox.localhost/services/data/v62.0/",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        yield client, raw
    finally:
        raw.close()
        client.close()
        sandbox.close()


def _rows(project: Project, soql: str) -> list[dict[str, Any]]:
    with org(project) as (client, _raw):
        return list(client.query(soql))


def _part(result, name: str = "attachment") -> dict[str, int]:
    obj = next(o for o in result.to_json()["objects"] if o["source_object"] == FILES)
    return next(p for p in obj["parts"] if p["part"] == name)


def _live_files(project: Project) -> dict[str, dict[str, Any]]:
    """Staged files that should load: not in the source recycle bin and their work order not deleted."""
    orders = {sid for sid, raw in project.iter_staged("Work_Order__c") if str(raw.get("IsDeleted")).lower() != "true"}
    return {
        sid: raw
        for sid, raw in project.iter_staged(FILES)
        if str(raw.get("IsDeleted")).lower() != "true" and raw.get("FirstPublishLocationId") in orders
    }


def _restage(project: Project, source_id: str, raw: dict[str, Any]) -> None:
    project.db.conn.execute(
        "UPDATE staging SET raw = ? WHERE object = ? AND source_id = ?", (json.dumps(raw), FILES, source_id)
    )


def test_files_are_uploaded_on_the_case_visible_by_soql_and_a_reload_uploads_nothing(st_project):
    files = _live_files(st_project)
    assert len(files) >= 3

    result = load(st_project)
    assert result.status == "completed", result.failures[:3]
    part = _part(result)
    assert part["created"] == len(files), part
    assert part["failed"] == 0
    assert _part(result, "file")["created"] == len(files)  # the timeline Task is kept beside the file

    xwalk = st_project.query(
        "SELECT source_id, dest_id, written FROM crosswalk WHERE part = 'attachment' AND action = 'created'"
    )
    assert {r["source_id"] for r in xwalk} == set(files)
    assert all(r["dest_id"].startswith("069") for r in xwalk), "dest id is the ContentDocument"

    cases = {
        r["Source_System_ID__c"]: r["Id"]
        for r in _rows(st_project, "SELECT Id, Source_System_ID__c FROM Case WHERE Source_System_ID__c != null")
    }
    with org(st_project) as (client, raw):
        for row in xwalk:
            source = files[row["source_id"]]
            case_id = cases[f"ST-Work_Order__c-{source['FirstPublishLocationId']}-case"]
            links = list(
                client.query(
                    "SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink "
                    f"WHERE ContentDocumentId = '{row['dest_id']}'"
                )
            )
            assert [link["LinkedEntityId"] for link in links] == [case_id]
            on_case = list(
                client.query(f"SELECT ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId = '{case_id}'")
            )
            assert row["dest_id"] in {link["ContentDocumentId"] for link in on_case}
            versions = list(
                client.query(
                    "SELECT Id, Title, PathOnClient, FirstPublishLocationId, Source_System_ID__c FROM ContentVersion "
                    f"WHERE ContentDocumentId = '{row['dest_id']}'"
                )
            )
            assert len(versions) == 1
            version = versions[0]
            assert version["Source_System_ID__c"] == f"ST-ContentVersion-{row['source_id']}-attachment"
            assert version["PathOnClient"] == source["PathOnClient"]
            assert version["Title"] == source["Title"]
            assert version["FirstPublishLocationId"] == case_id
            body = raw.get(f"sobjects/ContentVersion/{version['Id']}/VersionData")
            assert body.status_code == 200
            assert body.content == base64.b64decode(source["VersionData"])
    documents = len(_rows(st_project, "SELECT Id FROM ContentDocument"))
    assert documents == len(files)

    again = load(st_project)
    assert again.status == "completed"
    assert _part(again)["created"] == 0
    assert _part(again)["unchanged"] == len(files)
    assert len(_rows(st_project, "SELECT Id FROM ContentDocument")) == documents
    assert len(_rows(st_project, "SELECT Id FROM ContentVersion")) == documents


def test_rollback_deletes_the_documents_with_their_versions_and_links(st_project):
    load(st_project)
    documents = [r["dest_id"] for r in st_project.query("SELECT dest_id FROM crosswalk WHERE part = 'attachment'")]
    assert documents

    runs = rollback(st_project, all_runs=True)
    assert all(r.status == "rolled_back" for r in runs), [r.warnings for r in runs]
    deleted = sum(o["deleted"] for r in runs for o in r.to_json()["objects"] if o["source_object"] == FILES)
    assert deleted >= len(documents)
    assert _rows(st_project, "SELECT Id FROM ContentDocument") == []
    assert _rows(st_project, "SELECT Id FROM ContentVersion") == []
    assert _rows(st_project, "SELECT Id FROM ContentDocumentLink") == []
    assert not st_project.query("SELECT * FROM xref WHERE target_entity = 'ContentVersion'")

    again = load(st_project)  # a fresh load after rollback uploads everything again
    assert _part(again)["created"] == len(documents)


def test_a_file_over_the_rest_limit_fails_alone_and_is_not_sent(st_project, monkeypatch):
    monkeypatch.setattr(sf_payloads, "FILE_MAX_BYTES", 4096)
    files = _live_files(st_project)
    big_id = sorted(files)[0]
    big = dict(files[big_id], PathOnClient="site-survey.pdf", VersionData=base64.b64encode(b"%PDF" * 2048).decode())
    _restage(st_project, big_id, big)

    result = load(st_project)
    assert result.status == "completed_with_failures"
    part = _part(result)
    assert part["failed"] == 1
    assert part["created"] == len(files) - 1
    failure = next(f for f in result.failures if f["part"] == "attachment")
    assert failure["source_id"] == big_id
    assert failure["code"] == "FILE_TOO_LARGE"
    for words in ("site-survey.pdf", "not sent", "8,192 bytes", "4,096 bytes"):
        assert words in failure["message"], failure
    assert _rows(st_project, "SELECT Id FROM ContentVersion WHERE PathOnClient = 'site-survey.pdf'") == []
    assert len(_rows(st_project, "SELECT Id FROM ContentDocument")) == len(files) - 1
    assert _part(result, "file")["created"] == len(files)  # its timeline Task still loads


def test_an_upload_whose_key_was_lost_in_a_crash_is_found_again_not_duplicated(st_project, monkeypatch):
    files = _live_files(st_project)

    def crash(self, part, versions, outcomes):
        raise DestinationError("connection lost after the uploads", status=None)

    with monkeypatch.context() as patch:
        patch.setattr(load_salesforce._SfRunner, "_key_files", crash)
        with pytest.raises(DestinationError):
            load(st_project)
    assert len(_rows(st_project, "SELECT Id FROM ContentVersion")) == len(files)  # uploaded, unkeyed
    assert st_project.query("SELECT COUNT(*) AS n FROM crosswalk WHERE action = 'pending'")[0]["n"] == len(files)

    resumed = load(st_project)
    assert resumed.status == "completed", resumed.failures[:3]
    assert _part(resumed)["created"] == len(files)
    versions = _rows(st_project, "SELECT Id, Source_System_ID__c FROM ContentVersion")
    assert len(versions) == len(files), "no file uploaded twice"
    assert all(v["Source_System_ID__c"] for v in versions)

    rollback(st_project, all_runs=True)
    assert _rows(st_project, "SELECT Id FROM ContentDocument") == []
    assert _rows(st_project, "SELECT Id FROM ContentVersion") == []


def test_files_above_the_json_cap_go_multipart_with_their_bytes_intact(st_project, monkeypatch):
    from crmmigrator_gui.engine.target import salesforce as sf_module

    monkeypatch.setattr(sf_module, "FILE_JSON_MAX", 8)  # every body is "large": multipart/form-data
    files = _live_files(st_project)
    result = load(st_project)
    assert _part(result)["created"] == len(files), result.failures[:3]
    with org(st_project) as (client, raw):
        for version in client.query("SELECT Id, Source_System_ID__c FROM ContentVersion"):
            source_id = version["Source_System_ID__c"].split("-")[2]
            body = raw.get(f"sobjects/ContentVersion/{version['Id']}/VersionData")
            assert body.content == base64.b64decode(files[source_id]["VersionData"])
