"""The load run: dependency-ordered, batched, idempotent by source id, resumable — and its Dataverse writes.

:func:`load` checks the gates (confirmed map, sign-off), provisions or checks the schema, and runs the
destination's runner; the run's bookkeeping (run rows, batch loop, carry, intents, crosswalk commit, pause and
cancel) is shared in :mod:`.ledger`, the Salesforce runner is in :mod:`.load_salesforce`.

For each batch of one part on Dataverse: read what already exists at the destination by alternate key (so we
know created vs updated, and can snapshot prior values before any update); write new rows with CreateMultiple
and changed rows with UpdateMultiple (falling back to a ``$batch`` with continue-on-error to isolate bad rows);
set closed statuses after create; the ledger then commits the crosswalk before the next batch starts.

Each batch holds ``batch_size`` records per parallel write request: the writes are split into that many
sub-requests (the destination's hint: ``x-ms-dop-hint`` on Dataverse, the org's limits on Salesforce), sent
side by side and merged in order, so requests per record stay those of one request per ``batch_size`` while
the latency of the requests overlaps. A new ``load`` after a finished one carries, without any request, every
record whose latest outcome still stands for the same staged row and the same map (see
:meth:`.ledger.LedgerRunner._carry`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, DestinationError
from crmmigrator_gui.engine.mapping.maps import assert_confirmed
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.mapping.signoff import assert_signed_off
from crmmigrator_gui.engine.plan import schema
from crmmigrator_gui.engine.plan.payloads import Payload, PayloadBuilder
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor
from crmmigrator_gui.engine.run.ledger import LedgerRunner, Outcome, _Batch, _PartProgress, server_now
from crmmigrator_gui.engine.run.results import RunResult, explain
from crmmigrator_gui.engine.target.batch import BatchOp, BatchResult
from crmmigrator_gui.engine.target.connection import destination, is_sandbox
from crmmigrator_gui.engine.target.dataverse import DataverseClient, EntityMeta
from crmmigrator_gui.engine.target.http import DEFAULT_PARALLEL, MAX_PARALLEL, chunked, in_parallel

BATCH_SIZE = 500
STATE_NOT_SET = "STATE_NOT_SET"  # crosswalk error code: the record was written but its closed status was not


def load(
    project: Project,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    batch_size: int = BATCH_SIZE,
    actor: str | None = None,
    subset: Mapping[str, Collection[str]] | None = None,
    kind: str | None = None,
    recheck: bool = False,
) -> RunResult:
    """Run (or resume) the full load. Raises BlockedError (exit 3) while the map is unconfirmed, and — for a
    full load or a delta — without a sign-off valid for the current map: a map changed after the customer
    signed the sample off was not what they approved.

    ``subset`` (source object -> source ids; see :mod:`.sample`) loads only that slice, in a run of kind
    ``sample`` (default with a subset) that rolls back on its own; the full load later finds its records by
    key and adopts them. ``kind="delta"`` with a subset applies a delta's new and changed records as a run of
    its own in the same ledger.

    A new full load after a finished one retries only the failures and the not-yet-loaded: records whose
    latest standing outcome was built from the same staged row with the same map are carried as
    ``unchanged`` without a request. ``recheck=True`` reads and compares every record at the destination
    (someone may have changed or deleted records there since).
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
        active.recheck = recheck
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


class _Runner(LedgerRunner):
    """The Dataverse runner: reads by alternate key, CreateMultiple/UpdateMultiple (or ``$batch``), closed
    statuses after create, links by ``@odata.bind``; the run's bookkeeping is :class:`~.ledger.LedgerRunner`'s."""

    client: DataverseClient

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
        super().__init__(project, playbook, client, progress, cancel, batch_size, actor)
        self.builder = self._make_builder(owner_for_unmatched(project, client))

    def _make_builder(self, owner: str) -> Any:
        return PayloadBuilder(self.project, self.playbook, self.client, self.xref, owner)

    @property
    def parallel(self) -> int:
        """Parallel write requests: the destination's ``x-ms-dop-hint`` (4 until it answers), at most 8. Read per
        batch, as the service may change its hint."""
        hint = getattr(self.client.http, "dop_hint", None) or DEFAULT_PARALLEL
        return max(1, min(MAX_PARALLEL, int(hint)))

    def _target_url(self) -> str:
        return self.client.org_url

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
    def _load_part(self, part: Part, done_before: dict[tuple[str, str], str], pending_keys: set[str]) -> None:
        meta = self.client.entity(part.entity)
        self._load_records(
            part,
            meta,
            done_before,
            build=lambda sid, raw, rows: self.builder.build(part, sid, raw, meta, rows),
            write=lambda batch, outcomes: self._flush(batch, outcomes, pending_keys),
            full=lambda batch, outcomes: len(batch.items) + len(outcomes) >= self.batch_size * self.parallel,
        )

    def _flush(self, batch: _Batch, outcomes: dict[str, Outcome], pending_keys: set[str]) -> None:
        part, meta = batch.part, batch.meta
        columns = sorted(
            {c for _sid, p in batch.items for c in p.body if "@" not in c}
            | {f"_{col}_value" for _sid, p in batch.items for col, _d in p.binds.values()}
        )
        if "statecode" in meta.attributes and any(p.post_state for _sid, p in batch.items):
            columns = sorted({*columns, "statecode", "statuscode"})  # snapshot the state we may change
        existing = self.client.find_by_keys(
            meta, self.playbook.key_column, [p.key for _sid, p in batch.items], columns, parallel=self.parallel
        )
        creates: list[tuple[str, Payload]] = []
        updates: list[tuple[str, Payload, dict[str, Any], dict[str, Any]]] = []
        restates: list[tuple[str, Payload, str, dict[str, Any]]] = []  # only the status differs
        for source_id, payload in batch.items:
            row = existing.get(payload.key)
            if row is None:
                creates.append((source_id, payload))
                continue
            dest_id = str(row[meta.primary_id])
            changes, prior = _diff(meta, payload, row)
            state_prior = _state(payload, row)
            intent = self.update_intents.get((part.entity, payload.key))
            if payload.key in pending_keys:
                outcomes[source_id] = Outcome("created", dest_id, written=payload.body)
            elif intent is not None and not changes:  # updated before a crash, never committed
                outcomes[source_id] = Outcome("updated", dest_id, prior=intent[0], written=intent[1])
            elif changes:
                snapshot = prior | state_prior
                if intent is not None:  # the snapshot taken before the first attempt is the true prior
                    snapshot = snapshot | intent[0]
                updates.append((source_id, payload, changes | {meta.primary_id: dest_id}, snapshot))
            elif state_prior:
                # Fields agree but the status does not: an earlier status apply failed (or the record was reopened
                # at the destination). Re-applying it is an update whose prior is the state it has now.
                restates.append((source_id, payload, dest_id, state_prior))
            else:
                outcomes[source_id] = Outcome("unchanged", dest_id)
        if creates:
            self._record_pending(part, creates)
            outcomes.update(self._create(meta, creates))
        if updates:
            self._record_update_intents(
                part, [(sid, p.key, ch[meta.primary_id], prior, ch) for sid, p, ch, prior in updates]
            )
            outcomes.update(self._update(meta, updates))
        if restates:
            self._record_update_intents(
                part, [(sid, p.key, dest, prior, dict(p.post_state or {})) for sid, p, dest, prior in restates]
            )
            for sid, _p, dest, prior in restates:
                outcomes[sid] = Outcome("updated", dest, prior=prior, written={})
        self._apply_states(meta, batch, outcomes, restated={sid for sid, *_rest in restates})

    def _split(self, work: Callable[[Sequence[Any]], dict[str, Outcome]], items: list[Any]) -> dict[str, Outcome]:
        """One batch's writes as sub-requests of at most ``batch_size`` rows, ``parallel`` at a time, merged in
        input order (the crosswalk keeps the batch's order whatever answered first)."""
        merged: dict[str, Outcome] = {}
        for outcomes in in_parallel(work, chunked(items, self.batch_size), self.parallel):
            merged.update(outcomes)
        return merged

    def _send_ops(self, ops: list[BatchOp]) -> list[BatchResult]:
        """``$batch`` requests of at most ``batch_size`` operations, side by side; results in order."""
        results: list[BatchResult] = []
        for answered in in_parallel(lambda chunk: self.client.batch(list(chunk)), chunked(ops, self.batch_size),
                                    self.parallel):  # fmt: skip
            results.extend(answered)
        return results

    def _create(self, meta: EntityMeta, creates: list[tuple[str, Payload]]) -> dict[str, Outcome]:
        bulk = self.client.supports_bulk(meta.logical, "CreateMultiple")
        return self._split(lambda chunk: self._create_chunk(meta, chunk, bulk), creates)

    def _create_chunk(self, meta: EntityMeta, creates: Sequence[tuple[str, Payload]], bulk: bool) -> dict[str, Outcome]:
        if bulk:
            try:
                ids = self.client.create_multiple(meta, [p.body for _sid, p in creates])
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
        outcomes = {}
        for (sid, payload), result in zip(creates, self.client.batch(ops), strict=True):
            if result.ok:
                outcomes[sid] = Outcome("created", result.entity_id, written=payload.body)
            else:
                code, message = result.error
                outcomes[sid] = Outcome("failed", code=code or str(result.status), message=explain(code, message))
        return outcomes

    def _update(
        self, meta: EntityMeta, updates: list[tuple[str, Payload, dict[str, Any], dict[str, Any]]]
    ) -> dict[str, Outcome]:
        bulk = self.client.supports_bulk(meta.logical, "UpdateMultiple")
        return self._split(lambda chunk: self._update_chunk(meta, chunk, bulk), updates)

    def _update_chunk(
        self, meta: EntityMeta, updates: Sequence[tuple[str, Payload, dict[str, Any], dict[str, Any]]], bulk: bool
    ) -> dict[str, Outcome]:
        if bulk:
            try:
                self.client.update_multiple(meta, [changes for _sid, _p, changes, _prior in updates])
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

    def _apply_states(
        self, meta: EntityMeta, batch: _Batch, outcomes: dict[str, Outcome], restated: Collection[str] = ()
    ) -> None:
        """Closed statuses are set after create (statecode is not valid on create).

        A status that fails stays a warning, and the record's crosswalk row says so (``STATE_NOT_SET``) with no
        row hash, so the next load does not carry it as settled: it reads the record, sees the status differ and
        applies it again. ``restated``: records whose only change was their status; when it fails nothing was
        written, so they are ``unchanged``."""
        ops, owners = [], []
        for sid, payload in batch.items:
            outcome = outcomes.get(sid)
            if payload.post_state and outcome and outcome.action in ("created", "updated") and outcome.dest_id:
                ops.append(_state_op(self.client, meta, outcome.dest_id, payload.post_state))
                owners.append(sid)
        if not ops:
            return
        for sid, result in zip(owners, self._send_ops(ops), strict=True):
            if not result.ok:
                message = f"status not set ({result.error[1]})"
                self.warnings.append(f"{batch.part.qualified} {sid}: {message}")
                failed = outcomes[sid]
                if sid in restated:
                    failed = outcomes[sid] = Outcome("unchanged", failed.dest_id)
                failed.code, failed.message = STATE_NOT_SET, message
                batch.hashes.pop(sid, None)  # its crosswalk row vouches for no staged row: never carried
                continue
            # What we wrote includes the status: otherwise rollback would take our own status change for
            # someone else's edit after the run and refuse to restore the record.
            outcome = outcomes[sid]
            state = dict(next(p.post_state for s, p in batch.items if s == sid) or {})
            outcome.written = {**(outcome.written or {}), **state}

    # ------------------------------------------------------------------ links
    def _link(self, part: Part, link: dict[str, Any]) -> None:
        """Second pass for lookups that point forward (account.primarycontactid → its contact)."""
        meta = self.client.entity(part.entity)
        target = self.playbook.part(link["to"])
        nav = meta.nav_property(link["column"], target.entity)
        wanted: dict[str, tuple[str, str, str]] = {}
        settled = self._settled_link(part, target)
        for sid, raw in self.project.iter_staged(part.obj):
            if not self._wanted(part.obj, sid):
                continue
            value = self.builder.role_value(part.obj, link["by_role"], raw)
            key = self.builder.key(part, sid)
            here = self.xref.get((part.entity, key))
            there = self.xref.get((target.entity, self.builder.key(target, value))) if value else None
            if here and there and not settled(key, self.builder.key(target, value)):
                wanted[key] = (sid, here, there)
        keys = list(wanted)
        state = _PartProgress(part, len(keys), self.clock.now())
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
            state.done = state.already = start + len(chunk)
            self._checkpoint(state)


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
