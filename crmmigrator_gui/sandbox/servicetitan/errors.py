"""Error type and wire shapes of the ServiceTitan emulator.

Every failure inside a resource call is raised as :class:`STError` and rendered as the RFC 7807 body that
the vendor OpenAPI files declare (``ApiErrorResponse``: ``type, title, status, traceId, errors, data``;
reference §1.2 "Error body"). The token endpoint is an OAuth server and answers with the RFC 6749 shape
``{"error": "..."}`` instead (see :mod:`.auth`).

The exact titles and ``type`` URIs are *chosen* (the reference does not quote them); they follow the
ASP.NET Core defaults the real API is built on, so clients should key on the HTTP status and the
``errors`` field names rather than on the wording.
"""

from __future__ import annotations

import uuid
from typing import Any

REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_TYPES = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    401: "https://tools.ietf.org/html/rfc7235#section-3.1",
    403: "https://tools.ietf.org/html/rfc7231#section-6.5.3",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    405: "https://tools.ietf.org/html/rfc7231#section-6.5.5",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    502: "https://tools.ietf.org/html/rfc7231#section-6.6.3",
    503: "https://tools.ietf.org/html/rfc7231#section-6.6.4",
    504: "https://tools.ietf.org/html/rfc7231#section-6.6.5",
}


def reason(status: int) -> str:
    return REASONS.get(status, "Error")


class STError(Exception):
    """A request failure that becomes a problem-details response.

    Args:
        status: HTTP status code.
        title: short summary (``title`` field).
        errors: ``{field: [messages]}``; the real API fills it for validation failures.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate`` …).
        data: the ``data`` object (machine-readable extras; usually empty).
    """

    def __init__(
        self,
        status: int,
        title: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ):
        super().__init__(title)
        self.status = status
        self.title = title
        self.errors = errors or {}
        self.headers = headers or {}
        self.data = data or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": _TYPES.get(self.status, _TYPES[400]),
            "title": self.title,
            "status": self.status,
            "traceId": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00",
            "errors": self.errors,
            "data": self.data,
        }


def bad_param(name: str, message: str) -> STError:
    """A query-parameter validation failure, shaped like ASP.NET model-binding errors."""
    return STError(400, "One or more validation errors occurred.", {name: [message]})


def not_found(what: str = "") -> STError:
    return STError(404, f"{what} was not found." if what else "Not Found")


def unauthorized(message: str, *, token_error: str | None = None) -> STError:
    """401 for a missing/invalid bearer token or app key; ``WWW-Authenticate`` as RFC 6750 asks."""
    challenge = "Bearer"
    if token_error:
        challenge += f' error="{token_error}", error_description="{message}"'
    return STError(401, "Unauthorized", {"authorization": [message]}, {"WWW-Authenticate": challenge})
