"""Composite hosting, generic faults (drop / timeout / latency / seed) and the TLS loopback server."""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
import time
import types

import httpx
import pytest

from crmmigrator_gui.sandbox import hosting
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox
from crmmigrator_gui.sandbox.faults import DroppedConnection
from crmmigrator_gui.sandbox.server import start_background

from .conftest import HEADERS, make_client


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    server.get_app().close()


def test_drop_in_process_raises_and_has_no_side_effects():
    sb = DataverseSandbox(faults="drop=1")
    try:
        with make_client(sb) as c, pytest.raises(DroppedConnection):
            c.post("accounts", json={"name": "never"})
        sb.faults.plan.drop_prob = 0.0
        with make_client(sb) as c:
            assert c.get("accounts/$count").text == "0"
    finally:
        sb.close()


def test_drop_over_a_socket_closes_without_a_response():
    server, thread, base = start_background(faults="drop=1")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/api/data/v9.2/WhoAmI", headers=HEADERS)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            conn.getresponse()
        conn.close()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS)
        # the server keeps serving after drops
        server.get_app().dataverse.faults.plan.drop_prob = 0.0
        assert httpx.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS).status_code == 200
    finally:
        _stop(server, thread)


def test_timeout_and_latency():
    sb = DataverseSandbox(faults="timeout=1,hang=50ms")
    try:
        with make_client(sb) as c:
            start = time.monotonic()
            r = c.get("WhoAmI")
            assert r.status_code == 504
            assert time.monotonic() - start >= 0.05
            assert r.json()["error"]["message"] == "The request timed out."
    finally:
        sb.close()
    sb = DataverseSandbox(faults="latency=30ms-40ms")
    try:
        with make_client(sb) as c:
            start = time.monotonic()
            assert c.get("WhoAmI").status_code == 200
            assert time.monotonic() - start >= 0.03
    finally:
        sb.close()


def test_faults_are_reproducible_from_seed():
    def statuses(spec: str) -> list[int]:
        sb = DataverseSandbox(faults=spec)
        try:
            with make_client(sb) as c:
                return [c.get("WhoAmI").status_code for _ in range(40)]
        finally:
            sb.close()

    first = statuses("429=0.3,503=0.2,seed=11")
    assert first == statuses("429=0.3,503=0.2,seed=11")
    assert {429, 503, 200} <= set(first)
    assert first != statuses("429=0.3,503=0.2,seed=12")


def test_composite_index_routing_and_404(tmp_path):
    app = hosting.build_apps(str(tmp_path / "run.sqlite"), None)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sandbox.localhost",
                          headers=HEADERS) as c:
            index = c.get("/").json()
            assert index["emulators"][0] == {
                "name": "dataverse",
                "prefixes": ["/api/data/"],
                "url": "http://sandbox.localhost/api/data/",
            }
            assert c.get("/api/data/v9.2/WhoAmI").status_code == 200
            r = c.get("/nothing/here")
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "NotFound"
        assert app.request_count == 3
        assert app.dataverse.request_count == 1
    finally:
        app.close()
    assert (tmp_path / "run.sqlite").exists()


def test_optional_emulators_mount_when_their_package_imports(monkeypatch, tmp_path):
    made: list = []

    class FakeSalesforce:
        prefixes = ("/services/", "/services/data/v60.0/")

        def __init__(self, db_path=None, *, faults=None):
            self.db_path, self.faults, self.closed = db_path, faults, False
            made.append(self)

        def __call__(self, environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"salesforce " + environ["PATH_INFO"].encode()]

        def close(self):
            self.closed = True

    class NoPrefixes:
        def __init__(self, db_path=None, *, faults=None):
            pass

    monkeypatch.setitem(sys.modules, "fake_sf", types.SimpleNamespace(SalesforceSandbox=FakeSalesforce))
    monkeypatch.setitem(sys.modules, "fake_st", types.SimpleNamespace(ServiceTitanSandbox=NoPrefixes))
    monkeypatch.setattr(hosting, "OPTIONAL_EMULATORS", {
        "salesforce": ("fake_sf", "SalesforceSandbox"),
        "servicetitan": ("fake_st", "ServiceTitanSandbox"),
        "missing": ("no.such.module", "Nope"),
    })
    app = hosting.build_apps(str(tmp_path / "run.sqlite"), "429=0,seed=1")
    try:
        assert made[0].db_path == str(tmp_path / "run.salesforce.sqlite")
        assert made[0].faults == "429=0,seed=1"
        assert set(app.skipped) == {"servicetitan", "missing"}
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://x", headers=HEADERS) as c:
            assert c.get("/services/data/v60.0/sobjects").text == "salesforce /services/data/v60.0/sobjects"
            assert c.get("/api/data/v9.2/WhoAmI").status_code == 200
            names = [e["name"] for e in c.get("/").json()["emulators"]]
            assert names == ["dataverse", "salesforce"]
    finally:
        app.close()
    assert made[0].closed
    app = hosting.build_apps(None, None)
    app.close()
    assert hosting.sibling_data_path(None, "salesforce") is None


def test_tls_server_with_trusted_ca(tmp_path):
    pytest.importorskip("trustme")  # runtime dependency of --tls; skip, don't fail, where it isn't installed
    server, thread, base = start_background(data=str(tmp_path / "tls.sqlite"), tls=True)
    try:
        assert base.startswith("https://127.0.0.1:")
        assert server.ca_path
        trust = ssl.create_default_context(cafile=server.ca_path)
        with httpx.Client(base_url=f"{base}/api/data/v9.2/", headers=HEADERS, verify=trust) as c:
            r = c.post("accounts", json={"name": "Over TLS"})
            assert r.status_code == 204
            assert r.headers["OData-EntityId"].startswith(f"{base}/api/data/v9.2/accounts(")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/data/v9.2/WhoAmI", headers=HEADERS)  # default trust store: refused
        # a client that fails the handshake does not take the server down
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with httpx.Client(verify=trust) as c:
            assert c.get(f"{base}/").json()["emulators"][0]["url"] == f"{base}/api/data/"
        ca_path = server.ca_path
    finally:
        _stop(server, thread)
    assert not __import__("os").path.exists(ca_path)  # temporary CA removed on close
