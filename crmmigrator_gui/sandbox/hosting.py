"""One WSGI app that hosts every sandbox emulator side by side, routed by path prefix.

``build_apps(data, faults)`` mounts:

- Dataverse (:class:`~crmmigrator_gui.sandbox.dataverse.app.DataverseSandbox`) under ``/api/data/``, with
  its data in ``data`` itself;
- Salesforce and ServiceTitan, **only when their packages import** and their class declares ``prefixes``
  (they are optional: a missing or broken package is skipped and reported in the index), each with a
  sibling data file ``<stem>.salesforce.sqlite`` / ``<stem>.servicetitan.sqlite`` next to ``data``;
- ``/`` (exactly): a small JSON index of what is mounted, so a person or a client can see what is served.

Every emulator is in memory when ``data`` is None. The same ``faults`` spec goes to all emulators (the
shared grammar of :mod:`crmmigrator_gui.sandbox.faults`; each ignores the items meant for the others).
Requests go to the emulator with the longest matching path prefix; anything else is ``404`` JSON.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .dataverse.app import DataverseSandbox

log = logging.getLogger(__name__)

# name -> (module, class): the optional emulators, built by other packages.
OPTIONAL_EMULATORS = {
    "salesforce": ("crmmigrator_gui.sandbox.salesforce.app", "SalesforceSandbox"),
    "servicetitan": ("crmmigrator_gui.sandbox.servicetitan.app", "ServiceTitanSandbox"),
}


def sibling_data_path(data: str | None, name: str) -> str | None:
    """``/x/run.sqlite`` -> ``/x/run.salesforce.sqlite`` (None stays None: in-memory)."""
    if data is None:
        return None
    path = Path(data)
    return str(path.with_name(f"{path.stem}.{name}.sqlite"))


def _json(start_response: Any, status: str, payload: Any) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        status, [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class CompositeApp:
    """WSGI app routing by the longest matching path prefix to the mounted emulators."""

    def __init__(self, dataverse: DataverseSandbox, others: dict[str, Any] | None = None):
        self.dataverse = dataverse
        self.apps: dict[str, Any] = {"dataverse": dataverse, **(others or {})}
        self.skipped: dict[str, str] = {}
        routes: list[tuple[str, Any]] = []
        for app in self.apps.values():
            routes += [(prefix, app) for prefix in _prefixes(app)]
        self._routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def salesforce(self) -> Any | None:
        return self.apps.get("salesforce")

    @property
    def servicetitan(self) -> Any | None:
        return self.apps.get("servicetitan")

    @property
    def request_count(self) -> int:
        """HTTP requests received by the composite app (all emulators, the index and 404s)."""
        with self._lock:
            return self._count

    def route(self, path: str) -> Any | None:
        for prefix, app in self._routes:
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return app
        return None

    def index(self, origin: str) -> dict[str, Any]:
        return {
            "name": "CRM Migrator sandbox",
            "emulators": [
                {"name": name, "prefixes": list(_prefixes(app)), "url": origin + _prefixes(app)[0]}
                for name, app in self.apps.items()
            ],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped.items()],
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self._count += 1
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/":
            host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
            return _json(start_response, "200 OK", self.index(f"{environ.get('wsgi.url_scheme', 'http')}://{host}"))
        app = self.route(path)
        if app is None:
            return _json(
                start_response,
                "404 Not Found",
                {"error": {"code": "NotFound", "message": f"No sandbox emulator is mounted at '{path}'."}},
            )
        return app(environ, start_response)

    def close(self) -> None:
        for name, app in self.apps.items():
            try:
                app.close()
            except Exception:  # one emulator's bug must not keep the others' files open
                log.warning("closing the %s sandbox failed", name, exc_info=True)


def _prefixes(app: Any) -> tuple[str, ...]:
    return tuple(getattr(app, "prefixes", ()) or ())


def _load_optional(name: str, data: str | None, faults: str | None) -> tuple[Any | None, str | None]:
    """Build one optional emulator; (None, reason) when its package is missing or not ready."""
    module_name, class_name = OPTIONAL_EMULATORS[name]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - missing, or mid-development and failing to import
        return None, f"{module_name} does not import ({type(exc).__name__}: {exc})"
    cls = getattr(module, class_name, None)
    if cls is None:
        return None, f"{module_name} has no {class_name}"
    if not isinstance(getattr(cls, "prefixes", None), list | tuple | set | frozenset):
        return None, f"{class_name} declares no .prefixes"
    try:
        app = cls(sibling_data_path(data, name), faults=faults)
    except ValueError:
        raise  # an invalid faults spec is the caller's error
    except Exception as exc:  # noqa: BLE001 - an optional emulator must not stop the others
        return None, f"{class_name} could not start ({type(exc).__name__}: {exc})"
    if not _prefixes(app):
        app.close()
        return None, f"{class_name} declares no .prefixes"
    return app, None


def build_apps(data: str | None, faults: str | None) -> CompositeApp:
    """Build the composite app: Dataverse always; Salesforce/ServiceTitan when their packages import."""
    dataverse = DataverseSandbox(data, faults=faults)
    others: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    try:
        for name in OPTIONAL_EMULATORS:
            app, reason = _load_optional(name, data, faults)
            if app is None:
                skipped[name] = reason or "unavailable"
                log.info("sandbox: %s emulator not mounted: %s", name, reason)
            else:
                others[name] = app
    except BaseException:
        dataverse.close()
        for app in others.values():
            app.close()
        raise
    composite = CompositeApp(dataverse, others)
    composite.skipped = skipped
    return composite
