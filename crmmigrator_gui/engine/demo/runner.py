"""``crmmigrator demo``: generate a realistic export and run every step into the embedded sandbox.

The same engine calls as the CLI and the wizard, in order: new → import → automap → accept →
load (the sandbox's schema is provisioned through the metadata API) → report. The generated
field workers' e-mails are provisioned as sandbox users first, as an admin would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.progress import ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import configure, embedded_sandbox_path


def run_demo(
    folder: Path,
    *,
    records: int = 2000,
    progress: ProgressCallback = no_progress,
    edition: str = "enterprise",
    faults: str | None = None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    export = generate_export(folder / "export", records=records)
    project = Project.create(folder / "demo.cmproj", source="octopuspro", target="dynamics365", edition=edition)
    from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

    sandbox = DataverseSandbox(embedded_sandbox_path(project))
    try:
        for fullname, email in export.users:
            sandbox.add_user(fullname, email)
    finally:
        sandbox.close()
    if faults:
        configure(
            project,
            "target",
            url=None,
            auth="sandbox",
            tenant=None,
            client_id=None,
            token_url=None,
            username=None,
            secret=None,
            faults=faults,
        )
    import_paths(project, export.files, progress=progress)
    run_automap(project)
    accept(project, actor="demo")
    result = load(project, progress=progress, actor="demo").to_json()
    result["project"] = str(project.path)
    result["sandbox"] = str(embedded_sandbox_path(project))
    result["report"] = build_report(project)["totals"]
    project.close()
    return result
