"""Engine fixtures: a project loaded from a generated OctopusPro export, on the embedded sandbox."""

from __future__ import annotations

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox


def confirmed_project(tmp_path, target: str = "dynamics365", *, records: int = 300, seed: int = 3) -> Project:
    """A confirmed OctopusPro project over a generated export, its field workers provisioned as users in the
    embedded sandbox of ``target`` (Salesforce with the audit-fields permission on)."""
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
    return project


@pytest.fixture
def mapped_project(tmp_path, monkeypatch):
    """A confirmed project over a ~300-record export; field-worker users provisioned in the sandbox."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path)
    yield project
    project.close()


def open_sandbox(project: Project) -> DataverseSandbox:
    return DataverseSandbox(embedded_sandbox_path(project))
