"""ServiceTitan emulator: export endpoints and continuation tokens, including the cutover delta (§1.2, §6.14)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.store import norm_ts
from crmmigrator_gui.sandbox.servicetitan.testing import api_client

EXPORTS = [("crm", "export/customers", "customers"), ("crm", "export/customers/contacts", "customer-contacts"),
           ("crm", "export/locations", "locations"), ("crm", "export/locations/contacts", "location-contacts"),
           ("jpm", "export/jobs", "jobs"), ("jpm", "export/appointments", "appointments"),
           ("jpm", "export/job-history", "job-history"),
           ("dispatch", "export/appointment-assignments", "appointment-assignments"),
           ("settings", "export/technicians", "technicians"), ("settings", "export/employees", "employees"),
           ("settings", "export/business-units", "business-units"), ("settings", "export/tag-types", "tag-types"),
           ("accounting", "export/invoices", "invoices"), ("accounting", "export/invoice-items", "invoice-items"),
           ("accounting", "export/payments", "payments"), ("sales", "estimates/export", "estimates")]


def url(module: str, path: str) -> str:
    return f"/{module}/v2/tenant/1234567/{path}"


def fresh(**kw: object) -> ServiceTitanSandbox:
    return ServiceTitanSandbox(rate_limit_per_second=100_000, faults="export_page_size=100", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sb() -> Iterator[ServiceTitanSandbox]:
    sandbox = fresh()
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def client(sb: ServiceTitanSandbox) -> Iterator[httpx.Client]:
    with api_client(sb) as c:
        yield c


def page(client: httpx.Client, path: str, module: str = "jpm", **params: object) -> dict:
    r = client.get(url(module, path), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def walk(client: httpx.Client, module: str, path: str, start: str = "", **params: object) -> tuple[list, str]:
    rows, token = [], start
    for _ in range(10_000):
        body = page(client, path, module, **({"from": token} if token else {}), **params)
        rows += body["data"]
        token = body["continueFrom"]
        if not body["hasMore"]:
            return rows, token
    raise AssertionError("export never finished")


def test_export_envelope(client: httpx.Client) -> None:
    body = page(client, "export/jobs")
    assert set(body) == {"data", "continueFrom", "hasMore"}
    assert body["hasMore"] is True
    assert len(body["data"]) == 100
    assert isinstance(body["continueFrom"], str)
    assert body["continueFrom"]


@pytest.mark.parametrize(("module", "path", "entity"), EXPORTS)
def test_full_walk_collects_every_id(client: httpx.Client, sb: ServiceTitanSandbox, module: str, path: str,
                                     entity: str) -> None:
    rows, _ = walk(client, module, path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == sb.counts[entity]
    assert all("active" in r for r in rows)


def test_export_includes_inactive_and_export_only_fields(client: httpx.Client) -> None:
    customers, _ = walk(client, "crm", "export/customers")
    assert any(not c["active"] for c in customers)
    assert any(c["mergedToId"] for c in customers)
    appts = page(client, "export/appointments")["data"]
    assert {"customerId", "active", "unused"} <= set(appts[0])
    inv = page(client, "export/invoices", "accounting")["data"][0]
    assert {"location", "invoiceType", "createdOn", "active", "sentStatus", "reviewStatus"} <= set(inv)
    pay = page(client, "export/payments", "accounting")["data"][0]
    assert {"businessUnit", "modifiedOn", "active"} <= set(pay)
    assert "appliedId" in pay["appliedTo"][0]


def test_ordered_by_modification_and_boundary_ties(client: httpx.Client) -> None:
    rows, _ = walk(client, "crm", "export/customers")
    stamps = [norm_ts(r["modifiedOn"]) for r in rows]
    assert stamps == sorted(stamps)
    small = ServiceTitanSandbox(records=300, rate_limit_per_second=100_000, faults="export_page_size=5")
    with api_client(small) as c:
        first = c.get(url("crm", "export/customers")).json()
        second = c.get(url("crm", "export/customers"), params={"from": first["continueFrom"]}).json()
    small.close()
    # The legacy bulk import shares one modifiedOn, so it straddles the page boundary (§6.14) ...
    assert first["data"][-1]["modifiedOn"] == second["data"][0]["modifiedOn"]
    # ... and the token still resumes exactly after the last row delivered.
    assert first["data"][-1]["id"] != second["data"][0]["id"]


def test_reused_token_repeats_the_same_page(client: httpx.Client) -> None:
    token = page(client, "export/jobs")["continueFrom"]
    again = page(client, "export/jobs", **{"from": token})
    once_more = page(client, "export/jobs", **{"from": token})
    assert again == once_more
    assert page(client, "export/jobs")["continueFrom"] == token


def test_from_date(client: httpx.Client) -> None:
    all_rows, _ = walk(client, "jpm", "export/jobs")
    cut = sorted(r["modifiedOn"] for r in all_rows)[700][:10]
    since, _ = walk(client, "jpm", "export/jobs", start=cut)
    expected = {r["id"] for r in all_rows if r["modifiedOn"][:10] >= cut}
    assert {r["id"] for r in since} == expected
    assert page(client, "export/jobs", **{"from": "2099-01-01"})["data"] == []


def test_include_recent_changes_repeats_rows(client: httpx.Client, sb: ServiceTitanSandbox) -> None:
    rows, token = walk(client, "jpm", "export/jobs", includeRecentChanges="true")
    ids = [r["id"] for r in rows]
    assert len(ids) > len(set(ids)) == sb.counts["jobs"]
    repeat = page(client, "export/jobs", **{"from": token, "includeRecentChanges": "true"})
    assert repeat["data"]
    assert not repeat["hasMore"]
    assert {r["id"] for r in repeat["data"]} <= set(ids)


def test_bad_tokens(client: httpx.Client) -> None:
    r = client.get(url("jpm", "export/jobs"), params={"from": "not-a-token!"})
    assert r.status_code == 400
    assert "from" in r.json()["errors"]
    other = page(client, "export/customers", "crm")["continueFrom"]
    assert client.get(url("jpm", "export/jobs"), params={"from": other}).status_code == 400


def test_mutate_then_continue_yields_exactly_the_changes() -> None:
    sandbox = fresh(records=300)
    with api_client(sandbox) as client:
        checkpoints = {}
        for module, path, entity in EXPORTS:
            rows, checkpoints[entity] = walk(client, module, path)
            assert len(rows) == sandbox.counts[entity]
        assert all(page(client, p, m, **{"from": checkpoints[e]})["data"] == [] for m, p, e in EXPORTS)
        before = sandbox.counts
        report = sandbox.mutate(20)
        assert report["updated"]
        assert report["created"]["customers"]
        assert report["deactivated"]
        assert report["merged"]
        assert report["merged"][0]["mergedToId"]
        for module, path, entity in EXPORTS:
            delta, _ = walk(client, module, path, start=checkpoints[entity])
            assert sorted(r["id"] for r in delta) == report["changed"].get(entity, []), entity
        created = set(report["created"]["customers"])
        delta, _ = walk(client, "crm", "export/customers", start=checkpoints["customers"])
        by_id = {r["id"]: r for r in delta}
        for cid in report["deactivated"]["customers"]:
            assert by_id[cid]["active"] is False
        merged = report["merged"][0]
        assert by_id[merged["id"]]["mergedToId"] == merged["mergedToId"]
        assert sandbox.counts["customers"] == before["customers"] + len(created)
        old_max = max(r["modifiedOn"] for r in walk(client, "crm", "export/customers")[0] if r["id"] not in by_id)
        assert all(r["modifiedOn"] > old_max for r in delta)
        listed = {r["id"] for r in client.get(url("crm", "customers"), params={"pageSize": 5000}).json()["data"]}
        assert created <= listed
        assert not set(report["deactivated"]["customers"]) & listed
        jobs = client.get(url("jpm", "jobs"), params={"modifiedOnOrAfter": delta[0]["modifiedOn"],
                                                       "pageSize": 5000}).json()["data"]
        assert set(report["updated"]["jobs"]) | set(report["created"]["jobs"]) <= {j["id"] for j in jobs}
        second = sandbox.mutate(5)
        assert second["updated"] != report["updated"]
    sandbox.close()
