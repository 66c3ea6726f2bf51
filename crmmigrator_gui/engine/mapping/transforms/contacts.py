"""Phones to E.164 and e-mail addresses checked offline; the first of several in a cell, the rest as notes.

A value that is no phone number is kept as written with a note (``invalid: keep``), because both
destinations store phones as free text and a record should not fail over one. An invalid e-mail fails the
record by default, since both destinations refuse it anyway.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crmmigrator_gui.engine.mapping.transforms.base import TransformError

_LIST_WORDS = re.compile(r"\s+(?:or|and|&)\s+", re.IGNORECASE)


def _first_of(cell: str, splitter: re.Pattern[str], what: str, notes: list[str]) -> str:
    items = [p.strip() for p in splitter.split(_LIST_WORDS.sub(";", cell)) if p and p.strip()]
    if len(items) > 1:
        notes.append(f"{len(items)} {what} in one cell; the first is used, not {', '.join(items[1:])}")
    return items[0] if items else ""


_EMAIL_SPLIT = re.compile(r"[;,\s|]+")


def _email(spec: dict[str, Any], text: str, notes: list[str]) -> str | None:
    cell = text.strip()
    bracketed = re.findall(r"<([^<>@\s]+@[^<>\s]+)>", cell)  # "Zoe Lee <zoe@x.com>"
    if bracketed:
        cell = ";".join(bracketed)
    cell = re.sub(r"mailto:", "", cell, flags=re.IGNORECASE)
    first = _first_of(cell, _EMAIL_SPLIT, "addresses", notes)
    try:
        return validate_email(first, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        return _invalid(spec, "fail", text, f"{text.strip()!r} is not an e-mail address ({exc})", notes)


def _invalid(spec: dict[str, Any], default: str, text: str, message: str, notes: list[str]) -> str | None:
    policy = spec.get("invalid") or default
    if policy == "fail":
        raise TransformError(message)
    if policy == "empty":
        notes.append(f"{message}; left empty")
        return None
    notes.append(f"{message}; kept as written")
    return " ".join(text.split())


_PHONE_SPLIT = re.compile(r"[,;|\n]+")
_EXCEL_NUMBER = re.compile(r"\+?\d{6,15}\.0+")


@lru_cache(maxsize=8192)
def _parse_phone(candidate: str, region: str | None) -> tuple[str, str | None] | None:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), number.extension


def _phone(spec: dict[str, Any], text: str, notes: list[str]) -> str | None:
    cell = re.sub(r";\s*ext\s*=\s*", " ext ", text.strip(), flags=re.IGNORECASE)
    if _EXCEL_NUMBER.fullmatch(cell):  # a number cell: 61412345678.0
        cell = cell.split(".", 1)[0]
    pieces = [p for p in (x.strip() for x in _PHONE_SPLIT.split(_LIST_WORDS.sub(";", cell))) if p]
    numbers: list[str] = []
    for piece in pieces:  # "/" separates two numbers only when both sides are whole numbers
        halves = [h.strip() for h in piece.split("/")]
        enough = len(halves) > 1 and all(len(re.sub(r"\D", "", h)) >= 6 for h in halves)
        numbers.extend(halves if enough else [piece])
    if len(numbers) > 1:
        notes.append(f"{len(numbers)} numbers in one cell; the first is used, not {', '.join(numbers[1:])}")
    region = spec.get("region") or None
    parsed = _parse_phone(numbers[0], region) if numbers else None
    if parsed is None:
        where = f" for region {region}" if region else " (no default region: add one, or write it with +)"
        return _invalid(spec, "keep", text, f"{text.strip()!r} is not a phone number{where}", notes)
    e164, extension = parsed
    if extension:
        if spec.get("extension", "keep") == "drop":
            notes.append(f"extension {extension} dropped")
        else:
            e164 = f"{e164};ext={extension}"
    return e164
