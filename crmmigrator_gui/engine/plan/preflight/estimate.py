"""How much API the load will use, how long it will take, and how hard the migration is.

The request count follows what the load engine sends, batch by batch (see run/load.py and
run/load_salesforce.py): per 500 records of a part, alternate-key reads in chunks of 250 and one
``CreateMultiple`` (or one ``$batch``) on Dataverse; on Salesforce, an external-id query and sObject
Collections of 200 below 2,000 records, Bulk API 2.0 jobs (about six calls per 10,000) above; one upload
per file. Limits (reference sheets): Dataverse service protection 6,000 requests per user per 5 minutes, and
Power Platform request entitlements per 24 h (40,000 per licensed user; an application user draws on the
tenant pool of 500,000 + 5,000 per licence), where every record written counts; Salesforce
``DailyApiRequests`` read live from ``/limits``.

The grade and the timeline follow the seeds' "Complexity grading": object compatibility, mapping clarity,
API constraints and data volume; "8-object category — typical timelines run 2–7 days end-to-end";
"migrations over 2M records are scoped individually".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from crmmigrator_gui.engine.plan.preflight.findings import Finding
from crmmigrator_gui.engine.project.store import Project

DV_BATCH = 500
DV_KEY_CHUNK = 250
DV_METADATA_PER_ENTITY = 12  # definition, attributes, 6 casts, relationships, keys, 2 bulk probes
SF_BATCH = 500
SF_COLLECTION = 200
SF_BULK_THRESHOLD = 2_000
SF_BULK_JOB = 10_000
SF_CALLS_PER_BULK_JOB = 6  # create, upload, close, ~1 poll, successful and failed results
SERVICE_PROTECTION = 6_000  # requests per user per 5-minute sliding window
ENTITLEMENT_LICENSED = 40_000  # per licensed user per 24 h
ENTITLEMENT_POOL = 500_000  # non-licensed (application) users share the tenant pool, + 5,000 per licence
ASSUMED_RATE = {"dynamics365": 50.0, "salesforce": 100.0}  # records per second without a measured run
LARGE_MIGRATION = 2_000_000


@dataclass
class PartVolume:
    part: str
    entity: str
    records: int  # destination records (grouped parts count once)
    files: int = 0
    links: int = 0


@dataclass
class Estimate:
    requests: int
    writes: int
    limit: int
    window: str
    share: float
    load_minutes: float
    rate: float
    rate_basis: str
    limit_basis: str
    peak_per_5_minutes: int
    extra: dict[str, Any] = field(default_factory=dict)


def requests_needed(target: str, volumes: list[PartVolume], *, users: int = 0) -> tuple[int, int]:
    """(HTTP requests, records written) the load sends for these volumes."""
    requests, writes = 0, 0
    entities = {v.entity for v in volumes}
    if target == "salesforce":
        requests += 2 * len(entities) + 3  # describe per object, limits, user info, describe global
        for v in volumes:
            if v.files:
                batches = math.ceil(v.files / 200)
                requests += v.files + 3 * batches
                writes += v.files
                continue
            requests += math.ceil(v.records / SF_COLLECTION)  # external-id reads
            if v.records >= SF_BULK_THRESHOLD:
                requests += math.ceil(v.records / SF_BULK_JOB) * SF_CALLS_PER_BULK_JOB
            else:
                requests += math.ceil(v.records / SF_COLLECTION)
            requests += math.ceil(v.links / SF_COLLECTION) * 2
            writes += v.records + v.links
        requests += math.ceil(users / 100)
        return requests, writes
    requests += DV_METADATA_PER_ENTITY * len(entities) + 2  # + WhoAmI, organization
    for v in volumes:
        batches = math.ceil(v.records / DV_BATCH)
        requests += math.ceil(v.records / DV_KEY_CHUNK) + batches  # key reads + one write per batch
        requests += math.ceil(v.links / DV_KEY_CHUNK) + math.ceil(v.links / DV_BATCH)
        writes += v.records + v.links
    requests += math.ceil(users / 50)
    return requests, writes


def measured_rate(project: Project) -> tuple[float | None, str]:
    """Records per second of the latest load or sample run that moved enough records to time."""
    for run in project.query(
        "SELECT id, kind, stats, seconds FROM runs WHERE kind IN ('load', 'sample', 'delta') AND seconds > 1 "
        "ORDER BY id DESC LIMIT 5"
    ):
        try:
            objects = json.loads(run["stats"] or "{}").get("objects", [])
        except ValueError:
            continue
        moved = sum(int(o.get("created", 0)) + int(o.get("updated", 0)) for o in objects)
        if moved >= 50:
            rate = moved / float(run["seconds"])
            return rate, f"measured on {run['kind']} run {run['id']}: {moved} records in {run['seconds']:.0f} s"
    return None, ""


def daily_limit(project: Project, client: Any) -> tuple[int, str, int | None]:
    """(24-hour budget, where the figure comes from, what is left of it now if the destination says)."""
    override = project.meta("api_entitlement_24h")
    if override:
        return int(override), "project setting api_entitlement_24h", None
    if project.target == "salesforce":
        try:
            limits = client.limits().get("DailyApiRequests") or {}
        except Exception:  # noqa: BLE001 — an org that hides /limits: fall back to the edition's documented floor
            limits = {}
        if limits.get("Max"):
            return int(limits["Max"]), "Salesforce /limits DailyApiRequests", int(limits.get("Remaining", 0))
        return 100_000, "Salesforce Enterprise edition floor (100,000 + 1,000 per licence)", None
    from crmmigrator_gui.engine.target.connection import settings

    auth = settings(project).auth
    if auth == "client-credentials":
        licences = int(project.meta("licensed_users", 0) or 0)
        return (
            ENTITLEMENT_POOL + 5_000 * licences,
            f"tenant pool for application users (500,000 + 5,000 × {licences} licences)",
            None,
        )
    return ENTITLEMENT_LICENSED, "Power Platform entitlement of one licensed user (40,000 per 24 h)", None


def estimate(project: Project, client: Any, volumes: list[PartVolume], users: int) -> tuple[Estimate, list[Finding]]:
    requests, writes = requests_needed(project.target, volumes, users=users)
    limit, limit_basis, remaining = daily_limit(project, client)
    rate, rate_basis = measured_rate(project)
    if rate is None:
        rate = ASSUMED_RATE.get(project.target, 50.0)
        rate_basis = f"assumed {rate:.0f} records/s for one worker (no load or sample run measured yet)"
    records = sum(v.records + v.files + v.links for v in volumes)
    minutes = records / rate / 60 if rate else 0.0
    peak = int(requests / max(minutes / 5, 1.0)) if requests else 0
    findings: list[Finding] = []
    if project.target == "salesforce":
        used = requests
        budget = remaining if remaining is not None else limit
        share = used / budget if budget else float("inf")
        window = "24 h (rolling)"
        base = f"the load needs ~{used:,} API calls; {budget:,} of the org's {limit:,} daily calls are left"
        if used > budget:
            findings.append(
                Finding(
                    "blocking",
                    "API_BUDGET",
                    f"{base}: Salesforce stops the load with "
                    "REQUEST_LIMIT_EXCEEDED before it ends; load over several days (delta) or "
                    "raise the limit",
                    detail={"needed": used, "remaining": budget, "limit": limit},
                )
            )
        elif share > 0.5:
            findings.append(
                Finding(
                    "warning",
                    "API_BUDGET",
                    f"{base}: the load would use {share:.0%} of what is left; other integrations share it",
                    detail={"needed": used, "remaining": budget},
                )
            )
        else:
            findings.append(
                Finding("info", "API_BUDGET", f"{base} ({share:.1%})", detail={"needed": used, "remaining": budget})
            )
        est = Estimate(
            requests, writes, budget, window, round(share, 4), round(minutes, 1), rate, rate_basis, limit_basis, peak
        )
        return est, findings
    units = writes + requests  # every Target of a bulk message counts, and every read
    share = units / limit if limit else float("inf")
    base = (
        f"the load needs ~{requests:,} requests carrying ~{writes:,} writes (~{units:,} entitlement units); "
        f"the 24-hour entitlement is {limit:,} ({limit_basis})"
    )
    detail = {"requests": requests, "writes": writes, "units": units, "limit": limit, "peak_per_5_minutes": peak}
    if units > limit:
        days = math.ceil(units / limit)
        findings.append(
            Finding(
                "warning",
                "API_BUDGET",
                f"{base}: over the entitlement — enforcement is soft "
                f"(reporting, throttling, add-on packs of 50,000), or spread the load over {days} "
                "days with delta loads",
                detail=detail,
            )
        )
    else:
        findings.append(Finding("info", "API_BUDGET", f"{base} ({share:.1%})", detail=detail))
    if peak > SERVICE_PROTECTION:
        findings.append(
            Finding(
                "info",
                "API_BUDGET",
                f"at ~{peak:,} requests per 5 minutes the load meets the "
                "6,000-request service-protection window: the client waits out Retry-After, which "
                "lengthens the load",
                detail=detail,
            )
        )
    est = Estimate(
        requests,
        writes,
        limit,
        "24 h",
        round(share, 4),
        round(minutes, 1),
        rate,
        rate_basis,
        limit_basis,
        peak,
        {"entitlement_units": units},
    )
    return est, findings


# ---------------------------------------------------------------------------------------------- grade


@dataclass
class GradeInputs:
    objects: int  # source objects that load
    records: int  # staged source rows
    decomposed: int = 0  # objects split into several destination records
    merged: int = 0  # objects merged (grouped) into fewer records
    custom_tables: int = 0
    unclear_fields: float = 0.0  # share of field rows that are custom columns or below 0.8 confidence
    failing_share: float = 0.0  # share of records with a blocking finding
    warning_share: float = 0.0  # share of records with a warning
    api_share: float = 0.0  # the load's share of the daily API budget
    edition_capped: bool = False


LEVELS = ("Simple", "Standard", "Complex", "Advanced")


def grade(inputs: GradeInputs) -> dict[str, Any]:
    """A level (Simple < Standard < Complex < Advanced) with the reasons that set it."""
    score = 0
    reasons: list[str] = []

    def add(points: int, reason: str) -> None:
        nonlocal score
        score += points
        reasons.append(reason)

    n = inputs.objects
    add(0 if n <= 4 else 1 if n <= 8 else 2 if n <= 12 else 3, f"{n} objects")
    structural = inputs.decomposed + inputs.merged + inputs.custom_tables
    if structural:
        parts = []
        if inputs.decomposed:
            parts.append(f"{inputs.decomposed} split into several records")
        if inputs.merged:
            parts.append(f"{inputs.merged} merged")
        if inputs.custom_tables:
            parts.append(f"{inputs.custom_tables} custom tables")
        add(1 if structural <= 4 else 2, "object compatibility: " + ", ".join(parts))
    else:
        reasons.append("object compatibility: every object maps 1:1 to a standard table")
    if inputs.unclear_fields >= 0.3:
        add(2, f"mapping clarity: {inputs.unclear_fields:.0%} of the field rows are custom or uncertain")
    elif inputs.unclear_fields >= 0.1:
        add(1, f"mapping clarity: {inputs.unclear_fields:.0%} of the field rows are custom or uncertain")
    r = inputs.records
    if r >= LARGE_MIGRATION:
        add(4, f"data volume: {r:,} records (over 2M: scoped individually)")
    elif r >= 250_000:
        add(2, f"data volume: {r:,} records")
    elif r >= 20_000:
        add(1, f"data volume: {r:,} records")
    else:
        reasons.append(f"data volume: {r:,} records")
    if inputs.failing_share >= 0.05:
        add(3, f"data quality: {inputs.failing_share:.1%} of the records would fail or be skipped")
    elif inputs.failing_share > 0:
        add(
            1 if inputs.failing_share < 0.01 else 2,
            f"data quality: {inputs.failing_share:.1%} of the records would fail or be skipped",
        )
    if inputs.warning_share >= 0.1:
        add(1, f"data quality: {inputs.warning_share:.0%} of the records carry warnings")
    if inputs.api_share > 1:
        add(2, f"API constraints: the load needs {inputs.api_share:.1f}× the daily budget")
    elif inputs.api_share > 0.5:
        add(1, f"API constraints: the load needs {inputs.api_share:.0%} of the daily budget")
    if inputs.edition_capped:
        add(3, "edition: the Professional custom-table cap is exceeded")
    level = LEVELS[0 if score <= 2 else 1 if score <= 5 else 2 if score <= 8 else 3]
    return {"level": level, "score": score, "reasons": reasons}


def timeline_days(inputs: GradeInputs, load_minutes: float, api_share: float, blocking: int) -> tuple[list[int], str]:
    """[fewest, most] working days end to end, and how they were reached."""
    n = inputs.objects
    lo, hi = (1, 3) if n <= 4 else (2, 7) if n <= 8 else (3, 10) if n <= 12 else (5, 15)
    basis = [f"{n}-object category: {lo}–{hi} days"]
    load_days = load_minutes / 60 / 8  # working days of unattended loading
    if load_days >= 0.5:
        extra = math.ceil(load_days)
        lo, hi = lo + extra, hi + math.ceil(load_days * 1.5)
        basis.append(f"~{load_minutes / 60:.1f} h of loading")
    if api_share > 1:
        spread = math.ceil(api_share) - 1
        lo, hi = lo + spread, hi + spread
        basis.append(f"API budget spreads the load over {spread + 1} days")
    if blocking:
        lo, hi = lo + 1, hi + 3
        basis.append(f"{blocking} blocking finding(s) to clean up first")
    if inputs.records >= LARGE_MIGRATION:
        hi = max(hi * 2, hi + 10)
        basis.append("over 2M records: scoped individually")
    return [lo, hi], "; ".join(basis)
