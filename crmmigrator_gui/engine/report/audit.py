"""The audit log as people read it: one entry per operation, searchable, exportable to CSV and XLSX.

Two append-only sources make one timeline. The crosswalk holds one row per record operation of a run (created,
updated, unchanged, failed, skipped, linked, pending) with the destination id, the error and what was written;
a rolled-back row adds a second entry at the time it was undone. The ``audit`` table holds the engine steps
(import, automap, map accept, load start…), which its triggers keep append-only. Nothing here writes to the
project: the view is a query, so it scales with SQLite (filters and paging run in SQL, for a lazy GUI table).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.files import _atomic
from crmmigrator_gui.engine.report.safe_cells import csv_row, write_only_cell

COLUMNS = (
    ("at", "Time (UTC)"),
    ("run_id", "Run"),
    ("operation", "Operation"),
    ("entity", "Entity"),
    ("source_object", "Source object"),
    ("source_id", "Source id"),
    ("dest_id", "Destination id"),
    ("status", "Status"),
    ("error", "Error"),
    ("changes", "Fields changed"),
    ("actor", "By"),
)
STATUSES = ("ok", "failed", "skipped", "pending")

# Record operations, then their rollbacks, then engine steps; ``kind`` tells them apart. A rollback entry
# carries the action it undid in ``prior``.
_ENTRIES = """
SELECT c.at AS at, c.run_id AS run_id, c.action AS operation, c.target_entity AS entity,
       c.source_object AS source_object, c.source_id AS source_id, c.dest_id AS dest_id,
       CASE c.action WHEN 'failed' THEN 'failed' WHEN 'skipped' THEN 'skipped' WHEN 'pending' THEN 'pending'
            ELSE 'ok' END AS status,
       c.error_code AS error_code, c.error_message AS error_message, c.written AS written, c.prior AS prior,
       COALESCE(r.actor, '') AS actor, 'record' AS kind, c.id AS ref
  FROM crosswalk c LEFT JOIN runs r ON r.id = c.run_id
UNION ALL
SELECT c.rolled_back_at, c.run_id, 'rolled back', c.target_entity, c.source_object, c.source_id, c.dest_id,
       'ok', NULL, NULL, NULL, c.action, COALESCE(r.actor, ''), 'rollback', c.id
  FROM crosswalk c LEFT JOIN runs r ON r.id = c.run_id WHERE c.rolled_back_at IS NOT NULL
UNION ALL
SELECT a.at, CAST(json_extract(a.detail, '$.run_id') AS INTEGER), a.action, NULL, NULL, NULL, NULL,
       'ok', NULL, NULL, a.detail, NULL, a.actor, 'step', a.id
  FROM audit a
"""


@dataclass(frozen=True)
class AuditFilter:
    """What to look for; every field is optional and they combine with AND.

    ``text`` matches (case-insensitively, anywhere) the operation, entity, source object and id, destination id,
    error and the step's details; ``operation`` and ``status`` match exactly.
    """

    text: str | None = None
    run_id: int | None = None
    operation: str | None = None
    entity: str | None = None
    source_id: str | None = None
    status: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.text:
            pattern = "%" + _escape_like(self.text.lower()) + "%"
            fields = ("operation", "entity", "source_object", "source_id", "dest_id", "error_code", "error_message")
            searched = [f"LOWER(COALESCE({f}, '')) LIKE ? ESCAPE '\\'" for f in fields]
            searched.append("(kind = 'step' AND LOWER(written) LIKE ? ESCAPE '\\')")
            clauses.append("(" + " OR ".join(searched) + ")")
            params += [pattern] * len(searched)
        if self.run_id is not None:
            clauses.append("run_id = ?")
            params.append(self.run_id)
        if self.operation:
            clauses.append("LOWER(operation) = ?")
            params.append(self.operation.lower())
        if self.entity:
            clauses.append("(LOWER(entity) = ? OR LOWER(source_object) = ?)")
            params += [self.entity.lower()] * 2
        if self.source_id:
            clauses.append("source_id = ?")
            params.append(self.source_id)
        if self.status:
            if self.status not in STATUSES:
                raise UsageError(f"unknown audit status {self.status!r}; choose one of {', '.join(STATUSES)}")
            clauses.append("status = ?")
            params.append(self.status)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def count_entries(project: Project, flt: AuditFilter | None = None) -> int:
    """How many entries match (for a lazy table's row count)."""
    where, params = (flt or AuditFilter()).where()
    return int(project.scalar(f"SELECT COUNT(*) FROM ({_ENTRIES}){where}", tuple(params)) or 0)


def search(
    project: Project, flt: AuditFilter | None = None, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Matching entries in time order, one page at a time (``limit``/``offset``)."""
    return list(iter_entries(project, flt, limit=limit, offset=offset))


def iter_entries(
    project: Project, flt: AuditFilter | None = None, *, limit: int | None = None, offset: int = 0
) -> Iterator[dict[str, Any]]:
    """Like :func:`search`, streaming (exports of a million-record log never hold it in memory)."""
    where, params = (flt or AuditFilter()).where()
    sql = f"SELECT * FROM ({_ENTRIES}){where} ORDER BY at, kind = 'step' DESC, ref LIMIT ? OFFSET ?"
    cursor = project.db.conn.execute(sql, (*params, -1 if limit is None else limit, offset))
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield _entry(dict(zip(names, row, strict=True)))


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    error = " ".join(p for p in (row["error_code"] or "", row["error_message"] or "") if p).strip()
    if row["kind"] == "step":
        changes = _step_summary(row["written"])
    elif row["kind"] == "rollback":
        # ``prior`` carries the undone action here: a create is deleted, an update gets its prior values back
        changes = "deleted at the destination" if row["prior"] in ("created", "pending") else "prior values restored"
    else:
        changes = _changes(row["operation"], row["written"], row["prior"])
    return {
        "at": row["at"],
        "run_id": row["run_id"],
        "operation": row["operation"],
        "entity": row["entity"],
        "source_object": row["source_object"],
        "source_id": row["source_id"],
        "dest_id": row["dest_id"],
        "status": row["status"],
        "error": error or None,
        "changes": changes,
        "actor": row["actor"],
        "kind": row["kind"],
    }


def _fields(payload: dict[str, Any]) -> list[str]:
    return sorted({k.split("@", 1)[0] for k in payload if not k.startswith("@")})


def _changes(operation: str, written: str | None, prior: str | None) -> str:
    """Which fields the operation wrote: all of them on create, the changed ones (with old values) on update."""
    try:
        body = json.loads(written) if written else {}
        before = json.loads(prior) if prior else {}
    except json.JSONDecodeError:
        return ""
    if not isinstance(body, dict):
        return ""
    names = _fields(body)
    if operation == "created":
        return f"{len(names)} field(s) set: " + ", ".join(names) if names else ""
    if operation in ("updated", "linked") and isinstance(before, dict) and before:
        return ", ".join(f"{n} (was {before.get(n)!r})" if n in before else n for n in names)
    return ", ".join(names)


def _step_summary(detail: str | None) -> str:
    """A step's details in one line, long lists counted rather than dumped."""
    try:
        data = json.loads(detail) if detail else {}
    except json.JSONDecodeError:
        return detail or ""
    if not isinstance(data, dict):
        return str(data)
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            parts.append(f"{key}: {len(value)} item(s)")
        elif isinstance(value, dict):
            parts.append(f"{key}: {len(value)} value(s)")
        else:
            parts.append(f"{key}={value}")
    return "; ".join(parts)


def export(project: Project, path: Path, flt: AuditFilter | None = None) -> int:
    """Write the matching entries to ``path`` (.csv or .xlsx), atomically; returns how many were written.

    Every value is guarded against formula injection: source ids and error texts come from untrusted data.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise UsageError(f"{path.name}: export the audit log as .csv or .xlsx")
    written = [0]

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8-sig", newline="") as handle:  # BOM: Excel reads UTF-8 correctly
            out = csv.writer(handle)
            out.writerow([title for _k, title in COLUMNS])
            for entry in iter_entries(project, flt):
                out.writerow(csv_row(_cell(entry[k]) for k, _t in COLUMNS))
                written[0] += 1

    def write_xlsx(tmp: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("Audit log")
        ws.freeze_panes = "A2"
        bold = Font(bold=True)
        ws.append([write_only_cell(ws, title, font=bold) for _k, title in COLUMNS])
        for entry in iter_entries(project, flt):
            ws.append([write_only_cell(ws, _cell(entry[k])) for k, _t in COLUMNS])
            written[0] += 1
        wb.save(tmp)

    _atomic(path, write_csv if suffix == ".csv" else write_xlsx)
    return written[0]


def _cell(value: Any) -> Any:
    return "" if value is None else value
