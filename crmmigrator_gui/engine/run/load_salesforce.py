"""The load run for a Salesforce destination.

Same contract as the Dataverse run (:mod:`.load`), and the same bookkeeping (:mod:`.ledger`) — the runner
subclasses ``_Runner``, so run rows, the pending-intent log, the crosswalk/xref commit after every batch, per-source
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

The rollback of a Salesforce run is in :mod:`.rollback_salesforce`; a delta's deletions and their re-creation
on rollback are in :mod:`.sf_deletions`.
"""

from __future__ import annotations

import json
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, DestinationError
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook
from crmmigrator_gui.engine.plan import sf_schema
from crmmigrator_gui.engine.plan.sf_payloads import FilePayload, SfPayload, SfPayloadBuilder, diff
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, no_progress
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.ledger import Outcome, _Batch, _PartProgress, server_now
from crmmigrator_gui.engine.run.load import _Runner
from crmmigrator_gui.engine.run.results import RunResult, explain
from crmmigrator_gui.engine.target.connection import is_sandbox
from crmmigrator_gui.engine.target.salesforce import RecordResult, SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import in_chunks, soql_string

BULK_BATCH = 10_000  # rows per Bulk 2.0 job (Salesforce's internal batch size)
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
