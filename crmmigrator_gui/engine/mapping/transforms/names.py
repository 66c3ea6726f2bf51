"""People's names: letter case that knows O'Brien and McDonald, and a name split into its parts."""

from __future__ import annotations

import re
from typing import Any

from crmmigrator_gui.engine.mapping.transforms.base import TransformError

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_PARTICLES = frozenset("van von de der den da di du del della la le st bin binti al ter ten dos das y".split())


def recase(text: str, mode: str) -> str:
    """Upper, lower, title or sentence case; title case knows O'Brien, McDonald and 'van' inside a name."""
    if mode == "upper":
        return text.upper()
    if mode == "lower":
        return text.lower()
    if mode == "sentence":
        lowered = text.lower()
        return re.sub(r"(^\s*|[.!?]\s+)([^\W\d_])", lambda m: m.group(1) + m.group(2).upper(), lowered)
    if mode != "title":
        raise TransformError(f"unknown case {mode!r}")
    first = True

    def fix(match: re.Match[str]) -> str:
        nonlocal first
        low = match.group(0).lower()
        at_start, first = first, False
        if not at_start and low in _PARTICLES:
            return low
        out = low[:1].upper() + low[1:]
        if len(low) > 2 and low[1] in "'’":  # O'Brien, D'Arcy
            out = out[:2] + out[2].upper() + out[3:]
        elif low.startswith("mc") and len(low) > 3:
            out = "Mc" + low[2].upper() + low[3:]
        return out

    return _WORD.sub(fix, text)


_TITLES = frozenset("mr mrs ms miss mx dr prof professor rev fr sir dame lady lord hon capt sgt master".split())
_SUFFIXES = {"jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq", "dds", "cpa"}
_CONNECTORS = {"&", "and", "+"}
_COMPANY = re.compile(
    r"\b(pty|ltd|llc|inc|corp|co|company|limited|plc|gmbh|services|group|trust|holdings)\b\.?", re.IGNORECASE
)


def _bare(token: str) -> str:
    return token.strip(".,").lower()


def split_name(text: str) -> tuple[dict[str, str], list[str]]:
    """A person's name → {title, first, middle, last, suffix} and flags (a couple, a company).

    One word is both the first and the last name: it is what a first-name or last-name column holds, and
    both destinations require a last name. ``"Smith, John"`` puts the surname first.
    """
    flags: list[str] = []
    name = " ".join(text.split())
    company = bool(_COMPANY.search(name))
    if company:
        flags.append(f"{name!r} looks like a company, not a person")
    fixed_last: list[str] = []
    suffix: list[str] = []
    if name.count(",") == 1:
        left, right = (p.strip() for p in name.split(","))
        if right and all(_bare(t) in _SUFFIXES for t in right.split()):
            name, suffix = left, right.split()
        elif left and right:
            fixed_last, name = left.split(), right
    tokens = name.replace("&", " & ").split()
    title: list[str] = []
    while tokens and (_bare(tokens[0]) in _TITLES or (title and tokens[0].lower() in _CONNECTORS)):
        title.append(tokens.pop(0))
    while len(tokens) > 1 and _bare(tokens[-1]) in _SUFFIXES:
        suffix.insert(0, tokens.pop())
    connector = next((i for i, t in enumerate(tokens) if t.lower() in _CONNECTORS), None)
    couple_title = any(t.lower() in _CONNECTORS for t in title)  # "Mr & Mrs Smith"
    if connector is not None or couple_title:
        flags.append(f"two people in one name ({name!r}); kept together")
    first, middle, last = "", [], fixed_last
    if fixed_last:
        first, middle = (tokens[0], tokens[1:]) if tokens else ("", [])
    elif company:  # a company in the name fields: all of it is the last name (both destinations require one)
        last = tokens
    elif connector is not None and connector > 0:
        first, last = " ".join(tokens[: connector + 2]), tokens[connector + 2 :]
    elif len(tokens) == 1:
        first, last = ("" if couple_title else tokens[0]), tokens
    elif tokens:
        start = len(tokens) - 1
        while start > 1 and _bare(tokens[start - 1]) in _PARTICLES:
            start -= 1
        first, middle, last = tokens[0], tokens[1:start], tokens[start:]
    parts = {
        "title": " ".join(title),
        "first": first,
        "middle": " ".join(middle),
        "last": " ".join(last),
        "suffix": " ".join(suffix),
    }
    return parts, flags


def _name_part(spec: dict[str, Any], text: str, notes: list[str]) -> str:
    parts, flags = split_name(text)
    notes.extend(flags)
    return parts[spec.get("part") or "first"]
