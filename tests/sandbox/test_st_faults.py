"""ServiceTitan emulator: the 60 req/s rate limit and injected faults (§1.2 "Rate limits", shared FaultPlan)."""

from __future__ import annotations

import time

import httpx
import pytest

from crmmigrator_gui.sandbox.faults import DroppedConnection
from crmmigrator_gui.sandbox.servicetitan.app import ServiceTitanSandbox
from crmmigrator_gui.sandbox.servicetitan.testing import api_client, raw_client

ZONES = "/dispatch/v2/tenant/1234567/zones"


def test_rate_limit_429_with_retry_after() -> None:
    sandbox = ServiceTitanSandbox(records=10)
    with api_client(sandbox) as client:
        start = time.monotonic()
        statuses = [client.get(ZONES, params={"pageSize": 1}) for _ in range(75)]
        elapsed = time.monotonic() - start
        codes = [r.status_code for r in statuses]
        assert codes[:60] == [200] * 60
        if elapsed < 1.0:  # 75 calls inside one second: the 61st and later must be refused
            assert codes[60:] == [429] * 15
        limited = next(r for r in statuses if r.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        body = limited.json()
        assert body["status"] == 429
        assert set(body) == {"type", "title", "status", "traceId", "errors", "data"}
        time.sleep(1.05)
        assert client.get(ZONES).status_code == 200
    sandbox.close()


def test_rate_limit_configurable_and_token_endpoint_not_counted() -> None:
    sandbox = ServiceTitanSandbox(records=10, faults="rps=3")
    with api_client(sandbox) as client:
        codes = [client.get(ZONES).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
    with raw_client(sandbox) as raw:
        form = {"grant_type": "client_credentials", "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret}
        assert all(raw.post("/connect/token", data=form).status_code == 200 for _ in range(5))
    sandbox.close()


def test_injected_429_and_5xx() -> None:
    sandbox = ServiceTitanSandbox(records=10, faults="429=1,retry_after=7", rate_limit_per_second=1000)
    with api_client(sandbox) as client:
        r = client.get(ZONES)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "7"
        assert r.json()["status"] == 429
    sandbox.close()
    sandbox = ServiceTitanSandbox(records=10, faults="503=0.5,seed=3", rate_limit_per_second=1000)
    with api_client(sandbox) as client:
        codes = {client.get(ZONES).status_code for _ in range(40)}
        assert codes == {200, 503}
    sandbox.close()


def test_injected_timeout_and_drop() -> None:
    sandbox = ServiceTitanSandbox(records=10, faults="timeout=1,hang=10ms")
    with api_client(sandbox) as client:
        r = client.get(ZONES)
        assert r.status_code == 504
        assert r.json()["status"] == 504
    sandbox.close()
    sandbox = ServiceTitanSandbox(records=10, faults="drop=1")
    with api_client(sandbox) as client, pytest.raises(DroppedConnection):
        client.get(ZONES)
    sandbox.close()


def test_faults_do_not_hit_auth_errors_or_token_endpoint() -> None:
    sandbox = ServiceTitanSandbox(records=10, faults="500=1")
    with api_client(sandbox) as client:  # the token call itself succeeds
        assert client.get(ZONES).status_code == 500
    with httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url="http://st.localhost") as raw:
        assert raw.get(ZONES).status_code == 401
    assert sandbox.request_count >= 3
    sandbox.close()


def test_concurrent_reads_during_mutation_are_consistent() -> None:
    """Threads page through exports while mutate() runs: no errors, no torn pages (store lock + transaction)."""
    import threading

    sandbox = ServiceTitanSandbox(records=200, rate_limit_per_second=100_000, faults="export_page_size=50")
    errors: list[str] = []

    def reader() -> None:
        with api_client(sandbox) as client:
            for _ in range(5):
                params: dict[str, str] = {}
                while True:
                    r = client.get("/jpm/v2/tenant/1234567/export/jobs", params=params)
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
                    body = r.json()
                    if not body["hasMore"]:
                        break
                    params = {"from": body["continueFrom"]}

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):
        sandbox.mutate(10)
    for t in threads:
        t.join()
    assert errors == []
    sandbox.close()
