"""The map subcommands as a user scripts them: export for review, import (diff first, apply on request),
value maps, transforms with preview, the custom-field manifest as XLSX, and pre-flight's exit code."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from crmmigrator_gui.engine.mapping.workbook import FIELD, NOTES

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "samples" / "octopuspro" / "standard"


@pytest.fixture
def project(cli, tmp_path) -> str:
    path = str(tmp_path / "acme.cmproj")
    for args in (
        ("new", path, "--source", "octopuspro", "--target", "dynamics365"),
        ("import", path, str(SAMPLE)),
        ("automap", path, "--json"),
    ):
        ran = cli(*args)
        assert ran.code == 0, ran.stderr
    return path


def _customer_note(path: Path, field: str, note: str) -> None:
    """Edit the workbook with openpyxl (not our writer): a note on one field row of the customers sheet."""
    book = openpyxl.load_workbook(path)
    sheet = next(ws for ws in book.worksheets if ws.title.lower().startswith("customers"))
    header = [c.value for c in sheet[1]]
    field_col, notes_col = header.index(FIELD) + 1, header.index(NOTES) + 1
    for row in range(2, sheet.max_row + 1):
        if sheet.cell(row, field_col).value == field:
            sheet.cell(row, notes_col).value = note
            break
    else:
        raise AssertionError(f"no row for {field}")
    book.save(path)


def test_review_round_trip_shows_the_diff_and_applies_only_with_apply(cli, project, tmp_path) -> None:
    review = tmp_path / "review.xlsx"
    ran = cli("map", project, "export", str(review), "--json")
    assert ran.code == 0, ran.stderr
    assert review.exists()
    assert ran.json["rows"] > 0

    ran = cli("map", project, "import", str(review), "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json["changes"] == []
    assert ran.json["applied"] == 0

    shown = cli("map", project, "show", "--json").json
    field = next(r["source_field"] for r in shown["fields"] if r["source_object"] == "customers")
    _customer_note(review, field, "-- ask the office manager +1 555 0100")

    ran = cli("map", project, "import", str(review), "--json")
    assert ran.code == 0, ran.stderr
    assert [(c["kind"], c["source_field"], c["after"]) for c in ran.json["changes"]] == [
        ("note", field, "-- ask the office manager +1 555 0100")
    ]
    assert ran.json["applied"] == 0
    assert cli("map", project, "show", "--json").json == shown  # shown, not applied

    ran = cli("map", project, "import", str(review), "--apply", "--by", "consultant", "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json["applied"] == 1
    after = cli("map", project, "show", "--json").json
    noted = [(r["source_field"], r["notes"]) for r in after["fields"] if r["notes"]]
    assert noted == [(field, "-- ask the office manager +1 555 0100")]


def test_import_of_an_invalid_edit_names_sheet_row_and_column_and_changes_nothing(cli, project, tmp_path) -> None:
    review = tmp_path / "review.xlsx"
    assert cli("map", project, "export", str(review)).code == 0
    book = openpyxl.load_workbook(review)
    sheet = next(ws for ws in book.worksheets if ws.title.lower().startswith("customers"))
    header = [c.value for c in sheet[1]]
    dest_col = header.index("Destination (table.column)") + 1
    for row in range(2, sheet.max_row + 1):
        if sheet.cell(row, dest_col).protection.locked is False and sheet.cell(row, dest_col).value:
            sheet.cell(row, dest_col).value = "account.no_such_column"
            break
    book.save(review)
    before = cli("map", project, "show", "--json").json
    ran = cli("map", project, "import", str(review), "--apply")
    assert ran.code == 1
    assert "review.xlsx" in ran.stderr
    assert "row" in ran.stderr
    assert cli("map", project, "show", "--json").json == before


def test_values_value_and_transform_preview(cli, project) -> None:
    values = cli("map", project, "values", "--json")
    assert values.code == 0, values.stderr
    rows = values.json["values"]
    assert rows, "the OctopusPro sample has choice columns"
    # A status reason on a standard table: its options exist at the destination, so a wrong label is refused.
    row = next(r for r in rows if any(o["value"] is not None for o in r["options"]))
    option = next(o["label"] for o in row["options"] if o["label"])
    ran = cli(
        "map", project, "value", f"{row['source_object']}.{row['source_field']}", row["source_value"], option,
        "--target", f"{row['target_entity']}.{row['target_field']}", "--by", "consultant", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    again = cli("map", project, "values", "--object", row["source_object"], "--field", row["source_field"], "--json")
    updated = next(r for r in again.json["values"] if r["id"] == row["id"])
    assert (updated["target_label"], updated["status"], updated["confirmed_by"]) == (option, "confirmed", "consultant")

    wrong = cli("map", project, "value", f"{row['source_object']}.{row['source_field']}", row["source_value"],
                "Not An Option At All", "--target", f"{row['target_entity']}.{row['target_field']}")  # fmt: skip
    assert wrong.code == 2, wrong.stderr

    shown = cli("map", project, "show", "--json").json
    phone = next(r for r in shown["fields"] if r["target_entity"] and r["transform"].get("type") == "phone")
    spec = '{"type": "phone", "region": "AU"}'
    source = f"{phone['source_object']}.{phone['source_field']}"
    target = f"{phone['target_entity']}.{phone['target_field']}"
    ran = cli("map", project, "transform", source, spec, "--target", target, "--preview", "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json["applied"] is False
    assert ran.json["preview"]
    assert any(str(p["value"] or "").startswith("+61") for p in ran.json["preview"]), ran.json["preview"]
    assert cli("map", project, "show", "--json").json == shown  # preview changes nothing
    bad = cli("map", project, "transform", source, '{"type": "no-such-type"}', "--target", target)
    assert bad.code == 2


def test_manifest_xlsx_and_preflight_exit_code(cli, project, tmp_path) -> None:
    out = tmp_path / "manifest.xlsx"
    ran = cli("schema", project, "manifest", "--out", str(out), "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json["missing"] > 0
    sheet = openpyxl.load_workbook(out).worksheets[0]
    assert sheet.max_row - 1 >= ran.json["missing"]

    blocked = cli("preflight", project, "--json")  # the map is not confirmed yet
    assert blocked.code == 3
    assert blocked.json["blocking"] >= 1
    assert any(f["code"] == "MAP_UNCONFIRMED" for f in blocked.json["findings"])
    for finding in blocked.json["findings"]:
        assert {"severity", "code", "object", "field", "source_id", "message"} <= set(finding)
