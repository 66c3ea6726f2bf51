"""Declarative transforms: a JSON spec per field-map row turns a raw source string into the
value the destination expects.

Specs are plain dicts (``{"type": "date", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}``) so
they serialise into the project file and the review workbook. Money is ``Decimal``; date-only
values stay dates (never shifted across a time zone); date-times become UTC with an explicit
offset.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crmmigrator_gui.engine.source.dates import parse_date, to_utc

_PLACEHOLDERS = {"n/a", "na", "none", "null", "-", "--", "nil", "#n/a"}


class TransformError(ValueError):
    """A value that cannot be converted; the message is shown to the user with the source id."""


_MONEY_JUNK = re.compile(r"[^\d,.\-()]")


def parse_money(text: str) -> Decimal:
    """``$1,234.50``, ``1.234,50``, ``(12.00)``, ``-$5.00`` → Decimal."""
    raw = text.strip()
    negative = (raw.startswith("(") and raw.endswith(")")) or raw.startswith("-") or "-" in raw[:3]
    digits = _MONEY_JUNK.sub("", raw).replace("(", "").replace(")", "").replace("-", "")
    if not digits or not re.search(r"\d", digits):
        raise TransformError(f"{text!r} is not an amount")
    if "," in digits and "." in digits:
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")  # 1.234,50
        else:
            digits = digits.replace(",", "")  # 1,234.50
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        digits = f"{head.replace(',', '')}.{tail}" if len(tail) in (1, 2) else digits.replace(",", "")
    try:
        value = Decimal(digits)
    except InvalidOperation as exc:
        raise TransformError(f"{text!r} is not an amount") from exc
    return -value if negative else value


_TRUE = {"true", "yes", "y", "1", "active", "enabled", "t"}
_FALSE = {"false", "no", "n", "0", "inactive", "disabled", "f"}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise TransformError(f"{text!r} is not yes/no")


_TIME = re.compile(r"^\s*(\d{1,2})[:.](\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?\s*$", re.IGNORECASE)


def parse_time(text: str) -> str:
    """``9:30 AM`` / ``14:05`` / ISO date-time → ``HH:MM``."""
    value = text.strip()
    if "T" in value:
        value = value.split("T", 1)[1]
    match = _TIME.match(value)
    if not match:
        raise TransformError(f"{text!r} is not a time of day")
    hour, minute = int(match.group(1)), int(match.group(2))
    meridiem = (match.group(4) or "").lower().replace(".", "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    if meridiem == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        raise TransformError(f"{text!r} is not a time of day")
    return f"{hour:02d}:{minute:02d}"


def apply(spec: dict[str, Any], raw: Any) -> Any:
    """Convert one raw source value; ``None`` means "leave the destination column empty"."""
    if raw is None:
        return None
    text = str(raw)
    if not text.strip():
        return None
    kind = spec.get("type", "text")
    if kind not in ("text", "memo", "longtext", "names") and text.strip().lower() in _PLACEHOLDERS:
        return None  # "N/A", "none", "-" in a typed column mean "no value", not a bad value
    if kind in ("text", "names", "postcode", "enum", "key", "lookup", "owner", "id", "reference", "url"):
        return " ".join(text.split()) if kind != "postcode" else text.strip()
    if kind in ("memo", "longtext"):
        return text.strip()
    if kind == "email":
        value = text.strip().lower()
        first = re.split(r"[;,\s]+", value)[0]
        if "@" not in first or "." not in first.rsplit("@", 1)[-1]:
            raise TransformError(f"{text!r} is not an e-mail address")
        return first
    if kind == "phone":
        return " ".join(text.split())
    if kind in ("money", "decimal"):
        return parse_money(text)
    if kind == "integer":
        try:
            return int(Decimal(text.strip().replace(",", "")))
        except InvalidOperation as exc:
            raise TransformError(f"{text!r} is not a whole number") from exc
    if kind == "boolean":
        return parse_bool(text)
    if kind == "time":
        return parse_time(text)
    if kind in ("date", "datetime"):
        try:
            parsed = parse_date(text, spec.get("format"))
        except ValueError as exc:
            raise TransformError(str(exc)) from exc
        if kind == "date" or not isinstance(parsed, datetime):
            return parsed.date() if isinstance(parsed, datetime) else parsed
        return to_utc(parsed, spec.get("tz", "UTC"))
    return text.strip()


def to_json_value(value: Any, column_type: str | None = None) -> Any:
    """Python value → JSON for the Web API (Decimal stays exact; dates ISO; date-times with Z)."""
    if isinstance(value, datetime):
        if column_type == "DateOnly":
            return value.date().isoformat()
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        if column_type in ("DateTime",):
            # A date-only value going into a date-time column: noon UTC shows the same calendar day
            # in every time zone from UTC-12 to UTC+11, so the date never shifts.
            return f"{value.isoformat()}T12:00:00Z"
        return value.isoformat()
    return value
