"""Pre-flight: what would block or degrade a load, found before anything is written.

This first version checks what the destination can tell us cheaply and what the seeds warn about:
an unconfirmed map, destination schema that does not exist yet, the Dynamics 365 Professional
custom-table cap, owners (field workers / technicians) with no active user, and — on Salesforce —
whether "Set Audit Fields upon Record Creation" is on, without which original created dates cannot
be kept. Findings use the CLI contract's shape; ``blocking`` counts the ones that stop a load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmmigrator_gui.engine.mapping.maps import is_confirmed
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import destination, is_sandbox

PROFESSIONAL_CUSTOM_TABLE_CAP = 15


@dataclass
class Finding:
    severity: str  # blocking | warning | info
    code: str
    message: str
    object: str | None = None
    field: str | None = None
    source_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "object": self.object, "field": self.field,
                "source_id": self.source_id, "message": self.message}


def preflight(project: Project) -> dict[str, Any]:
    findings: list[Finding] = []
    playbook = load_playbook(project.source, project.target, project.edition)
    if not project.source_object_names():
        findings.append(Finding("blocking", "NOTHING_STAGED", "nothing is imported or extracted yet"))
    elif not is_confirmed(project):
        findings.append(Finding("blocking", "MAP_UNCONFIRMED",
                                "the map has unconfirmed rows; review with `map show`, then `map accept`"))
    custom_tables = [t["name"] for t in playbook.schema.get("tables", [])]
    if project.target == "dynamics365" and project.edition == "professional" and \
            len(custom_tables) > PROFESSIONAL_CUSTOM_TABLE_CAP:
        findings.append(Finding("blocking", "EDITION_TABLE_LIMIT",
                                f"the map needs {len(custom_tables)} custom tables; Dynamics 365 Sales Professional "
                                f"allows {PROFESSIONAL_CUSTOM_TABLE_CAP}"))
    with destination(project) as client:
        findings += _schema_findings(project, playbook, client)
        findings += _owner_findings(project, playbook, client)
        if project.target == "salesforce" and not client.audit_fields_enabled():
            findings.append(Finding(
                "warning", "AUDIT_FIELDS_OFF",
                "\"Set Audit Fields upon Record Creation\" is off for the integration user: original created "
                "dates on tasks, events and records go to a Source_Created_Date__c field instead of CreatedDate; "
                "turn it on in Setup → User Interface and assign the permission to keep them",
            ))
    return {"blocking": sum(f.severity == "blocking" for f in findings),
            "findings": [f.to_json() for f in findings]}


def _schema_findings(project: Project, playbook: Any, client: Any) -> list[Finding]:
    if project.target == "salesforce":
        from crmmigrator_gui.engine.plan import sf_schema as schema
    else:
        from crmmigrator_gui.engine.plan import schema  # type: ignore[no-redef]
    absent = schema.missing(client, schema.manifest(project, playbook))
    if not absent:
        return []
    severity = "info" if is_sandbox(project) else "blocking"
    names = ", ".join(sorted({f"{i.entity}.{i.name}" for i in absent})[:8])
    how = "the sandbox is provisioned by `load`" if severity == "info" else "run `crmmigrator schema PROJECT apply`"
    return [Finding(severity, "SCHEMA_MISSING", f"{len(absent)} schema item(s) missing ({names}…); {how}")]


def _owner_findings(project: Project, playbook: Any, client: Any) -> list[Finding]:
    findings: list[Finding] = []
    columns = role_columns(project)
    for obj in playbook.objects:
        match = obj.match_user
        if not match or obj.name not in project.source_object_names():
            continue
        email_column = columns.get(obj.name, {}).get(match["role"])
        if not email_column:
            continue
        emails: dict[str, str] = {}
        for source_id, raw in project.iter_staged(obj.name):
            value = str(raw.get(email_column) or "").strip().lower()
            if value:
                emails[source_id] = value
        known = _active_user_emails(project, client, sorted(set(emails.values())))
        for source_id, email in emails.items():
            if email not in known:
                findings.append(Finding("warning", "UNMATCHED_OWNER",
                                        f"no active user has the e-mail {email}; this worker's records will be "
                                        "owned by the migration user", obj.name, email_column, source_id))
    return findings


def _active_user_emails(project: Project, client: Any, emails: list[str]) -> set[str]:
    if not emails:
        return set()
    if project.target == "salesforce":
        found: set[str] = set()
        for start in range(0, len(emails), 100):
            chunk = ",".join("'" + e.replace("'", "\\'") + "'" for e in emails[start:start + 100])
            for row in client.query(f"SELECT Email FROM User WHERE IsActive = true AND Email IN ({chunk})"):
                found.add(str(row.get("Email") or "").lower())
        return found
    users = client.find_users_by_email(emails)
    return {email for email, row in users.items() if not row.get("isdisabled")}
