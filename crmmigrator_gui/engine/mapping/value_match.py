"""Which destination option a source value means: the suggestion and matching rules of the value maps.

Suggestions, in order: the playbook's ``value_map.suggest``; the same label at the destination ignoring
case, spaces and punctuation (InProgress = In Progress, Enroute = En Route); a close spelling (rapidfuzz:
Canceled ≈ Cancelled), never across a negating prefix (Active ≠ Inactive) or different numbers. The payload
builders use :func:`resolve_option` and :func:`mapped_value` at load time. Pure functions (no project, no
network); every public name here is importable from :mod:`.values` as before the split.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from rapidfuzz import fuzz

FUZZY_MIN = 85.0  # compact-label similarity for a spelling variant (Canceled/Cancelled scores 94)
FUZZY_MARGIN = 4.0  # the best option must beat the runner-up by this much, or it is a guess
_NEGATING = ("in", "un", "non", "dis", "not", "im", "ir", "il")


def compact(text: str) -> str:
    """Case-, accent-, space- and punctuation-free form: "In Progress", "InProgress", "in-progress" agree."""
    text = unicodedata.normalize("NFKD", str(text))
    return re.sub(r"[^0-9a-z]+", "", "".join(ch for ch in text if not unicodedata.combining(ch)).casefold())


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _plausible_variant(a: str, b: str) -> bool:
    """Spelling drift, not a different meaning: same numbers, no negating prefix (Active/Inactive)."""
    if re.findall(r"\d+", a) != re.findall(r"\d+", b):
        return False
    short, long = sorted((a, b), key=len)
    return len(short) >= 3 and not (long.endswith(short) and long[: len(long) - len(short)] in _NEGATING)


def _find(label: str, options: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The option a label names: exactly, apart from case/spacing/punctuation, or by a close spelling."""
    for option in options:
        if _same(option["label"], label):
            return option, "same label"
    wanted = compact(label)
    for option in options:
        if compact(option["label"]) == wanted and wanted:
            return option, "same label apart from case, spaces or punctuation"
    scored = sorted(
        ((fuzz.ratio(wanted, compact(o["label"])), i) for i, o in enumerate(options) if compact(o["label"])),
        reverse=True,
    )
    if scored and scored[0][0] >= FUZZY_MIN:
        best, index = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        option = options[index]
        if best - runner_up >= FUZZY_MARGIN and _plausible_variant(wanted, compact(option["label"])):
            return option, f"close spelling ({best:.0f}% similar)"
    return None, ""


def _from_playbook(value: str, suggest: Mapping[str, str]) -> str | None:
    if value in suggest:
        return suggest[value]
    wanted = compact(value)
    return next((label for key, label in suggest.items() if compact(key) == wanted), None)


def suggest_option(
    value: str, suggest: Mapping[str, str] | None, column: dict[str, Any] | None
) -> tuple[str | None, str | None, str]:
    """(label, stored value, reason) for one source value; label None means unmapped (the reason says why).

    ``column`` is the destination's choice column (None when the destination was never read).
    """
    options = list((column or {}).get("options") or [])
    origin = (column or {}).get("origin")
    where = {"destination": "the destination", "planned": "the planned option set"}.get(origin, "the playbook")
    proposed = _from_playbook(value, suggest or {})
    if proposed is not None:
        if column is None:
            return proposed, None, f"playbook maps {value!r} to {proposed!r} (destination options not read yet)"
        option, how = _find(proposed, options)
        if option is not None:
            extra = "" if how == "same label" else f"; {where} spells it {option['label']!r}"
            return option["label"], _stored(option), f"playbook maps {value!r} to {proposed!r}{extra}"
        if column.get("open"):
            return proposed, None, f"playbook maps {value!r} to {proposed!r}, a new option created by `schema apply`"
    option, how = _find(value, options)
    if option is not None:
        return option["label"], _stored(option), f"{how} as the option {option['label']!r} at {where}"
    if column is not None and column.get("open") and not options:
        return value, None, "new option, created with the column by `schema apply`"
    if column is not None and column.get("origin") == "destination" and not column.get("restricted"):
        return value, value, "not in the picklist, which is unrestricted: Salesforce keeps the value as given"
    if proposed is not None:
        return None, None, f"playbook maps {value!r} to {proposed!r}, which {where} does not have"
    return None, None, f"no option at {where} matches {value!r}"


def _stored(option: dict[str, Any]) -> str | None:
    return None if option.get("value") is None else str(option["value"])


def resolve_option(options: Mapping[int, str], label: str | None, stored: str | None) -> int | None:
    """The Dataverse integer to send for a confirmed value: its stored value while that still carries the
    label, else the label's option in *this* environment, else the stored value (a renamed label)."""
    value = int(stored) if stored not in (None, "") and str(stored).lstrip("-").isdigit() else None
    if value is not None and value in options and (label is None or _same(options[value], label)):
        return value
    if label:
        for option_value, text in options.items():
            if _same(text, label):
                return option_value
    return value if value is not None and value in options else None


def mapped_value(
    mapping: Mapping[str, tuple[str | None, str | None]], raw: Any, converted: Any
) -> tuple[str | None, str | None] | None:
    """A confirmed (label, stored value) for a staged value — keyed by the raw text as listed, else by the
    transformed value; ``(None, None)`` is the decision to leave the column empty, None means no row."""
    key = "" if raw is None else str(raw).strip()
    return mapping[key] if key in mapping else mapping.get(str(converted))
