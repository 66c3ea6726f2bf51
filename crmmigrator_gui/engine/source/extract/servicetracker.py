"""ServiceTracker (a Salesforce-hosted app) extractor: describe → SOQL or Bulk 2.0 → staging, with deltas.

One extraction, in order (reference salesforce-api §2.3, §4.3, §5; source-platforms §3):

1. Sign in (client credentials on the My Domain host, or a stored static token; with no source
   connection, the project's embedded Salesforce emulator in-process), pick the newest API version.
2. ``describeGlobal`` and ``describe`` of every playbook object (plus the org's other custom objects,
   listed but not extracted) → the schema inventory in project meta ``source_schema``: every field's
   type, length, lookup targets and picklist values (the auto-mapper's later input).
3. Per object, every describe field is selected (blobs and compound fields left out; lookups to User
   also flattened as ``<relationship>.Email``). ``SELECT COUNT()`` decides the route: SOQL over REST
   with ``nextRecordsUrl`` paging below ``bulk_threshold`` rows, a Bulk API 2.0 query job at or above.
   ContentVersion bodies are downloaded one by one (Bulk cannot read base64 fields).
4. Deltas: each object's high-water mark is the largest ``SystemModstamp`` seen. The next extraction
   asks for ``SystemModstamp > mark - overlap`` (rows re-read in the overlap hash the same and count as
   neither new nor changed), and ``queryAll`` for ``IsDeleted = true`` in the same window: rows we had
   staged are re-staged with ``IsDeleted = "true"`` (the load skips them) and counted as deleted.
   ``since`` forces the window for every object.
5. Rows are spooled to temporary files while the network is in use, then staged, the checkpoint
   (``extract_checkpoint``) and the inventory are written in one transaction: a failed extraction
   leaves the project as it was, and the next one starts from the last committed marks.

Values are normalised so that SOQL (JSON) and Bulk (CSV) produce the same text and the same row hash:
booleans ``true``/``false``, numbers without trailing zeros, date-times ``YYYY-MM-DDTHH:MM:SS.sssZ``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.source.extract import ExtractResult
from crmmigrator_gui.engine.source.extract.sf_client import SalesforceClient, SourceError
from crmmigrator_gui.engine.source.importer import RecordTable, stage_tables
from crmmigrator_gui.engine.target.connection import (
    SandboxTransport,
    embedded_source_path,
    load_secret,
    settings,
)

BULK_THRESHOLD = 10_000  # rows; at or above, a Bulk API 2.0 query job (project meta ``extract_bulk_threshold``)
OVERLAP_SECONDS = 300  # re-read window below each high-water mark (clock skew, long transactions)
MIN_VERSION, MAX_VERSION = 47.0, 66.0  # Bulk 2.0 query needs v47+; the newest we have checked
EMBEDDED_URL = "http://servicetracker.localhost"
EMBEDDED_SEED = "servicetracker"
BULK_PAGE = 50_000  # rows per Bulk results page (maxRecords)
SOQL_BATCH = 2000  # rows per REST query page (Sforce-Query-Options batchSize, 200-2,000)
_SKIP_TYPES = {"base64", "address", "location"}
_NUMERIC = {"int", "long", "double", "currency", "percent"}


@dataclass
class _Pull:
    """What one object's extraction produced (rows spooled to ``path``)."""

    name: str
    columns: list[str]
    path: Path
    rows: int = 0
    deleted: int = 0
    via: str = "soql"
    mark: str | None = None
    seen: set[str] = field(default_factory=set)


def extract(
    project: Project,
    *,
    since: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    bulk_threshold: int | None = None,
    overlap_seconds: float | None = None,
) -> ExtractResult:
    """Extract every playbook object from the ServiceTracker org into staging (one transaction)."""
    cancel = cancel or CancelToken()
    playbook = load_playbook(project.source, project.target, project.edition)
    threshold = int(
        bulk_threshold if bulk_threshold is not None else project.meta("extract_bulk_threshold", BULK_THRESHOLD)
    )
    overlap = timedelta(seconds=OVERLAP_SECONDS if overlap_seconds is None else overlap_seconds)
    forced = _soql_datetime(since) if since else None
    previous = project.meta("extract_checkpoint") or {}
    marks: dict[str, Any] = dict(previous.get("objects", {}))
    warnings: list[str] = []
    client, sandbox = _open_source(project)
    try:
        with tempfile.TemporaryDirectory(prefix="crmmigrator-extract-") as tmp:
            version = _pick_version(client)
            base = f"/services/data/v{version}"
            listing = {o["name"]: o for o in client.get_json(f"{base}/sobjects/")["sobjects"]}
            inventory: dict[str, Any] = {}
            pulls: list[_Pull] = []
            for obj in playbook.objects:
                if obj.name not in listing:
                    warnings.append(f"{obj.name} is not in the source org (not installed, or no access); skipped")
                    continue
                describe = client.get_json(f"{base}/sobjects/{obj.name}/describe/")
                inventory[obj.name] = _inventory(describe)
                cancel.raise_if_cancelled()
                mark = (marks.get(obj.name) or {}).get("SystemModstamp")
                lower = forced or (_soql_datetime(mark, minus=overlap) if mark else None)
                pull = _extract_object(project, client, base, describe, Path(tmp), lower, threshold, progress, cancel)
                pulls.append(pull)
            for name, entry in listing.items():  # the tenant's own custom objects: inventory only
                if entry.get("custom") and name not in inventory and entry.get("queryable", True):
                    inventory[name] = _inventory(client.get_json(f"{base}/sobjects/{name}/describe/"))
                    warnings.append(f"custom object {name} has no mapping in the playbook; described, not extracted")
            requests = client.requests
            if client.retries:
                warnings.append(f"{client.retries} request(s) were retried (row locks, limits or server errors)")
            result = _commit(project, playbook, pulls, marks, inventory, version, since, client.instance_url)
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()
    result.requests = requests
    result.warnings = warnings + result.warnings
    return result


# ---------------------------------------------------------------------------------------------- connection


def _open_source(project: Project) -> tuple[SalesforceClient, Any]:
    conn = settings(project, "source")
    if conn.kind == "embedded":
        from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

        sandbox = SalesforceSandbox(embedded_source_path(project), faults=conn.faults, seed=EMBEDDED_SEED)
        client = SalesforceClient(
            login_url=EMBEDDED_URL,
            client_id="crmmigrator-embedded",
            secret="embedded",
            transport=SandboxTransport(app=sandbox),
        )
        return client, sandbox
    if not conn.url:
        raise UsageError("the source connection has no --url; run `connect PROJECT source --url …` again")
    if conn.auth == "client-credentials":
        if not conn.client_id:
            raise UsageError("client-credentials needs --client-id (the External Client App's consumer key)")
        secret = load_secret(project, "source", conn.client_id)
        return SalesforceClient(
            login_url=conn.url, client_id=conn.client_id, secret=secret, token_url=conn.token_url
        ), None
    if conn.auth == "static-token":
        token = load_secret(project, "source", conn.client_id)
        return SalesforceClient(login_url=None, client_id=None, secret=token, instance_url=conn.url), None
    raise MigratorError(f"--auth {conn.auth} is not available for a Salesforce source; use client-credentials")


def _pick_version(client: SalesforceClient) -> str:
    versions = [str(v["version"]) for v in client.get_json("/services/data/") if isinstance(v, dict)]
    usable = [v for v in versions if MIN_VERSION <= float(v) <= MAX_VERSION]
    if not usable:
        raise SourceError(f"the source org offers no API version between v{MIN_VERSION} and v{MAX_VERSION}")
    return max(usable, key=float)


# ---------------------------------------------------------------------------------------------- describe


def _inventory(describe: dict[str, Any]) -> dict[str, Any]:
    """The schema inventory entry of one object: what the auto-mapper and the admin need to know."""
    return {
        "label": describe.get("label"),
        "label_plural": describe.get("labelPlural"),
        "custom": bool(describe.get("custom")),
        "key_prefix": describe.get("keyPrefix"),
        "fields": [
            {
                "name": f["name"],
                "label": f.get("label"),
                "type": f.get("type"),
                "length": f.get("length"),
                "custom": bool(f.get("custom")),
                "nillable": bool(f.get("nillable", True)),
                "reference_to": list(f.get("referenceTo") or []),
                "relationship": f.get("relationshipName"),
                "picklist": [p["value"] for p in f.get("picklistValues") or [] if p.get("active", True)],
                "restricted": bool(f.get("restrictedPicklist")),
                "calculated": bool(f.get("calculated")),
                "external_id": bool(f.get("externalId")),
            }
            for f in describe.get("fields", [])
        ],
    }


def _columns(describe: dict[str, Any]) -> tuple[list[str], dict[str, str], list[str]]:
    """(selected columns, column -> describe type, blob fields) for one object."""
    columns: list[str] = []
    types: dict[str, str] = {}
    blobs: list[str] = []
    for f in describe.get("fields", []):
        ftype = f.get("type", "string")
        if ftype == "base64":
            blobs.append(f["name"])
            continue
        if ftype in _SKIP_TYPES:
            continue
        columns.append(f["name"])
        types[f["name"]] = ftype
    for f in describe.get("fields", []):  # lookups to users: their e-mail, to match destination users
        if f.get("type") == "reference" and f.get("referenceTo") == ["User"] and f.get("relationshipName"):
            if f["name"] in ("CreatedById", "LastModifiedById"):
                continue
            flat = f"{f['relationshipName']}.Email"
            columns.append(flat)
            types[flat] = "email"
    return columns, types, blobs


# ---------------------------------------------------------------------------------------------- extraction


def _extract_object(
    project: Project,
    client: SalesforceClient,
    base: str,
    describe: dict[str, Any],
    tmp: Path,
    lower: str | None,
    threshold: int,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> _Pull:
    name = describe["name"]
    columns, types, blobs = _columns(describe)
    pull = _Pull(name, columns + blobs, tmp / f"{name}.jsonl", via="soql")
    where = f" WHERE SystemModstamp > {lower}" if lower else ""
    soql = f"SELECT {', '.join(columns + blobs)} FROM {name}{where}"  # a blob selects as its download URL
    if name == "ContentVersion" and "IsLatest" in types:
        soql += (" AND" if where else " WHERE") + " IsLatest = true"
    total = client.get_json(f"{base}/query", params={"q": _count_of(soql)})["totalSize"]
    progress(ProgressEvent("extract", name, 0, total))
    with pull.path.open("w", encoding="utf-8") as spool:
        if total >= threshold and not blobs:
            pull.via = "bulk"
            rows = _bulk_rows(client, base, soql, cancel)
        else:
            rows = _soql_rows(client, base, "query", soql, columns, cancel)
        for raw in rows:
            values = {c: _norm(raw.get(c), types.get(c, "string")) for c in columns}
            for blob in blobs:
                values[blob] = _download(client, raw.get(blob)) if raw.get(blob) else None
            _spool(pull, spool, values)
            if pull.rows % 2000 == 0:
                progress(ProgressEvent("extract", name, pull.rows, total))
                cancel.raise_if_cancelled()
        if lower and "IsDeleted" in types:
            _deleted_rows(project, client, base, name, lower, pull, spool, cancel)
    progress(ProgressEvent("extract", name, pull.rows, max(total, pull.rows), message=pull.via))
    return pull


def _spool(pull: _Pull, spool: Any, values: dict[str, Any]) -> None:
    rid = values.get("Id")
    if not rid or rid in pull.seen:
        return  # the same row twice (page boundary during concurrent edits): keep the first
    pull.seen.add(rid)
    spool.write(json.dumps([values.get(c) for c in pull.columns], ensure_ascii=False) + "\n")
    pull.rows += 1
    stamp = values.get("SystemModstamp")
    if stamp and (pull.mark is None or stamp > pull.mark):
        pull.mark = stamp


def _deleted_rows(
    project: Project,
    client: SalesforceClient,
    base: str,
    name: str,
    lower: str,
    pull: _Pull,
    spool: Any,
    cancel: CancelToken,
) -> None:
    """queryAll for rows deleted in the window: staged ones are re-staged with the deleted marker."""
    soql = f"SELECT Id, SystemModstamp FROM {name} WHERE IsDeleted = true AND SystemModstamp > {lower}"
    for raw in _soql_rows(client, base, "queryAll", soql, ["Id", "SystemModstamp"], cancel):
        rid = str(raw["Id"])
        row = project.db.conn.execute(
            "SELECT raw FROM staging WHERE object = ? AND source_id = ?", (name, rid)
        ).fetchone()
        if row is None:
            continue  # created and deleted between two extractions: never staged, nothing to undo
        before = json.loads(row[0])
        if str(before.get("IsDeleted", "")).lower() == "true":
            continue  # already known as deleted
        values = {c: before.get(c) for c in pull.columns}
        values["IsDeleted"] = "true"
        values["SystemModstamp"] = _norm(raw.get("SystemModstamp"), "datetime")
        before_rows = pull.rows
        _spool(pull, spool, values)
        pull.deleted += pull.rows - before_rows


def _soql_rows(
    client: SalesforceClient, base: str, resource: str, soql: str, columns: list[str], cancel: CancelToken
) -> Iterator[dict[str, Any]]:
    """REST query paging: first page by ``q``, then ``nextRecordsUrl`` until ``done``."""
    headers = {"Sforce-Query-Options": f"batchSize={SOQL_BATCH}"}
    body = client.get_json(f"{base}/{resource}", params={"q": soql}, headers=headers)
    while True:
        for record in body.get("records", []):
            yield _flatten(record)
        if body.get("done", True) or not body.get("nextRecordsUrl"):
            return
        cancel.raise_if_cancelled()
        body = client.get_json(body["nextRecordsUrl"], headers=headers)


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _bulk_rows(client: SalesforceClient, base: str, soql: str, cancel: CancelToken) -> Iterator[dict[str, Any]]:
    """A Bulk API 2.0 query job: create, poll until JobComplete, page the CSV by locator, delete."""
    job = client.request(
        "POST",
        f"{base}/jobs/query",
        json={
            "operation": "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        },
    ).json()
    job_id = job["id"]
    delay = 0.05
    while job.get("state") not in ("JobComplete", "Failed", "Aborted"):
        cancel.raise_if_cancelled()
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        job = client.get_json(f"{base}/jobs/query/{job_id}")
    if job["state"] != "JobComplete":
        raise SourceError(f"the Bulk query job {job_id} ended {job['state']}: {job.get('errorMessage') or ''}".strip())
    locator = ""
    while True:
        params = {"maxRecords": str(BULK_PAGE)}
        if locator:
            params["locator"] = locator
        response = client.request(
            "GET", f"{base}/jobs/query/{job_id}/results", params=params, headers={"Accept": "text/csv"}
        )
        reader = csv.DictReader(io.StringIO(response.text, newline=""))
        yield from ({k: (v if v != "" else None) for k, v in row.items()} for row in reader)
        locator = response.headers.get("Sforce-Locator", "null")
        if not locator or locator == "null":
            break
        cancel.raise_if_cancelled()
    try:
        client.request("DELETE", f"{base}/jobs/query/{job_id}")
    except SourceError:
        pass  # housekeeping only: jobs are purged after 7 days anyway


def _download(client: SalesforceClient, url: Any) -> str:
    """A file body (``/sobjects/ContentVersion/{id}/VersionData``) as base64 text for staging."""
    return base64.b64encode(client.request("GET", str(url)).content).decode("ascii")


def _count_of(soql: str) -> str:
    _head, _, rest = soql.partition(" FROM ")
    return f"SELECT COUNT() FROM {rest}"


# ---------------------------------------------------------------------------------------------- values


def _norm(value: Any, ftype: str) -> str | None:
    """One text form for a value whether it came as JSON (SOQL) or CSV (Bulk)."""
    if value is None or value == "":
        return None
    if ftype == "boolean":
        return "true" if str(value).lower() == "true" else "false"
    if ftype in _NUMERIC and not isinstance(value, bool):
        try:
            number = Decimal(str(value)).normalize()
        except InvalidOperation:
            return str(value)
        text = format(number, "f")
        return "0" if text in ("-0", "") else text
    if ftype == "datetime":
        return _iso(str(value))
    return str(value)


def _iso(text: str) -> str:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def _soql_datetime(text: str, *, minus: timedelta = timedelta(0)) -> str:
    """An ISO date or date-time → an unquoted SOQL date-time literal in UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--since {text!r} is not an ISO 8601 date or date-time (e.g. 2025-06-01T00:00:00Z)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed.astimezone(UTC) - minus).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------- commit


def _commit(
    project: Project,
    playbook: Any,
    pulls: list[_Pull],
    marks: dict[str, Any],
    inventory: dict[str, Any],
    version: str,
    since: str | None,
    instance: str,
) -> ExtractResult:
    """Stage every spooled table, the checkpoint and the inventory as one transaction."""
    plan = []
    for pull in pulls:
        if pull.rows:
            table = RecordTable(
                pull.name, pull.columns, rows=lambda p=pull.path: _read_spool(p), path=Path(f"salesforce:{pull.name}")
            )
            plan.append((table, playbook.obj(pull.name)))
    now = now_iso()
    for pull in pulls:
        entry = dict(marks.get(pull.name) or {})
        if pull.mark and (not entry.get("SystemModstamp") or pull.mark > entry["SystemModstamp"]):
            entry["SystemModstamp"] = pull.mark
        entry.update(via=pull.via, extracted_at=now)
        marks[pull.name] = entry
    checkpoint = {"api_version": version, "instance": instance, "objects": marks}
    detail = {"files": [f"salesforce:{p.name}" for p in pulls if p.rows], "since": since, "api_version": version}
    counts: dict[str, Any] = {}
    with project.transaction():
        if plan:
            imported = stage_tables(project, plan, action="extract", detail=detail)
            counts = {o.name: o for o in imported.objects}
        else:
            with project.step("extract", detail):
                pass
        project.set_meta("extract_checkpoint", checkpoint)
        project.set_meta(
            "source_schema",
            {"platform": "salesforce", "api_version": version, "described_at": now, "objects": inventory},
        )
    objects = []
    for pull in pulls:
        staged = counts.get(pull.name)
        new = staged.new if staged else 0
        changed = (staged.changed if staged else 0) - pull.deleted
        objects.append(
            {
                "source_object": pull.name,
                "records": pull.rows,
                "new": new,
                "changed": max(0, changed),
                "deleted": pull.deleted,
            }
        )
    return ExtractResult(objects=objects, requests=0, checkpoint=checkpoint)


def _read_spool(path: Path) -> Iterator[list[Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
