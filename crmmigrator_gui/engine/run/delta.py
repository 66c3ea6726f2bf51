"""Delta pickup: what changed in the source since the last import, applied as one more run in the ledger.

Detection (:func:`~.delta_detect.detect_delta`) stages the newer data and classifies every record of the objects
it saw as ``new``, ``changed``, ``unchanged`` or ``deleted`` in ``source_changes`` (see :mod:`.delta_detect`).

Applying (:func:`apply_delta`) runs ``load(kind="delta")`` over the new and changed records, with whole
groups of merged parts, any parent not loaded yet (the sample's own unit logic) and every record whose payload
is built from a touched one (a ``derived`` value ``from`` it, an owner ``via`` its rows: a renamed customer's
contact), so it is idempotent and resumable like every load. Deletions are reported, or applied: each
destination record is read in full and snapshotted into the crosswalk (action ``deleted``, ``prior`` = the
snapshot) before it is deleted, so rollback of the delta run re-creates it: on Dataverse with the same primary
id; on Salesforce, which cannot restore an Id over the API, under a new Id that the xref and the earlier
crosswalk rows then follow (see ``sf_deletions.delete_records`` and its rollback). Deltas detected but not
applied yet are applied together by the next apply; deletions an earlier delta only reported are applied by the
next apply with ``deletes="apply"`` (report, review, then apply), unless the record came back at the source.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError, UsageError
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.plan.order import group_id, load_order, role_columns
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor
from crmmigrator_gui.engine.run.delta_detect import CHANGES, DeltaPlan, delta_ids, detect_delta, pending_delta
from crmmigrator_gui.engine.run.results import RunResult

DELETE_MODES = ("report", "apply")
DELETE_BATCH = 100
LISTED_DELETIONS = 1000


@dataclass
class DeltaRunResult(RunResult):
    """A delta run's result: the load's counts plus the delta's classification and deletions."""

    delta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "delta": self.delta}


# ---------------------------------------------------------------------------------------------- applying


def apply_delta(
    project: Project,
    *,
    deletes: str = "report",
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> RunResult:
    """Load every unapplied delta's new and changed records as a run of kind ``delta``, then report or apply
    its deletions. Raises UsageError without a pending delta, BlockedError (exit 3) without a valid sign-off.

    Resumable: a cancelled or interrupted apply continues (the same run) when called again."""
    from crmmigrator_gui.engine.run.load import load

    if deletes not in DELETE_MODES:
        raise UsageError(f"--deletes must be one of {', '.join(DELETE_MODES)} (got {deletes!r})")
    plan = pending_delta(project)
    if plan is None:
        raise UsageError("there is no detected delta to apply: run `crmmigrator delta PROJECT NEWER_EXPORT`")
    cancel = cancel or CancelToken()
    who = actor or current_actor()
    open_ids = [d for d in delta_ids(project) if (project.meta(f"delta:{d}") or {}).get("status") != "applied"]
    subset = delta_subset(project, open_ids)
    marks = ",".join("?" * len(open_ids))
    loaded_run = next(
        (info["run_id"] for d in open_ids if (info := project.meta(f"delta:{d}") or {}).get("loaded")), None
    )
    if loaded_run is None:
        result = load(project, progress=progress, cancel=cancel, actor=who, subset=subset, kind="delta")
        run_id = result.run_id
        with project.step("delta load recorded", {"run_id": run_id, "deltas": open_ids}, actor=who):
            project.db.conn.execute(
                f"UPDATE source_changes SET run_id = ? WHERE delta_id IN ({marks}) AND change IN ('new', 'changed')",
                (run_id, *open_ids),
            )
            for d in open_ids:
                info = project.meta(f"delta:{d}") or {}
                loaded = result.status in ("completed", "completed_with_failures")
                project.set_meta(f"delta:{d}", {**info, "status": "applying", "run_id": run_id, "loaded": loaded})
        if result.status not in ("completed", "completed_with_failures"):
            return _delta_result(project, result, plan, open_ids)
    else:
        run_id = int(loaded_run)
        result = _stored_result(project, run_id)
    if deletes == "apply":
        _apply_deletions(project, run_id, open_ids, progress, cancel, who)
    else:
        with project.step("delta deletions reported", {"run_id": run_id}, actor=who):
            project.db.conn.execute(
                f"UPDATE source_changes SET applied = 'reported', run_id = ? WHERE delta_id IN ({marks}) AND "
                "change = 'deleted' AND applied IS NULL",
                (run_id, *open_ids),
            )
    with project.step("delta applied", {"run_id": run_id, "deltas": open_ids, "deletes": deletes}, actor=who):
        for d in open_ids:
            project.set_meta(f"delta:{d}", {**(project.meta(f"delta:{d}") or {}), "status": "applied"})
    final = _delta_result(project, result, plan, open_ids)
    with project.step("delta summary", {"run_id": run_id}, actor=who):
        project.db.conn.execute("UPDATE runs SET stats = ? WHERE id = ?", (json.dumps(final.to_json()), run_id))
    return final


def delta(
    project: Project,
    paths: list[Path] | None = None,
    *,
    deletes: str = "report",
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> RunResult:
    """Detect, then apply (what ``crmmigrator delta`` runs). A sign-off is checked before anything is staged."""
    from crmmigrator_gui.engine.mapping.maps import assert_confirmed
    from crmmigrator_gui.engine.mapping.signoff import assert_signed_off

    if deletes not in DELETE_MODES:
        raise UsageError(f"--deletes must be one of {', '.join(DELETE_MODES)} (got {deletes!r})")
    assert_confirmed(project)
    assert_signed_off(project)
    detect_delta(project, paths, progress=progress, cancel=cancel)
    return apply_delta(project, deletes=deletes, progress=progress, cancel=cancel, actor=actor)


def delta_subset(project: Project, delta_ids_: list[int]) -> dict[str, list[str]]:
    """Source object -> source ids to load: new and changed records, the whole group of each merged part they
    belong to, every parent not loaded yet (through the sample's units), and the remaining members of a group
    that lost a member to a deletion (the merged record must be rebuilt without it)."""
    from crmmigrator_gui.engine.run.sample import _units

    playbook = load_playbook(project.source, project.target, project.edition)
    marks = ",".join("?" * len(delta_ids_))
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in project.query(
        f"SELECT object, source_id FROM source_changes WHERE delta_id IN ({marks}) AND change IN ('new', 'changed')",
        tuple(delta_ids_),
    ):
        wanted[row["object"]].add(row["source_id"])
    columns = role_columns(project)
    for row in project.query(
        f"SELECT object, old_raw FROM source_changes WHERE delta_id IN ({marks}) AND change = 'deleted'",
        tuple(delta_ids_),
    ):
        for part in _parts_of(playbook, project, row["object"]):
            if part.group_by:
                gid = group_id(part, json.loads(row["old_raw"] or "{}"), columns.get(part.obj, {}))
                wanted[f"@group:{row['object']}"].add(gid)
    objects = list(dict.fromkeys(p.obj for p in load_order(playbook, project.source_object_names())))
    for obj, ids in _dependents(project, playbook, objects, columns, delta_ids_).items():
        wanted[obj] |= ids
    units = {obj: _units(project, playbook, obj, columns) for obj in objects}
    index = {obj: {sid: u for u in us for sid in u.members} for obj, us in units.items()}
    by_uid = {obj: {u.uid: u for u in us} for obj, us in units.items()}
    loaded = {(r["source_object"], r["source_id"]) for r in project.query("SELECT source_object, source_id FROM xref")}
    chosen: dict[str, dict[str, Any]] = defaultdict(dict)
    stack: list[tuple[str, Any]] = []
    for obj, ids in wanted.items():
        if obj.startswith("@group:"):
            real = obj.removeprefix("@group:")
            stack += [(real, by_uid[real][gid]) for gid in ids if gid in by_uid.get(real, {})]
        else:
            stack += [(obj, index[obj][sid]) for sid in ids if sid in index.get(obj, {})]
    while stack:
        obj, unit = stack.pop()
        if unit.uid in chosen[obj]:
            continue
        chosen[obj][unit.uid] = unit
        for parent_obj, parent_sid in unit.parents:
            parent = index.get(parent_obj, {}).get(parent_sid)
            if parent is not None and (parent_obj, parent_sid) not in loaded:
                stack.append((parent_obj, parent))
    return {obj: sorted(sid for u in us.values() for sid in u.members) for obj, us in chosen.items() if us}


def _dependents(
    project: Project, playbook: Playbook, objects: list[str], columns: dict[str, dict[str, str]], delta_ids_: list[int]
) -> dict[str, set[str]]:
    """Staged records whose payload is built from another record the deltas touched: a ``derived`` value
    ``from`` it (a contact's last name is its customer's name; a job's scheduled start is its first
    appointment's) or an owner found ``via`` its rows (a job's assigned technician). Their own rows did not
    change, but a full load would write new values, so the delta must reload them too."""
    marks = ",".join("?" * len(delta_ids_))
    touched: dict[str, set[str]] = defaultdict(set)
    for row in project.query(
        f"SELECT object, source_id FROM source_changes WHERE delta_id IN ({marks}) AND change != 'unchanged'",
        tuple(delta_ids_),
    ):
        touched[row["object"]].add(row["source_id"])
    out: dict[str, set[str]] = defaultdict(set)
    if not touched:
        return out
    for obj in objects:
        cols = columns.get(obj, {})
        tests: list[tuple[str, set[str], bool]] = []  # (this object's column, referenced values, comma list)
        for part in playbook.obj(obj).parts:
            for spec in part.derived.values():
                source = spec.get("from") if isinstance(spec, dict) else None
                if source and touched.get(source["object"]) and cols.get(source["by_role"]):
                    tests.append((cols[source["by_role"]], touched[source["object"]], bool(spec.get("many"))))
            via = (part.owner or {}).get("via")
            if via and touched.get(via["object"]) and cols.get(part.owner["by_role"]):
                keys = _via_keys(project, via, columns.get(via["object"], {}), delta_ids_)
                tests.append((cols[part.owner["by_role"]], keys, False))
        if not tests:
            continue
        for sid, raw in project.iter_staged(obj):
            for column, ids, many in tests:
                value = raw.get(column)
                text = "" if value is None else str(value).strip()
                refs = [v.strip() for v in text.split(",")] if many else [text]
                if any(ref and ref in ids for ref in refs):
                    out[obj].add(sid)
                    break
    return out


def _via_keys(project: Project, via: dict[str, Any], columns: dict[str, str], delta_ids_: list[int]) -> set[str]:
    """The parent keys (``via.key_role``) of the touched child rows, before and after the change."""
    column = columns.get(via["key_role"])
    if column is None:
        return set()
    marks = ",".join("?" * len(delta_ids_))
    keys: set[str] = set()
    for row in project.query(
        f"SELECT c.old_raw, s.raw FROM source_changes c LEFT JOIN staging s ON s.object = c.object AND "
        f"s.source_id = c.source_id WHERE c.delta_id IN ({marks}) AND c.object = ? AND c.change != 'unchanged'",
        (*delta_ids_, via["object"]),
    ):
        for raw in (row["old_raw"], row["raw"]):
            value = json.loads(raw or "{}").get(column)
            if value is not None and str(value).strip():
                keys.add(str(value).strip())
    return keys


def _parts_of(playbook: Playbook, project: Project, obj: str) -> list[Part]:
    return [p for p in load_order(playbook, project.source_object_names()) if p.obj == obj]


def _stored_result(project: Project, run_id: int) -> RunResult:
    from crmmigrator_gui.engine.run.results import summarize

    row = project.query("SELECT status, requests, seconds FROM runs WHERE id = ?", (run_id,))[0]
    result = summarize(project, run_id, kind="delta", status=row["status"])
    result.requests, result.seconds = int(row["requests"]), float(row["seconds"])
    return result


def _delta_result(project: Project, result: RunResult, plan: DeltaPlan, open_ids: list[int]) -> DeltaRunResult:
    """The load's result with the delta's classification and deletions (the first 1000 listed): those of the
    open deltas, and those of earlier deltas (reported then) that this run applied. A reported deletion is
    listed with the destination records it would remove."""
    marks = ",".join("?" * len(open_ids))
    scope = f"(c.delta_id IN ({marks}) OR (c.run_id = ? AND c.change = 'deleted'))"
    params = (*open_ids, result.run_id)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {**dict.fromkeys(CHANGES, 0), "deleted_applied": 0})
    for row in project.query(
        f"SELECT c.object, c.change, COUNT(*) AS n, SUM(c.applied = 'deleted') AS gone FROM source_changes c "
        f"WHERE {scope} GROUP BY c.object, c.change",
        params,
    ):
        counts[row["object"]][row["change"]] += row["n"]
        if row["change"] == "deleted":
            counts[row["object"]]["deleted_applied"] += int(row["gone"] or 0)
    deleted = []
    for row in project.query(
        f"SELECT c.object, c.source_id, c.applied, COALESCE(w.dest_id, x.dest_id) AS dest_id, "
        f"COALESCE(w.target_entity, x.target_entity) AS target_entity FROM source_changes c "
        f"LEFT JOIN crosswalk w ON w.run_id = c.run_id AND w.source_object = c.object AND "
        f"w.source_id = c.source_id AND w.action IN ('deleted', 'delete_failed') "
        f"LEFT JOIN xref x ON w.run_id IS NULL AND x.source_object = c.object AND x.source_id = c.source_id "
        f"WHERE {scope} AND c.change = 'deleted' ORDER BY c.object, c.source_id LIMIT {LISTED_DELETIONS}",
        params,
    ):  # one entry per destination record (a customer deleted as an account and a contact: two)
        deleted.append(
            {"source_object": row["object"], "source_id": row["source_id"], "dest_id": row["dest_id"],
             "target_entity": row["target_entity"], "applied": row["applied"]}
        )  # fmt: skip
    out = DeltaRunResult(
        run_id=result.run_id, kind=result.kind, status=result.status, objects=result.objects,
        requests=result.requests, seconds=result.seconds, warnings=list(result.warnings) + plan.warnings,
        failures=result.failures,
    )  # fmt: skip
    out.delta = {
        "delta_id": plan.delta_id,
        "deltas": open_ids,
        "mode": plan.mode,
        "objects": [{"source_object": obj, **counts[obj]} for obj in sorted(counts)],
        "deleted": deleted,
    }
    return out


# ---------------------------------------------------------------------------------------------- deletions


def _apply_deletions(
    project: Project, run_id: int, open_ids: list[int], progress: ProgressCallback, cancel: CancelToken, actor: str
) -> None:
    """Delete the destination records of deleted source records, children first, each snapshotted first."""
    from crmmigrator_gui.engine.target.connection import destination

    playbook = load_playbook(project.source, project.target, project.edition)
    marks = ",".join("?" * len(open_ids))
    todo = project.query(
        f"SELECT delta_id, object, source_id, old_raw FROM source_changes c WHERE change = 'deleted' AND "
        f"((delta_id IN ({marks}) AND applied IS NULL) OR applied = 'reported') AND NOT EXISTS (SELECT 1 FROM "
        "staging s WHERE s.object = c.object AND s.source_id = c.source_id) ORDER BY delta_id",
        tuple(open_ids),
    )  # deletions reported by an earlier delta too (report, review, then apply), unless the record came back
    if not todo:
        return
    columns = role_columns(project)
    staged_groups: dict[str, set[str]] = {}
    records: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (order, change row, xref row)
    order = {p.name: i for i, p in enumerate(load_order(playbook, project.source_object_names()))}
    for change in todo:
        found = False
        for part in _parts_of(playbook, project, change["object"]):
            record_id = change["source_id"]
            if part.group_by:
                record_id = group_id(part, json.loads(change["old_raw"] or "{}"), columns.get(part.obj, {}))
                if part.obj not in staged_groups:
                    staged_groups[part.obj] = {
                        group_id(part, raw, columns.get(part.obj, {})) for _s, raw in project.iter_staged(part.obj)
                    }
                if record_id in staged_groups[part.obj]:
                    found = True  # other members remain: the load rebuilt the merged record
                    continue
            for xref in project.query(
                "SELECT * FROM xref WHERE source_object = ? AND source_id = ? AND part = ?",
                (part.obj, record_id, part.name),
            ):
                records.append((order.get(part.name, 0), change, xref))
                found = True
        if not found:
            _mark(project, change, "not_loaded", actor)
    records.sort(key=lambda r: -r[0])  # children (later in load order) first
    with destination(project) as client:
        deleter: Any = _delete_dataverse
        if project.target == "salesforce":
            from crmmigrator_gui.engine.run.sf_deletions import delete_records

            deleter = delete_records
        done = 0
        seq = int(project.scalar("SELECT COALESCE(MAX(seq), 0) FROM crosswalk WHERE run_id = ?", (run_id,)) or 0)
        for start in range(0, len(records), DELETE_BATCH):
            chunk = records[start : start + DELETE_BATCH]
            outcomes = deleter(project, client, [x for _o, _c, x in chunk])
            from crmmigrator_gui.engine.run.ledger import server_now

            touched = server_now(client)
            with project.step("delta deletions", {"run_id": run_id, "records": len(chunk)}, actor=actor):
                for (_o, change, xref), (snapshot, error) in zip(chunk, outcomes, strict=True):
                    seq += 1
                    project.db.conn.execute(
                        "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, "
                        "dest_id, action, prior, written, error_code, error_message, at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            run_id, seq, xref["source_object"], xref["part"], xref["source_id"], xref["target_entity"],
                            xref["key"], xref["dest_id"], "deleted" if error is None else "delete_failed",
                            None if snapshot is None else json.dumps(snapshot, default=str, ensure_ascii=False),
                            None, None if error is None else "DELETE_FAILED", error, touched,
                        ),
                    )  # fmt: skip
                    if error is None:
                        project.db.conn.execute(
                            "DELETE FROM xref WHERE target_entity = ? AND key = ?", (xref["target_entity"], xref["key"])
                        )
                    project.db.conn.execute(
                        "UPDATE source_changes SET applied = ?, run_id = ? WHERE delta_id = ? AND object = ? AND "
                        "source_id = ?",
                        ("deleted" if error is None else "delete_failed", run_id, change["delta_id"],
                         change["object"], change["source_id"]),
                    )  # fmt: skip
            done += len(chunk)
            progress(ProgressEvent("delta", "deletions", done, len(records)))
            cancel.raise_if_cancelled()


def _mark(project: Project, change: dict[str, Any], applied: str, actor: str) -> None:
    with project.step("delta deletion", {"object": change["object"], "source_id": change["source_id"],
                                         "applied": applied}, actor=actor):  # fmt: skip
        project.db.conn.execute(
            "UPDATE source_changes SET applied = ? WHERE delta_id = ? AND object = ? AND source_id = ?",
            (applied, change["delta_id"], change["object"], change["source_id"]),
        )


def snapshot_dataverse(client: Any, meta: Any, record: dict[str, Any]) -> dict[str, Any]:
    """What re-creates ``record`` as it is: every column valid for create that holds a value (lookups as
    ``nav@odata.bind``), the primary id, its creation time (as ``overriddencreatedon``) and its state
    (``statecode``/``statuscode``, set after create)."""
    snapshot: dict[str, Any] = {meta.primary_id: record[meta.primary_id]}
    navs = {column: (target, nav) for (column, target), nav in meta.navigation.items()}
    for name, attr in meta.attributes.items():
        if name in ("statecode", "statuscode"):
            continue
        if attr.type in ("Lookup", "Customer", "Owner"):
            value = record.get(f"_{name}_value")
            if not value or not attr.valid_create:
                continue
            target = record.get(f"_{name}_value@Microsoft.Dynamics.CRM.lookuplogicalname")
            options = [(t, n) for (c, t), n in meta.navigation.items() if c == name and (target is None or t == target)]
            if not options and name in navs:
                options = [navs[name]]
            if options:
                target_name, nav = options[0]
                snapshot[f"{nav}@odata.bind"] = f"/{client.entity(target_name).entity_set}({value})"
            continue
        if not attr.valid_create or name == meta.primary_id or name not in record or record[name] is None:
            continue
        snapshot[name] = record[name]
    created = meta.attributes.get("overriddencreatedon")
    if created is not None and created.valid_create and record.get("createdon"):
        snapshot["overriddencreatedon"] = record["createdon"]  # the re-created record keeps its creation time
    for name in ("statecode", "statuscode"):
        if name in meta.attributes and record.get(name) is not None:
            snapshot[name] = record[name]
    return snapshot


def _delete_dataverse(
    project: Project, client: Any, xrefs: list[dict[str, Any]]
) -> list[tuple[dict[str, Any] | None, str | None]]:
    """(snapshot, error) per record: read in full, then one ``$batch`` of DELETEs (continue on error)."""
    from crmmigrator_gui.engine.target.batch import BatchOp

    snapshots: list[dict[str, Any] | None] = []
    ops = []
    owners: list[int | None] = []
    for xref in xrefs:
        meta = client.entity(xref["target_entity"])
        response = client.send(
            "GET", f"{meta.entity_set}({xref['dest_id']})", headers={"Prefer": 'odata.include-annotations="*"'}
        )
        if response.status_code == 404:
            snapshots.append(None)
            owners.append(None)  # already gone at the destination: nothing to delete or restore
            continue
        if response.status_code >= 400:
            raise DestinationError(f"reading {xref['target_entity']} {xref['dest_id']} before deleting it failed "
                                   f"({response.status_code})")  # fmt: skip
        snapshots.append(snapshot_dataverse(client, meta, response.json()))
        owners.append(len(ops))
        ops.append(BatchOp("DELETE", client.path(f"{meta.entity_set}({xref['dest_id']})")))
    results = client.batch(ops, continue_on_error=True) if ops else []
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for snapshot, index in zip(snapshots, owners, strict=True):
        if index is None:
            out.append((None, None))
            continue
        result = results[index]
        out.append((snapshot, None if result.ok or result.status == 404 else result.error[1]))
    return out
