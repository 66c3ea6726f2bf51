"""Error type and the error codes the sandbox answers with.

Every failure inside the emulator is raised as :class:`DataverseError` and rendered by the WSGI layer as
``{"error":{"code":"0x…","message":"…"}}``, the only error body shape the real Web API uses.

Codes marked *chosen* below are not confirmed by Microsoft documentation (the reference tags them
[unverified]); they live here, in one table, so they can be changed without touching the logic. Clients
should key on the HTTP status and the message pattern rather than on these codes.
"""

from __future__ import annotations

# Confirmed by the reference fact sheet (doc / obs).
INVALID_PROPERTY = "0x0"
NOT_FOUND_SEGMENT = "0x8006088a"
RECORD_NOT_FOUND = "0x80040217"
PAYLOAD_PARSE = "0x80048d19"
MAX_LENGTH = "0x80044331"
DUPLICATE_PK = "0x80040237"
DUPLICATE_KEY = "0x80060892"
ATTACHMENT_TOO_BIG = "0x80044a02"
THROTTLE_REQUESTS = "0x80072322"
THROTTLE_TIME = "0x80072321"
THROTTLE_CONCURRENCY = "0x80072326"
SQL_ERROR = "0x80044150"

# Chosen (unverified): see the module docstring.
OUT_OF_RANGE = "0x80044331"
REQUIRED_MISSING = "0x80040200"
INVALID_STATE = "0x80040203"
RECORD_CLOSED = "0x80040203"
DISABLED_OWNER = "0x80040225"
UNSUPPORTED_MESSAGE = "0x80040800"
METADATA_DUPLICATE = "0x80047013"
METADATA_INVALID = "0x80040203"
BATCH_INVALID = "0x0"
AUTH_MISSING = "0x80072560"
INJECTED_SERVER_ERROR = "0x80044150"


class DataverseError(Exception):
    """A request failure that becomes an OData error response.

    Args:
        status: HTTP status code.
        code: hex error code (``0x…``).
        message: the message text, matching the real service where it is known.
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def invalid_property(name: str, entity: str) -> DataverseError:
    return DataverseError(
        400,
        INVALID_PROPERTY,
        f"Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{entity}'.",
    )


def unknown_select(name: str, type_name: str) -> DataverseError:
    return DataverseError(
        400,
        INVALID_PROPERTY,
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'.",
    )


def not_found(entity: str, rid: str) -> DataverseError:
    return DataverseError(404, RECORD_NOT_FOUND, f"{entity} With Id = {rid} Does Not Exist")


def segment_not_found(segment: str) -> DataverseError:
    return DataverseError(404, NOT_FOUND_SEGMENT, f"Resource not found for the segment '{segment}'.")


def bad_request(message: str, code: str = INVALID_PROPERTY) -> DataverseError:
    return DataverseError(400, code, message)


def invalid_key(entity: str) -> DataverseError:
    return DataverseError(
        400,
        INVALID_PROPERTY,
        f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{entity}'. "
        "Ensure that "
        "the names and number of key properties match the declared or alternate key properties for the "
        "resource 'Microsoft.Dynamics.CRM." + entity + "'.",
    )


def undeclared_nav(name: str) -> DataverseError:
    return DataverseError(
        400,
        PAYLOAD_PARSE,
        f"An undeclared property '{name}' which only has property annotations in the payload but no property "
        "value was found in the payload. In OData, only declared navigation properties and declared named "
        "streams can be represented as properties without values.",
    )
