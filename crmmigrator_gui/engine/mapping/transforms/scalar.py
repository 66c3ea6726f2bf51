"""Single values with a type: money, numbers, yes/no, times of day and dates.

Money is ``Decimal``; ``cents: true`` reads integer cents. Date-only values stay dates (never shifted
across a time zone); date-times become UTC. A date-time written with an offset, in a date column, keeps
the calendar day of the declared time zone.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmmigrator_gui.engine.mapping.transforms.base import TransformError
from crmmigrator_gui.engine.source.dates import parse_date, to_utc

_AMOUNT = re.compile(r"\d(?:[\d.,'\u00a0 ]*\d)?")
_SPACED_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0']\d{3})+(?:[.,]\d+)?")


def parse_money(text: str, *, decimal_separator: str | None = None) -> Decimal:
    """``$1,234.50``, ``1.234,50``, ``(12.00)``, ``-$5.00``, ``AUD 129,00``, ``5.00-`` → Decimal.

    With ``decimal_separator`` "auto" (or None) the last of ``,``/``.`` is the decimal mark when both
    appear; a lone ``,`` followed by one or two digits is one too (``129,00``). Two numbers in one cell
    (``10 - 20``) are refused rather than glued together.
    """
    raw = text.strip()
    runs = list(_AMOUNT.finditer(raw))
    if not runs:
        raise TransformError(f"{text!r} is not an amount")
    if len(runs) > 1:
        raise TransformError(f"{text!r} holds more than one number")
    run = runs[0]
    digits = run.group(0)
    if re.search(r"[ \u00a0']", digits):
        if not _SPACED_THOUSANDS.fullmatch(digits):
            raise TransformError(f"{text!r} holds more than one number")
        digits = re.sub(r"[ \u00a0']", "", digits)
    before, after = raw[: run.start()], raw[run.end() :].strip()
    negative = (
        "-" in before
        or "−" in before
        or after.startswith("-")
        or ("(" in before and ")" in after)
        or after.lower().startswith("cr")
    )
    sep = decimal_separator if decimal_separator in (".", ",") else None
    if sep == ".":
        digits = digits.replace(",", "")
    elif sep == ",":
        digits = digits.replace(".", "").replace(",", ".")
    elif "," in digits and "." in digits:
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")  # 1.234,50
        else:
            digits = digits.replace(",", "")  # 1,234.50
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        if digits.count(",") == 1 and len(tail) in (1, 2):
            digits = f"{head}.{tail}"  # 129,00
        elif re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")  # 12,345
        else:
            raise TransformError(f"{text!r} is not an amount (unclear use of ',')")
    elif digits.count(".") > 1:
        if not re.fullmatch(r"\d{1,3}(?:\.\d{3})+", digits):
            raise TransformError(f"{text!r} is not an amount (unclear use of '.')")
        digits = digits.replace(".", "")  # 1.234.567
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


def _date(spec: dict[str, Any], text: str, notes: list[str]) -> date | datetime:
    try:
        parsed = parse_date(text, spec.get("format"))
    except ValueError as exc:
        raise TransformError(str(exc)) from exc
    tz = spec.get("tz") or "UTC"
    if spec.get("type") == "datetime" and isinstance(parsed, datetime):
        try:
            return to_utc(parsed, tz)
        except ValueError as exc:
            raise TransformError(str(exc)) from exc
    if isinstance(parsed, datetime):
        if parsed.tzinfo is not None:  # an instant in a date column: its calendar day where the work happened
            parsed = parsed.astimezone(_zone(tz))
        return parsed.date()
    return parsed


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TransformError(f"unknown time zone {name!r} (expected an IANA name such as 'Australia/Sydney')") from None


def _money(spec: dict[str, Any], text: str, notes: list[str]) -> Decimal:
    value = parse_money(text, decimal_separator=spec.get("decimal_separator"))
    if spec.get("cents"):
        if value != value.to_integral_value():
            raise TransformError(f"{text!r} is not a whole number of cents")
        return (value / 100).quantize(Decimal("0.01"))
    return value


def _integer(spec: dict[str, Any], text: str, notes: list[str]) -> int:
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation as exc:
        raise TransformError(f"{text!r} is not a whole number") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise TransformError(f"{text!r} is not a whole number")
    return int(value)
