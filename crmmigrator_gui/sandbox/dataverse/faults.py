"""Dataverse's side of fault injection: how injected faults look on the wire, and service protection.

The spec grammar and the random draws are the shared :class:`crmmigrator_gui.sandbox.faults.FaultPlan`
(``STATUS=PROB``, ``timeout``, ``hang``, ``drop``, ``latency``, ``retry_after``, ``seed``; see that module).
Dataverse reads three emulator-specific items from ``plan.extra``::

    limit=INT ["/" DURATION]   service-protection request window per caller (default 6000/300s)
    concurrency=INT            concurrent requests per caller (default 52)
    dop=INT                    value of the x-ms-dop-hint header (default 4)

Other unknown items are ignored here (they belong to the other emulators of a composite sandbox, e.g.
``rps=60`` for ServiceTitan or ``lock=0.01`` for Salesforce), so one ``--faults`` string can drive them all.

Example: ``"429=0.05,500=0.01,drop=0.01,latency=20ms,retry_after=1,seed=7"``.

Injected faults fire *before* the request is executed, so they never have side effects (a client may retry
them blindly). ``drop`` raises :class:`~crmmigrator_gui.sandbox.faults.DroppedConnection`: the loopback
server closes the socket without answering; in-process the exception reaches the HTTP client. The
service-protection window is the real 5-minute sliding window per caller (the bearer token stands for the
caller), with the real codes and messages.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from ..faults import DroppedConnection, FaultPlan, parse_duration
from . import errors as E
from .errors import DataverseError

__all__ = ["DroppedConnection", "Faults", "parse_duration"]


class Faults:
    """Parsed fault plan plus the per-caller throttling state. Thread-safe."""

    def __init__(self, spec: str | None = None):
        self.plan = FaultPlan.parse(spec)
        extra = self.plan.extra
        self.request_limit = 6000
        self.window = 300.0
        self.concurrency_limit = 52
        self.dop_hint = 4
        try:
            if "limit" in extra:
                count, _, window = extra["limit"].partition("/")
                self.request_limit = int(count)
                if window:
                    self.window = parse_duration(window)
            if "concurrency" in extra:
                self.concurrency_limit = int(extra["concurrency"])
            if "dop" in extra:
                self.dop_hint = int(extra["dop"])
        except ValueError as exc:
            raise ValueError(f"invalid faults spec {spec!r}: {exc}") from exc
        if self.request_limit < 1 or self.concurrency_limit < 1 or self.dop_hint < 1:
            raise ValueError("limit, concurrency and dop must be positive")
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._active: dict[str, int] = {}

    # Views on the shared plan (kept for callers and tests that read them).
    @property
    def status_prob(self) -> dict[int, float]:
        return self.plan.status_prob

    @property
    def latency(self) -> tuple[float, float]:
        return self.plan.latency

    @property
    def retry_after(self) -> int:
        return self.plan.retry_after

    @property
    def extra(self) -> dict[str, str]:
        return self.plan.extra

    @staticmethod
    def caller(authorization: str) -> str:
        return hashlib.sha1(authorization.encode()).hexdigest()[:16]

    def remaining(self, caller: str) -> int:
        with self._lock:
            return max(0, self.request_limit - len(self._windows.get(caller, ())))

    @contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        """Apply limits and injected faults for one request; raise DataverseError to refuse it."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(caller, deque())
            while window and now - window[0] >= self.window:
                window.popleft()
            if len(window) >= self.request_limit:
                wait = max(1, math.ceil(self.window - (now - window[0])))
                raise self._throttled(wait)
            if self._active.get(caller, 0) >= self.concurrency_limit:
                raise DataverseError(
                    429,
                    E.THROTTLE_CONCURRENCY,
                    f"Number of concurrent requests exceeded the limit of {self.concurrency_limit}.",
                    {"Retry-After": "1"},
                )
            window.append(now)
            self._active[caller] = self._active.get(caller, 0) + 1
        try:
            self._inject()  # sleeps the latency while the request counts as active
            yield
        finally:
            with self._lock:
                self._active[caller] -= 1

    def _throttled(self, wait: int) -> DataverseError:
        return DataverseError(
            429,
            E.THROTTLE_REQUESTS,
            f"Number of requests exceeded the limit of {self.request_limit} over time window of "
            f"{int(self.window)} seconds.",
            {"Retry-After": str(wait)},
        )

    def _inject(self) -> None:
        fault = self.plan.draw()
        if fault is None:
            return
        if fault.kind == "drop":
            raise DroppedConnection("injected fault: connection dropped")
        if fault.kind == "timeout":
            time.sleep(self.plan.hang)
            raise DataverseError(504, E.INJECTED_SERVER_ERROR, "The request timed out.")
        status = fault.status
        if status == 429:
            raise self._throttled(fault.retry_after)
        if status >= 500:
            raise DataverseError(
                status,
                E.INJECTED_SERVER_ERROR,
                "Generic SQL error." if status == 500 else "The service is temporarily unavailable.",
            )
        raise DataverseError(status, E.INVALID_PROPERTY, f"Injected fault {status}.")
