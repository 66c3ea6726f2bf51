"""Service-agnostic fault injection shared by every emulator (Dataverse, Salesforce, ServiceTitan).

Grammar (comma-separated ``key=value`` items, whitespace ignored, all optional)::

    STATUS=PROB          any 4xx/5xx status, e.g. 429=0.05, 500=0.01, 503=0.02
    timeout=PROB         hang for ``hang`` then answer 504
    hang=DURATION        default 30s
    drop=PROB            close the connection without an answer (served mode; in-process raises)
    lock=PROB            Salesforce UNABLE_TO_LOCK_ROW on writes (other emulators ignore it)
    latency=DURATION[-DURATION]   added to every request (fixed or uniform range)
    retry_after=SECONDS  Retry-After on injected 429s (default 1)
    seed=INT             reproducible draws
    anything else        kept in ``extra`` for the emulator (limit=6000/300s, concurrency=52, dop=4, rps=60 …)

PROB is a float in [0, 1] per HTTP request; DURATION is a number with ms|s|m (bare = seconds).
Each emulator decides how an injected fault looks on the wire (its own error body and codes); this
module only decides *whether* and *which*. Injected faults fire before a request runs, so they
never have side effects and a client may retry them blindly.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r} (use e.g. 20ms, 1.5s, 5m)")
    value = float(match.group(1))
    unit = match.group(2)
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


class DroppedConnection(Exception):
    """Raised by an emulator to make the server close the connection without answering."""


@dataclass(frozen=True)
class Injected:
    kind: str  # "status" | "timeout" | "drop" | "lock"
    status: int = 0
    retry_after: int = 1


@dataclass
class FaultPlan:
    """A parsed fault spec with a thread-safe, seedable random source."""

    status_prob: dict[int, float] = field(default_factory=dict)
    timeout_prob: float = 0.0
    drop_prob: float = 0.0
    lock_prob: float = 0.0
    hang: float = 30.0
    latency: tuple[float, float] = (0.0, 0.0)
    retry_after: int = 1
    seed: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        plan = cls()
        for item in (spec or "").split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep:
                raise ValueError(f"fault item {item!r} needs key=value")
            if key.isdigit():
                status = int(key)
                if not 400 <= status <= 599:
                    raise ValueError(f"fault status {status} must be 4xx or 5xx")
                plan.status_prob[status] = _prob(key, value)
            elif key == "timeout":
                plan.timeout_prob = _prob(key, value)
            elif key == "drop":
                plan.drop_prob = _prob(key, value)
            elif key == "lock":
                plan.lock_prob = _prob(key, value)
            elif key == "hang":
                plan.hang = parse_duration(value)
            elif key == "latency":
                low, _, high = value.partition("-")
                plan.latency = (parse_duration(low), parse_duration(high) if high else parse_duration(low))
            elif key == "retry_after":
                plan.retry_after = int(value)
            elif key == "seed":
                plan.seed = int(value)
            else:
                plan.extra[key] = value
        plan._rng = random.Random(plan.seed)
        return plan

    @property
    def active(self) -> bool:
        return bool(self.status_prob or self.timeout_prob or self.drop_prob or self.lock_prob or self.latency[1])

    def draw(self, *, write: bool = False) -> Injected | None:
        """Sleep the configured latency, then decide whether this request gets a fault."""
        with self._lock:
            delay = self._rng.uniform(*self.latency) if self.latency[1] else 0.0
            roll = self._rng.random()
        if delay:
            time.sleep(delay)
        threshold = 0.0
        for status, prob in sorted(self.status_prob.items()):
            threshold += prob
            if roll < threshold:
                return Injected("status", status, self.retry_after)
        threshold += self.timeout_prob
        if roll < threshold:
            return Injected("timeout", 504)
        threshold += self.drop_prob
        if roll < threshold:
            return Injected("drop")
        if write:
            threshold += self.lock_prob
            if roll < threshold:
                return Injected("lock", 400)
        return None


def _prob(key: str, value: str) -> float:
    prob = float(value)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"fault probability for {key} must be between 0 and 1")
    return prob
