"""Value maps against destination metadata: suggestions, stored values, new options, and what loads.

Both destinations run on their embedded sandboxes over HTTP with the real clients: option integers and
picklist values are read back independently of the code under test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.errors import BlockedError, DestinationError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping import values
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.engine.target.connection import SandboxTransport, configure, embedded_sandbox_path
from crmmigrator_gui.engine.target.dataverse import DataverseClient
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox
from tests.engine.conftest import confirmed_project, sign_off_for_tests

COLUMN = {
    "origin": "destination",
    "restricted": True,
    "options": [
        {"value": 1, "label": "Cancelled"},
        {"value": 2, "label": "En Route"},
        {"value": 3, "label": "In Progress"},
        {"value": 4, "label": "Active"},
        {"value": 5, "label": "Net 30"},
        {"value": 6, "label": "Completed"},
    ],
}


@contextmanager
def dataverse(project: Project) -> Iterator[DataverseClient]:
    sandbox = DataverseSandbox(embedded_sandbox_path(project))
    client = DataverseClient("http://sandbox.localhost", lambda: "t", transport=SandboxTransport(app=sandbox))
    try:
        yield client
    finally:
        client.close()
        sandbox.close()


@contextmanager
def salesforce(project: Project) -> Iterator[SalesforceClient]:
    org = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True)
    token = org.issue_token()
    client = SalesforceClient("http://sandbox.localhost", lambda: token, transport=SandboxTransport(app=org))
    try:
        yield client
    finally:
        client.close()
        org.close()


def _restage(project: Project, obj: str, column_hint: str, value: str, rows: int) -> list[str]:
    changed = []
    for sid, raw in list(project.iter_staged(obj))[:rows]:
        column = next(c for c in raw if column_hint in c.lower())
        raw[column] = value
        project.db.conn.execute(
            "UPDATE staging SET raw = ? WHERE object = ? AND source_id = ?", (json.dumps(raw), obj, sid)
        )
        changed.append(sid)
    return changed


def _row(project: Project, obj: str, value: str) -> dict:
    return next(r for r in values.value_rows(project, source_object=obj) if r["source_value"] == value)


# ---------------------------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("source", "label", "how"),
    [
        ("Canceled", "Cancelled", "close spelling"),
        ("Enroute", "En Route", "apart from case"),
        ("InProgress", "In Progress", "apart from case"),
        ("in progress", "In Progress", "same label"),
        ("Complete", "Completed", "close spelling"),
    ],
)
def test_drifted_spellings_land_on_the_destination_option(source, label, how) -> None:
    got, stored, reason = values.suggest_option(source, None, COLUMN)
    assert (got, stored) == (label, str(next(o["value"] for o in COLUMN["options"] if o["label"] == label)))
    assert how in reason


@pytest.mark.parametrize("source", ["Inactive", "Net 15", "Net 300", "Dispatched", "Cxl"])
def test_different_meanings_are_flagged_not_guessed(source) -> None:
    label, stored, reason = values.suggest_option(source, None, COLUMN)
    assert label is None
    assert stored is None
    assert repr(source) in reason


def test_the_playbook_suggestion_is_checked_against_the_destination_spelling() -> None:
    column = {**COLUMN, "options": [{"value": 9, "label": "Canceled"}, {"value": 10, "label": "Paid"}]}
    label, stored, reason = values.suggest_option("Void", {"Void": "Cancelled"}, column)
    assert (label, stored) == ("Canceled", "9")
    assert "playbook maps 'Void' to 'Cancelled'" in reason
    assert "spells it 'Canceled'" in reason
    label, _stored, reason = values.suggest_option("Overdue", {"Overdue": "Billed"}, column)
    assert label is None
    assert "'Billed', which the destination does not have" in reason
    # A Salesforce picklist that is not restricted keeps values outside its list: proposed as given, and said so.
    label, stored, reason = values.suggest_option("Miss", None, {**column, "restricted": False})
    assert (label, stored) == ("Miss", "Miss")
    assert "unrestricted" in reason


def test_the_stored_integer_wins_while_it_carries_the_label() -> None:
    two_in_progress = {1: "In Progress", 2: "In Progress", 3: "Open"}
    assert values.resolve_option(two_in_progress, "In Progress", "2") == 2  # a label lookup would give 1
    assert values.resolve_option({100000003: "Canceled"}, "Canceled", "100001") == 100000003  # another org
    assert values.resolve_option({7: "Revised (v2)"}, "Revised", "7") == 7  # label renamed at the destination
    assert values.resolve_option({7: "Revised"}, "Gone", None) is None


# ---------------------------------------------------------------------------------------------- Dataverse


def test_every_distinct_value_is_listed_with_its_count_and_the_metadata_integer(mapped_project) -> None:
    rows = values.value_rows(mapped_project, source_object="invoices")
    column = next(c for c in next(r for _s, r in mapped_project.iter_staged("invoices")) if "status" in c.lower())
    staged = Counter(
        str(raw[column]).strip() for _sid, raw in mapped_project.iter_staged("invoices") if str(raw[column]).strip()
    )
    statuscode = [r for r in rows if (r["target_entity"], r["target_field"]) == ("invoice", "statuscode")]
    assert {r["source_value"]: r["count"] for r in statuscode} == dict(staged)
    with dataverse(mapped_project) as client:
        options = client.entity("invoice").attributes["statuscode"].options
    for row in statuscode:
        assert row["status"] == "confirmed"
        assert row["confirmed_by"] == "tester"
        assert row["target_value"] == str(client_value(options, row["target_label"]))
        assert row["reason"].startswith("playbook maps")
        assert {(o["value"], o["label"]) for o in row["options"]} == set(options.items())
    cached = values.destination_options(mapped_project, "invoice", "statuscode")  # offline: from the project
    assert {(o["value"], o["label"]) for o in cached} == set(options.items())


def client_value(options: dict[int, str], label: str) -> int:
    return next(v for v, text in options.items() if text == label)


def test_custom_columns_not_created_yet_are_planned_from_the_playbook(mapped_project) -> None:
    planned = values.destination_options(mapped_project, "new_job", "new_jobstatus")
    assert [o["label"] for o in planned] == [
        "Pending",
        "Scheduled",
        "En Route",
        "In Progress",
        "Completed",
        "Cancelled",
    ]
    assert all(o["value"] is None for o in planned)
    assert values.destination_options(mapped_project, "account", "name") == []  # a text column: no value map


def test_an_unmapped_value_blocks_until_a_new_option_is_added_and_then_it_loads(mapped_project) -> None:
    first = load(mapped_project)  # creates the custom schema in the sandbox through the metadata API
    assert first.status == "completed"
    changed = _restage(mapped_project, "bookings", "status", "Awaiting Parts", 3)
    run_automap(mapped_project)
    [flagged] = values.unmapped_values(mapped_project)
    assert (flagged["source_value"], flagged["count"], flagged["target_field"]) == (
        "Awaiting Parts",
        3,
        "new_jobstatus",
    )
    assert "no option at the destination matches" in flagged["reason"]
    with pytest.raises(BlockedError, match="1 source value"):
        load(mapped_project)
    with pytest.raises(UsageError, match="closest"):
        values.set_value(mapped_project, flagged["id"], "Awaiting parts delivery")

    created = values.add_option(mapped_project, "new_job", "new_jobstatus", "Awaiting Parts", actor="consultant")
    assert created["label"] == "Awaiting Parts"
    assert created["value"] >= 100000000
    again = values.add_option(mapped_project, "new_job", "new_jobstatus", "awaiting parts", actor="consultant")
    assert again == created  # idempotent: no second option
    with dataverse(mapped_project) as client:
        options = client.entity("new_job").attributes["new_jobstatus"].options
    assert [label for label in options.values()].count("Awaiting Parts") == 1
    assert options[created["value"]] == "Awaiting Parts"

    reproposed = _row(mapped_project, "bookings", "Awaiting Parts")
    assert (reproposed["status"], reproposed["target_value"]) == ("proposed", str(created["value"]))
    decided = values.set_value(mapped_project, reproposed["id"], "Awaiting Parts", actor="consultant")
    assert decided["target_value"] == str(created["value"])
    assert decided["confirmed_by"] == "consultant"
    audit = mapped_project.query("SELECT actor, action FROM audit WHERE action IN ('value option add', 'map value')")
    assert {(a["actor"], a["action"]) for a in audit} == {
        ("consultant", "value option add"),
        ("consultant", "map value"),
    }

    with pytest.raises(BlockedError, match="map changed after the sign-off"):
        load(mapped_project)  # the new value decision is not what was signed off
    sign_off_for_tests(mapped_project)
    second = load(mapped_project)
    assert second.status == "completed", second.failures[:3]
    bookings = next(o for o in second.objects if o["source_object"] == "bookings")
    assert bookings["updated"] == len(changed)
    with dataverse(mapped_project) as client:
        meta = client.entity("new_job")
        rows = list(
            client.query(meta.entity_set, select=["new_sourcesystemid"], filter=f"new_jobstatus eq {created['value']}")
        )
    assert len(rows) == len(changed)

    # Two options with one label (an admin's duplicate): the stored integer decides, not a label lookup.
    with dataverse(mapped_project) as client:
        twin = client.insert_option_value("new_job", "new_jobstatus", "Awaiting Parts")
    values.refresh_options(mapped_project)
    values.set_value(mapped_project, reproposed["id"], str(twin), actor="consultant")  # chosen by its value
    assert _row(mapped_project, "bookings", "Awaiting Parts")["target_value"] == str(twin)
    sign_off_for_tests(mapped_project)  # the value changed: sign the map off again
    assert load(mapped_project).status == "completed"
    with dataverse(mapped_project) as client:
        rows = list(client.query(meta.entity_set, select=["new_sourcesystemid"], filter=f"new_jobstatus eq {twin}"))
    assert len(rows) == len(changed)


def test_an_option_for_a_column_not_created_yet_is_planned_then_pinned_after_schema_apply(mapped_project) -> None:
    planned = values.add_option(mapped_project, "new_job", "new_jobstatus", "On Hold", actor="consultant")
    assert planned == {"value": None, "label": "On Hold", "planned": True}
    assert values.add_option(mapped_project, "new_job", "new_jobstatus", "on hold") == planned
    labels = [o["label"] for o in values.destination_options(mapped_project, "new_job", "new_jobstatus")]
    assert labels.count("On Hold") == 1
    pending = _row(mapped_project, "bookings", "Pending")
    values.set_value(mapped_project, pending["id"], "On Hold", actor="consultant")
    run_automap(mapped_project)  # automap again: the decision stays
    kept = _row(mapped_project, "bookings", "Pending")
    assert (kept["status"], kept["target_label"], kept["target_value"]) == ("confirmed", "On Hold", None)

    sign_off_for_tests(mapped_project)  # the map changed after the fixture's sign-off
    assert load(mapped_project).status == "completed"  # schema apply creates the option from the value map
    pinned = values.refresh_options(mapped_project, actor="consultant")
    assert pinned["lost"] == 0
    with dataverse(mapped_project) as client:
        options = client.entity("new_job").attributes["new_jobstatus"].options
        on_hold = client_value(options, "On Hold")
        held = list(client.query("new_jobs", select=["new_sourcesystemid"], filter=f"new_jobstatus eq {on_hold}"))
    assert _row(mapped_project, "bookings", "Pending")["target_value"] == str(on_hold)
    assert len(held) == kept["count"]


def test_status_reasons_and_unknown_columns_are_refused_clearly(mapped_project) -> None:
    with pytest.raises(MigratorError, match="status reason 'Disputed' in the maker portal"):
        values.add_option(mapped_project, "invoice", "statuscode", "Disputed")
    with pytest.raises(MigratorError, match="not a choice column"):
        values.add_option(mapped_project, "account", "name", "X")
    with pytest.raises(UsageError, match="label"):
        values.add_option(mapped_project, "invoice", "statuscode", "  ")


def test_a_destination_that_cannot_be_opened_leaves_the_map_reviewable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    export = generate_export(tmp_path / "export", records=60, seed=5)
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    configure(project, "target", url="https://org.example.invalid", auth="device-code", tenant=None, client_id="x",
              token_url=None, username=None, secret=None)  # fmt: skip
    import_paths(project, export.files)
    run_automap(project)
    detail = json.loads(project.scalar("SELECT detail FROM audit WHERE action = 'automap'"))
    assert "not available" in detail["options_not_read"]
    rows = values.value_rows(project)
    assert rows
    assert all(r["status"] == "proposed" for r in rows)
    statuscode = [r for r in rows if r["target_field"] == "statuscode"]
    assert statuscode
    assert all(r["target_value"] is None for r in statuscode)
    assert all("destination options not read yet" in r["reason"] for r in statuscode)
    accept(project, actor="offline")
    project.close()


# ---------------------------------------------------------------------------------------------- Salesforce


@pytest.fixture
def sf_project(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    project = confirmed_project(tmp_path, "salesforce", records=120, seed=4)
    yield project
    project.close()


def test_salesforce_custom_picklist_takes_a_new_value_that_then_loads(sf_project) -> None:
    assert load(sf_project).status == "completed"
    changed = _restage(sf_project, "invoices", "status", "Written off", 2)
    run_automap(sf_project)
    [flagged] = values.unmapped_values(sf_project)
    assert (flagged["target_entity"], flagged["target_field"], flagged["count"]) == ("Invoice__c", "Status__c", 2)
    assert "Void" in [o["label"] for o in flagged["options"]]
    with pytest.raises(BlockedError):
        load(sf_project)

    created = values.add_option(sf_project, "Invoice__c", "Status__c", "Written Off", actor="consultant")
    assert created == {"value": "Written Off", "label": "Written Off"}
    assert values.add_option(sf_project, "Invoice__c", "Status__c", "written off") == created
    with salesforce(sf_project) as client:
        listed = client.picklist_fields("Invoice__c")["Status__c"]
        [invoice] = client._tooling_query("SELECT Id FROM CustomObject WHERE DeveloperName = 'Invoice'", "Invoice")
        fields = client._tooling_query(
            f"SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = '{invoice['Id']}'", "x"
        )
        assert invoice["Id"].startswith("01I")
        assert "Status" in {f["DeveloperName"] for f in fields}
        with pytest.raises(DestinationError, match="MALFORMED_QUERY"):  # as in an org: Metadata of one row only
            client._tooling_query(f"SELECT Id, Metadata FROM CustomField WHERE TableEnumOrId = '{invoice['Id']}'", "x")
    assert listed["restricted"]
    assert [o["value"] for o in listed["options"]].count("Written Off") == 1

    row = _row(sf_project, "invoices", "Written off")
    values.set_value(sf_project, row["id"], "Written Off", actor="consultant")
    # An admin's value whose API name differs from its label: the value map stores and sends the API name.
    disputed = _restage(sf_project, "invoices", "status", "Disputed", 1)
    with salesforce(sf_project) as client:
        assert client.add_picklist_value("Invoice__c", "Status__c", "In Dispute", value="In_Dispute") == "In_Dispute"
    run_automap(sf_project)
    picked = values.set_value(sf_project, _row(sf_project, "invoices", "Disputed")["id"], "in dispute")
    assert (picked["target_label"], picked["target_value"]) == ("In Dispute", "In_Dispute")
    sign_off_for_tests(sf_project)  # the value decisions changed the map after the fixture's sign-off
    result = load(sf_project)
    assert result.status == "completed", result.failures[:3]
    with salesforce(sf_project) as client:  # a fresh sandbox object: the changes were replayed from its log
        written = list(client.query("SELECT Source_System_ID__c FROM Invoice__c WHERE Status__c = 'Written Off'"))
        in_dispute = list(client.query("SELECT Source_System_ID__c FROM Invoice__c WHERE Status__c = 'In_Dispute'"))
        assert "Written Off" in [o["value"] for o in client.picklist_fields("Invoice__c")["Status__c"]["options"]]
    assert len(written) == len(changed) - len(disputed)
    assert len(in_dispute) == len(disputed)


def test_salesforce_standard_picklists_are_added_in_setup(sf_project) -> None:
    with pytest.raises(MigratorError, match=r"standard picklist.*Setup → Object Manager → Quote"):
        values.add_option(sf_project, "Quote", "Status", "Withdrawn")
    quote = values.destination_options(sf_project, "Quote", "Status")
    assert "Presented" in [o["label"] for o in quote]
    assert all(o["value"] for o in quote)
