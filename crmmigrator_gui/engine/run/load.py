"""The load run: dependency-ordered, batched, idempotent by source id, resumable.

For each batch of one part: build payloads; read what already exists at the destination by
alternate key (so we know created vs updated, and can snapshot prior values before any update);
write new rows with CreateMultiple and changed rows with UpdateMultiple (falling back to a
``$batch`` with continue-on-error to isolate bad rows); then commit the crosswalk before the
next batch starts. A crash, cancel or network loss leaves a run that ``load`` resumes.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, CancelledError, DestinationError
from crmmigrator_gui.engine.mapping.maps import assert_confirmed
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.mapping.signoff import assert_signed_off
from crmmigrator_gui.engine.plan import schema
from crmmigrator_gui.engine.plan.order import group_id, load_order
from crmmigrator_gui.engine.plan.payloads import BuildError, Payload, PayloadBuilder, Skip
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.run.results import RunResult, explain, summarize
from crmmigrator_gui.engine.target.batch import BatchOp
from crmmigrator_gui.engine.target.connection import destination, is_sandbox
from crmmigrator_gui.engine.target.dataverse import DataverseClient, EntityMeta

BATCH_SIZE = 500
FINAL_ACTIONS = ("created", "updated", "unchanged", "failed", "skipped")


@dataclass
class Outcome:
    action: str
    dest_id: str | None = None
    prior: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None


@dataclass
class _Batch:
    part: Part
    meta: EntityMeta
    items: list[tuple[str, Payload]] = field(default_factory=list)  # (source id, payload)


def load(
    project: Project,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    batch_size: int = BATCH_SIZE,
    actor: str | None = None,
    subset: Mapping[str, Collection[str]] | None = None,
    kind: str | None = None,
) -> RunResult:
    """Run (or resume) the full load. Raises BlockedError (exit 3) while the map is unconfirmed, and — for a
    full load or a delta — without a sign-off valid for the current map: a map changed after the customer
    signed the sample off was not what they approved.

    ``subset`` (source object -> source ids; see :mod:`.sample`) loads only that slice, in a run of kind
    ``sample`` (default with a subset) that rolls back on its own; the full load later finds its records by
    key and adopts them. ``kind="delta"`` with a subset applies a delta's new and changed records as a run of
    its own in the same ledger.
    """
    kind = kind or ("load" if subset is None else "sample")
    if kind not in ("load", "sample", "delta"):
        raise ValueError(f"unknown run kind {kind!r}")
    assert_confirmed(project)
    if kind != "sample":
        assert_signed_off(project)
    playbook = load_playbook(project.source, project.target, project.edition)
    prepare: Any = ensure_schema
    runner: Any = _Runner
    if project.target == "salesforce":
        from crmmigrator_gui.engine.run import load_salesforce

        prepare, runner = load_salesforce.ensure_schema, load_salesforce._SfRunner
    with destination(project) as client:
        prepare(project, playbook, client, progress)
        active = runner(
            project, playbook, client, progress, cancel or CancelToken(), batch_size, actor or current_actor()
        )
        active.kind = kind
        if subset is not None:
            active.subset = {obj: set(ids) for obj, ids in subset.items()}
        return active.run()  # type: ignore[no-any-return]


def ensure_schema(
    project: Project, playbook: Playbook, client: DataverseClient, progress: ProgressCallback = no_progress
) -> None:
    """Stop (exit 3) when the destination lacks the custom schema — except on a sandbox, which we provision."""
    items = schema.manifest(project, playbook)
    absent = schema.missing(client, items)
    if not absent:
        return
    if not is_sandbox(project):
        names = ", ".join(sorted({f"{i.entity}.{i.name}" for i in absent})[:6])
        raise BlockedError(
            f"the destination lacks {len(absent)} schema item(s) ({names}…); "
            "run `crmmigrator schema PROJECT apply` (or give the manifest to the admin)"
        )
    created = schema.apply(client, items, progress=progress)
    with project.step("schema apply (sandbox)", {"created": [i.to_json() for i in created]}):
        pass


def owner_for_unmatched(project: Project, client: Any) -> str:
    """Who owns the records of technicians with no user: the project's fallback owner (meta
    ``fallback_owner``, an e-mail, checked by pre-flight the same way) or else the migration user."""
    from crmmigrator_gui.engine.plan.preflight.checks import fallback_owner

    user_id, label, problems = fallback_owner(project, client)
    if problems or not user_id:
        raise BlockedError(problems[0].message if problems else f"cannot resolve the fallback owner {label}")
    return user_id


class _Runner:
    kind = "load"
    subset: dict[str, set[str]] | None = None  # a sample's slice: source object -> source ids

    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: DataverseClient,
        progress: ProgressCallback,
        cancel: CancelToken,
        batch_size: int,
        actor: str,
    ) -> None:
        self.project = project
        self.playbook = playbook
        self.client = client
        self.progress = progress
        self.cancel = cancel
        self.batch_size = batch_size
        self.actor = actor
        self.start = time.monotonic()
        self.requests_at_start = client.requests
        self.xref: dict[tuple[str, str], str] = {
            (r["target_entity"], r["key"]): r["dest_id"] for r in project.query("SELECT * FROM xref")
        }
        self.builder = PayloadBuilder(project, playbook, client, self.xref, owner_for_unmatched(project, client))
        self.seq = 0
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ run bookkeeping
    def _open_run(self) -> int:
        row = self.project.query(
            "SELECT id FROM runs WHERE kind = ? AND status IN ('running', 'cancelled', 'interrupted') "
            "ORDER BY id DESC LIMIT 1",
            (self.kind,),
        )
        target = json.dumps({"url": self._target_url()})
        with self.project.step(f"{self.kind} start", {"resume": bool(row)}, actor=self.actor):
            if row:
                run_id = int(row[0]["id"])
                self.project.db.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
            else:
                cur = self.project.db.conn.execute(
                    "INSERT INTO runs (kind, status, started_at, actor, target, stats) VALUES "
                    "(?, 'running', ?, ?, ?, '{}')",
                    (self.kind, now_iso(), self.actor, target),
                )
                run_id = int(cur.lastrowid or 0)
        self.seq = int(
            self.project.scalar("SELECT COALESCE(MAX(seq), 0) FROM crosswalk WHERE run_id = ?", (run_id,)) or 0
        )
        return run_id

    def _target_url(self) -> str:
        return self.client.org_url

    def run(self) -> RunResult:
        self.run_id = self._open_run()
        done_before = {
            (r["part"], r["source_id"]): r["action"]
            for r in self.project.query(
                "SELECT part, source_id, action FROM crosswalk WHERE run_id = ? AND action IN "
                "('created','updated','unchanged','failed','skipped')",
                (self.run_id,),
            )
        }
        pending_keys = {
            r["key"]
            for r in self.project.query(
                "SELECT key FROM crosswalk WHERE run_id = ? AND action = 'pending'", (self.run_id,)
            )
        }
        status = "completed"
        try:
            self._match_users()
            for part in load_order(self.playbook, self.project.source_object_names()):
                self._load_part(part, done_before, pending_keys)
            for part in load_order(self.playbook, self.project.source_object_names()):
                for link in part.links:
                    self._link(part, link)
        except CancelledError:
            status = "cancelled"
        except DestinationError as exc:
            status = "interrupted"
            self.warnings.append(str(exc))
            self._finish(status)
            raise
        return self._finish(status)

    def _finish(self, status: str) -> RunResult:
        result = summarize(self.project, self.run_id, kind=self.kind, status=status)
        if self.subset is not None:  # a sample counts its slice, not the whole staged object
            for entry in result.objects:
                entry["source_records"] = len(self.subset.get(entry["source_object"], ()))
        if status == "completed" and any(o["failed"] for o in result.objects):
            status = "completed_with_failures"
            result.status = status
        seconds = time.monotonic() - self.start
        requests = self.client.requests - self.requests_at_start
        result.requests = requests + int(
            self.project.scalar("SELECT requests FROM runs WHERE id = ?", (self.run_id,)) or 0
        )
        result.seconds = round(
            seconds + float(self.project.scalar("SELECT seconds FROM runs WHERE id = ?", (self.run_id,)) or 0), 3
        )
        for note in self.builder.transform_notes():  # "2 numbers in one cell, the first is used", …
            if note not in self.warnings:
                self.warnings.append(note)
        result.warnings = self.warnings
        with self.project.step(
            f"{self.kind} {status}", {"run_id": self.run_id, "requests": requests}, actor=self.actor
        ):
            self.project.db.conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, stats = ?, requests = ?, seconds = ? WHERE id = ?",
                (status, now_iso(), json.dumps(result.to_json()), result.requests, result.seconds, self.run_id),
            )
        return result

    # ------------------------------------------------------------------ owners
    def _match_users(self) -> None:
        """Field workers → systemusers by e-mail; unmatched ones fall back to the migration user."""
        for obj in self.playbook.objects:
            if not obj.match_user or obj.name not in self.project.source_object_names():
                continue
            rows = list(self.project.iter_staged(obj.name))
            emails = {}
            for source_id, raw in rows:
                email = self.builder.role_value(obj.name, obj.match_user["role"], raw)
                if email:
                    emails[source_id] = email.lower()
            users = self.client.find_users_by_email(sorted(set(emails.values())))
            unmatched = []
            for source_id, raw in rows:
                user = users.get(emails.get(source_id, ""))
                name = (self.builder.role_value(obj.name, "name", raw) or "").lower()
                if not name:  # rosters that split the name (first_name / last_name roles)
                    parts = (self.builder.role_value(obj.name, r, raw) for r in ("first_name", "last_name"))
                    name = " ".join(" ".join(p for p in parts if p).split()).lower()
                if user and not user.get("isdisabled"):
                    self.builder.user_by_worker_id[source_id] = str(user["systemuserid"])
                    if name:
                        self.builder.user_by_worker_name[name] = str(user["systemuserid"])
                else:
                    unmatched.append(name or source_id)
            if unmatched:
                self.warnings.append(
                    f"{len(unmatched)} field worker(s) have no active user with their e-mail; "
                    f"their records are owned by the migration user: {', '.join(unmatched[:10])}"
                )

    # ------------------------------------------------------------------ parts
    def _records(self, part: Part) -> list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]] | None]]:
        """(destination source id, representative raw row, group members) for the part."""
        rows = [(sid, raw) for sid, raw in self.project.iter_staged(part.obj) if self._wanted(part.obj, sid)]
        if not part.group_by:
            return [(sid, raw, None) for sid, raw in rows]
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        columns = self.builder.role_columns.get(part.obj, {})
        for sid, raw in rows:
            groups[group_id(part, raw, columns)].append((sid, raw))
        return [(gid, members[0][1], members) for gid, members in groups.items()]

    def _wanted(self, obj: str, source_id: str) -> bool:
        """Whether a staged row belongs to this run (a sample's slice holds whole groups of merged parts)."""
        return self.subset is None or source_id in self.subset.get(obj, ())

    def _load_part(self, part: Part, done_before: dict[tuple[str, str], str], pending_keys: set[str]) -> None:
        meta = self.client.entity(part.entity)
        records = self._records(part)
        total = sum(len(m) if m else 1 for _sid, _raw, m in records)
        done = 0
        started = time.monotonic()
        batch = _Batch(part, meta)
        outcomes: dict[str, Outcome] = {}
        members_of: dict[str, list[str]] = {}
        for source_id, raw, members in records:
            members_of[source_id] = [m[0] for m in members] if members else [source_id]
            if (part.name, source_id) in done_before:
                done += len(members_of[source_id])
                continue
            try:
                payload = self.builder.build(part, source_id, raw, meta, [m[1] for m in members] if members else None)
            except Skip as exc:
                outcomes[source_id] = Outcome("skipped", code=exc.code, message=str(exc))
            except BuildError as exc:
                outcomes[source_id] = Outcome("failed", code=exc.code, message=str(exc))
            else:
                batch.items.append((source_id, payload))
            if len(batch.items) + len(outcomes) >= self.batch_size:
                done += self._flush(batch, outcomes, members_of, pending_keys)
                self._report(part, done, total, started)
                batch, outcomes = _Batch(part, meta), {}
                self.cancel.raise_if_cancelled()
        done += self._flush(batch, outcomes, members_of, pending_keys)
        self._report(part, done, total, started)
        self.cancel.raise_if_cancelled()

    def _report(self, part: Part, done: int, total: int, started: float) -> None:
        elapsed = max(1e-6, time.monotonic() - started)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        self.progress(ProgressEvent("load", part.qualified, done, total, rate=rate, eta_seconds=eta))

    def _flush(
        self, batch: _Batch, outcomes: dict[str, Outcome], members_of: dict[str, list[str]], pending_keys: set[str]
    ) -> int:
        part, meta = batch.part, batch.meta
        if batch.items:
            columns = sorted(
                {c for _sid, p in batch.items for c in p.body if "@" not in c}
                | {f"_{col}_value" for _sid, p in batch.items for col, _d in p.binds.values()}
            )
            if "statecode" in meta.attributes and any(p.post_state for _sid, p in batch.items):
                columns = sorted({*columns, "statecode", "statuscode"})  # snapshot the state we may change
            existing = self.client.find_by_keys(
                meta, self.playbook.key_column, [p.key for _sid, p in batch.items], columns
            )
            creates: list[tuple[str, Payload]] = []
            updates: list[tuple[str, Payload, dict[str, Any], dict[str, Any]]] = []
            for source_id, payload in batch.items:
                row = existing.get(payload.key)
                if row is None:
                    creates.append((source_id, payload))
                    continue
                dest_id = str(row[meta.primary_id])
                changes, prior = _diff(meta, payload, row)
                if payload.key in pending_keys:
                    outcomes[source_id] = Outcome("created", dest_id, written=payload.body)
                elif changes:
                    updates.append(
                        (source_id, payload, changes | {meta.primary_id: dest_id}, prior | _state(payload, row))
                    )
                else:
                    outcomes[source_id] = Outcome("unchanged", dest_id)
            if creates:
                self._record_pending(part, creates)
                outcomes.update(self._create(meta, creates))
            if updates:
                outcomes.update(self._update(meta, updates))
            self._apply_states(meta, batch, outcomes)
        self._commit(part, outcomes, batch)
        return sum(len(members_of.get(sid, [sid])) for sid in outcomes)

    def _record_pending(self, part: Part, creates: list[tuple[str, Payload]]) -> None:
        """Intent log: if we crash after the destination wrote but before we commit, resume knows."""
        touched = server_now(self.client)
        with self.project.transaction():
            for source_id, payload in creates:
                self.seq += 1
                self.project.db.conn.execute(
                    "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, action, "
                    "at) VALUES (?,?,?,?,?,?,?, 'pending', ?)",
                    (self.run_id, self.seq, part.obj, part.name, source_id, part.entity, payload.key, touched),
                )

    def _create(self, meta: EntityMeta, creates: list[tuple[str, Payload]]) -> dict[str, Outcome]:
        bodies = [p.body for _sid, p in creates]
        if self.client.supports_bulk(meta.logical, "CreateMultiple"):
            try:
                ids = self.client.create_multiple(meta, bodies)
                return {
                    sid: Outcome("created", dest, written=p.body) for (sid, p), dest in zip(creates, ids, strict=True)
                }
            except DestinationError:
                pass  # all-or-nothing: find the bad rows one by one below
        # Per-row upserts by alternate key (PATCH to the key URL, key column left out of the body):
        # idempotent even if the row appeared since our read, and each row reports its own error.
        key_column = self.playbook.key_column
        ops = [
            BatchOp(
                "PATCH",
                self.client.path(self.client.key_url(meta, key_column, payload.key)),
                {k: v for k, v in payload.body.items() if k != key_column},
            )
            for _sid, payload in creates
        ]
        results = self.client.batch(ops)
        outcomes = {}
        for (sid, payload), result in zip(creates, results, strict=True):
            if result.ok:
                outcomes[sid] = Outcome("created", result.entity_id, written=payload.body)
            else:
                code, message = result.error
                outcomes[sid] = Outcome("failed", code=code or str(result.status), message=explain(code, message))
        return outcomes

    def _update(
        self, meta: EntityMeta, updates: list[tuple[str, Payload, dict[str, Any], dict[str, Any]]]
    ) -> dict[str, Outcome]:
        bodies = [changes for _sid, _p, changes, _prior in updates]
        if self.client.supports_bulk(meta.logical, "UpdateMultiple"):
            try:
                self.client.update_multiple(meta, bodies)
                return {
                    sid: Outcome("updated", ch[meta.primary_id], prior=prior, written=ch)
                    for sid, _p, ch, prior in updates
                }
            except DestinationError:
                pass
        ops = [
            BatchOp(
                "PATCH",
                self.client.path(f"{meta.entity_set}({ch[meta.primary_id]})"),
                {k: v for k, v in ch.items() if k != meta.primary_id},
                {"If-Match": "*"},
            )
            for _sid, _p, ch, _prior in updates
        ]
        outcomes = {}
        for (sid, _p, ch, prior), result in zip(updates, self.client.batch(ops), strict=True):
            if result.ok:
                outcomes[sid] = Outcome("updated", ch[meta.primary_id], prior=prior, written=ch)
            else:
                code, message = result.error
                outcomes[sid] = Outcome("failed", code=code or str(result.status), message=explain(code, message))
        return outcomes

    def _apply_states(self, meta: EntityMeta, batch: _Batch, outcomes: dict[str, Outcome]) -> None:
        """Closed statuses are set after create (statecode is not valid on create)."""
        ops, owners = [], []
        for sid, payload in batch.items:
            outcome = outcomes.get(sid)
            if payload.post_state and outcome and outcome.action in ("created", "updated") and outcome.dest_id:
                ops.append(_state_op(self.client, meta, outcome.dest_id, payload.post_state))
                owners.append(sid)
        if not ops:
            return
        for sid, result in zip(owners, self.client.batch(ops), strict=True):
            if not result.ok:
                self.warnings.append(f"{batch.part.qualified} {sid}: status not set ({result.error[1]})")

    def _commit(self, part: Part, outcomes: dict[str, Outcome], batch: _Batch) -> None:
        keys = {sid: p.key for sid, p in batch.items}
        touched = server_now(self.client)  # after the batch's writes: our last touch of its records
        with self.project.transaction():
            conn = self.project.db.conn
            for sid, outcome in outcomes.items():
                key = keys.get(sid) or self.builder.key(part, sid)
                conn.execute(
                    "DELETE FROM crosswalk WHERE run_id = ? AND key = ? AND target_entity = ? AND action = 'pending'",
                    (self.run_id, key, part.entity),
                )
                self.seq += 1
                conn.execute(
                    "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, dest_id, "
                    "action, prior, written, error_code, error_message, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        self.run_id,
                        self.seq,
                        part.obj,
                        part.name,
                        sid,
                        part.entity,
                        key,
                        outcome.dest_id,
                        outcome.action,
                        _dump(outcome.prior),
                        _dump(outcome.written),
                        outcome.code,
                        outcome.message,
                        touched,
                    ),
                )
                if outcome.dest_id and outcome.action in ("created", "updated", "unchanged"):
                    self.xref[(part.entity, key)] = outcome.dest_id
                    conn.execute(
                        "INSERT INTO xref VALUES (?,?,?,?,?,?) ON CONFLICT(target_entity, key) DO UPDATE SET "
                        "dest_id = excluded.dest_id",
                        (part.entity, key, outcome.dest_id, part.obj, sid, part.name),
                    )
            conn.execute("UPDATE runs SET stats = stats WHERE id = ?", (self.run_id,))

    # ------------------------------------------------------------------ links
    def _link(self, part: Part, link: dict[str, Any]) -> None:
        """Second pass for lookups that point forward (account.primarycontactid → its contact)."""
        meta = self.client.entity(part.entity)
        target = self.playbook.part(link["to"])
        nav = meta.nav_property(link["column"], target.entity)
        wanted: dict[str, tuple[str, str, str]] = {}
        for sid, raw in self.project.iter_staged(part.obj):
            if not self._wanted(part.obj, sid):
                continue
            value = self.builder.role_value(part.obj, link["by_role"], raw)
            here = self.xref.get((part.entity, self.builder.key(part, sid)))
            there = self.xref.get((target.entity, self.builder.key(target, value))) if value else None
            if here and there:
                wanted[self.builder.key(part, sid)] = (sid, here, there)
        keys = list(wanted)
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            existing = self.client.find_by_keys(meta, self.playbook.key_column, chunk, [f"_{link['column']}_value"])
            todo = []
            for key in chunk:
                sid, here, there = wanted[key]
                current = (existing.get(key) or {}).get(f"_{link['column']}_value")
                if current != there:
                    todo.append((key, sid, here, there, current))
            if not todo:
                continue
            ops = [
                BatchOp(
                    "PATCH",
                    self.client.path(f"{meta.entity_set}({here})"),
                    {f"{nav}@odata.bind": f"/{self.builder.entity_set(target.entity)}({there})"},
                    {"If-Match": "*"},
                )
                for _k, _s, here, there, _c in todo
            ]
            results = self.client.batch(ops)
            touched = server_now(self.client)
            with self.project.transaction():
                for (key, sid, here, there, current), result in zip(todo, results, strict=True):
                    self._record_link(
                        part, key, sid, here, touched,
                        prior={f"{nav}@odata.bind": _bind_or_null(self.builder, target.entity, current)},
                        written={f"{nav}@odata.bind": there},
                        error=None if result.ok else result.error,
                    )  # fmt: skip
            self.cancel.raise_if_cancelled()

    def _record_link(
        self,
        part: Part,
        key: str,
        source_id: str,
        dest_id: str,
        touched: str,
        *,
        prior: dict[str, Any],
        written: dict[str, Any],
        error: tuple[str, str] | None,
    ) -> None:
        """One crosswalk row for a link written after both ends exist (rollback restores ``prior``)."""
        self.seq += 1
        self.project.db.conn.execute(
            "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, dest_id, action, "
            "prior, written, error_code, error_message, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.run_id, self.seq, part.obj, f"{part.name}:link", source_id, part.entity, key, dest_id,
                "linked" if error is None else "link_failed", json.dumps(prior), json.dumps(written),
                None if error is None else error[0], None if error is None else error[1], touched,
            ),
        )  # fmt: skip


# States a PATCH may not set: Dataverse wants the named message instead (a resolved case: CloseIncident).
_STATE_MESSAGES = {("incident", 1): "CloseIncident"}


def _state_op(client: DataverseClient, meta: EntityMeta, dest_id: str, state: dict[str, int]) -> BatchOp:
    """The request that puts a just-written record into its closed state."""
    message = _STATE_MESSAGES.get((meta.logical, state["statecode"]))
    if message == "CloseIncident":
        resolution = {
            "subject": "Resolved before migration",
            f"{meta.primary_id}@odata.bind": f"/{meta.entity_set}({dest_id})",
        }
        return BatchOp("POST", client.path(message), {"IncidentResolution": resolution, "Status": state["statuscode"]})
    return BatchOp("PATCH", client.path(f"{meta.entity_set}({dest_id})"), state, {"If-Match": "*"})


def _state(payload: Payload, row: dict[str, Any]) -> dict[str, Any]:
    """The prior state of a record whose state the load is about to change (exact rollback reopens it)."""
    if not payload.post_state or all(row.get(k) == v for k, v in payload.post_state.items()):
        return {}
    return {"statecode": row.get("statecode"), "statuscode": row.get("statuscode")}


def _bind_or_null(builder: PayloadBuilder, entity: str, dest: str | None) -> str | None:
    return f"/{builder.entity_set(entity)}({dest})" if dest else None


def server_now(client: Any) -> str:
    """The destination's clock, for a crosswalk row's ``at`` (our touch of the record): the ``Date`` header
    of its latest answer when the HTTP layer keeps it (``client.http.server_date``), else this machine's
    clock (the embedded sandbox shares it). Rollback compares these times with the records' modified
    times, so they must come from the server's clock, not ours."""
    stamp = getattr(getattr(client, "http", None), "server_date", None)
    if isinstance(stamp, datetime) and stamp.tzinfo is not None:
        return stamp.astimezone(UTC).isoformat(timespec="seconds")
    return now_iso()


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, ensure_ascii=False)


def _same(ours: Any, theirs: Any) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, (int, float, Decimal)) and not isinstance(ours, bool) and isinstance(theirs, (int, float)):
        return Decimal(str(ours)) == Decimal(str(theirs))
    if isinstance(ours, str) and isinstance(theirs, str):
        if len(ours) >= 10 and ours[4:5] == "-" and theirs.startswith(ours.rstrip("Z")[:19]):
            return True
        return ours == theirs
    return bool(ours == theirs)


def _near(ours: Any, theirs: Any) -> bool:
    try:
        return abs(float(ours) - float(theirs)) < 1e-5
    except (TypeError, ValueError):
        return False


def _diff(meta: EntityMeta, payload: Payload, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Columns whose value differs at the destination, and their prior values (for exact rollback)."""
    changes: dict[str, Any] = {}
    prior: dict[str, Any] = {}
    bind_columns = {nav: column for nav, (column, _d) in payload.binds.items()}
    for column, value in payload.body.items():
        if column.endswith("@odata.bind"):
            nav = column[: -len("@odata.bind")]
            lookup_column = bind_columns.get(nav, nav)
            current = row.get(f"_{lookup_column}_value")
            wanted = payload.binds.get(nav, (None, None))[1]
            if current != wanted:
                changes[column] = value
                prior[column] = None if current is None else value.rsplit("(", 1)[0] + f"({current})"
            continue
        attr = meta.attributes.get(column)
        if attr is not None and not attr.valid_update:
            continue
        if attr is not None and attr.type == "Double" and _near(value, row.get(column)):
            continue  # Dataverse keeps at most 5 decimals of a Double: what it rounded is not a change
        if not _same(value, row.get(column)):
            changes[column] = value
            prior[column] = row.get(column)
    return changes, prior
