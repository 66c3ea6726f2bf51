"""Header-name matching: normalisation, abbreviations and fuzzy scores (rapidfuzz).

Exports spell the same column many ways ("Mobile No.", "mobile_number", "MobilePhone").
Normalising first (case, punctuation, camelCase, common abbreviations) turns most variants into
exact matches; rapidfuzz then scores what is left. We avoid ``token_set_ratio`` because it scores
any subset as 100 (PLATFORM-NOTES).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

_ABBREVIATIONS = {
    "no": "number",
    "num": "number",
    "nbr": "number",
    "#": "number",
    "id": "number",
    "nr": "number",
    "cust": "customer",
    "client": "customer",
    "clients": "customers",
    "mins": "minutes",
    "min": "minutes",
    "addr": "address",
    "tel": "telephone",
    "ph": "phone",
    "mob": "mobile",
    "qty": "quantity",
    "desc": "description",
    "dt": "date",
    "amt": "amount",
    "inv": "invoice",
    "ref": "reference",
    "e mail": "email",
    "emails": "email",
    "zipcode": "zip code",
    "postcode": "post code",
    "fieldworker": "field worker",
    "fieldworkers": "field workers",
    "st": "street",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@lru_cache(maxsize=4096)
def normalize(name: str) -> str:
    """Lower-case, accent-free, punctuation-free, camelCase split, abbreviations expanded."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _CAMEL.sub(" ", text)
    text = text.replace("#", " # ").replace("&", " and ").replace("(s)", "s")
    text = text.lower()
    text = re.sub(r"e-mail", "email", text)
    text = re.sub(r"[^a-z0-9#]+", " ", text)
    words = [_ABBREVIATIONS.get(word, word) for word in text.split()]
    joined = " ".join(words)
    for short, full in (("e mail", "email"), ("zipcode", "zip code")):
        joined = joined.replace(short, full)
    return joined.strip()


@dataclass(frozen=True)
class NameMatch:
    score: float  # 0..1
    synonym: str
    exact: bool


def match_name(header: str, synonyms: tuple[str, ...] | list[str]) -> NameMatch:
    """Best match of one header against a role's synonyms."""
    normalized = normalize(header)
    best = NameMatch(0.0, "", False)
    for synonym in synonyms:
        target = normalize(synonym)
        if normalized == target:
            return NameMatch(1.0, synonym, True)
        score = (
            max(
                fuzz.ratio(normalized, target),
                fuzz.token_sort_ratio(normalized, target) * 0.97,
            )
            / 100.0
        )
        if score > best.score:
            best = NameMatch(score, synonym, False)
    return best


_CUSTOM_MARKER = re.compile(r"^\s*(?:CF[TSIN]?|PF[TSIN]?)\s*\[\s*(.*?)\s*\]\s*$", re.IGNORECASE)


def custom_field_label(name: str) -> str:
    """Jobber-style custom-field headers (``CFT[Gate Code]``, ``PFI[ Date of Loss ]``) → the label inside."""
    match = _CUSTOM_MARKER.match(name)
    return match.group(1) if match else name


def slug(name: str, *, max_length: int = 40) -> str:
    """A safe lower-case identifier for a custom column derived from a header."""
    text = normalize(custom_field_label(name)).replace("#", "number")
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    return (text or "field")[:max_length]
