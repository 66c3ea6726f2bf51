"""Engine fixtures: a project loaded from a generated OctopusPro export, on the embedded sandbox."""

from __future__ import annotations

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox


@pytest.fixture
def mapped_project(tmp_path, monkeypatch):
    """A confirmed project over a ~300-record export; field-worker users provisioned in the sandbox."""
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    export = generate_export(tmp_path / "export", records=300, seed=3)
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    sandbox = DataverseSandbox(embedded_sandbox_path(project))
    for name, email in export.users:
        sandbox.add_user(name, email)
    sandbox.close()
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    yield project
    project.close()


def open_sandbox(project: Project) -> DataverseSandbox:
    return DataverseSandbox(embedded_sandbox_path(project))
