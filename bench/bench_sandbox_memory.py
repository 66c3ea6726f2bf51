"""Memory and throughput of the Dataverse sandbox at scale: does a 1M-row table stay out of memory?

What it does (no assertions; it prints figures to compare between versions):

1. Seeds N accounts (default 1,000,000) **directly through the store** - the fast path: one validated row
   is built with ``Records.build_new`` and then copied with a new id/name/version per row, and written with
   ``Store.insert_many`` in chunks of 10,000 inside one transaction each. This is how a test fixture or a
   demo would fill a big table; it skips per-row validation, so it measures the storage layer only.
2. Optionally (``--create-multiple M``, default 20,000) inserts M more rows over HTTP with
   ``CreateMultiple`` batches of 1,000, the product's real load path, to compare rows/s.
3. Serves the file on loopback (``sandbox.server.start_background``) and pages through the whole table over
   HTTP with ``Prefer: odata.maxpagesize=5000`` and ``$select=name``, following ``@odata.nextLink``.

It reports the process's current and peak RSS (client and server share the process) before and after each
phase, and rows/s. If the table were loaded into memory, RSS would grow with N; streaming keeps the growth
to a page or a chunk.

Usage: ``python bench/bench_sandbox_memory.py [--rows 1000000] [--create-multiple 20000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.server import start_background

HEADERS = {
    "Authorization": "Bearer bench",
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB, Linux."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    current = pages * resource.getpagesize() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def report(label: str) -> None:
    current, peak = rss_mb()
    print(f"{label:<34} rss {current:8.1f} MiB   peak {peak:8.1f} MiB", flush=True)


def seed(path: Path, rows: int, chunk: int = 10_000) -> float:
    sb = DataverseSandbox(path)
    try:
        ent = sb.catalog.entities["account"]
        _, template = sb.records.build_new(ent, {"name": "template", "telephone1": "555-0100"})
        start = time.perf_counter()
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            batch = []
            for i in range(done, done + n):
                row = dict(template)
                row["name"] = f"Account {i:07d}"
                row["accountnumber"] = f"A{i:07d}"
                row["versionnumber"] = sb.store.next_version()
                batch.append((str(uuid.uuid4()), row))
            sb.store.insert_many(ent, batch)
            done += n
            del batch
        return rows / (time.perf_counter() - start)
    finally:
        sb.close()


def create_multiple(client: httpx.Client, rows: int, batch: int = 1000) -> float:
    start = time.perf_counter()
    for offset in range(0, rows, batch):
        targets = [
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": f"Bulk {i}", "telephone1": "555-0101"}
            for i in range(offset, min(rows, offset + batch))
        ]
        r = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets})
        r.raise_for_status()
    return rows / (time.perf_counter() - start)


def page_all(client: httpx.Client) -> tuple[int, int, float]:
    start = time.perf_counter()
    url: str | None = "accounts?$select=name"
    seen = pages = 0
    while url:
        r = client.get(url, headers={"Prefer": "odata.maxpagesize=5000"})
        r.raise_for_status()
        body = r.json()
        seen += len(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
    return seen, pages, seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--create-multiple", type=int, default=20_000)
    parser.add_argument("--keep", help="folder for the data file (kept); default: a temporary folder")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "bench.sqlite"
    try:
        report("start")
        rate = seed(data, args.rows)
        report(f"after seeding {args.rows:,} rows")
        print(f"  store fast path: {rate:,.0f} rows/s; file {data.stat().st_size / 2**20:,.0f} MiB")
        server, thread, base = start_background(data=str(data))
        try:
            with httpx.Client(base_url=f"{base}/api/data/v9.2/", headers=HEADERS, timeout=600) as client:
                if args.create_multiple:
                    rate = create_multiple(client, args.create_multiple)
                    report(f"after CreateMultiple {args.create_multiple:,}")
                    print(f"  CreateMultiple x1000 over HTTP: {rate:,.0f} rows/s")
                count = client.get("accounts", params={"$count": "true", "$select": "name"},
                                   headers={"Prefer": "odata.maxpagesize=1"}).json()["@odata.count"]
                print(f"  @odata.count (capped): {count}")
                seen, pages, rate = page_all(client)
                report("after paging over HTTP")
                print(f"  paged {seen:,} rows in {pages:,} pages of <=5000: {rate:,.0f} rows/s")
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            server.get_app().close()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
