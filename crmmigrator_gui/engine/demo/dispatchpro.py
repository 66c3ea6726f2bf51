"""Dispatch Pro (ServiceTitan) demo source: a seeded tenant in the project's embedded ServiceTitan emulator.

``prepare_source`` builds the emulator's data file at ``embedded_source_path(project)`` with ``records`` jobs
(every other entity scales with it: reference §7 sizes at 1,000) and returns the technicians an admin would
already have as Dynamics 365 users: about 80% of those with an e-mail address (the rest show the "no matching
user, owned by the migration user" path). The extractor then reads the tenant over HTTP exactly as it would a
real one (``httpx.WSGITransport``), with the emulator's documented sandbox credentials.
"""

from __future__ import annotations

import json

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import embedded_source_path

KIND = "api"  # for the demo runner: this source is extracted over its API


def prepare_source(project: Project, *, records: int = 2000, seed: int = 7) -> list[tuple[str, str]]:
    """Seed the embedded ServiceTitan tenant; returns (full name, e-mail) of ~80% of its technicians."""
    from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox

    if records < 1:
        raise MigratorError("records must be at least 1")
    path = embedded_source_path(project)
    if path.exists():
        raise MigratorError(f"{path}: embedded ServiceTitan data already exists for this project")
    sandbox = ServiceTitanSandbox(path, records=records, seed=seed)
    try:
        rows = sandbox.store.query("SELECT data FROM rows WHERE entity = 'technicians' ORDER BY id", [])
    finally:
        sandbox.close()
    technicians = [json.loads(r[0]) for r in rows]
    with_mail = [t for t in technicians if (t.get("email") or "").strip()]
    wanted = max(1, round(0.8 * len(technicians)))  # the rest show the fallback-owner path
    return [(str(t["name"]).strip(), str(t["email"]).strip().lower()) for t in with_mail[:wanted]]
