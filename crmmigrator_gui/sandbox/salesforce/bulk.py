"""Bulk API 2.0 ingest and query jobs (reference §4), processed by one background worker thread.

Ingest: create (Open) -> one ``PUT …/batches`` CSV upload (201; a second upload is refused) -> PATCH
``UploadComplete`` -> InProgress -> JobComplete / Failed, or Aborted. Rows are applied in chunks of 200,
each row in its own savepoint, through the same ``Records`` rules as REST (CSV mode: empty cell = leave
unchanged, ``#N/A`` = null, ``Account.Ext__c`` / ``Account:What.Ext__c`` parent references). Per-row outcomes
are stored in SQLite and streamed back as ``successfulResults`` (``sf__Id,sf__Created,…``), ``failedResults``
(``sf__Id,sf__Error,…``) and ``unprocessedrecords``. Query jobs compile their SOQL once, fix a snapshot
boundary (rows inserted after completion are excluded) and page results with ``Sforce-Locator`` /
``Sforce-NumberOfRecords`` (``null`` on the last page), reading each page from SQLite with LIMIT/OFFSET.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from . import ids
from . import values as V
from .errors import MultipleMatches, SFError, bad, not_found
from .query import Compiled

if TYPE_CHECKING:
    from .app import Request, Result, SalesforceSandbox

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
MAX_UPLOAD = 150 * 1024 * 1024
CHUNK = 200
CSV_TYPE = "text/csv"


def _bad_state(msg: str) -> SFError:
    return bad("INVALIDJOBSTATE", msg)


class BulkJobs:
    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb
        self.store = sb.store
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopped = False
        for job_id, info in self.store.execute("SELECT id, info FROM _jobs"):
            if json.loads(info)["state"] in ("UploadComplete", "InProgress"):
                self._enqueue(job_id)

    def stop(self) -> None:
        self._stopped = True
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)

    def _enqueue(self, job_id: str) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="sf-bulk-worker", daemon=True)
            self._worker.start()
        self._queue.put(job_id)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until queued jobs are processed (tests and admin tooling)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- persistence ------------------------------------------------------------------------------------------

    def _info(self, job_id: str, kind: str) -> dict[str, Any]:
        rows = self.store.execute("SELECT info FROM _jobs WHERE id=? AND kind=?", (job_id, kind))
        if not rows:
            raise not_found()
        return json.loads(rows[0][0])

    def _save(self, info: dict[str, Any]) -> None:
        info["systemModstamp"] = V.now()
        self.store.execute("UPDATE _jobs SET info=? WHERE id=?", (json.dumps(info), info["id"]))

    def _content(self, job_id: str) -> bytes | None:
        rows = self.store.execute("SELECT content FROM _jobs WHERE id=?", (job_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- routing ----------------------------------------------------------------------------------------------

    def handle(self, req: Request, kind: str, segs: list[str]) -> Result:
        if not segs:
            if req.method == "POST":
                return self._create(req, kind)
            if req.method == "GET":
                rows = self.store.execute("SELECT info FROM _jobs WHERE kind=? ORDER BY rowid", (kind,))
                return 200, {}, {"done": True, "records": [json.loads(r[0]) for r in rows], "nextRecordsUrl": None}
            raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,POST")
        info = self._info(segs[0], kind)
        rest = segs[1:]
        if not rest:
            if req.method == "GET":
                return 200, {}, info
            if req.method == "PATCH":
                return self._patch(req, info)
            if req.method == "DELETE":
                if info["state"] in ("Open", "InProgress"):
                    raise _bad_state(f"Job {info['id']} cannot be deleted in state {info['state']}")
                self.store.execute("DELETE FROM _jobs WHERE id=?", (info["id"],))
                self.store.execute("DELETE FROM _job_rows WHERE job=?", (info["id"],))
                return 204, {}, None
        elif kind == "ingest" and rest == ["batches"] and req.method == "PUT":
            return self._upload(req, info)
        elif (
            kind == "ingest"
            and rest[0] in ("successfulResults", "failedResults", "unprocessedrecords")
            and req.method == "GET"
        ):
            return 200, {"Content-Type": CSV_TYPE}, self._results(info, rest[0])
        elif kind == "query" and rest == ["results"] and req.method == "GET":
            return self._query_results(req, info)
        raise not_found()

    def _create(self, req: Request, kind: str) -> Result:
        body = req.json()
        if not isinstance(body, dict):
            raise bad("INVALIDJOB", "InvalidJob : request body must be a JSON object")
        delimiter = body.get("columnDelimiter", "COMMA")
        ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or ending not in ("LF", "CRLF"):
            raise bad("INVALIDJOB", f"InvalidJob : invalid columnDelimiter/lineEnding: {delimiter}/{ending}")
        if body.get("contentType", "CSV") != "CSV":
            raise bad("INVALIDJOB", "InvalidJob : contentType must be CSV")
        now = V.now()
        job_id = ids.make_id("750", self.store.next_counter())
        info: dict[str, Any] = {
            "id": job_id,
            "operation": body.get("operation"),
            "object": body.get("object"),
            "createdById": self.sb.current_user(),
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(req.version),
            "lineEnding": ending,
            "columnDelimiter": delimiter,
        }
        if kind == "ingest":
            op = body.get("operation")
            if op not in OPERATIONS:
                raise bad("INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
            obj = self.sb.catalog.get(str(body.get("object") or ""))
            if obj is None:
                raise bad("INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
            info["object"] = obj.name
            if op == "upsert":
                ext = body.get("externalIdFieldName")
                f = self.sb.catalog.lookup(obj, str(ext or ""))
                if f is None or not (f.external_id or f.id_lookup):
                    raise bad("INVALIDJOB", f"InvalidJob : External ID was blank or not an external id field: {ext}")
                info["externalIdFieldName"] = f.name
            info.update(
                jobType="V2Ingest",
                contentUrl=f"services/data/v{req.version}/jobs/ingest/{job_id}/batches",
                numberRecordsProcessed=0,
                numberRecordsFailed=0,
                retries=0,
                totalProcessingTime=0,
                apiActiveProcessingTime=0,
                apexProcessingTime=0,
                errorMessage=None,
            )
        else:
            op = body.get("operation", "query")
            if op not in ("query", "queryAll"):
                raise bad("INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
            compiled = Compiled(self.sb, str(body.get("query") or ""), all_rows=op == "queryAll")
            if compiled.q.count_only or compiled.aggregate or compiled.children or compiled.q.offset:
                raise bad(
                    "API_ERROR",
                    "Aggregate queries, OFFSET and parent-to-child subqueries are not supported by Bulk API 2.0 query",
                )
            info.update(
                operation=op,
                object=compiled.obj.name,
                query=body["query"],
                state="UploadComplete",
                jobType="V2Query",
                numberRecordsProcessed=0,
                retries=0,
                totalProcessingTime=0,
                isPkChunkingSupported=not compiled.q.order and compiled.q.limit is None,
                errorMessage=None,
            )
            self._bump("query_jobs", 1)
        self.store.execute("INSERT INTO _jobs VALUES (?,?,?,NULL)", (job_id, kind, json.dumps(info)))
        if kind == "query":
            self._enqueue(job_id)
        return 200, {}, info

    def _bump(self, name: str, amount: int) -> None:
        with self.store.lock:
            self.store.set_value(name, str(int(self.store.get_value(name) or 0) + amount))

    def _upload(self, req: Request, info: dict[str, Any]) -> Result:
        if not req.headers.get("content-type", "").lower().startswith(CSV_TYPE):
            raise SFError(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported content type; use text/csv")
        if info["state"] != "Open" or self._content(info["id"]) is not None:
            raise _bad_state(
                f"Found multiple contents for job: <{info['id']}>, please 'Close' / 'Abort' / 'Delete' "
                "the current Job then create a new Job and make sure the content is uploaded in a single 'PUT'"
            )
        if len(req.body) > MAX_UPLOAD:
            raise bad("CLIENTINPUTERROR", "ClientInputError : Exceeded max file size of 150 MB")
        self.store.execute("UPDATE _jobs SET content=? WHERE id=?", (req.body, info["id"]))
        return 201, {}, None

    def _patch(self, req: Request, info: dict[str, Any]) -> Result:
        state = req.json().get("state")
        if state == "Aborted":
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                raise _bad_state(f"Job {info['id']} is already {info['state']}")
            info["state"] = "Aborted"
        elif state == "UploadComplete" and info.get("jobType") == "V2Ingest":
            if info["state"] != "Open":
                raise _bad_state(f"Job {info['id']} is not Open (state: {info['state']})")
            info["state"] = "UploadComplete"
            self._save(info)
            self._enqueue(info["id"])
            return 200, {}, info
        else:
            raise bad("INVALIDJOBSTATE", f"Invalid state transition to {state}")
        self._save(info)
        return 200, {}, info

    # -- worker -----------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopped:
            job_id = self._queue.get()
            try:
                if job_id is None:
                    return
                rows = self.store.execute("SELECT kind FROM _jobs WHERE id=?", (job_id,))
                if rows:
                    (self._run_query if rows[0][0] == "query" else self._run_ingest)(job_id)
            except Exception as exc:  # noqa: BLE001 - a worker failure must end the job, not the thread
                try:
                    info = json.loads(self.store.execute("SELECT info FROM _jobs WHERE id=?", (job_id,))[0][0])
                    info.update(state="Failed", errorMessage=f"Unknown : {exc}")
                    self._save(info)
                except Exception:  # noqa: BLE001 - the store is closing
                    pass
            finally:
                self._queue.task_done()

    def _run_query(self, job_id: str) -> None:
        info = self._info(job_id, "query")
        if info["state"] != "UploadComplete":
            return
        started = time.monotonic()
        info["state"] = "InProgress"
        self._save(info)
        compiled = Compiled(self.sb, info["query"], all_rows=info["operation"] == "queryAll")
        info["maxSeq"] = self.store.execute(f'SELECT COALESCE(MAX(seq),0) FROM "o_{compiled.obj.name}"')[0][0]
        compiled = self._snapshot(info)
        info.update(
            state="JobComplete",
            numberRecordsProcessed=compiled.total(),
            totalProcessingTime=int((time.monotonic() - started) * 1000),
        )
        if self._info(job_id, "query")["state"] == "Aborted":
            return
        self._save(info)

    def _snapshot(self, info: dict[str, Any]) -> Compiled:
        return Compiled(
            self.sb,
            info["query"],
            all_rows=info["operation"] == "queryAll",
            extra_where=("t.seq <= ?", [info.get("maxSeq", 0)]),
        )

    def _reader(self, info: dict[str, Any], data: bytes) -> tuple[list[str], Any]:
        text = data.decode("utf-8-sig")
        first_break = text.find("\n")
        if first_break >= 0:
            crlf = first_break > 0 and text[first_break - 1] == "\r"
            if crlf != (info["lineEnding"] == "CRLF"):
                raise ValueError(
                    f"ClientInputError : LineEnding is invalid on user data. Current LineEnding setting "
                    f"is {info['lineEnding']}"
                )
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[info["columnDelimiter"]])
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError("InvalidBatch : Header is empty")
        return header, reader

    def _columns(self, info: dict[str, Any], header: list[str]) -> list[tuple[str, Any]]:
        """Validate the header -> per column ("field", name) or ("ref", (relationship, type, ext field))."""
        obj = self.sb.catalog.objects[info["object"]]
        op = info["operation"]
        out: list[tuple[str, Any]] = []
        if op in ("delete", "hardDelete") and [h.strip().lower() for h in header] != ["id"]:
            raise ValueError("InvalidBatch : The 'delete' batch must contain only ids")
        for name in header:
            name = name.strip()
            if "." in name:
                rel_part, _, ext = name.partition(".")
                type_name, _, rel_name = rel_part.rpartition(":")
                rel = obj.relationship(rel_name)
                if rel is None or "." in ext:
                    raise ValueError(f"InvalidBatch : Field name not found : {name}")
                out.append(("ref", (rel.relationship, type_name or None, ext)))
                continue
            f = self.sb.catalog.lookup(obj, name)
            if f is None:
                raise ValueError(f"InvalidBatch : Field name not found : {name}")
            out.append(("field", f.name))
        names = [c[1] for c in out if c[0] == "field"]
        if op == "update" and "Id" not in names:
            raise ValueError("InvalidBatch : Field name not found : Id")
        if op == "upsert" and info["externalIdFieldName"] not in names:
            raise ValueError(f"InvalidBatch : Field name not found : {info['externalIdFieldName']}")
        return out

    def _run_ingest(self, job_id: str) -> None:
        info = self._info(job_id, "ingest")
        if info["state"] != "UploadComplete":
            return
        started = time.monotonic()
        info["state"] = "InProgress"
        self._save(info)
        data = self._content(job_id)
        try:
            if data is None:
                raise ValueError("InvalidBatch : No content uploaded for the job")
            header, reader = self._reader(info, data)
            columns = self._columns(info, header)
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:
            info.update(state="Failed", errorMessage=str(exc))
            self._save(info)
            return
        obj = self.sb.catalog.objects[info["object"]]
        processed = failed = 0
        chunk: list[list[str]] = []
        rows = iter(reader)
        while True:
            chunk = [r for _, r in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            if (
                json.loads(self.store.execute("SELECT info FROM _jobs WHERE id=?", (job_id,))[0][0])["state"]
                == "Aborted"
            ):
                return
            with self.store.transaction():
                for raw in chunk:
                    ok, sf_id, created, error = self._apply_row(info, obj, columns, header, raw)
                    self.store.execute(
                        "INSERT INTO _job_rows VALUES (?,?,?,?,?,?,?)",
                        (job_id, processed, int(ok), sf_id, int(created), error, json.dumps(raw)),
                    )
                    processed += 1
                    failed += 0 if ok else 1
            info.update(numberRecordsProcessed=processed, numberRecordsFailed=failed)
            self._save(info)
        self._bump("bulk_batches", max(1, -(-processed // 10000)))
        elapsed = int((time.monotonic() - started) * 1000)
        info.update(
            state="JobComplete",
            numberRecordsProcessed=processed,
            numberRecordsFailed=failed,
            totalProcessingTime=elapsed,
            apiActiveProcessingTime=elapsed,
        )
        self._save(info)

    def _apply_row(
        self, info: dict[str, Any], obj: Any, columns: list[tuple[str, Any]], header: list[str], raw: list[str]
    ) -> tuple[bool, str | None, bool, str | None]:
        records = self.sb.records
        sf_id: str | None = None
        try:
            if len(raw) > len(header):
                raise bad("INVALID_FIELD", "The number of fields in this row does not match the header")
            body: dict[str, Any] = {}
            for (kind, spec), value in zip(columns, raw + [""] * (len(header) - len(raw)), strict=False):
                if kind == "field":
                    body[spec] = value
                elif value == "#N/A":
                    rel = obj.relationship(spec[0])
                    body[rel.name] = "#N/A"
                elif value != "":
                    ref: dict[str, Any] = {spec[2]: value}
                    if spec[1]:
                        ref["attributes"] = {"type": spec[1]}
                    body[spec[0]] = ref
            op = info["operation"]
            with self.store.transaction():
                if op == "insert":
                    return True, records.create(obj, body, csv=True), True, None
                if op in ("update", "delete", "hardDelete"):
                    sf_id = ids.to18(body.pop("Id", "")) or None
                    if sf_id is None:
                        raise bad("MALFORMED_ID", "malformed id", ["Id"])
                    if op == "update":
                        return True, records.update(obj, sf_id, body, csv=True), False, None
                    return True, records.delete(obj, sf_id, hard=op == "hardDelete"), False, None
                ext = info["externalIdFieldName"]
                value = body.pop(ext, "")
                if value == "":
                    raise bad("MISSING_ARGUMENT", f"{ext} not specified", [ext])
                created, rid = records.upsert(obj, ext, value, body, csv=True)
                return True, rid, created, None
        except MultipleMatches as many:
            return (
                False,
                sf_id,
                False,
                (
                    f"DUPLICATE_EXTERNAL_ID:{info.get('externalIdFieldName')}: more than one "
                    f"record found for external id field: {many.ids}:{info.get('externalIdFieldName')} --"
                ),
            )
        except SFError as err:
            if err.status == 404:
                err = bad(
                    "ENTITY_IS_DELETED" if err.code == "ENTITY_IS_DELETED" else "INVALID_CROSS_REFERENCE_KEY",
                    "entity is deleted" if err.code == "ENTITY_IS_DELETED" else "invalid cross reference id",
                )
            return False, sf_id, False, err.bulk()

    # -- results ----------------------------------------------------------------------------------------------

    def _writer(self, info: dict[str, Any]) -> tuple[io.StringIO, Any]:
        buf = io.StringIO()
        return buf, csv.writer(
            buf,
            delimiter=DELIMITERS[info["columnDelimiter"]],
            quoting=csv.QUOTE_ALL,
            lineterminator="\r\n" if info["lineEnding"] == "CRLF" else "\n",
        )

    def _results(self, info: dict[str, Any], which: str) -> bytes:
        data = self._content(info["id"])
        header = self._reader(info, data)[0] if data else []
        buf, out = self._writer(info)
        if which == "unprocessedrecords":
            out.writerow(header)
            done = self.store.execute("SELECT COUNT(*) FROM _job_rows WHERE job=?", (info["id"],))[0][0]
            if data:
                for i, raw in enumerate(self._reader(info, data)[1]):
                    if i >= done:
                        out.writerow(raw)
            return buf.getvalue().encode()
        ok = 1 if which == "successfulResults" else 0
        out.writerow(["sf__Id", "sf__Created" if ok else "sf__Error", *header])
        last = -1
        while True:
            rows = self.store.execute(
                "SELECT seq, sf_id, created, error, raw FROM _job_rows "
                "WHERE job=? AND ok=? AND seq>? ORDER BY seq LIMIT 5000",
                (info["id"], ok, last),
            )
            if not rows:
                break
            for seq, sf_id, created, error, raw in rows:
                out.writerow([sf_id or "", ("true" if created else "false") if ok else error, *json.loads(raw)])
                last = seq
        return buf.getvalue().encode()

    def _query_results(self, req: Request, info: dict[str, Any]) -> Result:
        if info["state"] != "JobComplete":
            raise _bad_state(f"Job {info['id']} is not complete (state: {info['state']})")
        locator = req.query.get("locator", "")
        try:
            start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode()) if locator else 0
        except ValueError as exc:
            raise bad("INVALID_LOCATOR", f"Invalid locator: {locator}") from exc
        raw_max = req.query.get("maxRecords", "")
        size = int(raw_max) if raw_max.isdigit() and int(raw_max) > 0 else 100_000
        compiled = self._snapshot(info)
        buf, out = self._writer(info)
        out.writerow(compiled.csv_columns())
        total = info["numberRecordsProcessed"]
        count = 0
        for offset in range(start, min(start + size, total), 2000):
            rows = compiled.fetch(offset, min(2000, start + size - offset))
            for row in rows:
                out.writerow(compiled.csv_values(row))
            count += len(rows)
            if not rows:
                break
        end = start + count
        next_loc = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < total and count else "null"
        headers = {"Content-Type": CSV_TYPE, "Sforce-Locator": next_loc, "Sforce-NumberOfRecords": str(count)}
        return 200, headers, buf.getvalue().encode()
