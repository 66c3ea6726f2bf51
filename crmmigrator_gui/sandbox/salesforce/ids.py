"""Salesforce record ids: key prefixes, the 18-character checksum suffix, and a deterministic generator.

Real ids are ``prefix(3) + pod(2) + reserved(1) + counter(9)`` in base 62; the 18-character form appends
three checksum characters so the id survives case-insensitive tools. Generating them from one counter
kept in SQLite makes seeded orgs reproducible and ids unique across objects.
"""

from __future__ import annotations

import re

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")
POD = "5g0"  # instance + reserved characters, constant for the emulated org


def checksum(id15: str) -> str:
    out = []
    for block in range(3):
        bits = 0
        for pos, ch in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << pos
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: object) -> str | None:
    """Canonical 18-character id, or None when ``value`` is not a well-formed id.

    A 15-character id is case-sensitive and gets its suffix. An 18-character id is case-insensitive: its
    suffix says which of the first 15 characters are upper-case letters, all others are lower-case.
    """
    if not isinstance(value, str) or (not _ID_RE.match(value.strip()) and not _ID_RE.match(_fold(value))):
        return None
    value = value.strip()
    if len(value) == 15:
        return value + checksum(value)
    suffix = value[15:].upper()
    chars = list(value[:15].lower())
    for block in range(3):
        idx = _SUFFIX.index(suffix[block])
        for pos in range(5):
            if idx & (1 << pos):
                chars[block * 5 + pos] = chars[block * 5 + pos].upper()
    id15 = "".join(chars)
    return id15 + suffix if checksum(id15) == suffix else None


def _fold(value: str) -> str:
    value = value.strip()
    return value[:15] + value[15:].upper() if len(value) == 18 else value


def base62(number: int, width: int = 9) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(_B62[rem])
    return "".join(reversed(out)).rjust(width, "0")[-width:]


def make_id(prefix: str, counter: int) -> str:
    id15 = f"{prefix}{POD}{base62(counter)}"
    return id15 + checksum(id15)
