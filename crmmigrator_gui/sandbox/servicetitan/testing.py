"""Helpers for tests and local tooling: an httpx client already holding a token and the app key.

Kept in the package (not in a conftest) so product-level tests of the extraction engine can reuse it; it
goes through the real token endpoint, so it exercises the same flow a client would.
"""

from __future__ import annotations

import httpx

from .app import ServiceTitanSandbox

BASE_URL = "http://st.localhost"


def raw_client(sandbox: ServiceTitanSandbox) -> httpx.Client:
    """An unauthenticated client bound to the in-process app."""
    return httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url=BASE_URL)


def fetch_token(client: httpx.Client, sandbox: ServiceTitanSandbox) -> str:
    r = client.post("/connect/token", data={"grant_type": "client_credentials", "client_id": sandbox.client_id,
                                             "client_secret": sandbox.client_secret})
    r.raise_for_status()
    return r.json()["access_token"]


def api_client(sandbox: ServiceTitanSandbox) -> httpx.Client:
    """A client whose default headers carry ``Authorization: Bearer …`` and ``ST-App-Key``."""
    with raw_client(sandbox) as auth:  # a separate client, so the returned one can still be used in ``with``
        token = fetch_token(auth, sandbox)
    client = raw_client(sandbox)
    client.headers.update({"Authorization": f"Bearer {token}", "ST-App-Key": sandbox.app_key})
    return client


def tenant_path(sandbox: ServiceTitanSandbox, module: str, resource: str) -> str:
    return f"/{module}/v2/tenant/{sandbox.tenant}/{resource}"
