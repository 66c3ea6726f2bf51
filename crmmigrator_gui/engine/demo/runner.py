"""``crmmigrator demo``: generate realistic source data and run every step into the embedded sandbox.

The same engine calls as the CLI and the wizard, in order: new → import (file sources) or
extract (API sources, from the project's embedded source emulator) → automap → accept → sample →
sign-off → roll the sample back → load (the sandbox's schema is provisioned through the metadata API) →
report. The full load refuses without a sign-off valid for the current map, so the demo walks the same
gate a consultant does; the sample is rolled back so the full load creates every source record itself.
The source's field workers / technicians are provisioned as destination users first, as an admin would.

Each source has a demo module (``DEMO_MODULES``) exposing either
``KIND = "files"`` + ``generate_export(out_dir, *, records, seed, variant) -> GeneratedExport``, or
``KIND = "api"`` + ``prepare_source(project, *, records, seed) -> list[(fullname, email)]`` (seeds the
embedded source emulator and returns the users the destination should already have).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.progress import ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.run.sample import run_sample, sign_off
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import configure, embedded_sandbox_path

DEMO_MODULES = {
    "octopuspro": "crmmigrator_gui.engine.demo.octopuspro",
    "qdispatch": "crmmigrator_gui.engine.demo.qdispatch",
    "generic": "crmmigrator_gui.engine.demo.generic",
    "dispatchpro": "crmmigrator_gui.engine.demo.dispatchpro",
    "servicetracker": "crmmigrator_gui.engine.demo.servicetracker",
}


def demo_module(source: str) -> Any:
    name = DEMO_MODULES.get(source)
    if name is None:
        raise MigratorError(f"no demo for source {source!r}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise MigratorError(f"the {source} demo arrives in a later release") from exc


def run_demo(
    folder: Path,
    *,
    source: str = "octopuspro",
    target: str = "dynamics365",
    records: int = 2000,
    progress: ProgressCallback = no_progress,
    edition: str = "enterprise",
    faults: str | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    module = demo_module(source)
    folder.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "demo.cmproj", source=source, target=target, edition=edition)
    try:
        if module.KIND == "files":
            export = module.generate_export(folder / "export", records=records, seed=seed)
            users = list(export.users)
        else:
            users = list(module.prepare_source(project, records=records, seed=seed))
        _provision_users(project, users)
        if faults:  # rehearse retries: the embedded sandbox injects 429s/5xx/drops
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
        if module.KIND == "files":
            import_paths(project, export.files, progress=progress)
        else:
            from crmmigrator_gui.engine.source.extract import extract

            extract(project, progress=progress)
        run_automap(project)
        accept(project, actor="demo")
        sample = _sample_and_sign_off(project, progress)
        result = load(project, progress=progress, actor="demo").to_json()
        result["sample"] = sample
        result["project"] = str(project.path)
        result["sandbox"] = str(embedded_sandbox_path(project))
        result["report"] = build_report(project)["totals"]
        return result
    finally:
        project.close()


def _sample_and_sign_off(project: Project, progress: ProgressCallback) -> dict[str, Any]:
    """Run the real sample, sign it off as "demo", then roll it back.

    Why roll back: a kept sample would be adopted by the full load (updated, not created), and the demo's
    promise is that its full load creates every source record. The sign-off stays valid: it is pinned to
    the map, not to the sample's records.
    """
    sample = run_sample(project, progress=progress, actor="demo")
    if sample.summary is None:  # cancelled or failed before the read-back: nothing to sign off
        raise MigratorError(f"the demo's sample run {sample.run.run_id} ended {sample.run.status}")
    sign_off(project, "demo", note="demo: the sample was read back and compared automatically")
    for undone in rollback(project, run_id=sample.run.run_id, progress=progress, actor="demo"):
        if undone.status != "rolled_back":
            raise MigratorError(f"the demo could not roll back its sample run {sample.run.run_id}: {undone.status}")
    records = sum(len(ids) for ids in sample.sample.values())
    return {"run_id": sample.run.run_id, "records": records, "flagged": sample.summary["flagged"]}


def _provision_users(project: Project, users: list[tuple[str, str]]) -> None:
    if project.target == "salesforce":
        from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

        org = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
        try:
            for fullname, email in users:
                org.add_user(fullname, email)
        finally:
            org.close()
        return
    if project.target != "dynamics365":
        return
    from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

    sandbox = DataverseSandbox(embedded_sandbox_path(project))
    try:
        for fullname, email in users:
            sandbox.add_user(fullname, email)
    finally:
        sandbox.close()
