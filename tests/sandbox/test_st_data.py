"""ServiceTitan emulator: deterministic seeded data with the §6 traps, attachments, persistence."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client

T = "/{m}/v2/tenant/1234567/{p}"


@pytest.fixture(scope="module")
def sb() -> Iterator[ServiceTitanSandbox]:
    sandbox = ServiceTitanSandbox(rate_limit_per_second=100_000)
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def client(sb: ServiceTitanSandbox) -> Iterator[httpx.Client]:
    with api_client(sb) as c:
        yield c


def export_all(client: httpx.Client, module: str, path: str) -> list[dict]:
    rows, params = [], {}
    while True:
        body = client.get(T.format(m=module, p=path), params=params).json()
        rows += body["data"]
        if not body["hasMore"]:
            return rows
        params = {"from": body["continueFrom"]}


def test_sizes_follow_reference(sb: ServiceTitanSandbox) -> None:
    counts = sb.counts
    assert counts["customers"] == 200
    assert counts["jobs"] == 1000
    assert 250 <= counts["locations"] <= 400
    assert counts["technicians"] == 20
    assert counts["business-units"] == 5
    assert counts["zones"] == 8
    assert 1000 <= counts["appointments"] <= 3000
    assert 700 <= counts["invoices"] <= 900
    for entity in ("customer-contacts", "location-contacts", "appointment-assignments", "payments", "estimates",
                   "invoice-items", "job-history", "job-notes", "customer-notes", "tag-types", "campaigns",
                   "job-types", "pricebook-services", "pricebook-materials", "pricebook-equipment",
                   "form-submissions", "job-attachments", "employees"):
        assert counts[entity] > 0, entity
    small = ServiceTitanSandbox(records=100)
    assert small.counts["jobs"] == 100
    assert small.counts["customers"] == 20
    small.close()


def test_traps_present(client: httpx.Client, sb: ServiceTitanSandbox) -> None:
    contacts = export_all(client, "crm", "export/customers/contacts")
    emails = [c["value"] for c in contacts if c["type"] == "Email"]
    assert any(e != e.lower() for e in emails)
    assert any(e == e.lower() for e in emails)
    phones = [c for c in contacts if c["phoneSettings"]]
    assert any(re.match(r"^\(\d{3}\) \d{3}-\d{4}$", p["value"]) for p in phones)
    assert any(re.match(r"^\d{3}\.\d{3}\.\d{4}$", p["value"]) for p in phones)
    assert any(" x" in p["value"] for p in phones)
    assert any(p["value"] != p["phoneSettings"]["phoneNumber"] for p in phones)
    customers = export_all(client, "crm", "export/customers")
    assert any(c["mergedToId"] for c in customers)
    by_id = {c["id"]: c for c in customers}
    assert any(by_id[c["mergedToId"]]["mergedToId"] for c in customers if c["mergedToId"])  # a merge chain
    assert any(not re.fullmatch(r"[\x00-\x7f]*", c["name"]) for c in customers)  # Unicode names
    assert any(c["address"]["latitude"] == 0 and c["address"]["longitude"] == 0 for c in customers)
    assert any("\n" in (c["address"]["street"] or "") for c in customers)
    kinds = {t["trap"] for t in sb.manifest}
    assert {"email_mixed_case", "merged_customer", "unicode_name", "zero_latlong", "html_in_text",
            "inactive_technician", "total_mismatch"} <= kinds
    jobs = export_all(client, "jpm", "export/jobs")
    assert any("<p>" in (j["summary"] or "") for j in jobs)


def test_attachments_list_and_download(client: httpx.Client, sb: ServiceTitanSandbox) -> None:
    job_id = sb.store.query("SELECT parent FROM rows WHERE entity='job-attachments' ORDER BY id LIMIT 1", [])[0][0]
    listing = client.get(T.format(m="forms", p=f"jobs/{job_id}/attachments")).json()
    assert listing["data"]
    assert all(a["jobId"] == job_id for a in listing["data"])
    for att in listing["data"]:
        for path in (f"jobs/attachment/{att['id']}", f"jobs/attachments/{att['id']}"):
            r = client.get(T.format(m="forms", p=path))
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment;")
            assert "filename*=UTF-8''" in r.headers["content-disposition"]
            assert len(r.content) == att["size"]
            magic = b"\x89PNG\r\n\x1a\n" if att["contentType"] == "image/png" else b"%PDF-"
            assert r.content.startswith(magic)
    assert client.get(T.format(m="forms", p="jobs/attachment/1")).status_code == 404


def test_attachment_redirect_mode() -> None:
    sandbox = ServiceTitanSandbox(records=50, faults="attachment_redirect=true")
    att = sandbox.store.query("SELECT id FROM rows WHERE entity='job-attachments' ORDER BY id LIMIT 1", [])[0][0]
    with api_client(sandbox) as client:
        r = client.get(T.format(m="forms", p=f"jobs/attachment/{att}"))
        assert r.status_code == 302
        blob = httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url="http://st.localhost")
        with blob:
            got = blob.get(r.headers["location"])  # no credentials needed, like a signed blob URL
            assert got.status_code == 200
            assert got.content[:4] in (b"\x89PNG", b"%PDF")
            assert blob.get(f"/forms/v2/blobs/{att}?sig=forged").status_code == 403
        followed = client.get(T.format(m="forms", p=f"jobs/attachment/{att}"), follow_redirects=True)
        assert followed.status_code == 200
        assert followed.content == got.content
    sandbox.close()


def _snapshot(sandbox: ServiceTitanSandbox) -> dict[str, list]:
    with api_client(sandbox) as client:
        return {p: export_all(client, m, p) for m, p in (("crm", "export/customers"), ("jpm", "export/jobs"),
                                                         ("accounting", "export/invoices"))}


def test_deterministic_across_restarts_and_instances(tmp_path: Path) -> None:
    db = tmp_path / "st.sqlite"
    first = ServiceTitanSandbox(db, records=200, rate_limit_per_second=100_000)
    snap, counts = _snapshot(first), first.counts
    first.close()
    reopened = ServiceTitanSandbox(db, records=200, rate_limit_per_second=100_000)
    assert reopened.counts == counts
    assert _snapshot(reopened) == snap
    report = reopened.mutate(10)
    reopened.close()
    again = ServiceTitanSandbox(db, rate_limit_per_second=100_000)
    assert again.counts["customers"] == counts["customers"] + len(report["created"]["customers"])
    again.close()
    memory = ServiceTitanSandbox(records=200, rate_limit_per_second=100_000)
    assert _snapshot(memory) == snap
    memory.close()
    other = ServiceTitanSandbox(records=200, seed=8, rate_limit_per_second=100_000)
    assert _snapshot(other)["export/customers"] != snap["export/customers"]
    other.close()
