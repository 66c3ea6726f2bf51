"""Sample migration on the embedded Dataverse and Salesforce sandboxes, over HTTP with the product's clients.

The export is OctopusPro's with booking dates written DD/MM/YYYY (as its CSV exports do), so the import
profiles the column as day-first and automap gives the map that format. What is proved:

- the slice is stratified (every object; every status, type and owner value) and closed over parents
  (every lookup of a sampled record points into the slice; merged groups are whole), deterministically;
- the sample is a run of kind ``sample`` with balanced counts; every loaded record is read back, and on
  a clean map nothing is flagged;
- a record changed at the destination after the run shows as changed_by_server / truncated / missing at
  exactly that record and field;
- a booking date read MM/DD flags exactly the sampled bookings whose day ≤ 12 ≠ month (misread: the
  wrong date really is stored) and those MM/DD cannot read (failed) — computed here from the staged
  text, not from the engine;
- the sample rolls back alone to nothing; kept, the full load adopts it (no duplicates, nothing sampled
  is created twice);
- the XLSX export (formula-guarded cells, coloured verdicts) and the sign-off pinned to the sampled map.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import openpyxl
import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping.editing import set_transform
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.mapping.signoff import assert_signed_off, signoff_status
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.progress import CancelToken
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.sample_diff import VERDICT_COLOURS, export_diff
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.run.sample import FieldDiff, diff, run_sample, select_sample, sign_off
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import destination, embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

TARGETS = ("dynamics365", "salesforce")


def _project(tmp_path, target: str) -> Project:
    export = generate_export(tmp_path / "export", records=300, seed=3)
    book = openpyxl.load_workbook(export.files[0])
    sheet = book["Bookings"]
    column = [c.value for c in sheet[1]].index("Booking date") + 1
    for row in range(2, sheet.max_row + 1):
        cell = sheet.cell(row=row, column=column)
        if cell.value is not None:
            cell.value = cell.value.strftime("%d/%m/%Y")  # what OctopusPro's CSV exports write
    book.save(export.files[0])
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target=target)
    if target == "salesforce":
        org = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
    else:
        org = DataverseSandbox(embedded_sandbox_path(project))
    for name, email in export.users:
        org.add_user(name, email)
    org.close()
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    return project


@pytest.fixture(params=TARGETS)
def project(request, tmp_path, monkeypatch) -> Iterator[Project]:
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    opened = _project(tmp_path, request.param)
    yield opened
    opened.close()


@pytest.fixture
def dv_project(tmp_path, monkeypatch) -> Iterator[Project]:
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    opened = _project(tmp_path, "dynamics365")
    yield opened
    opened.close()


def _staged(project: Project, obj: str) -> dict[str, dict]:
    return dict(project.iter_staged(obj))


def _keys_at_destination(project: Project) -> dict[str, Counter]:
    """Every keyed record of every table the load writes, read over HTTP: table -> Counter of keys."""
    playbook = load_playbook(project.source, project.target, project.edition)
    key = playbook.key_column
    out: dict[str, Counter] = {}
    with destination(project) as client:
        for entity in sorted({p.entity for p in load_order(playbook, project.source_object_names())}):
            if project.target == "salesforce":
                rows = client.query(f"SELECT {key} FROM {entity} WHERE {key} != null")
            else:
                rows = client.query(client.entity(entity).entity_set, select=[key], filter=f"{key} ne null")
            out[entity] = Counter(str(r[key]) for r in rows)
    return out


def _crosswalk(project: Project, run_id: int) -> list[dict]:
    return project.query(
        "SELECT source_object, part, source_id, target_entity, dest_id, action FROM crosswalk WHERE run_id = ? "
        "AND action IN ('created','updated','unchanged','failed','skipped')",
        (run_id,),
    )


# ---------------------------------------------------------------------------------------------- selection


def test_selection_is_stratified_closed_over_parents_and_deterministic(dv_project):
    project = dv_project
    picked = select_sample(project, 200, seed=11)
    total = sum(len(ids) for ids in picked.values())
    assert 180 <= total <= 200  # parents included
    assert set(picked) == set(project.source_object_names())  # every object represented
    chosen = {obj: set(ids) for obj, ids in picked.items()}
    for obj, column in (("bookings", "Status"), ("invoices", "Status"), ("quotes", "Status"),
                        ("customers", "Customer type")):  # fmt: skip
        rows = _staged(project, obj)
        everything = {str(r.get(column) or "").strip().lower() for r in rows.values()}
        sampled = {str(r.get(column) or "").strip().lower() for s, r in rows.items() if s in chosen[obj]}
        assert sampled == everything, (obj, everything - sampled)
    first_worker = {str(r["Fieldworker(s)"]).split(",")[0].strip() for r in _staged(project, "bookings").values()}
    sampled_workers = {
        str(r["Fieldworker(s)"]).split(",")[0].strip()
        for s, r in _staged(project, "bookings").items()
        if s in chosen["bookings"]
    }
    assert sampled_workers == first_worker  # owners covered too
    bookings = _staged(project, "bookings")
    for child, column, parent in (("bookings", "Customer ID", "customers"), ("invoices", "Booking ID", "bookings"),
                                  ("payments", "Invoice number", "invoices"), ("quotes", "Customer ID", "customers"),
                                  ("form_responses", "Booking ID", "bookings")):  # fmt: skip
        refs = {str(r[column]) for s, r in _staged(project, child).items() if s in chosen[child]}
        assert refs <= chosen[parent], (child, refs - chosen[parent])
    invoice_customers = {
        str(bookings[str(r["Booking ID"])]["Customer ID"])
        for s, r in _staged(project, "invoices").items()
        if s in chosen["invoices"]
    }
    assert invoice_customers <= chosen["customers"]  # the invoice's account lookup goes through its booking
    groups: dict[tuple, set[str]] = {}
    for sid, raw in _staged(project, "form_responses").items():
        groups.setdefault((raw["Booking ID"], raw["Form"]), set()).add(sid)
    for members in groups.values():
        assert members <= chosen["form_responses"] or not members & chosen["form_responses"]  # whole groups
    assert select_sample(project, 200, seed=11) == picked
    assert select_sample(project, 200, seed=12) != picked
    with pytest.raises(UsageError, match="100–500"):
        select_sample(project, 99)


# ---------------------------------------------------------------------------------------------- clean map


def test_clean_sample_reads_back_every_record_and_flags_nothing(project):
    result = run_sample(project, size=150, seed=1)
    data = json.loads(json.dumps(result.to_json()))  # the CLI's --json document
    assert data["kind"] == "sample"
    assert data["status"] == "completed"
    assert project.scalar("SELECT kind FROM runs WHERE id = ?", (data["run_id"],)) == "sample"
    for entry in data["objects"]:
        assert entry["source_records"] == len(result.sample[entry["source_object"]])
        assert (
            entry["created"] + entry["updated"] + entry["unchanged"] + entry["failed"] + entry["skipped"]
            == (entry["source_records"])
        )
    assert data["requests"] > 0
    assert data["seconds"] > 0
    loaded = {(r["target_entity"], r["dest_id"]) for r in _crosswalk(project, data["run_id"]) if r["dest_id"]}
    read = {(r.target_entity, r.dest_id) for r in result.rows if r.stored not in (None, "")}
    assert loaded
    assert loaded == read
    verdicts = Counter(r.verdict for r in result.rows)
    assert verdicts["equal"] > 0
    assert verdicts["transformed"] > 0
    assert not [r for r in result.rows if r.flagged], [r for r in result.rows if r.flagged][:5]
    assert data["diff"]["flagged"] == 0
    assert data["diff"]["records"] == len(loaded)
    totals = [r for r in result.rows if (r.source_object, r.source_field, r.verdict) == ("bookings", "Total", "equal")]
    staged = _staged(project, "bookings")
    assert totals
    assert all(Decimal(str(r.stored)) == Decimal(str(staged[r.source_id]["Total"])) for r in totals)
    statuses = [r for r in result.rows if r.source_object == "bookings" and r.source_field == "Status"]
    assert statuses
    assert all(isinstance(r.stored, str) for r in statuses)
    assert {r.stored for r in statuses} >= {"Completed"}
    stored = json.loads(project.scalar("SELECT stats FROM runs WHERE id = ?", (data["run_id"],)))
    assert stored["diff"]["verdicts"] == data["diff"]["verdicts"]
    assert stored["map_fingerprint"]


def test_a_cancelled_sample_resumes_in_the_same_run(dv_project):
    token, seen = CancelToken(), []

    def progress(event):
        seen.append(event)
        if len(seen) == 2:
            token.cancel()

    partial = run_sample(dv_project, size=100, seed=8, progress=progress, cancel=token)
    assert partial.run.status == "cancelled"
    assert 0 < sum(o["created"] for o in partial.run.objects) < sum(len(ids) for ids in partial.sample.values())
    assert partial.summary is None
    assert partial.to_json()["diff"] is None
    with pytest.raises(BlockedError, match="no sample"):
        sign_off(dv_project, "Dana Customer")  # nothing was read back
    resumed = run_sample(dv_project, size=100, seed=8)
    assert resumed.run.run_id == partial.run.run_id
    assert resumed.run.status == "completed"
    assert resumed.summary["flagged"] == 0
    for entry in resumed.run.objects:  # nothing lost or loaded twice across the cancel
        assert entry["created"] == entry["source_records"] == len(resumed.sample[entry["source_object"]])
    outcomes = Counter((r["part"], r["source_id"]) for r in _crosswalk(dv_project, resumed.run.run_id))
    assert set(outcomes.values()) == {1}


def _edit(project: Project, entity: str, dest_id: str, values: dict) -> None:
    """Somebody edits a record at the destination, over HTTP."""
    with destination(project) as client:
        if project.target == "salesforce":
            assert client.update_collection([{"Id": dest_id, **values}], sobject=entity)[0].ok
        else:
            response = client.send("PATCH", f"{client.entity(entity).entity_set}({dest_id})", values, {"If-Match": "*"})
            assert response.status_code in (200, 204), response.text


def test_changes_at_the_destination_are_flagged_at_that_record_and_field(project):
    result = run_sample(project, size=100, seed=2)
    sf = project.target == "salesforce"
    name, street, email = ("Name", "BillingStreet", "Email") if sf else ("name", "address1_line1", "emailaddress1")
    account, contact = ("Account", "Contact") if sf else ("account", "contact")
    rows = {(r.target_entity, r.field): [] for r in result.rows}
    for r in result.rows:
        if r.stored not in (None, "") and len(str(r.stored)) > 6:
            rows[(r.target_entity, r.field)].append(r)
    renamed, cut, emptied = rows[(account, name)][0], rows[(account, street)][1], rows[(contact, email)][2]
    _edit(project, account, renamed.dest_id, {name: "Renamed by the customer"})
    _edit(project, account, cut.dest_id, {street: str(cut.stored)[:4]})
    _edit(project, contact, emptied.dest_id, {email: None})
    again = diff(project, result.run.run_id)
    flagged = {(r.target_entity, r.dest_id, r.field, r.verdict) for r in again if r.flagged}
    assert flagged == {
        (account, renamed.dest_id, name, "changed_by_server"),
        (account, cut.dest_id, street, "truncated"),
        (contact, emptied.dest_id, email, "missing"),
    }
    assert len(again) == len(result.rows)


# ---------------------------------------------------------------------------------------------- broken map


def test_a_date_read_mm_dd_is_flagged_at_exactly_those_records_and_field(project):
    rows = project.query(
        "SELECT id, transform FROM field_maps WHERE source_object = 'bookings' AND source_field = 'Booking date'"
    )
    assert rows
    assert all(json.loads(r["transform"])["format"] == "DD/MM/YYYY" for r in rows)
    for row in rows:
        set_transform(project, row["id"], {**json.loads(row["transform"]), "format": "MM/DD/YYYY"}, actor="tester")
    result = run_sample(project, size=200, seed=3)
    staged = _staged(project, "bookings")
    misread, unreadable = set(), set()
    for sid in result.sample["bookings"]:
        day, month, _year = (int(p) for p in staged[sid]["Booking date"].split("/"))
        if day > 12:
            unreadable.add(sid)
        elif day != month:
            misread.add(sid)
    assert misread
    assert unreadable
    flagged = [r for r in result.rows if r.flagged]
    assert {(r.source_object, r.source_field) for r in flagged} == {("bookings", "Booking date")}
    assert {r.source_id for r in flagged if r.verdict == "misread"} == misread
    assert {r.source_id for r in flagged if r.verdict == "failed"} == unreadable
    assert {r.verdict for r in flagged} == {"misread", "failed"}
    entities = {r.target_entity for r in flagged}
    assert len(entities) == 2  # both destinations of the column: the job and the opportunity
    for r in flagged:
        if r.verdict == "misread":  # the wrong date really is stored: month and day swapped
            day, month, year = staged[r.source_id]["Booking date"].split("/")
            assert str(r.stored)[:10] == f"{year}-{day}-{month}" == str(r.expected)[:10]
            assert "DD/MM/YYYY" in r.note
        else:
            assert r.dest_id is None
            assert "MM/DD/YYYY" in r.note
    children = {r.source_object for r in result.rows if r.verdict == "skipped"}
    assert children <= {"invoices", "payments", "form_responses"}  # their booking did not load: not flagged


# ---------------------------------------------------------------------------------------------- ledger


def test_the_sample_rolls_back_alone_to_nothing(project):
    result = run_sample(project, size=100, seed=4)  # the first run: the destination held none of these keys
    during = _keys_at_destination(project)
    loaded = [r for r in _crosswalk(project, result.run.run_id) if r["dest_id"]]
    assert sum(sum(c.values()) for c in during.values()) == len(loaded) > 0
    undone = rollback(project, run_id=result.run.run_id)
    assert [r.status for r in undone] == ["rolled_back"]
    assert all(not keys for keys in _keys_at_destination(project).values())
    assert project.scalar("SELECT COUNT(*) FROM xref") == 0
    with pytest.raises(MigratorError, match="rolled back"):
        diff(project, result.run.run_id)


def test_a_kept_sample_is_adopted_by_the_full_load_without_duplicates(project):
    result = run_sample(project, size=100, seed=5)
    sampled = {(r["part"], r["source_id"]) for r in _crosswalk(project, result.run.run_id) if r["dest_id"]}
    sign_off(project, "Dana Customer")  # the full load's gate: the kept sample is what was signed off
    full = load(project)
    assert full.kind == "load"
    assert full.run_id != result.run.run_id
    actions = {(r["part"], r["source_id"]): r["action"] for r in _crosswalk(project, full.run_id)}
    assert all(actions[k] in ("unchanged", "updated") for k in sampled)  # adopted, never created again
    created_before = Counter(r["target_entity"] for r in _crosswalk(project, result.run.run_id) if r["dest_id"])
    created_now = Counter(r["target_entity"] for r in _crosswalk(project, full.run_id) if r["action"] == "created")
    for entity, keys in _keys_at_destination(project).items():
        assert max(keys.values(), default=1) == 1, entity  # no key twice
        assert sum(keys.values()) == created_before[entity] + created_now[entity]
    for entry in full.objects:
        assert entry["source_records"] == project.staged_count(entry["source_object"])


# ---------------------------------------------------------------------------------------------- outputs


def test_export_diff_workbook(dv_project, tmp_path):
    result = run_sample(dv_project, size=100, seed=6)
    hostile = FieldDiff("customers", "1001", "account", None, "name", '=HYPERLINK("http://x","y")', "a", "b",
                        "changed_by_server", "Business name", "@SUM(A1)")  # fmt: skip
    rows = [*result.rows, hostile]
    path = export_diff(rows, tmp_path / "out" / "sample.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Diff"]
    sheet = book["Diff"]
    assert sheet.max_row == len(rows) + 1
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:K")
    header = [c.value for c in sheet[1]]
    assert header[6:10] == ["Source value", "Expected value", "Stored value", "Verdict"]
    last = [c for c in sheet[sheet.max_row]]
    assert last[6].value == '=HYPERLINK("http://x","y")'
    assert last[6].data_type == "s"
    assert last[6].quotePrefix
    assert last[10].value == "@SUM(A1)"
    assert last[10].quotePrefix
    assert last[9].fill.fgColor.rgb.endswith(VERDICT_COLOURS["changed_by_server"])
    assert Counter(c.value for c in sheet["J"][1:]) == Counter(r.verdict for r in rows)
    summary = book["Summary"]
    assert summary["A1"].value == "Source object"
    assert summary.cell(row=summary.max_row, column=1).value == "Total"
    flagged_col = [c.value for c in summary[1]].index("Flagged") + 1
    assert summary.cell(row=2, column=flagged_col).value == 1  # flagged fields first
    assert summary.cell(row=summary.max_row, column=flagged_col).value == 1
    with pytest.raises(UsageError):
        export_diff(rows, tmp_path / "sample.csv")


def test_sign_off_needs_a_sample_of_the_current_map(dv_project):
    project = dv_project
    with pytest.raises(BlockedError, match="no sample"):
        sign_off(project, "Dana Customer")
    result = run_sample(project, size=100, seed=7)
    record = sign_off(project, "Dana Customer")
    assert record["sample_run_id"] == result.run.run_id
    assert signoff_status(project)["valid"]
    assert assert_signed_off(project)["actor"] == "Dana Customer"
    audit = project.query("SELECT detail FROM audit WHERE action = 'signoff'")
    assert json.loads(audit[-1]["detail"])["sample_run_id"] == result.run.run_id
    row = project.query("SELECT id, transform FROM field_maps WHERE source_field = 'Booking date' LIMIT 1")[0]
    set_transform(project, row["id"], {**json.loads(row["transform"]), "format": "MM/DD/YYYY"}, actor="tester")
    assert not signoff_status(project)["valid"]
    with pytest.raises(BlockedError, match="map changed"):
        sign_off(project, "Dana Customer")
