"""Fault injection and service-protection limits, so client retry logic can be tested locally.

Faults spec grammar (comma-separated ``key=value`` items, whitespace ignored, all optional)::

    spec      := item ("," item)*
    item      := STATUS "=" PROB        e.g. 429=0.05, 500=0.01, 503=0.02  (any 4xx/5xx status)
               | "timeout=" PROB        hang for ``hang`` then answer 504
               | "hang=" DURATION       default 30s
               | "latency=" DURATION ["-" DURATION]   added to every request (fixed or uniform range)
               | "retry_after=" SECONDS Retry-After of injected 429s (default 1)
               | "seed=" INT            make the random draws reproducible
               | "limit=" INT ["/" DURATION]   service-protection request window (default 6000/300s)
               | "concurrency=" INT     concurrent requests per caller (default 52)
               | "dop=" INT             value of the x-ms-dop-hint header (default 4)
    PROB      := float in [0, 1]        probability per HTTP request ($batch counts once)
    DURATION  := number with unit ms|s|m (bare number = seconds)

Example: ``"429=0.05,500=0.01,latency=20ms,retry_after=1"``.

Injected faults fire *before* the request is executed, so they never have side effects (a client may retry
them blindly). The service-protection window is the real 5-minute sliding window per caller (the bearer token
stands for the caller), with the real codes and messages.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from . import errors as E
from .errors import DataverseError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration '{text}' (use e.g. 20ms, 1.5s, 5m)")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "m" else value


class Faults:
    """Parsed fault spec plus the per-caller throttling state. Thread-safe."""

    def __init__(self, spec: str | None = None):
        self.status_prob: dict[int, float] = {}
        self.timeout_prob = 0.0
        self.hang = 30.0
        self.latency = (0.0, 0.0)
        self.retry_after = 1
        self.request_limit = 6000
        self.window = 300.0
        self.concurrency_limit = 52
        self.dop_hint = 4
        seed = None
        for raw in (spec or "").split(","):
            item = raw.strip()
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"invalid faults item '{item}' (expected key=value)")
            key, value = (s.strip() for s in item.split("=", 1))
            if key.isdigit():
                self.status_prob[int(key)] = self._prob(key, value)
            elif key == "timeout":
                self.timeout_prob = self._prob(key, value)
            elif key == "hang":
                self.hang = parse_duration(value)
            elif key == "latency":
                lo, _, hi = value.partition("-")
                self.latency = (parse_duration(lo), parse_duration(hi) if hi else parse_duration(lo))
            elif key == "retry_after":
                self.retry_after = int(value)
            elif key == "seed":
                seed = int(value)
            elif key == "limit":
                count, _, window = value.partition("/")
                self.request_limit = int(count)
                if window:
                    self.window = parse_duration(window)
            elif key == "concurrency":
                self.concurrency_limit = int(value)
            elif key == "dop":
                self.dop_hint = int(value)
            else:
                raise ValueError(f"unknown faults key '{key}'")
        for status in self.status_prob:
            if not 400 <= status <= 599:
                raise ValueError(f"fault status {status} is not an HTTP error status")
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._active: dict[str, int] = {}

    @staticmethod
    def _prob(key: str, value: str) -> float:
        p = float(value)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability for '{key}' must be within 0..1")
        return p

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
                raise DataverseError(
                    429,
                    E.THROTTLE_REQUESTS,
                    f"Number of requests exceeded the limit of {self.request_limit} over time window of "
                    f"{int(self.window)} seconds.",
                    {"Retry-After": str(wait)},
                )
            if self._active.get(caller, 0) >= self.concurrency_limit:
                raise DataverseError(
                    429,
                    E.THROTTLE_CONCURRENCY,
                    f"Number of concurrent requests exceeded the limit of {self.concurrency_limit}.",
                    {"Retry-After": "1"},
                )
            window.append(now)
            self._active[caller] = self._active.get(caller, 0) + 1
            draw = self._rng.random()
            lat = self._rng.uniform(*self.latency) if self.latency[1] else 0.0
        try:
            if lat:
                time.sleep(lat)
            self._inject(draw)
            yield
        finally:
            with self._lock:
                self._active[caller] -= 1

    def _inject(self, draw: float) -> None:
        acc = 0.0
        for status, p in self.status_prob.items():
            acc += p
            if draw < acc:
                if status == 429:
                    raise DataverseError(
                        429,
                        E.THROTTLE_REQUESTS,
                        f"Number of requests exceeded the limit of {self.request_limit} over time window of "
                        f"{int(self.window)} seconds.",
                        {"Retry-After": str(self.retry_after)},
                    )
                if status >= 500:
                    raise DataverseError(
                        status,
                        E.INJECTED_SERVER_ERROR,
                        "Generic SQL error." if status == 500 else "The service is temporarily unavailable.",
                    )
                raise DataverseError(status, E.INVALID_PROPERTY, f"Injected fault {status}.")
        acc += self.timeout_prob
        if draw < acc:
            time.sleep(self.hang)
            raise DataverseError(504, E.INJECTED_SERVER_ERROR, "The request timed out.")
