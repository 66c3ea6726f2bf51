"""OData ``$batch`` request building and response parsing (multipart/mixed, CRLF).

Used as the fallback when a bulk message fails (bulk messages are all-or-nothing, so the
batch with ``odata.continue-on-error`` tells us *which* rows are bad) and for rollbacks.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

CRLF = "\r\n"


def json_default(value: Any) -> Any:
    """Decimal → JSON number (exact decimal text), anything else → str."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value) if value == value.to_integral_value() else float(str(value))
    return str(value)


@dataclass
class BatchOp:
    method: str
    url: str  # absolute path, e.g. /api/data/v9.2/accounts(…)
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass
class BatchResult:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def entity_id(self) -> str | None:
        location = self.headers.get("odata-entityid") or self.headers.get("location") or ""
        match = re.search(r"\(([0-9a-fA-F-]{36})\)\s*$", location)
        return match.group(1) if match else None

    @property
    def error(self) -> tuple[str, str]:
        if isinstance(self.body, dict) and "error" in self.body:
            err = self.body["error"]
            return str(err.get("code", "")), str(err.get("message", ""))
        return "", f"HTTP {self.status}"


def build_batch(ops: list[BatchOp]) -> tuple[str, str]:
    """Each op as its own part (no change set) so one bad row does not sink the others."""
    boundary = f"batch_{uuid.uuid4()}"
    lines: list[str] = []
    for op in ops:
        lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", ""]
        lines.append(f"{op.method} {op.url} HTTP/1.1")
        headers = {"Accept": "application/json"}
        if op.body is not None:
            headers["Content-Type"] = "application/json; type=entry"
        headers.update(op.headers or {})
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append("")
        lines.append(json.dumps(op.body, default=json_default, ensure_ascii=False) if op.body is not None else "")
    lines.append(f"--{boundary}--")
    lines.append("")
    return CRLF.join(lines), boundary


def _boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError(f"no boundary in {content_type!r}")
    return match.group(1)


def _split_parts(body: str, boundary: str) -> list[str]:
    parts = re.split(rf"(?:\r?\n)?--{re.escape(boundary)}(?:--)?[ \t]*\r?\n?", body)
    return [p for p in parts if p.strip() and p.strip() != "--"]


def _parse_headers(block: str) -> dict[str, str]:
    headers = {}
    for line in re.split(r"\r?\n", block):
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return headers


def parse_batch_response(content_type: str, body: str) -> list[BatchResult]:
    """Flatten a batch response (including change-set responses) into results in order."""
    results: list[BatchResult] = []
    for part in _split_parts(body, _boundary_of(content_type)):
        head, _, rest = _head_rest(part)
        part_headers = _parse_headers(head)
        if part_headers.get("content-type", "").startswith("multipart/mixed"):
            results.extend(parse_batch_response(part_headers["content-type"], rest))
            continue
        status_line, _, after = rest.lstrip("\r\n").partition("\n")
        match = re.match(r"HTTP/1\.1\s+(\d{3})", status_line)
        status = int(match.group(1)) if match else 500
        inner_head, _, inner_body = _head_rest(after)
        inner_headers = _parse_headers(inner_head)
        text = inner_body.strip()
        parsed: Any = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        results.append(BatchResult(status, inner_headers, parsed))
    return results


def _head_rest(block: str) -> tuple[str, str, str]:
    match = re.search(r"\r?\n\r?\n", block)
    if not match:
        return block, "", ""
    return block[: match.start()], "", block[match.end() :]
