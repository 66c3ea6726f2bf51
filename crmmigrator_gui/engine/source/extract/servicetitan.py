"""Dispatch Pro = ServiceTitan v2: extract the tenant over its API into staging, with delta checkpoints.

What is read (reference §1.3; the object names are the playbook's ``dispatchpro-dynamics365`` objects):

=======================  ================================================  ===============================
object                   endpoint                                          delta by
=======================  ================================================  ===============================
business_units           settings ``export/business-units``                continuation token
technicians              settings ``export/technicians``                   continuation token
tag_types                settings ``export/tag-types``                     continuation token
job_types                jpm ``job-types`` (list, ``active=Any``)          ``modifiedOnOrAfter``
zones                    dispatch ``zones`` (list, ``active=Any``)         ``modifiedOnOrAfter``
customers                crm ``export/customers``                          continuation token
locations                crm ``export/locations``                          continuation token
customer_contacts        crm ``export/customers/contacts``                 continuation token
jobs                     jpm ``export/jobs``                               continuation token
appointments             jpm ``export/appointments``                       continuation token
appointment_assignments  dispatch ``export/appointment-assignments``       continuation token
job_history              jpm ``export/job-history``                        continuation token
estimates                sales ``estimates/export``                        continuation token
estimate_items           sales ``estimates/items`` (list)                  ``modifiedOnOrAfter``
invoices                 accounting ``export/invoices``                    continuation token
invoice_items            accounting ``export/invoice-items``               continuation token
payments                 accounting ``export/payments``                    continuation token
job_attachments          forms ``jobs/{id}/attachments`` + download        the jobs of this extraction
=======================  ================================================  ===============================

Exports are walked with ``includeRecentChanges=true`` until ``hasMore`` is false and the last ``continueFrom``
is the object's checkpoint; repeated rows are deduplicated by id (highest ``modifiedOn`` wins). Lists use
``page``/``pageSize`` (the largest size the server accepts) and ``active=Any`` where the model has ``active``.
``--since`` starts every export at that date (``from=<date>``) and every list at ``modifiedOnOrAfter``.

**Checkpoint** (project meta ``extract_checkpoint``, written in the *same transaction* as the staged rows: the
extractor opens the transaction, ``importer.stage_tables`` joins it, then the checkpoint and the merge
bookkeeping are written before the commit, so a failure anywhere leaves the project exactly as it was)::

    {"version": 1, "base_url", "tenant", "extracted_at",
     "objects": {name: {"token": continueFrom | null, "high_water": max modifiedOn seen, "columns": [...]}},
     "merges": {"customers": {loser id: mergedToId}, "locations": {...}}}

A checkpoint made against another URL or tenant is ignored (full extraction). A refused (expired) token
falls back to its object's ``high_water`` date, with a warning.

**Counts** per object: ``records`` rows delivered (after dedupe); ``new`` not staged before; ``changed``
staged before with other values; ``deleted`` rows that became ``active:false`` (deleted or deactivated at the
source, §1.2) or were merged away; ``merged`` merged-away rows; ``duplicates`` repeats dropped.

**Merges** (§1.7): a customer or location whose ``mergedToId`` is set is not staged (and is removed from
staging if an earlier extraction staged it); every ``customerId`` / ``locationId`` that points at it, in this
delivery and among rows already staged, is re-pointed at the survivor (end of the chain), keeping the
original in ``customerIdBeforeMerge`` / ``locationIdBeforeMerge``. Merges are listed in the warnings.

**Accounting** (§1.4 shapes; money arrives as strings and stays exact): an invoice's nested ``items[]`` are
not kept on the invoice row (the same lines arrive, with their own ``active`` and ``modifiedOn``, from
``export/invoice-items``); the invoice's ``customer.id`` becomes ``customerId`` (so merges re-point it like
every other row; payments likewise) and ``derived.paymentStatus`` (``Paid`` when the balance is zero or less,
``PartiallyPaid`` when it is below the total, else ``Unpaid``). Each job gets ``derived.invoiceTotal``, the sum
of the totals of its live invoices (staged and delivered), so the opportunity's value can be filled; a delta
whose invoices change a job's total re-stages that job (counted under ``repointed``, not ``changed``).
Payments are flattened on ``appliedTo[]``: one staged row per application with ``appliedTo.invoiceId``,
``appliedTo.amount``, ``appliedTo.appliedOn`` and ``appliedTo.appliedId``. The staged id
(``derived.paymentApplicationId``) is the payment id when the payment applies to at most one invoice, and
``<payment id>-<invoice id>`` for each application of a payment split over several invoices; rows staged for
an earlier shape of the same payment leave staging (counted as deleted). ``records`` counts payments, so it
matches the API.

**Attachments**: the bytes are downloaded (following a redirect to a pre-signed blob URL without our
credentials) and staged base64-encoded in the extra column ``content.base64``, so the load can write them as
``annotation.documentbody`` and a failed extraction leaves no stray files. Attachment listings are per job
(§1.3 has no tenant-wide list), so a delta lists only the jobs the delta delivered.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.source.extract import ExtractResult
from crmmigrator_gui.engine.source.extract.st_client import Endpoint, ExpiredToken, SourceError, STClient
from crmmigrator_gui.engine.source.extract.st_rows import (
    Deduper,
    ZoneIndex,
    flatten,
    iso,
    money,
    parse_moment,
    payment_applications,
    shape_invoice,
    shape_payment,
    survivor,
)
from crmmigrator_gui.engine.source.importer import RecordTable, stage_tables
from crmmigrator_gui.engine.target import connection

CHECKPOINT_KEY = "extract_checkpoint"
EMBEDDED_BASE = "http://servicetitan.sandbox.localhost"
CONTENT_COLUMN = "content.base64"


@dataclass(frozen=True)
class Source:
    name: str  # playbook source object
    entity: str  # the API's entity (emulator ``counts`` key)
    module: str
    export: str | None = None
    listing: str | None = None
    active_param: bool = False  # the list takes active=True|False|Any (default True hides inactive rows)


SOURCES: tuple[Source, ...] = (
    Source("business_units", "business-units", "settings", export="export/business-units"),
    Source("technicians", "technicians", "settings", export="export/technicians"),
    Source("tag_types", "tag-types", "settings", export="export/tag-types"),
    Source("job_types", "job-types", "jpm", listing="job-types", active_param=True),
    Source("zones", "zones", "dispatch", listing="zones", active_param=True),
    Source("customers", "customers", "crm", export="export/customers"),
    Source("locations", "locations", "crm", export="export/locations"),
    Source("customer_contacts", "customer-contacts", "crm", export="export/customers/contacts"),
    Source("jobs", "jobs", "jpm", export="export/jobs"),
    Source("appointments", "appointments", "jpm", export="export/appointments"),
    Source("appointment_assignments", "appointment-assignments", "dispatch", export="export/appointment-assignments"),
    Source("job_history", "job-history", "jpm", export="export/job-history"),
    Source("estimates", "estimates", "sales", export="estimates/export"),
    Source("estimate_items", "estimate-items", "sales", listing="estimates/items"),
    Source("invoices", "invoices", "accounting", export="export/invoices"),
    Source("invoice_items", "invoice-items", "accounting", export="export/invoice-items"),
    Source("payments", "payments", "accounting", export="export/payments"),
)
ATTACHMENTS = Source("job_attachments", "job-attachments", "forms")
OBJECTS = (*(s.name for s in SOURCES), ATTACHMENTS.name)
ENTITY_OF = {s.name: s.entity for s in (*SOURCES, ATTACHMENTS)}

#: merged entity -> (reference field, objects whose rows carry it)
MERGE_REFS = {
    "customers": ("customerId", ("locations", "customer_contacts", "jobs", "appointments", "estimates", "invoices",
                                 "payments")),
    "locations": ("locationId", ("jobs", "estimates")),
}


# ---------------------------------------------------------------------------------------------- connection


def open_client(project: Project) -> tuple[STClient, Any]:
    """The API client for the project's source, and the embedded emulator (or None for a real tenant)."""
    conn = connection.settings(project, "source")
    if conn.kind == "embedded":
        from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox

        path = connection.embedded_source_path(project)
        if not path.exists():
            raise MigratorError(
                f"no source connection and no embedded ServiceTitan data at {path}; "
                "run `crmmigrator connect PROJECT source --url … --client-id … --secret-env … --app-key-env … "
                "--tenant …` (or `crmmigrator demo`)"
            )
        sandbox = ServiceTitanSandbox(path, faults=conn.faults)
        endpoint = Endpoint(EMBEDDED_BASE, f"{EMBEDDED_BASE}/connect/token", str(sandbox.tenant),
                            sandbox.client_id, sandbox.client_secret, sandbox.app_key)
        return STClient(endpoint, transport=httpx.WSGITransport(app=sandbox)), sandbox
    if not conn.url or not conn.tenant or not conn.client_id:
        raise UsageError("the ServiceTitan source needs --url, --tenant and --client-id (and a secret and app key)")
    if not str(conn.tenant).strip().isdigit():
        raise UsageError(f"the ServiceTitan tenant id is numeric (got {conn.tenant!r})")
    token_url = conn.token_url or "https://auth.servicetitan.io/connect/token"
    endpoint = Endpoint(conn.url.rstrip("/"), token_url, str(conn.tenant).strip(), conn.client_id,
                        connection.load_secret(project, "source", conn.client_id),
                        connection.load_app_key(project, "source"))
    return STClient(endpoint), None


# ---------------------------------------------------------------------------------------------- extraction


class _Run:
    def __init__(self, project: Project, client: STClient, since: str | None, progress: ProgressCallback,
                 cancel: CancelToken) -> None:
        self.project = project
        self.client = client
        self.progress = progress
        self.cancel = cancel
        self.warnings: list[str] = []
        ep = client.endpoint
        saved = project.meta(CHECKPOINT_KEY) or {}
        if saved and (saved.get("base_url") != ep.base_url or str(saved.get("tenant")) != ep.tenant):
            self.warnings.append("the saved checkpoint belongs to another tenant or URL; extracting everything")
            saved = {}
        self.saved = saved
        self.since = _since(since) if since else None
        self.mode = "since" if self.since else ("delta" if saved.get("objects") else "full")
        self.new_state: dict[str, dict[str, Any]] = {}
        self.merges: dict[str, dict[str, str]] = {k: dict(v) for k, v in (saved.get("merges") or {}).items()}
        self.delivered: dict[str, Deduper] = {}

    # -- fetching ------------------------------------------------------------------------------------------

    def _state(self, name: str) -> dict[str, Any]:
        return dict((self.saved.get("objects") or {}).get(name) or {})

    def fetch(self, src: Source) -> Deduper:
        rows = Deduper()
        state = self._state(src.name)
        tokens: list[str] = []
        self.progress(ProgressEvent("extract", src.name, 0, 0, message="reading"))
        if src.export:
            start = self.since or (state.get("token") if self.mode == "delta" else None)
            try:
                for row in self.client.export_all(src.module, src.export, start, tokens.append):
                    rows.add(row)
                    self._tick(src.name, rows)
            except ExpiredToken as exc:
                fallback = state.get("high_water")
                self.warnings.append(f"{src.name}: the saved continuation token was refused ({exc}); "
                                     f"re-reading from {fallback or 'the beginning'}")
                rows, tokens = Deduper(), []
                for row in self.client.export_all(src.module, src.export, (fallback or "")[:10] or None,
                                                  tokens.append):
                    rows.add(row)
                    self._tick(src.name, rows)
        else:
            params: dict[str, Any] = {"active": "Any"} if src.active_param else {}
            floor = self.since or (state.get("high_water") if self.mode == "delta" else None)
            if floor:
                params["modifiedOnOrAfter"] = floor
            for row in self.client.list_all(src.module, src.listing or "", params):
                rows.add(row)
                self._tick(src.name, rows)
        high = rows.high_water
        previous = parse_moment(state.get("high_water"))
        if previous and (high is None or previous > high):
            high = previous
        self.new_state[src.name] = {
            "token": tokens[-1] if tokens else state.get("token"),
            "high_water": iso(high) if high else state.get("high_water"),
            "columns": state.get("columns") or [],
        }
        if rows.repeats:
            self.warnings.append(f"{src.name}: {rows.repeats} repeated row(s) from the export were deduplicated")
        self.delivered[src.name] = rows
        self.progress(ProgressEvent("extract", src.name, len(rows.rows), len(rows.rows)))
        return rows

    def _tick(self, name: str, rows: Deduper) -> None:
        count = len(rows.rows)
        if count % 1000 == 0:
            self.progress(ProgressEvent("extract", name, count, 0))
            self.cancel.raise_if_cancelled()

    def fetch_attachments(self, jobs: Deduper) -> Deduper:
        rows = Deduper()
        job_ids = [rid for rid, row in jobs.rows.items() if row.get("active", True) is not False]
        total = len(job_ids)
        for done, job_id in enumerate(job_ids, 1):
            for row in self.client.list_all(ATTACHMENTS.module, f"jobs/{job_id}/attachments"):
                rows.add(row)
            if done % 100 == 0 or done == total:
                self.progress(ProgressEvent("extract", ATTACHMENTS.name, done, total, message="listing attachments"))
                self.cancel.raise_if_cancelled()
        for done, (rid, row) in enumerate(sorted(rows.rows.items()), 1):
            if row.get("active", True) is False:
                continue
            data = self.client.download(ATTACHMENTS.module, f"jobs/attachment/{rid}")
            row[CONTENT_COLUMN] = base64.b64encode(data).decode("ascii")
            if done % 100 == 0:
                self.progress(ProgressEvent("extract", ATTACHMENTS.name, done, len(rows.rows), message="downloading"))
                self.cancel.raise_if_cancelled()
        state = self._state(ATTACHMENTS.name)
        self.new_state[ATTACHMENTS.name] = {"token": None, "high_water": iso(rows.high_water) if rows.high_water
                                            else state.get("high_water"), "columns": state.get("columns") or []}
        self.delivered[ATTACHMENTS.name] = rows
        return rows

    # -- shaping -------------------------------------------------------------------------------------------

    def apply_merges(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """Record merges; returns (merged-away ids per object, newly merged ids per object)."""
        losers: dict[str, set[str]] = defaultdict(set)
        fresh: dict[str, set[str]] = defaultdict(set)
        for name in MERGE_REFS:
            known = self.merges.setdefault(name, {})
            for rid, row in self.delivered[name].rows.items():
                target = row.get("mergedToId")
                if target not in (None, "", 0):
                    if rid not in known:
                        fresh[name].add(rid)
                    known[rid] = str(target)
                    losers[name].add(rid)
                elif rid in known:  # un-merged (rare): the record is live again
                    known.pop(rid)
            for rid in sorted(fresh[name]):
                end = survivor(known, rid)
                self.warnings.append(f"{name} {rid} was merged into {end} (mergedToId chain); "
                                     f"its records now point at {end}")
        return losers, fresh

    def repoint(self, obj: str, row: dict[str, Any]) -> bool:
        """Re-point a row's merged customer/location references at the survivors; True when changed."""
        changed = False
        for merged, (field, objects) in MERGE_REFS.items():
            if obj not in objects or row.get(field) in (None, ""):
                continue
            original = str(row[field])
            end = survivor(self.merges.get(merged, {}), original)
            if end != original:
                row[f"{field}BeforeMerge"] = row.get(f"{field}BeforeMerge") or original
                row[field] = int(end) if str(end).isdigit() else end
                changed = True
        return changed

    def derive_zones(self, locations: Deduper) -> None:
        if not locations.rows:
            return
        zones = ZoneIndex(list(self.client.list_all("dispatch", "zones", {"active": "Any"})))
        for row in locations.rows.values():
            hit = zones.find(row.get("address"))
            row["derived.zoneId"], row["derived.zoneName"] = hit if hit else (None, None)


def _since(text: str) -> str:
    moment = parse_moment(text)
    if moment is None:
        raise UsageError(f"--since {text!r} is not an ISO 8601 date or date-time")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(name: str, columns: list[str], rows: list[dict[str, str | None]]) -> RecordTable:
    def produce() -> Any:
        for row in rows:
            yield [row.get(c) for c in columns]

    return RecordTable(name=name, columns=columns, rows=produce, path=_api_path(name))


def _api_path(name: str) -> Any:
    from pathlib import Path

    return Path(f"servicetitan:{ENTITY_OF.get(name, name)}")


def extract(project: Project, *, since: str | None = None, progress: ProgressCallback = no_progress,
            cancel: CancelToken | None = None) -> ExtractResult:
    """Extract the ServiceTitan tenant (full, delta from the checkpoint, or ``since`` a date) into staging."""
    if project.source != "dispatchpro":
        raise MigratorError(f"the ServiceTitan extractor serves Dispatch Pro projects, not {project.source}")
    cancel = cancel or CancelToken()
    playbook = load_playbook(project.source, project.target, project.edition)
    client, sandbox = open_client(project)
    try:
        run = _Run(project, client, since, progress, cancel)
        for src in SOURCES:
            run.fetch(src)
            cancel.raise_if_cancelled()
        run.fetch_attachments(run.delivered["jobs"])
        run.derive_zones(run.delivered["locations"])
        for row in run.delivered["invoices"].rows.values():
            shape_invoice(row)
        for row in run.delivered["payments"].rows.values():
            shape_payment(row)
        return _stage(project, playbook, run, since)
    except httpx.HTTPError as exc:
        raise SourceError(f"ServiceTitan call failed ({type(exc).__name__}: {exc})") from exc
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()


def _stage(project: Project, playbook: Any, run: _Run, since: str | None) -> ExtractResult:
    losers, fresh = run.apply_merges()
    conn = project.db.conn
    plan: list[tuple[RecordTable, Any]] = []
    results: list[dict[str, Any]] = []
    repointed_ids: dict[str, set[str]] = defaultdict(set)
    # Rows already staged that point at a record merged away in this extraction.
    carried: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for merged, ids in fresh.items():
        field, objects = MERGE_REFS[merged]
        for obj in objects:
            for sid, raw in project.iter_staged(obj):
                if str(raw.get(field) or "") in ids and sid not in run.delivered[obj].rows:
                    carried[obj][sid] = raw
    stale = _stale_applications(project, run.delivered["payments"])
    if stale:
        losers["payments"] = set(losers.get("payments", set())) | stale
    totals, touched_jobs = _invoice_totals(project, run)
    for name in OBJECTS:
        delivered = run.delivered[name]
        flat: dict[str, dict[str, str | None]] = {}
        for rid, row in delivered.rows.items():
            if name in MERGE_REFS and rid in losers.get(name, set()):
                continue
            run.repoint(name, row)
            if name == "payments":  # one staged row per application (appliedTo[])
                for sid, application in payment_applications(row):
                    flat[sid] = flatten(application)
            else:
                flat[rid] = flatten(row)
        for sid, raw in carried.get(name, {}).items():
            if sid in flat:
                continue
            flat[sid] = _repoint_staged(run, name, raw)
            repointed_ids[name].add(sid)
        if name == "jobs":
            _apply_invoice_totals(project, run, flat, totals, touched_jobs, repointed_ids["jobs"])
        columns = list(run.new_state[name]["columns"])
        known = set(columns)
        for values in flat.values():
            for column in values:
                if column not in known:
                    known.add(column)
                    columns.append(column)
        run.new_state[name]["columns"] = columns
        counts = _classify(project, name, flat, losers.get(name, set()), fresh.get(name, set()),
                           repointed_ids[name], lambda raw, obj=name: _repoint_staged(run, obj, raw))
        counts.update(source_object=name, records=len(delivered.rows), duplicates=delivered.repeats,
                      merged=len(losers.get(name, set()) & fresh.get(name, set())) if name in MERGE_REFS else 0)
        results.append(counts)
        if flat:
            rows = [flat[k] for k in sorted(flat, key=_id_order)]
            plan.append((_table(name, columns, rows), playbook.obj(name)))
    checkpoint = {
        "version": 1,
        "base_url": run.client.endpoint.base_url,
        "tenant": run.client.endpoint.tenant,
        "extracted_at": now_iso(),
        "mode": run.mode,
        "objects": run.new_state,
        "merges": run.merges,
    }
    detail = {"source": "servicetitan", "url": run.client.endpoint.base_url, "tenant": run.client.endpoint.tenant,
              "mode": run.mode, "since": since, "files": [f"servicetitan:{ENTITY_OF[n]}" for n in OBJECTS]}
    with project.transaction():  # stage_tables joins this transaction: rows + checkpoint commit together
        if plan:
            stage_tables(project, plan, action="extract", detail=detail, progress=run.progress, cancel=run.cancel)
        else:
            project.audit("extract", {**detail, "note": "nothing changed at the source"})
        for name, ids in losers.items():
            for rid in ids:
                conn.execute("DELETE FROM staging WHERE object = ? AND source_id = ?", (name, rid))
            conn.execute("UPDATE source_objects SET record_count = (SELECT COUNT(*) FROM staging WHERE object = ?) "
                         "WHERE name = ?", (name, name))
        project.set_meta(CHECKPOINT_KEY, checkpoint)
    requests = run.client.requests
    summary = {n: {k: v for k, v in s.items() if k != "columns"} for n, s in run.new_state.items()}
    return ExtractResult(objects=results, requests=requests, checkpoint={"mode": run.mode, "objects": summary},
                         warnings=run.warnings)


def _id_order(rid: str) -> tuple[int, str]:
    return (int(rid), "") if rid.isdigit() else (0, rid)


def _repoint_staged(run: _Run, obj: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A staged (flattened) row with its merged customer/location references moved to the survivors."""
    out = dict(raw)
    for merged, (field, objects) in MERGE_REFS.items():
        if obj not in objects or out.get(field) in (None, ""):
            continue
        end = survivor(run.merges.get(merged, {}), str(out[field]))
        if end != str(out[field]):
            out[f"{field}BeforeMerge"] = out.get(f"{field}BeforeMerge") or str(out[field])
            out[field] = end
    return out


def _stale_applications(project: Project, payments: Deduper) -> set[str]:
    """Staged payment rows whose payment now stages under other ids (its appliedTo[] changed shape)."""
    stale: set[str] = set()
    if not payments.rows:
        return stale
    wanted = {sid for row in payments.rows.values() for sid, _row in payment_applications(row)}
    for pid in payments.rows:
        for (sid,) in project.db.conn.execute(
            "SELECT source_id FROM staging WHERE object = 'payments' AND (source_id = ? OR source_id LIKE ?)",
            (pid, f"{pid}-%"),
        ):
            if sid not in wanted:
                stale.add(sid)
    return stale


def _invoice_totals(project: Project, run: _Run) -> tuple[dict[str, str], set[str]]:
    """Sum of the live invoices' totals per job id (delivered rows win over staged ones), and the jobs whose
    invoices this extraction delivered (their total may have changed even if the job did not)."""
    delivered = run.delivered["invoices"].rows
    if not delivered and not run.delivered["jobs"].rows:
        return {}, set()
    invoices: dict[str, tuple[str | None, bool, Any]] = {}
    touched: set[str] = set()
    for sid, raw in project.iter_staged("invoices"):
        invoices[sid] = (raw.get("job.id"), raw.get("active") != "false", raw.get("total"))
        if sid in delivered and raw.get("job.id"):
            touched.add(str(raw["job.id"]))  # the job it belonged to before
    for rid, row in delivered.items():
        job = (row.get("job") or {}).get("id")
        invoices[rid] = (None if job is None else str(job), row.get("active", True) is not False, row.get("total"))
        if job is not None:
            touched.add(str(job))
    sums: dict[str, Any] = {}
    for job, live, total in invoices.values():
        amount = money(total)
        if job and live and amount is not None:
            sums[str(job)] = sums.get(str(job), 0) + amount
    return {job: format(amount, "f") for job, amount in sums.items()}, touched


def _apply_invoice_totals(project: Project, run: _Run, flat: dict[str, dict[str, str | None]],
                          totals: dict[str, str], touched: set[str], repointed: set[str]) -> None:
    """``derived.invoiceTotal`` on every job staged now, and on staged jobs whose invoices changed it."""
    for sid, values in flat.items():
        values["derived.invoiceTotal"] = totals.get(sid)
    for jid in sorted(touched - set(flat)):
        row = project.db.conn.execute("SELECT raw FROM staging WHERE object = 'jobs' AND source_id = ?",
                                      (jid,)).fetchone()
        if row is None:
            continue
        raw = json.loads(row[0])
        if raw.get("derived.invoiceTotal") == totals.get(jid):
            continue
        flat[jid] = {**_repoint_staged(run, "jobs", raw), "derived.invoiceTotal": totals.get(jid)}
        repointed.add(jid)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _classify(project: Project, name: str, flat: dict[str, dict[str, str | None]], losers: set[str],
              fresh: set[str], repointed: set[str], normalise: Any) -> dict[str, Any]:
    """new / changed / deleted against what staging held before this extraction."""
    before: dict[str, dict[str, Any]] = {}
    ids = list(flat) + sorted(losers)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        marks = ",".join("?" * len(chunk))
        for sid, raw in project.db.conn.execute(
            f"SELECT source_id, raw FROM staging WHERE object = ? AND source_id IN ({marks})", (name, *chunk)
        ):
            before[sid] = normalise(json.loads(raw))  # merges apply to both sides: a re-point is no change
    new = changed = deleted = 0
    for sid, values in flat.items():
        if sid in repointed:
            continue
        inactive = values.get("active") == "false"
        seen = before.get(sid)
        if inactive and (seen is None or seen.get("active") != "false"):
            deleted += 1
        elif seen is None:
            new += 1
        elif _present(seen) != _present(values):  # empty columns added since do not make a change
            changed += 1
    deleted += sum(1 for sid in losers if sid in fresh or sid in before)
    return {"new": new, "changed": changed, "deleted": deleted, "repointed": len(repointed)}


def counts_by_entity(result: ExtractResult) -> dict[str, int]:
    """``records`` keyed by the API's entity names (what the emulator's ``counts`` reports)."""
    return {ENTITY_OF[o["source_object"]]: o["records"] for o in result.objects}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
