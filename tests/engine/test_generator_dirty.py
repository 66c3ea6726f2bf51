"""Dirty OctopusPro and generic exports: the manifest lists every injected defect where it really is, the
output is deterministic, blocking defects cannot cascade, and large exports stream in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crmmigrator_gui.engine.demo import generic, octopuspro
from crmmigrator_gui.engine.demo.octopuspro import DROPPED, EXCLUDED, FAILS, MANIFEST_DIR, SKIPPED
from crmmigrator_gui.engine.source.importer import expand_paths
from crmmigrator_gui.engine.source.readers import open_tables

REPO = Path(__file__).resolve().parents[2]
SOURCES = {"octopuspro": (octopuspro, octopuspro._OctopusDirt), "generic": (generic, generic._GenericDirt)}


def _tables(files: list[Path]) -> dict[tuple[str, str | None], dict[int, dict[str, str | None]]]:
    """(file name, sheet) -> physical row -> values by header."""
    out = {}
    for path in files:
        for table in open_tables(path):
            out[(path.name, table.sheet)] = {
                row: dict(zip(table.columns, values, strict=True)) for row, values in table.iter_rows()
            }
    return out


@pytest.fixture(scope="module", params=sorted(SOURCES))
def dirty(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    module, dirt = SOURCES[request.param]
    out = tmp_path_factory.mktemp(request.param)
    export = module.generate_export(out, records=400, seed=7, variant="dirty")
    return request.param, module, dirt, out, export


def test_manifest_sits_in_a_subfolder_the_folder_import_ignores(dirty) -> None:
    source, _module, _dirt, out, export = dirty
    assert export.manifest == out / MANIFEST_DIR / "manifest.json"
    assert export.manifest not in export.files
    assert set(expand_paths([out])) == {p for p in export.files}
    body = json.loads(export.manifest.read_text(encoding="utf-8"))
    assert body["source"] == source
    assert body["variant"] == "dirty"
    assert (body["seed"], body["records"]) == (7, 400)
    assert body["defects"] == export.defects
    assert body["counts"] == dict(Counter(e["defect"] for e in export.defects))
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_manifest_covers_every_defect_type(dirty) -> None:
    _source, _module, dirt, _out, export = dirty
    found = {(e["object"], e["defect"]) for e in export.defects}
    wanted = {key for key in dirt.DEFECTS if key[1] not in dirt.NATURAL}
    assert wanted <= found, sorted(wanted - found)
    assert found <= set(dirt.DEFECTS)
    effects = Counter(e["effect"] for e in export.defects)
    for effect in (FAILS, SKIPPED, DROPPED, EXCLUDED, "parsed", "normalised_by_value_map", "loaded_as_given"):
        assert effects[effect] >= 1, effect
    # the §6 families are all there
    types = {defect for _o, defect in found}
    for family in ("utf8_bom", "cp1252_encoding", "semicolon_delimiter", "utf16_tab_text", "lf_line_endings",
                   "trailing_empty_column", "multiline_cell", "embedded_quotes_commas", "leading_zero_lost",
                   "excel_text_formula", "excel_serial_date", "scientific_notation", "mixed_date_format",
                   "placeholder_date", "phone_format_variant", "name_case_whitespace", "couple_name",
                   "duplicate_row_exact", "state_spelling", "country_spelling", "po_box_site", "money_format",
                   "money_negative_format", "money_unparseable", "enum_drift_status", "html_in_notes",
                   "long_note_excel_limit", "rtf_leak", "orphan_booking", "fk_holds_name",
                   "grand_total_row"):  # fmt: skip
        assert family in types, family


def test_every_entry_points_at_its_row_and_column(dirty) -> None:
    _source, _module, dirt, _out, export = dirty
    tables = _tables(export.files)
    names = {p.name for p in export.files}
    for entry in export.defects:
        assert {"file", "sheet", "row", "column", "defect", "object", "source_id", "effect", "description"} <= set(
            entry
        ), entry
        assert entry["file"] in names, entry
        assert entry["object"] == dirt.DEFECTS[(entry["object"], entry["defect"])][0]
        if entry["row"] == 0:  # the whole file
            assert not entry["source_id"], entry
            continue
        if entry["effect"] == EXCLUDED:
            assert entry["row"] not in tables[(entry["file"], entry["sheet"])], entry  # the reader left it out
            continue
        row = tables[(entry["file"], entry["sheet"])][entry["row"]]
        assert dirt.source_id(entry["object"], row) == entry["source_id"], entry
        if entry["column"]:
            assert entry["column"] in row, entry


def test_blocking_defects_one_per_record_and_ids_unique(dirty) -> None:
    _source, _module, _dirt, _out, export = dirty
    blocking = [(e["object"], e["source_id"]) for e in export.defects if e["effect"] in (FAILS, SKIPPED)]
    assert len(blocking) == len(set(blocking))
    assert all(sid for _o, sid in blocking)
    # failing invoices carry no payments, so nothing below them is skipped
    failing_invoices = {sid for obj, sid in blocking if obj == "invoices"}
    tables = _tables(export.files)
    for (_file, _sheet), rows in tables.items():
        for values in rows.values():
            if "Payment ID" in values:
                invoice = values.get("Invoice number") or values.get("Invoice #")
                assert str(invoice) not in failing_invoices


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    for name, (module, _dirt) in SOURCES.items():
        first = module.generate_export(tmp_path / f"{name}-a", records=300, seed=5, variant="dirty")
        second = module.generate_export(tmp_path / f"{name}-b", records=300, seed=5, variant="dirty")
        other = module.generate_export(tmp_path / f"{name}-c", records=300, seed=6, variant="dirty")
        assert first.defects == second.defects
        assert first.counts == second.counts
        assert first.defects != other.defects
        for a, b in zip(first.files, second.files, strict=True):
            if a.suffix != ".xlsx":  # workbooks carry zip timestamps; their content is compared below
                assert a.read_bytes() == b.read_bytes(), a
        assert _tables(first.files) == _tables(second.files)


def test_dirty_is_the_clean_dataset_plus_extras(tmp_path: Path) -> None:
    for name, (module, _dirt) in SOURCES.items():
        clean = module.generate_export(tmp_path / f"{name}-clean", records=400, seed=7, variant="clean")
        dirty = module.generate_export(tmp_path / f"{name}-dirty", records=400, seed=7, variant="dirty")
        extras = Counter(e["object"] for e in dirty.defects if e.get("added"))
        assert {e["defect"] for e in dirty.defects if e.get("added")} >= {"orphan_booking", "fk_holds_name"}
        repeats = Counter(e["object"] for e in dirty.defects if e["defect"] == "repeated_row")
        for obj, count in clean.counts.items():
            assert dirty.counts[obj] == count + extras[obj] - repeats[obj], (name, obj)
        assert dirty.users == clean.users


def test_small_and_large_dirty_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = octopuspro.generate_export(tmp_path / "tiny", records=60, seed=1, variant="dirty")
    assert any(e["effect"] == FAILS for e in tiny.defects)
    monkeypatch.setattr(octopuspro, "LARGE", 100)  # the > 200k shape: every sheet becomes a CSV
    large = octopuspro.generate_export(tmp_path / "large", records=400, seed=7, variant="dirty")
    assert not [p for p in large.files if p.suffix == ".xlsx"]
    assert {"Invoices.csv", "Payments.csv", "Quotes.csv", "Services.csv"} <= {p.name for p in large.files}
    assert all(e["sheet"] is None for e in large.defects)
    tables = _tables(large.files)
    for entry in large.defects:
        if entry["row"] and entry["effect"] != EXCLUDED:
            row = tables[(entry["file"], None)][entry["row"]]
            assert octopuspro._OctopusDirt.source_id(entry["object"], row) == entry["source_id"]


_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from crmmigrator_gui.engine.demo.generic import generate_export
started = time.monotonic()
export = generate_export(Path(sys.argv[1]), records=int(sys.argv[2]), seed=7, variant=sys.argv[3])
# VmHWM is this process's own peak; ru_maxrss also carries the parent's peak across fork+exec on Linux,
# so under a big pytest process it measured the test runner, not the generator.
status = Path("/proc/self/status")
hwm = [l for l in status.read_text().splitlines() if l.startswith("VmHWM:")] if status.exists() else []
rss_mb = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.monotonic() - started, "rss_mb": rss_mb, "records": sum(export.counts.values())}))
"""


def _measure(out: Path, records: int, variant: str) -> dict[str, float]:
    ran = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), str(records), variant],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(ran.stdout)


@pytest.mark.slow
def test_200k_generic_export_streams_in_bounded_time_and_memory(tmp_path: Path) -> None:
    started = time.monotonic()
    small = _measure(tmp_path / "small", 20_000, "standard")
    big = _measure(tmp_path / "big", 200_000, "standard")
    assert big["records"] >= 199_000
    assert big["seconds"] < 120, big
    # Memory grows by a few dozen bytes per customer/booking, not by whole records: ten times the records
    # may not add more than 40 MB (building every record as a dict would add about 140 MB here).
    assert big["rss_mb"] - small["rss_mb"] < 40, (small, big)
    assert big["rss_mb"] < 250, big
    assert time.monotonic() - started < 240
    files = {p.name for p in (tmp_path / "big").iterdir()}
    assert {"clients.csv", "jobs.csv", "invoices.csv", "technicians.jsonl"} <= files
