"""Dates as they arrive in field-service exports: text in several orders, Excel serials, ISO strings.

Format tokens name the order of the parts, e.g. ``"DD/MM/YYYY"``. Besides the strptime-backed tokens in
:data:`DATE_FORMATS` there are two special tokens:

* ``"ISO"``: ISO 8601 as written by the readers (``2025-03-14T09:30:00``), optionally with ``Z`` or an
  offset (``+10:00``, ``+0000``).
* ``"EXCEL_SERIAL"``: day numbers of Excel's 1900 date system (``45730`` is 14 March 2025).

Whatever token a column declares, :func:`parse_date` also accepts the forms that cannot be misread: Excel
serials (a plain number from 1 to 2958465), ISO dates, year-first dates (``2025/03/14``) and dates with a
month name (``14 Mar 2025``). It never swaps day and month behind the caller's back: ``03/04/2025`` under
``"MM/DD/YYYY"`` is 4 March, under ``"DD/MM/YYYY"`` it is 3 April.

Ambiguity: when no format is given, or when :func:`infer_date_format` sees only values whose first two parts
are both 12 or less (``03/04/2025``), day-first (``DD/MM/YYYY``) wins. OctopusPro is an Australian product
and its exports use the Australian order; a US source should declare ``"MM/DD/YYYY"`` explicitly.

A time may follow any date: ``14/03/2025 09:30``, ``14/03/2025 9:30 AM``, ``2025/03/14 17:05:12``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Token -> strptime pattern for the date part. The time part (if any) is parsed separately, so the
#: patterns cover the date only. Parsing here is done with compiled expressions for speed; the patterns
#: document each token and are handy for writing values back in the same shape.
DATE_FORMATS: dict[str, str] = {
    "DD/MM/YYYY": "%d/%m/%Y",
    "MM/DD/YYYY": "%m/%d/%Y",
    "DD-MM-YYYY": "%d-%m-%Y",
    "MM-DD-YYYY": "%m-%d-%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
    "DD/MM/YY": "%d/%m/%y",
    "MM/DD/YY": "%m/%d/%y",
    "YYYY/MM/DD": "%Y/%m/%d",
    "YYYY-MM-DD": "%Y-%m-%d",
    "YYYYMMDD": "%Y%m%d",
    "D MMM YYYY": "%d %b %Y",
    "MMM D, YYYY": "%b %d, %Y",
}

#: Tokens that are not a strptime pattern.
SPECIAL_FORMATS: tuple[str, ...] = ("ISO", "EXCEL_SERIAL")

# Part order of each numeric token: D = day first, M = month first, Y = year first.
_ORDER = {
    "DD/MM/YYYY": "D",
    "DD-MM-YYYY": "D",
    "DD.MM.YYYY": "D",
    "DD/MM/YY": "D",
    "MM/DD/YYYY": "M",
    "MM-DD-YYYY": "M",
    "MM/DD/YY": "M",
    "YYYY/MM/DD": "Y",
    "YYYY-MM-DD": "Y",
}

# Excel serials: 1 = 1900-01-01, 2958465 = 9999-12-31.
SERIAL_MIN = 1
SERIAL_MAX = 2958465
# Serials plausible in business data when a column holds nothing else (1950-01-01 .. 2099-12-31).
# Outside this window a column of bare integers is much more likely to be ids or quantities.
PLAUSIBLE_SERIAL_MIN = 18264
PLAUSIBLE_SERIAL_MAX = 73050

_EXCEL_EPOCH = datetime(1899, 12, 30)  # serial 0 once the phantom 29 Feb 1900 is accounted for

_SERIAL_RE = re.compile(r"\d{1,7}(?:\.\d+)?")
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_NUM_DATE_RE = re.compile(r"(\d{1,4})([/\-.])(\d{1,2})\2(\d{1,4})(?:(?:\s+|T)(.+))?")
_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_WEEKDAY_PREFIX_RE = re.compile(r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+", re.I)
_DAY_MONTH_NAME_RE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[\s\-/]+([A-Za-z]{3,9})\.?[\s\-/,]+(\d{2,4})(?:,?\s+(.+))?")
_MONTH_NAME_DAY_RE = re.compile(r"([A-Za-z]{3,9})\.?[\s\-]+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})(?:,?\s+(.+))?")
_TIME_RE = re.compile(r"(\d{1,2})(?:[:.](\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?)?\s*([AaPp])?\.?\s*(?:[Mm]\.?)?")

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}


def excel_serial_to_date(serial: float) -> date | datetime:
    """Convert an Excel (1900 date system) serial to a date, or a datetime when it has a fraction.

    Excel counts 29 February 1900, a day that never existed (a bug kept for Lotus 1-2-3 compatibility):
    serial 59 is 1900-02-28, 60 is the phantom day, 61 is 1900-03-01. Serial 60 is refused. The fraction is
    the time of day, rounded to the nearest second.
    """
    value = float(serial)
    if value != value or not SERIAL_MIN <= value < SERIAL_MAX + 1:
        raise ValueError(f"{serial!r} is not an Excel date serial (expected {SERIAL_MIN} to {SERIAL_MAX})")
    days = int(value)
    if days == 60:
        raise ValueError(
            "Excel serial 60 is 29 February 1900, a date that exists only in Excel (its 1900 leap-year bug)"
        )
    if days < 60:
        days += 1  # before the phantom day, Excel's count is one behind the real calendar
    seconds = round((value - int(value)) * 86400)
    if seconds == 0:
        return (_EXCEL_EPOCH + timedelta(days=days)).date()
    return _EXCEL_EPOCH + timedelta(days=days, seconds=seconds)


def parse_time(value: str) -> time:
    """Parse a time of day: ``09:30``, ``9:30 AM``, ``17:05:12``, ``9.30pm``, ``9 am``."""
    text = value.strip()
    match = _TIME_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{value!r} is not a time of day")
    hour_s, minute_s, second_s, fraction_s, meridiem = match.groups()
    if minute_s is None and meridiem is None:
        raise ValueError(f"{value!r} is not a time of day")
    hour = int(hour_s)
    minute = int(minute_s or 0)
    second = int(second_s or 0)
    micro = int((fraction_s or "0").ljust(6, "0"))
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"{value!r} is not a time of day: hour {hour} with AM/PM")
        hour = hour % 12 + (12 if meridiem in "Pp" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{value!r} is not a time of day: out of range")
    return time(hour, minute, second, micro)


def _combine(day: date, rest: str | None, original: str) -> date | datetime:
    if not rest:
        return day
    rest = rest.strip()
    try:
        clock = parse_time(rest)
    except ValueError:
        raise ValueError(f"{original!r} has a date but its time part {rest!r} is not a time") from None
    return datetime.combine(day, clock)


def _make_date(year: int, month: int, day: int, original: str) -> date:
    if year < 100:
        year += 2000 if year <= 68 else 1900  # strptime's %y pivot
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{original!r} is not a valid date: {exc}") from None


def _parse_iso(text: str) -> date | datetime | None:
    match = _ISO_RE.fullmatch(text)
    if not match:
        return None
    if match.group(4) is None:
        if match.group(7):
            return None  # a bare date with an offset is not something we can place
        return _make_date(int(match.group(1)), int(match.group(2)), int(match.group(3)), text)
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1).replace(" ", ""))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date and time: {exc}") from None


def _parse_month_name(text: str, original: str) -> date | datetime | None:
    text = _WEEKDAY_PREFIX_RE.sub("", text, count=1) if text[:1].isalpha() else text
    match = _DAY_MONTH_NAME_RE.fullmatch(text)
    if match:
        day_s, month_s, year_s, rest = match.groups()
    else:
        match = _MONTH_NAME_DAY_RE.fullmatch(text)
        if not match:
            return None
        month_s, day_s, year_s, rest = match.groups()
    month = _MONTHS.get(month_s.lower())
    if month is None:
        return None
    return _combine(_make_date(int(year_s), month, int(day_s), original), rest, original)


def _parse_numeric(text: str, order: str | None, original: str, fmt: str | None) -> date | datetime | None:
    """Parse ``a/b/c`` shaped dates. ``order`` is "D", "M" or None (auto, day-first when ambiguous)."""
    match = _NUM_DATE_RE.fullmatch(text)
    if not match:
        return None
    first, _sep, second, third, rest = match.groups()
    if len(first) == 4 and len(third) <= 2:
        return _combine(_make_date(int(first), int(second), int(third), original), rest, original)
    if len(first) > 2 or len(third) not in (2, 4):
        return None
    a, b, year = int(first), int(second), int(third)
    if order == "Y":
        raise ValueError(f"{original!r} is not a date in the format {fmt} (expected the year first)")
    if order is None:
        order = "M" if a <= 12 < b else "D"
    if order == "D":
        day, month = a, b
    else:
        month, day = a, b
    if month > 12 and fmt is not None:
        raise ValueError(f"{original!r} is not a date in the format {fmt}: there is no month {month}")
    return _combine(_make_date(year, month, day, original), rest, original)


def parse_date(value: str, fmt: str | None = None) -> date | datetime:
    """Parse one date (or date and time) from an export.

    Returns a ``date`` for date-only values and a ``datetime`` when a time is present (aware only when
    the text carries ``Z`` or an offset). ``fmt`` is a token from :data:`DATE_FORMATS` or
    :data:`SPECIAL_FORMATS`; without it the order is guessed per value (day-first when ambiguous).
    Raises ``ValueError`` with a message fit for a user.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    text = value.strip()
    if not text:
        raise ValueError("an empty value is not a date")
    if fmt is not None and fmt not in DATE_FORMATS and fmt not in SPECIAL_FORMATS:
        known = ", ".join([*DATE_FORMATS, *SPECIAL_FORMATS])
        raise ValueError(f"unknown date format {fmt!r} (known: {known})")

    if fmt == "YYYYMMDD" and len(text) >= 8 and text[:8].isdigit():
        match = _COMPACT_RE.match(text)
        if match:
            day = _make_date(int(match.group(1)), int(match.group(2)), int(match.group(3)), value)
            return _combine(day, text[8:].lstrip("T "), value)

    if _SERIAL_RE.fullmatch(text):
        number = float(text)
        if SERIAL_MIN <= number < SERIAL_MAX + 1:
            return excel_serial_to_date(number)
        raise ValueError(
            f"{value!r} is a number but not an Excel date serial (those run from {SERIAL_MIN} to {SERIAL_MAX})"
        )

    iso = _parse_iso(text)
    if iso is not None:
        return iso

    order = _ORDER.get(fmt) if fmt else None
    if text[0].isdigit():
        parsed = _parse_numeric(text, order, value, fmt)
        if parsed is not None:
            return parsed
    parsed = _parse_month_name(text, value)
    if parsed is not None:
        return parsed
    if fmt:
        raise ValueError(f"{value!r} is not a date in the format {fmt}")
    raise ValueError(f"{value!r} is not a date")


def date_kind(value: str) -> int:
    """Cheap shape test used by profiling and header detection.

    Returns 0 (not a text date), 1 (a date) or 2 (a date with a time). Excel serials return 0: a bare
    number is only a date in context. Day/month validity is checked; the time part only by shape.
    """
    text = value.strip()
    if len(text) < 6 or len(text) > 40:
        return 0
    if text[0].isdigit():
        match = _ISO_RE.fullmatch(text)
        if match:
            if not _valid_ymd(int(match.group(1)), int(match.group(2)), int(match.group(3))):
                return 0
            return 2 if match.group(4) else 1
        match = _NUM_DATE_RE.fullmatch(text)
        if match:
            first, _sep, second, third, rest = match.groups()
            if len(first) == 4 and len(third) <= 2:
                ok = _valid_ymd(int(first), int(second), int(third))
            elif len(first) <= 2 and len(third) in (2, 4):
                a, b, year = int(first), int(second), int(third)
                year = year + 2000 if year < 100 else year
                ok = _valid_ymd(year, b, a) or _valid_ymd(year, a, b)
            else:
                ok = False
            if not ok:
                return 0
            if rest:
                return 2 if _TIME_RE.fullmatch(rest.strip()) else 0
            return 1
    if text[0].isalpha() or text[0].isdigit():
        try:
            parsed = _parse_month_name(text, value)
        except ValueError:
            return 0
        if parsed is not None:
            return 2 if isinstance(parsed, datetime) else 1
    return 0


def _valid_ymd(year: int, month: int, day: int) -> bool:
    if not (1 <= month <= 12 and 1 <= day <= 31 and 1 <= year <= 9999):
        return False
    if day <= 28:
        return True
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def infer_date_format(values: Iterable[str]) -> str | None:
    """Guess the format token of a column, or None when fewer than 90% of its non-empty values are dates.

    Looks at up to 10,000 non-empty values. Excel serials count as dates; a column of nothing but
    serials is ``"EXCEL_SERIAL"`` only when they fall in 1950..2099 (otherwise they look like ids). Mixed
    columns (serials and text) get the token of their text dates, which :func:`parse_date` reads together
    with the serials. Day-first wins when nothing in the column decides between day- and month-first.
    """
    total = 0
    serials = 0
    families: Counter[str] = Counter()
    day_first = month_first = 0
    separators: Counter[str] = Counter()
    two_digit_years = 0
    for raw in values:
        if raw is None:
            continue
        text = raw.strip()
        if not text:
            continue
        total += 1
        if total > 10_000:
            total -= 1
            break
        if _SERIAL_RE.fullmatch(text):
            if PLAUSIBLE_SERIAL_MIN <= float(text) <= PLAUSIBLE_SERIAL_MAX:
                serials += 1
            continue
        if text[0].isdigit():
            match = _ISO_RE.fullmatch(text)
            if match:
                families["ISO" if match.group(4) else "YYYY-MM-DD"] += 1
                continue
            match = _NUM_DATE_RE.fullmatch(text)
            if match and date_kind(text):
                first, sep, second, third, _rest = match.groups()
                if len(first) == 4:
                    families["YYYY-MM-DD" if sep == "-" else "YYYY/MM/DD"] += 1
                    continue
                a, b = int(first), int(second)
                if a > 12:
                    day_first += 1
                elif b > 12:
                    month_first += 1
                separators[sep] += 1
                if len(third) == 2:
                    two_digit_years += 1
                families["NUMERIC"] += 1
                continue
            if _COMPACT_RE.fullmatch(text) and _valid_ymd(int(text[:4]), int(text[4:6]), int(text[6:])):
                families["YYYYMMDD"] += 1
                continue
        try:
            parsed = _parse_month_name(text, raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            families["D MMM YYYY" if text[0].isdigit() else "MMM D, YYYY"] += 1
    dated = serials + sum(families.values())
    if total == 0 or dated < 0.9 * total:
        return None
    if not families:
        return "EXCEL_SERIAL"
    if families["ISO"] and families["YYYY-MM-DD"]:
        families["ISO"] += families.pop("YYYY-MM-DD")
    family = families.most_common(1)[0][0]
    if family != "NUMERIC":
        return family
    month_is_first = month_first > day_first
    sep = separators.most_common(1)[0][0]
    if two_digit_years * 2 > families["NUMERIC"] and sep == "/":
        return "MM/DD/YY" if month_is_first else "DD/MM/YY"
    if sep == ".":
        return "DD.MM.YYYY"
    if sep == "-":
        return "MM-DD-YYYY" if month_is_first else "DD-MM-YYYY"
    return "MM/DD/YYYY" if month_is_first else "DD/MM/YYYY"


def to_utc(value: date | datetime, tz: str) -> datetime | date:
    """Move a source value to UTC.

    * A ``date`` (no time) is returned unchanged: a calendar day has no instant, and shifting it would move
      "14 March" to "13 March" for every source east of Greenwich.
    * A naive ``datetime`` is read as local time in ``tz`` (an IANA name such as ``Australia/Sydney``) and
      converted. Times that fall in a daylight-saving gap or overlap take the offset in force before the
      change (``fold=0``).
    * An aware ``datetime`` is converted as is; ``tz`` is not used.
    """
    if not isinstance(value, datetime):
        if isinstance(value, date):
            return value
        raise ValueError(f"{value!r} is not a date or datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r} (expected an IANA name such as 'Australia/Sydney')") from None
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
