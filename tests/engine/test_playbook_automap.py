"""The OctopusPro → Dynamics 365 playbook covers seed 004, and the auto-mapper explains itself."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.mapping.automap import propose
from crmmigrator_gui.engine.mapping.playbook import destination_key, load_playbook, playbook_path
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.paths import resources_dir
from tests.engine.conftest import sign_off_for_tests

SEED_ROWS = {
    "Customer",
    "Booking",
    "Field Worker",
    "Invoice",
    "Payment",
    "Quote / Estimate",
    "Service",
    "Custom Fields",
    "Forms & Checklists",
}


@pytest.mark.parametrize("edition", ["enterprise", "professional"])
def test_playbook_covers_all_nine_seed_rows_with_dataverse_names(edition):
    playbook = load_playbook("octopuspro", "dynamics365", edition)
    assert {row["row"] for row in playbook.seed_rows} == SEED_ROWS
    text = playbook_path("octopuspro", "dynamics365").read_text(encoding="utf-8")
    assert "__c" not in text
    for column in playbook.schema["columns"]:
        assert column["name"].startswith("new_")
    for obj in playbook.objects:
        for role in obj.roles.values():
            for target in role.targets:
                part = target.split(".")[0]
                assert part in {p.name for p in obj.parts} or part in {"invoice", "invoice_pro"}, target
    invoice_entity = playbook.part("invoices." + ("invoice" if edition == "enterprise" else "invoice_pro")).entity
    assert invoice_entity == ("invoice" if edition == "enterprise" else "new_invoice")
    order = [p.qualified for p in load_order(playbook, [o.name for o in playbook.objects])]
    assert order.index("customers.account") < order.index("customers.contact") < order.index("bookings.job")
    assert (
        order.index("bookings.job")
        < order.index("invoices.invoice" if edition == "enterprise" else "invoices.invoice_pro")
        < order.index("payments.payment")
    )


def test_destination_keys_are_distinct_deterministic_and_url_safe():
    playbook = load_playbook("octopuspro", "dynamics365")
    a = destination_key(playbook, "customers", "C/1:2", "account")
    assert a == destination_key(playbook, "customers", "C/1:2", "account")
    assert a != destination_key(playbook, "customers", "C/1:2", "contact")
    assert a != destination_key(playbook, "customers", "C_1_2", "account")
    assert not set("/<>*%&:\\?+'") & set(a)


def test_automap_on_the_unseen_sample_maps_variant_headers(tmp_path):
    unseen = resources_dir() / "samples" / "octopuspro" / "unseen"
    project = Project.create(tmp_path / "u.cmproj", source="octopuspro", target="dynamics365")
    import_paths(project, [unseen])
    proposals, unmapped = propose(project)
    by_target = {(p.source_object, p.target_entity, p.target_field): p for p in proposals}
    for p in proposals:
        assert 0 <= p.confidence <= 1
        assert p.reason
    firstname = [p for (o, e, f), p in by_target.items() if o == "customers" and e == "contact" and f == "firstname"]
    assert firstname
    assert firstname[0].confidence >= 0.9
    assert any(e == "account" and f == "emailaddress1" for (o, e, f) in by_target if o == "customers")
    assert any(e == "new_job" and f == "new_jobstatus" for (o, e, f) in by_target if o == "bookings")
    high = [p for p in proposals if p.confidence >= 0.9]
    assert len(high) >= len(proposals) * 0.6
    assert not any(p.source_field.lower() == "password" for p in proposals)
    dropped = json.loads(project.scalar("SELECT details FROM source_objects WHERE name = 'customers'"))
    assert dropped["dropped_columns"] or not any(u.source_field.lower() == "password" for u in unmapped)


def test_ticking_every_row_confirms_the_map_and_value_maps(tmp_path):
    from crmmigrator_gui.engine.mapping import maps

    sample = resources_dir() / "samples" / "octopuspro" / "standard"
    project = Project.create(tmp_path / "t.cmproj", source="octopuspro", target="dynamics365")
    import_paths(project, [sample])
    maps.run_automap(project)
    assert not maps.is_confirmed(project)
    rows = [r["id"] for r in maps.field_rows_with_ids(project) if r["status"] == "proposed"]
    maps.confirm_rows(project, rows[:-1], actor="consultant")
    assert not maps.is_confirmed(project)
    maps.confirm_rows(project, rows[-1:], actor="consultant")
    assert maps.is_confirmed(project)
    confirmed_by = {r["confirmed_by"] for r in project.query("SELECT confirmed_by FROM value_maps")}
    assert confirmed_by == {"consultant"}


def test_every_role_cluster_is_defined_and_every_target_part_exists():
    from crmmigrator_gui.engine.mapping.names import knowledge

    clusters = set(knowledge()["clusters"])
    for path in sorted((resources_dir() / "playbooks").glob("*.json")):
        source, target = path.stem.split("-")
        for edition in ("enterprise", "professional"):
            playbook = load_playbook(source, target, edition)
            for obj in playbook.objects:
                parts = {p.name for p in obj.parts}
                for role in obj.roles.values():
                    assert set(role.clusters) <= clusters, (path.name, obj.name, role.name)
                    for target_spec in role.targets:
                        part = target_spec.split(".")[0]
                        assert part in parts or part in {"invoice", "invoice_pro"}, (path.name, obj.name, target_spec)


def _peer_export(folder):
    """A small peer-tool export with every generic object beyond the OctopusPro shape."""
    import csv

    def write(name, header, rows):
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    write(
        "Jobber_clients_2026-11.csv",
        [
            "J-ID",
            "Company Name",
            "First Name",
            "Last Name",
            "E-mails",
            "Main Phone #s",
            "Work Phone #s",
            "Fax Phone #s",
            "Billing Street 1",
            "Billing City",
        ],
        [
            [
                f"C{i}",
                f"Acme {i}",
                "Ann",
                f"Lee{i}",
                f"ann{i}@ex.com",
                "(555) 123-4567",
                "555-222-3333",
                "555-999-0000",
                f"{i} Main St",
                "Austin",
            ]
            for i in range(1, 6)
        ],
    )
    write(
        "contacts.csv",
        ["Contact ID", "Client ID", "First Name", "Last Name", "Job Title", "Email", "Mobile"],
        [[f"P{i}", f"C{i}", "Bob", f"Ng{i}", "Manager", f"bob{i}@ex.com", "(555) 777-1234"] for i in range(1, 6)],
    )
    write(
        "properties.csv",
        ["Property ID", "Client ID", "Property Name", "Street", "City", "Zip", "Latitude", "Longitude"],
        [[f"S{i}", f"C{i}", f"Home {i}", f"{i} Oak Ave", "Austin", "78702", "30.2", "-97.7"] for i in range(1, 6)],
    )
    write(
        "Job export.csv",
        ["Job #", "Customer ID", "Job status", "Job description", "Scheduled date", "Job amount"],
        [[str(100 + i), f"C{i}", "Scheduled", "Fix AC", "03/04/2025", "$120.00"] for i in range(1, 6)],
    )
    write(
        "job line items.csv",
        ["Job #", "Line Item", "Description", "Qty", "Unit Price", "Total"],
        [[str(100 + i), "Service call", "Diagnostics", "1", "$80.00", "$80.00"] for i in range(1, 6)],
    )
    write(
        "invoices.csv",
        ["Invoice #", "Job #", "Status", "Invoice Date", "Due Date", "Total", "Balance"],
        [[f"INV{i}", str(100 + i), "Paid", "03/05/2025", "03/20/2025", "$120.00", "$0.00"] for i in range(1, 6)],
    )
    write(
        "invoice items.csv",
        ["Invoice #", "Item", "Qty", "Rate", "Amount"],
        [[f"INV{i}", "Labour", "2", "$60.00", "$120.00"] for i in range(1, 6)],
    )
    write(
        "job notes.csv",
        ["Note ID", "Job #", "Created by", "Created", "Note"],
        [[f"N{i}", str(100 + i), "Tech A", "03/04/2025 10:00 AM", "All good"] for i in range(1, 6)],
    )


@pytest.mark.parametrize("target", ["dynamics365", "salesforce"])
def test_peer_export_with_contacts_sites_lines_and_notes_loads_as_generic(tmp_path, monkeypatch, target):
    from crmmigrator_gui.engine.mapping.maps import accept, run_automap
    from crmmigrator_gui.engine.run.load import load

    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    folder = tmp_path / "export"
    folder.mkdir()
    _peer_export(folder)
    project = Project.create(tmp_path / "peer.cmproj", source="generic", target=target)
    result = import_paths(project, [folder])
    assert {o.name for o in result.objects} == {
        "customers",
        "contacts",
        "sites",
        "bookings",
        "line_items",
        "invoices",
        "invoice_items",
        "notes",
    }
    proposals, _unmapped = run_automap(project)
    targets = {(p.source_object, p.source_field): p.target_field for p in proposals}
    assert targets[("customers", "Fax Phone #s")] in ("fax", "Fax")
    assert targets[("contacts", "Job Title")] in ("jobtitle", "Title")
    accept(project, actor="tester")
    sign_off_for_tests(project)
    outcome = load(project, actor="tester").to_json()
    assert outcome["status"] == "completed", outcome.get("failures")
    by_object = {o["source_object"]: o for o in outcome["objects"]}
    for name in ("contacts", "sites", "line_items", "invoice_items", "notes"):
        assert by_object[name]["created"] == 5, by_object[name]
        assert by_object[name]["failed"] == 0, by_object[name]
