"""Pre-flight on the dirty demo exports: every injected defect that stops a record, empties a lookup or makes a
duplicate is reported with its object, source id and column; the suspicious values a consultant wants to see
are reported by their own detectors; the clean exports raise no false alarms; and the records pre-flight says
will not load are exactly the ones the real load then fails or skips, on both destinations.

The manifests are read only here, by the tests: pre-flight itself looks at the data.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from crmmigrator_gui.engine.demo import generic, octopuspro, qdispatch
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.plan.preflight import preflight
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import embedded_sandbox_path
from tests.engine.conftest import sign_off_for_tests

GENERATORS = {"qdispatch": qdispatch, "octopuspro": octopuspro, "generic": generic}

# Effects pre-flight must report, by the record's own source id: it fails, is skipped, loses a lookup.
MUST_REPORT = {"fails", "skipped", "lookup_left_empty"}
# Effects that are deliberately not pre-flight's business: the reader or the value map already dealt with the
# defect before anything could go wrong (decoded, parsed, normalised …), or the record loads as intended.
NOT_PREFLIGHT = {
    "decoded",  # encodings, BOMs, delimiters, line endings: the reader's job
    "ignored",  # trailing empty columns, title rows
    "dropped_at_import",  # exact duplicate rows: the importer keeps one
    "dropped_at_ingest",  # plaintext passwords: never staged
    "excluded_as_total",  # grand-total rows: the reader keeps them as checksums
    "parsed",  # Excel serials, mixed date formats, money formats: the transforms read them
    "unwrapped",  # ="…" text formulas
    "padded",  # ragged rows
    "kept",  # multi-line cells, quotes and commas, emoji: correct as they are
    "kept_as_text",
    "kept_as_html",
    "whitespace_trimmed",
    "normalised_by_value_map",  # drifted spellings land on the confirmed value map
    "loaded_as_empty",  # N/A-style placeholders are empty in typed columns
    "first_kept",  # two e-mails in one cell: MULTIPLE_VALUES reports some, not asserted per entry
    "owner_resolved_by_name",
    "owner_from_first_matched",
    "name_from_person",
}
# "loaded_as_given" defects a real detector must catch (defect -> the code that reports it).
DETECTED = {
    "duplicate_customer_variant": "DUPLICATE",
    "test_record": "TEST_RECORD",
    "totals_mismatch": "TOTALS_MISMATCH",
    "latlng_zero": "COORDINATES_SUSPECT",
    "latlng_swapped": "COORDINATES_SUSPECT",
    "leading_zero_lost": "LEADING_ZERO_LOST",
    "scientific_notation": "SCIENTIFIC_NOTATION",
    "mojibake": "MOJIBAKE",
    "po_box_site": "PO_BOX_SITE",
    "placeholder_date": "PLACEHOLDER_DATE",
    "state_spelling": "INCONSISTENT_SPELLING",
    "country_spelling": "INCONSISTENT_SPELLING",
    "couple_name": "NAME_FORMAT",
    "title_in_first_name": "NAME_FORMAT",
    "html_in_notes": "MARKUP_IN_TEXT",
    "rtf_leak": "MARKUP_IN_TEXT",
    "long_note_excel_limit": "EXCEL_CELL_LIMIT",
}


def _project(tmp_path: Path, source: str, variant: str, target: str = "dynamics365") -> tuple[Project, Any]:
    export = GENERATORS[source].generate_export(tmp_path / f"{source}-{variant}", records=400, seed=7, variant=variant)
    project = Project.create(tmp_path / f"{source}-{variant}-{target}.cmproj", source=source, target=target)
    if target == "dynamics365":
        from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

        sandbox = DataverseSandbox(embedded_sandbox_path(project))
        for name, email in export.users:
            sandbox.add_user(name, email)
        sandbox.close()
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    return project, export


def _by_record(result: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for finding in result["findings"]:
        out[(finding["object"], finding["source_id"])].append(finding)
        for sid in (finding.get("detail") or {}).get("source_ids", []):  # a column-wide finding names its records
            out[(finding["object"], sid)].append(finding)
    return out


@pytest.mark.parametrize("source", sorted(GENERATORS))
def test_every_blocking_and_suspicious_defect_is_reported_with_its_source_id(tmp_path, source):
    project, export = _project(tmp_path, source, "dirty")
    result = preflight(project)
    json.dumps(result)  # the CLI prints it as one JSON document
    found = _by_record(result)
    staged = {obj: dict(project.iter_staged(obj)) for obj in project.source_object_names()}
    effects = {e["effect"] for e in export.defects}
    assert effects <= MUST_REPORT | NOT_PREFLIGHT | {"loaded_as_given"}, effects - MUST_REPORT - NOT_PREFLIGHT
    mapped = {
        (r["source_object"], r["source_field"])
        for r in project.query("SELECT source_object, source_field FROM field_maps WHERE status != 'unmapped'")
    }
    checked, unmapped = 0, []
    for entry in export.defects:
        key = (entry["object"], entry["source_id"])
        hits = found.get(key, [])
        if entry["column"] and (entry["object"], entry["column"]) not in mapped:
            unmapped.append(entry)  # the map leaves the column out: the load never reads the bad value
            assert not any(f["field"] == entry["column"] and f["severity"] == "blocking" for f in hits), entry
            continue
        if entry["effect"] in MUST_REPORT:
            assert hits, entry
            if entry["column"]:
                assert any(f["field"] == entry["column"] for f in hits), (entry, hits)
            checked += 1
        elif entry["defect"] in DETECTED and entry["effect"] == "loaded_as_given":
            if entry["defect"] in ("state_spelling", "country_spelling"):
                value = (staged[entry["object"]].get(entry["source_id"]) or {}).get(entry["column"])
                if not value:
                    continue  # a blank country is missing, not misspelt
            code = DETECTED[entry["defect"]]
            assert any(f["code"] == code for f in hits), (entry, hits)
            checked += 1
    assert checked >= 25
    assert len([e for e in unmapped if e["effect"] in MUST_REPORT]) <= 2, unmapped  # automap keeps the columns
    # a duplicate names the record it duplicates
    for entry in export.defects:
        if entry["defect"] == "duplicate_customer_variant":
            original = entry["detail"].rsplit(" ", 1)[-1]
            dupes = [f for f in found[(entry["object"], entry["source_id"])] if f["code"] == "DUPLICATE"]
            assert original in dupes[0]["detail"]["group"], dupes
    # failing records are blocking, skipped ones are warnings, and the counts add up
    failing = {(e["object"], e["source_id"]) for e in export.defects if e["effect"] == "fails" and e not in unmapped}
    for key in failing:
        assert any(f["severity"] == "blocking" or f["code"] == "TOO_LONG" for f in found[key]), found[key]
    assert result["blocking"] == sum(f["severity"] == "blocking" for f in result["findings"]) > 0
    assert result["warnings"] == sum(f["severity"] == "warning" for f in result["findings"])
    for finding in result["findings"]:
        assert finding["blocking"] == (finding["severity"] == "blocking")
    # technicians with no user are matched by e-mail and named with the fallback owner
    users = {email.lower() for _name, email in export.users}
    unmatched = [f for f in result["findings"] if f["code"] == "UNMATCHED_OWNER"]
    assert unmatched
    assert all(f["detail"]["email"] not in users for f in unmatched if "email" in f["detail"])
    assert all("migration user" in f["message"] for f in unmatched)
    project.close()


@pytest.mark.parametrize("source", sorted(GENERATORS))
def test_clean_exports_raise_no_false_alarms(tmp_path, source):
    project, _export = _project(tmp_path, source, "clean")
    result = preflight(project)
    codes = {f["code"] for f in result["findings"]}
    assert not codes & {"BAD_VALUE", "ORPHAN", "PARENT_WILL_FAIL", "TOO_LONG", "REQUIRED_MISSING", "BAD_EMAIL"}
    assert not codes & {"TOTALS_MISMATCH", "SCIENTIFIC_NOTATION", "MOJIBAKE", "COORDINATES_SUSPECT"}
    assert not codes & {"LEADING_ZERO_LOST", "PO_BOX_SITE", "PLACEHOLDER_DATE", "INCONSISTENT_SPELLING"}
    assert result["records"]["would_fail"] == 0
    assert result["records"]["would_skip"] == 0
    assert result["blocking"] == 0, [f for f in result["findings"] if f["severity"] == "blocking"]
    project.close()


@pytest.mark.parametrize(
    ("source", "target"), [("qdispatch", "dynamics365"), ("octopuspro", "dynamics365"), ("generic", "salesforce")]
)
def test_the_load_fails_and_skips_exactly_the_records_preflight_named(tmp_path, source, target):
    from crmmigrator_gui.engine.run.load import load

    project, _export = _project(tmp_path, source, "dirty", target)
    result = preflight(project)
    predicted = {(r["object"], r["source_id"]): r["outcome"] for r in result["records"]["not_loading"]}
    assert predicted
    assert result["records"]["not_loading_count"] == len(predicted)
    sign_off_for_tests(project)
    loaded = load(project).to_json()
    rank = {"failed": 2, "skipped": 1}
    actual: dict[tuple[str, str], str] = {}
    for failure in loaded["failures"]:
        key = (failure["source_object"], failure["source_id"])
        if rank[failure["action"]] > rank.get(actual.get(key, ""), 0):
            actual[key] = failure["action"]
    assert actual == predicted
    project.close()
