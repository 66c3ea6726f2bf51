"""OData ``$batch``: multipart/mixed parsing, change sets, Content-ID references, the response envelope.

Parsing accepts CRLF and LF-only line endings (Python clients such as ``dataverse-api`` send LF). Every
change set runs inside one store transaction, so a failing part rolls back the parts before it. The
response follows the reference: ``multipart/mixed; boundary=batchresponse_<guid>``, successful change sets
nested under ``changesetresponse_<guid>``, a failed change set reported as a single error part (with the
failing part's Content-ID). Without ``Prefer: odata.continue-on-error`` processing stops at the first failure
and the outer status is that failure's status, with a body holding just the failing part; with it, the outer
status is 200 and every part carries its own status.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from . import errors as E
from .errors import bad_request

if TYPE_CHECKING:
    from .app import DataverseSandbox, Request, Result

MAX_OPERATIONS = 1000
_BOUNDARY_RE = re.compile(r'boundary=("?)([^";]+)\1', re.IGNORECASE)
_VERSION_PATH = re.compile(r"^(?:https?://[^/]+)?/?api/data/v9\.\d/")


class Part:
    """One parsed MIME part: lower-cased headers and the raw content."""

    def __init__(self, headers: dict[str, str], content: str):
        self.headers = headers
        self.content = content


class _ChangeSetFailed(Exception):
    def __init__(self, rendered: str, status: int):
        super().__init__(status)
        self.rendered = rendered
        self.status = status


def _split_head(text: str) -> tuple[list[str], str]:
    m = re.search(r"\r?\n\r?\n", text)
    if not m:
        return text.splitlines(), ""
    return text[: m.start()].splitlines(), text[m.end() :]


def _headers(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def split_multipart(text: str, boundary: str) -> list[Part]:
    delim = re.compile(r"(?:^|\r?\n)--" + re.escape(boundary) + r"(--)?[ \t]*(?=\r?\n|$)")
    matches = list(delim.finditer(text))
    if not matches:
        raise bad_request(f"The batch body does not contain the boundary '{boundary}'.", E.PAYLOAD_PARSE)
    parts = []
    for i, m in enumerate(matches):
        if m.group(1):
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        chunk = re.sub(r"^\r?\n", "", text[m.end() : end], count=1)
        head, content = _split_head(chunk)
        parts.append(Part(_headers(head), content))
    return parts


def _boundary(content_type: str) -> str:
    m = _BOUNDARY_RE.search(content_type or "")
    if not m or not content_type.lower().startswith("multipart/mixed"):
        raise bad_request(
            "The $batch request must have Content-Type multipart/mixed with a boundary.", E.PAYLOAD_PARSE
        )
    return m.group(2)


def _inner_request(sb: DataverseSandbox, outer: Request, part: Part, refs: dict[str, str] | None) -> Request:
    from .app import Request

    lines, body = _split_head(part.content.lstrip("\r\n"))
    if not lines:
        raise bad_request("A batch part has no request line.", E.PAYLOAD_PARSE)
    bits = lines[0].split()
    if len(bits) < 2:
        raise bad_request(f"Invalid request line in batch part: '{lines[0]}'.", E.PAYLOAD_PARSE)
    method, url = bits[0], bits[1]
    if url.startswith("$"):
        ref_id = re.match(r"^\$([^/?]+)", url).group(1)
        if refs is None or ref_id not in refs:
            raise bad_request(
                f"Content-ID Reference: '${ref_id}' does not exist in the batch context.", E.BATCH_INVALID
            )
        url = refs[ref_id] + url[len(ref_id) + 1 :]
    path = _VERSION_PATH.sub("", url, count=1)
    if path.startswith(("http://", "https://")):
        raise bad_request(f"The URL '{url}' in the batch is not within the service root.", E.PAYLOAD_PARSE)
    path, _, query = path.lstrip("/").partition("?")
    headers = {
        **{k: v for k, v in outer.headers.items() if k in ("authorization", "prefer")},
        **_headers(lines[1:]),
    }
    if "prefer" in headers and "odata.continue-on-error" in headers["prefer"]:
        headers["prefer"] = ",".join(p for p in headers["prefer"].split(",") if "continue-on-error" not in p)
    return Request(method, path, query, headers, body.rstrip("\r\n").encode(), outer.base)


def _render(sb: DataverseSandbox, result: Result, content_id: str | None = None) -> str:
    from .app import reason

    status, headers, payload = result
    data, ctype = sb.render(payload)
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {status} {reason(status)}"]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append("OData-Version: 4.0")
    if "OData-EntityId" in headers and status < 300:
        lines.append(f"Location: {headers['OData-EntityId']}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n" + data.decode()


def _error_result(err: E.DataverseError) -> Result:
    return err.status, err.headers, err.body()


def handle(sb: DataverseSandbox, req: Request) -> Result:
    boundary = _boundary(req.headers.get("content-type", ""))
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("Stream was not readable.", E.PAYLOAD_PARSE) from exc
    items: list[tuple[str, Any]] = []
    total = 0
    for part in split_multipart(text, boundary):
        ctype = part.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            inner = split_multipart(part.content, _boundary(ctype))
            items.append(("changeset", inner))
            total += len(inner)
        else:
            items.append(("single", part))
            total += 1
    if total > MAX_OPERATIONS:
        raise bad_request(
            f"The number of requests in the batch ({total}) exceeds the limit of {MAX_OPERATIONS}.",
            E.BATCH_INVALID,
        )
    keep_going = "odata.continue-on-error" in req.prefer
    out_boundary = f"batchresponse_{uuid.uuid4()}"
    rendered: list[str] = []
    status = 200
    for kind, payload in items:
        if kind == "single":
            try:
                result = sb.execute(_inner_request(sb, req, payload, None))
            except E.DataverseError as err:
                result = _error_result(err)
            piece = _render(sb, result)
            if result[0] >= 400 and not keep_going:
                rendered, status = [piece], result[0]
                break
            rendered.append(piece)
            continue
        try:
            rendered.append(_run_changeset(sb, req, payload))
        except _ChangeSetFailed as failed:
            if not keep_going:
                rendered, status = [failed.rendered], failed.status
                break
            rendered.append(failed.rendered)
    body = "".join(f"--{out_boundary}\r\n{piece}\r\n" for piece in rendered) + f"--{out_boundary}--\r\n"
    headers = {"Content-Type": f"multipart/mixed; boundary={out_boundary}"}
    if keep_going:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return status, headers, body.encode()


def _run_changeset(sb: DataverseSandbox, outer: Request, parts: list[Any]) -> str:
    cs_boundary = f"changesetresponse_{uuid.uuid4()}"
    pieces: list[str] = []
    refs: dict[str, str] = {}
    with sb.store.transaction():
        for part in parts:
            content_id = part.headers.get("content-id")
            try:
                inner = _inner_request(sb, outer, part, refs)
                if inner.method == "GET":
                    raise bad_request("GET requests are not allowed inside a change set.", E.BATCH_INVALID)
                result = sb.dispatch(inner, refs)
            except E.DataverseError as err:
                raise _ChangeSetFailed(_render(sb, _error_result(err), content_id), err.status) from err
            if content_id is not None:
                location = result[1].get("OData-EntityId") or result[1].get("Location")
                if location is None and isinstance(result[2], dict) and "@odata.context" in result[2]:
                    location = _entity_path(sb, result[2], inner)
                if location:
                    refs[content_id] = _VERSION_PATH.sub("", location, count=1)
            pieces.append(_render(sb, result, content_id))
    body = "".join(f"--{cs_boundary}\r\n{p}\r\n" for p in pieces) + f"--{cs_boundary}--"
    return f"Content-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n{body}"


def _entity_path(sb: DataverseSandbox, payload: dict[str, Any], inner: Request) -> str | None:
    """With return=representation there is no OData-EntityId; rebuild the row URL from the body."""
    from .app import split_path

    set_name = split_path(inner.path)[0].partition("(")[0]
    ent = sb.catalog.by_set.get(set_name)
    rid = payload.get(ent.pk) if ent else None
    return f"{set_name}({rid})" if rid else None
