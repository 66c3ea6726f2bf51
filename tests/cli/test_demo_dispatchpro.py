"""The Dispatch Pro (ServiceTitan) demo end to end: the real CLI extracts the embedded ServiceTitan emulator
over HTTP, maps with the dispatchpro-dynamics365 playbook and loads into the embedded Dataverse sandbox."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

OBJECTS = {"business_units", "technicians", "job_types", "customers", "locations", "customer_contacts", "jobs",
           "appointments", "job_history", "job_attachments", "estimates", "estimate_items"}


def test_demo_accounts_for_every_record_and_reloads_nothing(cli, tmp_path):
    ran = cli("demo", "--source", "dispatchpro", "--target", "dynamics365", "--records", "300", "--dir", "d",
              "--json")
    assert ran.code == 0, ran.stderr
    data = ran.json
    assert data["status"] == "completed"
    assert {o["source_object"] for o in data["objects"]} == OBJECTS
    for o in data["objects"]:
        assert o["created"] + o["failed"] + o["skipped"] == o["source_records"], o
        assert o["failed"] == 0, (o, data["failures"][:3])
        assert o["skipped"] == 0, (o, data["failures"][:3])
        assert o["source_records"] > 0, o
    assert data["requests"] > 0

    again = cli("load", data["project"], "--json")
    assert again.code == 0, again.stderr
    for o in again.json["objects"]:
        assert o["created"] == 0, o
        assert o["failed"] == 0, o
        assert o["unchanged"] == o["source_records"], o

    delta = cli("extract", data["project"], "--json")  # nothing changed at the source since the demo
    assert delta.code == 0, delta.stderr
    assert all(o["new"] == o["changed"] == o["deleted"] == 0 for o in delta.json["objects"]), delta.json
