"""The load run and its rollback for a Salesforce destination.

Same contract as the Dataverse run (:mod:`.load`), and the same bookkeeping — the runner subclasses
``_Runner``, so run rows, the pending-intent log, the crosswalk/xref commit after every batch, per-source
record counting (:func:`~.results.summarize`), resume and cancel are shared. Per batch of one part:

1. build records (:class:`~crmmigrator_gui.engine.plan.sf_payloads.SfPayloadBuilder`), parents referenced
   by external id;
2. read what exists by ``Source_System_ID__c`` (``find_by_external_ids``) to tell new from changed from
   unchanged and to snapshot the prior values of the fields about to change (exact rollback);
3. log pending intents for the new rows, then upsert by external id only the new and the changed rows —
   sObject Collections (200 per call) for parts below the client's ``bulk_threshold`` rows, one Bulk API
   2.0 job per batch from it; ``created`` comes from Salesforce's answer; per-record failures keep
   Salesforce's errorCode with a plain-language explanation;
4. commit. Audit fields (``CreatedDate``) go only with inserts.

After all parts, playbook ``links`` (lookups that may point forward within the load, e.g. a branch
Account's ``ParentId``) are set by Id in a second pass and journaled as ``linked``.

Rollback restores the prior values of updated rows (``update_collection``) and deletes created rows in
reverse creation order (children first: Collections, or Bulk ``delete`` for big sets); a record that is
already gone (``ENTITY_IS_DELETED`` / ``NOT_FOUND``) counts as done; each chunk is committed, so an
interrupted rollback resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError
from crmmigrator_gui.engine.mapping.maps import assert_confirmed
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.plan import sf_schema
from crmmigrator_gui.engine.plan.sf_payloads import BuildError, SfPayload, SfPayloadBuilder, Skip, diff
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.run.load import BATCH_SIZE, Outcome, _Batch, _Runner
from crmmigrator_gui.engine.run.results import RunResult, explain, summarize
from crmmigrator_gui.engine.target.connection import is_sandbox, open_destination
from crmmigrator_gui.engine.target.salesforce import RecordResult, SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import soql_string

BULK_BATCH = 10_000  # rows per Bulk 2.0 job (Salesforce's internal batch size)
GONE = ("ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_ID_FIELD")
ROLLBACK_BATCH = 200


def load(
    project: Project,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    batch_size: int = BATCH_SIZE,
    actor: str | None = None,
) -> RunResult:
    """Run (or resume) the full load into Salesforce. Raises BlockedError while the map is unconfirmed."""
    assert_confirmed(project)
    playbook = load_playbook(project.source, project.target, project.edition)
    client, sandbox = open_destination(project)
    try:
        ensure_schema(project, playbook, client, progress)
        return _SfRunner(
            project, playbook, client, progress, cancel or CancelToken(), batch_size, actor or current_actor()
        ).run()
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()


def ensure_schema(
    project: Project, playbook: Playbook, client: SalesforceClient, progress: ProgressCallback = no_progress
) -> None:
    """Stop (exit 3) when the org lacks the schema — except on the embedded sandbox, which we provision."""
    items = sf_schema.manifest(project, playbook)
    absent = sf_schema.missing(client, items)
    if not absent:
        return
    if not is_sandbox(project):
        names = ", ".join(sorted({f"{i.entity}.{i.name}" for i in absent})[:6])
        raise BlockedError(
            f"the Salesforce org lacks {len(absent)} schema item(s) ({names}…); "
            "run `crmmigrator schema PROJECT apply` (or give the manifest to the admin)"
        )
    created = sf_schema.apply(client, items, progress=progress)
    with project.step("schema apply (sandbox)", {"created": [i.to_json() for i in created]}):
        pass


class _SfRunner(_Runner):
    """``_Runner`` with Salesforce reads and writes; run/crosswalk/xref bookkeeping is inherited."""

    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: SalesforceClient,
        progress: ProgressCallback,
        cancel: CancelToken,
        batch_size: int,
        actor: str,
    ) -> None:
        self.project = project
        self.playbook = playbook
        self.client = client  # type: ignore[assignment]
        self.sf = client
        self.progress = progress
        self.cancel = cancel
        self.batch_size = batch_size
        self.actor = actor
        self.start = time.monotonic()
        self.requests_at_start = client.requests
        self.xref = {(r["target_entity"], r["key"]): r["dest_id"] for r in project.query("SELECT * FROM xref")}
        running_user = str(client.user_info()["user_id"])
        self.builder = SfPayloadBuilder(project, playbook, client, self.xref, running_user)  # type: ignore[assignment]
        self.sfb = self.builder  # typed alias
        self.seq = 0
        self.warnings: list[str] = []

    def _target_url(self) -> str:
        return self.sf.instance_url

    def _finish(self, status: str) -> RunResult:
        for warning in self.sfb.run_warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
        return super()._finish(status)

    # ------------------------------------------------------------------ owners
    def _match_users(self) -> None:
        """Field workers → active Users by e-mail (``WHERE Email IN (…)``); unmatched → the running user."""
        for obj in self.playbook.objects:
            if not obj.match_user or obj.name not in self.project.source_object_names():
                continue
            rows = list(self.project.iter_staged(obj.name))
            emails: dict[str, str] = {}
            for source_id, raw in rows:
                email = self.builder.role_value(obj.name, obj.match_user["role"], raw)
                if email:
                    emails[source_id] = email.lower()
            users = self._users_by_email(sorted(set(emails.values())))
            unmatched = []
            for source_id, raw in rows:
                user_id = users.get(emails.get(source_id, ""))
                name = (self.builder.role_value(obj.name, "name", raw) or "").lower()
                if not name:
                    parts = (self.builder.role_value(obj.name, r, raw) for r in ("first_name", "last_name"))
                    name = " ".join(" ".join(p for p in parts if p).split()).lower()
                if user_id:
                    self.builder.user_by_worker_id[source_id] = user_id
                    if name:
                        self.builder.user_by_worker_name[name] = user_id
                else:
                    unmatched.append(name or source_id)
            if unmatched:
                self.warnings.append(
                    f"{len(unmatched)} field worker(s) have no active user with their e-mail; "
                    f"their records are owned by the migration user: {', '.join(unmatched[:10])}"
                )

    def _users_by_email(self, emails: list[str]) -> dict[str, str]:
        """lower-cased e-mail -> Id of an active User (Email is not unique: the first active match wins)."""
        found: dict[str, str] = {}
        for start in range(0, len(emails), 100):
            chunk = emails[start : start + 100]
            if not chunk:
                continue
            soql = (
                "SELECT Id, Email, IsActive FROM User WHERE Email IN ("
                + ", ".join(soql_string(e) for e in chunk)
                + ") ORDER BY CreatedDate"
            )
            for user in self.sf.query(soql):
                email = str(user.get("Email") or "").lower()
                if user.get("IsActive") and email and email not in found:
                    found[email] = str(user["Id"])
        return found

    # ------------------------------------------------------------------ parts
    def _load_part(self, part: Part, done_before: dict[tuple[str, str], str], pending_keys: set[str]) -> None:
        meta = self.sf.describe(part.entity)
        records = self._records(part)
        total = sum(len(m) if m else 1 for _sid, _raw, m in records)
        bulk = len(records) >= self.sf.bulk_threshold
        size = max(self.batch_size, BULK_BATCH) if bulk else self.batch_size
        done = 0
        started = time.monotonic()
        batch = _Batch(part, meta)  # type: ignore[arg-type]
        outcomes: dict[str, Outcome] = {}
        members_of: dict[str, list[str]] = {}
        for source_id, raw, members in records:
            members_of[source_id] = [m[0] for m in members] if members else [source_id]
            if (part.name, source_id) in done_before:
                done += len(members_of[source_id])
                continue
            try:
                payload = self.sfb.build(part, source_id, raw, meta, [m[1] for m in members] if members else None)
            except Skip as exc:
                outcomes[source_id] = Outcome("skipped", code=exc.code, message=str(exc))
            except BuildError as exc:
                outcomes[source_id] = Outcome("failed", code=exc.code, message=explain(exc.code, str(exc)))
            else:
                batch.items.append((source_id, payload))  # type: ignore[arg-type]
            if len(batch.items) + len(outcomes) >= size:
                done += self._sf_flush(batch, outcomes, members_of, pending_keys, bulk)
                self._report(part, done, total, started)
                batch, outcomes = _Batch(part, meta), {}  # type: ignore[arg-type]
                self.cancel.raise_if_cancelled()
        done += self._sf_flush(batch, outcomes, members_of, pending_keys, bulk)
        self._report(part, done, total, started)
        self.cancel.raise_if_cancelled()

    def _sf_flush(
        self,
        batch: _Batch,
        outcomes: dict[str, Outcome],
        members_of: dict[str, list[str]],
        pending_keys: set[str],
        bulk: bool,
    ) -> int:
        part, meta = batch.part, batch.meta
        key_column = self.playbook.key_column
        items: list[tuple[str, SfPayload]] = batch.items  # type: ignore[assignment]
        if items:
            fields = sorted({name for _sid, p in items for name in p.query_fields()})
            existing = self.sf.find_by_external_ids(part.entity, key_column, [p.key for _sid, p in items], fields)
            creates: list[tuple[str, SfPayload]] = []
            updates: list[tuple[str, SfPayload, dict[str, Any], dict[str, Any], str]] = []
            for source_id, payload in items:
                row = existing.get(payload.key)
                if row is None:
                    creates.append((source_id, payload))
                    continue
                dest_id = str(row["Id"])
                if payload.key in pending_keys:  # written before a crash, never committed
                    outcomes[source_id] = Outcome("created", dest_id, written=payload.record(key_column, insert=True))
                    continue
                changes, prior = diff(meta, payload, row, key_column)  # type: ignore[arg-type]
                if changes:
                    updates.append((source_id, payload, changes, prior, dest_id))
                else:
                    outcomes[source_id] = Outcome("unchanged", dest_id)
            if creates:
                self._record_pending(part, creates)  # type: ignore[arg-type]
                records = [p.record(key_column, insert=True) for _sid, p in creates]
                for (sid, _p), record, result in zip(creates, records, self._upsert(part, records, bulk), strict=True):
                    if result.ok:
                        action = "created" if result.created is not False else "updated"
                        outcomes[sid] = Outcome(
                            action, result.id, prior={} if action == "updated" else None, written=record
                        )
                    else:
                        outcomes[sid] = _failed(result)
            if updates:
                records = [{**changes, key_column: p.key} for _sid, p, changes, _prior, _dest in updates]
                for (sid, _p, changes, prior, dest), result in zip(
                    updates, self._upsert(part, records, bulk), strict=True
                ):
                    if result.ok:
                        outcomes[sid] = Outcome("updated", result.id or dest, prior=prior, written=changes)
                    else:
                        outcomes[sid] = _failed(result)
        self._commit(part, outcomes, batch)
        return sum(len(members_of.get(sid, [sid])) for sid in outcomes)

    def _upsert(self, part: Part, records: list[dict[str, Any]], bulk: bool) -> list[RecordResult]:
        if bulk:
            return self.sf.bulk_upsert(part.entity, self.playbook.key_column, records)
        return self.sf.upsert_collection(part.entity, self.playbook.key_column, records)

    def _link(self, part: Part, link: dict[str, Any]) -> None:
        """Second pass for lookups between records of the same load that may point forward (a branch
        Account's ``ParentId`` → its head office listed later): set by Id once both exist, only where the
        current value differs, journaled as ``linked`` with the prior value (rollback restores it)."""
        target = self.playbook.part(link["to"])
        column = link["column"]
        wanted: dict[str, tuple[str, str, str]] = {}
        for sid, raw in self.project.iter_staged(part.obj):
            value = self.builder.role_value(part.obj, link["by_role"], raw)
            key = self.builder.key(part, sid)
            here = self.xref.get((part.entity, key))
            there = self.xref.get((target.entity, self.builder.key(target, value))) if value else None
            if here and there and here != there:
                wanted[key] = (sid, here, there)
        keys = list(wanted)
        for start in range(0, len(keys), ROLLBACK_BATCH):
            chunk = keys[start : start + ROLLBACK_BATCH]
            existing = self.sf.find_by_external_ids(part.entity, self.playbook.key_column, chunk, [column])
            todo = []
            for key in chunk:
                sid, here, there = wanted[key]
                current = (existing.get(key) or {}).get(column) or None
                if current is None or current[:15] != there[:15]:
                    todo.append((key, sid, here, there, current))
            if not todo:
                continue
            results = self.sf.update_collection(
                [{"Id": here, column: there} for _k, _s, here, there, _c in todo], sobject=part.entity
            )
            with self.project.transaction():
                for (key, sid, here, there, current), result in zip(todo, results, strict=True):
                    if not result.ok:
                        self.warnings.append(f"{part.qualified} {sid}: {column} not set ({result.message})")
                    self.seq += 1
                    self.project.db.conn.execute(
                        "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, "
                        "dest_id, action, prior, written, error_code, error_message, at) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            self.run_id,
                            self.seq,
                            part.obj,
                            f"{part.name}:link",
                            sid,
                            part.entity,
                            key,
                            here,
                            "linked" if result.ok else "link_failed",
                            json.dumps({column: current}),
                            json.dumps({column: there}),
                            None if result.ok else (result.codes[0] if result.codes else "UNKNOWN_EXCEPTION"),
                            None if result.ok else result.message,
                            now_iso(),
                        ),
                    )
            self.cancel.raise_if_cancelled()


def _failed(result: RecordResult) -> Outcome:
    code = result.codes[0] if result.codes else "UNKNOWN_EXCEPTION"
    return Outcome("failed", code=code, message=explain(code, result.message))


# ---------------------------------------------------------------------------------------------- rollback


def rollback(
    project: Project,
    *,
    run_id: int | None = None,
    all_runs: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> list[RunResult]:
    from crmmigrator_gui.engine.run.rollback import runs_to_roll_back

    cancel = cancel or CancelToken()
    who = actor or current_actor()
    client, sandbox = open_destination(project)
    results = []
    try:
        for rid in runs_to_roll_back(project, run_id, all_runs):
            results.append(_rollback_run(project, client, rid, progress, cancel, who))  # type: ignore[arg-type]
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()
    return results


def _runs_of(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of one object, at most ``size`` each (keeps reverse creation order)."""
    chunk: list[dict[str, Any]] = []
    for row in rows:
        if chunk and (len(chunk) >= size or row["target_entity"] != chunk[-1]["target_entity"]):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def _rollback_run(
    project: Project,
    client: SalesforceClient,
    run_id: int,
    progress: ProgressCallback,
    cancel: CancelToken,
    actor: str,
) -> RunResult:
    start = time.monotonic()
    requests_before = client.requests
    key_column = load_playbook(project.source, project.target, project.edition).key_column
    with project.step("rollback start", {"run_id": run_id}, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = 'rolling_back' WHERE id = ?", (run_id,))
    rows = project.query(
        "SELECT id, target_entity, key, dest_id, action, prior FROM crosswalk WHERE run_id = ? AND rolled_back_at "
        "IS NULL AND action IN ('updated', 'linked', 'created', 'pending') ORDER BY seq DESC",
        (run_id,),
    )
    updates = [r for r in rows if r["action"] in ("updated", "linked")]  # linked: restore the prior lookup
    creates = [r for r in rows if r["action"] in ("created", "pending")]
    total, done = len(rows), 0
    problems: list[str] = []
    for chunk in _runs_of(updates, ROLLBACK_BATCH):
        records = [{"Id": r["dest_id"], **json.loads(r["prior"] or "{}")} for r in chunk]
        todo = [(r, rec) for r, rec in zip(chunk, records, strict=True) if len(rec) > 1 and r["dest_id"]]
        results = client.update_collection([rec for _r, rec in todo], sobject=chunk[0]["target_entity"]) if todo else []
        outcome = {r["id"]: res for (r, _rec), res in zip(todo, results, strict=True)}
        _settle(project, chunk, outcome, problems, delete=False)
        done += len(chunk)
        progress(ProgressEvent("rollback", f"run {run_id}", done, total))
        cancel.raise_if_cancelled()
    bulk_size = max(client.bulk_threshold, ROLLBACK_BATCH)
    for group in _runs_of(creates, bulk_size):
        entity = group[0]["target_entity"]
        missing_ids = [r["key"] for r in group if not r["dest_id"]]
        found = client.find_by_external_ids(entity, key_column, missing_ids, []) if missing_ids else {}
        ids = {r["id"]: r["dest_id"] or (found.get(r["key"]) or {}).get("Id") for r in group}
        bulk = len(group) >= client.bulk_threshold
        for chunk in [group] if bulk else _runs_of(group, ROLLBACK_BATCH):
            todo = [r for r in chunk if ids[r["id"]]]
            wanted = [str(ids[r["id"]]) for r in todo]
            if not wanted:
                results = []
            elif bulk:
                results = client.bulk_delete(entity, wanted)
            else:
                results = client.delete_collection(wanted)
            outcome = {r["id"]: res for r, res in zip(todo, results, strict=True)}
            _settle(project, chunk, outcome, problems, delete=True)
            done += len(chunk)
            progress(ProgressEvent("rollback", f"run {run_id}", done, total))
            cancel.raise_if_cancelled()
    status = "rolled_back" if not problems else "rollback_incomplete"
    result = summarize(project, run_id, kind="rollback", status=status)
    deleted = {
        row["source_object"]: row["n"]
        for row in project.query(
            "SELECT source_object, COUNT(*) AS n FROM crosswalk WHERE run_id = ? AND action = 'created' AND "
            "rolled_back_at IS NOT NULL GROUP BY source_object",
            (run_id,),
        )
    }
    for obj in result.objects:
        obj["deleted"] = deleted.get(obj["source_object"], 0)
    result.requests = client.requests - requests_before
    result.seconds = round(time.monotonic() - start, 3)
    result.warnings = problems[:50]
    with project.step(f"rollback {status}", {"run_id": run_id, "problems": len(problems)}, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
    return result


def _settle(
    project: Project,
    chunk: list[dict[str, Any]],
    outcome: dict[int, RecordResult],
    problems: list[str],
    *,
    delete: bool,
) -> None:
    """Mark rows rolled back (a record already gone counts as done); keep the others for the next attempt."""
    with project.transaction():
        for row in chunk:
            result = outcome.get(row["id"])
            if result is not None and not result.ok and not any(c in GONE for c in result.codes):
                problems.append(f"{row['target_entity']} {row['key']}: {result.message}")
                continue
            project.db.conn.execute("UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (now_iso(), row["id"]))
            if delete:
                project.db.conn.execute(
                    "DELETE FROM xref WHERE target_entity = ? AND key = ?", (row["target_entity"], row["key"])
                )


__all__ = ["ensure_schema", "load", "rollback"]
