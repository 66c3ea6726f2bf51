"""Serve the sandbox emulators on loopback with a threading WSGI server (stdlib + optional TLS).

Used by ``crmmigrator sandbox serve`` and by tests that need a real socket. What is served is the composite
app of :mod:`crmmigrator_gui.sandbox.hosting` (Dataverse under ``/api/data/``, plus Salesforce and
ServiceTitan when their packages are installed). Binding is always 127.0.0.1: the sandbox accepts any
bearer token, so it must never be reachable from the network.

- Threaded (one thread per connection, daemon threads), HTTP/1.0 one request per connection, no access log.
- ``drop`` faults: the app raises :class:`~crmmigrator_gui.sandbox.faults.DroppedConnection`; the handler
  then closes the socket without writing a byte, as a dying load balancer would.
- ``tls=True``: a throw-away CA and a server certificate for ``127.0.0.1``/``localhost``/``::1`` are made
  with ``trustme``; the CA certificate is written as PEM to ``server.ca_path`` so clients can trust it
  (``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` / ``httpx.Client(verify=ca_path)``).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .faults import DroppedConnection
from .hosting import CompositeApp, build_apps

log = logging.getLogger(__name__)


class SandboxServer(ThreadingMixIn, WSGIServer):
    """The loopback server; ``ca_path`` is the trusted CA's PEM file when serving TLS, else None."""

    daemon_threads = True
    allow_reuse_address = True
    ca_path: str | None = None
    scheme: str = "http"
    _ssl_context: ssl.SSLContext | None = None
    _owns_ca = False

    def server_close(self) -> None:
        super().server_close()
        if self._owns_ca and self.ca_path:
            Path(self.ca_path).unlink(missing_ok=True)

    def get_app(self) -> CompositeApp:  # narrowed return type for callers
        return super().get_app()  # type: ignore[return-value]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self._ssl_context is not None:
            # Handshake later, in the connection's own thread, so a slow client can't stall accept().
            conn = self._ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up, fail the TLS handshake or time out are routine for a test server.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(ServerHandler):
    def handle_error(self) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, DroppedConnection):
            self.request_handler.dropped = True  # type: ignore[attr-defined]
            return
        log.error("sandbox app raised", exc_info=True)
        if not self.headers_sent:
            self.result = self.error_output(self.environ, self.start_response)
            self.finish_response()


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request to stderr; the CLI owns stderr, so stay quiet."""

    timeout = 120  # socket timeout per connection: a stuck client can't pin a thread for ever
    dropped = False

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.raw_requestline or not self.parse_request():
            return
        handler = _Handler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())
        if self.dropped:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish(self) -> None:
        if self.dropped:
            self.connection.close()
            return
        super().finish()


def _tls_context(server: SandboxServer, ca_path: str | None) -> ssl.SSLContext:
    import trustme

    ca = trustme.CA(organization_name="CRM Migrator sandbox")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    if ca_path is None:
        fd, ca_path = tempfile.mkstemp(prefix="crmmigrator-sandbox-ca-", suffix=".pem")
        os.close(fd)
        server._owns_ca = True
    tmp = Path(ca_path).with_name(Path(ca_path).name + ".tmp")
    tmp.write_bytes(ca.cert_pem.bytes())
    os.replace(tmp, ca_path)
    server.ca_path = str(ca_path)
    return ctx


def _make(
    port: int, data: str | None, faults: str | None, tls: bool, ca_path: str | None = None
) -> SandboxServer:
    app = build_apps(data, faults)
    try:
        server = SandboxServer(("127.0.0.1", port), _QuietHandler)
        server.set_app(app)
        if tls:
            server._ssl_context = _tls_context(server, ca_path)
            server.scheme = "https"
            server.base_environ["HTTPS"] = "on"  # wsgi.url_scheme = https, so returned links are https
    except BaseException:
        app.close()
        raise
    return server


def serve(
    port: int = 0,
    data: str | None = None,
    faults: str | None = None,
    ready: Callable[..., None] | None = None,
    tls: bool = False,
    ca_path: str | None = None,
) -> None:
    """Serve until KeyboardInterrupt.

    ``ready`` is called once the socket is bound: ``ready(port)`` for plain HTTP, ``ready(port, ca_path)``
    with ``tls=True`` (``ca_path`` = the PEM file of the CA to trust; a temporary file unless ``ca_path``
    is given here). The temporary CA file is removed on shutdown.
    """
    server = _make(port, data, faults, tls, ca_path)
    try:
        if ready is not None:
            if tls:
                ready(server.port, server.ca_path)
            else:
                ready(server.port)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()  # also removes a temporary CA file
        server.get_app().close()


def start_background(
    port: int = 0, data: str | None = None, faults: str | None = None, tls: bool = False
) -> tuple[SandboxServer, threading.Thread, str]:
    """Start a server thread for tests; returns ``(server, thread, base_url)``.

    ``base_url`` is ``http://127.0.0.1:PORT`` (``https://`` with ``tls=True``; trust ``server.ca_path``).
    The composite app is ``server.get_app()`` (its Dataverse emulator: ``server.get_app().dataverse``).
    A temporary CA file is removed by ``server_close()``.
    Stop with ``server.shutdown(); server.server_close(); server.get_app().close()``.
    """
    server = _make(port, data, faults, tls)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="crmmigrator-sandbox"
    )
    thread.start()
    return server, thread, server.base_url
