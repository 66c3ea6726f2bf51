"""Read what an API source exposes about its own configuration: the definitions an admin must rebuild.

Records migrate; automations, validation, reports, approval processes, territories and queues do not. Where
the source's API exposes those definitions we read them, over the same clients, connection settings and
keyring secrets the extraction uses (so a real org or tenant and the embedded emulator are read alike), and
keep them in project meta ``source_definitions`` (one audited step), so the rebuild package can be written
later, offline. Reading again replaces what was stored.

* ServiceTracker (a Salesforce org; reference salesforce-api §5, Tooling query): Tooling ``FlowDefinitionView``,
  ``ApexTrigger`` and ``ValidationRule`` (each rule's formula from its ``Metadata``, one row per query as an
  org requires), and REST SOQL ``Report``, ``Dashboard`` and ``ProcessDefinition`` (approval processes).
  Objects named by a custom object's ``01I`` id are resolved through Tooling ``CustomObject``.
* Dispatch Pro (ServiceTitan v2; source-platforms §1.3–§1.4): zones, job types, tag types, business units and
  campaigns with ``active=Any`` — the territories, case types, tags, teams/queues and lead sources to set up.
  Dispatch Pro's own dispatch rules have no API (§1.1) and are listed as not exposed.
* File sources (OctopusPro, Q Dispatch, generic exports) expose nothing: ``{"exposed": False, "why": …}``.

Each definition is ``{"kind", "name", "api_name", "object", "active", "details"}``; every string is the
source's own text. A kind the source refuses (say, Tooling without "View Setup") is skipped with a warning;
if every kind fails, nothing is stored and the error is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, now_iso

META_KEY = "source_definitions"

NOT_EXPOSED = {
    "octopuspro": "OctopusPro reaches the project as support-provided CSV/Excel exports: they carry records only, "
    "not its automations, forms and checklists layout, booking-status transitions or portal settings.",
    "qdispatch": "Q Dispatch is not API-first: its export files carry work orders and related records, not its "
    "workflow definitions, dispatch rules or reports.",
    "generic": "A CSV/Excel export carries records only; automations, forms and report definitions stay in the "
    "source system.",
}
#: Salesforce API field names of each Tooling/REST read, in query order.
SF_READS: tuple[tuple[str, str, str], ...] = (
    ("flow", "tooling", "SELECT Id, ApiName, Label, ProcessType, TriggerType, RecordTriggerType, "
     "TriggerObjectOrEventId, TriggerObjectOrEventLabel, IsActive, Description FROM FlowDefinitionView"),
    ("trigger", "tooling", "SELECT Id, Name, TableEnumOrId, Status, ApiVersion, UsageBeforeInsert, UsageBeforeUpdate, "
     "UsageBeforeDelete, UsageAfterInsert, UsageAfterUpdate, UsageAfterDelete, UsageAfterUndelete, Body "
     "FROM ApexTrigger"),
    ("validation_rule", "tooling", "SELECT Id, ValidationName, EntityDefinitionId, EntityDefinition.QualifiedApiName, "
     "Active, ErrorDisplayField, ErrorMessage, Description FROM ValidationRule"),
    ("report", "rest", "SELECT Id, Name, DeveloperName, FolderName, Format, Description FROM Report"),
    ("dashboard", "rest", "SELECT Id, Title, DeveloperName, FolderName, Description, Type FROM Dashboard"),
    ("approval_process", "rest", "SELECT Id, Name, DeveloperName, TableEnumOrId, Type, State, Description "
     "FROM ProcessDefinition WHERE Type = 'Approval'"),
)  # fmt: skip
#: ServiceTitan reads: kind -> (module, list path).
ST_READS: tuple[tuple[str, str, str], ...] = (
    ("business_unit", "settings", "business-units"),
    ("zone", "dispatch", "zones"),
    ("job_type", "jpm", "job-types"),
    ("tag_type", "settings", "tag-types"),
    ("campaign", "marketing", "campaigns"),
)
_TRIGGER_EVENTS = (
    ("UsageBeforeInsert", "before insert"),
    ("UsageBeforeUpdate", "before update"),
    ("UsageBeforeDelete", "before delete"),
    ("UsageAfterInsert", "after insert"),
    ("UsageAfterUpdate", "after update"),
    ("UsageAfterDelete", "after delete"),
    ("UsageAfterUndelete", "after undelete"),
)


def read_definitions(
    project: Project, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None
) -> dict[str, Any]:
    """Read the source's definitions (online for API sources), store them in the project and return them."""
    cancel = cancel or CancelToken()
    if project.source == "servicetracker":
        result = _read_servicetracker(project, progress, cancel)
    elif project.source == "dispatchpro":
        result = _read_servicetitan(project, progress, cancel)
    else:
        why = NOT_EXPOSED.get(project.source, f"{project.source} is read from export files, which carry records only.")
        result = {"exposed": False, "why": why}
    result = {"source": project.source, "read_at": now_iso(), **result}
    counts = _counts(result.get("definitions") or [])
    with project.step("read source definitions", {"exposed": result["exposed"], "counts": counts}):
        project.set_meta(META_KEY, result)
    return result


def stored_definitions(project: Project) -> dict[str, Any] | None:
    """What the last :func:`read_definitions` stored, or None if it never ran."""
    value = project.meta(META_KEY)
    return value if isinstance(value, dict) else None


def _counts(definitions: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in definitions:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return counts


def _collect(
    reads: list[tuple[str, Callable[[], list[dict[str, Any]]]]],
    progress: ProgressCallback,
    cancel: CancelToken,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run each kind's read; a refused kind becomes a warning, all refused raises the first error."""
    found: list[dict[str, Any]] = []
    warnings: list[str] = []
    errors: list[MigratorError] = []
    for done, (kind, read) in enumerate(reads):
        cancel.raise_if_cancelled()
        progress(ProgressEvent("definitions", kind, done, len(reads), message=f"reading {kind} definitions"))
        try:
            found.extend(read())
        except MigratorError as exc:
            errors.append(exc)
            warnings.append(f"{kind}: not read ({exc})")
    progress(ProgressEvent("definitions", "", len(reads), len(reads)))
    if errors and len(errors) == len(reads):
        raise errors[0]
    return found, warnings


def _plain(value: Any) -> Any:
    """JSON-ready: money and other exact numbers stay exact as text (the project meta is JSON)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _definition(kind: str, name: Any, api_name: Any, obj: Any, active: Any, details: dict[str, Any]) -> dict:
    return {
        "kind": kind,
        "name": "" if name is None else str(name),
        "api_name": None if api_name is None else str(api_name),
        "object": None if obj in (None, "") else str(obj),
        "active": None if active is None else bool(active),
        "details": {k: _plain(v) for k, v in details.items() if v not in (None, "", [])},
    }


# ---------------------------------------------------------------------------------------------- ServiceTracker


def _read_servicetracker(project: Project, progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
    from crmmigrator_gui.engine.source.extract.servicetracker import _open_source, _pick_version

    client, sandbox = _open_source(project)
    try:
        base = f"/services/data/v{_pick_version(client)}"
        custom: dict[str, str] = {}

        def query(where: str, soql: str) -> Iterator[dict[str, Any]]:
            path = f"{base}/tooling/query/" if where == "tooling" else f"{base}/query/"
            body = client.get_json(path, params={"q": soql})
            while True:
                yield from body.get("records") or []
                if body.get("done", True) or not body.get("nextRecordsUrl"):
                    return
                body = client.get_json(body["nextRecordsUrl"])

        def table(value: Any) -> Any:
            """A ``TableEnumOrId``: standard objects by name, custom ones by their 01I id (first 15 chars)."""
            if not isinstance(value, str) or not value.startswith("01I"):
                return value
            if not custom:
                for row in query("tooling", "SELECT Id, DeveloperName, NamespacePrefix FROM CustomObject"):
                    prefix = f"{row['NamespacePrefix']}__" if row.get("NamespacePrefix") else ""
                    custom[str(row["Id"])[:15]] = f"{prefix}{row['DeveloperName']}__c"
            return custom.get(value[:15], value)

        def formula(rule_id: str) -> str | None:
            soql = f"SELECT Id, Metadata FROM ValidationRule WHERE Id = '{rule_id}'"  # one row: Metadata allowed
            rows = list(query("tooling", soql))
            return ((rows[0].get("Metadata") or {}).get("errorConditionFormula")) if rows else None

        shapers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "flow": lambda r: _definition(
                "flow", r.get("Label") or r.get("ApiName"), r.get("ApiName"),
                table(r.get("TriggerObjectOrEventId")) or r.get("TriggerObjectOrEventLabel"), r.get("IsActive"),
                {"process_type": r.get("ProcessType"), "trigger_type": r.get("TriggerType"),
                 "record_trigger": r.get("RecordTriggerType"), "description": r.get("Description")},
            ),
            "trigger": lambda r: _definition(
                "trigger", r.get("Name"), r.get("Name"), table(r.get("TableEnumOrId")), r.get("Status") == "Active",
                {"events": ", ".join(label for key, label in _TRIGGER_EVENTS if r.get(key)),
                 "status": r.get("Status"), "api_version": r.get("ApiVersion"), "body": r.get("Body")},
            ),
            "validation_rule": lambda r: _definition(
                "validation_rule", r.get("ValidationName"), r.get("ValidationName"),
                (r.get("EntityDefinition") or {}).get("QualifiedApiName") or table(r.get("EntityDefinitionId")),
                r.get("Active"),
                {"error_message": r.get("ErrorMessage"), "error_field": r.get("ErrorDisplayField"),
                 "description": r.get("Description"), "formula": formula(str(r["Id"]))},
            ),
            "report": lambda r: _definition(
                "report", r.get("Name"), r.get("DeveloperName"), None, None,
                {"folder": r.get("FolderName"), "format": r.get("Format"), "description": r.get("Description")},
            ),
            "dashboard": lambda r: _definition(
                "dashboard", r.get("Title"), r.get("DeveloperName"), None, None,
                {"folder": r.get("FolderName"), "running_user": r.get("Type"), "description": r.get("Description")},
            ),
            "approval_process": lambda r: _definition(
                "approval_process", r.get("Name"), r.get("DeveloperName"), table(r.get("TableEnumOrId")),
                r.get("State") == "Active",
                {"state": r.get("State"), "description": r.get("Description")},
            ),
        }  # fmt: skip

        def reader(kind: str, where: str, soql: str) -> Callable[[], list[dict[str, Any]]]:
            return lambda: [shapers[kind](row) for row in query(where, soql)]

        found, warnings = _collect([(k, reader(k, w, q)) for k, w, q in SF_READS], progress, cancel)
        return {
            "exposed": True,
            "platform": "Salesforce org (ServiceTracker)",
            "endpoint": client.instance_url,
            "requests": client.requests,
            "definitions": found,
            "warnings": warnings,
            "not_exposed": [],
        }
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()


# ---------------------------------------------------------------------------------------------- ServiceTitan


def _read_servicetitan(project: Project, progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
    from crmmigrator_gui.engine.source.extract.servicetitan import open_client

    client, sandbox = open_client(project)
    try:
        units: dict[Any, str] = {}

        def rows(module: str, resource: str) -> list[dict[str, Any]]:
            return list(client.list_all(module, resource, {"active": "Any"}))

        def unit_names(ids: Any) -> list[str]:
            return [units.get(i, str(i)) for i in ids or []]

        def business_units() -> list[dict[str, Any]]:
            found = rows("settings", "business-units")
            units.update({row["id"]: str(row.get("name") or row["id"]) for row in found})
            return [
                _definition("business_unit", r.get("name"), r.get("id"), "Business unit", r.get("active"),
                            {"official_name": r.get("officialName"), "email": r.get("email"),
                             "phone": r.get("phoneNumber"), "currency": r.get("currency"),
                             "address": _address(r.get("address"))})
                for r in found
            ]  # fmt: skip

        def zones() -> list[dict[str, Any]]:
            return [
                _definition("zone", r.get("name"), r.get("id"), "Zone", r.get("active"),
                            {"zips": r.get("zips"), "cities": r.get("cities"),
                             "business_units": unit_names(r.get("businessUnits")),
                             "territory_numbers": r.get("territoryNumbers"),
                             "service_days": r.get("serviceDays") if r.get("serviceDaysEnabled") else None})
                for r in rows("dispatch", "zones")
            ]  # fmt: skip

        def job_types() -> list[dict[str, Any]]:
            return [
                _definition("job_type", r.get("name"), r.get("id"), "Job", r.get("active"),
                            {"duration_minutes": int(r["duration"]) // 60 if r.get("duration") else None,
                             "priority": r.get("priority"), "skills": r.get("skills"),
                             "business_units": unit_names(r.get("businessUnitIds")),
                             "no_charge": r.get("noCharge") or None, "summary": r.get("summary")})
                for r in rows("jpm", "job-types")
            ]  # fmt: skip

        def tag_types() -> list[dict[str, Any]]:
            return [
                _definition("tag_type", r.get("name"), r.get("id"), "Customer / Job tag", r.get("active"),
                            {"code": r.get("code"), "importance": r.get("importance"), "color": r.get("color"),
                             "conversion_opportunity": r.get("isConversionOpportunity") or None})
                for r in rows("settings", "tag-types")
            ]  # fmt: skip

        def campaigns() -> list[dict[str, Any]]:
            return [
                _definition("campaign", r.get("name"), r.get("id"), "Job (lead source)", r.get("active"),
                            {"category": (r.get("category") or {}).get("name"), "source": r.get("source"),
                             "medium": r.get("medium")})
                for r in rows("marketing", "campaigns")
            ]  # fmt: skip

        readers = {
            "business_unit": business_units,
            "zone": zones,
            "job_type": job_types,
            "tag_type": tag_types,
            "campaign": campaigns,
        }
        found, warnings = _collect([(kind, readers[kind]) for kind, _m, _p in ST_READS], progress, cancel)
        return {
            "exposed": True,
            "platform": "ServiceTitan v2 API (Dispatch Pro)",
            "endpoint": client.endpoint.base_url,
            "requests": client.requests,
            "definitions": found,
            "warnings": warnings,
            "not_exposed": [
                "Dispatch Pro auto-dispatch, scoring rules and technician settings: ServiceTitan has no API for "
                "them."
            ],
        }
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()


def _address(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    parts = [value.get(k) for k in ("street", "unit", "city", "state", "zip", "country")]
    return ", ".join(str(p) for p in parts if p) or None
