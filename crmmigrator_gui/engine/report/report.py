"""Reconciliation report: what the source held and what the destination now holds, per object.

Built from the staging tables and the most recent live load run (one that was not rolled back),
plus the exceptions the seeds ask to flag for the admin (refunds, partial payments).
"""

from __future__ import annotations

import json
from typing import Any

from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.mapping.transforms import TransformError, parse_money
from crmmigrator_gui.engine.plan.order import load_order, role_columns
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.rebuild import rebuild_package
from crmmigrator_gui.engine.run.results import COUNT_KEYS, explain, summarize


def build_report(project: Project, *, read_back: bool = True, client: Any = None) -> dict[str, Any]:
    """The reconciliation report as plain data (JSON-ready; money as strings of exact decimals).

    ``read_back`` reads field totals and choice distributions back from the destination (through ``client``,
    or the project's own connection). An unreachable destination does not lose the rest of the report: the
    reason is kept under ``reconciliation.error`` and every total is marked ``unread``.
    """
    playbook = load_playbook(project.source, project.target, project.edition)
    live = project.query(
        "SELECT id, status, started_at, finished_at, requests, seconds FROM runs WHERE kind = 'load' AND status NOT IN "
        "('rolled_back') ORDER BY id DESC LIMIT 1"
    )
    run = live[0] if live else None
    deltas = [
        int(r["id"])
        for r in project.query(
            "SELECT id FROM runs WHERE kind = 'delta' AND id > ? AND status NOT IN ('rolled_back') ORDER BY id",
            (run["id"] if run else -1,),
        )
    ]
    summary = summarize(project, run["id"], kind="load", status=run["status"], later_runs=deltas) if run else None
    by_obj = {o["source_object"]: o for o in (summary.objects if summary else [])}
    # A partly rolled-back run: a source record whose every written part was undone is no longer loaded.
    undone = {
        r["source_object"]: r["n"]
        for r in project.query(
            "SELECT source_object, COUNT(*) AS n FROM (SELECT source_object, source_id FROM crosswalk WHERE run_id = ? "
            "AND action IN ('created', 'updated') GROUP BY source_object, source_id "
            "HAVING SUM(rolled_back_at IS NULL) = 0) GROUP BY source_object",
            (run["id"] if run else -1,),
        )
    }
    objects = []
    order = [p.obj for p in load_order(playbook, project.source_object_names())]
    seen = []
    for name in order:
        if name in seen:
            continue
        seen.append(name)
        counts = by_obj.get(name, {})
        first_part = next(p for p in playbook.obj(name).parts)
        loaded = max(0, sum(counts.get(k, 0) for k in ("created", "updated", "unchanged")) - undone.get(name, 0))
        objects.append(
            {
                "source_object": name,
                "target_entity": first_part.entity,
                "source_records": project.staged_count(name),
                "loaded": loaded,
                "failed": counts.get("failed", 0),
                "skipped": counts.get("skipped", 0),
                "created": counts.get("created", 0),
                "updated": counts.get("updated", 0),
                "unchanged": counts.get("unchanged", 0),
                "rolled_back": undone.get(name, 0),
            }
        )
    totals = {k: sum(o[k] for o in objects) for k in ("source_records", "loaded", "failed", "skipped")}
    reconciliation = _reconciliation(project, read_back, client)
    runs = project.query(
        "SELECT id, kind, status, started_at, finished_at, requests, seconds, stats FROM runs ORDER BY id"
    )
    return {
        "project": str(project.path),
        "pair": playbook.title,
        "edition": project.edition,
        "run": run,
        "objects": objects,
        "totals": totals,
        "failures": [_with_reason(f) for f in (summary.failures[:FAILURES_LISTED] if summary else [])],
        "failure_count": len(summary.failures) if summary else 0,
        "field_totals": reconciliation.pop("field_totals"),
        "distributions": reconciliation.pop("distributions"),
        "reconciliation": reconciliation,
        "exceptions": payment_exceptions(project),
        "rebuild": rebuild_package(project)["rebuild"],
        "runs": [{k: v for k, v in r.items() if k != "stats"} for r in runs],
        "runs_by_kind": runs_by_kind(runs),
        "delta": delta_summary(project, runs),
    }


def delta_summary(project: Project, runs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per delta: its run, and per object new / changed / unchanged / deleted (applied or only reported), with
    the run's created / updated / failed. A delta not applied yet has no run (``run_id`` None)."""
    runs = runs if runs is not None else project.query("SELECT id, kind, status, stats FROM runs ORDER BY id")
    by_id = {r["id"]: r for r in runs}
    out = []
    deltas = [r["d"] for r in project.query("SELECT DISTINCT delta_id AS d FROM source_changes ORDER BY d")]
    for delta_id in deltas:
        info = project.meta(f"delta:{delta_id}") or {}
        run = by_id.get(info.get("run_id"))
        stats = json.loads(run["stats"] or "{}") if run else {}
        loaded = {o["source_object"]: o for o in stats.get("objects", [])}
        counts: dict[str, dict[str, int]] = {}
        for row in project.query(
            "SELECT object, change, COUNT(*) AS n, SUM(applied = 'deleted') AS gone, SUM(applied = 'reported') AS "
            "reported FROM source_changes WHERE delta_id = ? GROUP BY object, change",
            (delta_id,),
        ):
            entry = counts.setdefault(
                row["object"],
                {"new": 0, "changed": 0, "unchanged": 0, "deleted": 0, "deleted_applied": 0, "deleted_reported": 0},
            )
            entry[row["change"]] = row["n"]
            if row["change"] == "deleted":
                entry["deleted_applied"] = int(row["gone"] or 0)
                entry["deleted_reported"] = int(row["reported"] or 0)
        objects = [
            {
                "source_object": obj,
                **c,
                **{k: (loaded.get(obj) or {}).get(k, 0) for k in ("created", "updated", "failed")},
            }
            for obj, c in sorted(counts.items())
        ]
        out.append(
            {
                "delta_id": delta_id,
                "mode": info.get("mode"),
                "detected_at": info.get("detected_at"),
                "delta_status": info.get("status"),
                "run_id": run["id"] if run else None,
                "run_status": run["status"] if run else None,
                "objects": objects,
                "totals": {k: sum(o[k] for o in objects) for k in (
                    "new", "changed", "unchanged", "deleted", "deleted_applied", "created", "updated", "failed")},
            }
        )  # fmt: skip
    return out


FAILURES_LISTED = 5000


def _reconciliation(project: Project, read_back: bool, client: Any) -> dict[str, Any]:
    from crmmigrator_gui.engine.errors import MigratorError
    from crmmigrator_gui.engine.report.reconcile import reconcile

    if not read_back:
        return {"field_totals": [], "distributions": [], "read_requests": 0, "error": "read-back not requested"}
    try:
        result = reconcile(project, client)
    except MigratorError as exc:
        return {"field_totals": [], "distributions": [], "read_requests": 0, "error": f"destination not read: {exc}"}
    return {**result, "error": None}


def _with_reason(failure: dict[str, Any]) -> dict[str, Any]:
    """The failure with a plain-language reason first (load already explains destination errors; builds not)."""
    message = str(failure.get("message") or "")
    reason = explain(failure.get("code"), message)
    plain = explain(failure.get("code"), "")
    if plain and message.startswith(plain):
        reason = message
    return {**failure, "reason": reason}


def runs_by_kind(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs grouped by kind (load, delta, rollback…), with the latest one's record counts.

    The delta summary: once delta runs exist they appear here as their own group, next to the full load.
    """
    groups: dict[str, dict[str, Any]] = {}
    for run in runs:
        empty = {"kind": run["kind"], "runs": 0, "statuses": {}, "latest": None, **dict.fromkeys(COUNT_KEYS, 0)}
        group = groups.setdefault(run["kind"], empty)
        group["runs"] += 1
        group["statuses"][run["status"]] = group["statuses"].get(run["status"], 0) + 1
        try:
            stats = json.loads(run.get("stats") or "{}")
        except json.JSONDecodeError:
            stats = {}
        counts = {k: sum(int(o.get(k, 0)) for o in stats.get("objects", [])) for k in COUNT_KEYS}
        for key, value in counts.items():
            group[key] += value
        group["latest"] = {"id": run["id"], "status": run["status"], "started_at": run["started_at"], **counts}
    return list(groups.values())


def payment_exceptions(project: Project) -> list[dict[str, Any]]:
    """Refunds and partial payments, for the admin to reconcile by hand (seed 004, Payment row)."""
    if "payments" not in project.source_object_names():
        return []
    columns = role_columns(project)
    amount_col = columns.get("payments", {}).get("amount")
    invoice_col = columns.get("payments", {}).get("invoice_ref")
    total_col = columns.get("invoices", {}).get("total")
    if not amount_col:
        return []
    invoice_totals: dict[str, Any] = {}
    if total_col and "invoices" in project.source_object_names():
        for sid, raw in project.iter_staged("invoices"):
            try:
                invoice_totals[sid] = parse_money(str(raw.get(total_col) or ""))
            except TransformError:
                continue
    paid: dict[str, Any] = {}
    found = []
    for sid, raw in project.iter_staged("payments"):
        try:
            amount = parse_money(str(raw.get(amount_col) or ""))
        except TransformError:
            continue
        if amount < 0:
            found.append({"source_object": "payments", "source_id": sid, "kind": "refund", "amount": str(amount)})
        invoice = str(raw.get(invoice_col) or "") if invoice_col else ""
        if invoice:
            paid[invoice] = paid.get(invoice, 0) + amount
    for invoice, amount in paid.items():
        total = invoice_totals.get(invoice)
        if total is not None and amount > total:
            found.append(
                {
                    "source_object": "invoices",
                    "source_id": invoice,
                    "kind": "overpaid",
                    "amount": str(amount),
                    "total": str(total),
                }
            )
        elif total is not None and 0 < amount < total:
            found.append(
                {
                    "source_object": "invoices",
                    "source_id": invoice,
                    "kind": "partially paid",
                    "amount": str(amount),
                    "total": str(total),
                }
            )
    return found


def to_text(report: dict[str, Any]) -> str:
    lines = [f"{report['pair']} ({report['edition']})", ""]
    lines.append(f"{'object':<16}{'entity':<18}{'source':>8}{'loaded':>8}{'failed':>8}{'skipped':>8}")
    for o in report["objects"]:
        lines.append(
            f"{o['source_object']:<16}{o['target_entity']:<18}{o['source_records']:>8}{o['loaded']:>8}"
            f"{o['failed']:>8}{o['skipped']:>8}"
        )
    t = report["totals"]
    lines.append(f"{'total':<34}{t['source_records']:>8}{t['loaded']:>8}{t['failed']:>8}{t['skipped']:>8}")
    if report.get("field_totals"):
        lines.append("")
        lines.append(f"{'field total':<40}{'source':>14}{'destination':>14}{'difference':>12}  verdict")
        for line in report["field_totals"]:
            name = f"{line['source_object']}.{line['source_field']} → {line['target_entity']}"
            lines.append(
                f"{name[:39]:<40}{line['expected_total']:>14}{line['destination_total']:>14}"
                f"{line['difference']:>12}  {line['verdict']}"
            )
    error = (report.get("reconciliation") or {}).get("error")
    if error:
        lines.append(f"\n{error}")
    for d in report.get("delta", []):
        t = d["totals"]
        lines.append(
            f"\ndelta {d['delta_id']} (run {d['run_id'] or '-'}, {d['run_status'] or d['delta_status']}): "
            f"{t['new']} new, {t['changed']} changed, {t['unchanged']} unchanged, {t['deleted']} deleted "
            f"({t['deleted_applied']} applied); {t['created']} created, {t['updated']} updated, {t['failed']} failed"
        )
    if report["exceptions"]:
        lines.append(f"\n{len(report['exceptions'])} payment exception(s) to reconcile by hand")
    return "\n".join(lines)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str, ensure_ascii=False)
