"""Salesforce's retry and error rules on top of the shared :class:`~.http.RetryingHttp` (reference §8.3, §9).

:class:`SalesforceApi` wraps ``RetryingHttp`` (bearer token per request, 429/5xx/network retries with
backoff, request counter) and adds, for every call:

- ``UNABLE_TO_LOCK_ROW`` answered for a whole request -> resent with backoff, at most ``lock_retries`` times
  (per-record lock errors inside Collections results are handled in :meth:`SalesforceApi._collection`,
  which resends only the locked records — or the whole chunk under ``allOrNone``);
- 403 ``REQUEST_LIMIT_EXCEEDED``: "TotalRequests" = the daily budget is spent -> :class:`DestinationError`
  naming the budget (from ``Sforce-Limit-Info``); "ConcurrentPerOrgLongTxn" = momentary overload -> retried;
- 401 ``INVALID_SESSION_ID`` -> one more try if the token callable now returns a different token (it
  refreshed), else a :class:`DestinationError` asking the user to reconnect;
- 5xx still failing after RetryingHttp's retries -> :class:`DestinationError`;
- ``Sforce-Limit-Info: api-usage=N/LIMIT`` parsed from every response into :attr:`SalesforceApi.api_usage`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.target.http import RetryingHttp
from crmmigrator_gui.engine.target.sf_codec import collection_chunks, to_json
from crmmigrator_gui.engine.target.sf_types import (
    LOCK_CODE,
    ROLLED_BACK_CODE,
    RecordResult,
    limit_info,
    rest_errors,
    save_result,
)

API_HEADERS = {
    "Accept": "application/json",
    "Sforce-Call-Options": "client=CRMMigrator",
    "Sforce-Auto-Assign": "FALSE",  # imported cases/leads keep their owner (no assignment rules)
}
COLLECTION_SIZE = 200
LOCK_RETRIES = 6
BUSY_RETRIES = 6


def _only_lock(result: RecordResult) -> bool:
    return bool(result.errors) and all(code == LOCK_CODE for code in result.codes)


class SalesforceApi:
    """REST plumbing for one org and API version; :class:`~.salesforce.SalesforceClient` builds on it."""

    def __init__(
        self,
        instance_url: str,
        token: Callable[[], str],
        *,
        api_version: str = "62.0",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.instance_url = instance_url.rstrip("/")
        self.api_version = api_version.lstrip("vV")
        self._token = token
        self._used_token: str | None = None
        self._sleep = sleep or time.sleep
        self.http = RetryingHttp(
            f"{self.instance_url}/services/data/v{self.api_version}/",
            self._bearer,
            transport=transport,
            sleep=self._sleep,
            default_headers=API_HEADERS,
        )
        self.api_usage: tuple[int, int] | None = None
        self.lock_retries = LOCK_RETRIES
        self.lock_retried = 0  # records/requests resent after UNABLE_TO_LOCK_ROW

    def close(self) -> None:
        self.http.close()

    @property
    def requests(self) -> int:
        return self.http.requests

    def _bearer(self) -> str:
        token = self._token()
        self._used_token = token
        return token

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(10.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))

    def _send(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One API call with the Salesforce retry rules; returns any non-fatal response for the caller."""
        all_headers = dict(headers or {})
        if payload is not None:
            content = to_json(payload)
            all_headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        locks = busy = 0
        session_retried = False
        while True:
            try:
                response = self.http.request(method, path, content=content, headers=all_headers, params=params)
            except DestinationError as exc:
                if exc.status != 401:
                    raise
                used = self._used_token
                if not session_retried and self._token() != used:
                    session_retried = True  # the provider refreshed: one more try with the new token
                    continue
                raise DestinationError(
                    "Salesforce rejected the session (401 INVALID_SESSION_ID): the access token expired or was "
                    "revoked; reconnect to the org (run `connect` again) and rerun the step: it resumes",
                    status=401,
                    code="INVALID_SESSION_ID",
                ) from exc
            usage = limit_info(response.headers.get("Sforce-Limit-Info"))
            if usage is not None:
                self.api_usage = usage
            status = response.status_code
            if status < 400:
                return response
            code, message, _ = rest_errors(response)[0]
            if code == LOCK_CODE and locks < self.lock_retries:
                locks += 1
                self.lock_retried += 1
                self._backoff(locks)
                continue
            if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                if "TotalRequests" not in message and busy < BUSY_RETRIES:
                    busy += 1
                    self._backoff(busy + 2)
                    continue
                raise self._limit_error(message)
            if status >= 500:
                raise DestinationError(
                    f"Salesforce is unavailable ({status} {code}: {message}) after several retries; "
                    "try again later, the step resumes",
                    status=status,
                    code=code,
                )
            return response

    def _limit_error(self, message: str) -> DestinationError:
        if "TotalRequests" in message or (self.api_usage and self.api_usage[0] >= self.api_usage[1]):
            budget = (
                f" ({self.api_usage[0]:,} of {self.api_usage[1]:,} requests used in the rolling 24 hours)"
                if self.api_usage
                else ""
            )
            text = (
                f"Salesforce's daily API request limit (DailyApiRequests) is used up{budget}: "
                "REQUEST_LIMIT_EXCEEDED. Wait for the 24-hour window to free requests or ask the Salesforce "
                "admin for a higher limit, then run the step again: it resumes"
            )
        else:
            text = (
                f"Salesforce refused the request as too many long-running requests are in progress "
                f"(REQUEST_LIMIT_EXCEEDED: {message}); run the step again later: it resumes"
            )
        return DestinationError(text, status=403, code="REQUEST_LIMIT_EXCEEDED")

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            code, message, fields = rest_errors(response)[0]
            where = f" [{', '.join(fields)}]" if fields else ""
            raise DestinationError(
                f"{what}: {message}{where} ({response.status_code} {code})", status=response.status_code, code=code
            )
        return response

    def _json(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        what: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = self._check(self._send(method, path, payload, params=params, headers=headers), what)
        return response.json() if response.content else None

    def _collection(
        self,
        method: str,
        path: str,
        items: list[Any],
        types: list[str],
        *,
        all_or_none: bool,
        what: str,
    ) -> list[RecordResult]:
        """Send items in chunks of <= 200 and return SaveResults in input order, resending locked rows."""
        results: list[RecordResult | None] = [None] * len(items)
        for chunk in collection_chunks(types, COLLECTION_SIZE):
            pending = chunk
            attempt = 0
            while pending:
                if method == "DELETE":
                    params = {"ids": ",".join(items[i] for i in pending), "allOrNone": str(all_or_none).lower()}
                    response = self._send("DELETE", path, params=params)
                else:
                    body = {"allOrNone": all_or_none, "records": [items[i] for i in pending]}
                    response = self._send(method, path, body)
                data = self._check(response, what).json()
                if not isinstance(data, list) or len(data) != len(pending):
                    count = len(data) if isinstance(data, list) else "no"
                    raise DestinationError(f"{what}: Salesforce answered {count} results for {len(pending)} records")
                outcome = [save_result(item) for item in data]
                retry: list[int] = []  # input indexes to resend after UNABLE_TO_LOCK_ROW
                if attempt < self.lock_retries:
                    if all_or_none:
                        real = [
                            r for r in outcome if not r.ok and not _only_lock(r) and ROLLED_BACK_CODE not in r.codes
                        ]
                        if not real and any(_only_lock(r) for r in outcome):
                            retry = list(pending)
                    else:
                        retry = [i for i, r in zip(pending, outcome, strict=True) if _only_lock(r)]
                resend = set(retry)
                for i, r in zip(pending, outcome, strict=True):
                    if i not in resend:
                        results[i] = r
                if retry:
                    attempt += 1
                    self.lock_retried += len(retry)
                    self._backoff(attempt)
                pending = retry
        return [r if r is not None else RecordResult(False) for r in results]
