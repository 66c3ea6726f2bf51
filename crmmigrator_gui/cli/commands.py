"""One function per CLI subcommand; each is a few lines over the engine."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from crmmigrator_gui.cli.main import _emit, _open, _StderrProgress, secret_from_args
from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.project.store import Project


def _exit_for(result_json: dict) -> int:
    if any(o.get("failed") for o in result_json.get("objects", [])):
        return 4
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    project = Project.create(Path(args.project), source=args.source, target=args.target, edition=args.edition)
    from crmmigrator_gui.engine.target.connection import project_id

    pid = project_id(project)
    _emit(
        args,
        {
            "project": str(project.path),
            "source": args.source,
            "target": args.target,
            "edition": args.edition,
            "project_id": pid,
        },
        f"created {project.path} ({args.source} → {args.target}, {args.edition})",
    )
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.target import connection

    project = _open(args.project)
    from crmmigrator_gui.engine.source.extract import EXTRACTORS

    if args.side == "source" and project.source not in EXTRACTORS:
        raise MigratorError(f"{project.source} is imported from export files; no source connection is needed")
    if args.app_key_env:
        import os

        app_key = os.environ.get(args.app_key_env)
        if not app_key:
            raise UsageError(f"environment variable {args.app_key_env} is empty or not set")
        connection.store_app_key(project, args.side, app_key)
    only_owner = args.fallback_owner is not None and not any(
        (args.url, args.auth, args.tenant, args.client_id, args.token_url, args.username, args.faults,
         args.secret_env, args.secret_stdin, args.app_key_env)
    )  # fmt: skip
    conn = (
        connection.settings(project, args.side)
        if only_owner
        else connection.configure(
            project,
            args.side,
            url=args.url,
            auth=args.auth,
            tenant=args.tenant,
            client_id=args.client_id,
            token_url=args.token_url,
            username=args.username,
            secret=secret_from_args(args),
            faults=args.faults,
        )
    )
    data: dict = {"side": args.side, **conn.to_json()}
    if args.fallback_owner is not None:
        if args.side != "target":
            raise UsageError("--fallback-owner belongs to the target connection")
        with project.step("fallback owner", {"fallback_owner": args.fallback_owner.strip().lower()}):
            project.set_meta("fallback_owner", args.fallback_owner.strip().lower() or None)
        data["fallback_owner"] = args.fallback_owner.strip().lower() or None
    if args.test:
        data["test"] = connection.test_connection(project)
    _emit(args, data, f"{args.side}: {conn.url or 'embedded sandbox'} ({conn.auth})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.source.importer import import_paths

    project = _open(args.project)
    result = import_paths(project, [Path(p) for p in args.paths], object_name=args.object, progress=_StderrProgress())
    data = result.to_json()
    for obj in data["objects"]:
        obj["profile"] = [
            {
                "field": r["field"],
                "inferred_type": r["inferred_type"],
                "fill_rate": round(r["fill_rate"], 3),
                "distinct": r["distinct_count"],
                "date_format": r["date_format"],
                "samples": json.loads(r["samples"]),
            }
            for r in project.query("SELECT * FROM profiles WHERE object = ? ORDER BY position", (obj["source_object"],))
        ]
    lines = [f"{o['source_object']:<16}{o['records']:>8} records  ({', '.join(o['files'])})" for o in data["objects"]]
    for warning in data["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, data, "\n".join(lines))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.source.extract import extract

    project = _open(args.project)
    result = extract(project, since=args.since, progress=_StderrProgress())
    data = result.to_json()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    lines = [
        f"{o['source_object']:<22}{o['records']:>8} records {o['new']:>7} new {o['changed']:>7} changed "
        f"{o['deleted']:>6} deleted"
        for o in data["objects"]
    ]
    _emit(args, data, "\n".join(lines) + f"\n{data['requests']} requests")
    return 0


def cmd_automap(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.mapping.maps import run_automap

    project = _open(args.project)
    proposals, unmapped = run_automap(project)
    data = {
        "proposals": [p.to_json() for p in proposals],
        "unmapped": [
            {"source_object": u.source_object, "source_field": u.source_field, "reason": u.reason} for u in unmapped
        ],
    }
    text = "\n".join(
        f"{p.source_object}.{p.source_field:<24} → {p.target_entity}.{p.target_field:<28} "
        f"{p.confidence:.2f}  {p.reason}"
        for p in proposals
    )
    _emit(args, data, text + f"\n{len(unmapped)} column(s) left unmapped")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.mapping import maps

    project = _open(args.project)
    if args.map_command == "show":
        data = maps.show_map(project)
        text = "\n".join(
            f"[{r['status']:<9}] {r['source_object']}.{r['source_field']:<24} → "
            f"{r['target_entity'] or '-'}.{r['target_field'] or '-':<28} {r['confidence']:.2f}  {r['reason']}"
            for r in data["fields"]
        )
        _emit(args, data, text)
        return 0
    if args.map_command == "accept":
        count = maps.accept(project, min_confidence=None if args.all else args.min_confidence, actor=args.by)
        confirmed = maps.is_confirmed(project)
        _emit(
            args,
            {"confirmed_rows": count, "map_confirmed": confirmed},
            f"confirmed {count} row(s); map {'confirmed' if confirmed else 'still has unconfirmed rows'}",
        )
        return 0
    if args.map_command == "set":
        maps.set_field(project, args.source, args.target, actor=args.by)
        _emit(
            args,
            {"source": args.source, "target": args.target, "status": "confirmed"},
            f"{args.source} → {args.target}",
        )
        return 0
    if args.map_command == "export":
        from crmmigrator_gui.engine.mapping.workbook import export_review

        result = export_review(project, Path(args.file))
        _emit(args, {"file": args.file, **result}, f"wrote {args.file} for review")
        return 0
    if args.map_command == "import":
        return _map_import(args, project)
    if args.map_command == "values":
        return _map_values(args, project)
    if args.map_command == "value":
        return _map_value(args, project)
    if args.map_command == "transform":
        return _map_transform(args, project)
    raise UsageError(f"unknown map command {args.map_command}")


def _map_import(args: argparse.Namespace, project: Project) -> int:
    """Show the customer's changes; apply them only when the consultant says so (--apply, or yes at a prompt)."""
    from crmmigrator_gui.engine.errors import InputError
    from crmmigrator_gui.engine.mapping.workbook import apply_review, read_review

    diff = read_review(project, Path(args.file))
    data = diff.to_json()
    lines = [
        f"{c['sheet']}!{c['column']}{c['row']}  {c['source_object']}.{c['source_field']}"
        + (f" [{c['source_value']}]" if c.get("source_value") not in (None, "") else "")
        + f": {c['before']!r} → {c['after']!r}"
        for c in data["changes"]
    ]
    if data["errors"]:
        first = data["errors"][0]
        raise InputError(
            f"{len(data['errors'])} invalid edit(s); nothing applied: {first['message']}",
            file=args.file,
            row=first.get("row"),
            column=first.get("column"),
        )
    apply = args.apply
    if not apply and data["changes"] and not args.json and sys.stdin.isatty():
        print("\n".join(lines), file=sys.stderr)
        apply = input(f"Apply these {len(lines)} change(s)? [y/N] ").strip().lower() in ("y", "yes")
        lines = []
    applied = apply_review(project, diff, actor=args.by) if apply and data["changes"] else 0
    data["applied"] = applied
    tail = (
        f"applied {applied} change(s)"
        if applied
        else (
            "no changes"
            if not data["changes"]
            else f"{len(data['changes'])} change(s) not applied; run again with --apply to apply them"
        )
    )
    _emit(args, data, "\n".join([*lines, tail]))
    return 0


def _map_values(args: argparse.Namespace, project: Project) -> int:
    from crmmigrator_gui.engine.mapping.values import value_rows

    rows = value_rows(project, source_object=args.object, source_field=args.field)
    if args.unmapped:
        rows = [r for r in rows if r["status"] == "unmapped"]
    text = "\n".join(
        f"[{r['status']:<9}] {r['source_object']}.{r['source_field']} {r['source_value']!r:<24} x{r['count']:<6} → "
        f"{r['target_entity']}.{r['target_field']} = {r['target_label'] or '-'}"
        + (f" ({r['target_value']})" if r.get("target_value") not in (None, "") else "")
        for r in rows
    )
    _emit(args, {"values": rows}, text or "no value maps")
    return 0


def _one(rows: list[dict], what: str, target: str | None) -> dict:
    if target:
        entity, _, field = target.partition(".")
        rows = [r for r in rows if r["target_entity"] == entity and r["target_field"] == field]
    if not rows:
        raise MigratorError(f"no {what}")
    if len(rows) > 1:
        options = ", ".join(sorted({f"{r['target_entity']}.{r['target_field']}" for r in rows}))
        raise UsageError(f"{what} feeds several destination fields ({options}); choose one with --target")
    return rows[0]


def _map_value(args: argparse.Namespace, project: Project) -> int:
    from crmmigrator_gui.engine.mapping.values import add_option, set_value, value_rows

    obj, dot, field = args.source.partition(".")
    if not dot:
        raise UsageError("source must be SRC_OBJECT.SRC_FIELD")
    rows = [r for r in value_rows(project, source_object=obj, source_field=field) if r["source_value"] == args.value]
    row = _one(rows, f"value map for {args.source} = {args.value!r}", args.target)
    created = None
    if args.add_option and args.label:
        created = add_option(project, row["target_entity"], row["target_field"], args.label, actor=args.by)
    set_value(project, row["id"], args.label, actor=args.by)
    _emit(
        args,
        {"source": args.source, "value": args.value, "label": args.label, "created_option": created},
        f"{args.source} {args.value!r} → {args.label or '(empty)'}"
        + (
            ""
            if not created
            else " (planned option: `schema apply` creates it with the column)"
            if created.get("planned")
            else f" (option {created['value']} is at the destination)"
        ),
    )
    return 0


def _map_transform(args: argparse.Namespace, project: Project) -> int:
    from crmmigrator_gui.engine.mapping.editing import preview_row, set_transform
    from crmmigrator_gui.engine.mapping.transforms import validate

    obj, dot, field = args.source.partition(".")
    if not dot:
        raise UsageError("source must be SRC_OBJECT.SRC_FIELD")
    try:
        spec = validate(json.loads(args.spec))
    except json.JSONDecodeError as exc:
        raise UsageError(f"the spec is not JSON: {exc}") from exc
    rows = project.query(
        "SELECT id, target_entity, target_field FROM field_maps WHERE source_object = ? AND source_field = ? "
        "AND target_entity IS NOT NULL",
        (obj, field),
    )
    row = _one(rows, f"mapped field {args.source}", args.target)
    preview = preview_row(project, row["id"], spec)
    if not args.preview:
        set_transform(project, row["id"], spec, actor=args.by)
    text = "\n".join(f"  {p['raw']!r:<30} → {p['error'] or p['value']}" for p in preview)
    verb = "preview of" if args.preview else "set"
    _emit(
        args,
        {"source": args.source, "spec": spec, "preview": preview, "applied": not args.preview},
        f"{verb} {json.dumps(spec)} on {args.source}\n{text}",
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.mapping.playbook import load_playbook
    from crmmigrator_gui.engine.plan import schema
    from crmmigrator_gui.engine.target.connection import destination

    project = _open(args.project)
    if project.target == "salesforce":
        from crmmigrator_gui.engine.plan import sf_schema as schema  # same manifest/missing/apply calls
    playbook = load_playbook(project.source, project.target, project.edition)
    items = schema.manifest(project, playbook)
    with destination(project) as client:
        if args.schema_command == "manifest":
            from crmmigrator_gui.engine.plan.manifest_file import flag_missing

            rows = flag_missing(items, schema.missing(client, items))
            if args.out:
                from crmmigrator_gui.engine.plan.manifest_file import write_manifest

                write_manifest(rows, Path(args.out))  # .xlsx for the admin, .json for scripts
            _emit(
                args,
                {"items": rows, "missing": sum(r["missing"] for r in rows)},
                "\n".join(
                    f"{'MISSING' if r['missing'] else 'ok':<8}{r['kind']:<13}{r['entity']}.{r['name']}" for r in rows
                ),
            )
            return 0
        created = schema.apply(client, items, progress=_StderrProgress())
        with project.step("schema apply", {"created": [i.to_json() for i in created]}):
            pass
        if created:
            from crmmigrator_gui.engine.mapping.values import refresh_options

            refresh_options(project, client)  # new custom options now have their stored integers / API values
        _emit(args, {"created": [i.to_json() for i in created]}, f"created {len(created)} schema item(s)")
        return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.plan.preflight import preflight

    project = _open(args.project)
    result = preflight(project, progress=_StderrProgress())
    _emit(args, result, _preflight_text(result))
    return 3 if result["blocking"] else 0


def _preflight_text(result: dict, per_code: int = 5) -> str:
    """Findings grouped by severity then code, the first few of each with their source ids, then the grade."""
    lines: list[str] = []
    order = {"blocking": 0, "warning": 1, "info": 2}
    groups: dict[tuple[str, str], list[dict]] = {}
    for finding in result["findings"]:
        groups.setdefault((finding["severity"], finding["code"]), []).append(finding)
    for (severity, code), items in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 3), kv[0][1])):
        lines.append(f"{severity.upper():<9}{code} ({len(items)})")
        for f in items[:per_code]:
            where = ".".join(x for x in (f.get("object"), f.get("field")) if x)
            sid = f" [{f['source_id']}]" if f.get("source_id") else ""
            lines.append(f"    {where}{sid}: {f['message']}")
        if len(items) > per_code:
            lines.append(f"    … and {len(items) - per_code} more (use --json for all)")
    grade = result.get("grade")
    if grade:
        lines.append(f"complexity: {grade.get('level')} — {'; '.join(grade.get('reasons', []))}")
    estimate = result.get("estimate")
    if estimate:
        days = estimate.get("timeline_days")
        span = f"{days[0]}–{days[1]} days" if isinstance(days, list | tuple) and len(days) == 2 else ""
        lines.append(
            f"estimate: ~{estimate.get('requests', '?')} API requests, ~{estimate.get('load_minutes', '?')} min of "
            f"loading{', timeline ' + span if span else ''}"
        )
    lines.append(f"{result['blocking']} blocking finding(s)")
    return "\n".join(lines)


def cmd_sample(args: argparse.Namespace) -> int:
    """Exit 4 when records failed or fields are flagged: the customer should look before signing off."""
    from crmmigrator_gui.engine.run.sample import run_sample

    project = _open(args.project)
    result = run_sample(project, size=args.size, seed=args.seed, progress=_StderrProgress())
    if args.diff:
        from crmmigrator_gui.engine.report.sample_diff import export_diff

        export_diff(result.rows, Path(args.diff))
    data = result.to_json()
    summary = data.get("diff") or {}
    lines = [_run_text(data)]
    for row in (summary.get("flagged_rows") or [])[:20]:
        lines.append(
            f"  {row['verdict']:<17} {row['source_object']} {row['source_id']} {row['target_entity']}.{row['field']}: "
            f"{row['source_value']!r} → expected {row['expected']!r}, stored {row['stored']!r}"
        )
    lines.append(
        f"{summary.get('flagged', 0)} flagged field value(s)" + (f"; diff in {args.diff}" if args.diff else "")
    )
    _emit(args, data, "\n".join(lines))
    return 4 if summary.get("flagged") or any(o.get("failed") for o in data.get("objects", [])) else 0


def cmd_signoff(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.run.sample import sign_off

    project = _open(args.project)
    record = sign_off(project, args.by, note=args.note)
    _emit(args, record, f"signed off by {record['by']} at {record['at']} (sample run {record['sample_run_id']})")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.run.load import load

    project = _open(args.project)
    result = load(project, progress=_StderrProgress(), batch_size=args.batch_size, recheck=args.recheck)
    data = result.to_json()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, data, _run_text(data))
    if result.status == "cancelled":
        return 1
    return _exit_for(data)


def cmd_delta(args: argparse.Namespace) -> int:
    """Detect and apply a delta; the summary goes to stderr, the JSON (``--json``) to stdout."""
    from crmmigrator_gui.engine.run.delta import delta

    project = _open(args.project)
    paths = [Path(p) for p in args.paths] or None
    result = delta(project, paths, deletes=args.deletes, progress=_StderrProgress())
    data = result.to_json()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(_delta_text(data), file=sys.stderr)
    _emit(args, data)
    if result.status == "cancelled":
        return 1
    return _exit_for(data)


def _delta_text(data: dict) -> str:
    info = data.get("delta", {})
    lines = [f"delta {info.get('delta_id')} ({info.get('mode')}):"]
    for o in info.get("objects", []):
        lines.append(
            f"  {o['source_object']:<16}{o['new']:>6} new {o['changed']:>6} changed {o['unchanged']:>7} unchanged "
            f"{o['deleted']:>5} deleted ({o['deleted_applied']} applied)"
        )
    return "\n".join([*lines, _run_text(data)])


def _run_text(data: dict) -> str:
    lines = [
        f"run {data['run_id']} ({data['kind']}): {data['status']}, {data['requests']} requests, {data['seconds']} s"
    ]
    for o in data["objects"]:
        lines.append(
            f"  {o['source_object']:<16}{o['source_records']:>7} source  {o['created']:>6} created "
            f"{o['updated']:>6} updated {o['unchanged']:>6} unchanged {o['failed']:>5} failed "
            f"{o['skipped']:>5} skipped"
        )
    refused = [f for f in data.get("failures", []) if f.get("action") == "refused"]
    for f in refused[:10]:
        lines.append(f"  refused: {f.get('message')}")
    if refused:
        lines.append(
            f"  {len(refused)} record(s) changed after the run were left as they are; `--force` rolls them back"
        )
    return "\n".join(lines)


def cmd_rollback(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.run.rollback import rollback

    project = _open(args.project)
    results = rollback(project, run_id=args.run, all_runs=args.all, force=args.force, progress=_StderrProgress())
    data = (
        results[0].to_json() if len(results) == 1 else {"runs": [r.to_json() for r in results], **results[0].to_json()}
    )
    _emit(args, data, "\n".join(_run_text(r.to_json()) for r in results))
    return 0 if all(r.status == "rolled_back" for r in results) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.report.report import build_report, to_text

    project = _open(args.project)
    report = build_report(project, read_back=not args.no_read_back)
    if args.out:
        from crmmigrator_gui.engine.report.files import write_report

        write_report(Path(args.out), report)
    if args.rebuild:
        from crmmigrator_gui.engine.report.rebuild import write_rebuild_package

        for path in write_rebuild_package(project, Path(args.rebuild), online=not args.offline):
            print(f"wrote {path}", file=sys.stderr)
    _emit(args, report, to_text(report))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.report.audit import AuditFilter, count_entries, export, search

    project = _open(args.project)
    flt = AuditFilter(
        text=args.text,
        run_id=args.run,
        operation=args.operation,
        entity=args.entity,
        source_id=args.source_id,
        status=args.status,
    )
    if args.out:
        written = export(project, Path(args.out), flt)
        _emit(args, {"file": args.out, "entries": written}, f"wrote {written} entries to {args.out}")
        return 0
    total = count_entries(project, flt)
    entries = search(project, flt, limit=args.limit)
    text = "\n".join(
        f"{e.get('at')}  run {e.get('run_id') or '-':<4} {e.get('operation') or '':<18} {e.get('entity') or '':<20} "
        f"{e.get('source_id') or '':<16} {e.get('status') or '':<8} {e.get('error') or e.get('changes') or ''}"
        for e in entries
    )
    _emit(args, {"total": total, "entries": entries}, f"{text}\n{len(entries)} of {total} entries")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from crmmigrator_gui.engine.demo.runner import run_demo
    from crmmigrator_gui.paths import user_data_dir

    folder = (
        Path(args.dir)
        if args.dir
        else Path(tempfile.mkdtemp(prefix=datetime.now().strftime("demo-%Y%m%d-%H%M%S-"), dir=user_data_dir()))
    )
    result = run_demo(
        folder,
        source=args.source,
        target=args.target,
        records=args.records,
        progress=_StderrProgress(),
        faults=args.faults,
    )
    print(f"demo project: {result['project']}", file=sys.stderr)
    _emit(args, result, _run_text(result))
    return _exit_for(result)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from crmmigrator_gui.sandbox.server import serve

    def ready(port: int, ca_path: str | None = None) -> None:
        scheme = "https" if args.tls else "http"
        base = f"{scheme}://127.0.0.1:{port}"
        print(f"sandbox listening on {base} (Ctrl+C to stop)", file=sys.stderr)
        print(f"  Dataverse Web API: {base}/api/data/v9.2/", file=sys.stderr)
        print(f"  Salesforce:        {base}/services/data/", file=sys.stderr)
        print(f"  ServiceTitan v2:   {base}/crm/v2/tenant/… (token: {base}/connect/token)", file=sys.stderr)
        if ca_path:
            print(f"  trust this CA: {ca_path} (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)", file=sys.stderr)
        sys.stderr.flush()

    serve(port=args.port, data=args.data, faults=args.faults, ready=ready, tls=args.tls)
    return 0
