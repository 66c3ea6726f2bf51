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

File parts (a ``file`` spec, see :mod:`~crmmigrator_gui.engine.plan.sf_payloads`) never go through
Collections or Bulk (neither carries a file body): each file is uploaded on its own with
``SalesforceClient.upload_file`` (base64 JSON, multipart above the client's JSON cap) with
``FirstPublishLocationId`` = the parent's Salesforce id, so Salesforce creates the ContentDocument and its
ContentDocumentLink. Per batch (≤ 200 files): existing files are found by ``Source_System_ID__c`` on
ContentVersion (one query); pending intents carry the file's identity (parent, name, size, MD5); new files
are uploaded; the key and the mapped fields are then set on the new versions in one Collections update (the
upload call carries only the file); one query reads their ContentDocument ids. The crosswalk/xref dest id of
a file is its **ContentDocument** id (069…). A file over the REST limit fails alone (``FILE_TOO_LARGE``),
unsent; an upload Salesforce refuses (400) fails only that file. A file already loaded is ``unchanged``: a
source change to its metadata is not pushed (the bytes of a version cannot be updated). Crash recovery: a
pending file not found by key is matched on parent + name + MD5 among unkeyed versions, then keyed.

After all parts, playbook ``links`` (lookups that may point forward within the load, e.g. a branch
Account's ``ParentId``) are set by Id in a second pass and journaled as ``linked``.

Rollback restores the prior values of updated rows (``update_collection``) and deletes created rows in
reverse creation order (children first: Collections, or Bulk ``delete`` for big sets); a record that is
already gone (``ENTITY_IS_DELETED`` / ``NOT_FOUND``) counts as done; each chunk is committed, so an
interrupted rollback resumes. Files go first (they are never parents) and are deleted through their
ContentDocument (which removes its versions and links; ContentVersion cannot be deleted in an org); a
version still listed under a deleted document afterwards (the emulator keeps them) is deleted explicitly.

A delta's deletions (:func:`delete_records`) snapshot each record's createable fields before deleting it,
children first; one whose delete would cascade to records that stay (an Account's Opportunities) is left in
place. REST cannot undelete, so rollback re-creates deleted records from their snapshots, parents first, under
new Ids (auto-numbers are assigned anew too), re-pointing lookups, the xref and earlier crosswalk rows, and says
so in a warning per object.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, DestinationError
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.plan import sf_schema
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.plan.sf_payloads import (
    FilePayload,
    SfPayload,
    SfPayloadBuilder,
    diff,
    same,
)
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso
from crmmigrator_gui.engine.run import rollback as rb
from crmmigrator_gui.engine.run.load import Outcome, _Batch, _PartProgress, _Runner, server_now
from crmmigrator_gui.engine.run.results import RunResult, explain
from crmmigrator_gui.engine.target.connection import is_sandbox
from crmmigrator_gui.engine.target.salesforce import RecordResult, SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import in_chunks, soql_string

BULK_BATCH = 10_000  # rows per Bulk 2.0 job (Salesforce's internal batch size)
GONE = ("ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_ID_FIELD")
ROLLBACK_BATCH = 200
FILE_BATCH = 200  # files per batch: one key query, one Collections update, one document-id query
FILE_BATCH_BYTES = 64 * 1024 * 1024  # …and at most this much file data held in memory per batch
FILE_OBJECT = "ContentVersion"


def ensure_schema(
    project: Project, playbook: Playbook, client: SalesforceClient, progress: ProgressCallback = no_progress
) -> None:
    """Stop (exit 3) when the org lacks the schema — except on the embedded sandbox, which we provision."""
    items = sf_schema.manifest(project, playbook)
    for entity in _file_entities(playbook, project.source_object_names()):  # keyed even when nothing maps to them
        if not any(i.entity == entity and i.name == playbook.key_column for i in items):
            spec = {"type": "Text", "length": sf_schema.KEY_LENGTH, "external_id": True, "unique": True}
            items.append(
                sf_schema.SchemaItem("field", entity, playbook.key_column, {**spec, "label": "Source System ID"})
            )
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


def _file_parts(playbook: Playbook) -> set[tuple[str, str]]:
    """(source object, part) of the playbook's file parts."""
    return {
        (o["name"], p["part"])
        for o in playbook.raw.get("objects", [])
        for p in o.get("parts", [])
        if isinstance(p.get("file"), dict)
    }


def _file_entities(playbook: Playbook, imported: Any) -> list[str]:
    """Target objects of the file parts of the imported source objects (ContentVersion)."""
    files, present = _file_parts(playbook), set(imported)
    return sorted({p.entity for p in playbook.parts() if (p.obj, p.name) in files and p.obj in present})


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
        self.sf = client
        self._parallel: int | None = None
        super().__init__(project, playbook, client, progress, cancel, batch_size, actor)  # type: ignore[arg-type]
        self.sfb: SfPayloadBuilder = self.builder  # typed alias

    def _make_builder(self, owner: str) -> SfPayloadBuilder:
        return SfPayloadBuilder(self.project, self.playbook, self.sf, self.xref, owner)

    @property
    def parallel(self) -> int:
        """Write requests in flight, sized once per run from the org's limits (Salesforce sends no hint)."""
        if self._parallel is None:
            self._parallel = self.sf.write_parallelism()
        return self._parallel

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
        if self.sfb.file_spec(part) is not None:
            self._load_files(part, done_before, pending_keys)
            return
        meta = self.sf.describe(part.entity)
        records = self._records(part)
        bulk = len(records) >= self.sf.bulk_threshold
        per_request = max(self.batch_size, BULK_BATCH) if bulk else self.batch_size
        self._load_records(
            part,
            meta,
            done_before,
            build=lambda sid, raw, rows: self.sfb.build(part, sid, raw, meta, rows),
            write=lambda batch, outcomes: self._sf_flush(batch, outcomes, pending_keys, bulk),
            full=lambda batch, outcomes: len(batch.items) + len(outcomes) >= per_request * self.parallel,
            records=records,
        )

    def _sf_flush(self, batch: _Batch, outcomes: dict[str, Outcome], pending_keys: set[str], bulk: bool) -> None:
        part, meta = batch.part, batch.meta
        key_column = self.playbook.key_column
        items: list[tuple[str, SfPayload]] = batch.items  # type: ignore[assignment]
        if items:
            fields = sorted({name for _sid, p in items for name in p.query_fields()})
            existing = self.sf.find_by_external_ids(
                part.entity, key_column, [p.key for _sid, p in items], fields, parallel=self.parallel
            )
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
                intent = self.update_intents.get((part.entity, payload.key))
                if intent is not None and not changes:  # updated before a crash, never committed
                    outcomes[source_id] = Outcome("updated", dest_id, prior=intent[0], written=intent[1])
                elif changes:
                    updates.append((source_id, payload, changes, prior | (intent[0] if intent else {}), dest_id))
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
                self._record_update_intents(
                    part, [(sid, p.key, dest, prior, changes) for sid, p, changes, prior, dest in updates]
                )
                records = [{**changes, key_column: p.key} for _sid, p, changes, _prior, _dest in updates]
                for (sid, _p, changes, prior, dest), result in zip(
                    updates, self._upsert(part, records, bulk), strict=True
                ):
                    if result.ok:
                        outcomes[sid] = Outcome("updated", result.id or dest, prior=prior, written=changes)
                    else:
                        outcomes[sid] = _failed(result)

    # ------------------------------------------------------------------ files
    def _load_files(self, part: Part, done_before: dict[tuple[str, str], str], pending_keys: set[str]) -> None:
        """Upload a file part's files one at a time, in batches committed like record batches (at most
        ``FILE_BATCH`` files and about ``FILE_BATCH_BYTES`` of file data held per batch)."""
        meta = self.sf.describe(part.entity)
        size = max(1, min(self.batch_size, FILE_BATCH))

        def full(batch: _Batch, outcomes: dict[str, Outcome]) -> bool:
            held = sum(len(p.data) for _sid, p in batch.items)  # type: ignore[attr-defined]
            return len(batch.items) + len(outcomes) >= size or held >= FILE_BATCH_BYTES

        self._load_records(
            part,
            meta,
            done_before,
            build=lambda sid, raw, _rows: self.sfb.build_file(part, sid, raw, meta),
            write=lambda batch, outcomes: self._file_flush(batch, outcomes, pending_keys),
            full=full,
        )

    def _file_flush(self, batch: _Batch, outcomes: dict[str, Outcome], pending_keys: set[str]) -> None:
        part = batch.part
        key_column = self.playbook.key_column
        items: list[tuple[str, FilePayload]] = batch.items  # type: ignore[assignment]
        if items:
            existing = self.sf.find_by_external_ids(
                part.entity, key_column, [p.key for _sid, p in items], ["ContentDocumentId"]
            )
            todo: list[tuple[str, FilePayload]] = []
            for sid, payload in items:
                document = (existing.get(payload.key) or {}).get("ContentDocumentId")
                if document and payload.key in pending_keys:  # uploaded and keyed before a crash, never committed
                    outcomes[sid] = Outcome("created", str(document), written=payload.identity())
                elif document:
                    outcomes[sid] = Outcome("unchanged", str(document))
                else:
                    todo.append((sid, payload))
            recovered = self._recover_files([(s, p) for s, p in todo if p.key in pending_keys])
            versions: dict[str, tuple[FilePayload, str]] = {}  # source id -> (payload, ContentVersion id)
            uploads = []
            for sid, payload in todo:
                if sid in recovered:
                    versions[sid] = (payload, recovered[sid])
                else:
                    uploads.append((sid, payload))
            self._record_file_pending(part, uploads)
            for sid, payload in uploads:
                try:
                    version = self.sf.upload_file(
                        payload.title, payload.filename, payload.data, first_publish_location_id=payload.parent_id
                    )
                except DestinationError as exc:
                    if exc.status not in (400, 413):  # not this file's fault: stop the run (resumable)
                        raise
                    code = exc.code or "UNKNOWN_EXCEPTION"
                    outcomes[sid] = Outcome("failed", code=code, message=explain(code, str(exc)))
                else:
                    versions[sid] = (payload, version)
                self.cancel.raise_if_cancelled()
            self._key_files(part, versions, outcomes)

    def _record_file_pending(self, part: Part, uploads: list[tuple[str, FilePayload]]) -> None:
        """Intent log with the file's identity, so resume and rollback can find an upload that lost its key."""
        touched = server_now(self.sf)
        with self.project.transaction():
            for source_id, payload in uploads:
                self.seq += 1
                self.project.db.conn.execute(
                    "INSERT INTO crosswalk (run_id, seq, source_object, part, source_id, target_entity, key, action, "
                    "written, at) VALUES (?,?,?,?,?,?,?, 'pending', ?, ?)",
                    (
                        self.run_id,
                        self.seq,
                        part.obj,
                        part.name,
                        source_id,
                        part.entity,
                        payload.key,
                        json.dumps(payload.identity()),
                        touched,
                    ),
                )

    def _recover_files(self, pending: list[tuple[str, FilePayload]]) -> dict[str, str]:
        """source id -> ContentVersion id of files uploaded before a crash whose key was never written."""
        if not pending:
            return {}
        found = _unkeyed_versions(self.sf, self.playbook.key_column, [p.identity() for _s, p in pending])
        return {sid: version for (sid, _p), version in zip(pending, found, strict=True) if version}

    def _key_files(
        self, part: Part, versions: dict[str, tuple[FilePayload, str]], outcomes: dict[str, Outcome]
    ) -> None:
        """Write the key (and mapped fields) on the new versions, read their ContentDocument ids."""
        if not versions:
            return
        key_column = self.playbook.key_column
        sids = list(versions)
        for start in range(0, len(sids), ROLLBACK_BATCH):
            chunk = sids[start : start + ROLLBACK_BATCH]
            records = [{**versions[s][0].body, "Id": versions[s][1], key_column: versions[s][0].key} for s in chunk]
            for sid, result in zip(chunk, self.sf.update_collection(records, sobject=part.entity), strict=True):
                if not result.ok:
                    self.warnings.append(
                        f"{part.qualified} {sid}: the file was uploaded but its {key_column} was not set "
                        f"({result.message}); a reload may upload it again"
                    )
        documents = _documents_of(self.sf, [v for _p, v in versions.values()])
        for sid, (payload, version) in versions.items():
            document = documents.get(version)
            if document is None:  # cannot happen in an org: every version has a document
                outcomes[sid] = Outcome("failed", code="NOT_FOUND", message=f"no ContentDocument for {version}")
                continue
            written = {**payload.identity(), "ContentVersionId": version, **payload.body}
            outcomes[sid] = Outcome("created", document, written=written)

    def _upsert(self, part: Part, records: list[dict[str, Any]], bulk: bool) -> list[RecordResult]:
        """Collections calls of 200, or Bulk jobs of ``BULK_BATCH`` rows, ``parallel`` of them in flight."""
        if bulk:
            return self.sf.bulk_upsert(
                part.entity, self.playbook.key_column, records, parallel=self.parallel, rows_per_job=BULK_BATCH
            )
        return self.sf.upsert_collection(part.entity, self.playbook.key_column, records, parallel=self.parallel)

    def _link(self, part: Part, link: dict[str, Any]) -> None:
        """Second pass for lookups between records of the same load that may point forward (a branch
        Account's ``ParentId`` → its head office listed later): set by Id once both exist, only where the
        current value differs, journaled as ``linked`` with the prior value (rollback restores it)."""
        target = self.playbook.part(link["to"])
        column = link["column"]
        wanted: dict[str, tuple[str, str, str]] = {}
        settled = self._settled_link(part, target)
        for sid, raw in self.project.iter_staged(part.obj):
            if not self._wanted(part.obj, sid):
                continue
            value = self.builder.role_value(part.obj, link["by_role"], raw)
            key = self.builder.key(part, sid)
            here = self.xref.get((part.entity, key))
            there = self.xref.get((target.entity, self.builder.key(target, value))) if value else None
            if here and there and here != there and not settled(key, self.builder.key(target, value)):
                wanted[key] = (sid, here, there)
        keys = list(wanted)
        state = _PartProgress(part, len(keys), self.clock.now())
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
            touched = server_now(self.sf)
            with self.project.transaction():
                for (key, sid, here, there, current), result in zip(todo, results, strict=True):
                    if not result.ok:
                        self.warnings.append(f"{part.qualified} {sid}: {column} not set ({result.message})")
                    code = result.codes[0] if result.codes else "UNKNOWN_EXCEPTION"
                    self._record_link(
                        part, key, sid, here, touched,
                        prior={column: current},
                        written={column: there},
                        error=None if result.ok else (code, result.message),
                    )  # fmt: skip
            state.done = state.already = start + len(chunk)
            self._checkpoint(state)


def _documents_of(client: SalesforceClient, version_ids: list[str]) -> dict[str, str]:
    """ContentVersion id -> ContentDocument id (one query per URL-sized chunk)."""
    found: dict[str, str] = {}
    prefix = f"SELECT Id, ContentDocumentId FROM {FILE_OBJECT} WHERE Id IN ("
    for soql in in_chunks(prefix, [soql_string(v) for v in version_ids], ")", client.soql_url_budget):
        for row in client.query(soql):
            if row.get("ContentDocumentId"):
                found[str(row["Id"])] = str(row["ContentDocumentId"])
    for version in version_ids:
        if version not in found:  # ids compare by 18 characters; fall back to the client's one-by-one read
            document = client.content_document_id(version)
            if document:
                found[version] = document
    return found


def _unkeyed_versions(client: SalesforceClient, key_column: str, identities: list[dict[str, Any]]) -> list[str | None]:
    """For each file identity, the id of a latest, unkeyed ContentVersion on the same parent with the same
    name and MD5 (each version claimed once), or None."""
    parents = sorted({str(i["FirstPublishLocationId"]) for i in identities if i.get("FirstPublishLocationId")})
    candidates: list[dict[str, Any]] = []
    prefix = (
        f"SELECT Id, PathOnClient, Checksum, FirstPublishLocationId, {key_column} FROM {FILE_OBJECT} "
        "WHERE IsLatest = true AND FirstPublishLocationId IN ("
    )
    for soql in in_chunks(prefix, [soql_string(p) for p in parents], ")", client.soql_url_budget):
        candidates += [r for r in client.query(soql) if not r.get(key_column)]
    claimed: set[str] = set()
    out: list[str | None] = []
    for ident in identities:
        match = next(
            (
                str(r["Id"])
                for r in candidates
                if str(r["Id"]) not in claimed
                and str(r.get("FirstPublishLocationId") or "")[:15] == str(ident.get("FirstPublishLocationId"))[:15]
                and r.get("PathOnClient") == ident.get("PathOnClient")
                and r.get("Checksum") == ident.get("Checksum")
            ),
            None,
        )
        if match:
            claimed.add(match)
        out.append(match)
    return out


def _failed(result: RecordResult) -> Outcome:
    code = result.codes[0] if result.codes else "UNKNOWN_EXCEPTION"
    return Outcome("failed", code=code, message=explain(code, result.message))


# ---------------------------------------------------------------------------------------------- delta deletions

SNAPSHOT_EXTRA = ("OwnerId", "RecordTypeId")  # kept even where describe does not call them createable
UNREADABLE = ("address", "location", "base64")  # compound fields (their parts are read) and file bodies
RECREATED = (
    "{entity}: {count} record(s) re-created with new Salesforce Ids (Salesforce cannot restore an Id over the API; "
    "the Recycle Bin can)"
)


def snapshot_fields(meta: Any, key_column: str) -> list[str]:
    """What re-creates a record of ``meta``: ``Id`` and every createable field, the external id, the owner and
    the record type (lookups are read as Ids)."""
    names = ["Id"]
    for f in meta.fields.values():
        if f.type in UNREADABLE or f.name == "Id":
            continue
        if f.createable or f.name.lower() == key_column.lower() or f.name in SNAPSHOT_EXTRA:
            names.append(f.name)
    return names


def delete_records(
    project: Project, client: SalesforceClient, rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Delete the destination records of xref ``rows`` (a delta's deletions), each snapshotted first.

    Returns (snapshot, error) per row, in order. Each record's createable fields are read with one
    ``SELECT … WHERE Id IN (…)`` per object and URL-sized chunk; then the records are deleted with sObject
    Collections (``DELETE /composite/sobjects?ids=…&allOrNone=false``, at most 200 Ids per call), one call per run
    of consecutive rows of one object, in the order given (the caller sorts children first, so a cascade
    never takes a child before its snapshot). A record not found (already deleted) is (None, None): nothing to
    delete or restore. Files are refused: a ContentDocument cannot be re-created from a snapshot of its fields,
    so the rollback could not undo the deletion."""
    playbook = load_playbook(project.source, project.target, project.edition)
    key_column = playbook.key_column
    files = set(_file_entities(playbook, project.source_object_names())) | {FILE_OBJECT}
    out: list[tuple[dict[str, Any] | None, str | None]] = [(None, None)] * len(rows)
    by_entity: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row["target_entity"] in files:
            out[index] = (None, "a file is not deleted by a delta (rollback could not re-create it): delete it in "
                                "Salesforce if it must go")  # fmt: skip
        elif row["dest_id"]:
            by_entity.setdefault(row["target_entity"], []).append(index)
    snapshots: dict[int, dict[str, Any]] = {}
    for entity, indexes in by_entity.items():
        meta = client.describe(entity)
        names = snapshot_fields(meta, key_column)
        prefix = f"SELECT {', '.join(names)} FROM {meta.name} WHERE Id IN ("
        found: dict[str, dict[str, Any]] = {}
        ids = sorted({str(rows[i]["dest_id"]) for i in indexes})
        for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
            for record in client.query(soql):
                found[str(record["Id"])[:15]] = record
        for index in indexes:
            record = found.get(str(rows[index]["dest_id"])[:15])
            if record is not None:
                snapshots[index] = {name: record.get(name) for name in names}
    deleting = {str(rows[i]["dest_id"])[:15] for i in snapshots}
    for entity, indexes in by_entity.items():  # children first: a child left in place keeps its parent too
        kept = _cascading(client, client.describe(entity), [str(rows[i]["dest_id"]) for i in indexes], deleting)
        for index in indexes:
            count = kept.get(str(rows[index]["dest_id"])[:15])
            if count and index in snapshots:
                deleting.discard(str(rows[index]["dest_id"])[:15])
                reason = f"deleting it would also delete {count} record(s) that Salesforce removes with it (cascade)"
                out[index] = (snapshots.pop(index), f"{reason} and that stay: left in place")
    present = [i for i in range(len(rows)) if i in snapshots]
    runs: list[list[int]] = []
    for index in present:
        entity = rows[index]["target_entity"]
        if runs and len(runs[-1]) < ROLLBACK_BATCH and rows[runs[-1][-1]]["target_entity"] == entity:
            runs[-1].append(index)
        else:
            runs.append([index])
    for run in runs:
        results = client.delete_collection([str(rows[i]["dest_id"]) for i in run])
        for index, result in zip(run, results, strict=True):
            gone = result.ok or any(c in GONE for c in result.codes)
            out[index] = (snapshots[index], None if gone else result.message)
    return out


def _cascading(client: SalesforceClient, meta: Any, ids: list[str], deleting: set[str]) -> dict[str, int]:
    """Parent 15-character Id -> live records a delete of it would take along (``cascadeDelete`` children, e.g.
    an Account's Contacts) that are not being deleted themselves. Those have no snapshot: rollback could not
    bring them back, and the source still has them."""
    counts: dict[str, int] = {}
    for relation in meta.child_relationships:
        child, column = relation.get("childSObject"), relation.get("field")
        if not relation.get("cascadeDelete") or not child or not column:
            continue
        prefix = f"SELECT Id, {column} FROM {child} WHERE {column} IN ("
        try:
            for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
                for record in client.query(soql):
                    if str(record["Id"])[:15] not in deleting and record.get(column):
                        parent = str(record[column])[:15]
                        counts[parent] = counts.get(parent, 0) + 1
        except DestinationError:
            continue  # an object the integration user cannot query (shares, histories): nothing of ours
    return counts


def _recreate_body(
    meta: Any, snapshot: dict[str, Any], moved: dict[str, str], waiting: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The create body of a snapshot, and its lookups to records of the same chunk (set once they exist).

    Only fields the org lets us create now go in (the audit-fields permission may have been revoked since);
    a lookup to a record that was itself re-created points at its new Id (``moved``: old 15-character Id ->
    new Id). A null is sent only where the field would otherwise take a default."""
    body: dict[str, Any] = {}
    later: dict[str, str] = {}
    for name, value in snapshot.items():
        f = meta.field(name)
        if name == "Id" or f is None or not f.createable:
            continue
        if value is None:
            if f.nillable and (f.defaulted_on_create or f.default_value is not None):
                body[f.name] = None
            continue
        if f.type == "reference" and isinstance(value, str):
            old = value[:15]
            if old in moved:
                value = moved[old]
            elif old in waiting:
                later[f.name] = old
                continue
        body[f.name] = value
    return body, later


def _moved_ids(project: Project) -> dict[str, str]:
    """Old 15-character Id -> new Id of every record a rollback re-created (this rollback's earlier attempts
    included), from the 'deleted' crosswalk rows and the xref that points at the re-created record."""
    rows = project.query(
        "SELECT c.dest_id AS old, x.dest_id AS new FROM crosswalk c JOIN xref x ON x.target_entity = "
        "c.target_entity AND x.key = c.key WHERE c.action = 'deleted' AND c.rolled_back_at IS NOT NULL AND "
        "c.prior IS NOT NULL AND c.dest_id IS NOT NULL"
    )
    return {str(r["old"])[:15]: str(r["new"]) for r in rows if str(r["old"])[:15] != str(r["new"])[:15]}


def _recreate(
    project: Project,
    client: SalesforceClient,
    playbook: Playbook,
    rows: list[dict[str, Any]],
    problems: list[str],
    actor: str,
) -> None:
    """Re-create the records a delta deleted, parents first, from the snapshots taken before the deletes.

    Salesforce gives them new Ids (REST cannot undelete), so the external id is set from the snapshot, lookups
    to re-created parents are re-pointed, and the xref and every earlier crosswalk row of the record move to the
    new Id: a later rollback of the load that created the record deletes the new one. A record found by its
    external id already (an interrupted earlier attempt) is adopted. Each chunk is one project step."""
    key_column = playbook.key_column
    rank = {p.name: i for i, p in enumerate(load_order(playbook, project.source_object_names()))}
    rows = sorted(rows, key=lambda r: rank.get(r["part"], 0))  # parents first (stable: creation order kept)
    moved = _moved_ids(project)
    for chunk in _runs_of(rows, ROLLBACK_BATCH):
        entity = chunk[0]["target_entity"]
        meta = client.describe(entity)
        live = [r for r in chunk if r["prior"]]
        existing = client.find_by_external_ids(entity, key_column, [r["key"] for r in live], []) if live else {}
        waiting = {str(r["dest_id"])[:15] for r in live if r["dest_id"]}
        new_ids: dict[int, str] = {}
        creates: list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]] = []
        failed: dict[int, str] = {}
        for row in live:
            hit = existing.get(row["key"])
            if hit is not None:
                new_ids[row["id"]] = str(hit["Id"])
                continue
            body, later = _recreate_body(meta, json.loads(row["prior"]), moved, waiting)
            creates.append((row, {**body, key_column: row["key"]}, later))
        if creates:
            results = client.create_collection([body for _r, body, _l in creates], sobject=entity)
            for (row, _body, _later), result in zip(creates, results, strict=True):
                if result.ok and result.id:
                    new_ids[row["id"]] = str(result.id)
                else:
                    failed[row["id"]] = result.message
        local = {str(r["dest_id"])[:15]: new_ids[r["id"]] for r in live if r["id"] in new_ids and r["dest_id"]}
        links = [
            {"Id": new_ids[row["id"]], **{name: local[old] for name, old in later.items() if old in local}}
            for row, _body, later in creates
            if later and row["id"] in new_ids
        ]
        links = [link for link in links if len(link) > 1]
        if links:  # lookups between records of this chunk (a branch Account's parent)
            for link, result in zip(links, client.update_collection(links, sobject=entity), strict=True):
                if not result.ok:
                    problems.append(f"{entity} {link['Id']}: re-created, but a lookup was not restored "
                                    f"({result.message})")  # fmt: skip
        touched = server_now(client)
        detail = {
            "entity": entity,
            "recreated": {r["key"]: {"old": r["dest_id"], "new": new_ids[r["id"]]} for r in live if r["id"] in new_ids},
            "failed": len(failed),
        }
        with project.step("rollback re-create (new Salesforce Ids)", detail, actor=actor):
            conn = project.db.conn
            for row in chunk:
                if row["id"] in failed:
                    problems.append(f"{entity} {row['key']}: not re-created ({failed[row['id']]})")
                    continue
                conn.execute("UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched, row["id"]))
                new = new_ids.get(row["id"])
                if new is None:
                    continue  # already gone when the delta ran: nothing to restore
                conn.execute(
                    "INSERT INTO xref VALUES (?,?,?,?,?,?) ON CONFLICT(target_entity, key) DO UPDATE SET "
                    "dest_id = excluded.dest_id",
                    (entity, row["key"], new, row["source_object"], row["source_id"], row["part"]),
                )
                if row["dest_id"]:
                    conn.execute(
                        "UPDATE crosswalk SET dest_id = ? WHERE target_entity = ? AND key = ? AND action NOT IN "
                        "('deleted', 'delete_failed') AND substr(dest_id, 1, 15) = ?",
                        (new, entity, row["key"], str(row["dest_id"])[:15]),
                    )
                    moved[str(row["dest_id"])[:15]] = new


def _recreated_warnings(project: Project, run_id: int) -> list[str]:
    """One warning per object whose deleted records this run's rollback re-created under new Ids."""
    return [
        RECREATED.format(entity=r["target_entity"], count=r["n"])
        for r in project.query(
            "SELECT target_entity, COUNT(*) AS n FROM crosswalk WHERE run_id = ? AND action = 'deleted' AND "
            "rolled_back_at IS NOT NULL AND prior IS NOT NULL GROUP BY target_entity ORDER BY target_entity",
            (run_id,),
        )
    ]


# ---------------------------------------------------------------------------------------------- rollback


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
    *,
    force: bool = False,
) -> RunResult:
    """Files, then restores (updates and links), then deletes; records changed in the org after the run
    are refused unless ``force`` (see :mod:`~.rollback`)."""
    started = time.monotonic()
    requests_before = client.requests
    playbook = load_playbook(project.source, project.target, project.edition)
    key_column = playbook.key_column
    file_parts = _file_parts(playbook)
    rb.start(project, run_id, actor, force)
    touches = rb.Touches(project, server_now(client))
    rows = project.query(
        "SELECT id, source_object, part, source_id, target_entity, key, dest_id, action, prior, written FROM "
        "crosswalk WHERE run_id = ? AND rolled_back_at IS NULL AND action IN ('updated', 'linked', 'created', "
        "'pending', 'pending_update', 'deleted') ORDER BY seq DESC",
        (run_id,),
    )
    rows = rb.as_updates(rows)
    problems: list[str] = []
    deletions = [r for r in rows if r["action"] == "deleted"]
    if deletions:  # a delta's applied deletions: re-created first (they came last), parents first
        _recreate(project, client, playbook, deletions, problems, actor)
        progress(ProgressEvent("rollback", f"run {run_id}", len(deletions), len(rows)))
        cancel.raise_if_cancelled()
    rows = [r for r in rows if r["action"] != "deleted"]
    updates = [r for r in rows if r["action"] in ("updated", "linked")]  # linked: restore the prior lookup
    creates = [r for r in rows if r["action"] in ("created", "pending")]
    files = [r for r in creates if (r["source_object"], r["part"]) in file_parts]
    creates = [r for r in creates if (r["source_object"], r["part"]) not in file_parts]
    total, done = len(rows) + len(deletions), len(deletions)
    conflicts: list[rb.Conflict] = []
    forced: list[rb.Conflict] = []

    def screen(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of a chunk to roll back: changed records are refused (or forced)."""
        found = _sf_changed(project, client, touches, key_column, [r for r in chunk if r["dest_id"]])
        keep = []
        for row in chunk:
            conflict = found.get(row["id"])
            if conflict is not None and not force:
                conflicts.append(conflict)
                continue
            if conflict is not None:
                forced.append(conflict)
            keep.append(row)
        return keep

    for chunk in _runs_of(files, ROLLBACK_BATCH):  # files first: they are never parents
        _rollback_files(project, client, key_column, chunk, problems)
        done += len(chunk)
        progress(ProgressEvent("rollback", f"run {run_id}", done, total))
        cancel.raise_if_cancelled()
    for whole in _runs_of(updates, ROLLBACK_BATCH):
        chunk = screen(whole)
        records = [{"Id": r["dest_id"], **json.loads(r["prior"] or "{}")} for r in chunk]
        todo = [(r, rec) for r, rec in zip(chunk, records, strict=True) if len(rec) > 1 and r["dest_id"]]
        results = client.update_collection([rec for _r, rec in todo], sobject=chunk[0]["target_entity"]) if todo else []
        outcome = {r["id"]: res for (r, _rec), res in zip(todo, results, strict=True)}
        _settle(project, chunk, outcome, problems, delete=False, touched=server_now(client))
        done += len(whole)
        progress(ProgressEvent("rollback", f"run {run_id}", done, total))
        cancel.raise_if_cancelled()
    bulk_size = max(client.bulk_threshold, ROLLBACK_BATCH)
    for group in _runs_of(creates, bulk_size):
        entity = group[0]["target_entity"]
        missing_ids = [r["key"] for r in group if not r["dest_id"]]
        found = client.find_by_external_ids(entity, key_column, missing_ids, []) if missing_ids else {}
        for row in group:
            row["dest_id"] = row["dest_id"] or (found.get(row["key"]) or {}).get("Id")
        bulk = len(group) >= client.bulk_threshold
        for chunk in [group] if bulk else _runs_of(group, ROLLBACK_BATCH):
            size = len(chunk)
            chunk = screen(chunk)
            todo = [r for r in chunk if r["dest_id"]]
            wanted = [str(r["dest_id"]) for r in todo]
            if not wanted:
                results = []
            elif bulk:
                results = client.bulk_delete(entity, wanted)
            else:
                results = client.delete_collection(wanted)
            outcome = {r["id"]: res for r, res in zip(todo, results, strict=True)}
            _settle(project, chunk, outcome, problems, delete=True, touched=server_now(client))
            done += size
            progress(ProgressEvent("rollback", f"run {run_id}", done, total))
            cancel.raise_if_cancelled()
    result = rb.finish(
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
    result.warnings = _recreated_warnings(project, run_id) + result.warnings
    return result


def _sf_changed(
    project: Project, client: SalesforceClient, touches: Any, key_column: str, rows: list[dict[str, Any]]
) -> dict[int, Any]:
    """Crosswalk row id -> Conflict for the rows whose record was changed in the org after our last touch:
    one ``SELECT … WHERE Id IN (…)`` per object and URL-sized chunk."""
    if not rows:
        return {}
    history = touches.history(rows)
    out: dict[int, rb.Conflict] = {}
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_entity.setdefault(row["target_entity"], []).append(row)
    for entity, group in by_entity.items():
        meta = client.describe(entity)
        names = {"Id"}
        names.update(n for n in ("LastModifiedDate", "LastModifiedById") if meta.field(n))
        if meta.field("LastModifiedById"):
            names.add("LastModifiedBy.Name")
        for row in group:
            for name, ours in history.get((entity, row["key"]), ({}, None))[0].items():
                f = _written_field(meta, name, ours)
                if f is not None:
                    names.add(f.name)
        prefix = f"SELECT {', '.join(sorted(names))} FROM {meta.name} WHERE Id IN ("
        current: dict[str, dict[str, Any]] = {}
        ids = sorted({str(r["dest_id"]) for r in group})
        for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
            for record in client.query(soql):
                current[str(record["Id"])[:15]] = record
        for row in group:
            record = current.get(str(row["dest_id"])[:15])
            if record is None:
                continue  # already gone: nothing to protect
            expected, touch = history.get((entity, row["key"]), ({}, None))
            differences = {}
            for name, ours in expected.items():
                f = _written_field(meta, name, ours)
                if f is None:
                    continue
                theirs = record.get(f.name)
                if isinstance(ours, dict):  # a parent reference by external id: compare the parent's id
                    want = _parent_ids(project, f, ours, key_column)
                    if want and (not theirs or str(theirs)[:15] not in want):
                        differences[f.name] = (ours.get(key_column), theirs)
                elif f.type == "reference":
                    if (str(ours)[:15] if ours else None) != (str(theirs)[:15] if theirs else None):
                        differences[f.name] = (ours, theirs)
                elif not _sf_equal(ours, theirs):
                    differences[f.name] = (ours, theirs)
            who = (record.get("LastModifiedBy") or {}).get("Name") or record.get("LastModifiedById")
            prior = json.loads(row["prior"] or "{}") if row["action"] in ("updated", "linked") else None
            restored = prior is not None and all(
                name in prior and _same_id_or_value(prior[name], theirs)
                for name, (_ours, theirs) in differences.items()
            )
            conflict = touches.judge(row, differences, record.get("LastModifiedDate"), who, touch, restored)
            if conflict is not None:
                out[row["id"]] = conflict
    return out


def _written_field(meta: Any, name: str, value: Any) -> Any:
    """The updateable field a written name stands for (a relationship -> its lookup field), or None."""
    f = meta.by_relationship(name) if isinstance(value, dict) else meta.field(name)
    return f if f is not None and f.updateable else None


def _parent_ids(project: Project, f: Any, ref: dict[str, Any], key_column: str) -> set[str]:
    """15-character ids of the parent a reference by external id names (from the xref)."""
    parent_type = (ref.get("attributes") or {}).get("type")
    types = [parent_type] if parent_type else list(f.reference_to)
    marks = ",".join("?" * len(types))
    rows = project.query(
        f"SELECT dest_id FROM xref WHERE key = ? AND target_entity IN ({marks})", (ref.get(key_column), *types)
    )
    return {str(r["dest_id"])[:15] for r in rows}


def _same_id_or_value(prior: Any, theirs: Any) -> bool:
    """A prior value (a lookup's id, or a scalar) against the value read back."""
    if isinstance(prior, str) and isinstance(theirs, str) and len(prior) in (15, 18) and len(theirs) == 18:
        return prior[:15] == theirs[:15]
    return _sf_equal(prior, theirs)


def _sf_equal(ours: Any, theirs: Any) -> bool:
    """Numbers by value (the crosswalk keeps Decimals as text), else the load's own comparison."""
    if isinstance(ours, str) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return bool(rb.numbers_equal(ours, theirs))
    return same(ours, theirs)


def _rollback_files(
    project: Project, client: SalesforceClient, key_column: str, chunk: list[dict[str, Any]], problems: list[str]
) -> None:
    """Delete the ContentDocuments of one chunk of file rows (versions and links go with them)."""
    documents: dict[int, str | None] = {r["id"]: r["dest_id"] for r in chunk}
    unknown = [r for r in chunk if not r["dest_id"]]  # pending: the upload may or may not have happened
    if unknown:
        found = client.find_by_external_ids(
            chunk[0]["target_entity"], key_column, [r["key"] for r in unknown], ["ContentDocumentId"]
        )
        lost = []
        for row in unknown:
            documents[row["id"]] = (found.get(row["key"]) or {}).get("ContentDocumentId")
            if not documents[row["id"]] and row["written"]:
                lost.append(row)
        if lost:  # uploaded, key never written: match parent + name + MD5
            versions = _unkeyed_versions(client, key_column, [json.loads(r["written"]) for r in lost])
            by_version = _documents_of(client, [v for v in versions if v])
            for row, version in zip(lost, versions, strict=True):
                documents[row["id"]] = by_version.get(version) if version else None
    todo = [r for r in chunk if documents[r["id"]]]
    wanted = [str(documents[r["id"]]) for r in todo]
    results = client.delete_collection(wanted) if wanted else []
    outcome = {r["id"]: res for r, res in zip(todo, results, strict=True)}
    deleted = [doc for doc, res in zip(wanted, results, strict=True) if res.ok or any(c in GONE for c in res.codes)]
    _sweep_versions(client, deleted, problems)
    _settle(project, chunk, outcome, problems, delete=True)


def _sweep_versions(client: SalesforceClient, documents: list[str], problems: list[str]) -> None:
    """Versions still listed under deleted documents. An org deletes them with the document (none are found);
    the embedded emulator keeps them, so they are deleted explicitly."""
    if not documents:
        return
    prefix = f"SELECT Id FROM {FILE_OBJECT} WHERE ContentDocumentId IN ("
    left: list[str] = []
    for soql in in_chunks(prefix, [soql_string(d) for d in documents], ")", client.soql_url_budget):
        left += [str(r["Id"]) for r in client.query(soql)]
    for start in range(0, len(left), ROLLBACK_BATCH):
        chunk = left[start : start + ROLLBACK_BATCH]
        for version, result in zip(chunk, client.delete_collection(chunk), strict=True):
            if not result.ok and not any(c in GONE for c in result.codes):
                problems.append(f"{FILE_OBJECT} {version}: {result.message}")


def _settle(
    project: Project,
    chunk: list[dict[str, Any]],
    outcome: dict[int, RecordResult],
    problems: list[str],
    *,
    delete: bool,
    touched: str | None = None,
) -> None:
    """Mark rows rolled back (a record already gone counts as done); keep the others for the next attempt.
    ``touched`` is the server time of the writes (a later rollback must not take them for a change)."""
    with project.transaction():
        for row in chunk:
            result = outcome.get(row["id"])
            if result is not None and not result.ok and not any(c in GONE for c in result.codes):
                problems.append(f"{row['target_entity']} {row['key']}: {result.message}")
                continue
            project.db.conn.execute(
                "UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched or now_iso(), row["id"])
            )
            if delete:
                project.db.conn.execute(
                    "DELETE FROM xref WHERE target_entity = ? AND key = ?", (row["target_entity"], row["key"])
                )
