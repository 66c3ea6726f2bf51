"""The headless CLI: a thin face on the engine, following the contract in PRODUCT.md.

``--json`` prints exactly one JSON document on stdout; progress and human text go to stderr.
Errors print one line (no traceback unless ``--debug``) and exit with the contract's codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from crmmigrator_gui import __version__
from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.progress import ProgressEvent


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2, per the contract
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    p = _Parser(prog="crmmigrator", description="Migrate field-service data into Dynamics 365 Sales.", parents=[common])
    p.add_argument("--version", action="version", version=f"crmmigrator {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("new", parents=[common], help="create a project file")
    s.add_argument("project")
    s.add_argument(
        "--source", required=True, choices=["dispatchpro", "qdispatch", "servicetracker", "octopuspro", "generic"]
    )
    s.add_argument("--target", required=True, choices=["dynamics365", "salesforce"])
    s.add_argument("--edition", choices=["professional", "enterprise"], default="enterprise")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("connect", parents=[common], help="set the source or target connection")
    s.add_argument("project")
    s.add_argument("side", choices=["source", "target"])
    s.add_argument("--url")
    s.add_argument("--token-url")
    s.add_argument("--auth", choices=["sandbox", "client-credentials", "device-code", "browser", "jwt", "static-token"])
    s.add_argument("--tenant")
    s.add_argument("--client-id")
    s.add_argument("--username")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--secret-env")
    g.add_argument("--secret-stdin", action="store_true")
    s.add_argument("--app-key-env")
    s.add_argument("--faults", help="embedded sandbox only: fault-injection spec, e.g. 429=0.05,500=0.02")
    s.add_argument(
        "--fallback-owner",
        metavar="EMAIL",
        help="target only: the user who owns records of technicians with no user ('' = the migration user)",
    )
    s.add_argument("--test", action="store_true", help="also test the connection")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("import", parents=[common], help="import export files or folders")
    s.add_argument("project")
    s.add_argument("paths", nargs="+")
    s.add_argument("--object")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("extract", parents=[common], help="extract from the source platform's API")
    s.add_argument("project")
    s.add_argument("--since", help="ISO 8601 date-time; default: the last checkpoint (delta)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("automap", parents=[common], help="propose the field map")
    s.add_argument("project")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("map", parents=[common], help="show, accept or set the map")
    s.add_argument("project")
    msub = s.add_subparsers(dest="map_command", required=True, parser_class=_Parser)
    m = msub.add_parser("show", parents=[common])
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("accept", parents=[common])
    mg = m.add_mutually_exclusive_group(required=True)
    mg.add_argument("--all", action="store_true")
    mg.add_argument("--min-confidence", type=float)
    m.add_argument("--by")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("set", parents=[common])
    m.add_argument("source")
    m.add_argument("target")
    m.add_argument("--by")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("export", parents=[common], help="write the review workbook for the customer")
    m.add_argument("file")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("import", parents=[common], help="show what the customer changed; --apply applies it")
    m.add_argument("file")
    m.add_argument("--apply", action="store_true", help="apply the changes shown (you confirm them)")
    m.add_argument("--by")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("values", parents=[common], help="list value maps (source value → destination option)")
    m.add_argument("--object")
    m.add_argument("--field")
    m.add_argument("--unmapped", action="store_true", help="only values with no destination option")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("value", parents=[common], help="map one source value to a destination option")
    m.add_argument("source", help="SRC_OBJECT.SRC_FIELD")
    m.add_argument("value", help="the source value, as listed by `map values`")
    m.add_argument("label", help="the destination option label ('' leaves the column empty)")
    m.add_argument("--target", help="TARGET_ENTITY.TARGET_FIELD when the column feeds several choice fields")
    m.add_argument("--add-option", action="store_true", help="create the option at the destination first")
    m.add_argument("--by")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("transform", parents=[common], help="set or preview a field's transform (JSON spec)")
    m.add_argument("source", help="SRC_OBJECT.SRC_FIELD")
    m.add_argument("spec", help='e.g. \'{"type": "date", "format": "DD/MM/YYYY", "tz": "Europe/London"}\'')
    m.add_argument("--target", help="TARGET_ENTITY.TARGET_FIELD when the column feeds several fields")
    m.add_argument("--preview", action="store_true", help="only show the spec on sample values")
    m.add_argument("--by")
    m.add_argument("--json", action="store_true")

    s = sub.add_parser("schema", parents=[common], help="list or create the custom schema the map needs")
    s.add_argument("project")
    ssub = s.add_subparsers(dest="schema_command", required=True, parser_class=_Parser)
    m = ssub.add_parser("manifest", parents=[common])
    m.add_argument("--out")
    m.add_argument("--json", action="store_true")
    m = ssub.add_parser("apply", parents=[common])
    m.add_argument("--json", action="store_true")

    s = sub.add_parser("preflight", parents=[common], help="find what would block or degrade a load")
    s.add_argument("project")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("sample", parents=[common], help="load a representative slice, read it back, diff it")
    s.add_argument("project")
    s.add_argument("--size", type=int, default=200, help="records in the slice, 100–500 (parents included)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--diff", metavar="FILE.xlsx", help="write the field-level diff as a workbook")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("signoff", parents=[common], help="record the customer's sign-off of the latest sample")
    s.add_argument("project")
    s.add_argument("--by", required=True, help="who signs off")
    s.add_argument("--note", default="")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("load", parents=[common], help="load (or resume loading) into the destination")
    s.add_argument("project")
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument(
        "--recheck",
        action="store_true",
        help="read and compare every record at the destination instead of carrying the ones already loaded",
    )
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("delta", parents=[common], help="pick up what changed in the source since the last import")
    s.add_argument("project")
    s.add_argument("paths", nargs="*", help="the newer export's files or folders (none: the source API)")
    s.add_argument(
        "--deletes", choices=("report", "apply"), default="report",
        help="records deleted in the source: list them (default) or delete them at the destination",
    )  # fmt: skip
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("rollback", parents=[common], help="undo a run")
    s.add_argument("project")
    rg = s.add_mutually_exclusive_group()
    rg.add_argument("--run", type=int)
    rg.add_argument("--all", action="store_true")
    s.add_argument(
        "--force", action="store_true", help="also roll back records someone changed in the destination after the run"
    )
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("report", parents=[common], help="reconciliation report")
    s.add_argument("project")
    s.add_argument("--out", help="FILE.xlsx, FILE.html, FILE.pdf or FILE.json")
    s.add_argument("--rebuild", metavar="FOLDER", help="also write the rebuild reference package here")
    s.add_argument(
        "--offline",
        action="store_true",
        help="with --rebuild: do not read the source's automations over its API; use what was read before",
    )
    s.add_argument("--no-read-back", action="store_true", help="skip reading totals back from the destination")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("audit", parents=[common], help="search the audit log; export it to CSV or XLSX")
    s.add_argument("project")
    s.add_argument("--text", help="matches operation, entity, ids, errors and step details")
    s.add_argument("--run", type=int)
    s.add_argument("--operation")
    s.add_argument("--entity")
    s.add_argument("--source-id")
    s.add_argument("--status")
    s.add_argument("--limit", type=int, default=200, help="entries to print (exports write all matches)")
    s.add_argument("--out", help="FILE.csv or FILE.xlsx: export every matching entry")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("demo", parents=[common], help="generate an export and run every step into the sandbox")
    s.add_argument("--source", default="octopuspro")
    s.add_argument("--target", default="dynamics365")
    s.add_argument("--records", type=int, default=2000)
    s.add_argument("--dir", help="folder for the demo project (default: a new folder in the user data dir)")
    s.add_argument("--faults", help="inject faults into the embedded sandbox, e.g. 429=0.05,500=0.05,seed=1")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("sandbox", parents=[common], help="embedded emulators")
    bsub = s.add_subparsers(dest="sandbox_command", required=True, parser_class=_Parser)
    m = bsub.add_parser("serve", parents=[common])
    m.add_argument("--port", type=int, default=0)
    m.add_argument("--data")
    m.add_argument("--faults")
    m.add_argument("--tls", action="store_true")
    return p


class _StderrProgress:
    """Adapts engine progress events to throttled stderr lines (about 2 a second)."""

    def __init__(self) -> None:
        self._last = 0.0
        self._last_key: tuple[str, str] | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        key = (event.step, event.obj)
        finished = event.total and event.done >= event.total
        if now - self._last < 0.5 and key == self._last_key and not finished:
            return
        self._last, self._last_key = now, key
        rate = f" {event.rate:,.0f}/s" if event.rate else ""
        total = f"/{event.total}" if event.total else ""
        print(f"  {event.step} {event.obj}: {event.done}{total}{rate} {event.message}".rstrip(), file=sys.stderr)


def _emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str, ensure_ascii=False))
    elif text is not None:
        print(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except MigratorError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; run the step again to resume", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def _open(path: str) -> Any:
    from crmmigrator_gui.engine.project.store import Project

    return Project.open(Path(path))


def _dispatch(args: argparse.Namespace) -> int:
    from crmmigrator_gui.cli import commands

    handler = getattr(commands, f"cmd_{args.command}")
    return int(handler(args))


def secret_from_args(args: argparse.Namespace) -> str | None:
    if getattr(args, "secret_env", None):
        value = os.environ.get(args.secret_env)
        if not value:
            raise UsageError(f"environment variable {args.secret_env} is empty or not set")
        return value
    if getattr(args, "secret_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    return None


if __name__ == "__main__":
    sys.exit(main())
