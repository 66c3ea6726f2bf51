"""Exact rollback of a run: unlink, restore what it updated, delete what it created, and never
overwrite somebody else's later change without being told to.

Works from the crosswalk alone, so it runs after the app was closed and reopened. Links and updates
are restored to the snapshot taken before the load wrote them (nulls, lookups and state included);
creates are deleted in reverse creation order (children before parents). Each batch is committed as
it completes, so an interrupted rollback resumes where it stopped; a record already gone counts as done.

**Changed after the run.** Before a batch is written its records are read back (one query per ~100
ids). A record counts as changed when a field we wrote no longer holds what we last wrote to it, or
when its modified time is later than our last touch of it by more than :data:`TOLERANCE` (the HTTP
``Date`` header our touch times come from has one-second resolution) *and* falls outside every window
in which we ourselves were writing: our own later writes move other records' modified time too (new
invoice lines re-total the invoice, deleting children touches the parent), so a change made *during*
one of our runs is only caught by the field check. Touch times are the destination's clock (see
:func:`~.ledger.server_now`), so clock skew between this machine and the server does not matter.

A changed record is refused (neither restored nor deleted), listed in ``RunResult.failures`` with
what differs (ours → theirs) and who changed it when, and the run ends ``rollback_incomplete``:
resumable, and ``force=True`` rolls the refused records back anyway (audited as forced). Rolling back
newest first (``all_runs``) keeps our own later runs from looking like changes; the rollback's restore
writes are touches too (``rolled_back_at`` holds their server time), so an earlier run's rollback does
not take them for somebody else's.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError, MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor
from crmmigrator_gui.engine.run.ledger import server_now
from crmmigrator_gui.engine.run.load import _near, _same, _state_op
from crmmigrator_gui.engine.run.results import RunResult, summarize
from crmmigrator_gui.engine.target.batch import BatchOp
from crmmigrator_gui.engine.target.connection import destination
from crmmigrator_gui.engine.target.dataverse import DataverseClient, EntityMeta

BATCH = 200
READ_CHUNK = 100  # ids per read-back query (keeps the URL short)
TOLERANCE = timedelta(seconds=2)  # Date headers carry whole seconds
BATCH_SLACK = timedelta(seconds=60)  # our writes of a batch can precede its commit (and its touch time) by this
WRITE_ACTIONS = ("created", "updated", "linked", "pending", "pending_update")
NUMERIC = ("Money", "Decimal", "Double", "Integer", "BigInt", "Picklist", "State", "Status")
CHANGED = "CHANGED_AFTER_RUN"


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
    force: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> list[RunResult]:
    """Roll back one run (the latest by default), one given run, or all runs newest first.

    ``force`` rolls back records that were changed in the destination after the run too; without it
    they are refused and listed (status ``rollback_incomplete``, resumable); ``all_runs`` stops at the first
    run that could not be rolled back completely."""
    rollback_run: Any = _rollback_run
    if project.target == "salesforce":
        from crmmigrator_gui.engine.run import rollback_salesforce

        rollback_run = rollback_salesforce._rollback_run
    cancel = cancel or CancelToken()
    who = actor or current_actor()
    results: list[RunResult] = []
    with destination(project) as client:
        for rid in runs_to_roll_back(project, run_id, all_runs):
            results.append(rollback_run(project, client, rid, progress, cancel, who, force=force))
            if results[-1].status != "rolled_back":
                break  # an older run's records may be the parents of what this one had to leave
    return results


# ---------------------------------------------------------------------------------------------- shared


def instant(value: Any) -> datetime | None:
    """An aware datetime from the ISO forms both destinations use (``Z``, ``+00:00``, ``+0000``)."""
    if not isinstance(value, str) or len(value) < 19 or value[4:5] != "-" or value[10:11] != "T":
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@dataclass
class Conflict:
    """A record somebody changed in the destination after our run."""

    row: dict[str, Any]
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (ours, theirs)
    modified_on: str | None = None
    modified_by: str | None = None

    @property
    def message(self) -> str:
        who = f" by {self.modified_by}" if self.modified_by else ""
        when = f" at {self.modified_on}" if self.modified_on else ""
        if self.fields:
            what = "; ".join(f"{name}: {_show(ours)} → {_show(theirs)}" for name, (ours, theirs) in self.fields.items())
        else:
            what = "modified after our last write (no field we wrote differs)"
        return (
            f"{self.row['target_entity']} {self.row['key']} (source {self.row['source_object']} "
            f"{self.row['source_id']}) was changed in the destination after the run{who}{when}: {what}; "
            "left as it is (roll back with --force to overwrite it)"
        )

    def failure(self, forced: bool) -> dict[str, Any]:
        return {
            "source_object": self.row["source_object"],
            "part": self.row["part"],
            "source_id": self.row["source_id"],
            "target_entity": self.row["target_entity"],
            "key": self.row["key"],
            "dest_id": self.row["dest_id"],
            "action": "forced" if forced else "refused",
            "code": CHANGED,
            "message": self.message,
            "fields": {name: {"ours": ours, "theirs": theirs} for name, (ours, theirs) in self.fields.items()},
            "modified_on": self.modified_on,
            "modified_by": self.modified_by,
        }


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


class Touches:
    """Our own writes as the crosswalk remembers them: per record what we last wrote and when we last
    touched it, and the windows in which we were writing at all (see the module docstring)."""

    def __init__(self, project: Project, session_start: str) -> None:
        self.project = project
        self.windows: list[tuple[datetime, datetime]] = []
        spans = project.query(
            "SELECT MIN(at) AS a, MAX(at) AS b FROM crosswalk GROUP BY run_id UNION ALL "
            "SELECT MIN(rolled_back_at), MAX(rolled_back_at) FROM crosswalk WHERE rolled_back_at IS NOT NULL "
            "GROUP BY run_id"
        )
        for span in spans:
            a, b = instant(span["a"]), instant(span["b"])
            if a and b:
                self.windows.append((a - BATCH_SLACK, b + TOLERANCE))
        self.session = instant(session_start)  # whole seconds: a change in the same second counts as ours

    def ours(self, moment: datetime) -> bool:
        """True when a modification at ``moment`` may be one of our own writes' side effects."""
        if self.session and moment >= self.session:
            return True
        return any(a <= moment <= b for a, b in self.windows)

    def history(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[dict[str, Any], datetime | None]]:
        """(entity, key) -> (what we last wrote to it, field by field; our last touch of it)."""
        wanted = sorted({(r["target_entity"], r["key"]) for r in rows})
        found: dict[tuple[str, str], tuple[dict[str, Any], datetime | None]] = {}
        by_entity: dict[str, list[str]] = defaultdict(list)
        for entity, key in wanted:
            by_entity[entity].append(key)
        for entity, keys in by_entity.items():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self.project.query(
                    f"SELECT key, action, written, at, rolled_back_at FROM crosswalk WHERE target_entity = ? AND key "
                    f"IN ({marks}) ORDER BY run_id, seq",
                    (entity, *chunk),
                ):
                    expected, touch = found.get((entity, row["key"]), ({}, None))
                    if row["action"] in WRITE_ACTIONS and row["rolled_back_at"] is None:
                        expected = {**expected, **json.loads(row["written"] or "{}")}
                        touch = _later(touch, instant(row["at"]))
                    touch = _later(touch, instant(row["rolled_back_at"]))
                    found[(entity, row["key"])] = (expected, touch)
        return found

    def judge(
        self,
        row: dict[str, Any],
        differences: dict[str, tuple[Any, Any]],
        modified_on: Any,
        modified_by: str | None,
        last_touch: datetime | None,
        restored: bool = False,
    ) -> Conflict | None:
        """A Conflict when the record was changed after our last touch (values, or time outside our windows).

        ``restored``: every field that differs already holds its prior value, i.e. an earlier attempt of
        this rollback wrote it and was interrupted before it could record so; not a change by anyone else."""
        if restored and differences:
            return None
        moment = instant(modified_on)
        late = bool(moment and last_touch and moment > last_touch + TOLERANCE and not self.ours(moment))
        if not differences and not late:
            return None
        return Conflict(row, differences, str(modified_on) if modified_on else None, modified_by)


def as_updates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An update intent (``pending_update``: snapshot taken, write sent, crash before the commit) is rolled back
    like an update: its prior values are the snapshot read before the write, so restoring them is exact whether
    or not the write landed."""
    for row in rows:
        if row["action"] == "pending_update":
            row["action"] = "updated"
    return rows


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def numbers_equal(ours: Any, theirs: Any) -> bool | None:
    """Decimal comparison of two numbers or numeric strings (the crosswalk stores Decimals as text);
    None when either is not a number."""
    if isinstance(ours, bool) or isinstance(theirs, bool) or ours is None or theirs is None:
        return None
    try:
        return Decimal(str(ours)) == Decimal(str(theirs))
    except InvalidOperation:
        return None


def values_equal(ours: Any, theirs: Any) -> bool:
    """Our written value against the value read back: numbers by value, date-times by instant."""
    if ours in (None, "") or theirs in (None, ""):
        return ours in (None, "") and theirs in (None, "")
    same_number = numbers_equal(ours, theirs)
    if same_number is not None:
        return same_number
    a, b = instant(ours), instant(theirs)
    if a is not None and b is not None:
        return a == b
    return _same(ours, theirs)


def finish(
    project: Project,
    client: Any,
    run_id: int,
    *,
    actor: str,
    started: float,
    requests_before: int,
    problems: list[str],
    conflicts: list[Conflict],
    forced: list[Conflict],
) -> RunResult:
    """Summarize, audit (forced records by key) and set the run's status. A record refused on several
    crosswalk rows (its create and its link) is listed once."""
    conflicts, forced = _once(conflicts), _once(forced)
    status = "rolled_back" if not problems and not conflicts else "rollback_incomplete"
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
    result.seconds = round(time.monotonic() - started, 3)
    result.failures = [c.failure(False) for c in conflicts] + [c.failure(True) for c in forced]
    warnings = []
    if conflicts:
        warnings.append(
            f"{len(conflicts)} record(s) were changed in the destination after run {run_id} and were left as "
            "they are (see failures); roll back with --force to overwrite them"
        )
    if forced:
        warnings.append(f"{len(forced)} record(s) changed after run {run_id} were rolled back anyway (--force)")
    result.warnings = warnings + problems[:50]
    detail = {
        "run_id": run_id,
        "problems": len(problems),
        "refused": [f"{c.row['target_entity']} {c.row['key']}" for c in conflicts][:500],
        "forced": [f"{c.row['target_entity']} {c.row['key']}" for c in forced][:500],
    }
    with project.step(f"rollback {status}", detail, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
    return result


def _once(conflicts: list[Conflict]) -> list[Conflict]:
    seen: dict[tuple[str, str], Conflict] = {}
    for conflict in conflicts:
        seen.setdefault((conflict.row["target_entity"], conflict.row["key"]), conflict)
    return list(seen.values())


def start(project: Project, run_id: int, actor: str, force: bool) -> None:
    with project.step("rollback start", {"run_id": run_id, "force": force}, actor=actor):
        project.db.conn.execute("UPDATE runs SET status = 'rolling_back' WHERE id = ?", (run_id,))


# ---------------------------------------------------------------------------------------------- Dataverse


def _rollback_run(
    project: Project,
    client: DataverseClient,
    run_id: int,
    progress: ProgressCallback,
    cancel: CancelToken,
    actor: str,
    *,
    force: bool = False,
) -> RunResult:
    started = time.monotonic()
    requests_before = client.requests
    start(project, run_id, actor, force)
    touches = Touches(project, server_now(client))
    rows = project.query(
        "SELECT id, source_object, part, source_id, target_entity, key, dest_id, action, prior, written FROM "
        "crosswalk WHERE run_id = ? AND rolled_back_at IS NULL AND action IN ('linked', 'updated', 'created', "
        "'pending', 'pending_update', 'deleted') ORDER BY seq DESC",
        (run_id,),
    )
    rows = as_updates(rows)
    problems: list[str] = []
    deletions = [r for r in rows if r["action"] == "deleted"]
    if deletions:  # a delta's applied deletions: re-created first (they came last), parents first
        _recreate(project, client, deletions, problems)
    rows = [r for r in rows if r["action"] != "deleted"]
    links = [r for r in rows if r["action"] == "linked"]
    updates = [r for r in rows if r["action"] == "updated"]
    creates = [r for r in rows if r["action"] in ("created", "pending")]
    total, done = len(rows), 0
    conflicts: list[Conflict] = []
    forced: list[Conflict] = []
    for group, op_kind in ((links, "restore"), (updates, "restore"), (creates, "delete")):
        for index in range(0, len(group), BATCH):
            chunk = group[index : index + BATCH]
            for row in chunk:
                if not row["dest_id"]:
                    row["dest_id"] = _find(client, project, row)
            found = _changed(client, touches, [r for r in chunk if r["dest_id"]])
            todo = []
            for row in chunk:
                conflict = found.get(row["id"])
                if conflict is not None and not force:
                    conflicts.append(conflict)
                    continue
                if conflict is not None:
                    forced.append(conflict)
                todo.append(row)
            _apply(project, client, todo, op_kind, problems)
            done += len(chunk)
            progress(ProgressEvent("rollback", f"run {run_id}", done, total))
            cancel.raise_if_cancelled()
    return finish(
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


def _apply(
    project: Project, client: DataverseClient, rows: list[dict[str, Any]], op_kind: str, problems: list[str]
) -> None:
    """One batch of deletes or restores; the rows that succeeded (or whose record is gone) are marked."""
    ops: list[BatchOp] = []
    owners: list[tuple[dict[str, Any], list[int]]] = []
    for row in rows:
        if not row["dest_id"]:
            owners.append((row, []))  # a pending create that never reached the destination
            continue
        meta = client.entity(row["target_entity"])
        url = client.path(f"{meta.entity_set}({row['dest_id']})")
        first = len(ops)
        if op_kind == "delete":
            ops.append(BatchOp("DELETE", url))
        else:
            ops.extend(_restore_ops(client, meta, row["dest_id"], json.loads(row["prior"] or "{}")))
        owners.append((row, list(range(first, len(ops)))))
    results = client.batch(ops, continue_on_error=True) if ops else []
    touched = server_now(client)
    with project.transaction():
        for row, indexes in owners:
            bad = [results[i] for i in indexes if not (results[i].ok or results[i].status == 404)]
            if bad:
                problems.append(f"{row['target_entity']} {row['key']}: {bad[0].error[1]}")
                continue
            project.db.conn.execute("UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched, row["id"]))
            if op_kind == "delete":
                project.db.conn.execute(
                    "DELETE FROM xref WHERE target_entity = ? AND key = ?", (row["target_entity"], row["key"])
                )


def _recreate(project: Project, client: DataverseClient, rows: list[dict[str, Any]], problems: list[str]) -> None:
    """Re-create records a delta deleted, from the snapshot taken before the delete, with the same primary id
    (Dataverse accepts the primary key in a create body), then their state; the xref points at them again.
    A record that already exists again (an interrupted earlier attempt) counts as done."""
    for index in range(0, len(rows), BATCH):
        chunk = rows[index : index + BATCH]
        ops: list[BatchOp] = []
        owners: list[tuple[dict[str, Any], list[int]]] = []
        for entity in sorted({r["target_entity"] for r in chunk}):
            meta = client.entity(entity)
            group = [r for r in chunk if r["target_entity"] == entity]
            present = _read(client, meta, [meta.primary_id], [str(r["dest_id"]) for r in group])
            for row in group:
                if str(row["dest_id"]).lower() in present or not row["prior"]:
                    owners.append((row, []))
                    continue
                body = json.loads(row["prior"])
                state = {k: body.pop(k) for k in ("statecode", "statuscode") if k in body}
                first = len(ops)
                ops.append(BatchOp("POST", client.path(meta.entity_set), body))
                if state.get("statecode"):  # closed records are created open, then closed the way the load does
                    ops.append(
                        _state_op(
                            client, meta, row["dest_id"], {"statecode": int(state["statecode"]), **_status(state)}
                        )
                    )
                owners.append((row, list(range(first, len(ops)))))
        results = client.batch(ops, continue_on_error=True) if ops else []
        touched = server_now(client)
        with project.transaction():
            for row, indexes in owners:
                bad = [results[i] for i in indexes if not results[i].ok]
                if bad:
                    problems.append(f"{row['target_entity']} {row['key']}: not re-created ({bad[0].error[1]})")
                    continue
                project.db.conn.execute("UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched, row["id"]))
                project.db.conn.execute(
                    "INSERT INTO xref VALUES (?,?,?,?,?,?) ON CONFLICT(target_entity, key) DO UPDATE SET "
                    "dest_id = excluded.dest_id",
                    (row["target_entity"], row["key"], row["dest_id"], row["source_object"], row["source_id"],
                     row["part"]),
                )  # fmt: skip


def _restore_ops(client: DataverseClient, meta: EntityMeta, dest: str, prior: dict[str, Any]) -> list[BatchOp]:
    """The prior values written back; a prior state goes the way the load closes records (``_state_op``):
    reopen first (a closed record refuses field changes), restore the fields, then close again."""
    url = client.path(f"{meta.entity_set}({dest})")
    state = {k: prior.pop(k) for k in ("statecode", "statuscode") if k in prior}
    ops = []
    if state:
        ops.append(BatchOp("PATCH", url, {"statecode": 0}, {"If-Match": "*"}))  # reopen (no-op when active)
    if prior:
        ops.append(BatchOp("PATCH", url, prior, {"If-Match": "*"}))
    if state.get("statecode") is not None:
        ops.append(_state_op(client, meta, dest, {"statecode": int(state["statecode"]), **_status(state)}))
    return ops


def _status(state: dict[str, Any]) -> dict[str, int]:
    return {"statuscode": int(state["statuscode"])} if state.get("statuscode") is not None else {}


def _changed(client: DataverseClient, touches: Touches, rows: list[dict[str, Any]]) -> dict[int, Conflict]:
    """Crosswalk row id -> Conflict, for the rows whose record was changed after our last touch."""
    if not rows:
        return {}
    history = touches.history(rows)
    out: dict[int, Conflict] = {}
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_entity[row["target_entity"]].append(row)
    for entity, group in by_entity.items():
        meta = client.entity(entity)
        columns = {v: k for (k, _t), v in meta.navigation.items()}  # nav property -> lookup column
        select = {meta.primary_id}
        for name in ("modifiedon", "_modifiedby_value"):
            if name.removeprefix("_").removesuffix("_value") in meta.attributes:
                select.add(name)
        for row in group:
            for name in history.get((entity, row["key"]), ({}, None))[0]:
                select.add(_read_name(meta, columns, name) or meta.primary_id)
        current = _read(client, meta, sorted(select), sorted({str(r["dest_id"]) for r in group}))
        for row in group:
            record = current.get(str(row["dest_id"]).lower())
            if record is None:
                continue  # already gone: nothing to protect
            expected, touch = history.get((entity, row["key"]), ({}, None))
            differences = _differences(meta, columns, expected, record)
            prior = json.loads(row["prior"] or "{}") if row["action"] in ("updated", "linked") else None
            restored = prior is not None and all(
                name in prior and not _differences(meta, columns, {name: prior[name]}, record) for name in differences
            )
            conflict = touches.judge(
                row, differences, record.get("modifiedon"), record.get("_modifiedby_value"), touch, restored
            )
            if conflict is not None:
                out[row["id"]] = conflict
    _name_modifiers(client, list(out.values()))
    return out


def _name_modifiers(client: DataverseClient, conflicts: list[Conflict]) -> None:
    """Who changed a record, as a person reads it: ``_modifiedby_value`` is a systemuser GUID, so look the
    users up once (one query for all conflicts). A user we cannot read keeps the GUID rather than nothing."""
    ids = sorted({str(c.modified_by).lower() for c in conflicts if c.modified_by and _guid_like(c.modified_by)})
    if not ids:
        return
    names: dict[str, str] = {}
    try:
        for index in range(0, len(ids), READ_CHUNK):
            values = ",".join(json.dumps(i) for i in ids[index : index + READ_CHUNK])
            flt = f"Microsoft.Dynamics.CRM.In(PropertyName='systemuserid',PropertyValues=[{values}])"
            for user in client.query("systemusers", select=["systemuserid", "fullname", "internalemailaddress"],
                                     filter=flt):  # fmt: skip
                label = user.get("fullname") or user.get("internalemailaddress")
                if label:
                    names[str(user["systemuserid"]).lower()] = str(label)
    except DestinationError:
        return
    for conflict in conflicts:
        if conflict.modified_by:
            conflict.modified_by = names.get(str(conflict.modified_by).lower(), conflict.modified_by)


def _guid_like(value: Any) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}", str(value)))


def _read_name(meta: EntityMeta, columns: dict[str, str], name: str) -> str | None:
    """The column to $select for a written name (``nav@odata.bind`` -> ``_column_value``)."""
    if name.endswith("@odata.bind"):
        column = columns.get(name[: -len("@odata.bind")])
        return f"_{column}_value" if column else None
    attr = meta.attributes.get(name)
    return name if attr is not None and attr.valid_update else None


def _read(client: DataverseClient, meta: EntityMeta, select: list[str], ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for index in range(0, len(ids), READ_CHUNK):
        chunk = ids[index : index + READ_CHUNK]
        values = ",".join(json.dumps(i) for i in chunk)
        flt = f"Microsoft.Dynamics.CRM.In(PropertyName='{meta.primary_id}',PropertyValues=[{values}])"
        for record in client.query(meta.entity_set, select=select, filter=flt):
            found[str(record[meta.primary_id]).lower()] = record
    return found


def _differences(
    meta: EntityMeta, columns: dict[str, str], expected: dict[str, Any], record: dict[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """Written fields that no longer hold what we wrote: name -> (ours, theirs)."""
    out: dict[str, tuple[Any, Any]] = {}
    for name, ours in expected.items():
        read = _read_name(meta, columns, name)
        if read is None or name == meta.primary_id:
            continue
        theirs = record.get(read)
        if name.endswith("@odata.bind"):
            want = _guid(ours)
            if want != (str(theirs).lower() if theirs else None):
                out[name] = (want, theirs)
            continue
        attr = meta.attributes[name]
        if attr.type == "Double" and _near(ours, theirs):
            continue
        if attr.type in NUMERIC and numbers_equal(ours, theirs):
            continue
        if not values_equal(ours, theirs):
            out[name] = (ours, theirs)
    return out


def _guid(bind: Any) -> str | None:
    """The record id in an ``@odata.bind`` value (``/accounts(id)``, or the bare id a link row keeps)."""
    if not bind:
        return None
    match = re.search(r"([0-9a-fA-F]{8}-[0-9a-fA-F-]{27})\)?\s*$", str(bind))
    return match.group(1).lower() if match else str(bind).lower()


def _find(client: DataverseClient, project: Project, row: dict[str, Any]) -> str | None:
    """A 'pending' create whose id we never learned: look it up by its alternate key."""
    from crmmigrator_gui.engine.mapping.playbook import load_playbook

    playbook = load_playbook(project.source, project.target, project.edition)
    meta = client.entity(row["target_entity"])
    found = client.find_by_keys(meta, playbook.key_column, [row["key"]], [meta.primary_id])
    hit = found.get(row["key"])
    return str(hit[meta.primary_id]) if hit else None
