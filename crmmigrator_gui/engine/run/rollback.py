"""Rollback of a run: unlink, restore updated rows to their prior values, delete created rows.

Works from the crosswalk alone, so it runs after the app was closed and reopened. Deletes go
in reverse creation order (children before parents). Each batch is committed as it completes,
so an interrupted rollback resumes where it stopped; a record already gone counts as done.
"""

from __future__ import annotations

import json
import time
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.run.results import RunResult, summarize
from crmmigrator_gui.engine.target.batch import BatchOp
from crmmigrator_gui.engine.target.connection import destination
from crmmigrator_gui.engine.target.dataverse import DataverseClient

BATCH = 200


def runs_to_roll_back(project: Project, run_id: int | None, all_runs: bool) -> list[int]:
    live = [
        r["id"]
        for r in project.query(
            "SELECT id FROM runs WHERE status NOT IN ('rolled_back') AND kind != 'rollback' ORDER BY id DESC"
        )
    ]
    if all_runs:
        return live
    if run_id is not None:
        if run_id not in live:
            raise MigratorError(f"run {run_id} does not exist or was already rolled back")
        return [run_id]
    if not live:
        raise MigratorError("there is no run to roll back")
    return live[:1]


def rollback(
    project: Project,
    *,
    run_id: int | None = None,
    all_runs: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> list[RunResult]:
    rollback_run: Any = _rollback_run
    if project.target == "salesforce":
        from crmmigrator_gui.engine.run import load_salesforce

        rollback_run = load_salesforce._rollback_run
    cancel = cancel or CancelToken()
    who = actor or current_actor()
    with destination(project) as client:
        return [
            rollback_run(project, client, rid, progress, cancel, who)
            for rid in runs_to_roll_back(project, run_id, all_runs)
        ]


def _rollback_run(
    project: Project, client: DataverseClient, run_id: int, progress: ProgressCallback, cancel: CancelToken, actor: str
) -> RunResult:
    start = time.monotonic()
    requests_before = client.requests
    with project.step("rollback start", {"run_id": run_id}, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = 'rolling_back' WHERE id = ?", (run_id,))
    rows = project.query(
        "SELECT id, target_entity, key, dest_id, action, prior FROM crosswalk WHERE run_id = ? AND rolled_back_at "
        "IS NULL AND action IN ('linked', 'updated', 'created', 'pending') ORDER BY seq DESC",
        (run_id,),
    )
    links = [r for r in rows if r["action"] == "linked"]
    updates = [r for r in rows if r["action"] == "updated"]
    creates = [r for r in rows if r["action"] in ("created", "pending")]
    total = len(rows)
    done = 0
    problems: list[str] = []
    for group, op_kind in ((links, "restore"), (updates, "restore"), (creates, "delete")):
        for startix in range(0, len(group), BATCH):
            chunk = group[startix : startix + BATCH]
            ops, keep = [], []
            for row in chunk:
                meta = client.entity(row["target_entity"])
                dest = row["dest_id"] or _find(client, project, row)
                if not dest:
                    keep.append((row, None))
                    continue
                if op_kind == "delete":
                    ops.append(BatchOp("DELETE", client.path(f"{meta.entity_set}({dest})")))
                else:
                    prior = json.loads(row["prior"] or "{}")
                    ops.append(BatchOp("PATCH", client.path(f"{meta.entity_set}({dest})"), prior, {"If-Match": "*"}))
                keep.append((row, len(ops) - 1))
            results = client.batch(ops) if ops else []
            with project.transaction():
                for row, index in keep:
                    ok = index is None or results[index].ok or results[index].status == 404
                    if not ok:
                        problems.append(f"{row['target_entity']} {row['key']}: {results[index].error[1]}")
                        continue
                    project.db.conn.execute(
                        "UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (now_iso(), row["id"])
                    )
                    if op_kind == "delete":
                        project.db.conn.execute(
                            "DELETE FROM xref WHERE target_entity = ? AND key = ?", (row["target_entity"], row["key"])
                        )
            done += len(chunk)
            progress(ProgressEvent("rollback", f"run {run_id}", done, total))
            cancel.raise_if_cancelled()
    status = "rolled_back" if not problems else "rollback_incomplete"
    result = summarize(project, run_id, kind="rollback", status=status)
    for obj in result.objects:
        obj["deleted"] = 0
    deleted = {}
    for row in project.query(
        "SELECT source_object, COUNT(*) AS n FROM crosswalk WHERE run_id = ? AND action = 'created' AND "
        "rolled_back_at IS NOT NULL GROUP BY source_object",
        (run_id,),
    ):
        deleted[row["source_object"]] = row["n"]
    for obj in result.objects:
        obj["deleted"] = deleted.get(obj["source_object"], 0)
    result.requests = client.requests - requests_before
    result.seconds = round(time.monotonic() - start, 3)
    result.warnings = problems[:50]
    with project.step(f"rollback {status}", {"run_id": run_id, "problems": len(problems)}, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
    return result


def _find(client: DataverseClient, project: Project, row: dict[str, Any]) -> str | None:
    """A 'pending' create whose id we never learned: look it up by its alternate key."""
    from crmmigrator_gui.engine.mapping.playbook import load_playbook

    playbook = load_playbook(project.source, project.target, project.edition)
    meta = client.entity(row["target_entity"])
    found = client.find_by_keys(meta, playbook.key_column, [row["key"]], [meta.primary_id])
    hit = found.get(row["key"])
    return str(hit[meta.primary_id]) if hit else None
