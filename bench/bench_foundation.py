"""Foundation benchmark: import throughput, load throughput, requests per 1,000 records, peak memory.

Run: ``python bench/bench_foundation.py [--rows 100000] [--records 2000]``. Figures are reported as
ratios measured in the same run (ours vs the stdlib csv module reading the same file), so they
compare across machines; absolute rates are printed too. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmmigrator_gui.engine.demo.runner import run_demo
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths


def write_customers(path: Path, rows: int) -> None:
    rng = random.Random(1)
    first = ["Zoë", "José", "Łukasz", "Mia", "Noah", "李", "Olivia", "Seán"]
    last = ["O'Brien", "Nguyen", "Smith", "Müller", "García", "Kowalski"]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Customer ID",
                "First name",
                "Last name",
                "Business name",
                "Customer type",
                "Email",
                "Mobile",
                "Address",
                "Suburb/City",
                "State",
                "Postcode",
                "Date joined",
            ]
        )
        for i in range(rows):
            f, last_name = rng.choice(first), rng.choice(last)
            writer.writerow(
                [
                    f"C{i:07d}",
                    f,
                    last_name,
                    "" if i % 3 else f"{last_name} Plumbing Pty Ltd",
                    "Business" if i % 3 == 0 else "Personal",
                    f"user{i}@example.com",
                    f"04{rng.randrange(10**8):08d}",
                    f"{i % 300} George St\nLevel {i % 9}",
                    "Sydney",
                    "NSW",
                    f"{rng.randrange(800, 2999):04d}",
                    f"2023/{1 + i % 12:02d}/{1 + i % 28:02d}",
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    csv_path = work / "customers.csv"
    write_customers(csv_path, args.rows)

    t0 = time.perf_counter()
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        baseline_rows = sum(1 for _ in csv.reader(handle)) - 1
    baseline = time.perf_counter() - t0

    project = Project.create(work / "bench.cmproj", source="octopuspro", target="dynamics365")
    t0 = time.perf_counter()
    result = import_paths(project, [csv_path])
    ours = time.perf_counter() - t0
    imported = result.objects[0].records

    t0 = time.perf_counter()
    demo = run_demo(work / "demo", records=args.records)
    load_seconds = time.perf_counter() - t0
    loaded = sum(o["source_records"] for o in demo["objects"])

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "import_rows": imported,
        "import_rows_per_s": round(imported / ours),
        "csv_module_rows_per_s": round(baseline_rows / baseline),
        "import_vs_csv_module_ratio": round(ours / baseline, 1),
        "demo_source_records": loaded,
        "load_run_seconds": demo["seconds"],
        "load_records_per_s": round(loaded / demo["seconds"]) if demo["seconds"] else None,
        "demo_total_seconds": round(load_seconds, 2),
        "http_requests": demo["requests"],
        "requests_per_1000_records": round(demo["requests"] * 1000 / max(1, loaded), 1),
        "peak_rss_mb": round(peak_mb),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
