"""Salesforce error shapes (reference §8.1) and the exception the handlers raise.

REST answers a JSON *array* of ``{"message","errorCode"[, "fields"]}``; SaveResult items in Collections use
``statusCode`` instead; OAuth uses ``{"error","error_description"}``; Bulk rows use
``CODE:message:fields --``. One exception type carries code/message/fields and renders each shape, so a
validation error raised deep in ``records`` can surface correctly on any endpoint.
"""

from __future__ import annotations

from typing import Any

NOT_FOUND_MSG = "The requested resource does not exist"


class SFError(Exception):
    """A REST-level failure: HTTP status plus one error item."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def rest(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def save_result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}

    def bulk(self) -> str:
        return f"{self.code}:{self.message}:{';'.join(self.fields or [])} --"


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class MultipleMatches(Exception):
    """An external-id lookup matched several rows (REST answers 300 with their URLs)."""

    def __init__(self, ids: list[str]):
        super().__init__(f"{len(ids)} matches")
        self.ids = ids


def bad(code: str, message: str, fields: list[str] | None = None) -> SFError:
    return SFError(400, code, message, fields)


def not_found(message: str = NOT_FOUND_MSG) -> SFError:
    return SFError(404, "NOT_FOUND", message)


def invalid_session() -> SFError:
    return SFError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def method_not_allowed(method: str, allowed: str = "GET") -> SFError:
    return SFError(
        405,
        "METHOD_NOT_ALLOWED",
        f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
    )


def malformed_query(message: str) -> SFError:
    return bad("MALFORMED_QUERY", message)


def json_parser(message: str) -> SFError:
    return bad("JSON_PARSER_ERROR", message)
