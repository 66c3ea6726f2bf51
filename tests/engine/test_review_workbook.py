"""The offline review workbook: export, edit in another program, read back as a diff, apply on confirmation.

The "other program" is openpyxl driven like a user (load, edit cells, sort rows, save): a different writer
than the exporter's code path, read back with python-calamine. LibreOffice is used too when installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.mapping.maps import accept, retarget_row, run_automap
from crmmigrator_gui.engine.mapping.signoff import map_fingerprint
from crmmigrator_gui.engine.mapping.workbook import DEST, DEST_VALUE, NOTES, apply_review, export_review, read_review
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths

INJECTIONS = ('=HYPERLINK("http://evil.example","click")', "+1", "-2", "@SUM(A1:A9)", "\tTAB", "＝1+1")


def _header(ws) -> dict[str, int]:
    return {cell.value: cell.column for cell in ws[1]}


def _find(ws, **wanted) -> int:
    """The Excel row whose cells (by heading) hold the wanted values."""
    head = _header(ws)
    for row in range(2, ws.max_row + 1):
        if all(ws.cell(row, head[name]).value == value for name, value in wanted.items()):
            return row
    raise AssertionError(f"no row with {wanted}")


def _set(ws, row: int, heading: str, value) -> None:
    ws.cell(row, _header(ws)[heading]).value = value


def _reverse_rows(ws) -> None:
    """Sort the data rows the way a spreadsheet does: whole rows move, hidden columns included."""
    last, letter = ws.max_row, get_column_letter(ws.max_column)
    ws.move_range(f"A2:{letter}{last}", rows=last)
    for index, source in enumerate(range(2 * last, last + 1, -1)):
        ws.move_range(f"A{source}:{letter}{source}", rows=(2 + index) - source)


def _audit_count(project: Project) -> int:
    return int(project.scalar("SELECT COUNT(*) FROM audit"))


def test_unedited_round_trip_has_zero_changes(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    result = export_review(mapped_project, path)
    assert result["sheets"] >= 8
    assert result["rows"] == result["fields"] + result["values"]
    assert mapped_project.query("SELECT action FROM audit ORDER BY id DESC LIMIT 1")[0]["action"] == "map export"
    before = map_fingerprint(mapped_project)
    diff = read_review(mapped_project, path)
    assert diff.changes == []
    assert diff.errors == []
    # Saved again by another writer, with an empty string typed into an empty notes cell: still nothing.
    wb = load_workbook(path)
    _set(wb["customers"], 2, NOTES, "")
    wb.save(path)
    assert read_review(mapped_project, path).to_json()["changes"] == []
    assert apply_review(mapped_project, diff, actor="consultant") == 0
    assert map_fingerprint(mapped_project) == before


def test_workbook_layout_dropdowns_protection_and_hidden_keys(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    wb = load_workbook(path)
    assert wb.sheetnames[0] == "Read me"
    assert wb["_lists"].sheet_state == "hidden"
    assert wb["_review"].sheet_state == "hidden"
    ws = wb["customers"]
    head = _header(ws)
    assert ws.column_dimensions[get_column_letter(head["_key"])].hidden
    assert ws.protection.sheet
    assert not ws.protection.sort
    assert not ws.protection.autoFilter
    mobile = _find(ws, **{"Source field": "Mobile"})
    assert not ws.cell(mobile, head[DEST]).protection.locked
    assert not ws.cell(mobile, head[NOTES]).protection.locked
    assert ws.cell(mobile, head["Why"]).protection.locked
    assert ws.cell(mobile, head["_key"]).protection.locked
    key_row = _find(ws, **{DEST: "account.new_sourcesystemid"})
    assert ws.cell(key_row, head[DEST]).protection.locked  # keys and lookups are not the customer's call
    for row in range(2, ws.max_row + 1):  # green ≥ 0.9, amber ≥ 0.6, red below
        confidence = ws.cell(row, head["Confidence"]).value
        colour = "C6EFCE" if confidence >= 0.9 else "FFEB9C" if confidence >= 0.6 else "FFC7CE"
        assert ws.cell(row, head["Confidence"]).fill.fgColor.rgb.endswith(colour)
    # The destination list is long: it lives on the hidden lists sheet, not inline (255-character limit).
    (dv,) = ws.data_validations.dataValidation
    assert dv.formula1.startswith("'_lists'!")
    assert f"D{mobile}" in dv.sqref
    values = wb["invoices values"]
    (dv,) = values.data_validations.dataValidation
    options = dv.formula1.strip('"').split(",") if dv.formula1.startswith('"') else None
    assert options
    assert "Partial" in options
    assert dv.errorStyle == "stop"


def test_edits_from_another_writer_are_exactly_the_diff_and_apply_on_confirm(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    wb = load_workbook(path)
    fields, values = wb["customers"], wb["invoices values"]
    _set(fields, _find(fields, **{"Source field": "Mobile"}), DEST, "contact.telephone2")
    _set(fields, _find(fields, **{"Source field": "Postcode"}), NOTES, "Some postcodes have 3 digits (NT)")
    _set(values, _find(values, **{"Source value": "Unpaid"}), DEST_VALUE, "partial")  # case is forgiven
    _set(values, _find(values, **{"Source value": "Void"}), NOTES, 42)  # a number typed in a notes cell
    _reverse_rows(fields)
    _reverse_rows(values)
    wb.save(path)
    audits = _audit_count(mapped_project)
    fingerprint = map_fingerprint(mapped_project)

    diff = read_review(mapped_project, path)
    assert diff.errors == []
    assert _audit_count(mapped_project) == audits  # reading writes nothing
    got = {(c.kind, c.sheet, c.source_field, c.source_value, c.column, c.before, c.after) for c in diff.changes}
    assert got == {
        ("field", "customers", "Mobile", None, DEST, "contact.mobilephone", "contact.telephone2"),
        ("note", "customers", "Postcode", None, NOTES, None, "Some postcodes have 3 digits (NT)"),
        ("value", "invoices values", "Status", "Unpaid", DEST_VALUE, "Billed", "Partial"),
        ("note", "invoices values", "Status", "Void", NOTES, None, "42"),
    }
    wb = load_workbook(path)  # rows are named where they are now, after the sort
    mobile = next(c for c in diff.changes if c.source_field == "Mobile")
    assert wb["customers"].cell(mobile.row, 1).value == "Mobile"
    assert json.loads(json.dumps(diff.to_json()))["changes"][0]["sheet"]

    assert apply_review(mapped_project, diff, actor="consultant") == 4
    row = mapped_project.query("SELECT * FROM field_maps WHERE source_object = 'customers' AND source_field = 'Mobile'")
    assert (row[0]["target_entity"], row[0]["target_field"], row[0]["status"]) == ("contact", "telephone2", "confirmed")
    assert row[0]["confirmed_by"] == "consultant"
    assert row[0]["customer_change"] == "contact.mobilephone → contact.telephone2 (from workbook review.xlsx)"
    note = mapped_project.scalar("SELECT notes FROM field_maps WHERE source_field = 'Postcode'")
    assert note == "Some postcodes have 3 digits (NT)"
    value = mapped_project.query(
        "SELECT * FROM value_maps WHERE source_object = 'invoices' AND source_value = 'Unpaid'"
    )
    assert (value[0]["target_label"], value[0]["target_value"]) == ("Partial", "100002")  # option integer
    assert "Billed → Partial" in value[0]["customer_change"]
    audit = mapped_project.query("SELECT actor, action, detail FROM audit ORDER BY id DESC LIMIT 1")[0]
    assert (audit["actor"], audit["action"]) == ("consultant", "map import")
    assert len(json.loads(audit["detail"])["changes"]) == 4
    assert map_fingerprint(mapped_project) != fingerprint
    untouched = mapped_project.scalar("SELECT COUNT(*) FROM field_maps WHERE customer_change IS NOT NULL")
    assert untouched == 1  # nothing else changed
    assert read_review(mapped_project, path).changes == []  # the workbook now matches the project


def test_notes_alone_leave_the_signoff_fingerprint_alone(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    wb = load_workbook(path)
    _set(wb["bookings"], _find(wb["bookings"], **{"Source field": "Status"}), NOTES, "Ask Jo about 'On hold'")
    _set(wb["bookings values"], 2, NOTES, "rare")
    wb.save(path)
    fingerprint = map_fingerprint(mapped_project)
    diff = read_review(mapped_project, path)
    assert [c.kind for c in diff.changes] == ["note", "note"]
    apply_review(mapped_project, diff, actor="consultant")
    assert map_fingerprint(mapped_project) == fingerprint
    assert mapped_project.scalar("SELECT COUNT(*) FROM value_maps WHERE notes = 'rare'") == 1


def test_formula_injection_stays_text(mapped_project, tmp_path):
    conn = mapped_project.db.conn
    for text in INJECTIONS:
        conn.execute(
            "INSERT INTO value_maps (source_object, source_field, target_entity, target_field, source_value, count, "
            "target_label, status, notes) VALUES ('bookings', 'Status', 'new_job', 'new_jobstatus', ?, 1, "
            "'Pending', 'confirmed', ?)",
            (text, text),
        )
    conn.execute("UPDATE field_maps SET notes = ? WHERE source_field = 'Mobile'", (INJECTIONS[0],))
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    with zipfile.ZipFile(path) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert sheets
        assert not any(b"<f>" in archive.read(n) or b"<f " in archive.read(n) for n in sheets)
    wb = load_workbook(path)
    ws = wb["bookings values"]
    head = _header(ws)
    for text in INJECTIONS:
        row = _find(ws, **{"Source value": text})
        for column in ("Source value", NOTES):
            cell = ws.cell(row, head[column])
            assert (cell.value, cell.data_type, cell.quotePrefix) == (text, "s", True)
    assert read_review(mapped_project, path).changes == []
    # The customer types a formula-looking note; it comes back as text, and is written back as text.
    _set(ws, _find(ws, **{"Source value": "+1"}), NOTES, "@cmd|' /C calc'!A0")
    ws.cell(_find(ws, **{"Source value": "+1"}), _header(ws)[NOTES]).data_type = "s"
    wb.save(path)
    (change,) = read_review(mapped_project, path).changes
    assert (change.source_value, change.after) == ("+1", "@cmd|' /C calc'!A0")
    apply_review(mapped_project, read_review(mapped_project, path))
    export_review(mapped_project, path)
    with zipfile.ZipFile(path) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))


def test_invalid_edits_are_refused_naming_sheet_row_and_column(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    wb = load_workbook(path)
    fields, values = wb["customers"], wb["invoices values"]
    head = _header(fields)
    unknown = _find(fields, **{"Source field": "Mobile"})
    _set(fields, unknown, DEST, "contact.nosuchcolumn")
    key_row = _find(fields, **{DEST: "account.new_sourcesystemid"})
    _set(fields, key_row, DEST, "account.accountnumber")
    tampered = _find(fields, **{"Source field": "Email", DEST: "contact.emailaddress1"})
    fields.cell(tampered, head["_key"]).value = fields.cell(tampered, head["_key"]).value.replace("Email", "Mail")
    renamed_field = _find(fields, **{"Source field": "Postcode"})
    _set(fields, renamed_field, "Source field", "Zip")
    bad_value = _find(values, **{"Source value": "Paid"})
    _set(values, bad_value, DEST_VALUE, "Paid in full")
    fields.cell(fields.max_row + 1, 1).value = "A column I added"
    wb["quotes values"].title = "Quote statuses"
    wb.save(path)
    fingerprint, audits = map_fingerprint(mapped_project), _audit_count(mapped_project)

    diff = read_review(mapped_project, path)
    where = {(e.sheet, e.row, e.column) for e in diff.errors}
    assert ("customers", unknown, DEST) in where
    assert ("customers", key_row, DEST) in where
    assert ("customers", tampered, "_key") in where
    assert ("customers", renamed_field, "Source field") in where
    assert ("invoices values", bad_value, DEST_VALUE) in where
    assert ("quotes values", None, None) in where  # renamed sheet
    assert any(e.sheet == "customers" and e.row == fields.max_row and "added" in e.message for e in diff.errors)
    assert any("deleted" in e.message for e in diff.errors if e.sheet == "customers")  # the tampered row's key
    message = next(e for e in diff.errors if (e.sheet, e.row) == ("invoices values", bad_value)).message
    assert "Partial" in message  # names the options
    with pytest.raises(InputError) as raised:
        apply_review(mapped_project, diff, actor="consultant")
    first = diff.errors[0]
    assert f"sheet {first.sheet!r}" in str(raised.value)
    assert "nothing was applied" in str(raised.value)
    assert (raised.value.row, raised.value.column) == (first.row, first.column)
    assert map_fingerprint(mapped_project) == fingerprint
    assert _audit_count(mapped_project) == audits


def test_deleted_and_duplicated_rows_are_named(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    wb = load_workbook(path)
    ws = wb["services"]
    last = ws.max_row
    for column in range(1, ws.max_column + 1):  # copy row 2 over the last row: one duplicated, one deleted
        ws.cell(last, column).value = ws.cell(2, column).value
    gone = load_workbook(path)["services"].cell(last, 1).value
    wb.save(path)
    errors = read_review(mapped_project, path).errors
    assert any(e.row == last and "twice (also row 2)" in e.message for e in errors)
    assert any(e.row is None and gone in e.message and "deleted" in e.message for e in errors)


def test_conflicts_with_the_app_and_stale_diffs(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    mobile_id = mapped_project.scalar("SELECT id FROM field_maps WHERE source_field = 'Mobile'")
    phone_id = mapped_project.scalar(
        "SELECT id FROM field_maps WHERE source_field = 'Phone' AND target_entity = 'contact'"
    )
    retarget_row(mapped_project, mobile_id, "contact.telephone3", actor="consultant")  # the app moved on
    assert read_review(mapped_project, path).changes == []  # an untouched cell is not a change
    wb = load_workbook(path)
    ws = wb["customers"]
    _set(ws, _find(ws, **{"Source field": "Mobile"}), DEST, "contact.telephone2")
    _set(ws, _find(ws, **{"Source field": "Phone", DEST: "contact.telephone1"}), DEST, "contact.address1_telephone1")
    wb.save(path)
    diff = read_review(mapped_project, path)
    assert [(e.column, "changed in the app too" in e.message) for e in diff.errors] == [(DEST, True)]
    # Without the conflicting row, the phone change is fine, until the project moves under the diff.
    diff.errors.clear()
    diff.changes = [c for c in diff.changes if c.row_id == phone_id]
    retarget_row(mapped_project, phone_id, "contact.telephone2", actor="consultant")
    with pytest.raises(InputError, match="changed in the project after the workbook was read"):
        apply_review(mapped_project, diff)
    assert mapped_project.scalar("SELECT target_field FROM field_maps WHERE id = ?", (phone_id,)) == "telephone2"


def test_workbook_of_another_project_is_refused(mapped_project, tmp_path):
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)
    export = generate_export(tmp_path / "other-export", records=40, seed=9)
    other = Project.create(tmp_path / "other.cmproj", source="octopuspro", target="dynamics365")
    import_paths(other, export.files)
    run_automap(other)
    accept(other, actor="tester")
    export_review(other, tmp_path / "other.xlsx")
    with pytest.raises(InputError, match=r"review\.xlsx: this workbook belongs to another project \(p\.cmproj"):
        read_review(other, path)
    not_ours = tmp_path / "plain.xlsx"
    shutil.copy(path, not_ours)
    wb = load_workbook(not_ours)
    del wb["_review"]
    wb.save(not_ours)
    with pytest.raises(InputError, match="not a CRM Migrator review workbook"):
        read_review(mapped_project, not_ours)
    other.close()


def test_salesforce_project_round_trip_offers_describe_fields(tmp_path):
    export = generate_export(tmp_path / "export", records=60, seed=4)
    project = Project.create(tmp_path / "sf.cmproj", source="octopuspro", target="salesforce")
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    path = tmp_path / "review.xlsx"
    export_review(project, path)
    lists = project.meta("review_lists")
    assert "Contact.MobilePhone" in lists["targets"]["customers"]  # from describe
    assert "read from the destination" in lists["metadata"]
    assert read_review(project, path).changes == []
    project.close()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed here")
def test_libreoffice_round_trip_is_lossless(mapped_project, tmp_path):
    """Saved again by LibreOffice: untouched cells stay unchanged, edits and formula-like text survive as text."""
    mapped_project.db.conn.execute("UPDATE field_maps SET notes = ? WHERE source_field = 'Mobile'", (INJECTIONS[0],))
    path = tmp_path / "review.xlsx"
    export_review(mapped_project, path)

    def through_libreoffice(source: Path) -> Path:
        out = tmp_path / "lo"
        subprocess.run(
            ["soffice", f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}", "--headless",
             "--convert-to", "xlsx", "--outdir", str(out), str(source)],
            check=True, timeout=180, capture_output=True,
        )  # fmt: skip
        return out / source.name

    converted = through_libreoffice(path)
    diff = read_review(mapped_project, converted)
    assert diff.errors == []
    assert diff.changes == []
    wb = load_workbook(converted)
    ws = wb["invoices values"]
    _set(ws, _find(ws, **{"Source value": "Unpaid"}), DEST_VALUE, "Partial")
    _set(ws, _find(ws, **{"Source value": "Void"}), NOTES, 7.0)
    wb.save(path)
    edited = through_libreoffice(path)
    diff = read_review(mapped_project, edited)
    assert diff.errors == []
    assert {(c.source_value, c.before, c.after) for c in diff.changes} == {
        ("Unpaid", "Billed", "Partial"),
        ("Void", None, "7"),
    }
    with zipfile.ZipFile(edited) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))


def test_report_xlsx_and_csv_values_are_guarded(tmp_path):
    from crmmigrator_gui.engine.report.files import write_report
    from crmmigrator_gui.engine.report.safe_cells import csv_row, is_risky

    assert [is_risky(t) for t in (*INJECTIONS, "\rx", "＠x", "－1", "plain", "", "a=b", None, -2)] == [True] * 9 + [
        False
    ] * 5
    assert csv_row(["=1+1", "plain", 3, "－2"]) == ["'=1+1", "plain", 3, "'－2"]
    from crmmigrator_gui.engine.project.store import Project
    from crmmigrator_gui.engine.report.report import build_report

    empty = Project.create(tmp_path / "empty.cmproj", source="octopuspro", target="dynamics365")
    report = build_report(empty, read_back=False)  # a real report's shape, then hostile rows in it
    empty.close()
    report["failures"] = [
        {
            "source_object": "customers",
            "part": "account",
            "source_id": "+1",
            "action": "failed",
            "code": "=cmd",
            "message": INJECTIONS[0] + "\x07bell",
        }
    ]
    report["exceptions"] = [{"source_object": "invoices", "source_id": "@SUM(A1)", "kind": "total", "amount": -2}]
    path = tmp_path / "report.xlsx"
    write_report(path, report)
    with zipfile.ZipFile(path) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))
    wb = load_workbook(path)
    row = next(r for r in wb["Failures"].iter_rows() if r[2].value == "+1")
    assert [row[i].value for i in (2, 3, 4, 6)] == ["+1", "failed", "=cmd", INJECTIONS[0] + "\ufffdbell"]
    assert row[2].quotePrefix
    assert row[4].quotePrefix
    assert wb["Exceptions"]["B2"].quotePrefix
    assert wb["Exceptions"]["D2"].value == -2  # numbers stay numbers
