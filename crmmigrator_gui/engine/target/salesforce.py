"""Salesforce destination client (REST, sObject Collections, Bulk API 2.0, Tooling) over httpx.

Used unchanged against the Salesforce sandbox (in-process or served) and a real org. The transport and the
Salesforce retry rules (locks, request limits, expired sessions, ``Sforce-Limit-Info``) live in
:mod:`.sf_http` on top of the shared :class:`~crmmigrator_gui.engine.target.http.RetryingHttp`; record
shaping and CSV in :mod:`.sf_codec`; Bulk 2.0 jobs in :mod:`.sf_bulk`; Tooling fields and FLS in
:mod:`.sf_tooling`; result/metadata types in :mod:`.sf_types`.

Per-record failures never raise: Collections and Bulk return one :class:`RecordResult` per input record,
in input order. Parent references by external id are accepted nested or dotted (see :mod:`.sf_codec`).
:meth:`SalesforceClient.upsert` picks Collections below :attr:`bulk_threshold` rows and Bulk 2.0 from it.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from crmmigrator_gui.engine.errors import DestinationError, MigratorError
from crmmigrator_gui.engine.target import sf_tooling
from crmmigrator_gui.engine.target.http import MAX_PARALLEL, chunked, in_parallel
from crmmigrator_gui.engine.target.sf_bulk import BulkIngest
from crmmigrator_gui.engine.target.sf_codec import (
    NUMERIC_TYPES,
    in_chunks,
    json_record,
    multipart_body,
    soql_literal,
    soql_string,
)
from crmmigrator_gui.engine.target.sf_http import COLLECTION_SIZE, SalesforceApi
from crmmigrator_gui.engine.target.sf_types import FieldMeta, RecordResult, SObjectMeta

__all__ = ["FieldMeta", "RecordResult", "SObjectMeta", "SalesforceClient"]

BULK_THRESHOLD = 2_000  # Salesforce's own guidance: "bulkified" REST below 2,000 rows, Bulk 2.0 above
SOQL_URL_BUDGET = 12_000  # URL-encoded SOQL per GET; Salesforce rejects request URIs over ~16 KB
FILE_JSON_MAX = 20 * 1024 * 1024  # raw bytes sent as base64 JSON (cap 37.5 MB base64 ≈ 28 MB raw); above: multipart
BULK_JOB_ROWS = 10_000  # rows per Bulk 2.0 job when several run side by side (Salesforce's internal batch size)
DEVELOPER_DAILY_REQUESTS = 15_000  # DailyApiRequests Max of Developer Edition / trial orgs (reference §9)


def _flatten(answers: list[list[RecordResult]]) -> list[RecordResult]:
    return [result for answer in answers for result in answer]


class SalesforceClient(SalesforceApi):
    """A Salesforce org as a migration destination.

    Args:
        instance_url: ``instance_url`` from the token response (``https://acme.my.salesforce.com``).
        token: callable returning the current access token (called per request; providers cache/refresh).
        api_version: pinned REST version, e.g. ``"62.0"``.
        transport: optional httpx transport (``httpx.WSGITransport(app=sandbox)`` in-process).
        sleep: replaces ``time.sleep`` for backoff and Bulk polling (tests).

    Tunables (attributes): ``bulk_threshold``, ``query_batch_size`` (``Sforce-Query-Options``),
    ``file_json_max_bytes``, ``lock_retries``, ``soql_url_budget``.
    """

    def __init__(
        self,
        instance_url: str,
        token: Callable[[], str],
        *,
        api_version: str = "62.0",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(instance_url, token, api_version=api_version, transport=transport, sleep=sleep)
        self.bulk_threshold = BULK_THRESHOLD
        self.query_batch_size: int | None = None
        self.file_json_max_bytes = FILE_JSON_MAX
        self.soql_url_budget = SOQL_URL_BUDGET
        self._meta: dict[str, SObjectMeta] = {}
        self._global: list[dict[str, Any]] | None = None
        self._meta_lock = threading.Lock()
        self._permset: str | None = None
        self._bulk = BulkIngest(self)

    # ------------------------------------------------------------------ org and metadata
    def limits(self) -> dict[str, Any]:
        return dict(self._json("GET", "limits", what="reading the org limits"))

    def write_parallelism(self, cap: int = MAX_PARALLEL) -> int:
        """How many write requests (Collections calls, Bulk jobs) to keep in flight, from the org's limits.

        Salesforce has no per-second throttling and no parallelism hint; what parallel calls can exhaust is the
        concurrent long-running request cap (reference §9: 25 per org, 5 on Developer/trial orgs, which show a
        ``DailyApiRequests`` Max of 15,000). Staying at half of it leaves the other half to the org's other
        integrations even if every call turned slow. An org that will not show its limits gets 2.
        """
        try:
            daily = self.limits().get("DailyApiRequests") or {}
        except DestinationError:
            return 2
        maximum = daily.get("Max")
        long_running = 5 if isinstance(maximum, int) and maximum <= DEVELOPER_DAILY_REQUESTS else 25
        return max(1, min(cap, long_running // 2))

    def user_info(self) -> dict[str, Any]:
        """The running user (``/services/oauth2/userinfo``): ``user_id``, ``organization_id``, ``username`` …"""
        return dict(self._json("GET", f"{self.instance_url}/services/oauth2/userinfo", what="reading the user"))

    def describe_global(self) -> list[dict[str, Any]]:
        with self._meta_lock:
            cached = self._global
        if cached is None:
            cached = list(self._json("GET", "sobjects/", what="listing objects")["sobjects"])
            with self._meta_lock:
                self._global = cached
        return cached

    def sobject_for_id(self, record_id: str) -> str | None:
        prefix = record_id[:3]
        for entry in self.describe_global():
            if entry.get("keyPrefix") == prefix:
                return str(entry["name"])
        return None

    def describe(self, sobject: str) -> SObjectMeta:
        """Object and field metadata, cached per client; :meth:`invalidate` after schema/permission changes."""
        key = sobject.lower()
        with self._meta_lock:
            cached = self._meta.get(key)
        if cached is not None:
            return cached
        meta = SObjectMeta.from_describe(
            self._json("GET", f"sobjects/{sobject}/describe/", what=f"describing {sobject}")
        )
        with self._meta_lock:
            self._meta[key] = meta
        return meta

    def invalidate(self, sobject: str | None = None) -> None:
        with self._meta_lock:
            if sobject:
                self._meta.pop(sobject.lower(), None)
            else:
                self._meta.clear()
                self._global = None

    def audit_fields_enabled(self, sobject: str = "Task") -> bool:
        """True when CreatedDate is createable ("Set Audit Fields upon Record Creation", reference §6.3)."""
        created = self.describe(sobject).field("CreatedDate")
        return bool(created and created.createable)

    # ------------------------------------------------------------------ queries
    def query(self, soql: str, *, all_rows: bool = False, batch_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query (``queryAll`` with ``all_rows``), following ``nextRecordsUrl``."""
        size = batch_size or self.query_batch_size
        headers = {"Sforce-Query-Options": f"batchSize={size}"} if size else None
        resource = "queryAll" if all_rows else "query"
        data = self._json("GET", resource, params={"q": soql}, headers=headers, what="running a SOQL query")
        while True:
            yield from data.get("records", [])
            next_url = data.get("nextRecordsUrl")
            if data.get("done", True) or not next_url:
                return
            data = self._json("GET", self.instance_url + next_url, headers=headers, what="paging a SOQL query")

    def find_by_external_ids(
        self, sobject: str, ext_field: str, values: list[str], fields: list[str], *, parallel: int = 1
    ) -> dict[str, dict[str, Any]]:
        """Existing records by external id -> ``{input value: record}`` (Id and the ext field always selected).

        Values go in ``IN (…)`` lists chunked to keep each GET URL under :attr:`soql_url_budget`. Matching
        follows the field: case-insensitive unless describe says ``caseSensitive``; numbers compare by value.
        When several records share a value (non-unique field), the first one returned is kept. ``parallel``
        queries run side by side (same requests, overlapped latency).
        """
        meta = self.describe(sobject)
        ext = meta.field(ext_field)
        if ext is None:
            raise DestinationError(f"{sobject}.{ext_field} does not exist or is not visible to the integration user")

        def norm(value: Any) -> str | None:
            if value is None:
                return None
            if ext.type in NUMERIC_TYPES:
                try:
                    return str(Decimal(str(value)).normalize())
                except InvalidOperation:
                    return None
            return str(value) if ext.case_sensitive else str(value).lower()

        wanted: dict[str, str] = {}
        for value in values:
            key = norm(value) if value not in (None, "") else None
            if key is not None:
                wanted.setdefault(key, value)
        names: list[str] = []
        for name in ["Id", ext.name, *fields]:
            if name.lower() not in {n.lower() for n in names}:
                names.append(name)
        literals = [soql_literal(v, ext.type) for v in wanted.values()]
        prefix = f"SELECT {', '.join(names)} FROM {meta.name} WHERE {ext.name} IN ("
        found: dict[str, dict[str, Any]] = {}
        queries = list(in_chunks(prefix, literals, ")", self.soql_url_budget))
        for records in in_parallel(lambda soql: list(self.query(soql)), queries, parallel):
            for record in records:
                key = norm(record.get(ext.name))
                original = wanted.get(key) if key is not None else None
                if original is not None and original not in found:
                    found[original] = record
        return found

    # ------------------------------------------------------------------ Collections
    def _lookup_field(self, sobject: str | None) -> Callable[[str], str | None]:
        def lookup(relationship: str) -> str | None:
            if not sobject:
                return None
            f = self.describe(sobject).by_relationship(relationship)
            return f.name if f else None

        return lookup

    def upsert_collection(
        self,
        sobject: str,
        ext_field: str,
        records: list[dict[str, Any]],
        *,
        all_or_none: bool = False,
        parallel: int = 1,
    ) -> list[RecordResult]:
        """``PATCH /composite/sobjects/{sobject}/{ext_field}``; ``created`` tells insert (201) from update (200).
        Calls of 200 records, ``parallel`` at a time (each call is its own transaction either way)."""
        lookup = self._lookup_field(sobject)
        bodies = [json_record(r, sobject, lookup) for r in records]

        def send(chunk: Any) -> list[RecordResult]:
            return self._collection(
                "PATCH",
                f"composite/sobjects/{sobject}/{ext_field}",
                list(chunk),
                [sobject] * len(chunk),
                all_or_none=all_or_none,
                what=f"upserting {sobject} by {ext_field}",
            )

        return _flatten(in_parallel(send, chunked(bodies, COLLECTION_SIZE), parallel))

    def create_collection(
        self, records: list[dict[str, Any]], *, all_or_none: bool = False, sobject: str | None = None
    ) -> list[RecordResult]:
        """``POST /composite/sobjects``; each record names its type in ``attributes.type`` (or pass ``sobject``)."""
        bodies = []
        for record in records:
            body = json_record(record, sobject or _type_of(record), self._lookup_field(sobject or _type_of(record)))
            if "attributes" not in body:
                raise ValueError("create_collection: every record needs attributes.type (or pass sobject=)")
            bodies.append(body)
        types = [b["attributes"]["type"] for b in bodies]
        return self._collection(
            "POST", "composite/sobjects", bodies, types, all_or_none=all_or_none, what="creating records"
        )

    def update_collection(
        self,
        records: list[dict[str, Any]],
        *,
        all_or_none: bool = False,
        sobject: str | None = None,
        parallel: int = 1,
    ) -> list[RecordResult]:
        """``PATCH /composite/sobjects``; every record carries ``Id`` (type from attributes, ``sobject`` or Id);
        calls of 200 records, ``parallel`` at a time."""
        results: list[RecordResult | None] = [None] * len(records)
        send: list[int] = []
        bodies: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            rid = record.get("Id") or record.get("id")
            if not rid:
                results[i] = RecordResult(
                    False, errors=[("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])]
                )
                continue
            type_name = sobject or _type_of(record) or self.sobject_for_id(str(rid))
            send.append(i)
            bodies.append(json_record(record, type_name, self._lookup_field(type_name)))

        def patch(chunk: Any) -> list[RecordResult]:
            types = [(b.get("attributes") or {}).get("type", "") for b in chunk]
            return self._collection(
                "PATCH", "composite/sobjects", list(chunk), types, all_or_none=all_or_none, what="updating records"
            )

        sent = _flatten(in_parallel(patch, chunked(bodies, COLLECTION_SIZE), parallel))
        for i, r in zip(send, sent, strict=True):
            results[i] = r
        return [r if r is not None else RecordResult(False) for r in results]

    def delete_collection(self, ids: list[str], *, all_or_none: bool = False) -> list[RecordResult]:
        """``DELETE /composite/sobjects?ids=…`` (Recycle Bin), 200 ids per call."""
        return self._collection(
            "DELETE", "composite/sobjects", list(ids), [""] * len(ids), all_or_none=all_or_none, what="deleting records"
        )

    # ------------------------------------------------------------------ Bulk 2.0 and the switch
    def bulk_upsert(
        self,
        sobject: str,
        ext_field: str,
        rows: list[dict[str, Any]],
        *,
        operation: str = "upsert",
        poll_interval: float = 0.5,
        timeout: float = 3600,
        parallel: int = 1,
        rows_per_job: int = BULK_JOB_ROWS,
    ) -> list[RecordResult]:
        """A Bulk 2.0 ingest job (``operation`` insert/update/upsert/delete/hardDelete), results in input order.

        Rows may use ``Account.Source_System_ID__c`` columns or nested references; ``None``/``""`` -> ``#N/A``.
        With ``parallel`` > 1, more than ``rows_per_job`` rows go as up to ``parallel`` jobs of at least
        ``rows_per_job`` rows each, created, uploaded and polled side by side (no more jobs than one job per
        ``rows_per_job`` rows would need).
        """

        def job(chunk: Any) -> list[RecordResult]:
            return self._bulk.run(
                sobject,
                operation,
                ext_field if operation == "upsert" else None,
                list(chunk),
                poll_interval=poll_interval,
                timeout=timeout,
            )

        size = max(rows_per_job, math.ceil(len(rows) / max(1, parallel)))
        return _flatten(in_parallel(job, chunked(rows, size), parallel))

    def bulk_delete(
        self, sobject: str, ids: list[str], *, hard: bool = False, poll_interval: float = 0.5, timeout: float = 3600
    ) -> list[RecordResult]:
        """Bulk 2.0 ``delete`` (Recycle Bin) or ``hardDelete`` (needs "Bulk API Hard Delete")."""
        return self._bulk.run(
            sobject,
            "hardDelete" if hard else "delete",
            None,
            [{"Id": i} for i in ids],
            poll_interval=poll_interval,
            timeout=timeout,
        )

    def upsert(
        self, sobject: str, ext_field: str, records: list[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Collections below :attr:`bulk_threshold` rows (or when ``all_or_none``), Bulk 2.0 from it."""
        if len(records) >= self.bulk_threshold and not all_or_none:
            return self.bulk_upsert(sobject, ext_field, records)
        return self.upsert_collection(sobject, ext_field, records, all_or_none=all_or_none)

    # ------------------------------------------------------------------ files
    def upload_file(
        self, title: str, filename: str, data: bytes, *, first_publish_location_id: str | None = None
    ) -> str:
        """Insert a ContentVersion (base64 JSON up to :attr:`file_json_max_bytes`, multipart above).

        With ``first_publish_location_id`` Salesforce links the new ContentDocument to that record. Returns the
        ContentVersion id; :meth:`content_document_id` gives the document id.
        """
        fields: dict[str, Any] = {"Title": title, "PathOnClient": filename}
        if first_publish_location_id:
            fields["FirstPublishLocationId"] = first_publish_location_id
        what = f"uploading the file {filename!r}"
        if len(data) <= self.file_json_max_bytes:
            fields["VersionData"] = base64.b64encode(data).decode("ascii")
            return str(self._json("POST", "sobjects/ContentVersion", fields, what=what)["id"])
        body, content_type = multipart_body(fields, "VersionData", filename, data)
        headers = {"Content-Type": content_type}
        response = self._send("POST", "sobjects/ContentVersion", content=body, headers=headers)
        return str(self._check(response, what).json()["id"])

    def content_document_id(self, content_version_id: str) -> str | None:
        soql = f"SELECT ContentDocumentId FROM ContentVersion WHERE Id = {soql_string(content_version_id)}"
        for record in self.query(soql):
            return record.get("ContentDocumentId")
        return None

    # ------------------------------------------------------------------ schema (Tooling)
    def running_permission_set(self) -> str:
        """The running user's profile-owned permission set (the FieldPermissions parent, reference §9)."""
        if not self._permset:
            self._permset = sf_tooling.running_permission_set(self)
        return self._permset

    def create_custom_field(
        self,
        sobject: str,
        field_api_name: str,
        *,
        type: str,
        label: str,
        length: int | None = None,
        external_id: bool = False,
        unique: bool = False,
        picklist_values: list[str] | None = None,
        restricted: bool = True,
        precision: int | None = None,
        scale: int | None = None,
        reference_to: str | None = None,
    ) -> None:
        """Create a custom field through Tooling and grant read/edit to the running user's permission set.

        Idempotent: an existing field (``DUPLICATE_DEVELOPER_NAME``) is not an error, and missing field
        permissions are still granted. ``type`` is a Metadata API type (``Text``, ``Number``, ``Picklist`` …)
        or its describe spelling (``string``, ``double``, ``picklist`` …). ``sobject="Activity"`` adds the
        field to Task and Event. Describe caches of the touched objects are invalidated.
        """
        sf_tooling.create_custom_field(
            self,
            sobject,
            field_api_name,
            kind=type,
            label=label,
            length=length,
            external_id=external_id,
            unique=unique,
            picklist_values=picklist_values,
            restricted=restricted,
            precision=precision,
            scale=scale,
            reference_to=reference_to,
        )

    # ------------------------------------------------------------------ picklists
    def picklist_fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Every picklist field of ``sobject`` with its active values *and labels*, read fresh from describe.

        Returns ``{api name: {"type", "custom", "restricted", "options": [{"value", "label"}]}}``. Not cached:
        :class:`FieldMeta` keeps API values only, and a value added a moment ago must show up.
        """
        raw = self._json("GET", f"sobjects/{sobject}/describe/", what=f"describing {sobject}")
        out: dict[str, dict[str, Any]] = {}
        for f in raw.get("fields") or []:
            if f.get("type") not in ("picklist", "multipicklist"):
                continue
            options = [
                {"value": str(p["value"]), "label": str(p.get("label") or p["value"])}
                for p in f.get("picklistValues") or []
                if p.get("active", True) and "value" in p
            ]
            out[str(f["name"])] = {
                "type": f["type"],
                "custom": bool(f.get("custom")),
                "restricted": bool(f.get("restrictedPicklist")),
                "options": options,
            }
        return out

    def add_picklist_value(self, sobject: str, field_name: str, label: str, *, value: str | None = None) -> str:
        """Add an active value to a custom picklist (Tooling ``CustomField`` metadata update); returns its API value.

        Idempotent: a value or label already there (any case) returns the existing API value. Standard picklists
        and picklists on a global value set are not ``CustomField`` metadata, so they raise ``MigratorError``
        saying where in Setup to add the value. Describe caches of the object are invalidated.
        """
        wanted = (value or label).strip()
        fields = self.picklist_fields(sobject)
        spec = next((f for name, f in fields.items() if name.lower() == field_name.lower()), None)
        if spec is None:
            raise DestinationError(f"{sobject}.{field_name} is not a picklist the integration user can see")
        for option in spec["options"]:
            if option["value"].lower() == wanted.lower() or option["label"].lower() == label.strip().lower():
                return str(option["value"])
        if not spec["custom"]:
            kind = "restricted standard picklist" if spec["restricted"] else "standard picklist"
            raise MigratorError(
                f"{sobject}.{field_name} is a {kind}: the API cannot add values to it; add {label!r} in Setup → "
                f"Object Manager → {sobject} → Fields & Relationships → {field_name} → Values, then refresh the map"
            )
        field_id = self._custom_field_id(sobject, field_name)
        record = self._json("GET", f"tooling/sobjects/CustomField/{field_id}", what=f"reading {sobject}.{field_name}")
        metadata = dict(record.get("Metadata") or {})
        value_set = dict(metadata.get("valueSet") or {})
        if value_set.get("valueSetName"):
            raise MigratorError(
                f"{sobject}.{field_name} uses the global value set {value_set['valueSetName']!r}; add {label!r} in "
                "Setup → Picklist Value Sets, then refresh the map"
            )
        definition = dict(value_set.get("valueSetDefinition") or {})
        added = {"fullName": wanted, "label": label.strip(), "default": False}
        definition["value"] = [*(definition.get("value") or []), added]
        metadata["valueSet"] = {**value_set, "valueSetDefinition": definition}
        self._json(
            "PATCH",
            f"tooling/sobjects/CustomField/{field_id}",
            {"Metadata": metadata},
            what=f"adding {label!r} to the picklist {sobject}.{field_name}",
        )
        for touched in ("Task", "Event") if sobject in ("Task", "Event") else (sobject,):
            self.invalidate(touched)
        return wanted

    def _custom_field_id(self, sobject: str, field_name: str) -> str:
        """The Tooling id of a custom field (custom objects are named by their ``01I`` id in ``TableEnumOrId``)."""
        table = "Activity" if sobject in ("Task", "Event") else sobject
        if table.endswith("__c"):
            objects = self._tooling_query(
                f"SELECT Id FROM CustomObject WHERE DeveloperName = {soql_string(table[:-3])}", sobject
            )
            table = str(objects[0]["Id"]) if objects else table
        developer = field_name[:-3] if field_name.endswith("__c") else field_name
        rows = self._tooling_query(
            f"SELECT Id FROM CustomField WHERE DeveloperName = {soql_string(developer)} "
            f"AND TableEnumOrId = {soql_string(table)}",
            f"{sobject}.{field_name}",
        )
        if not rows:
            raise DestinationError(
                f"{sobject}.{field_name} is not found through the Tooling API (a managed-package field?); "
                "add the value in Setup instead"
            )
        return str(rows[0]["Id"])

    def _tooling_query(self, soql: str, what: str) -> list[dict[str, Any]]:
        data = self._json("GET", "tooling/query/", params={"q": soql}, what=f"looking up {what} through Tooling")
        return list(data.get("records") or [])


def _type_of(record: dict[str, Any]) -> str | None:
    attrs = record.get("attributes")
    return attrs.get("type") if isinstance(attrs, dict) else None
