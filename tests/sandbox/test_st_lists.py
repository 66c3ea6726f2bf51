"""ServiceTitan emulator: list endpoints — paging, active filter, incremental filters, shapes (§1.2–§1.6)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client

T = "/{module}/v2/tenant/1234567/{path}"
MONEY = re.compile(r"^-?\d+\.\d{2}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def url(module: str, path: str) -> str:
    return T.format(module=module, path=path)


@pytest.fixture(scope="module")
def sb() -> Iterator[ServiceTitanSandbox]:
    sandbox = ServiceTitanSandbox(rate_limit_per_second=100_000)
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def client(sb: ServiceTitanSandbox) -> Iterator[httpx.Client]:
    with api_client(sb) as c:
        yield c


def get(client: httpx.Client, module: str, path: str, **params: object) -> dict:
    r = client.get(url(module, path), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def walk(client: httpx.Client, module: str, path: str, **params: object) -> list[dict]:
    rows, page = [], 1
    while True:
        body = get(client, module, path, page=page, **params)
        rows += body["data"]
        if not body["hasMore"]:
            return rows
        page += 1


def test_envelope_and_default_page_size(client: httpx.Client) -> None:
    body = get(client, "jpm", "jobs")
    assert set(body) == {"page", "pageSize", "hasMore", "totalCount", "data"}
    assert (body["page"], body["pageSize"], body["hasMore"], body["totalCount"]) == (1, 50, True, None)
    assert len(body["data"]) == 50


def test_include_total_and_has_more(client: httpx.Client) -> None:
    first = get(client, "jpm", "jobs", pageSize=300, includeTotal="true")
    total = first["totalCount"]
    assert total == 1000
    last_page = -(-total // 300)
    last = get(client, "jpm", "jobs", pageSize=300, page=last_page)
    assert last["hasMore"] is False
    assert len(last["data"]) == total - 300 * (last_page - 1)
    assert get(client, "jpm", "jobs", pageSize=300, page=last_page + 1)["data"] == []
    ids = [r["id"] for r in walk(client, "jpm", "jobs", pageSize=300)]
    assert len(ids) == len(set(ids)) == total


def test_page_size_cap(client: httpx.Client, sb: ServiceTitanSandbox) -> None:
    assert len(get(client, "jpm", "jobs", pageSize=5000)["data"]) == 1000
    r = client.get(url("jpm", "jobs"), params={"pageSize": 5001})
    assert r.status_code == 400
    assert "pageSize" in r.json()["errors"]
    assert client.get(url("jpm", "jobs"), params={"pageSize": 0}).status_code == 400
    assert client.get(url("jpm", "jobs"), params={"page": "x"}).status_code == 400
    clamped = ServiceTitanSandbox(records=20, faults="max_page_size=7,page_size_mode=clamp")
    with api_client(clamped) as c:
        assert c.get(url("jpm", "jobs"), params={"pageSize": 100}).json()["pageSize"] == 7
    clamped.close()


def test_active_default_true_any_false(client: httpx.Client, sb: ServiceTitanSandbox) -> None:
    total = sb.counts["customers"]
    default = walk(client, "crm", "customers", pageSize=500)
    assert default
    assert all(r["active"] for r in default)
    anyrows = walk(client, "crm", "customers", pageSize=500, active="Any")
    inactive = walk(client, "crm", "customers", pageSize=500, active="False")
    assert len(anyrows) == total == len(default) + len(inactive)
    assert inactive
    assert not any(r["active"] for r in inactive)
    assert get(client, "crm", "customers", active="any", pageSize=1, includeTotal="true")["totalCount"] == total
    assert client.get(url("crm", "customers"), params={"active": "maybe"}).status_code == 400
    merged = [r for r in anyrows if r["mergedToId"]]
    assert merged
    assert all(not r["active"] for r in merged)


def test_get_by_id_returns_inactive_customer(client: httpx.Client) -> None:
    row = get(client, "crm", "customers", active="False", pageSize=1)["data"][0]
    assert get(client, "crm", f"customers/{row['id']}") == row


def test_modified_on_or_after_and_before(client: httpx.Client) -> None:
    rows = walk(client, "jpm", "jobs", pageSize=1000)
    stamps = sorted(r["modifiedOn"][:19] for r in rows)
    cut = stamps[len(stamps) // 2] + "Z"
    after = walk(client, "jpm", "jobs", pageSize=1000, modifiedOnOrAfter=cut)
    before = walk(client, "jpm", "jobs", pageSize=1000, modifiedBefore=cut)
    assert len(after) + len(before) == len(rows)
    assert 0 < len(after) < len(rows)
    assert all(r["modifiedOn"][:19] >= cut[:19] for r in after)
    assert client.get(url("jpm", "jobs"), params={"modifiedOnOrAfter": "yesterday"}).status_code == 400
    created = walk(client, "jpm", "jobs", pageSize=1000, createdOnOrAfter=cut)
    assert all(r["createdOn"][:19] >= cut[:19] for r in created)


def test_ids_and_sort(client: httpx.Client) -> None:
    body = get(client, "jpm", "jobs", ids="1000003,1000001,1000002")
    assert [r["id"] for r in body["data"]] == [1000001, 1000002, 1000003]
    desc = get(client, "jpm", "jobs", sort="-Id", pageSize=3)["data"]
    assert [r["id"] for r in desc] == [1001000, 1000999, 1000998]
    mods = [r["modifiedOn"] for r in get(client, "jpm", "jobs", sort="+ModifiedOn", pageSize=200)["data"]]
    assert [m[:19] for m in mods] == sorted(m[:19] for m in mods)
    assert client.get(url("jpm", "jobs"), params={"sort": "+Summary"}).status_code == 400
    too_many = ",".join(str(1000001 + i) for i in range(51))
    assert client.get(url("jpm", "jobs"), params={"ids": too_many}).status_code == 400


def test_foreign_key_filters_and_nested_routes(client: httpx.Client) -> None:
    job = get(client, "jpm", "jobs", pageSize=1)["data"][0]
    appts = get(client, "jpm", "appointments", jobId=job["id"])["data"]
    assert len(appts) == job["appointmentCount"]
    assert {a["id"] for a in appts} >= {job["firstAppointmentId"], job["lastAppointmentId"]}
    by_customer = get(client, "jpm", "jobs", customerId=job["customerId"], pageSize=500)["data"]
    assert job["id"] in {j["id"] for j in by_customer}
    contacts = walk(client, "crm", "customers/contacts", pageSize=1000)
    owner = contacts[0]["customerId"]
    nested = get(client, "crm", f"customers/{owner}/contacts")["data"]
    assert nested
    assert all(c["customerId"] == owner for c in nested)
    statuses = get(client, "jpm", "jobs", jobStatus="Canceled,Hold", pageSize=1000)["data"]
    assert statuses
    assert {j["jobStatus"] for j in statuses} <= {"Canceled", "Hold"}


def test_every_list_path_answers(client: httpx.Client) -> None:
    for module, path in [("crm", "customers"), ("crm", "customers/contacts"), ("crm", "locations"),
                         ("crm", "locations/contacts"), ("jpm", "jobs"), ("jpm", "appointments"),
                         ("jpm", "job-types"), ("dispatch", "appointment-assignments"), ("dispatch", "zones"),
                         ("settings", "technicians"), ("settings", "employees"), ("settings", "business-units"),
                         ("settings", "tag-types"), ("marketing", "campaigns"), ("sales", "estimates"),
                         ("sales", "estimates/items"), ("accounting", "invoices"), ("accounting", "payments"),
                         ("pricebook", "services"), ("pricebook", "materials"), ("pricebook", "equipment"),
                         ("forms", "forms"), ("forms", "submissions")]:
        assert get(client, module, path)["data"], (module, path)
    job_id = get(client, "jpm", "jobs", pageSize=1)["data"][0]["id"]
    assert get(client, "jpm", f"jobs/{job_id}/history")["data"]


def test_shapes_follow_reference(client: httpx.Client) -> None:
    customer = get(client, "crm", "customers", pageSize=1)["data"][0]
    assert set(customer["address"]) == {"street", "unit", "city", "state", "zip", "country", "latitude", "longitude"}
    assert customer["type"] in ("Residential", "Commercial")
    assert ISO_Z.match(customer["createdOn"])
    assert ISO_Z.match(customer["modifiedOn"])
    jobs = get(client, "jpm", "jobs", pageSize=1000)["data"]
    assert {j["jobStatus"] for j in jobs} <= {"Scheduled", "Dispatched", "InProgress", "Hold", "Completed", "Canceled"}
    assert "Canceled" in {j["jobStatus"] for j in jobs}
    assert {j["priority"] for j in jobs} == {"Low", "Normal", "High", "Urgent"}
    assert all("active" not in j and isinstance(j["jobNumber"], str) for j in jobs)
    assert all(j["jobNumber"] != str(j["id"]) for j in jobs)
    appts = get(client, "jpm", "appointments", pageSize=1000)["data"]
    assert {a["status"] for a in appts} <= {"Scheduled", "Dispatched", "Working", "Hold", "Done", "Canceled"}
    assert all("customerId" not in a and "unused" not in a for a in appts)
    assigns = get(client, "dispatch", "appointment-assignments", pageSize=1000)["data"]
    assert {a["status"] for a in assigns} <= {"Scheduled", "Dispatched", "Working", "Done"}
    contact = get(client, "crm", "customers/contacts", pageSize=1)["data"][0]
    assert "active" not in contact
    assert contact["type"] in ("Phone", "MobilePhone", "Email", "Fax")
    zone = get(client, "dispatch", "zones", pageSize=1)["data"][0]
    assert isinstance(zone["zips"], list)
    assert "latitude" not in zone
    notes_owner = get(client, "jpm", "jobs", pageSize=1000)["data"]
    for job in notes_owner:
        notes = get(client, "jpm", f"jobs/{job['id']}/notes")["data"]
        if notes:
            assert set(notes[0]) == {"text", "isPinned", "createdById", "createdOn", "modifiedOn"}
            break
    else:
        pytest.fail("no job notes seeded")


def test_money_strings_on_accounting_numbers_on_sales(client: httpx.Client) -> None:
    invoices = get(client, "accounting", "invoices", pageSize=200)["data"]
    for inv in invoices:
        for key in ("subTotal", "salesTax", "total", "balance"):
            assert isinstance(inv[key], str), (key, inv[key])
            assert MONEY.match(inv[key]), (key, inv[key])
        assert 1 <= len(inv["items"]) <= 6
        for item in inv["items"]:
            for key in ("quantity", "cost", "totalCost", "price", "total"):
                assert isinstance(item[key], str)
                assert MONEY.match(item[key])
        assert "active" not in inv
        assert "createdOn" not in inv
    consistent = [i for i in invoices
                  if sum(Decimal(x["total"]) for x in i["items"]) + Decimal(i["salesTax"]) == Decimal(i["total"])]
    assert len(consistent) >= len(invoices) * 0.9
    payments = get(client, "accounting", "payments", pageSize=200)["data"]
    assert all(MONEY.match(p["total"]) and MONEY.match(p["unappliedAmount"]) for p in payments)
    assert all("modifiedOn" not in p and "appliedId" not in p["appliedTo"][0] for p in payments)
    est = get(client, "sales", "estimates", pageSize=1)["data"][0]
    assert isinstance(est["items"][0]["total"], float)
    assert set(est["status"]) == {"value", "name"}
    assert isinstance(get(client, "crm", "customers", pageSize=1)["data"][0]["balance"], float)
