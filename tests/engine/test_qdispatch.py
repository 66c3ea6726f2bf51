"""Q Dispatch → Dynamics 365: the export generator (determinism, sizes, streaming, the dirty manifest)
and the playbook (every seed row, Dataverse names, headers the generator writes)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from crmmigrator_gui.engine.demo import qdispatch
from crmmigrator_gui.engine.demo.qdispatch import DEFECTS, OBJECTS, generate_export
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.source.importer import expand_paths, header_roles, recognise_object
from crmmigrator_gui.engine.source.readers import open_tables

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seeds" / "001_79aba3686f6d3a21.txt"
SEED_ROWS = (
    "Customer (Company)",
    "Service Contact",
    "Work Order / Job",
    "Work Order Line Item / Service Line",
    "Technician / Dispatch Resource",
    "Schedule / Dispatch Assignment",
    "Job Status / Dispatch Status",
    "Service Notes / Job Comments",
    "Invoice / Billing Record",
    "Route / Geographic Zone",
    "Q Dispatch Source System ID",
)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------- generator


@pytest.mark.parametrize("variant", ["clean", "dirty", "unseen"])
def test_same_seed_same_bytes_other_seed_other_data(tmp_path, variant):
    a = generate_export(tmp_path / "a", records=400, seed=3, variant=variant)
    b = generate_export(tmp_path / "b", records=400, seed=3, variant=variant)
    c = generate_export(tmp_path / "c", records=400, seed=4, variant=variant)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert a.counts == b.counts
    assert a.users == b.users
    assert a.defects == b.defects
    assert _bytes(tmp_path / "a") != _bytes(tmp_path / "c")
    assert not list((tmp_path / "a").glob(".*.tmp")), "temp files left behind"
    assert c.users


def test_standard_is_the_clean_variant(tmp_path):
    generate_export(tmp_path / "s", records=300, seed=7, variant="standard")
    generate_export(tmp_path / "c", records=300, seed=7, variant="clean")
    assert _bytes(tmp_path / "s") == _bytes(tmp_path / "c")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        generate_export(tmp_path, records=100, variant="nope")
    with pytest.raises(ValueError, match="at least 1"):
        generate_export(tmp_path, records=0)


@pytest.mark.parametrize("records", [100, 2000, 20_000])
def test_sizes_and_counts_match_the_files(tmp_path, records):
    export = generate_export(tmp_path, records=records, seed=1, variant="clean")
    assert set(export.counts) == set(OBJECTS)
    total = sum(export.counts.values())
    assert abs(total - records) <= max(15, records * 0.1), (total, export.counts)
    assert all(export.counts[o] > 0 for o in OBJECTS)
    for path in export.files:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert len(rows) - 1 == export.counts[path.stem], path.name
        assert rows[0] == list(qdispatch.CANONICAL[path.stem])
    technicians = export.counts["technicians"]
    assert len(export.users) == round(technicians * 0.8)
    assert all("@" in email for _name, email in export.users)


def test_referential_integrity_of_the_clean_export(tmp_path):
    export = generate_export(tmp_path, records=3000, seed=9, variant="clean")
    rows = {}
    for path in export.files:
        with path.open(encoding="utf-8", newline="") as handle:
            rows[path.stem] = list(csv.DictReader(handle))
    customers = {r["customer_code"] for r in rows["customers"]}
    contacts = {r["contact_id"] for r in rows["contacts"]}
    techs = {r["tech_code"] for r in rows["technicians"]}
    zones = {r["zone_code"] for r in rows["zones"]}
    orders = {r["wo_number"]: r for r in rows["work_orders"]}
    assert {r["customer_code"] for r in rows["contacts"]} <= customers
    assert {r["parent_customer_code"] for r in rows["customers"]} - {""} <= customers
    for order in orders.values():
        assert order["customer_code"] in customers
        assert order["site_contact_id"] in contacts
        assert order["zone_code"] in zones
        assert order["assigned_tech_code"] in techs | {""}
        assert order["status"] in ("Unassigned", "Scheduled", "En Route", "In Progress", "Completed", "Cancelled")
    for name in ("work_order_lines", "dispatch_board", "service_notes", "invoices"):
        assert {r["wo_number"] for r in rows[name]} <= set(orders), name
    assert {r["tech_code"] for r in rows["dispatch_board"]} <= techs
    sums = Counter()
    for line in rows["work_order_lines"]:
        sums[line["wo_number"]] += float(line["line_total"])
    for number, order in orders.items():  # clean totals equal the sum of their lines
        assert abs(sums[number] - float(order["total_ex_tax"])) < 0.005, number
    seqs = Counter((r["date"], r["tech_code"], r["route_seq"]) for r in rows["dispatch_board"])
    assert max(seqs.values()) == 1, "route sequences repeat in the clean export"


def test_generation_streams_in_bounded_memory(tmp_path):
    """200k records must not need more memory than 20k: rows are streamed, never held."""
    code = (
        "import resource, sys, time\n"
        "from crmmigrator_gui.engine.demo.qdispatch import generate_export\n"
        "t = time.monotonic()\n"
        "e = generate_export(sys.argv[1], records=int(sys.argv[2]), seed=2, variant='clean')\n"
        # VmHWM: this process's own peak (ru_maxrss would also carry the pytest parent's peak across fork+exec)
        "from pathlib import Path\n"
        "hwm = [l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:')]\n"
        "peak = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(sum(e.counts.values()), peak, time.monotonic() - t)\n"
    )

    def run(records: int) -> tuple[int, int, float]:
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / str(records)), str(records)],
            capture_output=True, text=True, check=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        total, rss, seconds = out.stdout.split()
        return int(total), int(rss), float(seconds)

    small_total, small_rss, _ = run(20_000)
    big_total, big_rss, seconds = run(200_000)
    assert big_total > 180_000
    assert small_total > 18_000
    assert big_rss - small_rss < 20_000, (small_rss, big_rss)  # KiB: no growth with the record count
    assert seconds < 120  # generous; measured ~3 s (bench figures belong in bench/)


# --------------------------------------------------------------------------------------------- dirty manifest

# §6 of the source-platform reference → the defect types that stand for it in a Q Dispatch CSV export.
SECTION_6 = {
    "encodings": {"utf8_bom", "cp1252_encoding", "mojibake"},
    "delimiters_and_quoting": {"multiline_cell", "embedded_quotes_commas", "trailing_empty_column", "ragged_row",
                               "lf_line_endings"},
    "excel_damage": {"leading_zero_lost", "excel_text_formula", "phone_as_number", "scientific_notation",
                     "excel_serial_date"},
    "dates": {"mixed_date_format", "placeholder_date", "unparseable_date"},
    "phones": {"phone_format_variant", "multiple_values_in_cell"},
    "names": {"name_case_whitespace", "test_record"},
    "duplicates": {"duplicate_row_exact", "duplicate_customer_variant"},
    "addresses": {"state_spelling", "country_spelling", "po_box_site", "latlng_swapped", "latlng_zero"},
    "money": {"money_format", "money_negative_format", "money_unparseable", "totals_mismatch"},
    "enums": {"enum_drift_status", "enum_drift_line_type", "enum_drift_invoice_status", "enum_drift_priority"},
    "rich_text": {"html_entities", "rtf_leak", "emoji_smart_quotes", "long_note_excel_limit"},
    "referential_gaps": {"orphan_work_order", "orphan_contact", "orphan_line", "orphan_dispatch", "orphan_note",
                         "orphan_invoice", "deleted_technician", "fk_holds_name"},
    "q_dispatch_specific": {"enum_drift_status", "window_as_text", "route_seq_conflict", "latlng_swapped",
                            "latlng_zero", "rtf_leak"},
}  # fmt: skip


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirty")
    return folder, generate_export(folder, records=300, seed=7, variant="dirty")


def test_manifest_lists_every_defect_type_with_file_row_column(dirty):
    folder, export = dirty
    assert export.manifest == folder / "_fixture" / "manifest.json"
    manifest = json.loads(export.manifest.read_text(encoding="utf-8"))
    assert manifest["defects"] == export.defects
    seen = {e["defect"] for e in export.defects}
    assert seen == set(DEFECTS), set(DEFECTS) - seen
    for group, defects in SECTION_6.items():
        assert defects <= seen, group
    files = {p.name for p in export.files}
    for entry in export.defects:
        assert {"file", "row", "column", "defect", "effect", "object", "source_id"} <= set(entry)
        assert entry["file"] in files
        assert entry["effect"] == DEFECTS[entry["defect"]][3]
        if entry["row"]:
            assert entry["source_id"]
            assert entry["column"] is not None
    assert manifest["counts"] == dict(Counter(e["defect"] for e in export.defects))


def test_manifest_rows_point_at_the_records_as_the_reader_sees_them(dirty):
    _folder, export = dirty
    playbook = load_playbook("qdispatch", "dynamics365")
    by_file: dict[str, dict[int, str]] = {}
    for path in export.files:
        (table,) = open_tables(path)
        obj = recognise_object(playbook, table)[0]
        assert obj.name == path.stem
        roles = header_roles(obj, table.columns)
        idx = [table.columns.index(roles[r][0]) for r in obj.id_roles]
        by_file[path.name] = {
            row: "|".join((values[i] or "").strip() for i in idx) for row, values in table.iter_rows()
        }
    for entry in export.defects:
        if entry["row"]:
            assert by_file[entry["file"]].get(entry["row"]) == entry["source_id"], entry


def test_dirty_files_really_carry_the_file_level_traps(dirty):
    folder, _export = dirty
    assert (folder / "customers.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    raw = (folder / "contacts.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    notes = (folder / "service_notes.csv").read_bytes()
    assert notes.split(b"\n", 1)[0].endswith(b"body_html"), "LF line endings (CRLF stays only inside cells)"
    header = (folder / "work_order_lines.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith(",")
    text = (folder / "work_orders.csv").read_text(encoding="utf-8")
    assert re.search(r'"Unit \d+\n', text), "no multi-line quoted cell"
    assert '="WO-' in (folder / "invoices.csv").read_text(encoding="utf-8")


def test_unseen_variant_shapes(tmp_path):
    export = generate_export(tmp_path, records=300, seed=5, variant="unseen")
    names = {p.name for p in export.files}
    assert {"Jobs Export.csv", "Staff.txt", "Customer List.csv"} <= names
    assert (tmp_path / "Staff.txt").read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    jobs = (tmp_path / "Jobs Export.csv").read_bytes()
    jobs.decode("cp1252")
    assert b";" in jobs.splitlines()[2]
    assert (tmp_path / "Customer List.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    invoices = (tmp_path / "Invoice Register.csv").read_text(encoding="utf-8")
    assert re.search(r",\d{5},", invoices)
    assert re.search(r"\d{2}/\d{2}/\d{4}", invoices)
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}", invoices), "no month-name dates"


@pytest.mark.parametrize("variant", ["clean", "dirty", "unseen"])
def test_every_file_is_recognised_by_its_headers_and_fully_mapped(tmp_path, variant):
    export = generate_export(tmp_path, records=300, seed=2, variant=variant)
    playbook = load_playbook("qdispatch", "dynamics365")
    found = {}
    for path in expand_paths([tmp_path]):
        (table,) = open_tables(path)
        obj, _score = recognise_object(playbook, table)
        found[obj.name] = path.name
        roles = header_roles(obj, table.columns)
        mapped = {column for column, _score in roles.values()}
        named = [c for c in table.columns if not re.fullmatch(r"Column \d+", c)]
        assert set(named) <= mapped, (path.name, set(named) - mapped)
        assert all(r in roles for r in obj.id_roles)
    assert set(found) == set(OBJECTS), found
    assert sorted(found.values()) == sorted(p.name for p in export.files)


# --------------------------------------------------------------------------------------------- playbook


def _seed_table() -> list[tuple[str, str]]:
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Q Dispatch | Microsoft Dynamics 365 Sales |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append((cells[0], cells[1]))
    return rows


@pytest.mark.parametrize("edition", ["enterprise", "professional"])
def test_playbook_has_every_seed_row_with_the_seed_names(edition):
    playbook = load_playbook("qdispatch", "dynamics365", edition)
    names = [row["row"] for row in playbook.seed_rows]
    assert sorted(names) == sorted(SEED_ROWS)
    if SEED.exists():
        assert sorted(names) == sorted(name for name, _dest in _seed_table())
    objects = {o.name for o in playbook.objects}
    for row in playbook.seed_rows:
        assert row["handling"]
        assert row["destination"]
        assert row["cardinality"]
        if row.get("rebuild"):
            assert row["objects"] == []
        else:
            assert row["objects"], row["row"]
            assert set(row["objects"]) <= objects, row["row"]
    assert {o for row in playbook.seed_rows for o in row["objects"]} == objects
    source_id = next(r for r in playbook.seed_rows if r["row"] == "Q Dispatch Source System ID")
    assert set(source_id["objects"]) == objects
    assert playbook.key_column == "new_sourcesystemid"
    assert all(item.get("rebuild_path") for item in playbook.raw["rebuild"])


def test_playbook_uses_dataverse_names_and_consistent_schema():
    playbook = load_playbook("qdispatch", "dynamics365")
    data = json.dumps({"rows": playbook.raw["seed_rows"], "objects": playbook.raw["objects"],
                       "schema": playbook.raw["schema"]})  # fmt: skip
    assert "__c" not in data
    tables = {t["name"] for t in playbook.schema["tables"]}
    assert all(t.startswith("new_") for t in tables)
    columns = {(c["entity"], c["name"]) for c in playbook.schema["columns"]}
    relationships = {(r["entity"], r["column"]) for r in playbook.schema["relationships"]}
    catalog = json.loads((REPO / "crmmigrator_gui" / "sandbox" / "dataverse" / "catalog.json").read_text())
    standard = {name: {a["LogicalName"] for a in spec["Attributes"]} for name, spec in catalog["entities"].items()}
    for obj in playbook.objects:
        for role in obj.roles.values():
            for target in role.targets:
                entity, column = playbook.entity_of_target(obj, target)
                system = entity in tables and column in (
                    "new_name",
                    "overriddencreatedon",
                )  # every custom table has them
                known = (entity, column) in columns or column in standard.get(entity, set()) or system
                assert known, f"{obj.name}.{role.name} → {entity}.{column} is neither standard nor in the schema"
                assert column.startswith("new_") or entity in standard or system
        for part in obj.parts:
            assert part.entity in tables or part.entity in standard
            for lookup in part.lookups:
                target = playbook.part(lookup["to"])
                custom = (part.entity, lookup["column"]) in relationships
                assert custom or lookup["column"] in standard.get(part.entity, set()), lookup
                assert target.entity in tables or target.entity in standard
    for rel in playbook.schema["relationships"]:  # the emulator (like Dataverse) caps schema names
        assert len(f"new_{rel['target']}_{rel['entity']}_{rel['column']}") <= 50, rel
        assert rel["schema_name"].lower() == rel["column"]


def test_status_value_map_folds_drift_onto_the_six_statuses():
    from crmmigrator_gui.engine.mapping.maps import _suggest

    playbook = load_playbook("qdispatch", "dynamics365")
    suggest = playbook.obj("work_orders").roles["status"].value_map["suggest"]
    assert set(suggest.values()) == {"Unassigned", "Scheduled", "En Route", "In Progress", "Completed", "Cancelled"}
    for drifted, wanted in {
        "Enroute": "En Route", "On the way": "En Route", "en route": "En Route", "InProgress": "In Progress",
        "in progress": "In Progress", "Canceled": "Cancelled", "CANCELLED": "Cancelled", "COMPLETED": "Completed",
        "Complete": "Completed", "Booked": "Scheduled", "scheduled": "Scheduled",
    }.items():  # fmt: skip
        assert _suggest(drifted, suggest, custom=False) == wanted, drifted


def test_checked_in_samples_are_current_and_small(tmp_path):
    root = REPO / "resources" / "samples" / "qdispatch"
    for export in qdispatch.write_samples(tmp_path):
        variant = export.files[0].parent.name
        for path in [*export.files, *([export.manifest] if export.manifest else [])]:
            rel = path.relative_to(tmp_path)
            assert (root / rel).read_bytes() == path.read_bytes(), f"{rel} is stale; regenerate the samples"
        size = sum(p.stat().st_size for p in (root / variant).rglob("*") if p.is_file())
        assert size < 200_000, (variant, size)
