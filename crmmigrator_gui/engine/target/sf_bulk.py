"""Bulk API 2.0 ingest for :class:`~crmmigrator_gui.engine.target.salesforce.SalesforceClient` (reference §4).

One job per CSV part (Bulk 2.0 takes exactly one upload per job; a part stays under ~100 MB raw): every part's
job is created, uploaded and closed first, then all of them are polled, so Salesforce can process the parts
in parallel. Results come back as three CSVs whose row order is not guaranteed, so each result row is joined
back to the caller's input by a key column echoed from our upload — the external id for upserts, ``Id``
for update/delete, the whole row for inserts — with an occurrence queue for repeated keys. Rows that no
result mentions (the job failed or was aborted first) are reported as ``NOT_PROCESSED`` failures.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.target.sf_codec import csv_header, csv_line, flat_record, read_csv, row_cells
from crmmigrator_gui.engine.target.sf_types import RecordResult, bulk_error

if TYPE_CHECKING:
    from crmmigrator_gui.engine.target.salesforce import SalesforceClient

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
MAX_JOB_BYTES = 100 * 1024 * 1024  # raw CSV per job (150 MB after Salesforce's base64 step)
TERMINAL = ("JobComplete", "Failed", "Aborted")


@dataclass
class _Part:
    indexes: list[int]
    body: bytearray
    job_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)


class BulkIngest:
    def __init__(self, client: SalesforceClient, max_job_bytes: int = MAX_JOB_BYTES) -> None:
        self.client = client
        self.max_job_bytes = max_job_bytes

    def run(
        self,
        sobject: str,
        operation: str,
        ext_field: str | None,
        rows: list[dict[str, Any]],
        *,
        poll_interval: float,
        timeout: float,
    ) -> list[RecordResult]:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown Bulk 2.0 operation {operation!r} (use one of {', '.join(OPERATIONS)})")
        if operation == "upsert" and not ext_field:
            raise ValueError("an upsert needs the external id field")
        if not rows:
            return []
        flat = [flat_record(r) for r in rows]
        if operation in ("delete", "hardDelete"):
            header = ["Id"]
        else:
            header = csv_header(flat, [ext_field] if operation == "upsert" and ext_field else [])
        key_col = self._key_column(operation, ext_field, header)
        head_line = csv_line(header)
        parts: list[_Part] = []
        keys: list[str] = []
        for i, row in enumerate(flat):
            cells = row_cells(row, header)
            line = csv_line(cells)
            keys.append(cells[key_col] if key_col is not None else line.decode("utf-8"))
            if not parts or len(parts[-1].body) + len(line) > self.max_job_bytes:
                parts.append(_Part([], bytearray(head_line)))
            parts[-1].indexes.append(i)
            parts[-1].body += line
        results: list[RecordResult | None] = [None] * len(rows)
        deadline = time.monotonic() + timeout
        try:
            for part in parts:
                self._start(part, sobject, operation, ext_field)
            for part in parts:
                self._wait(part, poll_interval, deadline)
                self._collect(part, header, key_col, keys, results)
        except DestinationError:
            for part in parts:
                if part.job_id and part.info.get("state") not in TERMINAL:
                    self._abort(part)
            raise
        return [r or RecordResult(False, errors=[("NOT_PROCESSED", "no result reported", [])]) for r in results]

    @staticmethod
    def _key_column(operation: str, ext_field: str | None, header: list[str]) -> int | None:
        wanted = ext_field if operation == "upsert" else "Id" if operation != "insert" else None
        if wanted is None:
            return None
        for i, name in enumerate(header):
            if name.lower() == wanted.lower():
                return i
        if operation == "upsert":
            raise ValueError(f"no row carries the external id field {ext_field}")
        raise ValueError(f"a Bulk {operation} needs an Id column")

    # -- job lifecycle --------------------------------------------------------------------------------------

    def _start(self, part: _Part, sobject: str, operation: str, ext_field: str | None) -> None:
        c = self.client
        spec: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if operation == "upsert":
            spec["externalIdFieldName"] = ext_field
        info = c._json("POST", "jobs/ingest", spec, what=f"creating a Bulk {operation} job for {sobject}")
        part.job_id, part.info = info["id"], info
        response = c._send(
            "PUT",
            f"jobs/ingest/{part.job_id}/batches",
            content=bytes(part.body),
            headers={"Content-Type": "text/csv; charset=UTF-8"},
        )
        if response.status_code >= 400 and "multiple contents" not in response.text:
            c._check(response, f"uploading the CSV of Bulk job {part.job_id}")
        part.body = bytearray()  # the upload is done; free the memory
        part.info = c._json(
            "PATCH",
            f"jobs/ingest/{part.job_id}",
            {"state": "UploadComplete"},
            what=f"closing Bulk job {part.job_id}",
        )

    def _wait(self, part: _Part, poll_interval: float, deadline: float) -> None:
        c = self.client
        interval = max(poll_interval, 0.0)
        while part.info.get("state") not in TERMINAL:
            if time.monotonic() > deadline:
                raise DestinationError(
                    f"Bulk job {part.job_id} on {part.info.get('object')} did not finish in time "
                    f"(state {part.info.get('state')}); it was aborted, run the step again",
                    code="BULK_TIMEOUT",
                )
            c._sleep(interval)
            interval = min(max(interval * 1.5, 0.05), 10.0)
            part.info = c._json("GET", f"jobs/ingest/{part.job_id}", what=f"polling Bulk job {part.job_id}")

    def _abort(self, part: _Part) -> None:
        try:
            self.client._send("PATCH", f"jobs/ingest/{part.job_id}", {"state": "Aborted"})
        except DestinationError:
            pass

    def _csv(self, part: _Part, which: str) -> list[dict[str, str]]:
        response = self.client._send("GET", f"jobs/ingest/{part.job_id}/{which}/", headers={"Accept": "text/csv"})
        self.client._check(response, f"reading {which} of Bulk job {part.job_id}")
        return list(read_csv(response.content))

    def _collect(
        self,
        part: _Part,
        header: list[str],
        key_col: int | None,
        keys: list[str],
        results: list[RecordResult | None],
    ) -> None:
        info = part.info
        total = len(part.indexes)
        processed = int(info.get("numberRecordsProcessed") or 0)
        failed = int(info.get("numberRecordsFailed") or 0)
        queues: dict[str, deque[int]] = {}
        for i in part.indexes:
            queues.setdefault(keys[i], deque()).append(i)
        folded: dict[str, deque[int]] = {}
        for i in part.indexes:
            folded.setdefault(keys[i].lower(), deque()).append(i)
        taken: set[int] = set()

        def claim(row: dict[str, str]) -> int | None:
            if key_col is not None:
                key = row.get(header[key_col], "")
            else:
                key = csv_line([row.get(h, "") for h in header]).decode("utf-8")
            for table, k in ((queues, key), (folded, key.lower())):
                queue = table.get(k)
                while queue:
                    i = queue.popleft()
                    if i not in taken:
                        taken.add(i)
                        return i
            return None

        if processed - failed > 0:
            for row in self._csv(part, "successfulResults"):
                i = claim(row)
                if i is not None:
                    created = row.get("sf__Created", "").lower() == "true"
                    results[i] = RecordResult(True, row.get("sf__Id") or None, created)
        if failed > 0:
            for row in self._csv(part, "failedResults"):
                i = claim(row)
                if i is not None:
                    results[i] = RecordResult(
                        False, row.get("sf__Id") or None, None, [bulk_error(row.get("sf__Error", ""))]
                    )
        if processed < total:
            reason = info.get("errorMessage") or f"the job ended {info.get('state')}"
            code = "BULK_JOB_FAILED" if info.get("state") == "Failed" else "NOT_PROCESSED"
            for row in self._csv(part, "unprocessedrecords"):
                i = claim(row)
                if i is not None:
                    results[i] = RecordResult(False, errors=[(code, f"Bulk job {part.job_id}: {reason}", [])])
            for i in part.indexes:
                if results[i] is None:
                    results[i] = RecordResult(False, errors=[(code, f"Bulk job {part.job_id}: {reason}", [])])
