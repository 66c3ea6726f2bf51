"""Engine fixtures: a project loaded from a generated OctopusPro export, on the embedded sandbox.

The full load refuses without a sign-off valid for the current map. Engine unit tests get one recorded
directly (``record_signoff``) after confirmation: the honest path (sample → read back → sign-off) is
exercised in test_sample.py and end to end in the CLI tests. A test that changes the map after the fixture
and then loads must record a fresh sign-off itself (the old one no longer matches the map).
"""

from __future__ import annotations

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

SIGNOFF_BY = "test fixture"
SIGNOFF_NOTE = "unit test: the sample is exercised in test_sample.py"


def sign_off_for_tests(project: Project) -> dict:
    """A sign-off for the current map, recorded directly (no sample run): call again after changing the map."""
    return record_signoff(project, SIGNOFF_BY, note=SIGNOFF_NOTE)


def confirmed_project(
    tmp_path, target: str = "dynamics365", *, records: int = 300, seed: int = 3, signed_off: bool = True
) -> Project:
    """A confirmed OctopusPro project over a generated export, its field workers provisioned as users in the
    embedded sandbox of ``target`` (Salesforce with the audit-fields permission on), signed off for its map
    unless ``signed_off`` is False (tests of the gate itself)."""
    export = generate_export(tmp_path / "export", records=records, seed=seed)
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target=target)
    if target == "salesforce":
        org = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
    else:
        org = DataverseSandbox(embedded_sandbox_path(project))
    for name, email in export.users:
        org.add_user(name, email)
    org.close()
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    if signed_off:
        sign_off_for_tests(project)
    return project


@pytest.fixture
def mapped_project(tmp_path, monkeypatch):
    """A confirmed, signed-off project over a ~300-record export; field-worker users provisioned in the sandbox."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path)
    yield project
    project.close()


@pytest.fixture
def unsigned_project(tmp_path, monkeypatch):
    """``mapped_project`` without the sign-off: for tests of the sign-off gate itself."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path, signed_off=False)
    yield project
    project.close()


def open_sandbox(project: Project) -> DataverseSandbox:
    return DataverseSandbox(embedded_sandbox_path(project))
