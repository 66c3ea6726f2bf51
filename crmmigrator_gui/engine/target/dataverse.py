"""Dataverse Web API v9.2 client over httpx, used unchanged for the sandbox and a real org.

Metadata drives everything: entity-set names, primary keys, column types and lengths, option
values, and — importantly — the case-sensitive navigation-property names used in
``@odata.bind`` (read from ``ManyToOneRelationships``, never guessed from column names).
Writes go through the bulk messages (``CreateMultiple``/``UpdateMultiple``) where the org
supports them (probed with ``sdkmessagefilters``), and fall back to ``$batch`` with
``odata.continue-on-error`` to find the rows a bulk call refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.target.batch import (
    BatchOp,
    BatchResult,
    build_batch,
    json_default,
    parse_batch_response,
)
from crmmigrator_gui.engine.target.http import RetryingHttp, chunked, in_parallel

API_PATH = "/api/data/v9.2/"
ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


@dataclass
class AttributeMeta:
    name: str
    type: str
    required: str = "None"
    max_length: int | None = None
    valid_create: bool = True
    valid_update: bool = True
    date_behavior: str | None = None
    options: dict[int, str] = field(default_factory=dict)  # value -> label
    option_states: dict[int, int] = field(default_factory=dict)  # statuscode value -> statecode


@dataclass
class EntityMeta:
    logical: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    attributes: dict[str, AttributeMeta]
    navigation: dict[tuple[str, str], str]  # (referencing column, referenced entity) -> nav property
    keys: dict[str, dict[str, Any]]  # schema name -> {"attributes": [...], "status": "..."}

    def nav_property(self, column: str, target: str) -> str:
        nav = self.navigation.get((column, target))
        if nav is None:
            raise DestinationError(f"{self.logical}.{column} has no relationship to {target} at the destination")
        return nav

    def option_value(self, column: str, label: str) -> int | None:
        attr = self.attributes.get(column)
        if not attr:
            return None
        wanted = label.strip().lower()
        for value, text in attr.options.items():
            if text.strip().lower() == wanted:
                return value
        return None


_json_default = json_default


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DataverseClient:
    """A Dataverse Web API client.

    Args:
        org_url: the environment URL (``https://org.crm.dynamics.com`` or the sandbox URL).
        token: callable returning a bearer token.
        transport: optional httpx transport (in-process sandbox).
    """

    def __init__(
        self, org_url: str, token: Any, *, transport: httpx.BaseTransport | None = None, sleep: Any = None
    ) -> None:
        self.org_url = org_url.rstrip("/")
        kwargs: dict[str, Any] = {"transport": transport, "default_headers": ODATA_HEADERS}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.http = RetryingHttp(self.org_url + API_PATH, token, **kwargs)
        self._meta: dict[str, EntityMeta] = {}
        self._meta_lock = threading.Lock()
        self._bulk: dict[tuple[str, str], bool] = {}

    def close(self) -> None:
        self.http.close()

    @property
    def requests(self) -> int:
        return self.http.requests

    # ------------------------------------------------------------------ basics
    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            code, message = error_of(response)
            raise DestinationError(
                f"{what}: {message} ({response.status_code} {code})".strip(), status=response.status_code, code=code
            )
        return response

    def _json(self, payload: Any) -> bytes:
        return json.dumps(payload, default=_json_default, ensure_ascii=False).encode("utf-8")

    def send(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        content = None
        if payload is not None:
            content = self._json(payload)
            all_headers["Content-Type"] = "application/json; charset=utf-8"
        return self.http.request(method, path, content=content, headers=all_headers, params=params)

    def whoami(self) -> dict[str, Any]:
        return dict(self._check(self.send("GET", "WhoAmI"), "WhoAmI").json())

    # ------------------------------------------------------------------ metadata
    def invalidate(self, logical: str | None = None) -> None:
        with self._meta_lock:
            if logical:
                self._meta.pop(logical, None)
            else:
                self._meta.clear()

    def entity_exists(self, logical: str) -> bool:
        response = self.send("GET", f"EntityDefinitions(LogicalName='{logical}')", params={"$select": "LogicalName"})
        return response.status_code == 200

    def entity(self, logical: str) -> EntityMeta:
        """Entity metadata, cached per client; refreshed with ``invalidate`` after schema changes."""
        with self._meta_lock:
            cached = self._meta.get(logical)
        if cached:
            return cached
        base = f"EntityDefinitions(LogicalName='{logical}')"
        definition = self._check(
            self.send(
                "GET", base, params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute"}
            ),
            f"reading the definition of {logical}",
        ).json()
        attrs_raw = self._check(self.send("GET", f"{base}/Attributes"), f"reading columns of {logical}").json()
        attributes: dict[str, AttributeMeta] = {}
        for a in attrs_raw.get("value", []):
            attr_type = a.get("AttributeType", "String")
            behavior = a.get("DateTimeBehavior")
            attributes[a["LogicalName"]] = AttributeMeta(
                name=a["LogicalName"],
                type=attr_type,
                required=(a.get("RequiredLevel") or {}).get("Value", "None"),
                max_length=a.get("MaxLength"),
                valid_create=a.get("IsValidForCreate", True),
                valid_update=a.get("IsValidForUpdate", True),
                date_behavior=behavior.get("Value") if isinstance(behavior, dict) else behavior,
            )
        for cast in ("StringAttributeMetadata", "MemoAttributeMetadata"):
            rows = self.send(
                "GET", f"{base}/Attributes/Microsoft.Dynamics.CRM.{cast}", params={"$select": "LogicalName,MaxLength"}
            )
            if rows.status_code == 200:
                for a in rows.json().get("value", []):
                    if a["LogicalName"] in attributes and a.get("MaxLength"):
                        attributes[a["LogicalName"]].max_length = a["MaxLength"]
        dt_rows = self.send(
            "GET",
            f"{base}/Attributes/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            params={"$select": "LogicalName,DateTimeBehavior,Format"},
        )
        if dt_rows.status_code == 200:
            for a in dt_rows.json().get("value", []):
                behavior = a.get("DateTimeBehavior")
                value = behavior.get("Value") if isinstance(behavior, dict) else behavior
                if a["LogicalName"] in attributes:
                    attributes[a["LogicalName"]].date_behavior = value or (
                        "DateOnly" if a.get("Format") == "DateOnly" else None
                    )
        for cast in ("PicklistAttributeMetadata", "StatusAttributeMetadata", "StateAttributeMetadata"):
            rows = self.send(
                "GET",
                f"{base}/Attributes/Microsoft.Dynamics.CRM.{cast}",
                params={"$select": "LogicalName", "$expand": "OptionSet"},
            )
            if rows.status_code != 200:
                continue
            for a in rows.json().get("value", []):
                attr = attributes.get(a["LogicalName"])
                if not attr:
                    continue
                for option in (a.get("OptionSet") or {}).get("Options", []):
                    label = ((option.get("Label") or {}).get("UserLocalizedLabel") or {}).get("Label", "")
                    attr.options[int(option["Value"])] = label
                    if "State" in option and option["State"] is not None:
                        attr.option_states[int(option["Value"])] = int(option["State"])
        rels = self._check(
            self.send(
                "GET",
                f"{base}/ManyToOneRelationships",
                params={"$select": "ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"},
            ),
            f"reading relationships of {logical}",
        ).json()
        navigation = {
            (r["ReferencingAttribute"], r["ReferencedEntity"]): r["ReferencingEntityNavigationPropertyName"]
            for r in rels.get("value", [])
        }
        keys_raw = self.send("GET", f"{base}/Keys", params={"$select": "SchemaName,KeyAttributes,EntityKeyIndexStatus"})
        keys = {}
        if keys_raw.status_code == 200:
            for k in keys_raw.json().get("value", []):
                keys[k["SchemaName"]] = {
                    "attributes": k.get("KeyAttributes", []),
                    "status": k.get("EntityKeyIndexStatus"),
                }
        meta = EntityMeta(
            logical=logical,
            entity_set=definition["EntitySetName"],
            primary_id=definition["PrimaryIdAttribute"],
            primary_name=definition.get("PrimaryNameAttribute"),
            attributes=attributes,
            navigation=navigation,
            keys=keys,
        )
        with self._meta_lock:
            self._meta[logical] = meta
        return meta

    def supports_bulk(self, logical: str, message: str) -> bool:
        """Probe ``sdkmessagefilters`` once per table and message (not every table supports them)."""
        key = (logical, message)
        if key not in self._bulk:
            response = self.send(
                "GET",
                "sdkmessagefilters",
                params={
                    "$select": "sdkmessagefilterid",
                    "$filter": f"sdkmessageid/name eq '{message}' and primaryobjecttypecode eq '{logical}'",
                },
            )
            self._bulk[key] = response.status_code == 200 and bool(response.json().get("value"))
        return self._bulk[key]

    # ------------------------------------------------------------------ queries
    def query(
        self, entity_set: str, *, select: list[str] | None = None, filter: str | None = None, page_size: int = 5000
    ) -> Iterator[dict[str, Any]]:
        """All rows matching a filter, following ``@odata.nextLink`` unchanged."""
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(select)
        if filter:
            params["$filter"] = filter
        headers = {"Prefer": f"odata.maxpagesize={page_size}", "If-None-Match": "null"}
        response = self._check(self.send("GET", entity_set, headers=headers, params=params), f"querying {entity_set}")
        while True:
            data = response.json()
            yield from data.get("value", [])
            next_link = data.get("@odata.nextLink")
            if not next_link:
                return
            response = self._check(self.http.request("GET", next_link, headers=headers), f"paging {entity_set}")

    def find_by_keys(
        self, meta: EntityMeta, key_column: str, keys: list[str], select: list[str], *, parallel: int = 1
    ) -> dict[str, dict[str, Any]]:
        """Existing rows for many alternate-key values, in chunks that keep the URL short (``parallel`` chunks
        at a time: reads cost the same number of requests whether sent one by one or side by side)."""
        columns = sorted({*select, key_column, meta.primary_id})

        def read(chunk: Sequence[str]) -> list[dict[str, Any]]:
            values = ",".join(json.dumps(k, ensure_ascii=False) for k in chunk)
            flt = f"Microsoft.Dynamics.CRM.In(PropertyName='{key_column}',PropertyValues=[{values}])"
            return list(self.query(meta.entity_set, select=columns, filter=flt))

        found: dict[str, dict[str, Any]] = {}
        for rows in in_parallel(read, chunked(keys, 250), parallel):
            for row in rows:
                found[str(row[key_column])] = row
        return found

    def find_users_by_email(self, emails: list[str]) -> dict[str, dict[str, Any]]:
        """Active and disabled systemusers by internal e-mail (lower-cased keys)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(emails), 50):
            chunk = emails[start : start + 50]
            flt = " or ".join(f"internalemailaddress eq {_odata_string(e)}" for e in chunk)
            for row in self.query(
                "systemusers", select=["systemuserid", "fullname", "internalemailaddress", "isdisabled"], filter=flt
            ):
                email = (row.get("internalemailaddress") or "").lower()
                if email:
                    found[email] = row
        return found

    def lookup_id(self, logical: str, filter: str) -> str | None:
        meta = self.entity(logical)
        for row in self.query(meta.entity_set, select=[meta.primary_id], filter=filter, page_size=1):
            return str(row[meta.primary_id])
        return None

    def retrieve(self, meta: EntityMeta, record_id: str, select: list[str]) -> dict[str, Any] | None:
        response = self.send("GET", f"{meta.entity_set}({record_id})", params={"$select": ",".join(select)})
        if response.status_code == 404:
            return None
        return dict(self._check(response, f"reading {meta.logical} {record_id}").json())

    # ------------------------------------------------------------------ writes
    def create_multiple(self, meta: EntityMeta, records: list[dict[str, Any]]) -> list[str]:
        """CreateMultiple: all-or-nothing; returns ids in input order. Raises DestinationError."""
        targets = [{"@odata.type": f"Microsoft.Dynamics.CRM.{meta.logical}", **r} for r in records]
        response = self.send("POST", f"{meta.entity_set}/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": targets})
        self._check(response, f"CreateMultiple on {meta.entity_set}")
        return [str(i) for i in response.json()["Ids"]]

    def update_multiple(self, meta: EntityMeta, records: list[dict[str, Any]]) -> None:
        """UpdateMultiple by primary key (the Web API does not accept alternate keys here)."""
        targets = [{"@odata.type": f"Microsoft.Dynamics.CRM.{meta.logical}", **r} for r in records]
        response = self.send("POST", f"{meta.entity_set}/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": targets})
        self._check(response, f"UpdateMultiple on {meta.entity_set}")

    def batch(self, ops: list[BatchOp], *, continue_on_error: bool = True) -> list[BatchResult]:
        """Send up to 1000 operations in one ``$batch``; results in order."""
        results: list[BatchResult] = []
        for start in range(0, len(ops), 1000):
            chunk = ops[start : start + 1000]
            body, boundary = build_batch(chunk)
            headers = {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}
            if continue_on_error:
                headers["Prefer"] = "odata.continue-on-error"
            response = self.http.request("POST", "$batch", content=body.encode("utf-8"), headers=headers)
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("multipart/mixed"):
                self._check(response, "$batch")
                raise DestinationError(f"$batch answered {response.status_code} without a multipart body")
            results.extend(parse_batch_response(content_type, response.text))
        return results

    def path(self, relative: str) -> str:
        return API_PATH + relative

    def key_url(self, meta: EntityMeta, key_column: str, key: str) -> str:
        return f"{meta.entity_set}({key_column}={quote(_odata_string(key), safe=chr(39))})"

    def key_status(self, logical: str, schema_name: str) -> str | None:
        """``EntityKeyIndexStatus`` of one alternate key (Pending, InProgress, Active, Failed)."""
        response = self.send(
            "GET",
            f"EntityDefinitions(LogicalName='{logical}')/Keys",
            params={"$select": "SchemaName,EntityKeyIndexStatus"},
        )
        if response.status_code != 200:
            return None
        for key in response.json().get("value", []):
            if key.get("SchemaName", "").lower() == schema_name.lower():
                return str(key.get("EntityKeyIndexStatus"))
        return None

    # ------------------------------------------------------------------ schema writes
    def post_metadata(
        self, path: str, payload: dict[str, Any], what: str, solution: str | None = None
    ) -> httpx.Response:
        headers = {"MSCRM.SolutionUniqueName": solution} if solution else {}
        return self._check(self.send("POST", path, payload, headers=headers), what)

    def insert_option_value(
        self, logical: str, column: str, label: str, *, solution: str | None = None, language: int = 1033
    ) -> int:
        """``InsertOptionValue`` on a local choice column, then ``PublishXml`` for the table; returns the new integer.

        The integer is the destination's to choose (the solution publisher's option prefix on a real org), so
        it is read from the response, never assumed. The table's cached metadata is dropped afterwards.
        """
        text = {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": label, "LanguageCode": language}
        body: dict[str, Any] = {
            "EntityLogicalName": logical,
            "AttributeLogicalName": column,
            "Label": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [text]},
        }
        if solution:
            body["SolutionUniqueName"] = solution
        response = self.post_metadata("InsertOptionValue", body, f"adding the option {label!r} to {logical}.{column}")
        value = int(response.json()["NewOptionValue"])
        xml = f"<importexportxml><entities><entity>{logical}</entity></entities></importexportxml>"
        self.post_metadata("PublishXml", {"ParameterXml": xml}, f"publishing {logical}")
        self.invalidate(logical)
        return value


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from a Dataverse error body, tolerant of odd shapes."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200] or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", "")), str(body["error"].get("message", ""))
    return "", f"HTTP {response.status_code}"
