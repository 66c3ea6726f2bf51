"""Helpers for the Salesforce sandbox tests: an httpx client over WSGI, and a real TLS loopback server.

simple-salesforce hard-codes ``https://{instance}`` for every URL (reference §1.8), so the conformance tests
serve the emulator over TLS with a ``trustme`` CA on ``wsgiref`` + ``ThreadingMixIn`` in a background thread.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

BASE = "http://sf.localhost"
V = "/services/data/v62.0"


def make_client(sb: SalesforceSandbox, *, token: bool = True) -> httpx.Client:
    client = httpx.Client(transport=httpx.WSGITransport(app=sb), base_url=BASE)
    if token:
        client.headers["Authorization"] = f"Bearer {sb.issue_token()}"
    return client


def add_field(
    client: httpx.Client,
    sb: SalesforceSandbox,
    obj: str,
    name: str = "Source_System_ID__c",
    meta: dict[str, Any] | None = None,
    *,
    grant: bool = True,
) -> None:
    """The product's standard setup: a unique external-id Text field via Tooling, then FLS for it."""
    metadata = meta or {
        "label": name[:-3].replace("_", " "),
        "type": "Text",
        "length": 64,
        "externalId": True,
        "unique": True,
        "caseSensitive": False,
        "required": False,
    }
    r = client.post(f"{V}/tooling/sobjects/CustomField", json={"FullName": f"{obj}.{name}", "Metadata": metadata})
    assert r.status_code == 201, r.text
    if grant:
        r = client.post(
            f"{V}/sobjects/FieldPermissions",
            json={
                "ParentId": sb.permset_id,
                "SobjectType": obj,
                "Field": f"{obj}.{name}",
                "PermissionsRead": True,
                "PermissionsEdit": True,
            },
        )
        assert r.status_code == 201, r.text


def create(client: httpx.Client, obj: str, body: dict[str, Any]) -> str:
    r = client.post(f"{V}/sobjects/{obj}", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_job(client: httpx.Client, kind: str, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"{V}/jobs/{kind}/{job_id}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted") or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


def run_ingest(client: httpx.Client, job: dict[str, Any], csv_text: str | bytes) -> dict[str, Any]:
    r = client.post(f"{V}/jobs/ingest", json=job)
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    data = csv_text.encode() if isinstance(csv_text, str) else csv_text
    r = client.put(f"{V}/jobs/ingest/{job_id}/batches", content=data, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    r = client.patch(f"{V}/jobs/ingest/{job_id}", json={"state": "UploadComplete"})
    assert r.status_code == 200, r.text
    return wait_job(client, "ingest", job_id)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def setup_environ(self) -> None:
        super().setup_environ()
        self.base_environ["HTTPS"] = "on"  # wsgiref derives wsgi.url_scheme from it


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Served:
    instance_url: str
    ca_path: str


@contextmanager
def serve_tls(sb: SalesforceSandbox, tmp_path: Any) -> Iterator[Served]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    server = make_server("127.0.0.1", 0, sb, server_class=_ThreadingServer, handler_class=_QuietHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Served(f"https://localhost:{server.server_address[1]}", str(ca_path))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(name="sb")
def sb_fixture() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox()
    yield sandbox
    sandbox.close()


@pytest.fixture(name="client")
def client_fixture(sb: SalesforceSandbox) -> Iterator[httpx.Client]:
    with make_client(sb) as c:
        yield c


@pytest.fixture(name="ext_client")
def ext_client_fixture(sb: SalesforceSandbox, client: httpx.Client) -> httpx.Client:
    """A client whose org has Source_System_ID__c (unique external id, FLS granted) on Account and Contact."""
    add_field(client, sb, "Account")
    add_field(client, sb, "Contact")
    return client
