"""Checks against the destination: schema, edition limits, owners, audit fields, value maps, file limits.

All reads: pre-flight never writes to the destination (the embedded sandbox included).
"""

from __future__ import annotations

import json
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.plan.preflight.dryrun import DEFAULT_MAX_UPLOAD
from crmmigrator_gui.engine.plan.preflight.findings import Finding
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import is_sandbox

PROFESSIONAL_CUSTOM_TABLE_CAP = 15
DV_CHOICE_TYPES = ("Picklist", "Status", "State")


def schema_findings(project: Project, playbook: Playbook, client: Any) -> list[Finding]:
    """Custom schema the map needs that the destination lacks (the embedded sandbox is provisioned by load)."""
    if project.target == "salesforce":
        from crmmigrator_gui.engine.plan import sf_schema as schema
    else:
        from crmmigrator_gui.engine.plan import schema  # type: ignore[no-redef]
    absent = schema.missing(client, schema.manifest(project, playbook))
    if not absent:
        return []
    severity = "info" if is_sandbox(project) else "blocking"
    names = sorted({f"{i.entity}.{i.name}" for i in absent})
    how = "the sandbox is provisioned by `load`" if severity == "info" else "run `crmmigrator schema PROJECT apply`"
    return [
        Finding(
            severity,
            "SCHEMA_MISSING",
            f"{len(absent)} schema item(s) missing ({', '.join(names[:8])}{'…' if len(names) > 8 else ''}); {how}",
            detail={"items": [i.to_json() for i in absent]},
        )
    ]


def edition_findings(project: Project, playbook: Playbook, client: Any) -> list[Finding]:
    """Dynamics 365 Sales Professional allows 15 custom tables: the map's plus those the org already has."""
    if project.target != "dynamics365" or project.edition != "professional":
        return []
    from crmmigrator_gui.engine.plan import schema

    needed = {i.entity for i in schema.manifest(project, playbook) if i.kind == "table"}
    existing: set[str] = set()
    try:
        for row in client.query("EntityDefinitions", select=["LogicalName"], filter="IsCustomEntity eq true"):
            existing.add(str(row["LogicalName"]))
    except DestinationError:
        pass  # an org that will not list its tables: count the map's alone
    total = needed | existing
    detail = {"needed": sorted(needed), "existing": sorted(existing), "cap": PROFESSIONAL_CUSTOM_TABLE_CAP}
    if len(total) > PROFESSIONAL_CUSTOM_TABLE_CAP:
        return [
            Finding(
                "blocking",
                "EDITION_TABLE_LIMIT",
                f"the org would have {len(total)} custom tables ({len(needed - existing)} new for this map, "
                f"{len(existing)} already there); Dynamics 365 Sales Professional allows "
                f"{PROFESSIONAL_CUSTOM_TABLE_CAP}: map some objects to standard tables or move to Enterprise",
                detail=detail,
            )
        ]
    return [
        Finding(
            "info",
            "EDITION_TABLE_LIMIT",
            f"{len(total)} of the {PROFESSIONAL_CUSTOM_TABLE_CAP} custom tables Sales Professional allows",
            detail=detail,
        )
    ]


def audit_findings(project: Project, client: Any) -> list[Finding]:
    if project.target != "salesforce" or client.audit_fields_enabled():
        return []
    return [
        Finding(
            "warning",
            "AUDIT_FIELDS_OFF",
            '"Set Audit Fields upon Record Creation" is off for the integration user: original created dates on '
            "tasks, events and records go to a Source_Created_Date__c field instead of CreatedDate; turn it on in "
            "Setup → User Interface and assign the permission to keep them",
        )
    ]


# ---------------------------------------------------------------------------------------------- owners


def fallback_owner(project: Project, client: Any) -> tuple[str | None, str, list[Finding]]:
    """(user id, label, findings) of the owner that records of unmatched technicians get.

    The project meta ``fallback_owner`` (an e-mail) names it, and must be an active user; without one it is the
    migration user. (run/load.py must read the same setting; today it always falls back to the migration user.)
    """
    wanted = str(project.meta("fallback_owner") or "").strip().lower()
    if wanted:
        users = _users_by_email(project, client, [wanted])
        user = users.get(wanted)
        if user and user.get("active"):
            return str(user["id"]), f"{user.get('name') or wanted} <{wanted}>", []
        why = "is disabled" if user else "is not a user at the destination"
        return (
            None,
            wanted,
            [
                Finding(
                    "blocking",
                    "FALLBACK_OWNER_UNKNOWN",
                    f"the fallback owner {wanted} {why}: records of unmatched technicians would have no valid owner; "
                    "set project meta fallback_owner to an active user's e-mail",
                    detail={"fallback_owner": wanted},
                )
            ],
        )
    if project.target == "salesforce":
        info = client.user_info()
        name = info.get("name") or info.get("preferred_username") or info.get("user_id")
        return str(info.get("user_id") or ""), f"the migration user ({name})", []
    who = client.whoami()
    user_id = str(who.get("UserId") or "")
    name = user_id
    try:
        rows = list(client.query("systemusers", select=["fullname"], filter=f"systemuserid eq {user_id}"))
        name = str(rows[0].get("fullname") or user_id) if rows else user_id
    except DestinationError:
        pass
    return user_id, f"the migration user ({name})", []


def owner_findings(project: Project, playbook: Playbook, client: Any, fallback_label: str) -> list[Finding]:
    """Technicians / field workers with no active user of the same e-mail (their records get the fallback)."""
    findings: list[Finding] = []
    columns = role_columns(project)
    staged = set(project.source_object_names())
    for obj in playbook.objects:
        match = obj.match_user
        if not match or obj.name not in staged:
            continue
        email_column = columns.get(obj.name, {}).get(match["role"])
        if not email_column:
            findings.append(
                Finding(
                    "warning",
                    "UNMATCHED_OWNER",
                    f"{obj.name} has no e-mail column in the map: no "
                    f"technician can be matched to a user; every record goes to {fallback_label}",
                    obj.name,
                )
            )
            continue
        emails: dict[str, str] = {}
        missing: list[str] = []
        for source_id, raw in project.iter_staged(obj.name):
            value = str(raw.get(email_column) or "").strip().lower()
            if value:
                emails[source_id] = value
            else:
                missing.append(source_id)
        users = _users_by_email(project, client, sorted(set(emails.values())))
        for source_id, email in emails.items():
            user = users.get(email)
            if user and user.get("active"):
                continue
            why = f"the user with the e-mail {email} is disabled" if user else f"no user has the e-mail {email}"
            findings.append(
                Finding(
                    "warning",
                    "UNMATCHED_OWNER",
                    f"{why}: this worker's records will be owned by {fallback_label}",
                    obj.name,
                    email_column,
                    source_id,
                    {"email": email, "fallback": fallback_label},
                )
            )
        for source_id in missing:
            findings.append(
                Finding(
                    "warning",
                    "UNMATCHED_OWNER",
                    f"no e-mail: this worker's records will be owned by {fallback_label}",
                    obj.name,
                    email_column,
                    source_id,
                    {"fallback": fallback_label},
                )
            )
    return findings


def _users_by_email(project: Project, client: Any, emails: list[str]) -> dict[str, dict[str, Any]]:
    """e-mail (lower case) -> {id, name, active} for the users that exist, active or not."""
    found: dict[str, dict[str, Any]] = {}
    if not emails:
        return found
    if project.target == "salesforce":
        for start in range(0, len(emails), 100):
            chunk = ",".join(
                "'" + e.replace("\\", "\\\\").replace("'", "\\'") + "'" for e in emails[start : start + 100]
            )
            for row in client.query(f"SELECT Id, Name, Email, IsActive FROM User WHERE Email IN ({chunk})"):
                email = str(row.get("Email") or "").lower()
                if email and not found.get(email, {}).get("active"):
                    found[email] = {"id": row.get("Id"), "name": row.get("Name"), "active": bool(row.get("IsActive"))}
        return found
    for email, row in client.find_users_by_email(emails).items():
        found[email] = {"id": row.get("systemuserid"), "name": row.get("fullname"), "active": not row.get("isdisabled")}
    return found


# ---------------------------------------------------------------------------------------------- values and files


def choice_columns(project: Project, client: Any) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], dict[Any, Any]]:
    """(object -> [(source column, transform)], (object, column) -> [(entity, target column, meta)]) for every
    confirmed field row whose destination column is a choice (by planned metadata)."""
    columns: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    targets: dict[tuple[str, str], list[tuple[str, str, Any]]] = {}
    for row in project.query(
        "SELECT source_object, source_field, target_entity, target_field, transform FROM field_maps "
        "WHERE status = 'confirmed' AND target_entity IS NOT NULL ORDER BY id"
    ):
        spec = json.loads(row["transform"])
        if spec.get("type") in ("key", "lookup", "owner"):
            continue
        try:
            if project.target == "salesforce":
                from crmmigrator_gui.engine.plan.sf_payloads import PICKLIST_TYPES
                from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

                meta = client.describe(row["target_entity"])
                f = meta.field(custom_field_name(row["target_field"]))
                is_choice = f is not None and f.type in PICKLIST_TYPES
            else:
                meta = client.entity(row["target_entity"])
                attr = meta.attributes.get(row["target_field"])
                is_choice = attr is not None and attr.type in DV_CHOICE_TYPES
        except DestinationError:
            continue
        if not is_choice:
            continue
        key = (row["source_object"], row["source_field"])
        if key not in targets:
            columns.setdefault(row["source_object"], []).append((row["source_field"], spec))
        targets.setdefault(key, []).append((row["target_entity"], row["target_field"], meta))
    return columns, targets


def unmapped_findings(
    project: Project,
    targets: dict[tuple[str, str], list[tuple[str, str, Any]]],
    counts: dict[tuple[str, str], Any],
    ids: dict[tuple[str, str, str], list[str]],
) -> list[Finding]:
    """Choice values in the data with no usable mapping: undecided (the confirm gate refuses the load), missing
    from the value map (imported after automap) or mapped to a label the destination does not offer."""
    stored: dict[tuple[str, str, str, str, str], dict[str, Any]] = {
        (r["source_object"], r["source_field"], r["target_entity"], r["target_field"], r["source_value"]): r
        for r in project.query("SELECT * FROM value_maps")
    }
    findings = []
    salesforce = project.target == "salesforce"
    for (obj, column), counter in sorted(counts.items()):
        for entity, target_field, meta in targets.get((obj, column), []):
            for value, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
                row = stored.get((obj, column, entity, target_field, value))
                label = row.get("target_label") if row else None
                if row is not None and row["status"] == "confirmed" and not label:
                    continue  # decided: leave the column empty
                if row is None:
                    severity, why = "warning", "is not in the value map (imported after automap?): it loads empty"
                    if salesforce:
                        why = "is not in the value map (imported after automap?): it is sent as is"
                elif row["status"] != "confirmed" and not label:
                    severity, why = "blocking", "has no mapping yet: choose an option (or 'leave empty') in the map"
                elif row["status"] != "confirmed":
                    severity, why = "blocking", f"has an unconfirmed mapping to {label!r}: confirm it in the map"
                elif not _offers(meta, target_field, str(label), salesforce):
                    severity, why = (
                        "warning",
                        f"is mapped to {label!r}, which the destination does not offer: it "
                        "loads empty; add the option or pick another",
                    )
                else:
                    continue
                findings.append(
                    Finding(
                        severity,
                        "UNMAPPED_VALUE",
                        f"{value!r} ({count} record{'s' if count != 1 else ''}) {why} — {entity}.{target_field}",
                        obj,
                        column,
                        None,
                        {
                            "value": value,
                            "count": count,
                            "target": f"{entity}.{target_field}",
                            "source_ids": ids.get((obj, column, value), []),
                        },
                    )
                )
    return findings


def _offers(meta: Any, column: str, label: str, salesforce: bool) -> bool:
    if salesforce:
        from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

        f = meta.field(custom_field_name(column))
        if f is None or not f.restricted_picklist:
            return True  # an open picklist takes any value
        return any(v.lower() == label.lower() for v in f.picklist_values)
    return meta.option_value(column, label) is not None


def max_upload_size(project: Project, client: Any) -> tuple[int, str]:
    """Dataverse ``organization.maxuploadfilesize`` (bytes, on the base64 length) and where it came from."""
    if project.target == "salesforce":
        return 0, "Salesforce Files limits"
    try:
        rows = list(client.query("organizations", select=["maxuploadfilesize"], page_size=1))
    except DestinationError:
        rows = []
    if rows and rows[0].get("maxuploadfilesize"):
        return int(rows[0]["maxuploadfilesize"]), "organization.maxuploadfilesize"
    return DEFAULT_MAX_UPLOAD, "the documented default (organization.maxuploadfilesize could not be read)"
