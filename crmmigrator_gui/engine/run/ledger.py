"""The run bookkeeping both destinations share: a run's row, its batch loop, its crosswalk and its clock.

A run of kind ``load``, ``sample`` or ``delta`` opens (or resumes) its ``runs`` row noting the map its records are
built with, then loads each part in batches: per record it carries a standing outcome (see
:meth:`LedgerRunner._carry`) or builds a payload; the destination's runner writes the batch (:mod:`.load` for
Dataverse, :mod:`.load_salesforce`) after logging intents (``pending`` creates, ``pending_update`` priors); the
crosswalk and xref are committed before the next batch starts, so a crash, cancel or network loss leaves a run
that ``load`` resumes. Between batches the run can be paused (time paused counts in no rate, ETA or run time).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any

from crmmigrator_gui.engine.errors import CancelledError, DestinationError
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook
from crmmigrator_gui.engine.mapping.signoff import map_fingerprint
from crmmigrator_gui.engine.plan.order import group_id, load_order
from crmmigrator_gui.engine.plan.payloads import BuildError, Payload, Skip
from crmmigrator_gui.engine.progress import CancelToken, Failure, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.run.results import RunResult, explain, live_failures, summarize
from crmmigrator_gui.engine.source.importer import row_hash
from crmmigrator_gui.engine.target.dataverse import EntityMeta

FINAL_ACTIONS = ("created", "updated", "unchanged", "failed", "skipped")
CARRIED_FROM = ("load", "sample", "delta")  # run kinds whose standing outcomes a new load may carry


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


def content_hash(row_digest: str, payload: Any) -> str:
    """What a record's outcome was built from: its staged row(s) AND the payload they produced. The payload
    covers what the row alone does not — values taken from a parent row (a contact's last name falling back to
    its customer's street), lookups re-pointed to a re-created parent, a changed transform — so a new load
    carries a record only when it would send exactly what it sent before."""
    shape = {
        name: getattr(payload, name)
        for name in ("key", "body", "binds", "post_state", "refs", "insert_only", "title", "filename", "parent_id")
        if hasattr(payload, name)
    }
    if isinstance(getattr(payload, "data", None), bytes):
        shape["data"] = hashlib.sha256(payload.data).hexdigest()
    text = json.dumps(shape, sort_keys=True, default=lambda o: asdict(o) if is_dataclass(o) else str(o))
    return hashlib.sha256(f"{row_digest}|{text}".encode()).hexdigest()


class LedgerRunner:
    """A run's bookkeeping and batch loop. A destination's runner subclasses it: it sets ``builder`` (its payload
    builder) and adds its reads and writes (``_match_users``, ``_load_part``, ``_link``, ``_target_url``)."""

    kind = "load"
    subset: dict[str, set[str]] | None = None  # a sample's slice: source object -> source ids
    recheck = False  # True: no record is carried, every one is read and compared at the destination
    builder: Any

    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: Any,
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
        self.seq = 0
        self.warnings: list[str] = []
        self.maps: dict[str, str | None] = {}  # source object -> map fingerprint this run's records are built with
        self.carried: set[tuple[str, str]] = set()  # (entity, key) of the records this run carried unchanged

    # ------------------------------------------------------------------ destination hooks
    def _target_url(self) -> str:
        raise NotImplementedError

    def _match_users(self) -> None:
        raise NotImplementedError

    def _load_part(self, part: Part, done_before: dict[tuple[str, str], str], pending_keys: set[str]) -> None:
        raise NotImplementedError

    def _link(self, part: Part, link: dict[str, Any]) -> None:
        raise NotImplementedError

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
            try:
                payload = build(source_id, raw, [m[1] for m in members] if members else None)
            except Skip as exc:
                outcomes[source_id] = Outcome("skipped", code=exc.code, message=str(exc))
            except BuildError as exc:
                outcomes[source_id] = Outcome("failed", code=exc.code, message=explain(exc.code, str(exc)))
            else:
                batch.hashes[source_id] = content_hash(record_hash(raw, members), payload)
                standing = carry.get(source_id)
                if standing is not None and standing[1] == batch.hashes[source_id]:
                    outcomes[source_id] = Outcome("unchanged", standing[0])
                    self.carried.add((part.entity, self.builder.key(part, source_id)))
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
        """Record id -> (destination id, content hash) of the part's records a new full load may carry as
        unchanged without a request (the caller still compares the hash with the one of the row and payload it
        builds now, see :func:`content_hash`).

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
