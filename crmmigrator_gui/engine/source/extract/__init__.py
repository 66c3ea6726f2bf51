"""API extractors: pull a source platform's records over its API into staging, with delta checkpoints.

Each source with an API has a module here exposing::

    extract(project, *, since: str | None, progress, cancel) -> ExtractResult

It reads the project's source connection (``connection.settings(project, "source")``; with no
connection it talks to the project's embedded source emulator, ``embedded_source_path``), turns
API rows into ``importer.RecordTable`` objects and stages them with ``importer.stage_tables``
(one transaction), and keeps its checkpoint (continuation tokens, high-water marks) in project
meta under ``extract_checkpoint`` inside that same transaction, so a failed extraction changes
nothing and the next one resumes from the last committed checkpoint.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project

EXTRACTORS = {
    "dispatchpro": "crmmigrator_gui.engine.source.extract.servicetitan",
    "servicetracker": "crmmigrator_gui.engine.source.extract.servicetracker",
}


@dataclass
class ExtractResult:
    """The CLI contract's ``extract --json`` shape."""

    objects: list[dict[str, Any]]  # {"source_object","records","new","changed","deleted"}
    requests: int
    checkpoint: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "requests": self.requests, "checkpoint": self.checkpoint,
                "warnings": self.warnings}


def extract(project: Project, *, since: str | None = None, progress: ProgressCallback = no_progress,
            cancel: CancelToken | None = None) -> ExtractResult:
    module_name = EXTRACTORS.get(project.source)
    if module_name is None:
        raise MigratorError(f"{project.source} has no API extractor; import its export files with `import`")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MigratorError(f"the {project.source} extractor arrives in a later release") from exc
    result: ExtractResult = module.extract(project, since=since, progress=progress, cancel=cancel or CancelToken())
    return result
