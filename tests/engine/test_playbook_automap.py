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

SEED_ROWS = {"Customer", "Booking", "Field Worker", "Invoice", "Payment", "Quote / Estimate", "Service",
             "Custom Fields", "Forms & Checklists"}


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
    assert order.index("bookings.job") < order.index("invoices.invoice" if edition == "enterprise"
                                                     else "invoices.invoice_pro") < order.index("payments.payment")


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
