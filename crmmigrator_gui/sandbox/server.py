"""Serve the Dataverse sandbox on loopback with a threading WSGI server (stdlib only).

Used by ``crmmigrator sandbox serve`` and by tests that need a real socket. Binding is always 127.0.0.1:
the sandbox accepts any bearer token, so it must never be reachable from the network.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .dataverse.app import DataverseSandbox


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request to stderr; the CLI owns stderr, so stay quiet."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def _make(port: int, data: str | None, faults: str | None) -> tuple[WSGIServer, DataverseSandbox]:
    sandbox = DataverseSandbox(data, faults=faults)
    server = make_server(
        "127.0.0.1", port, sandbox, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    return server, sandbox


def serve(
    port: int = 0,
    data: str | None = None,
    faults: str | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until KeyboardInterrupt. ``ready`` receives the bound port (useful with ``port=0``)."""
    server, sandbox = _make(port, data, faults)
    try:
        if ready is not None:
            ready(server.server_address[1])
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sandbox.close()


def start_background(
    port: int = 0, data: str | None = None, faults: str | None = None
) -> tuple[WSGIServer, threading.Thread, str]:
    """Start a server thread for tests. Stop it with ``server.shutdown(); server.server_close()``.

    The sandbox instance is available as ``server.get_app()``.
    """
    server, _ = _make(port, data, faults)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="dataverse-sandbox"
    )
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"
