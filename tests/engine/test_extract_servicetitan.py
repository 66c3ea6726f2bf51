"""The ServiceTitan (Dispatch Pro) extractor against the ServiceTitan emulator on a real loopback socket.

The project holds a *source connection* (URL, token URL, tenant, client id; secret and app key in the keyring),
so the extractor runs exactly as against ``https://api.servicetitan.io``.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.extract import extract
from crmmigrator_gui.engine.source.extract import servicetitan as st
from crmmigrator_gui.engine.source.extract.st_client import SourceError, STClient
from crmmigrator_gui.engine.source.extract.st_rows import (
    Deduper,
    flatten,
    payment_applications,
    payment_status,
    survivor,
)
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.sandbox.server import start_background
from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox

RECORDS = 40


def _serve(tmp_path, faults: str | None = None, **extra):
    data = tmp_path / "served.sqlite"
    # The composite server opens <stem>.servicetitan.sqlite; seed it small first (it keeps existing data).
    ServiceTitanSandbox(tmp_path / "served.servicetitan.sqlite", records=RECORDS, seed=5, **extra).close()
    server, _thread, base = start_background(data=str(data), faults=faults)
    return server, base


@pytest.fixture
def served(tmp_path):
    server, base = _serve(tmp_path)
    yield server.get_app().servicetitan, base
    server.shutdown()
    server.server_close()
    server.get_app().close()


def _project(tmp_path, sb, base, *, app_key: str | None = None, name: str = "p.cmproj") -> Project:
    project = Project.create(tmp_path / name, source="dispatchpro", target="dynamics365")
    connection.store_app_key(project, "source", app_key or sb.app_key)
    connection.configure(project, "source", url=base, auth="client-credentials", tenant=str(sb.tenant),
                         client_id=sb.client_id, token_url=f"{base}/connect/token", username=None,
                         secret=sb.client_secret)
    return project


def _records(result) -> dict[str, int]:
    return st.counts_by_entity(result)


def _snapshot(project: Project) -> tuple:
    conn = project.db.conn
    return (
        conn.execute("SELECT object, source_id, row_hash FROM staging ORDER BY object, source_id").fetchall(),
        conn.execute("SELECT name, record_count, columns FROM source_objects ORDER BY name").fetchall(),
        project.meta(st.CHECKPOINT_KEY),
    )


def test_full_extraction_reads_every_row_once(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    result = extract(project)
    counts = sb.counts
    for name, entity in st.ENTITY_OF.items():
        assert _records(result)[entity] == counts[entity], name
    merged = {o["source_object"]: o["merged"] for o in result.objects}
    staged = {r["object"]: r["n"] for r in project.query("SELECT object, COUNT(*) n FROM staging GROUP BY object")}
    for name, entity in st.ENTITY_OF.items():
        assert staged.get(name, 0) == counts[entity] - merged.get(name, 0), name  # merged-away rows not staged
    # Every row once: no duplicate source ids per object (the staging key would refuse them anyway).
    dupes = project.query("SELECT object, source_id, COUNT(*) n FROM staging GROUP BY object, source_id HAVING n > 1")
    assert dupes == []
    checkpoint = project.meta(st.CHECKPOINT_KEY)
    assert checkpoint["tenant"] == str(sb.tenant)
    assert checkpoint["objects"]["jobs"]["token"]
    assert checkpoint["objects"]["zones"]["high_water"]
    # Attachments carry their bytes; locations carry the derived zone.
    body = json.loads(project.scalar("SELECT raw FROM staging WHERE object = 'job_attachments' LIMIT 1"))
    assert body[st.CONTENT_COLUMN]
    zones = [json.loads(r[0]).get("derived.zoneName") for r in
             project.db.conn.execute("SELECT raw FROM staging WHERE object = 'locations'")]
    assert any(zones)
    project.close()


def test_invoices_items_and_payments_are_extracted_and_linked(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    result = extract(project)
    counts = _records(result)
    for entity in ("invoices", "invoice-items", "payments"):
        assert counts[entity] == sb.counts[entity] > 0, entity
    invoices = dict(project.iter_staged("invoices"))
    items = dict(project.iter_staged("invoice_items"))
    payments = dict(project.iter_staged("payments"))
    assert len(invoices) == sb.counts["invoices"]
    assert len(items) == sb.counts["invoice-items"]
    assert len(payments) == sb.counts["payments"]  # the emulator applies each payment to one invoice
    assert all(i["invoiceId"] in invoices for i in items.values())
    for sid, pay in payments.items():
        assert pay["derived.paymentApplicationId"] == sid == pay["id"]
        assert pay["appliedTo.invoiceId"] in invoices
        assert "appliedTo" not in pay  # flattened, not JSON
    some = next(iter(invoices.values()))
    assert "items" not in some  # the lines are staged from export/invoice-items
    assert "." in (some["total"] or "")  # money stays an exact string
    assert {i["derived.paymentStatus"] for i in invoices.values()} <= {"Paid", "PartiallyPaid", "Unpaid"}
    # Each job carries the total of its invoices (the opportunity's value).
    jobs = dict(project.iter_staged("jobs"))
    by_job: dict[str, Decimal] = {}
    for inv in invoices.values():
        by_job[inv["job.id"]] = by_job.get(inv["job.id"], Decimal(0)) + Decimal(inv["total"])
    for jid, job in jobs.items():
        expected = by_job.get(jid)
        assert (Decimal(job["derived.invoiceTotal"]) if job.get("derived.invoiceTotal") else None) == expected, jid
    checkpoint = project.meta(st.CHECKPOINT_KEY)["objects"]
    assert all(checkpoint[o]["token"] for o in ("invoices", "invoice_items", "payments"))
    project.close()


def test_a_changed_invoice_is_picked_up_by_the_next_extraction(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    extract(project)
    report = sb.mutate(10)
    changed = [str(i) for i in report["updated"].get("invoices", [])]
    assert changed, "the mutation updates invoices"
    second = extract(project)
    got = {o["source_object"]: o for o in second.objects}["invoices"]
    assert got["records"] >= len(changed)
    assert got["changed"] == len(changed)
    assert got["records"] < sb.counts["invoices"]  # a delta from the checkpoint, not a full re-read
    staged = dict(project.iter_staged("invoices"))
    for sid in changed:
        assert staged[sid]["balance"] == "0.00"
        assert staged[sid]["derived.paymentStatus"] == "Paid"
    project.close()


def test_payment_applications_and_status():
    one = {"id": 7, "customer": {"id": 3, "name": "A"}, "total": "10.00",
           "appliedTo": [{"appliedTo": 40, "appliedAmount": "10.00", "appliedOn": "2024-01-01T00:00:00Z"}]}
    ((sid, row),) = payment_applications(one)
    assert (sid, row["appliedTo.invoiceId"], row["customerId"]) == ("7", 40, 3)
    split = {**one, "appliedTo": [{"appliedTo": 40, "appliedAmount": "4.00"},
                                  {"appliedTo": 41, "appliedAmount": "6.00"}]}
    rows = payment_applications(split)
    assert [s for s, _r in rows] == ["7-40", "7-41"]  # one row per application, composite ids
    assert [r["appliedTo.amount"] for _s, r in rows] == ["4.00", "6.00"]
    assert all(r["appliedTo.count"] == 2 for _s, r in rows)
    ((sid, row),) = payment_applications({**one, "appliedTo": []})  # unapplied: still staged, no invoice
    assert (sid, row["appliedTo.invoiceId"]) == ("7", None)
    assert payment_status({"total": "10.00", "balance": "0.00"}) == "Paid"
    assert payment_status({"total": "10.00", "balance": "4.00"}) == "PartiallyPaid"
    assert payment_status({"total": "10.00", "balance": "10.00"}) == "Unpaid"


def test_merged_customers_point_at_the_survivor(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    result = extract(project)
    merges = project.meta(st.CHECKPOINT_KEY)["merges"]["customers"]
    assert merges, "the seeded tenant has merged customers"
    assert any("merged into" in w for w in result.warnings)
    staged_customers = {sid for sid, _raw in project.iter_staged("customers")}
    for loser in merges:
        assert loser not in staged_customers
    for obj in ("jobs", "locations", "customer_contacts", "estimates", "invoices", "payments"):
        for _sid, raw in project.iter_staged(obj):
            assert str(raw["customerId"]) not in merges, (obj, raw["customerId"])
            if raw.get("customerIdBeforeMerge"):
                assert str(raw["customerId"]) == survivor(merges, str(raw["customerIdBeforeMerge"]))
    project.close()


def test_wrong_app_key_is_a_clear_error_and_changes_nothing(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base, app_key="ak1.not-the-key")
    before = _snapshot(project)
    with pytest.raises(MigratorError) as err:
        extract(project)
    assert "401" in str(err.value)
    assert "ST-App-Key" in str(err.value)
    assert _snapshot(project) == before
    project.close()


def test_both_headers_are_sent(served):
    sb, base = served
    client = STClient(st.Endpoint(base, f"{base}/connect/token", str(sb.tenant), sb.client_id, sb.client_secret,
                                  sb.app_key))
    seen = []
    client.http._client.event_hooks["request"].append(lambda request: seen.append(request.headers))
    try:
        rows = list(client.list_all("dispatch", "zones", {"active": "Any"}))
    finally:
        client.close()
    assert rows
    assert seen
    assert all(h.get("ST-App-Key") == sb.app_key and h["Authorization"].startswith("Bearer ") for h in seen)
    assert client.token_requests == 1  # cached until it expires


def test_wrong_secret_is_refused_at_sign_in(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    connection.store_secret(project, "source", sb.client_id, "cs1.wrong")
    with pytest.raises(SourceError, match="client credentials"):
        extract(project)
    project.close()


def test_mutations_show_up_as_new_changed_deleted(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    extract(project)
    report = sb.mutate(10)
    second = extract(project)
    by_obj = {o["source_object"]: o for o in second.objects}
    for name, entity in st.ENTITY_OF.items():
        got = by_obj[name]
        assert got["new"] == len(report["created"].get(entity, [])), (name, got)
        assert got["changed"] == len(report["updated"].get(entity, [])), (name, got)
        assert got["deleted"] == len(report["deactivated"].get(entity, [])), (name, got)
    assert second.checkpoint["mode"] == "delta"
    # The merge of this round re-points the loser's rows; the loser leaves staging.
    for merge in report["merged"]:
        loser = str(merge["id"])
        assert project.scalar("SELECT COUNT(*) FROM staging WHERE object='customers' AND source_id=?", (loser,)) == 0
        for _sid, raw in project.iter_staged("jobs"):
            assert str(raw["customerId"]) != loser
    # A third extraction with no activity finds nothing new.
    third = extract(project)
    assert all(o["new"] == o["changed"] == o["deleted"] == 0 for o in third.objects), third.objects
    project.close()


def test_since_forces_a_window(tmp_path, served):
    sb, base = served
    project = _project(tmp_path, sb, base)
    extract(project)
    report = sb.mutate(5)
    result = extract(project, since="2999-01-01T00:00:00Z")
    assert all(o["records"] == 0 for o in result.objects)
    assert result.checkpoint["mode"] == "since"
    result = extract(project, since="2000-01-01")
    assert _records(result)["jobs"] == sb.counts["jobs"]
    assert report["changed"]
    project.close()


def test_429s_are_retried_to_completion(tmp_path):
    server, base = _serve(tmp_path, faults="429=0.2,retry_after=0")
    try:
        sb = server.get_app().servicetitan
        project = _project(tmp_path, sb, base)
        result = extract(project)
        assert _records(result)["jobs"] == sb.counts["jobs"]
        assert result.requests > 20
        project.close()
    finally:
        server.shutdown()
        server.server_close()
        server.get_app().close()


def test_small_export_pages_and_recent_changes_are_deduplicated(tmp_path):
    server, base = _serve(tmp_path, faults="export_page_size=7,recent_overlap=3,max_page_size=25")
    try:
        sb = server.get_app().servicetitan
        project = _project(tmp_path, sb, base)
        result = extract(project)
        counts = sb.counts
        assert _records(result) == {e: counts[e] for e in _records(result)}
        assert sum(o["duplicates"] for o in result.objects) > 0  # the overlap really repeated rows
        project.close()
    finally:
        server.shutdown()
        server.server_close()
        server.get_app().close()


def test_a_failed_extraction_leaves_the_project_unchanged(tmp_path, served, monkeypatch):
    sb, base = served
    project = _project(tmp_path, sb, base)
    extract(project)
    sb.mutate(5)
    before = _snapshot(project)
    real = STClient.download

    def broken(self, module, resource):
        raise SourceError("the network went away")

    monkeypatch.setattr(STClient, "download", broken)
    with pytest.raises(SourceError):
        extract(project)
    assert _snapshot(project) == before
    monkeypatch.setattr(STClient, "download", real)
    assert extract(project).objects  # and the next run resumes from the same checkpoint
    project.close()


def test_flatten_and_dedupe_rules():
    row = {"id": 1, "address": {"street": "1 Main", "zip": "85001"}, "tagTypeIds": [4, 5], "active": False,
           "customFields": [{"typeId": 7, "name": "Permit Number", "value": "P-1"}], "items": [{"a": 1}],
           "externalData": [{"key": "legacyId", "value": "QB-1"}], "empty": {}}
    flat = flatten(row)
    assert flat["address.street"] == "1 Main"
    assert flat["tagTypeIds"] == "4, 5"
    assert flat["active"] == "false"
    assert flat["customFields.Permit Number"] == "P-1"
    assert flat["externalData.legacyId"] == "QB-1"
    assert json.loads(flat["items"]) == [{"a": 1}]
    assert flat["empty"] is None
    rows = Deduper()
    rows.add({"id": 1, "modifiedOn": "2024-01-02T00:00:00Z", "v": "new"})
    rows.add({"id": 1, "modifiedOn": "2024-01-01T00:00:00.500Z", "v": "old"})
    assert rows.rows["1"]["v"] == "new"
    assert rows.repeats == 1
    assert survivor({"1": "2", "2": "3"}, "1") == "3"
    assert survivor({"1": "2", "2": "1"}, "1") in ("1", "2")  # a cycle stops instead of looping
    assert Counter(survivor({}, str(i)) for i in range(3)) == Counter({"0": 1, "1": 1, "2": 1})
