"""The load run: dependency-ordered, batched, idempotent by source id, resumable.

For each batch of one part: build payloads; read what already exists at the destination by
alternate key (so we know created vs updated, and can snapshot prior values before any update);
write new rows with CreateMultiple and changed rows with UpdateMultiple (falling back to a
``$batch`` with continue-on-error to isolate bad rows); then commit the crosswalk before the
next batch starts. A crash, cancel or network loss leaves a run that ``load`` resumes.

Each batch holds ``batch_size`` records per parallel write request: the writes are split into that many
sub-requests (the destination's hint: ``x-ms-dop-hint`` on Dataverse, the org's limits on Salesforce), sent
side by side and merged in order, so requests per record stay those of one request per ``batch_size`` while
the latency of the requests overlaps. Between batches the run can be paused (time paused counts in no rate,
ETA or run time). A new ``load`` after a finished one carries, without any request, every record whose latest
outcome still stands for the same staged row and the same map (see :meth:`_Runner._carry`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, CancelledError, DestinationError
from crmmigrator_gui.engine.mapping.maps import assert_confirmed
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.mapping.signoff import assert_signed_off, map_fingerprint
from crmmigrator_gui.engine.plan import schema
from crmmigrator_gui.engine.plan.order import group_id, load_order
from crmmigrator_gui.engine.plan.payloads import BuildError, Payload, PayloadBuilder, Skip
from crmmigrator_gui.engine.progress import CancelToken, Failure, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso
from crmmigrator_gui.engine.run.results import RunResult, explain, live_failures, summarize
from crmmigrator_gui.engine.source.importer import row_hash
from crmmigrator_gui.engine.target.batch import BatchOp, BatchResult
from crmmigrator_gui.engine.target.connection import destination, is_sandbox
from crmmigrator_gui.engine.target.dataverse import DataverseClient, EntityMeta
from crmmigrator_gui.engine.target.http import DEFAULT_PARALLEL, MAX_PARALLEL, chunked, in_parallel

BATCH_SIZE = 500
FINAL_ACTIONS = ("created", "updated", "unchanged", "failed", "skipped")
CARRIED_FROM = ("load", "sample", "delta")  # run kinds whose standing outcomes a new load may carry
STATE_NOT_SET = "STATE_NOT_SET"  # crosswalk error code: the record was written but its closed status was not


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
    hashes: dict[str, str] = field(default_factory=dict)  # record id -> staged row hash (of the group)
    members: dict[str, list[str]] = field(default_factory=dict)  # record id -> source ids it stands for


class _ActiveClock:
    """Seconds of work, not of waiting: time spent paused counts in no rate, ETA or run time."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._paused = 0.0
        self._since: float | None = None

    def pause(self, paused: bool) -> None:
        now = time.monotonic()
        if paused and self._since is None:
            self._since = now
        elif not paused and self._since is not None:
            self._paused += now - self._since
            self._since = None

    def now(self) -> float:
        """Active seconds since the clock started (a pause still going on is left out too)."""
        now = time.monotonic()
        ongoing = now - self._since if self._since is not None else 0.0
        return now - self._start - self._paused - ongoing


@dataclass
class _PartProgress:
    """One part's progress for events: records done (``already``: by this run before a resume) of ``total``."""

    part: Part
    total: int
    started: float  # active clock reading when the part began
    done: int = 0
    already: int = 0


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


_OBJECT_MAP_SQL = (
    "SELECT part, target_entity FROM object_maps WHERE source_object = ? ORDER BY part",
    "SELECT source_field, target_entity, target_field, role, transform, status FROM field_maps "
    "WHERE source_object = ? ORDER BY source_field, target_entity, target_field",
    "SELECT source_field, target_entity, target_field, source_value, target_label, target_value, status "
    "FROM value_maps WHERE source_object = ? ORDER BY source_field, target_entity, target_field, source_value",
)


def object_map_fingerprints(project: Project, playbook: Playbook) -> dict[str, str]:
    """Per source object, a hash of the map that decides what its records become: its object, field and value
    maps, plus those of the objects whose rows resolve owners (a changed e-mail column re-owns records).

    Why per object: fixing one value map must not make a re-run re-read every other object.
    """
    own: dict[str, str] = {}
    for obj in project.source_object_names():
        digest = hashlib.sha256()
        for sql in _OBJECT_MAP_SQL:
            for row in project.db.conn.execute(sql, (obj,)):
                digest.update(json.dumps(row, default=str).encode())
                digest.update(b"\n")
            digest.update(b"--\n")
        own[obj] = digest.hexdigest()
    owners = sorted(o.name for o in playbook.objects if o.match_user and o.name in own)
    return {
        obj: hashlib.sha256("|".join([fp, *(own[o] for o in owners)]).encode()).hexdigest() for obj, fp in own.items()
    }


def record_hash(raw: dict[str, Any], members: Sequence[tuple[str, dict[str, Any]]] | None) -> str:
    """The staged row hash a record was built from (the importer's ``row_hash``, recomputed from the row so an
    edited staging row cannot slip past); for a grouped record, a hash over its members' hashes in source-id
    order."""
    if not members:
        return row_hash(raw)
    joined = "|".join(f"{sid}={row_hash(member)}" for sid, member in sorted(members, key=lambda m: m[0]))
    return hashlib.sha256(joined.encode()).hexdigest()


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
    recheck = False  # True: no record is carried, every one is read and compared at the destination

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
        self.clock = _ActiveClock()
        self.requests_at_start = client.requests
        self.retries_at_start = _retries(client)
        self.xref: dict[tuple[str, str], str] = {
            (r["target_entity"], r["key"]): r["dest_id"] for r in project.query("SELECT * FROM xref")
        }
        self.builder = self._make_builder(owner_for_unmatched(project, client))
        self.seq = 0
        self.warnings: list[str] = []
        self.maps: dict[str, str | None] = {}  # source object -> map fingerprint this run's records are built with
        self.carried: set[tuple[str, str]] = set()  # (entity, key) of the records this run carried unchanged

    def _make_builder(self, owner: str) -> Any:
        return PayloadBuilder(self.project, self.playbook, self.client, self.xref, owner)

    @property
    def parallel(self) -> int:
        """Parallel write requests: the destination's ``x-ms-dop-hint`` (4 until it answers), at most 8. Read per
        batch, as the service may change its hint."""
        hint = getattr(self.client.http, "dop_hint", None) or DEFAULT_PARALLEL
        return max(1, min(MAX_PARALLEL, int(hint)))

    # ------------------------------------------------------------------ run bookkeeping
    def _open_run(self) -> int:
        row = self.project.query(
            "SELECT id, stats FROM runs WHERE kind = ? AND status IN ('running', 'cancelled', 'interrupted') "
            "ORDER BY id DESC LIMIT 1",
            (self.kind,),
        )
        target = json.dumps({"url": self._target_url()})
        current = object_map_fingerprints(self.project, self.playbook)
        with self.project.step(f"{self.kind} start", {"resume": bool(row)}, actor=self.actor):
            if row:
                run_id = int(row[0]["id"])
                stats = json.loads(row[0]["stats"] or "{}")
                opened = (stats.get("map_at_start") or {}).get("objects") or {}
                # A map changed while the run was stopped: its records were built with two maps, so none of them
                # can vouch for either one later.
                self.maps = {obj: fp if opened.get(obj) == fp else None for obj, fp in current.items()}
                stats["map_at_start"] = {**stats.get("map_at_start", {}), "objects": self.maps}
                self.project.db.conn.execute(
                    "UPDATE runs SET status = 'running', stats = ? WHERE id = ?", (json.dumps(stats), run_id)
                )
            else:
                self.maps = dict(current)
                stats = {"map_at_start": {"map_fingerprint": map_fingerprint(self.project), "objects": self.maps}}
                cur = self.project.db.conn.execute(
                    "INSERT INTO runs (kind, status, started_at, actor, target, stats) VALUES "
                    "(?, 'running', ?, ?, ?, ?)",
                    (self.kind, now_iso(), self.actor, target, json.dumps(stats)),
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
        self.update_intents = {
            (r["target_entity"], r["key"]): (json.loads(r["prior"] or "{}"), json.loads(r["written"] or "{}"))
            for r in self.project.query(
                "SELECT target_entity, key, prior, written FROM crosswalk WHERE run_id = ? AND action = "
                "'pending_update'",
                (self.run_id,),
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
        seconds = self.clock.now()  # paused time is not run time
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
        stats = json.loads(self.project.scalar("SELECT stats FROM runs WHERE id = ?", (self.run_id,)) or "{}")
        result.retries = _retries(self.client) - self.retries_at_start + int(stats.get("retries") or 0)
        stats.update(result.to_json())  # keeps what the run noted when it opened (the map it was built with)
        with self.project.step(
            f"{self.kind} {status}", {"run_id": self.run_id, "requests": requests}, actor=self.actor
        ):
            self.project.db.conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, stats = ?, requests = ?, seconds = ? WHERE id = ?",
                (status, now_iso(), json.dumps(stats), result.requests, result.seconds, self.run_id),
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
        self._load_records(
            part,
            meta,
            done_before,
            build=lambda sid, raw, rows: self.builder.build(part, sid, raw, meta, rows),
            write=lambda batch, outcomes: self._flush(batch, outcomes, pending_keys),
            full=lambda batch, outcomes: len(batch.items) + len(outcomes) >= self.batch_size * self.parallel,
        )

    def _load_records(
        self,
        part: Part,
        meta: Any,
        done_before: dict[tuple[str, str], str],
        *,
        build: Callable[[str, dict[str, Any], list[dict[str, Any]] | None], Any],
        write: Callable[[_Batch, dict[str, Outcome]], None],
        full: Callable[[_Batch, dict[str, Outcome]], bool],
        records: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]] | None]] | None = None,
    ) -> None:
        """The batch loop of both destinations: per record, carry it (see :meth:`_carry`) or build its payload
        (a record refused locally fails or is skipped here); when ``full``, ``write`` the batch, commit it,
        report it with its failures, and wait here while paused."""
        records = self._records(part) if records is None else records
        state = _PartProgress(part, sum(len(m) if m else 1 for _sid, _raw, m in records), self.clock.now())
        carry = self._carry(part)
        batch: _Batch = _Batch(part, meta)
        outcomes: dict[str, Outcome] = {}
        for source_id, raw, members in records:
            ids = [m[0] for m in members] if members else [source_id]
            if (part.name, source_id) in done_before:
                state.done += len(ids)
                state.already += len(ids)
                continue
            batch.members[source_id] = ids
            batch.hashes[source_id] = record_hash(raw, members)
            standing = carry.get(source_id)
            if standing is not None and standing[1] == batch.hashes[source_id]:
                outcomes[source_id] = Outcome("unchanged", standing[0])
                self.carried.add((part.entity, self.builder.key(part, source_id)))
            else:
                try:
                    payload = build(source_id, raw, [m[1] for m in members] if members else None)
                except Skip as exc:
                    outcomes[source_id] = Outcome("skipped", code=exc.code, message=str(exc))
                except BuildError as exc:
                    outcomes[source_id] = Outcome("failed", code=exc.code, message=explain(exc.code, str(exc)))
                else:
                    batch.items.append((source_id, payload))
            if full(batch, outcomes):
                self._settle(state, batch, outcomes, write)
                batch, outcomes = _Batch(part, meta), {}
        self._settle(state, batch, outcomes, write)

    def _settle(
        self,
        state: _PartProgress,
        batch: _Batch,
        outcomes: dict[str, Outcome],
        write: Callable[[_Batch, dict[str, Outcome]], None],
    ) -> None:
        """Write, commit (before anything else happens), report with the batch's failures, then the pause point."""
        if batch.items:
            write(batch, outcomes)
        self._commit(batch.part, outcomes, batch)
        state.done += sum(len(batch.members.get(sid) or [sid]) for sid in outcomes)
        failed = [(sid, o.code, o.message) for sid, o in outcomes.items() if o.action == "failed"]
        self._report(state, failures=live_failures(batch.part.obj, failed, batch.members))
        self._checkpoint(state)

    def _report(
        self, state: _PartProgress, *, failures: tuple[Failure, ...] = (), paused: bool = False, message: str = ""
    ) -> None:
        """Records/s over this session's work and active time only (resumed records and pauses left out)."""
        elapsed = max(1e-6, self.clock.now() - state.started)
        rate = (state.done - state.already) / elapsed
        eta = (state.total - state.done) / rate if rate > 0 else None
        self.progress(
            ProgressEvent(
                "load",
                state.part.qualified,
                state.done,
                state.total,
                rate=rate,
                eta_seconds=eta,
                message=message,
                failures=failures,
                paused=paused,
            )
        )

    def _checkpoint(self, state: _PartProgress) -> None:
        """Between batches, after the commit: wait while paused (the wait stops the clock), stop if cancelled."""

        def on_pause(paused: bool) -> None:
            self.clock.pause(paused)
            self._report(state, paused=paused, message="paused" if paused else "resumed")

        self.cancel.checkpoint(on_pause)

    def _carry(self, part: Part) -> dict[str, tuple[str, str]]:
        """Record id -> (destination id, row hash) of the part's records a new full load may carry as unchanged
        without a request (the caller still compares the row hash with the staged row's).

        A record qualifies when its latest outcome — in a load, sample or delta run that was not rolled back,
        and not rolled back itself — was created, updated or unchanged; that run built it with the map of its
        object this run uses; and the xref still holds that destination id (a rollback forgets deleted ones).
        Anything else (failed, skipped, never loaded, changed row or map) is loaded normally.
        """
        wanted = self.maps.get(part.obj)
        if self.kind != "load" or self.recheck or not wanted:
            return {}
        marks = ",".join("?" * len(CARRIED_FROM))
        same_map = {}
        for run in self.project.query(
            f"SELECT id, stats FROM runs WHERE kind IN ({marks}) AND status != 'rolled_back' AND id != ?",
            (*CARRIED_FROM, self.run_id),
        ):
            opened = (json.loads(run["stats"] or "{}").get("map_at_start") or {}).get("objects") or {}
            same_map[run["id"]] = opened.get(part.obj) == wanted
        if not any(same_map.values()):
            return {}
        finals = ",".join("?" * len(FINAL_ACTIONS))
        latest: dict[str, tuple[Any, ...]] = {}
        for row in self.project.db.conn.execute(
            "SELECT run_id, source_id, action, dest_id, key, row_hash FROM crosswalk WHERE target_entity = ? "
            f"AND part = ? AND source_object = ? AND rolled_back_at IS NULL AND action IN ({finals}) "
            "ORDER BY run_id, seq",
            (part.entity, part.name, part.obj, *FINAL_ACTIONS),
        ):
            if row[0] in same_map:
                latest[row[1]] = row
        return {
            sid: (dest, digest)
            for sid, (run_id, _sid, action, dest, key, digest) in latest.items()
            if same_map[run_id]
            and action in ("created", "updated", "unchanged")
            and dest
            and digest
            and self.xref.get((part.entity, key)) == dest
        }

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

    def _record_update_intents(
        self, part: Part, updates: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]
    ) -> None:
        """Intent log for updates, committed before the write: (source id, key, destination id, prior, written).
        A crash between the write and the commit would otherwise lose the prior values, and rollback could no
        longer restore what the record held before the run."""
        touched = server_now(self.client)
        with self.project.transaction():
            for source_id, key, dest_id, prior, written in updates:
                self.seq += 1
                self.project.db.conn.execute(
                    "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, dest_id, "
                    "action, prior, written, at) VALUES (?,?,?,?,?,?,?,?, 'pending_update', ?, ?, ?)",
                    (
                        self.run_id,
                        self.seq,
                        part.obj,
                        part.name,
                        source_id,
                        part.entity,
                        key,
                        dest_id,
                        _dump(prior),
                        _dump(written),
                        touched,
                    ),
                )
                self.update_intents[(part.entity, key)] = (prior, written)

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

    def _commit(self, part: Part, outcomes: dict[str, Outcome], batch: _Batch) -> None:
        keys = {sid: p.key for sid, p in batch.items}
        touched = server_now(self.client)  # after the batch's writes: our last touch of its records
        with self.project.transaction():
            conn = self.project.db.conn
            for sid, outcome in outcomes.items():
                key = keys.get(sid) or self.builder.key(part, sid)
                conn.execute(
                    "DELETE FROM crosswalk WHERE run_id = ? AND key = ? AND target_entity = ? "
                    "AND action IN ('pending', 'pending_update')",
                    (self.run_id, key, part.entity),
                )
                self.seq += 1
                conn.execute(
                    "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, dest_id, "
                    "action, prior, written, error_code, error_message, at, row_hash) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                        batch.hashes.get(sid),
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

    def _settled_link(self, part: Part, target: Part) -> Callable[[str, str], bool]:
        """Whether a link (record key, target key) needs no read: both records were carried by this run (nothing
        about either changed since their standing outcome, which set or checked the link) and the link's latest
        outcome did not fail."""
        if not self.carried:
            return lambda _key, _target_key: False
        failed: set[str] = set()
        for key, action in self.project.db.conn.execute(
            "SELECT key, action FROM crosswalk WHERE target_entity = ? AND part = ? AND rolled_back_at IS NULL "
            "ORDER BY run_id, seq",
            (part.entity, f"{part.name}:link"),
        ):
            (failed.add if action == "link_failed" else failed.discard)(key)
        return lambda key, target_key: (
            (part.entity, key) in self.carried and (target.entity, target_key) in self.carried and key not in failed
        )

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


def _retries(client: Any) -> int:
    http = getattr(client, "http", None)
    return int(getattr(http, "retries", 0) or 0)


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
