"""Load reliability, measured: throughput, requests per 1,000 records, kill -9 resume and injected faults.

Everything runs as a user would: the real ``crmmigrator`` CLI in child processes against ``crmmigrator
sandbox serve`` (real HTTP on loopback), so the figures include process start-up, sockets and the served
emulator, not an in-process shortcut. Per target, on a freshly generated demo export (OctopusPro for
Dynamics 365, Q Dispatch for Salesforce) and a fresh sandbox data file each time:

- A (clean): new → connect → import → automap → map accept --all → (schema apply) → sample → signoff →
  rollback the sample → ``load --json``. records/s = staged source records / the run's own ``seconds``
  (and / the wall time of the ``load`` command, start-up included); requests per 1,000 source records.
- B (kill -9): the same preparation; ``load`` is SIGKILLed once the project file's crosswalk holds ~40% of
  the records as committed outcomes (read with sqlite3, read-only), then ``load --json`` again (the resume
  time is that command's wall time).
- C (faults): the sandbox is served with ``--faults "429=R/2,500=R/2,retry_after=0,seed=S"``.

B and C are then verified over HTTP against the served sandbox — Dataverse ``$filter`` with paging on
``new_sourcesystemid``, Salesforce SOQL with ``nextRecordsUrl`` on ``Source_System_ID__c`` — against the
keys every staged record of every part must have (from the staging table and the playbook, never from our
own crosswalk): no duplicates, no gaps, nothing extra.

Usage: ``python bench/bench_load.py --records N --target dynamics365|salesforce|both [--readme]``.
Not a test: it asserts nothing, but exits 1 when a run is not exactly-once, so a regression is visible.

Salesforce through a served sandbox needs ``--auth client-credentials`` (``--auth sandbox`` is Dataverse
only for now), whose secret lives in the OS keyring; the dev machine has none, so the children get
:class:`SandboxKeyring` through ``PYTHON_KEYRING_BACKEND`` — it stores nothing and hands back a throw-away
secret, which the emulator accepts (it accepts any client secret).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import keyring.backend

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "bench" / "README.md"
START, END = "<!-- load:start -->", "<!-- load:end -->"
SOURCE_FOR = {"dynamics365": "octopuspro", "salesforce": "qdispatch"}
FINAL = ("created", "updated", "unchanged", "failed", "skipped")
KILL_AT = 0.40
SF_VERSION = "v60.0"


class SandboxKeyring(keyring.backend.KeyringBackend):
    """The children's keyring: stores nothing, returns a throw-away secret the served sandbox accepts."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return "bench-sandbox-secret"

    def set_password(self, service: str, username: str, password: str) -> None:
        return None

    def delete_password(self, service: str, username: str) -> None:
        return None


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Bench:
    """One work folder and the environment every child process gets (its own user data folder)."""

    work: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = dict(os.environ)
        self.env["CRMMIGRATOR_HOME"] = str(self.work / "home")
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "bench")])
        self.env["PYTHON_KEYRING_BACKEND"] = "bench_load.SandboxKeyring"
        self.env["BENCH_SECRET"] = "bench-sandbox-secret"
        self.env.pop("QT_QPA_PLATFORM", None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "crmmigrator_gui", *args]

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> Ran:
        started = time.perf_counter()
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=self.env, cwd=self.work, timeout=3600, check=False
        )
        ran = Ran(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)
        if ran.code not in ok:
            tail = "\n".join(ran.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"`crmmigrator {' '.join(args)}` exited {ran.code}:\n{tail}")
        return ran


class Sandbox:
    """``crmmigrator sandbox serve`` in a child process; the port is read from its first stderr line."""

    def __init__(self, bench: Bench, data: Path, faults: str | None = None) -> None:
        self.log = data.with_suffix(".serve.log")
        args = ["sandbox", "serve", "--port", "0", "--data", str(data)]
        if faults:
            args += ["--faults", faults]
        with self.log.open("w", encoding="utf-8") as log:  # a file, not a pipe: a full pipe would stall it
            self.proc = subprocess.Popen(bench.argv(*args), env=bench.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        self.url = ""
        while not self.url:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start: {self.log.read_text(encoding='utf-8')[-500:]}")
            for line in self.log.read_text(encoding="utf-8").splitlines():
                if line.startswith("sandbox listening on "):
                    self.url = line.split()[3]
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def prepare(
    bench: Bench, name: str, target: str, export: list[Path], faults: str | None = None
) -> tuple[Path, Sandbox]:
    """A project that is one `load` away from the full load: signed-off sample, rolled back."""
    sandbox = Sandbox(bench, bench.work / f"{name}.sandbox.sqlite", faults)
    project = bench.work / f"{name}.cmproj"
    p = str(project)
    bench.cli("new", p, "--source", SOURCE_FOR[target], "--target", target)
    if target == "dynamics365":
        bench.cli("connect", p, "target", "--url", sandbox.url, "--auth", "sandbox")
    else:
        bench.cli("connect", p, "target", "--url", sandbox.url, "--auth", "client-credentials",
                  "--client-id", "bench", "--secret-env", "BENCH_SECRET")  # fmt: skip
    bench.cli("import", p, *[str(f) for f in export])
    bench.cli("automap", p)
    bench.cli("map", p, "accept", "--all")
    if target == "salesforce":
        bench.cli("schema", p, "apply")  # a real (non-sandbox-auth) org: the admin step, done up front
    sample = bench.cli("sample", p, "--json", ok=(0, 4)).json  # 4 = fields flagged for review: still signable
    bench.cli("signoff", p, "--by", "bench")
    bench.cli("rollback", p, "--run", str(sample["run_id"]))
    return project, sandbox


# ------------------------------------------------------------------------------------------ verification


def expected_keys(project: Path) -> dict[str, Counter[str]]:
    """Target entity -> the source-id key of every staged record of every part (grouped parts: one per group).

    Built from the staging table and the playbook's key rule, never from the crosswalk: the point is to
    check what the load wrote against what it was given.
    """
    from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook
    from crmmigrator_gui.engine.plan.order import group_id

    conn = sqlite3.connect(f"file:{project}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        playbook = load_playbook(meta["source"], meta["target"], meta["edition"])
        columns: dict[str, dict[str, str]] = {}
        for obj, source_field, role in conn.execute(
            "SELECT source_object, source_field, role FROM field_maps WHERE role IS NOT NULL ORDER BY id"
        ):
            columns.setdefault(obj, {}).setdefault(role, source_field)
        expected: dict[str, Counter[str]] = {}
        for obj in playbook.objects:
            rows = [(sid, json.loads(raw)) for sid, raw in conn.execute(
                "SELECT source_id, raw FROM staging WHERE object = ?", (obj.name,))]  # fmt: skip
            for part in obj.parts:
                ids = {group_id(part, raw, columns.get(obj.name, {})) if part.group_by else sid for sid, raw in rows}
                keys = expected.setdefault(part.entity, Counter())
                keys.update(destination_key(playbook, obj.name, i, part.name) for i in ids)
        return expected
    finally:
        conn.close()


def _get(url: str, headers: dict[str, str], data: bytes | None = None) -> Any:
    """GET/POST with retries: the faults run keeps injecting 429/5xx (Salesforce shows 429 as 403) while we read."""
    for attempt in range(12):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code not in (403, 429, 500, 502, 503, 504) or attempt == 11:
                raise
        time.sleep(0.05)
    raise AssertionError("unreachable")


def destination_keys(url: str, target: str, entities: list[str]) -> dict[str, Counter[str]]:
    """Target entity -> every source-id key stored there, counted (read over HTTP, paged to the end)."""
    found: dict[str, Counter[str]] = {}
    if target == "dynamics365":
        headers = {"Authorization": "Bearer bench", "Accept": "application/json", "Prefer": "odata.maxpagesize=5000"}
        for entity in entities:
            quoted = urllib.parse.quote(f"LogicalName='{entity}'")
            entity_set = _get(f"{url}/api/data/v9.2/EntityDefinitions({quoted})?$select=EntitySetName", headers)[
                "EntitySetName"
            ]
            query = urllib.parse.urlencode(
                {"$select": "new_sourcesystemid", "$filter": "new_sourcesystemid ne null"}, quote_via=urllib.parse.quote
            )
            next_url: str | None = f"{url}/api/data/v9.2/{entity_set}?{query}"
            keys = found.setdefault(entity, Counter())
            while next_url:
                page = _get(next_url, headers)
                keys.update(row["new_sourcesystemid"] for row in page["value"])
                next_url = page.get("@odata.nextLink")
        return found
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "bench", "client_secret": "bench-sandbox-secret"}
    ).encode()
    token = _get(f"{url}/services/oauth2/token", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}
    for entity in entities:
        soql = f"SELECT Source_System_ID__c FROM {entity} WHERE Source_System_ID__c != null"
        next_path: str | None = f"/services/data/{SF_VERSION}/query?q={urllib.parse.quote(soql)}"
        keys = found.setdefault(entity, Counter())
        while next_path:
            page = _get(url + next_path, headers)
            keys.update(row["Source_System_ID__c"] for row in page["records"])
            next_path = None if page.get("done", True) else page.get("nextRecordsUrl")
    return found


def verify(project: Path, url: str, target: str) -> dict[str, Any]:
    """Exactly once by source id: counts of duplicates, gaps and unexpected keys over every part."""
    expected = expected_keys(project)
    actual = destination_keys(url, target, sorted(expected))
    duplicates = missing = extra = 0
    for entity, want in expected.items():
        have = actual.get(entity, Counter())
        duplicates += sum(n - 1 for n in have.values() if n > 1)
        missing += len(set(want) - set(have))
        extra += len(set(have) - set(want))
    return {
        "expected": sum(len(w) for w in expected.values()),
        "present": sum(len(a) for a in actual.values()),
        "duplicates": duplicates,
        "missing": missing,
        "extra": extra,
        "exactly_once": duplicates == missing == extra == 0,
    }


# ------------------------------------------------------------------------------------------ runs


def committed(project: Path) -> int:
    """Committed outcomes of the newest load run (read-only; a busy writer just means 'ask again')."""
    try:
        conn = sqlite3.connect(f"file:{project}?mode=ro", uri=True, timeout=0.2)
        try:
            row = conn.execute(
                "SELECT COUNT(*) FROM crosswalk WHERE action IN (?,?,?,?,?) AND run_id = "
                "(SELECT MAX(id) FROM runs WHERE kind = 'load')",
                FINAL,
            ).fetchone()
            return int(row[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return -1


def _summary(loaded: dict[str, Any], seconds: float) -> dict[str, Any]:
    records = sum(o["source_records"] for o in loaded["objects"])
    run_seconds = float(loaded["seconds"]) or seconds
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "records_per_s": round(records / run_seconds, 1),
        "records_per_s_wall": round(records / seconds, 1),
        "requests": loaded["requests"],
        "requests_per_1000": round(loaded["requests"] * 1000 / max(1, records), 1),
        "failed": sum(o["failed"] for o in loaded["objects"]),
        "status": loaded["status"],
    }


def run_clean(bench: Bench, target: str, export: list[Path]) -> dict[str, Any]:
    project, sandbox = prepare(bench, f"{target}-clean", target, export)
    try:
        ran = bench.cli("load", str(project), "--json", ok=(0, 4))
        return {**_summary(ran.json, ran.seconds), "verify": verify(project, sandbox.url, target)}
    finally:
        sandbox.stop()


def run_kill(bench: Bench, target: str, export: list[Path]) -> dict[str, Any]:
    project, sandbox = prepare(bench, f"{target}-kill", target, export)
    try:
        total = sum(sum(c.values()) for c in expected_keys(project).values())
        log = bench.work / f"{target}-kill.load.log"
        with log.open("w", encoding="utf-8") as err:
            proc = subprocess.Popen(
                bench.argv("load", str(project), "--json"),
                env=bench.env, cwd=bench.work, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            started = time.perf_counter()
            seen = 0
            while proc.poll() is None and seen < KILL_AT * total:
                seen = max(seen, committed(project))
                time.sleep(0.005)
            alive = proc.poll() is None
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_after = time.perf_counter() - started
        at_kill = committed(project)
        ran = bench.cli("load", str(project), "--json", ok=(0, 4))
        return {
            **_summary(ran.json, ran.seconds),
            "killed": alive,
            "killed_after_s": round(killed_after, 2),
            "committed_at_kill": round(at_kill / max(1, total), 3),
            "resume_s": round(ran.seconds, 2),
            "verify": verify(project, sandbox.url, target),
        }
    finally:
        sandbox.stop()


def run_faults(bench: Bench, target: str, export: list[Path], rate: float, seed: int) -> dict[str, Any]:
    spec = f"429={rate / 2},500={rate / 2},retry_after=0,seed={seed}"
    project, sandbox = prepare(bench, f"{target}-faults", target, export, faults=spec)
    try:
        ran = bench.cli("load", str(project), "--json", ok=(0, 4))
        return {**_summary(ran.json, ran.seconds), "faults": spec, "verify": verify(project, sandbox.url, target)}
    finally:
        sandbox.stop()


def measure(target: str, records: int, seed: int, rate: float) -> dict[str, Any]:
    bench = Bench(Path(tempfile.mkdtemp(prefix=f"bench-load-{target}-")))
    module = __import__(f"crmmigrator_gui.engine.demo.{SOURCE_FOR[target]}", fromlist=["generate_export"])
    export = module.generate_export(bench.work / "export", records=records, seed=seed)
    result = {"target": target, "source": SOURCE_FOR[target], "records_requested": records}
    for name, run in (
        ("clean", lambda: run_clean(bench, target, export.files)),
        ("kill", lambda: run_kill(bench, target, export.files)),
        ("faults", lambda: run_faults(bench, target, export.files, rate, seed)),
    ):
        print(f"[{target}] run {name} …", file=sys.stderr, flush=True)
        result[name] = run()
    clean, faults = result["clean"], result["faults"]
    result["faults"]["retries"] = faults["requests"] - clean["requests"]  # same data, same path: extra = retries
    return result


# ------------------------------------------------------------------------------------------ output


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| figure | " + " | ".join(f"{r['target']} ({r['source']})" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(cell(r)) for r in results) + " |")

    row("source records (N)", lambda r: r["clean"]["records"])
    row("A clean: records/s (run's own time / CLI wall time)", lambda r: _rate(r["clean"]))
    row("A clean: requests per 1,000 records", lambda r: r["clean"]["requests_per_1000"])
    row("A clean: exactly once (dup / gaps / extra)", lambda r: _once(r["clean"]["verify"]))
    row("B kill -9: killed at (committed share)", lambda r: f"{r['kill']['committed_at_kill']:.0%}"
        + ("" if r["kill"]["killed"] else " (finished first)"))  # fmt: skip
    row("B kill -9: resume time (second `load`)", lambda r: f"{r['kill']['resume_s']} s")
    row("B kill -9: requests per 1,000 records of the resume", lambda r: r["kill"]["requests_per_1000"])
    row("B kill -9: exactly once (dup / gaps / extra)", lambda r: _once(r["kill"]["verify"]))
    row("C 5% 429/500: records/s (run / wall)", lambda r: _rate(r["faults"]))
    row("C 5% 429/500: requests per 1,000 records", lambda r: r["faults"]["requests_per_1000"])
    row("C 5% 429/500: retries (requests over run A)", lambda r: r["faults"]["retries"])
    row("C 5% 429/500: exactly once (dup / gaps / extra)", lambda r: _once(r["faults"]["verify"]))
    return lines


def _rate(run: dict[str, Any]) -> str:
    return f"{run['records_per_s']:,.0f} / {run['records_per_s_wall']:,.0f}"


def _once(v: dict[str, Any]) -> str:
    mark = "yes" if v["exactly_once"] else "**NO**"
    return f"{mark}, {v['present']}/{v['expected']} keys ({v['duplicates']} / {v['missing']} / {v['extra']})"


def write_readme(results: list[dict[str, Any]], records: int) -> None:
    lines = [
        START,
        f"### Figures (`python bench/bench_load.py --records {records} --target both --readme`)",
        "",
        *table(results),
        "",
        f"Measured {date.today().isoformat()} on the dev machine (wall times of the CLI child processes, "
        "served sandbox on loopback).",
        END,
    ]
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if START in text:
        before, _, rest = text.partition(START)
        _, _, after = rest.partition(END)
        text = before + "\n".join(lines) + after
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    tmp = README.with_name(README.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, README)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="source records to generate (about)")
    parser.add_argument("--target", choices=("dynamics365", "salesforce", "both"), default="both")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of requests that get 429 or 500")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--readme", action="store_true", help="write the figures into bench/README.md")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON on stdout")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    targets = ["dynamics365", "salesforce"] if args.target == "both" else [args.target]
    results = [measure(t, args.records, args.seed, args.fault_rate) for t in targets]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(table(results)))
    if args.readme:
        write_readme(results, args.records)
        print(f"figures written to {README}", file=sys.stderr)
    ok = all(r[run]["verify"]["exactly_once"] for r in results for run in ("clean", "kill", "faults"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
