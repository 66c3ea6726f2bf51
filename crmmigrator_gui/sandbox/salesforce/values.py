"""Value coercion and formatting: JSON/CSV input -> stored value, stored value -> JSON output.

Kept apart from ``records`` because the same rules serve REST JSON bodies (typed values, ``null`` clears)
and Bulk CSV cells (everything is text, empty = leave unchanged, ``#N/A`` = null; reference §4.2). Stored
datetimes are normalised to Salesforce's wire format ``2024-05-01T12:34:56.000+0000`` in UTC, which also
sorts lexicographically, so SOQL comparisons and ORDER BY work directly on the JSON text in SQLite.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .catalog import Field
from .errors import SFError, bad

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
SKIP = object()  # CSV: empty cell leaves the field unchanged


def now() -> str:
    return fmt_datetime(datetime.now(UTC))


def fmt_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    m = _DATETIME.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        value = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    except ValueError:
        return None
    if frac:
        value = value.replace(microsecond=int(frac[:6].ljust(6, "0")))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value


def _bad_value(f: Field, value: Any, xsd: str, csv: bool) -> SFError:
    if csv:
        return bad("INVALID_FIELD", f"'{value}' is not a valid value for the type {xsd}", [f.name])
    return bad(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {xsd.split(':')[1]} from VALUE_STRING value {value} "
        "or request may be missing a required field",
    )


def coerce(f: Field, value: Any, *, csv: bool = False) -> Any:
    """Validate one input value for field ``f``; returns the stored form, None, or SKIP."""
    if csv:
        if value == "":
            return SKIP
        if value == "#N/A":
            return None
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise bad("JSON_PARSER_ERROR", f"Cannot deserialize instance of {f.type} from START_OBJECT value")
    t = f.type
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise _bad_value(f, value, "xsd:boolean", csv)
    if t in ("int", "double", "currency", "percent"):
        return _number(f, value, csv)
    if t == "date":
        text = str(value).strip()
        if not _DATE.match(text) or parse_datetime(text) is None:
            raise _bad_value(f, value, "xsd:date", csv)
        return text
    if t == "datetime":
        parsed = parse_datetime(str(value)) if not isinstance(value, bool) else None
        if parsed is None:
            raise _bad_value(f, value, "xsd:dateTime", csv)
        return fmt_datetime(parsed)
    if t == "base64":
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad("INVALID_FIELD", f"{f.label}: invalid base64 value", [f.name]) from exc
        return str(value)
    text = value if isinstance(value, str) else ("true" if value is True else "false" if value is False else str(value))
    if t == "multipicklist":
        parts = [p.strip() for p in text.split(";") if p.strip()]
        if f.restricted:
            allowed = f.active_values()
            for part in parts:
                if part not in allowed:
                    raise restricted(f, part)
        text = ";".join(parts)
    if f.length and len(text) > f.length:
        raise bad(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {text[:255]} (max length={f.length})",
            [f.name],
        )
    if t == "picklist" and f.restricted and text not in f.active_values():
        raise restricted(f, text)
    if t == "email" and text and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", text):
        raise bad("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    return text


def restricted(f: Field, value: Any) -> SFError:
    return bad(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{f.label}: bad value for restricted picklist field: {value}",
        [f.name],
    )


def _number(f: Field, value: Any, csv: bool) -> int | float:
    if isinstance(value, bool):
        raise _bad_value(f, value, "xsd:double", csv)
    try:
        number = float(value) if not isinstance(value, (int, float)) else value
    except (TypeError, ValueError) as exc:
        raise _bad_value(f, value, "xsd:int" if f.type == "int" else "xsd:double", csv) from exc
    if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
        raise _bad_value(f, value, "xsd:double", csv)
    if f.type == "int":
        if number != int(number):
            raise _bad_value(f, value, "xsd:int", csv)
        number = int(number)
    else:
        number = round(float(number), f.scale) if f.scale else float(number)
    limit = 10 ** max(f.precision - f.scale, 1) if f.precision else None
    if limit is not None and abs(number) >= limit:
        raise bad(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{f.label}: value outside of valid range on numeric field: {value}",
            [f.name],
        )
    return number


def output(f: Field, value: Any, url_base: str = "") -> Any:
    """Stored value -> JSON value (base64 fields answer their download URL, as Salesforce does)."""
    if f.type == "base64":
        return f"{url_base}/{f.name}" if value is not None and url_base else None
    if f.type in ("double", "currency", "percent") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def csv_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def today() -> date:
    return datetime.now(UTC).date()
