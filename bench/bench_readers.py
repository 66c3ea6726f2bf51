"""Export-file readers at scale: rows/s and peak memory of ``open_tables`` + a full ``iter_rows()`` pass.

What it does (no assertions; it prints figures to compare between versions):

1. Writes a CSV of N rows (default 1,000,000; 12 columns, UTF-8, a quoted multi-line cell every 50 rows)
   and an XLSX of M rows (default 100,000; 12 columns, openpyxl write-only), plus a JSON Lines file of
   the CSV's first 200,000 rows.
2. For each file, runs a fresh child process that imports the readers, opens the file and iterates every
   row, and reports: the time to open (sniffing, header detection, for XLSX the safety scan and the
   column/total-row pre-pass), the time to iterate, rows/s over both, and the child's peak RSS
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) next to the peak of a child that only imports, so the
   reader's own share is visible and peaks of different files never mix.
3. For comparison, the same CSV through a bare ``csv.reader`` pass in its own child.

If a reader held the file, the CSV child's RSS would grow with N; streaming keeps it flat.

Usage: ``python bench/bench_readers.py [--csv-rows 1000000] [--xlsx-rows 100000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["Customer ID", "First Name", "Last Name", "Email", "Phone", "Street", "City", "Postcode",
          "Created Date", "Status", "Notes", "Total"]  # fmt: skip

_CHILD = r"""
import csv, json, resource, sys, time
from pathlib import Path
mode, path = sys.argv[1], Path(sys.argv[2])
started = time.perf_counter()
rows = 0
opened = 0.0
if mode == "readers":
    from crmmigrator_gui.engine.source.readers import open_tables
    tables = open_tables(path)
    opened = time.perf_counter() - started
    for table in tables:
        for _row in table.iter_rows():
            rows += 1
elif mode == "csv":
    with path.open(newline="", encoding="utf-8") as handle:
        for _row in csv.reader(handle):
            rows += 1
elif mode == "import-only":
    import crmmigrator_gui.engine.source.readers  # noqa: F401
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"rows": rows, "open": opened, "seconds": elapsed, "peak_mib": peak / 1024}))
"""


def row(i: int) -> list[object]:
    notes = f"Gate code {i % 9999}\nRing first" if i % 50 == 0 else "Regular service"
    return [f"C{i:07d}", "Ann", "Smith", f"ann{i}@example.com", f"04{i % 100000000:08d}", f"{i % 300} Main St",
            "Perth", f"{6000 + i % 200:04d}", "2025-03-14", "Active", notes, round(i * 1.25, 2)]  # fmt: skip


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(row(i))


def write_xlsx(path: Path, rows: int) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Customers")
    sheet.append(HEADER)
    for i in range(rows):
        sheet.append(row(i))
    workbook.save(path)


def write_jsonl(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            values = row(i)
            record = dict(zip(HEADER, values, strict=True))
            record["address"] = {"street": record.pop("Street"), "city": record.pop("City")}
            handle.write(json.dumps(record) + "\n")


def measure(mode: str, path: Path | None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path or "-")],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--jsonl-rows", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-readers-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = {
            "csv": (folder / "customers.csv", write_csv, args.csv_rows),
            "xlsx": (folder / "customers.xlsx", write_xlsx, args.xlsx_rows),
            "jsonl": (folder / "customers.jsonl", write_jsonl, args.jsonl_rows),
        }
        for name, (path, writer, rows) in files.items():
            started = time.perf_counter()
            writer(path, rows)
            size = path.stat().st_size / 1024**2
            print(f"wrote {name}: {rows:,} rows, {size:,.1f} MiB in {time.perf_counter() - started:.1f} s")
        base = measure("import-only", None)
        print(f"\nbaseline child (imports only): peak RSS {base['peak_mib']:.0f} MiB\n")
        print(f"{'file':<28}{'rows':>11}{'open s':>9}{'total s':>9}{'rows/s':>11}{'peak MiB':>10}{'+ base':>8}")
        runs = [("readers", "csv", "csv via open_tables"), ("csv", "csv", "csv via bare csv.reader"),
                ("readers", "xlsx", "xlsx via open_tables"), ("readers", "jsonl", "jsonl via open_tables")]  # fmt: skip
        for mode, name, title in runs:
            result = measure(mode, files[name][0])
            rate = result["rows"] / result["seconds"] if result["seconds"] else 0.0
            print(
                f"{title:<28}{result['rows']:>11,}{result['open']:>9.2f}{result['seconds']:>9.2f}{rate:>11,.0f}"
                f"{result['peak_mib']:>10.0f}{result['peak_mib'] - base['peak_mib']:>8.0f}"
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
