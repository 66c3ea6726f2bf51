"""Pre-flight: everything that would block or degrade the load, found before anything is written.

``preflight(project)`` reads the project and the destination — never writes to the destination — and
returns the CLI contract's document (``{"blocking": N, "findings": [...]}``, plus ``warnings``,
``summary``, ``grade`` and ``estimate``). It runs in four steps:

1. the project and the destination (:mod:`.checks`): map confirmed, schema present, the Dynamics 365
   Sales Professional custom-table cap, Salesforce audit fields, technicians matched to users by e-mail
   with the fallback owner named;
2. a dry run of the load (:mod:`.dryrun`) in load order with the load's own payload builders, against the
   destination's metadata as it will be after ``schema apply`` (:mod:`.planned`): the records that would
   fail (bad values, too long, required empty, files too large) or be skipped (orphans, parents that fail);
3. the data itself (:mod:`.records`), on the same pass over the staged rows: e-mails, phones, duplicates,
   test records, totals, spreadsheet damage; then choice values without a mapping;
4. the API budget, the complexity grade and a timeline (:mod:`.estimate`).

Rows stream from staging (memory holds record keys and per-object indexes, not records), progress goes to
the callback about ten times a second, and the cancel token is checked between chunks of 500 rows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from crmmigrator_gui.engine.mapping.maps import is_confirmed
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.plan.preflight import checks
from crmmigrator_gui.engine.plan.preflight.dryrun import DryRun
from crmmigrator_gui.engine.plan.preflight.estimate import (
    GradeInputs,
    PartVolume,
    estimate,
    grade,
    timeline_days,
)
from crmmigrator_gui.engine.plan.preflight.findings import CODES, Finding, Findings
from crmmigrator_gui.engine.plan.preflight.planned import PlannedDataverse, PlannedSalesforce
from crmmigrator_gui.engine.plan.preflight.records import RecordChecks
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import destination

__all__ = ["CODES", "Finding", "preflight"]

NOT_LOADING_LIMIT = 10_000  # records listed by id in the result (the counts are always complete)


class _Ticker:
    """Turns row counts into throttled progress events and cancel checks."""

    def __init__(self, progress: ProgressCallback, cancel: CancelToken, total: int) -> None:
        self.progress = progress
        self.cancel = cancel
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, label: str, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total:
            self.last = now
            elapsed = max(now - self.started, 1e-6)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate else None
            self.progress(ProgressEvent("preflight", label, min(self.done, self.total), self.total, rate, eta))
        self.cancel.raise_if_cancelled()


def preflight(
    project: Project, *, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None
) -> dict[str, Any]:
    """Check the project against its destination without writing anything there.

    Returns the contract's document: ``blocking`` (count), ``warnings`` (count), ``findings``
    [{severity, blocking, code, object, field, source_id, message, detail?}], ``summary`` (per code),
    ``grade`` {level, reasons}, ``estimate`` {requests, api_budget, load_minutes, timeline_days, basis}.
    Raises CancelledError when cancelled (nothing was written), DestinationError when the destination
    cannot be read.
    """
    cancel = cancel or CancelToken()
    started = time.monotonic()
    findings = Findings()
    playbook = load_playbook(project.source, project.target, project.edition)
    staged = project.source_object_names()
    if not staged:
        findings.add(Finding("blocking", "NOTHING_STAGED", "nothing is imported or extracted yet"))
    elif not is_confirmed(project):
        findings.add(
            Finding(
                "blocking", "MAP_UNCONFIRMED", "the map has unconfirmed rows; review with `map show`, then `map accept`"
            )
        )
    with destination(project) as client:
        progress(ProgressEvent("preflight", "", 0, 1, message="reading the destination"))
        findings.extend(checks.schema_findings(project, playbook, client))
        findings.extend(checks.edition_findings(project, playbook, client))
        findings.extend(checks.audit_findings(project, client))
        _fallback_id, fallback_label, problems = checks.fallback_owner(project, client)
        findings.extend(problems)
        findings.extend(checks.owner_findings(project, playbook, client, fallback_label))
        cancel.raise_if_cancelled()
        planned: Any = (PlannedSalesforce if project.target == "salesforce" else PlannedDataverse)(
            client, project, playbook
        )
        max_upload, upload_basis = checks.max_upload_size(project, client)
        parts = load_order(playbook, staged)
        ticker = _Ticker(progress, cancel, sum(project.staged_count(p.obj) for p in parts))
        dry = DryRun(project, playbook, planned, findings, max_upload=max_upload, tick=ticker)
        choice_columns, choice_targets = checks.choice_columns(project, planned)
        data = RecordChecks(project, playbook, findings, choice_columns=choice_columns)
        seen: set[str] = set()
        for part in parts:
            on_row = None
            if part.obj not in seen:
                seen.add(part.obj)
                on_row = _bind(data.on_row, part.obj)
            dry.run_part(part, on_row)
        data.finish()
        findings.extend(checks.unmapped_findings(project, choice_targets, data.choice_counts, data.choice_ids))
        volumes = _volumes(playbook, dry, parts)
        users = sum(project.staged_count(o.name) for o in playbook.objects if o.match_user and o.name in seen)
        est, budget_findings = estimate(project, client, volumes, users)
        findings.extend(budget_findings)
    result = _result(project, playbook, findings, dry, est, staged, seen)
    result["estimate"]["basis"]["attachments"] = upload_basis
    result["seconds"] = round(time.monotonic() - started, 2)
    with project.step(
        "preflight", {"blocking": result["blocking"], "warnings": result["warnings"], "summary": result["summary"]}
    ):
        pass
    progress(ProgressEvent("preflight", "", 1, 1, message=f"{result['blocking']} blocking finding(s)"))
    return result


def _bind(callback: Any, obj: str) -> Any:
    return lambda sid, raw: callback(obj, sid, raw)


def _volumes(playbook: Playbook, dry: DryRun, parts: list[Any]) -> list[PartVolume]:
    volumes = []
    for part in parts:
        stats = dry.stats.get(part.qualified, {})
        records = int(stats.get("loads", 0))
        is_file = dry.salesforce and dry.builder.file_spec(part) is not None  # type: ignore[attr-defined]
        volumes.append(
            PartVolume(
                part.qualified,
                part.entity,
                0 if is_file else records,
                files=records if is_file else 0,
                links=records if part.links else 0,
            )
        )
    return volumes


def _result(
    project: Project,
    playbook: Playbook,
    findings: Findings,
    dry: DryRun,
    est: Any,
    staged: list[str],
    loading: set[str],
) -> dict[str, Any]:
    ordered = findings.sorted()
    blocking = sum(f.severity == "blocking" for f in ordered)
    warnings = sum(f.severity == "warning" for f in ordered)
    rows = sum(project.staged_count(o) for o in loading)
    warned: dict[str, set[str]] = defaultdict(set)
    for f in ordered:
        if f.source_id and f.object and f.severity == "warning":
            warned[f.object].add(f.source_id)
    not_loading = _not_loading(dry)
    problems = sum(1 for n in not_loading if not n["on_purpose"])
    field_rows = project.query(
        "SELECT target_field, confidence, status FROM field_maps WHERE target_entity IS NOT NULL OR status = 'unmapped'"
    )
    unclear = sum(
        1
        for r in field_rows
        if r["status"] == "unmapped"
        or (r["target_field"] or "").startswith(("new_cf_", "CF_"))
        or r["confidence"] < 0.8
    )
    custom_tables = {t["name"] for t in playbook.schema.get("tables", [])}
    inputs = GradeInputs(
        objects=len(loading),
        records=rows,
        decomposed=sum(1 for o in playbook.objects if o.name in loading and len(o.parts) > 1),
        merged=sum(1 for o in playbook.objects if o.name in loading and any(p.group_by for p in o.parts)),
        custom_tables=len({p.entity for o in playbook.objects if o.name in loading for p in o.parts} & custom_tables),
        unclear_fields=unclear / len(field_rows) if field_rows else 0.0,
        failing_share=problems / max(rows, 1),
        warning_share=sum(len(v) for v in warned.values()) / max(rows, 1),
        api_share=est.share,
        edition_capped=any(f.code == "EDITION_TABLE_LIMIT" and f.severity == "blocking" for f in ordered),
    )
    days, days_basis = timeline_days(inputs, est.load_minutes, est.share, blocking)
    summary = findings.summary()
    return {
        "blocking": blocking,
        "warnings": warnings,
        "findings": [f.to_json() for f in ordered],
        "summary": summary,
        "grade": grade(inputs),
        "estimate": {
            "requests": est.requests,
            "writes": est.writes,
            "api_budget": {
                "limit": est.limit,
                "window": est.window,
                "share": est.share,
                "basis": est.limit_basis,
                "peak_per_5_minutes": est.peak_per_5_minutes,
                "service_protection": "6,000 / 5 min" if project.target == "dynamics365" else None,
                **est.extra,
            },
            "load_minutes": est.load_minutes,
            "timeline_days": days,
            "basis": {"rate": est.rate_basis, "timeline": days_basis},
        },
        "records": {
            "source": rows,
            "destination": sum(s.get("records", 0) for s in dry.stats.values()),
            "would_load": sum(s.get("loads", 0) for s in dry.stats.values()),
            "would_fail": sum(s.get("fails", 0) for s in dry.stats.values()),
            "would_skip": sum(s.get("skipped", 0) for s in dry.stats.values()),
            "by_part": dry.stats,
            "not_loading": not_loading[:NOT_LOADING_LIMIT],
            "not_loading_count": len(not_loading),
        },
        "objects_not_loaded": [o for o in staged if o not in loading],
    }


def _not_loading(dry: DryRun) -> list[dict[str, Any]]:
    """Per source record, the worst outcome of its parts (failed over skipped), as the load's report counts it."""
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for obj, part, rid, outcome, reason, on_purpose in dry.not_loading:
        held = worst.get((obj, rid))
        if held is None or (outcome == "failed" and held["outcome"] != "failed"):
            worst[(obj, rid)] = {
                "object": obj,
                "source_id": rid,
                "part": part,
                "outcome": outcome,
                "reason": reason,
                "on_purpose": on_purpose and (held is None or held["on_purpose"]),
            }
    return list(worst.values())
