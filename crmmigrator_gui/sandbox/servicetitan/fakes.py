"""Deterministic fake values that carry the data-quality traps of reference §6 on purpose.

Everything draws from the ``random.Random`` it is given, never from global state or the clock, so a seed
always yields the same tenant (ids and values stable across restarts, §7). Each helper returns the clean
value most of the time and a trap variant at a fixed, low rate; :class:`Traps` records which row got which
trap so tests can assert the product notices it (§7 "manifest listing every injected defect").
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
         "Wei", "Aisha", "Raj", "Olga"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Nguyen", "Kim"]
UNICODE_NAMES = ["José Müller", "Zoë O'Brien", "Björk Guðmundsdóttir", "François Lefèvre", "Łukasz Wójcik",
                 "山田 太郎", "Ngọc Trần", "Søren Kierkegård", "🔥 Fire & Ice HVAC", "Dvořák Plumbing"]
COMPANY_WORDS = ["Acme", "Summit", "Riverside", "Oak Ridge", "Harbor", "Sunset", "Pinnacle", "Metro", "Valley"]
COMPANY_KINDS = ["Property Management", "Dental Group", "Holdings LLC", "Restaurants Inc.", "School District",
                 "Apartments", "Medical Center", "Church", "Storage"]
STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Washington Blvd", "Lakeview Rd", "Pine Ct"]
CITIES = [("Phoenix", "AZ", "Arizona", "850"), ("Tempe", "AZ", "Arizona", "852"), ("Mesa", "AZ", "Arizona", "852"),
          ("Dallas", "TX", "Texas", "752"), ("Austin", "TX", "Texas", "787"), ("Denver", "CO", "Colorado", "802"),
          ("Boston", "MA", "Massachusetts", "021"), ("Glendale", "CA", "California", "912")]
COUNTRIES = ["USA", "USA", "USA", "US", "United States", ""]
EPOCH = datetime(2023, 1, 2, 8, 0, 0, tzinfo=UTC)
SPAN_DAYS = 700


class Traps:
    """Manifest of injected defects: (entity, id, field, kind)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, entity: str, rid: int, field: str, kind: str) -> None:
        self.items.append({"entity": entity, "id": rid, "field": field, "trap": kind})


def iso(moment: datetime, rng: random.Random | None = None) -> str:
    """UTC ISO with ``Z``; with an rng, about half carry fractional seconds and half do not (§1.7)."""
    if rng is not None and rng.random() < 0.5:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + "Z"
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(rng: random.Random, lo: float = 0.0, hi: float = 1.0) -> datetime:
    """A point in the tenant's history, at a fraction between lo and hi of the ~2-year span."""
    seconds = rng.uniform(lo, hi) * SPAN_DAYS * 86400
    return EPOCH + timedelta(seconds=seconds, microseconds=rng.randrange(1000) * 1000)


def money(value: Decimal | float) -> str:
    """Accounting money as the API sends it: a string with two decimals (§1.4, §1.7)."""
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def customer_name(rng: random.Random, commercial: bool) -> tuple[str, str | None]:
    """(name, trap kind or None). Residential names are "Last, First" or "First Last" as typed by CSRs."""
    roll = rng.random()
    if roll < 0.04:
        return rng.choice(UNICODE_NAMES), "unicode_name"
    if roll < 0.06:
        return rng.choice(["TEST CUSTOMER", "DO NOT USE - duplicate", "Z-Old Account"]), "test_record"
    if roll < 0.08:
        first, last = person(rng)
        return f"{first.upper()} {last.upper()}  ", "all_caps_trailing_space"
    if commercial:
        if roll < 0.10:
            return "", "blank_company"
        return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)}", None
    first, last = person(rng)
    if roll < 0.13:
        return f"{first} & {rng.choice(FIRST)} {last}", "couple_name"
    return (f"{last}, {first}" if rng.random() < 0.4 else f"{first} {last}"), None


def phone(rng: random.Random) -> tuple[str, str, str | None]:
    """(value as typed, phoneSettings.phoneNumber as normalised, trap kind)."""
    area, mid, end = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    digits = f"{area}{mid}{end:04d}"
    style = rng.randrange(7)
    if style == 0:
        return f"({area}) {mid}-{end:04d}", digits, None
    if style == 1:
        return f"{area}.{mid}.{end:04d}", digits, "phone_dots"
    if style == 2:
        return f"+1 {area} {mid} {end:04d} x{rng.randint(10, 999)}", digits, "phone_extension"
    if style == 3:
        return f"{area}-{mid}-{end:04d} / {rng.randint(201, 989)}-555-0{rng.randint(100, 199)}", digits, "phone_multi"
    return digits, digits, None


def email(rng: random.Random, first: str, last: str) -> tuple[str, str | None]:
    domain = rng.choice(["gmail.com", "yahoo.com", "outlook.com", "example.com", "Comcast.NET"])
    local = f"{first}.{last}".replace(" ", "").replace("'", "")
    if rng.random() < 0.25:
        return f"{local.title()}@{domain.upper()}", "email_mixed_case"
    if rng.random() < 0.05:
        return f" {local.lower()}@{domain.lower()} ", "email_whitespace"
    return f"{local.lower()}@{domain.lower()}", None


def address(rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A nested ``address`` object plus the (field, trap) pairs it carries."""
    traps: list[tuple[str, str]] = []
    city, state, state_full, zip3 = rng.choice(CITIES)
    street = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
    unit = None
    roll = rng.random()
    if roll < 0.05:
        street, unit = f"PO Box {rng.randint(100, 9999)}", None
        traps.append(("address.street", "po_box"))
    elif roll < 0.10:
        street = f"{street}\nBuilding C"
        traps.append(("address.street", "multiline_street"))
    elif roll < 0.25:
        unit = rng.choice(["Apt 4B", "#12", "Suite A", "Unit 7"])
    zip_code = f"{zip3}{rng.randint(0, 99):02d}"
    if rng.random() < 0.05:
        zip_code += f"-{rng.randint(0, 9999):04d}"
        traps.append(("address.zip", "zip_plus4"))
    if rng.random() < 0.08:
        state = state_full
        traps.append(("address.state", "state_full_name"))
    lat, lon = 33.0 + rng.random() * 9, -112.0 + rng.random() * 41
    roll = rng.random()
    if roll < 0.04:
        lat, lon = 0.0, 0.0
        traps.append(("address.latitude", "zero_latlong"))
    elif roll < 0.06:
        lat, lon = lon, lat
        traps.append(("address.latitude", "swapped_latlong"))
    elif roll < 0.10:
        lat = lon = None
    country = rng.choice(COUNTRIES)
    if country != "USA":
        traps.append(("address.country", "country_variant"))
    return {
        "street": street,
        "unit": unit,
        "city": city,
        "state": state,
        "zip": zip_code,
        "country": country,
        "latitude": None if lat is None else round(lat, 6),
        "longitude": None if lon is None else round(lon, 6),
    }, traps


NOTE_TEXTS = [
    "Customer prefers morning appointments.",
    "<p>Gate code <b>#4521</b>&nbsp;&amp; dog in yard</p><br>Call on arrival",
    "Replaced filter — told customer to check again in “3 months”.",
    "Line 1 of a long note\r\nLine 2 after CRLF\nLine 3 after LF",
    "👍 Very happy with service! 🔧",
    "&lt;script&gt; was pasted here by accident &amp; should stay text",
]


def note_text(rng: random.Random) -> tuple[str, str | None]:
    if rng.random() < 0.01:
        return "Long history: " + "lorem ipsum dolor " * 2000, "very_long_note"
    text = rng.choice(NOTE_TEXTS)
    kind = "html_in_text" if "<" in text or "&" in text else ("emoji" if "👍" in text else None)
    return text, kind


# Real, minimal file payloads so downloads can be sniffed (PNG signature + IHDR, PDF header + trailer).
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n" \
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
