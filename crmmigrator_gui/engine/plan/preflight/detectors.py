"""Small, pure detectors for one value: what a consultant spots by eye in an export, made systematic.

Each takes a value (and the region where it matters) and says what is wrong with it, or nothing. They know
nothing of projects or findings, so they are cheap to test and to reuse.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

POSTCODE_DIGITS = {"AU": 4, "NZ": 4, "US": 5, "DE": 5, "FR": 5, "IT": 5, "ES": 5, "BE": 4, "DK": 4, "NO": 4, "AT": 4}
REGION_BOXES = {  # (lat min, lat max, lng min, lng max), generous
    "AU": (-44.5, -9.0, 112.0, 154.5),
    "NZ": (-48.0, -33.5, 165.5, 179.9),
    "US": (18.0, 72.0, -180.0, -64.0),
    "CA": (41.0, 84.0, -142.0, -52.0),
    "GB": (49.5, 61.0, -8.7, 2.0),
}
PLACEHOLDER_DAYS = {date(1900, 1, 1), date(1899, 12, 30), date(1899, 12, 31), date(1, 1, 1), date(9999, 12, 31)}
EXCEL_CELL_LIMIT = 32_767
EMPTY_WORDS = {"n/a", "na", "none", "-", "null"}

TEST_NAME = re.compile(
    r"\bdo\s*not\s*use\b|\bdon'?t\s*use\b|\bdelete\s*me\b|\bnot\s+a\s+real\b"
    r"|^\W*(test|dummy|fake|sample|demo|asdf)\W*$"
    r"|\b(test|dummy|fake)\s+(customer|client|account|record|user|contact|job|booking|data|company|entry)\b"
    r"|^\W*(test|dummy|fake)\b(?!\s*(&|and|n)\s*tag)"  # "Test & Tag" is an electrical trade, not a test
    r"|^z[\s_-]+\S",  # the "Z-" prefix that parks retired records at the bottom of a list
    re.IGNORECASE,
)
PO_BOX = re.compile(r"\b(p\.?\s*o\.?\s*box|post\s+office\s+box|locked\s+bag|gpo\s+box|private\s+bag)\b", re.I)
TITLE_FIRST = re.compile(r"^\s*(mr|mrs|ms|miss|mx|dr|prof)\.?\s+\S", re.IGNORECASE)
COUPLE = re.compile(r"\S\s*(&|\+|\band\b)\s*\S", re.IGNORECASE)
LONG_AGO = re.compile(r"(?<!\d)(0\d{3}|1[0-8]\d\d|1900|9999)(?!\d)|^\s*\d{1,3}(?:\.\d+)?\s*$")  # worth parsing
SEVERAL_PHONES = re.compile(r"\s*(?:/|;|,|\bor\b|&|\|)\s*", re.IGNORECASE)
SEVERAL_EMAILS = re.compile(r"[;,\s]+")
MOJIBAKE_HINT = re.compile("Ã|Â|â€|Å")
_SCIENTIFIC = re.compile(r"[+-]?\d(?:[.,]\d+)?[eE]\+?\d{1,3}")
_EXPANDED = re.compile(r"[1-9]\d{0,5}0{6,}")  # 8.7557E+15 written out in full by the reader: 8755700000000000
_HTML = re.compile(
    r"<\s*/?\s*(p|br|div|span|b|i|strong|em|ul|ol|li|table|tr|td|font|h[1-6])\b[^>]*>|&(nbsp|amp|lt|gt|quot|#\d+);",
    re.IGNORECASE,
)
_RTF = re.compile(r"^\s*\{\\rtf", re.IGNORECASE)
_LEGAL = re.compile(r"\b(pty|ltd|limited|inc|incorporated|llc|l\.l\.c|co|corp|corporation|company|the|plc|gmbh)\b\.?")
_STATES = {  # Australian states and territories as exports spell them -> one code
    "queensland": "QLD", "qld": "QLD", "new south wales": "NSW", "nsw": "NSW", "victoria": "VIC", "vic": "VIC",
    "south australia": "SA", "sa": "SA", "western australia": "WA", "wa": "WA", "tasmania": "TAS", "tas": "TAS",
    "northern territory": "NT", "nt": "NT", "australian capital territory": "ACT", "act": "ACT",
}  # fmt: skip
_COUNTRIES = {
    "australia": "AU", "aus": "AU", "aust": "AU", "au": "AU", "new zealand": "NZ", "nz": "NZ",
    "united states": "US", "united states of america": "US", "usa": "US", "u s a": "US", "us": "US", "u s": "US",
    "america": "US", "canada": "CA", "united kingdom": "GB", "uk": "GB", "gb": "GB", "great britain": "GB",
    "england": "GB", "scotland": "GB", "wales": "GB", "ireland": "IE",
}  # fmt: skip
_PHONE_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "no area code",
}


@lru_cache(maxsize=65536)
def email_problem(text: str) -> str | None:
    """Why ``text`` is not an e-mail address (email-validator, offline), or None."""
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=65536)
def phone(text: str, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a number that can exist in ``region``, else (None, why).

    "Possible" (the length fits the region's plan) rather than "valid" (an allocated range): ranges change
    faster than the library's metadata, and a customer's new mobile must not be called wrong.
    """
    without_extension = re.sub(r"\b(ext|extn|x)\.?\s*\d+\s*$", "", text, flags=re.IGNORECASE)
    if re.search(r"[A-Za-z]{2,}", without_extension):
        return None, "contains letters"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return None, str(exc).split(") ", 1)[-1].rstrip(".").lower()
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None, _PHONE_REASONS.get(reason, "not a possible number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def normal_name(text: str) -> str:
    """A name as duplicates are compared: case, punctuation and legal suffixes (Pty Ltd, Inc …) ignored."""
    lowered = _LEGAL.sub(" ", text.casefold().replace("&", " and "))
    return " ".join(re.sub(r"[^\w\s]", " ", lowered).split())


def fix_mojibake(text: str) -> str | None:
    """The text as it was before UTF-8 was read as Windows-1252 (``JosÃ©`` → ``José``), or None."""
    for codec in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        return fixed if fixed != text else None
    return None


def is_scientific(text: str) -> bool:
    """A long number a spreadsheet showed as ``8.7557E+15`` (as written, or as the reader expanded it)."""
    return bool(_SCIENTIFIC.fullmatch(text) or (len(text) >= 12 and _EXPANDED.fullmatch(text)))


def markup(text: str) -> str | None:
    """``"RTF"`` or ``"HTML"`` when the text carries that markup."""
    if _RTF.match(text):
        return "RTF"
    return "HTML" if _HTML.search(text) else None


def spelling_key(text: str) -> str:
    """One key for every spelling of a state or country (``Queensland``, ``Qld.``, ``QLD`` → ``QLD``)."""
    key = " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())
    return _STATES.get(key) or _COUNTRIES.get(key) or (key.upper() if len(key) == 2 else key)


def country_region(text: str) -> str | None:
    """A country as written in an export (``Australia``, ``AUS``, ``Aust.``, ``AU``) → its region code."""
    key = " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())
    if not key:
        return None
    if key in _COUNTRIES:
        return _COUNTRIES[key]
    code = key.upper()
    return code if len(code) == 2 and code in phonenumbers.SUPPORTED_REGIONS else None


def coordinates_problem(lat: float, lng: float, region: str) -> str | None:
    """Why a latitude/longitude pair is not where the customer is: 0,0, swapped, or outside the region."""
    box = REGION_BOXES.get(region)
    if lat == 0 and lng == 0:
        return "0,0 is a placeholder (the Gulf of Guinea), not a location"
    if abs(lat) > 90 or (box and _inside(box, lng, lat) and not _inside(box, lat, lng)):
        return "latitude and longitude look swapped"
    if box and not _inside(box, lat, lng):
        return f"the point is outside {region}"
    return None


def groups(links: dict[str, set[str]]) -> list[list[str]]:
    """Connected groups of linked ids (A~B and B~C make one group), each sorted naturally."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for sid, others in links.items():
        for other in others:
            parent[find(sid)] = find(other)
    out: dict[str, list[str]] = defaultdict(list)
    for sid in links:
        out[find(sid)].append(sid)
    return [sorted(members, key=natural) for members in out.values()]


def natural(text: str) -> tuple[Any, ...]:
    """Sort key that puts C2 before C10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def clip(value: Any, size: int = 80) -> str:
    text = str(value)
    return text if len(text) <= size else text[:size] + "…"


def _inside(box: tuple[float, float, float, float], lat: float, lng: float) -> bool:
    return box[0] <= lat <= box[1] and box[2] <= lng <= box[3]
