"""Destination connections: the embedded sandbox by default, a served sandbox, or a real org.

Only non-secret settings (URL, auth method, tenant, client id) are stored in the project.
Secrets go to the OS keyring under the service name ``crmmigrator``; when no keyring backend
exists (a headless machine) we say so and refuse, rather than silently writing a file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import keyring
import keyring.errors

from crmmigrator_gui.engine.errors import MigratorError, UsageError
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.dataverse import DataverseClient

KEYRING_SERVICE = "crmmigrator"
AUTH_METHODS = ("sandbox", "client-credentials", "device-code", "browser", "jwt", "static-token")
EMBEDDED_URL = "http://sandbox.localhost"


class SandboxTransport(httpx.WSGITransport):
    """In-process transport to the embedded sandbox that fails like a network would.

    A fault-injected dropped connection raises inside the WSGI app; on a real socket the client
    would see the connection close, so it is surfaced as ``httpx.RemoteProtocolError``.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from crmmigrator_gui.sandbox.faults import DroppedConnection

        try:
            return super().handle_request(request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError("the server closed the connection", request=request) from exc


def embedded_sandbox_path(project: Project) -> Path:
    """The embedded sandbox's data file lives next to the project (served with ``sandbox serve --data``)."""
    return project.path.with_name(project.path.name + ".sandbox.sqlite")


def embedded_source_path(project: Project) -> Path:
    """The embedded *source* emulator (ServiceTitan, Salesforce-hosted ServiceTracker) for API sources."""
    return project.path.with_name(project.path.name + ".source.sqlite")


def store_app_key(project: Project, side: str, app_key: str) -> None:
    """ServiceTitan's ST-App-Key is a secret too: keyring only."""
    store_secret(project, side, "st-app-key", app_key)


def load_app_key(project: Project, side: str) -> str:
    return load_secret(project, side, "st-app-key")


def project_id(project: Project) -> str:
    value = project.meta("project_id")
    if not value:
        value = str(uuid.uuid4())
        with project.transaction():
            project.set_meta("project_id", value)
    return str(value)


def _secret_name(project: Project, side: str, client_id: str | None) -> str:
    return f"{project_id(project)}:{side}:{client_id or 'token'}"


def store_secret(project: Project, side: str, client_id: str | None, secret: str) -> None:
    try:
        keyring.set_password(KEYRING_SERVICE, _secret_name(project, side, client_id), secret)
    except keyring.errors.KeyringError as exc:
        raise MigratorError(
            "no OS keyring is available on this machine, so the secret cannot be stored safely "
            f"({type(exc).__name__}); install/unlock a Secret Service (GNOME Keyring, KWallet) and retry"
        ) from exc


def load_secret(project: Project, side: str, client_id: str | None) -> str:
    try:
        secret = keyring.get_password(KEYRING_SERVICE, _secret_name(project, side, client_id))
    except keyring.errors.KeyringError as exc:
        raise MigratorError(f"cannot read the secret from the OS keyring ({type(exc).__name__})") from exc
    if not secret:
        raise MigratorError(f"no secret stored for the {side} connection; run `crmmigrator connect` again")
    return secret


@dataclass
class ConnectionSettings:
    kind: str  # embedded | remote
    url: str | None = None
    auth: str = "sandbox"
    tenant: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    username: str | None = None
    faults: str | None = None  # embedded sandbox only: fault-injection spec (rehearse retries)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def settings(project: Project, side: str = "target") -> ConnectionSettings:
    data = project.meta(f"{side}_connection") or {"kind": "embedded"}
    return ConnectionSettings(**data)


def configure(
    project: Project,
    side: str,
    *,
    url: str | None,
    auth: str | None,
    tenant: str | None,
    client_id: str | None,
    token_url: str | None,
    username: str | None,
    secret: str | None,
    faults: str | None = None,
) -> ConnectionSettings:
    """Record a connection (secrets to the keyring only) as one audited step."""
    if side not in ("source", "target"):
        raise UsageError("connect takes `source` or `target`")
    method = auth or ("sandbox" if url is None else "static-token")
    if method not in AUTH_METHODS:
        raise UsageError(f"unknown --auth {method!r}; choose one of {', '.join(AUTH_METHODS)}")
    if url is None and method != "sandbox":
        raise UsageError("--url is required for a real destination")
    if method in ("client-credentials", "static-token") and not secret:
        raise UsageError("this auth method needs a secret: --secret-env VAR or --secret-stdin")
    conn = ConnectionSettings(
        kind="embedded" if url is None else "remote",
        url=url,
        auth=method,
        tenant=tenant,
        client_id=client_id,
        token_url=token_url,
        username=username,
        faults=faults if url is None else None,
    )
    if secret:
        store_secret(project, side, client_id, secret)
    with project.step("connect", {"side": side, **conn.to_json()}):
        project.set_meta(f"{side}_connection", conn.to_json())
    return conn


def _token_provider(project: Project, conn: ConnectionSettings) -> Any:
    if conn.auth == "sandbox":
        return lambda: "sandbox"
    if conn.auth == "static-token":
        token = load_secret(project, "target", conn.client_id)
        return lambda: token
    if conn.auth == "client-credentials":
        import msal  # imported lazily: only real orgs need it

        authority = conn.token_url or f"https://login.microsoftonline.com/{conn.tenant or 'organizations'}"
        app = msal.ConfidentialClientApplication(
            conn.client_id, authority=authority, client_credential=load_secret(project, "target", conn.client_id)
        )
        scopes = [f"{(conn.url or '').rstrip('/')}/.default"]

        def acquire() -> str:
            result = app.acquire_token_for_client(scopes=scopes)  # MSAL caches and refreshes
            if "access_token" not in result:
                raise MigratorError(f"sign-in failed: {result.get('error_description') or result.get('error')}")
            return str(result["access_token"])

        return acquire
    raise MigratorError(f"--auth {conn.auth} is not available in this release; use client-credentials")


def open_destination(project: Project) -> tuple[DataverseClient, Any]:
    """A Dataverse client for the project's target, and the embedded sandbox object (or None).

    For a ``salesforce`` target the client is a :class:`SalesforceClient` (see :func:`open_salesforce`).
    """
    if project.target == "salesforce":
        return open_salesforce(project)  # type: ignore[return-value]
    if project.target != "dynamics365":
        raise MigratorError(f"unknown destination {project.target!r}")
    conn = settings(project)
    if conn.kind == "embedded":
        from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

        sandbox = DataverseSandbox(embedded_sandbox_path(project), faults=conn.faults)
        client = DataverseClient(EMBEDDED_URL, lambda: "sandbox", transport=SandboxTransport(app=sandbox))
        return client, sandbox
    return DataverseClient(conn.url or "", _token_provider(project, conn)), None


class _SalesforceToken:
    """OAuth client-credentials token for a Salesforce My Domain, cached; refreshed after a 401."""

    def __init__(self, url: str, client_id: str, secret: str, token_url: str | None = None) -> None:
        self.token_url = token_url or f"{url.rstrip('/')}/services/oauth2/token"
        self.client_id = client_id
        self.secret = secret
        self.token: str | None = None

    def invalidate(self) -> None:
        self.token = None

    def __call__(self) -> str:
        if self.token is None:
            form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.secret}
            response = httpx.post(self.token_url, data=form, timeout=60)
            body = response.json() if response.content else {}
            if response.status_code >= 400 or "access_token" not in body:
                raise MigratorError(f"Salesforce sign-in failed: {body.get('error_description') or body.get('error')}")
            self.token = str(body["access_token"])
        return self.token


class _RefreshOn401(httpx.BaseTransport):
    """Marks the cached token stale when Salesforce answers 401, so the client's retry gets a fresh one."""

    def __init__(self, inner: httpx.BaseTransport, provider: _SalesforceToken) -> None:
        self.inner = inner
        self.provider = provider

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code == 401:
            self.provider.invalidate()
        return response

    def close(self) -> None:
        self.inner.close()


def open_salesforce(project: Project) -> tuple[Any, Any]:
    """A SalesforceClient for the project's target, and the embedded Salesforce sandbox (or None).

    Embedded: the sandbox file next to the project, with "Set Audit Fields upon Record Creation" granted
    to the integration user, in-process over HTTP. Remote: ``client-credentials`` against
    ``<url>/services/oauth2/token`` (or ``--token-url``), ``static-token``, or ``sandbox`` (a served sandbox:
    the same client-credentials flow with a throw-away client).
    """
    from crmmigrator_gui.engine.target.salesforce import SalesforceClient

    conn = settings(project)
    if conn.kind == "embedded":
        from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

        sandbox = SalesforceSandbox(embedded_sandbox_path(project), audit_fields_permission=True, faults=conn.faults)
        token = sandbox.issue_token()
        client = SalesforceClient(EMBEDDED_URL, lambda: token, transport=SandboxTransport(app=sandbox))
        return client, sandbox
    url = conn.url or ""
    if conn.auth == "static-token":
        secret = load_secret(project, "target", conn.client_id)
        return SalesforceClient(url, lambda: secret), None
    if conn.auth in ("client-credentials", "sandbox"):
        # A served sandbox (``--auth sandbox --url``) speaks the real OAuth client-credentials flow; its one
        # implicit connected app accepts any client, so there is no secret to keep in the keyring.
        client_id, secret = (
            ("crmmigrator-sandbox", "sandbox")
            if conn.auth == "sandbox"
            else (conn.client_id or "", load_secret(project, "target", conn.client_id))
        )
        provider = _SalesforceToken(url, client_id, secret, conn.token_url)
        return SalesforceClient(url, provider, transport=_RefreshOn401(httpx.HTTPTransport(), provider)), None
    raise MigratorError(f"--auth {conn.auth} is not available for Salesforce yet; use client-credentials")


@contextmanager
def destination(project: Project) -> Iterator[Any]:
    """The destination client for the project, closed (with its embedded sandbox) on the way out."""
    client, sandbox = open_destination(project)
    try:
        yield client
    finally:
        client.close()
        if sandbox is not None:
            sandbox.close()


def is_sandbox(project: Project) -> bool:
    return settings(project).auth == "sandbox"


def test_connection(project: Project) -> dict[str, Any]:
    """WhoAmI against the destination; returns what the user needs to see."""
    with destination(project) as client:
        if project.target == "salesforce":
            info = client.user_info()  # type: ignore[attr-defined]
            who = {"UserId": info.get("user_id"), "OrganizationId": info.get("organization_id")}
        else:
            who = client.whoami()
        return {
            "ok": True,
            "user_id": who.get("UserId"),
            "organization_id": who.get("OrganizationId"),
            "url": getattr(client, "org_url", None) or getattr(client, "instance_url", ""),
            "requests": client.requests,
        }
