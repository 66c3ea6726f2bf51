"""Fault injection, service-protection limits (item 11) and the loopback server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import httpx
import pytest

from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.dataverse.faults import Faults
from crmmigrator_gui.sandbox.server import start_background

from .conftest import HEADERS, make_client


def test_faults_grammar():
    f = Faults("429=0.05, 500=0.01, latency=20ms, retry_after=3, limit=100/60s, concurrency=5, dop=8, seed=1")
    assert f.status_prob == {429: 0.05, 500: 0.01}
    assert f.latency == (0.02, 0.02)
    assert f.retry_after == 3
    assert (f.request_limit, f.window, f.concurrency_limit, f.dop_hint) == (100, 60.0, 5, 8)
    assert Faults("latency=10ms-30ms").latency == (0.01, 0.03)
    for bad in ("429", "429=2", "latency=fast", "limit=many", "concurrency=0", "200=0.5"):
        with pytest.raises(ValueError, match=r"\S"):
            Faults(bad)
    # The grammar is shared by every emulator of a composite sandbox: items meant for another emulator
    # (ServiceTitan's rps, Salesforce's lock) are kept in ``extra`` and ignored by Dataverse.
    other = Faults("rps=60,lock=0.5,drop=0.1,timeout=0.2,hang=50ms")
    assert other.extra == {"rps": "60"}
    assert (other.plan.drop_prob, other.plan.timeout_prob, other.plan.hang) == (0.1, 0.2, 0.05)


def test_injected_429_has_retry_after_and_no_side_effects():
    sb = DataverseSandbox(faults="429=1,retry_after=7")
    try:
        with make_client(sb) as c:
            r = c.post("accounts", json={"name": "never"})
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "7"
            assert r.json()["error"] == {
                "code": "0x80072322",
                "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            }
        sb.faults.status_prob.clear()
        with make_client(sb) as c:
            assert c.get("accounts/$count").text == "0"
    finally:
        sb.close()


def test_injected_server_error_and_dop_header():
    sb = DataverseSandbox(faults="500=1,dop=6")
    try:
        with make_client(sb) as c:
            r = c.get("WhoAmI")
            assert r.status_code == 500
            assert r.json()["error"]["code"].startswith("0x")
            assert r.headers["x-ms-dop-hint"] == "6"
    finally:
        sb.close()


def test_service_protection_request_window():
    sb = DataverseSandbox(faults="limit=3/300s")
    try:
        with make_client(sb) as c:
            assert [c.get("WhoAmI").status_code for _ in range(3)] == [200, 200, 200]
            r = c.get("WhoAmI")
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "0x80072322"
            assert int(r.headers["Retry-After"]) > 0
            other = c.get("WhoAmI", headers={"Authorization": "Bearer another-caller"})
            assert other.status_code == 200
    finally:
        sb.close()


def test_service_protection_concurrency():
    server, thread, base = start_background(faults="concurrency=1,latency=800ms")
    try:
        results: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=f"{base}/api/data/v9.2/", headers=HEADERS) as c:
                r = c.get("WhoAmI")
                results.append(r.status_code)
                if r.status_code == 429:
                    assert r.json()["error"]["code"] == "0x80072326"

        workers = [threading.Thread(target=call) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(results) == [200, 429, 429]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()


def test_loopback_server_end_to_end(tmp_path):
    server, thread, base = start_background(data=str(tmp_path / "served.sqlite"))
    try:
        with httpx.Client(base_url=f"{base}/api/data/v9.2/", headers=HEADERS) as c:
            r = c.post("accounts", json={"name": "Over TCP"})
            assert r.status_code == 204
            assert r.headers["OData-EntityId"].startswith(f"{base}/api/data/v9.2/accounts(")
            got = c.get(r.headers["OData-EntityId"], params={"$select": "name"})
            assert got.json()["name"] == "Over TCP"
            assert c.get("WhoAmI").headers["x-ms-dop-hint"] == "4"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()


def test_serve_blocks_until_keyboard_interrupt(tmp_path):
    code = (
        "from crmmigrator_gui.sandbox.server import serve; "
        f"serve(0, data={str(tmp_path / 's.sqlite')!r}, ready=lambda p: print(p, flush=True))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with httpx.Client(headers=HEADERS) as c:
            assert c.get(f"http://127.0.0.1:{port}/api/data/v9.2/WhoAmI").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
