"""The Map page's background work: each function is one engine call, run on the page's worker thread.

Each takes ``(…, project, progress, cancel)`` (bound with ``functools.partial``) and gets its own
:class:`Project` connection from the worker; none touches a widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps, values, workbook
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import destination

_REQUIRED_LEVELS = ("ApplicationRequired", "SystemRequired")


def automap_operation(project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> tuple[int, int]:
    proposals, unmapped = maps.run_automap(project)
    return len(proposals), len(unmapped)


def required_operation(
    entities: list[str], project: Project, _progress: ProgressCallback, cancel: CancelToken
) -> dict[str, list[str]]:
    """Required columns of each destination entity, from its metadata.

    An entity the destination does not have yet (a custom table created at load) requires its
    primary name column, as the playbook declares it.
    """
    playbook = load_playbook(project.source, project.target, project.edition)
    primary = {t["name"]: t.get("primary") for t in playbook.schema.get("tables", [])}
    found: dict[str, list[str]] = {}
    with destination(project) as client:
        for entity in entities:
            cancel.raise_if_cancelled()
            try:
                if project.target == "salesforce":
                    found[entity] = list(client.describe(entity).required_fields)
                else:
                    attributes = client.entity(entity).attributes.values()
                    found[entity] = [a.name for a in attributes if a.required in _REQUIRED_LEVELS]
            except MigratorError:
                found[entity] = [primary[entity]] if primary.get(entity) else []
    return found


def export_operation(path: Path, project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> dict:
    return workbook.export_review(project, path)


def read_review_operation(path: Path, project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> Any:
    return workbook.read_review(project, path)


def apply_review_operation(
    diff: Any, actor: str | None, project: Project, _progress: ProgressCallback, _cancel: CancelToken
) -> int:
    return workbook.apply_review(project, diff, actor=actor)


def add_option_operation(
    entity: str,
    field: str,
    label: str,
    row_id: int | None,
    actor: str | None,
    project: Project,
    _progress: ProgressCallback,
    _cancel: CancelToken,
) -> dict:
    option = values.add_option(project, entity, field, label, actor=actor)
    if row_id is not None:
        values.set_value(project, row_id, str(option["label"]), actor=actor)
    return option
