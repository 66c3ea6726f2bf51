"""HTTP plumbing shared by destination clients: retries, throttling and request counting.

Why a wrapper around httpx.Client: the Dataverse service-protection limits answer 429 with
``Retry-After``; the documented client behaviour is to pause *all* workers for that long, back
off exponentially on 5xx and network errors, and never show raw 429 text to users. One gate
object shared by every thread implements that pause.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from crmmigrator_gui.engine.errors import DestinationError

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
DEFAULT_PARALLEL = 4  # before the destination says otherwise (Dataverse's usual x-ms-dop-hint)
MAX_PARALLEL = 8  # a laptop: more threads buy nothing but contention and bigger throttling bursts

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(work: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``work`` over ``items`` with at most ``workers`` at a time; results in input order.

    Why a helper: every parallel write must end before the caller commits its outcomes (the durability rule),
    so the pool is joined before this returns, even when one item raised; the first error (in input order)
    is then re-raised. With one worker or one item nothing leaves the calling thread.
    """
    if workers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="crm-write") as pool:
        futures = [pool.submit(work, item) for item in items]
    return [future.result() for future in futures]


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Consecutive slices of at most ``size`` items (one sub-request each)."""
    size = max(1, size)
    return [items[start : start + size] for start in range(0, len(items), size)]


class ThrottleGate:
    """A shared "not before" time: a 429 for one worker pauses every worker."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._sleep = sleep
        self.throttled = 0
        self.waited_seconds = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._not_before - time.monotonic()
            if delay > 0:
                self.waited_seconds += delay
        if delay > 0:
            self._sleep(delay)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.throttled += 1
            self._not_before = max(self._not_before, time.monotonic() + seconds)


class RetryingHttp:
    """httpx client with retry/backoff and a request counter.

    Args:
        base_url: absolute API root ending in ``/``.
        token: callable returning a bearer token (called per request; token providers cache).
        transport: optional httpx transport (the in-process sandbox uses ``httpx.WSGITransport``).
    """

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 8,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self._token = token
        self._max_retries = max_retries
        self._sleep = sleep
        self.gate = ThrottleGate(sleep)
        self.requests = 0
        self.retries = 0
        self.dop_hint: int | None = None
        self.server_date: datetime | None = None
        self._count_lock = threading.Lock()
        # No cookie persistence: spreads load across servers (Microsoft's guidance for bulk loads).
        self._client = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers=default_headers or {},
            cookies=None,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def _note_server_date(self, header: str | None) -> None:
        """Keep the server's clock (``Date`` header) of the latest answer: the run ledger stamps our writes with
        it, so rollback can compare them with the records' modified times without trusting this laptop's clock."""
        if not header:
            return
        try:
            stamp = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if stamp.tzinfo is not None:
            self.server_date = stamp

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the final response (any status) or raises DestinationError."""
        attempt = 0
        while True:
            self.gate.wait()
            all_headers = {"Authorization": f"Bearer {self._token()}"}
            all_headers.update(headers or {})
            try:
                with self._count_lock:
                    self.requests += 1
                response = self._client.request(
                    method, url, json=json, content=content, headers=all_headers, params=params
                )
            except httpx.TransportError as exc:
                attempt += 1
                if attempt > self._max_retries:
                    raise DestinationError(
                        f"cannot reach the destination at {self.base_url} ({type(exc).__name__}); "
                        "check the network and run the step again: it resumes"
                    ) from exc
                self._backoff(attempt)
                continue
            self._note_server_date(response.headers.get("Date"))
            hint = response.headers.get("x-ms-dop-hint")
            if hint and hint.isdigit() and int(hint) > 0:
                self.dop_hint = int(hint)
            if response.status_code in RETRYABLE_STATUS and attempt < self._max_retries:
                attempt += 1
                with self._count_lock:
                    self.retries += 1
                retry_after = response.headers.get("Retry-After")
                if response.status_code == 429:
                    seconds = float(retry_after) if retry_after and _is_number(retry_after) else 2.0**attempt
                    self.gate.pause(seconds)
                else:
                    self._backoff(attempt)
                continue
            if response.status_code == 401:
                raise DestinationError("the destination refused the credentials (401); run `connect` again", status=401)
            return response

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(30.0, 0.25 * 2**attempt) * (0.5 + random.random() / 2))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
