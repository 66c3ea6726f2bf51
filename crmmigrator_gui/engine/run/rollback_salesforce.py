"""The rollback of a Salesforce run (see :mod:`~.rollback` for the contract both destinations share).

Rollback restores the prior values of updated rows (``update_collection``) and deletes created rows in
reverse creation order (children first: Collections, or Bulk ``delete`` for big sets); a record that is
already gone (``ENTITY_IS_DELETED`` / ``NOT_FOUND``) counts as done; each chunk is committed, so an
interrupted rollback resumes. Files go first (they are never parents) and are deleted through their
ContentDocument (which removes its versions and links; ContentVersion cannot be deleted in an org); a
version still listed under a deleted document afterwards (the emulator keeps them) is deleted explicitly.

A delta run's deletions are re-created first, under new Ids (:mod:`.sf_deletions`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan.sf_payloads import same
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.run import rollback as rb
from crmmigrator_gui.engine.run.ledger import server_now
from crmmigrator_gui.engine.run.load_salesforce import (
    FILE_OBJECT,
    ROLLBACK_BATCH,
    _documents_of,
    _file_parts,
    _unkeyed_versions,
)
from crmmigrator_gui.engine.run.results import RunResult
from crmmigrator_gui.engine.run.sf_deletions import GONE, _recreate, _recreated_warnings, _runs_of
from crmmigrator_gui.engine.target.salesforce import RecordResult, SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import in_chunks, soql_string


def _rollback_run(
    project: Project,
    client: SalesforceClient,
    run_id: int,
    progress: ProgressCallback,
    cancel: CancelToken,
    actor: str,
    *,
    force: bool = False,
) -> RunResult:
    """Files, then restores (updates and links), then deletes; records changed in the org after the run
    are refused unless ``force`` (see :mod:`~.rollback`)."""
    started = time.monotonic()
    requests_before = client.requests
    playbook = load_playbook(project.source, project.target, project.edition)
    key_column = playbook.key_column
    file_parts = _file_parts(playbook)
    rb.start(project, run_id, actor, force)
    touches = rb.Touches(project, server_now(client))
    rows = project.query(
        "SELECT id, source_object, part, source_id, target_entity, key, dest_id, action, prior, written FROM "
        "crosswalk WHERE run_id = ? AND rolled_back_at IS NULL AND action IN ('updated', 'linked', 'created', "
        "'pending', 'pending_update', 'deleted') ORDER BY seq DESC",
        (run_id,),
    )
    rows = rb.as_updates(rows)
    problems: list[str] = []
    deletions = [r for r in rows if r["action"] == "deleted"]
    if deletions:  # a delta's applied deletions: re-created first (they came last), parents first
        _recreate(project, client, playbook, deletions, problems, actor)
        progress(ProgressEvent("rollback", f"run {run_id}", len(deletions), len(rows)))
        cancel.raise_if_cancelled()
    rows = [r for r in rows if r["action"] != "deleted"]
    updates = [r for r in rows if r["action"] in ("updated", "linked")]  # linked: restore the prior lookup
    creates = [r for r in rows if r["action"] in ("created", "pending")]
    files = [r for r in creates if (r["source_object"], r["part"]) in file_parts]
    creates = [r for r in creates if (r["source_object"], r["part"]) not in file_parts]
    total, done = len(rows) + len(deletions), len(deletions)
    conflicts: list[rb.Conflict] = []
    forced: list[rb.Conflict] = []

    def screen(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of a chunk to roll back: changed records are refused (or forced)."""
        found = _sf_changed(project, client, touches, key_column, [r for r in chunk if r["dest_id"]])
        keep = []
        for row in chunk:
            conflict = found.get(row["id"])
            if conflict is not None and not force:
                conflicts.append(conflict)
                continue
            if conflict is not None:
                forced.append(conflict)
            keep.append(row)
        return keep

    for chunk in _runs_of(files, ROLLBACK_BATCH):  # files first: they are never parents
        _rollback_files(project, client, key_column, chunk, problems)
        done += len(chunk)
        progress(ProgressEvent("rollback", f"run {run_id}", done, total))
        cancel.raise_if_cancelled()
    for whole in _runs_of(updates, ROLLBACK_BATCH):
        chunk = screen(whole)
        records = [{"Id": r["dest_id"], **json.loads(r["prior"] or "{}")} for r in chunk]
        todo = [(r, rec) for r, rec in zip(chunk, records, strict=True) if len(rec) > 1 and r["dest_id"]]
        results = client.update_collection([rec for _r, rec in todo], sobject=chunk[0]["target_entity"]) if todo else []
        outcome = {r["id"]: res for (r, _rec), res in zip(todo, results, strict=True)}
        _settle(project, chunk, outcome, problems, delete=False, touched=server_now(client))
        done += len(whole)
        progress(ProgressEvent("rollback", f"run {run_id}", done, total))
        cancel.raise_if_cancelled()
    bulk_size = max(client.bulk_threshold, ROLLBACK_BATCH)
    for group in _runs_of(creates, bulk_size):
        entity = group[0]["target_entity"]
        missing_ids = [r["key"] for r in group if not r["dest_id"]]
        found = client.find_by_external_ids(entity, key_column, missing_ids, []) if missing_ids else {}
        for row in group:
            row["dest_id"] = row["dest_id"] or (found.get(row["key"]) or {}).get("Id")
        bulk = len(group) >= client.bulk_threshold
        for chunk in [group] if bulk else _runs_of(group, ROLLBACK_BATCH):
            size = len(chunk)
            chunk = screen(chunk)
            todo = [r for r in chunk if r["dest_id"]]
            wanted = [str(r["dest_id"]) for r in todo]
            if not wanted:
                results = []
            elif bulk:
                results = client.bulk_delete(entity, wanted)
            else:
                results = client.delete_collection(wanted)
            outcome = {r["id"]: res for r, res in zip(todo, results, strict=True)}
            _settle(project, chunk, outcome, problems, delete=True, touched=server_now(client))
            done += size
            progress(ProgressEvent("rollback", f"run {run_id}", done, total))
            cancel.raise_if_cancelled()
    result = rb.finish(
        project,
        client,
        run_id,
        actor=actor,
        started=started,
        requests_before=requests_before,
        problems=problems,
        conflicts=conflicts,
        forced=forced,
    )
    result.warnings = _recreated_warnings(project, run_id) + result.warnings
    return result


def _sf_changed(
    project: Project, client: SalesforceClient, touches: Any, key_column: str, rows: list[dict[str, Any]]
) -> dict[int, Any]:
    """Crosswalk row id -> Conflict for the rows whose record was changed in the org after our last touch:
    one ``SELECT … WHERE Id IN (…)`` per object and URL-sized chunk."""
    if not rows:
        return {}
    history = touches.history(rows)
    out: dict[int, rb.Conflict] = {}
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_entity.setdefault(row["target_entity"], []).append(row)
    for entity, group in by_entity.items():
        meta = client.describe(entity)
        names = {"Id"}
        names.update(n for n in ("LastModifiedDate", "LastModifiedById") if meta.field(n))
        if meta.field("LastModifiedById"):
            names.add("LastModifiedBy.Name")
        for row in group:
            for name, ours in history.get((entity, row["key"]), ({}, None))[0].items():
                f = _written_field(meta, name, ours)
                if f is not None:
                    names.add(f.name)
        prefix = f"SELECT {', '.join(sorted(names))} FROM {meta.name} WHERE Id IN ("
        current: dict[str, dict[str, Any]] = {}
        ids = sorted({str(r["dest_id"]) for r in group})
        for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
            for record in client.query(soql):
                current[str(record["Id"])[:15]] = record
        for row in group:
            record = current.get(str(row["dest_id"])[:15])
            if record is None:
                continue  # already gone: nothing to protect
            expected, touch = history.get((entity, row["key"]), ({}, None))
            differences = {}
            for name, ours in expected.items():
                f = _written_field(meta, name, ours)
                if f is None:
                    continue
                theirs = record.get(f.name)
                if isinstance(ours, dict):  # a parent reference by external id: compare the parent's id
                    want = _parent_ids(project, f, ours, key_column)
                    if want and (not theirs or str(theirs)[:15] not in want):
                        differences[f.name] = (ours.get(key_column), theirs)
                elif f.type == "reference":
                    if (str(ours)[:15] if ours else None) != (str(theirs)[:15] if theirs else None):
                        differences[f.name] = (ours, theirs)
                elif not _sf_equal(ours, theirs):
                    differences[f.name] = (ours, theirs)
            who = (record.get("LastModifiedBy") or {}).get("Name") or record.get("LastModifiedById")
            prior = json.loads(row["prior"] or "{}") if row["action"] in ("updated", "linked") else None
            restored = prior is not None and all(
                name in prior and _same_id_or_value(prior[name], theirs)
                for name, (_ours, theirs) in differences.items()
            )
            conflict = touches.judge(row, differences, record.get("LastModifiedDate"), who, touch, restored)
            if conflict is not None:
                out[row["id"]] = conflict
    return out


def _written_field(meta: Any, name: str, value: Any) -> Any:
    """The updateable field a written name stands for (a relationship -> its lookup field), or None."""
    f = meta.by_relationship(name) if isinstance(value, dict) else meta.field(name)
    return f if f is not None and f.updateable else None


def _parent_ids(project: Project, f: Any, ref: dict[str, Any], key_column: str) -> set[str]:
    """15-character ids of the parent a reference by external id names (from the xref)."""
    parent_type = (ref.get("attributes") or {}).get("type")
    types = [parent_type] if parent_type else list(f.reference_to)
    marks = ",".join("?" * len(types))
    rows = project.query(
        f"SELECT dest_id FROM xref WHERE key = ? AND target_entity IN ({marks})", (ref.get(key_column), *types)
    )
    return {str(r["dest_id"])[:15] for r in rows}


def _same_id_or_value(prior: Any, theirs: Any) -> bool:
    """A prior value (a lookup's id, or a scalar) against the value read back."""
    if isinstance(prior, str) and isinstance(theirs, str) and len(prior) in (15, 18) and len(theirs) == 18:
        return prior[:15] == theirs[:15]
    return _sf_equal(prior, theirs)


def _sf_equal(ours: Any, theirs: Any) -> bool:
    """Numbers by value (the crosswalk keeps Decimals as text), else the load's own comparison."""
    if isinstance(ours, str) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return bool(rb.numbers_equal(ours, theirs))
    return same(ours, theirs)


def _rollback_files(
    project: Project, client: SalesforceClient, key_column: str, chunk: list[dict[str, Any]], problems: list[str]
) -> None:
    """Delete the ContentDocuments of one chunk of file rows (versions and links go with them)."""
    documents: dict[int, str | None] = {r["id"]: r["dest_id"] for r in chunk}
    unknown = [r for r in chunk if not r["dest_id"]]  # pending: the upload may or may not have happened
    if unknown:
        found = client.find_by_external_ids(
            chunk[0]["target_entity"], key_column, [r["key"] for r in unknown], ["ContentDocumentId"]
        )
        lost = []
        for row in unknown:
            documents[row["id"]] = (found.get(row["key"]) or {}).get("ContentDocumentId")
            if not documents[row["id"]] and row["written"]:
                lost.append(row)
        if lost:  # uploaded, key never written: match parent + name + MD5
            versions = _unkeyed_versions(client, key_column, [json.loads(r["written"]) for r in lost])
            by_version = _documents_of(client, [v for v in versions if v])
            for row, version in zip(lost, versions, strict=True):
                documents[row["id"]] = by_version.get(version) if version else None
    todo = [r for r in chunk if documents[r["id"]]]
    wanted = [str(documents[r["id"]]) for r in todo]
    results = client.delete_collection(wanted) if wanted else []
    outcome = {r["id"]: res for r, res in zip(todo, results, strict=True)}
    deleted = [doc for doc, res in zip(wanted, results, strict=True) if res.ok or any(c in GONE for c in res.codes)]
    _sweep_versions(client, deleted, problems)
    _settle(project, chunk, outcome, problems, delete=True)


def _sweep_versions(client: SalesforceClient, documents: list[str], problems: list[str]) -> None:
    """Versions still listed under deleted documents. An org deletes them with the document (none are found);
    the embedded emulator keeps them, so they are deleted explicitly."""
    if not documents:
        return
    prefix = f"SELECT Id FROM {FILE_OBJECT} WHERE ContentDocumentId IN ("
    left: list[str] = []
    for soql in in_chunks(prefix, [soql_string(d) for d in documents], ")", client.soql_url_budget):
        left += [str(r["Id"]) for r in client.query(soql)]
    for start in range(0, len(left), ROLLBACK_BATCH):
        chunk = left[start : start + ROLLBACK_BATCH]
        for version, result in zip(chunk, client.delete_collection(chunk), strict=True):
            if not result.ok and not any(c in GONE for c in result.codes):
                problems.append(f"{FILE_OBJECT} {version}: {result.message}")


def _settle(
    project: Project,
    chunk: list[dict[str, Any]],
    outcome: dict[int, RecordResult],
    problems: list[str],
    *,
    delete: bool,
    touched: str | None = None,
) -> None:
    """Mark rows rolled back (a record already gone counts as done); keep the others for the next attempt.
    ``touched`` is the server time of the writes (a later rollback must not take them for a change)."""
    with project.transaction():
        for row in chunk:
            result = outcome.get(row["id"])
            if result is not None and not result.ok and not any(c in GONE for c in result.codes):
                problems.append(f"{row['target_entity']} {row['key']}: {result.message}")
                continue
            project.db.conn.execute(
                "UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched or now_iso(), row["id"])
            )
            if delete:
                project.db.conn.execute(
                    "DELETE FROM xref WHERE target_entity = ? AND key = ?", (row["target_entity"], row["key"])
                )
