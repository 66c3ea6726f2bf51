"""Synthetic Q Dispatch exports: demo data and robustness fixtures.

Q Dispatch is not API-first and publishes no export format (source-platform reference §2, every
field there is an inference). We model the realistic route: an admin-run export, **a folder of CSV
files, one per object**, recognised by header sniffing rather than by file name:
``customers``, ``contacts``, ``technicians``, ``zones``, ``work_orders``, ``work_order_lines``,
``dispatch_board``, ``service_notes`` and ``invoices``. The work-order, line, technician, dispatch,
zone, note and invoice headers are the reference's proposed canonical shape; the customer and
contact lists are our addition (the seed names both objects; the reference only has the customer
denormalised on the work order, which we keep too).

Variants:

* ``"clean"`` (``"standard"`` is the same): canonical headers, UTF-8, ISO dates, plain numbers.
* ``"dirty"``: the clean folder with the §6 traps that apply to a CSV export injected, and a
  ``_fixture/manifest.json`` (a subfolder, so importing the folder ignores it) listing every injected
  defect (file, physical row, column, defect type, the
  record's source id and the expected effect at load: ``fails``/``skipped``/``dropped_at_import``
  or a non-blocking effect such as ``parsed``, ``normalised_by_value_map``, ``loaded_as_given``).
* ``"unseen"``: a held-out-style folder: other header spellings and file names, title rows above
  the headers, a ``;``-separated Windows-1252 file with decimal commas, a UTF-16 tab-separated
  staff list, polygon zones, and date columns mixing ``DD/MM/YYYY``, Excel serials, ISO and
  month names.

Everything is streamed: one pass writes all files at once, each record is produced from a seeded
RNG (per-customer RNGs give random access for the work orders' denormalised customer columns), and
nothing proportional to ``records`` is kept in memory except the dirty manifest (a few percent of
rows). Content is deterministic for ``(records, seed, variant)``; the reference date is fixed at
14 March 2025. Files are written atomically (temp file + ``os.replace``).

Regenerate the checked-in samples with ``python -m crmmigrator_gui.engine.demo.qdispatch``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import secrets
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

KIND = "files"  # for the demo runner: this source arrives as export files

TODAY = date(2025, 3, 14)
START = date(2022, 7, 1)
HORIZON = TODAY + timedelta(days=30)
VARIANTS = ("standard", "clean", "dirty", "unseen")
OBJECTS = (
    "zones",
    "technicians",
    "customers",
    "contacts",
    "work_orders",
    "work_order_lines",
    "dispatch_board",
    "service_notes",
    "invoices",
)
CENTS = Decimal("0.01")
GST = Decimal("0.10")
_EXCEL_EPOCH = date(1899, 12, 30)
# Expected records per work order, all objects included (calibrated on the generator's own output).
_PER_WORK_ORDER = 7.0

# Effects a defect has when the export is loaded (the manifest's "effect" field).
MANIFEST_DIR = "_fixture"  # dirty variant: <out_dir>/_fixture/manifest.json
FAILS = "fails"
SKIPPED = "skipped"
DROPPED = "dropped_at_import"


@dataclass
class GeneratedExport:
    files: list[Path]
    counts: dict[str, int]  # distinct source records per object (what import stages), keys as in OBJECTS
    users: list[tuple[str, str]]  # (full name, e-mail) of ~80% of technicians/dispatchers: the destination's users
    manifest: Path | None = None  # dirty variant only
    defects: list[dict[str, Any]] = field(default_factory=list)  # dirty variant only (as in the manifest)


# --------------------------------------------------------------------------------------------- vocabulary
# Every name here is Windows-1252-safe: the dirty and unseen variants write some files as cp1252.

_FIRST = (
    "Zoë", "José", "Siobhán", "Renée", "François", "Björn", "Seán", "Liam", "Olivia", "Noah", "Charlotte",
    "Jack", "Mia", "William", "Amelia", "Thomas", "Isla", "James", "Ava", "Lucas", "Chloe", "Mohammed",
    "Priya", "Wei", "Aroha", "Ngaio", "Grace", "Hannah", "Oliver", "Matilda", "Aisha", "Kai", "Mei", "Anh",
    "Ethan", "Sophie", "Henry", "Ruby", "Zara", "Declan",
)  # fmt: skip
_LAST = (
    "O'Brien", "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Müller", "Kowalski",
    "Papadopoulos", "Singh", "Patel", "Chen", "García", "Murphy", "Kelly", "Walker", "White", "Martin",
    "Anderson", "Thompson", "Nguyen", "Ryan", "MacDonald", "Rossi", "Søndergaard", "Tan", "Lee", "D'Angelo",
    "van der Berg", "Fitzgerald", "Okafor",
)  # fmt: skip
_COMPANIES = (
    "{last} Property Group", "Harbour View Strata", "Café Allegro", "{last} & Sons Hardware",
    "Jacaranda Aged Care", "Riverside Medical Centre", "Southbank Apartments Body Corporate",
    "{last} Holdings Pty Ltd", "Moreton Bay Motors", "Paddington Dental", "Bayside Childcare Centre",
    "Kangaroo Point Fitness", "{last} Real Estate", "Greenslopes Vet Clinic", "Northside Tyres",
    "Sunnybank Plaza Food Court", "Red Hill Bakery", "Queen St Dental Studio",
)  # fmt: skip
# zone code, zone name, centre lat/lng, radius km, state, [(suburb, postcode)]
_ZONES = (
    (
        "NORTH",
        "Brisbane North",
        "-27.3866",
        "153.0318",
        "12",
        "QLD",
        (("Chermside", "4032"), ("Aspley", "4034"), ("Nundah", "4012")),
    ),
    (
        "SOUTH",
        "Brisbane South",
        "-27.5610",
        "153.0530",
        "14",
        "QLD",
        (("Sunnybank", "4109"), ("Mount Gravatt", "4122"), ("Coopers Plains", "4108")),
    ),
    (
        "CITY",
        "Brisbane City & Inner",
        "-27.4698",
        "153.0251",
        "5",
        "QLD",
        (("Brisbane City", "4000"), ("Fortitude Valley", "4006"), ("South Brisbane", "4101")),
    ),
    (
        "BAYSIDE",
        "Bayside",
        "-27.4810",
        "153.1840",
        "10",
        "QLD",
        (("Wynnum", "4178"), ("Manly", "4179"), ("Cleveland", "4163")),
    ),
    (
        "WESTERN",
        "Western Suburbs",
        "-27.4970",
        "152.9730",
        "11",
        "QLD",
        (("Toowong", "4066"), ("Indooroopilly", "4068"), ("Kenmore", "4069")),
    ),
    (
        "IPSWICH",
        "Ipswich Corridor",
        "-27.6145",
        "152.7580",
        "15",
        "QLD",
        (("Ipswich", "4305"), ("Springfield", "4300"), ("Goodna", "4300")),
    ),
    (
        "LOGAN",
        "Logan & Beenleigh",
        "-27.6390",
        "153.1090",
        "13",
        "QLD",
        (("Logan Central", "4114"), ("Springwood", "4127"), ("Beenleigh", "4207")),
    ),
    (
        "MORETON",
        "Moreton Bay",
        "-27.2270",
        "153.1040",
        "16",
        "QLD",
        (("Redcliffe", "4020"), ("North Lakes", "4509"), ("Caboolture", "4510")),
    ),
    (
        "DARWIN",
        "Darwin Branch",
        "-12.4634",
        "130.8456",
        "25",
        "NT",
        (("Darwin", "0800"), ("Casuarina", "0810"), ("Palmerston", "0830")),
    ),
)
_STREETS = ("Gympie", "Logan", "Wickham", "Ann", "Adelaide", "Boundary", "Sandgate", "Old Cleveland", "Moggill",
            "Kessels", "Beaudesert", "Anzac", "Stuart", "Mitchell", "Smith", "Queen")  # fmt: skip
_STREET_TYPES = ("St", "Rd", "Ave", "Pde", "Tce", "Cres", "Hwy", "Ct")
_DOMAINS = ("gmail.com", "outlook.com", "bigpond.com", "icloud.com", "yahoo.com.au", "optusnet.com.au")
_CONTACT_TYPES = (
    ("Site Contact", "Site Manager", "Property Manager", "Owner", "Tenant"),
    ("Billing Contact", "Accounts Payable"),
)
_POSITIONS = ("Facilities Manager", "Office Manager", "Owner", "Strata Manager", "Accounts", "")
_JOB_TYPES = ("Breakdown", "Preventive Maintenance", "Installation", "Quote Visit", "Warranty", "Inspection")
_PRIORITIES = (("Normal", 55), ("Low", 15), ("High", 22), ("Urgent", 8))
_LABOUR = (("LAB-STD", "Standard labour", "110.00"), ("LAB-AH", "After-hours labour", "165.00"),
           ("LAB-APP", "Apprentice labour", "75.00"))  # fmt: skip
_PARTS = (
    ("P-1042", "Run capacitor 35uF", "38.50"), ("P-2210", "Thermostat – digital", "129.00"),
    ("P-0881", "Copper fitting 15mm", "6.20"), ("P-3307", "Filter drier", "44.00"),
    ("P-4120", "Tempering valve", "189.00"), ("P-0007", "Refrigerant R32 (kg)", "95.00"),
    ("P-5561", "Circuit breaker 20A", "27.90"), ("P-6603", "Smoke alarm 240V", "79.00"),
    ("P-7719", "Isolator switch", "55.00"), ("P-8002", "Drain pump", "148.00"),
)  # fmt: skip
_FEES = (("FEE-CALLOUT", "Call-out fee", "89.00"), ("FEE-TRAVEL", "Travel surcharge", "35.00"),
         ("FEE-DISPOSAL", "Disposal fee", "25.00"))  # fmt: skip
_THINGS = ("split system", "hot water unit", "switchboard", "ceiling fan", "dishwasher", "cool room", "exhaust fan")
_ISSUES = ("not cooling", "tripping the RCD", "leaking", "noisy on start-up", "showing error E4", "dead")
_NOTE_TEMPLATES = (
    "<p>Arrived on site {hm}. Customer&#39;s {thing} was {issue}.</p>"
    "<p>Replaced {part} &amp; tested &ndash; all OK.</p>",
    "<p>Called customer &ndash; no answer.<br>Left voicemail re: access.</p>",
    "<p><b>Parts required:</b></p><ul><li>{part}</li><li>Fittings &amp; sundries</li></ul>",
    'Gate code is "{code}" – dog in yard, "friendly".\r\nKey in the lock box by the meter.',
    "<div>Customer requested a quote for a second {thing}.<br/>Follow up next week.</div>",
    "<p>Job completed. Customer signed off on the iPad.</p>",
)
_INVOICE_OLD = (("Paid", 74), ("Partially Paid", 7), ("Overdue", 12), ("Void", 3), ("Sent", 4))


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in ascii_text if ch.isalnum())


def _money(value: Decimal | str | float) -> Decimal:
    return Decimal(str(value)).quantize(CENTS)


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _serial(day: date) -> int:
    return (day - _EXCEL_EPOCH).days


# --------------------------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class _Plan:
    zones: int
    technicians: int
    customers: int
    work_orders: int


def _plan(records: int) -> _Plan:
    records = max(records, 60)
    zones = len(_ZONES) if records >= 200 else 5
    technicians = max(5, min(250, round(records * 0.005)))
    work_orders = max(8, round((records - zones - technicians) / _PER_WORK_ORDER))
    customers = max(3, round(work_orders * 0.4))
    return _Plan(zones, technicians, customers, work_orders)


class _Dataset:
    """Typed records (dates, Decimals, bools) produced on demand, in export order."""

    def __init__(self, records: int, seed: int) -> None:
        self.seed = seed
        self.plan = _plan(records)
        self.zones = [self._zone(i) for i in range(self.plan.zones)]
        self.technicians = self._technicians()
        self.field_techs = [t for t in self.technicians if t["resource_type"] != "Dispatcher"]
        self.dispatchers = [t for t in self.technicians if t["resource_type"] == "Dispatcher"] or self.technicians
        self.users = [(f"{t['first_name']} {t['last_name']}", t["email"]) for t in self.technicians if t["is_user"]]
        self.customer = lru_cache(maxsize=8192)(self._customer)

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    # ---------------------------------------------------------------- small reference lists
    def _zone(self, index: int) -> dict[str, Any]:
        code, name, lat, lng, radius, state, places = _ZONES[index]
        return {
            "zone_code": code,
            "zone_name": name,
            "centre_lat": Decimal(lat),
            "centre_lng": Decimal(lng),
            "radius_km": Decimal(radius),
            "state": state,
            "places": places,
        }

    def _technicians(self) -> list[dict[str, Any]]:
        rng = self._rng("technicians")
        count = self.plan.technicians
        users = round(count * 0.8)
        dispatchers = max(1, round(count * 0.12))
        seen: set[str] = set()
        result = []
        for index in range(count):
            while True:
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                if f"{first} {last}" not in seen or len(seen) > len(_FIRST) * len(_LAST) // 2:
                    seen.add(f"{first} {last}")
                    break
            dispatcher = index < dispatchers
            local = f"{_slug(first)}.{_slug(last)}"
            if sum(1 for t in result if t["email"].startswith(local + "@")):
                local = f"{local}{index}"
            result.append(
                {
                    "tech_code": f"T{101 + index}",
                    "first_name": first,
                    "last_name": last,
                    "mobile": f"04{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
                    "email": f"{local}@qdservices.com.au",
                    "home_zone": "" if dispatcher else self.zones[index % len(self.zones)]["zone_code"],
                    "active": index != count - 1,  # the last one has left the business
                    "resource_type": "Dispatcher"
                    if dispatcher
                    else rng.choice(("Technician",) * 5 + ("Subcontractor",)),
                    "is_user": index < users,
                }
            )
        return result

    # ---------------------------------------------------------------- customers and contacts
    def customer_code(self, index: int) -> str:
        return f"C{10001 + index}"

    def _customer(self, index: int) -> dict[str, Any]:
        rng = self._rng("customer", index)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        zone = self.zones[rng.randrange(len(self.zones))]
        suburb, postcode = rng.choice(zone["places"])
        commercial = rng.random() < 0.7
        if commercial:
            name = rng.choice(_COMPANIES).format(last=last)
            email = f"accounts@{_slug(name)[:24]}.com.au"
            phone = self._landline(rng, zone["state"])
        else:
            name = f"{first} {last}"
            email = f"{_slug(first)}.{_slug(last)}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
            phone = self._mobile(rng)
        parent = ""
        if commercial and index >= 10 and rng.random() < 0.08:
            parent = self.customer_code(rng.randrange(0, index // 2))
        since = START - timedelta(days=rng.randint(0, 2400))
        return {
            "customer_code": self.customer_code(index),
            "company_name": name,
            "customer_type": "Commercial" if commercial else "Residential",
            "parent_customer_code": parent,
            "phone": phone,
            "email": email,
            "billing_address_1": self._street(rng),
            "billing_address_2": rng.choice(("", "", "", f"Level {rng.randint(1, 9)}", f"Unit {rng.randint(1, 40)}")),
            "billing_city": suburb,
            "billing_state": zone["state"],
            "billing_postcode": postcode,
            "country": "Australia",
            "customer_since": since,
            "updated_at": datetime.combine(
                since + timedelta(days=rng.randint(0, (TODAY - since).days)),
                time(rng.randint(7, 17), rng.randint(0, 59)),
            ),
            "zone": zone["zone_code"],
            "contacts": 1 + (rng.random() < 0.35),
            "first": first,
            "last": last,
        }

    def contact_id(self, customer_index: int, number: int) -> str:
        return f"SC{(10001 + customer_index) * 10 + number}"

    def contacts_of(self, index: int) -> Iterator[dict[str, Any]]:
        customer = self.customer(index)
        rng = self._rng("contacts", index)
        for number in range(customer["contacts"]):
            if number == 0 and customer["customer_type"] == "Residential":
                first, last = customer["first"], customer["last"]
            else:
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
            yield {
                "contact_id": self.contact_id(index, number + 1),
                "customer_code": customer["customer_code"],
                "first_name": first,
                "last_name": last,
                "contact_type": rng.choice(_CONTACT_TYPES[min(number, 1)]),
                "position": rng.choice(_POSITIONS) if customer["customer_type"] == "Commercial" else "",
                "email": f"{_slug(first)}.{_slug(last)}@{rng.choice(_DOMAINS)}",
                "phone": self._landline(rng, "QLD") if rng.random() < 0.3 else "",
                "mobile": self._mobile(rng),
            }

    # ---------------------------------------------------------------- work orders and children
    def work_order(self, index: int, route: dict[tuple[date, str], int]) -> dict[str, Any]:
        """One work order with its lines, dispatch rows, notes and invoice (all typed)."""
        rng = self._rng("wo", index)
        plan = self.plan
        span = (HORIZON - START).days
        day = START + timedelta(days=(index * span) // max(1, plan.work_orders))
        customer_index = rng.randrange(plan.customers)
        customer = self.customer(customer_index)
        zone = next(z for z in self.zones if z["zone_code"] == customer["zone"])
        status = self._status(rng, day)
        suburb, postcode = rng.choice(zone["places"])
        if customer["customer_type"] == "Residential" or rng.random() < 0.5:
            site_1, city, postcode = (
                customer["billing_address_1"],
                customer["billing_city"],
                customer["billing_postcode"],
            )
        else:
            site_1, city = self._street(rng), suburb
        created = datetime.combine(
            day - timedelta(days=rng.randint(0, 20)), time(rng.randint(7, 17), rng.randint(0, 59))
        )
        updated = min(created + timedelta(hours=rng.randint(1, 24 * 30)), datetime.combine(TODAY, time(8, 0)))
        updated = max(updated, created)
        tech = None
        if status != "Unassigned":
            local = [t for t in self.field_techs if t["home_zone"] == zone["zone_code"] and t["active"]]
            pool = local or [t for t in self.field_techs if t["active"]] or self.field_techs
            tech = rng.choice(pool)
            if day < TODAY - timedelta(days=60) and rng.random() < 0.02:
                tech = self.technicians[-1]  # jobs done by the technician who has since left
        start_hour = rng.choice((7, 8, 8, 10, 12, 13, 14))
        window = (time(start_hour, 0), time(min(start_hour + rng.choice((2, 2, 3, 4)), 18), 0)) if tech else None
        lines = self._lines(rng, status)
        subtotal = sum((line["line_total"] for line in lines), Decimal("0"))
        tax = _money(subtotal * GST)
        wo_number = f"WO-{10001 + index}"
        contacts = customer["contacts"]
        wo = {
            "wo_number": wo_number,
            "customer_code": customer["customer_code"],
            "customer_name": customer["company_name"],
            "customer_phone": customer["phone"],
            "customer_email": customer["email"],
            "site_contact_id": self.contact_id(customer_index, 1 if contacts == 1 or rng.random() < 0.8 else 2),
            "site_address_1": site_1,
            "site_address_2": "",
            "site_city": city,
            "site_state": zone["state"],
            "site_postcode": postcode,
            "status": status,
            "priority": _weighted(rng, _PRIORITIES),
            "job_type": rng.choice(_JOB_TYPES),
            "created_at": created,
            "updated_at": updated,
            "scheduled_date": day,
            "window_start": window[0] if window else None,
            "window_end": window[1] if window else None,
            "assigned_tech_code": tech["tech_code"] if tech else "",
            "zone_code": zone["zone_code"],
            "total_ex_tax": subtotal,
            "tax": tax,
            "total": subtotal + tax,
        }
        for number, line in enumerate(lines, 1):
            line.update(wo_number=wo_number, line_no=number)
        dispatch = []
        if tech and window and status in ("Scheduled", "En Route", "In Progress", "Completed"):
            visits = [day]
            if status == "Completed" and rng.random() < 0.12:
                visits.append(day + timedelta(days=rng.randint(1, 6)))
            for visit in visits:
                key = (visit, tech["tech_code"])
                route[key] = route.get(key, 0) + 1
                eta = (datetime.combine(visit, window[0]) + timedelta(minutes=rng.randint(0, 90))).time()
                dispatch.append(
                    {
                        "date": visit,
                        "tech_code": tech["tech_code"],
                        "wo_number": wo_number,
                        "route_seq": route[key],
                        "window_start": window[0],
                        "window_end": window[1],
                        "eta": eta,
                        "travel_minutes": rng.randint(6, 55),
                    }
                )
        notes = []
        for _ in range(rng.choice((0, 0, 1, 1, 1, 2)) if status != "Unassigned" else 0):
            author = tech if tech and rng.random() < 0.7 else rng.choice(self.dispatchers)
            notes.append(
                {
                    "wo_number": wo_number,
                    "author": f"{author['first_name']} {author['last_name']}",
                    "created_at": created + timedelta(hours=rng.randint(1, 72)),
                    "body_html": rng.choice(_NOTE_TEMPLATES).format(
                        hm=f"{rng.randint(7, 16)}:{rng.choice(('05', '20', '45'))}",
                        thing=rng.choice(_THINGS),
                        issue=rng.choice(_ISSUES),
                        part=rng.choice(_PARTS)[1],
                        code=f"{rng.randint(0, 9999):04d}",
                    ),
                }
            )
        invoice = None
        if (status == "Completed" and rng.random() < 0.92) or (status == "In Progress" and rng.random() < 0.1):
            issued = min(day + timedelta(days=rng.randint(0, 3)), TODAY)
            due = issued + timedelta(days=rng.choice((7, 14, 30)))
            total = subtotal + tax
            if status != "Completed":
                inv_status = "Draft"
            elif due >= TODAY:
                inv_status = rng.choice(("Sent", "Sent", "Paid"))
            else:
                inv_status = _weighted(rng, _INVOICE_OLD)
            paid = {"Paid": total, "Partially Paid": _money(total * Decimal("0.5"))}.get(inv_status, Decimal("0.00"))
            invoice = {
                "wo_number": wo_number,
                "invoice_date": issued,
                "due_date": due,
                "subtotal": subtotal,
                "tax": tax,
                "total": total,
                "amount_paid": paid,
                "balance": Decimal("0.00") if inv_status == "Void" else total - paid,
                "status": inv_status,
            }
        return {"wo": wo, "lines": lines, "dispatch": dispatch, "notes": notes, "invoice": invoice, "tech": tech}

    def _status(self, rng: random.Random, day: date) -> str:
        if day < TODAY - timedelta(days=2):
            return _weighted(rng, (("Completed", 90), ("Cancelled", 8), ("In Progress", 2)))
        if day < TODAY:
            return _weighted(rng, (("Completed", 60), ("In Progress", 20), ("Scheduled", 15), ("Cancelled", 5)))
        if day == TODAY:
            return _weighted(rng, (("En Route", 30), ("In Progress", 30), ("Scheduled", 30), ("Completed", 10)))
        return _weighted(rng, (("Scheduled", 70), ("Unassigned", 30)))

    def _lines(self, rng: random.Random, status: str) -> list[dict[str, Any]]:
        lines = []
        count = 1 if status in ("Unassigned", "Cancelled") else rng.choice((1, 2, 2, 3, 3, 4))
        for number in range(count):
            if number == 0 and status == "Cancelled":
                code, text, price = _FEES[0]
                kind, qty = "Fee", Decimal("1")
            elif number == 0:
                code, text, price = rng.choice(_LABOUR)
                kind, qty = "Labour", Decimal(rng.choice(("0.5", "1", "1.5", "2", "3", "4")))
            elif rng.random() < 0.75:
                code, text, price = rng.choice(_PARTS)
                kind, qty = "Part", Decimal(rng.randint(1, 3))
            else:
                code, text, price = rng.choice(_FEES)
                kind, qty = "Fee", Decimal("1")
            unit = Decimal(price)
            lines.append(
                {
                    "item_code": code,
                    "description": text,
                    "line_type": kind,
                    "qty": qty,
                    "unit_price": unit,
                    "line_total": _money(qty * unit),
                }
            )
        return lines

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _mobile(rng: random.Random) -> str:
        return f"04{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}"

    @staticmethod
    def _landline(rng: random.Random, state: str) -> str:
        area, lead = ("08", 89) if state == "NT" else ("07", rng.choice((30, 32, 33, 34, 38)))
        return f"({area}) {lead}{rng.randint(10, 99)} {rng.randint(1000, 9999)}"

    @staticmethod
    def _street(rng: random.Random) -> str:
        return f"{rng.randint(1, 480)} {rng.choice(_STREETS)} {rng.choice(_STREET_TYPES)}"


# --------------------------------------------------------------------------------------------- formatting


def _std(value: Any) -> str:
    """Canonical text: ISO dates, ``YYYY-MM-DD HH:MM:SS`` date-times, ``HH:MM`` times, plain decimals."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


# Canonical headers per object (reference §2 where it has them; customers/contacts are ours).
CANONICAL: dict[str, tuple[str, ...]] = {
    "zones": ("zone_code", "zone_name", "centre_lat", "centre_lng", "radius_km"),
    "technicians": ("tech_code", "first_name", "last_name", "mobile", "email", "home_zone", "active", "resource_type"),
    "customers": (
        "customer_code", "company_name", "customer_type", "parent_customer_code", "phone", "email",
        "billing_address_1", "billing_address_2", "billing_city", "billing_state", "billing_postcode", "country",
        "customer_since", "updated_at",
    ),
    "contacts": (
        "contact_id", "customer_code", "first_name", "last_name", "contact_type", "position", "email", "phone",
        "mobile",
    ),
    "work_orders": (
        "wo_number", "customer_code", "customer_name", "customer_phone", "customer_email", "site_contact_id",
        "site_address_1", "site_address_2", "site_city", "site_state", "site_postcode", "status", "priority",
        "job_type", "created_at", "updated_at", "scheduled_date", "window_start", "window_end",
        "assigned_tech_code", "zone_code", "total_ex_tax", "tax", "total",
    ),
    "work_order_lines": (
        "wo_number", "line_no", "item_code", "description", "line_type", "qty", "unit_price", "line_total",
    ),
    "dispatch_board": (
        "date", "tech_code", "wo_number", "route_seq", "window_start", "window_end", "eta", "travel_minutes",
    ),
    "service_notes": ("wo_number", "note_id", "author", "created_at", "body_html"),
    "invoices": (
        "invoice_no", "wo_number", "invoice_date", "due_date", "subtotal", "tax", "total", "amount_paid", "balance",
        "status",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _FileSpec:
    name: str
    encoding: str = "utf-8"
    delimiter: str = ","
    newline: str = "\r\n"
    preamble: tuple[tuple[str, ...], ...] = ()
    # (header, canonical column, formatter) — None formatter = _std
    columns: tuple[tuple[str, str, Callable[[Any, random.Random], str] | None], ...] = ()
    trailing_empty_column: bool = False


def _canonical_spec(obj: str, **kwargs: Any) -> _FileSpec:
    return _FileSpec(f"{obj}.csv", columns=tuple((c, c, None) for c in CANONICAL[obj]), **kwargs)


CLEAN_FILES = {obj: _canonical_spec(obj) for obj in OBJECTS}
DIRTY_FILES = {
    **CLEAN_FILES,
    "customers": _canonical_spec("customers", encoding="utf-8-sig"),  # Excel "CSV UTF-8" (BOM)
    "contacts": _canonical_spec("contacts", encoding="cp1252"),  # re-saved by Excel on Windows
    "work_order_lines": _canonical_spec("work_order_lines", trailing_empty_column=True, newline="\n"),
    "service_notes": _canonical_spec("service_notes", newline="\n"),
}


def _dmy(value: Any, _r: random.Random) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def _dmy_hm(value: Any, _r: random.Random) -> str:
    if not value:
        return ""
    return f"{value:%d/%m/%Y} {(value.hour % 12) or 12}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"


def _mixed_date(value: Any, r: random.Random) -> str:
    if not value:
        return ""
    roll = r.random()
    if roll < 0.45:
        return value.strftime("%d/%m/%Y")
    if roll < 0.7:
        return str(_serial(value))
    if roll < 0.85:
        return value.isoformat()
    return f"{value.day} {value:%b %Y}"


def _comma_decimal(value: Any, _r: random.Random) -> str:
    return f"{value:.2f}".replace(".", ",") if value is not None else ""


def _dollars(value: Any, _r: random.Random) -> str:
    if value is None:
        return ""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _ampm(value: Any, _r: random.Random) -> str:
    if not value:
        return ""
    return f"{(value.hour % 12) or 12}:{value.minute:02d} {'am' if value.hour < 12 else 'pm'}"


def _active_word(value: Any, _r: random.Random) -> str:
    return "Active" if value else "Inactive"


def _polygon(zone: Any, _r: random.Random) -> str:
    return zone  # already rendered by the unseen zone rows


def _title(*lines: str) -> tuple[tuple[str, ...], ...]:
    return tuple((line,) if line else () for line in lines)


UNSEEN_FILES: dict[str, _FileSpec] = {
    "zones": _FileSpec(
        "Service Areas.csv",
        columns=(("Area Code", "zone_code", None), ("Area Name", "zone_name", None),
                 ("Boundary (WKT)", "polygon_wkt", _polygon)),
    ),
    "technicians": _FileSpec(
        "Staff.txt", encoding="utf-16", delimiter="\t",
        columns=(("Staff ID", "tech_code", None), ("Given Name", "first_name", None), ("Surname", "last_name", None),
                 ("Mobile No.", "mobile", None), ("E-mail", "email", None), ("Base Zone", "home_zone", None),
                 ("Status", "active", _active_word), ("Role", "resource_type", None)),
    ),
    "customers": _FileSpec(
        "Customer List.csv", encoding="utf-8-sig",
        preamble=_title("Q Dispatch – Customer List", "Printed 14/03/2025 09:12 by admin", ""),
        columns=(("Cust Code", "customer_code", None), ("Customer", "company_name", None),
                 ("Type", "customer_type", None), ("Head Office Code", "parent_customer_code", None),
                 ("Phone No.", "phone", None), ("E-mail Address", "email", None), ("Street", "billing_address_1", None),
                 ("Street 2", "billing_address_2", None), ("Suburb", "billing_city", None),
                 ("State", "billing_state", None), ("P/Code", "billing_postcode", None), ("Country", "country", None),
                 ("Customer Since", "customer_since", _dmy), ("Last Modified", "updated_at", _dmy_hm)),
    ),
    "contacts": _FileSpec(
        "Site Contacts.csv",
        columns=(("Contact #", "contact_id", None), ("Cust Code", "customer_code", None),
                 ("Given Name", "first_name", None), ("Surname", "last_name", None), ("Role", "contact_type", None),
                 ("Job Title", "position", None), ("Email Address", "email", None), ("Work Phone", "phone", None),
                 ("Mobile Phone", "mobile", None)),
    ),
    "work_orders": _FileSpec(
        "Jobs Export.csv", encoding="cp1252", delimiter=";",
        preamble=_title("Q Dispatch – Jobs Export (all statuses)", ""),
        columns=(("Job No", "wo_number", None), ("Cust Code", "customer_code", None),
                 ("Customer", "customer_name", None),
                 ("Customer Phone", "customer_phone", None), ("Customer E-mail", "customer_email", None),
                 ("Site Contact #", "site_contact_id", None), ("Site Address", "site_address_1", None),
                 ("Site Address 2", "site_address_2", None), ("Site Suburb", "site_city", None),
                 ("Site State", "site_state", None), ("Site Postcode", "site_postcode", None),
                 ("Job Status", "status", None), ("Priority", "priority", None), ("Service Type", "job_type", None),
                 ("Date Created", "created_at", _dmy_hm), ("Last Updated", "updated_at", _dmy_hm),
                 ("Booked For", "scheduled_date", _mixed_date), ("Arrive From", "window_start", _ampm),
                 ("Arrive By", "window_end", _ampm), ("Assigned Tech", "assigned_tech_code", None),
                 ("Zone", "zone_code", None), ("Sub Total", "total_ex_tax", _comma_decimal),
                 ("GST", "tax", _comma_decimal), ("Job Total", "total", _comma_decimal)),
    ),
    "work_order_lines": _FileSpec(
        "Job Items.csv",
        columns=(("Job No", "wo_number", None), ("Line #", "line_no", None), ("SKU", "item_code", None),
                 ("Item Description", "description", None), ("Item Type", "line_type", None),
                 ("Quantity", "qty", None), ("Unit Price", "unit_price", _dollars),
                 ("Line Amount", "line_total", _dollars)),
    ),
    "dispatch_board": _FileSpec(
        "Run Sheet.csv",
        preamble=_title("Dispatch board export", "All technicians – all dates", ""),
        columns=(("Run Date", "date", _mixed_date), ("Technician Code", "tech_code", None),
                 ("Job No", "wo_number", None), ("Stop #", "route_seq", None), ("Window From", "window_start", None),
                 ("Window To", "window_end", None), ("ETA", "eta", None), ("Travel (mins)", "travel_minutes", None)),
    ),
    "service_notes": _FileSpec(
        "Job Notes.csv",
        columns=(("Note ID", "note_id", None), ("Job No", "wo_number", None), ("Entered By", "author", None),
                 ("Entered On", "created_at", _dmy_hm), ("Note Text", "body_html", None)),
    ),
    "invoices": _FileSpec(
        "Invoice Register.csv",
        preamble=_title("Invoice register", ""),
        columns=(("Invoice #", "invoice_no", None), ("Job No", "wo_number", None),
                 ("Invoice Date", "invoice_date", _mixed_date), ("Due", "due_date", _mixed_date),
                 ("Ex GST", "subtotal", _dollars), ("GST", "tax", _dollars), ("Inc GST", "total", _dollars),
                 ("Paid", "amount_paid", _dollars), ("Owing", "balance", _dollars),
                 ("Invoice Status", "status", None)),
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------- writing


class _Sink:
    """One CSV being streamed into a temp file beside its final name; counts physical rows."""

    def __init__(self, folder: Path, spec: _FileSpec) -> None:
        self.spec = spec
        self.path = folder / spec.name
        self.temp = folder / f".{spec.name}.{secrets.token_hex(6)}.tmp"
        # newline="" so the csv module's terminator is written as given; errors="strict": the
        # vocabulary is chosen to fit every encoding we write.
        self.handle: IO[str] = self.temp.open("w", encoding=spec.encoding, newline="")
        self.writer = csv.writer(self.handle, delimiter=spec.delimiter, lineterminator=spec.newline)
        self.row = 0
        for line in spec.preamble:
            self._write(list(line))
        headers = [header for header, _col, _fmt in spec.columns]
        self._write(headers + ([""] if spec.trailing_empty_column else []))

    def _write(self, values: list[str]) -> int:
        self.writer.writerow(values)
        self.row += 1
        return self.row

    def write(self, values: list[str]) -> int:
        """Write one data row; returns its physical row number (as a spreadsheet shows it)."""
        if self.spec.trailing_empty_column:
            values = [*values, ""]
        formulas = {i: v for i, v in enumerate(values) if v.startswith('="') and v.endswith('"')}
        if not formulas:
            return self._write(values)
        # Excel writes its keep-as-text wrapper unquoted (="00123"); the csv module would quote it.
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.spec.delimiter, lineterminator="").writerow(
            [f"\x00{i}\x00" if i in formulas else v for i, v in enumerate(values)]
        )
        line = buffer.getvalue()
        for i, value in formulas.items():
            line = line.replace(f"\x00{i}\x00", value)
        return self.write_raw(line)

    def write_raw(self, line: str) -> int:
        self.handle.write(line + self.spec.newline)
        self.row += 1
        return self.row

    def close(self) -> None:
        self.handle.close()
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


class _Writer:
    """Formats typed records through a variant's file specs; the dirty variant hooks in here."""

    def __init__(self, folder: Path, specs: dict[str, _FileSpec], seed: int, dirt: _Dirt | None) -> None:
        self.specs = specs
        self.rng = random.Random(f"{seed}:format")
        self.dirt = dirt
        self.counts = dict.fromkeys(OBJECTS, 0)
        self.sinks: dict[str, _Sink] = {}
        try:
            for obj in OBJECTS:
                self.sinks[obj] = _Sink(folder, specs[obj])
        except BaseException:
            self.abort()
            raise

    def emit(self, obj: str, record: dict[str, Any]) -> None:
        spec = self.specs[obj]
        values = {
            col: (fmt(record.get(col), self.rng) if fmt else _std(record.get(col))) for _h, col, fmt in spec.columns
        }
        if self.dirt is None:
            self.sinks[obj].write([values[col] for _h, col, _f in spec.columns])
            self.counts[obj] += 1
            return
        self.dirt.emit(self, obj, record, values)

    def close(self) -> list[Path]:
        for sink in self.sinks.values():
            sink.close()
        return [sink.path for sink in self.sinks.values()]

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()


# --------------------------------------------------------------------------------------------- dirty


def _source_id(obj: str, values: dict[str, str]) -> str:
    """The id the importer builds for a row (composite ids joined with ``|``)."""
    keys = {
        "zones": ("zone_code",),
        "technicians": ("tech_code",),
        "customers": ("customer_code",),
        "contacts": ("contact_id",),
        "work_orders": ("wo_number",),
        "work_order_lines": ("wo_number", "line_no"),
        "dispatch_board": ("wo_number", "date", "tech_code"),
        "service_notes": ("note_id",),
        "invoices": ("invoice_no",),
    }[obj]
    parts = []
    for key in keys:
        value = values.get(key, "")
        if value.startswith('="') and value.endswith('"'):
            value = value[2:-1]
        parts.append(value.strip())
    return "|".join(parts)


# defect type -> (object, column, probability per eligible row, effect, description)
DEFECTS: dict[str, tuple[str, str, float, str, str]] = {
    # encodings and CSV shape
    "utf8_bom": ("customers", "", 0.0, "decoded", "file saved as Excel 'CSV UTF-8' (byte-order mark)"),
    "cp1252_encoding": ("contacts", "", 0.0, "decoded", "file saved as Windows-1252; accents and curly quotes"),
    "mojibake": ("customers", "company_name", 0.01, "loaded_as_given", "UTF-8 text once mis-read as Windows-1252 (Ã©)"),
    "multiline_cell": (
        "work_orders",
        "site_address_1",
        0.02,
        "kept",
        "street split over two lines inside one quoted cell",
    ),
    "embedded_quotes_commas": (
        "customers",
        "company_name",
        0.01,
        "kept",
        'name with commas and "quotes" inside a quoted cell',
    ),
    "trailing_empty_column": (
        "work_order_lines",
        "",
        0.0,
        "ignored",
        "every row ends with a delimiter: an empty, unnamed last column",
    ),
    "ragged_row": ("dispatch_board", "eta", 0.01, "padded", "row shorter than the header (last cells missing)"),
    "lf_line_endings": ("service_notes", "", 0.0, "decoded", "LF line endings in a CRLF export"),
    # Excel damage
    "leading_zero_lost": (
        "customers",
        "billing_postcode",
        0.5,
        "loaded_as_given",
        "postcode 0800 became 800 (Excel number)",
    ),
    "excel_text_formula": ("invoices", "wo_number", 0.03, "unwrapped", 'id wrapped as ="…" to keep it text'),
    "phone_as_number": (
        "contacts",
        "mobile",
        0.02,
        "loaded_as_given",
        "mobile stored as a number: 61412345678 (+ and spaces lost)",
    ),
    "scientific_notation": (
        "work_order_lines",
        "item_code",
        0.01,
        "loaded_as_given",
        "numeric code shown as 8.7557E+15",
    ),
    "excel_serial_date": ("work_orders", "scheduled_date", 0.02, "parsed", "date stored as an Excel serial (45730)"),
    # dates
    "mixed_date_format": (
        "work_orders",
        "created_at",
        0.03,
        "parsed",
        "DD/MM/YYYY h:mm AM or '14 Mar 2025' in an ISO column",
    ),
    "placeholder_date": ("customers", "updated_at", 0.01, "loaded_as_given", "1900-01-01 placeholder"),
    "unparseable_date": ("invoices", "due_date", 0.005, FAILS, "'TBC' / 'ASAP' in a date column"),
    # phones, names, addresses
    "phone_format_variant": (
        "customers",
        "phone",
        0.05,
        "loaded_as_given",
        "(07) 3123 4567 vs 07.3123.4567 vs +61 7 3123 4567 x206",
    ),
    "multiple_values_in_cell": (
        "contacts",
        "phone",
        0.02,
        "loaded_as_given",
        "two numbers in one cell separated by / or 'or'",
    ),
    "two_emails_in_cell": (
        "customers",
        "email",
        0.02,
        "first_kept",
        "two e-mail addresses in one cell; the first is kept",
    ),
    "invalid_email": ("contacts", "email", 0.006, FAILS, "not an e-mail address ('see notes', 'jane@')"),
    "name_case_whitespace": ("contacts", "last_name", 0.03, "whitespace_trimmed", "ALL CAPS, trailing spaces and tabs"),
    "test_record": ("customers", "company_name", 0.0, "loaded_as_given", "'TEST CUSTOMER - DO NOT USE' record"),
    "state_spelling": ("customers", "billing_state", 0.05, "loaded_as_given", "Queensland / Qld. / QLD"),
    "country_spelling": ("customers", "country", 0.05, "loaded_as_given", "AU / AUS / blank for Australia"),
    "po_box_site": ("work_orders", "site_address_1", 0.005, "loaded_as_given", "PO box given as a service address"),
    "latlng_swapped": ("zones", "centre_lat", 0.0, "loaded_as_given", "latitude and longitude swapped"),
    "latlng_zero": ("zones", "centre_lat", 0.0, "loaded_as_given", "0,0 placeholder coordinates"),
    # duplicates
    "duplicate_row_exact": ("work_order_lines", "", 0.01, DROPPED, "the same row twice (overlapping re-export)"),
    "duplicate_customer_variant": (
        "customers",
        "email",
        0.01,
        "loaded_as_given",
        "same company again under a new code; e-mail case and phone format differ",
    ),
    # referential gaps
    "orphan_work_order": ("work_orders", "customer_code", 0.0, SKIPPED, "customer code not in the customer list"),
    "orphan_contact": ("contacts", "customer_code", 0.0, SKIPPED, "customer code not in the customer list"),
    "orphan_line": ("work_order_lines", "wo_number", 0.0, SKIPPED, "line whose work order is not in the export"),
    "orphan_dispatch": ("dispatch_board", "wo_number", 0.0, SKIPPED, "assignment for a work order not in the export"),
    "orphan_note": ("service_notes", "wo_number", 0.0, SKIPPED, "note for a work order not in the export"),
    "orphan_invoice": ("invoices", "wo_number", 0.0, SKIPPED, "invoice for a job outside the export window"),
    "deleted_technician": (
        "dispatch_board",
        "tech_code",
        0.005,
        "lookup_left_empty",
        "technician code not in the technician list",
    ),
    "fk_holds_name": (
        "work_orders",
        "assigned_tech_code",
        0.01,
        "owner_resolved_by_name",
        "technician's name instead of the code",
    ),
    # enums
    "enum_drift_status": (
        "work_orders",
        "status",
        0.04,
        "normalised_by_value_map",
        "Enroute / On the way / in progress / Canceled / COMPLETED",
    ),
    "enum_drift_line_type": (
        "work_order_lines",
        "line_type",
        0.03,
        "normalised_by_value_map",
        "Labor / Parts / Material",
    ),
    "enum_drift_invoice_status": ("invoices", "status", 0.03, "normalised_by_value_map", "Part Paid / PAID / Voided"),
    "enum_drift_priority": ("work_orders", "priority", 0.02, "normalised_by_value_map", "URGENT / Emergency / Med"),
    "window_as_text": ("work_orders", "window_start", 0.02, "kept_as_text", "time window as text: '8-10am', 'AM'"),
    "route_seq_conflict": (
        "dispatch_board",
        "route_seq",
        0.02,
        "loaded_as_given",
        "route sequence duplicated or with a gap",
    ),
    # rich text
    "html_entities": ("service_notes", "body_html", 0.0, "kept_as_html", "HTML tags and entities (&amp; &ndash; <br>)"),
    "rtf_leak": ("service_notes", "body_html", 0.01, "loaded_as_given", "RTF control words leaked into the export"),
    "emoji_smart_quotes": ("service_notes", "body_html", 0.02, "kept", "emoji and curly quotes"),
    "long_note_excel_limit": (
        "service_notes",
        "body_html",
        0.0,
        "loaded_as_given",
        "32,767 characters: cut at Excel's cell limit",
    ),
    # money
    "money_format": ("invoices", "total", 0.05, "parsed", "$1,234.50 / 1.234,50 / AUD 99.00"),
    "money_negative_format": ("invoices", "balance", 0.01, "parsed", "(123.45) or -$5.00 for a credit"),
    "money_unparseable": ("work_order_lines", "unit_price", 0.003, FAILS, "'TBA' where an amount belongs"),
    "bad_quantity": ("work_order_lines", "qty", 0.003, FAILS, "quantity written as a word ('two')"),
    "totals_mismatch": ("work_orders", "total", 0.01, "loaded_as_given", "total differs from the sum of its lines"),
}
_ORDER = list(DEFECTS)


class _Dirt:
    """Injects the DEFECTS into rows as they are written and records each one for the manifest."""

    def __init__(self, seed: int, data: _Dataset) -> None:
        self.rng = random.Random(f"{seed}:dirty")
        self.data = data
        self.entries: list[dict[str, Any]] = []
        self.seen: dict[str, int] = dict.fromkeys(OBJECTS, 0)
        self.applied: dict[str, int] = dict.fromkeys(DEFECTS, 0)
        self.blocking: set[tuple[str, str]] = set()  # records that already fail: one blocking defect each
        self.prev_route: dict[str, str] | None = None

    def _want(self, defect: str, eligible: bool = True) -> bool:
        if not eligible:
            return False
        obj, _col, probability, _effect, _text = DEFECTS[defect]
        first = self.applied[defect] == 0 and self.seen[obj] >= 2 + _ORDER.index(defect) % 5
        return first or self.rng.random() < probability

    def _log(self, sink: _Sink, obj: str, defect: str, row: int, values: dict[str, str], column: str | None = None,
             detail: str = "") -> None:  # fmt: skip
        _obj, col, _p, effect, text = DEFECTS[defect]
        self.applied[defect] += 1
        self.entries.append(
            {
                "file": sink.path.name,
                "row": row,
                "column": column if column is not None else col,
                "defect": defect,
                "object": obj,
                "source_id": _source_id(obj, values) if row else "",
                "effect": effect,
                "description": text,
                **({"detail": detail} if detail else {}),
            }
        )

    def file_level(self, writer: _Writer) -> None:
        for defect in ("utf8_bom", "cp1252_encoding", "trailing_empty_column", "lf_line_endings"):
            obj = DEFECTS[defect][0]
            self._log(writer.sinks[obj], obj, defect, 0, {}, "")

    # ---------------------------------------------------------------- per row
    def emit(self, writer: _Writer, obj: str, record: dict[str, Any], values: dict[str, str]) -> None:
        self.seen[obj] += 1
        sink = writer.sinks[obj]
        row = sink.row + 1
        pending: list[tuple[str, str | None, str]] = []  # (defect, column, detail)
        getattr(self, f"_dirty_{obj}")(record, values, pending)
        columns = [col for _h, col, _f in writer.specs[obj].columns]
        line = [values[col] for col in columns]
        if any(d == "ragged_row" for d, _c, _x in pending):
            line = line[: columns.index("eta")]
        sink.write(line)
        writer.counts[obj] += 1
        for defect, column, detail in pending:
            self._log(sink, obj, defect, row, values, column, detail)
        if obj == "work_order_lines" and self._want("duplicate_row_exact"):
            dup = sink.write(line)
            self._log(sink, obj, "duplicate_row_exact", dup, values, "", f"repeats row {row}")

    def _blocking(self, obj: str, values: dict[str, str]) -> bool:
        key = (obj, _source_id(obj, values))
        if key in self.blocking:
            return False
        self.blocking.add(key)
        return True

    def _dirty_zones(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        if record["zone_code"] == "DARWIN" or (self.applied["latlng_swapped"] == 0 and self.seen["zones"] == 3):
            values["centre_lat"], values["centre_lng"] = values["centre_lng"], values["centre_lat"]
            pending.append(("latlng_swapped", "centre_lat", "centre_lat/centre_lng"))
        elif self.applied["latlng_zero"] == 0 and self.seen["zones"] >= 4:
            values["centre_lat"], values["centre_lng"] = "0", "0"
            pending.append(("latlng_zero", "centre_lat", "centre_lat/centre_lng"))

    def _dirty_technicians(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        return None  # the roster is small and hand-kept; its traps show up where it is referenced

    def _dirty_customers(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("test_record") and self.applied["test_record"] == 0:
            values["company_name"] = "TEST CUSTOMER - DO NOT USE"
            pending.append(("test_record", None, ""))
        elif self._want("mojibake", "é" in values["company_name"] or "ü" in values["company_name"]):
            values["company_name"] = values["company_name"].encode("utf-8").decode("cp1252", errors="replace")
            pending.append(("mojibake", None, ""))
        elif self._want("embedded_quotes_commas"):
            values["company_name"] = f'{values["company_name"]}, "The Old Mill" Site'
            pending.append(("embedded_quotes_commas", None, ""))
        if values["billing_postcode"].startswith("0") and self._want("leading_zero_lost"):
            values["billing_postcode"] = values["billing_postcode"].lstrip("0")
            pending.append(("leading_zero_lost", None, ""))
        if self._want("phone_format_variant") and values["phone"].startswith("(07)"):
            digits = "".join(ch for ch in values["phone"] if ch.isdigit())
            values["phone"] = r.choice(
                (f"07.{digits[2:6]}.{digits[6:]}", f"+61 7 {digits[2:6]} {digits[6:]} x{r.randint(100, 299)}")
            )
            pending.append(("phone_format_variant", None, ""))
        if self._want("two_emails_in_cell"):
            values["email"] = f"{values['email']}; admin@{values['email'].split('@')[-1]}"
            pending.append(("two_emails_in_cell", None, ""))
        if self._want("state_spelling") and values["billing_state"] == "QLD":
            values["billing_state"] = r.choice(("Queensland", "Qld.", "qld"))
            pending.append(("state_spelling", None, ""))
        if self._want("country_spelling"):
            values["country"] = r.choice(("AU", "AUS", ""))
            pending.append(("country_spelling", None, ""))
        if self._want("placeholder_date"):
            values["updated_at"] = "1900-01-01"
            pending.append(("placeholder_date", None, ""))

    def _dirty_contacts(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("invalid_email") and self._blocking("contacts", values):
            values["email"] = r.choice(("see notes", f"{_slug(values['first_name'])}@", "no email"))
            pending.append(("invalid_email", None, ""))
        if self._want("phone_as_number"):
            values["mobile"] = "61" + "".join(ch for ch in values["mobile"] if ch.isdigit())[1:]
            pending.append(("phone_as_number", None, ""))
        if self._want("multiple_values_in_cell"):
            values["phone"] = f"{values['phone'] or '(07) 3344 5566'} {r.choice(('/', 'or', ';'))} {values['mobile']}"
            pending.append(("multiple_values_in_cell", None, ""))
        if self._want("name_case_whitespace"):
            values["last_name"] = values["last_name"].upper() + r.choice(("  ", "\t", " "))
            pending.append(("name_case_whitespace", None, ""))

    def _dirty_work_orders(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("multiline_cell"):
            values["site_address_1"] = f"Unit {r.randint(1, 30)}\n{values['site_address_1']}"
            pending.append(("multiline_cell", None, ""))
        elif self._want("po_box_site"):
            values["site_address_1"] = f"PO Box {r.randint(100, 9999)}"
            pending.append(("po_box_site", None, ""))
        if self._want("excel_serial_date"):
            values["scheduled_date"] = str(_serial(record["scheduled_date"]))
            pending.append(("excel_serial_date", None, ""))
        if self._want("mixed_date_format"):
            created = record["created_at"]
            values["created_at"] = r.choice((_dmy_hm(created, r), f"{created.day} {created:%b %Y}"))
            pending.append(("mixed_date_format", None, ""))
        status = values["status"]
        drift = {"En Route": ("Enroute", "On the way", "en route"), "In Progress": ("in progress", "InProgress"),
                 "Cancelled": ("Canceled", "CANCELLED"), "Completed": ("COMPLETED", "Complete", "completed"),
                 "Scheduled": ("scheduled", "Booked")}.get(status)  # fmt: skip
        if drift and self._want("enum_drift_status"):
            values["status"] = r.choice(drift)
            pending.append(("enum_drift_status", None, f"{status} -> {values['status']}"))
        if self._want("enum_drift_priority"):
            before = values["priority"]
            values["priority"] = {"Urgent": "URGENT", "High": "Emergency", "Normal": "Med", "Low": "low"}[before]
            pending.append(("enum_drift_priority", None, f"{before} -> {values['priority']}"))
        if values["window_start"] and self._want("window_as_text"):
            start = record["window_start"].hour
            end = record["window_end"].hour
            values["window_start"] = r.choice(
                (f"{start}-{end % 12 or 12}{'am' if end < 12 else 'pm'}", "AM" if start < 12 else "PM")
            )
            values["window_end"] = ""
            pending.append(("window_as_text", None, ""))
        tech = values["assigned_tech_code"]
        if tech and self._want("fk_holds_name"):
            found = next(t for t in self.data.technicians if t["tech_code"] == tech)
            values["assigned_tech_code"] = f"{found['first_name']} {found['last_name']}"
            pending.append(("fk_holds_name", None, tech))
        if self._want("totals_mismatch"):
            values["total"] = f"{record['total'] + Decimal(r.choice(('10.00', '-5.50', '0.01'))):f}"
            pending.append(("totals_mismatch", None, ""))

    def _dirty_work_order_lines(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("enum_drift_line_type"):
            before = values["line_type"]
            values["line_type"] = {"Labour": "Labor", "Part": r.choice(("Parts", "Material")), "Fee": "fee"}[before]
            pending.append(("enum_drift_line_type", None, f"{before} -> {values['line_type']}"))
        if self._want("scientific_notation"):
            values["item_code"] = f"{r.randint(10000, 99999) / 10000:.4f}E+15"
            pending.append(("scientific_notation", None, ""))
        if self._want("money_unparseable") and self._blocking("work_order_lines", values):
            values["unit_price"] = r.choice(("TBA", "see quote"))
            pending.append(("money_unparseable", None, ""))
        elif self._want("bad_quantity") and self._blocking("work_order_lines", values):
            values["qty"] = r.choice(("two", "a few"))
            pending.append(("bad_quantity", None, ""))

    def _dirty_dispatch_board(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("deleted_technician"):
            values["tech_code"] = f"T{900 + r.randint(0, 9)}"
            pending.append(("deleted_technician", None, record["tech_code"]))
        if self.prev_route and self._want("route_seq_conflict"):
            values["route_seq"] = r.choice((self.prev_route["route_seq"], str(int(values["route_seq"]) + 3)))
            pending.append(("route_seq_conflict", None, ""))
        elif self._want("ragged_row"):
            pending.append(("ragged_row", None, "eta, travel_minutes missing"))
        self.prev_route = values

    def _dirty_service_notes(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self.applied["html_entities"] == 0 and "&amp;" in values["body_html"]:
            pending.append(("html_entities", None, ""))
        if self._want("long_note_excel_limit") and self.applied["long_note_excel_limit"] == 0:
            base = values["body_html"] + " "
            values["body_html"] = (base * (32767 // len(base) + 1))[:32767]
            pending.append(("long_note_excel_limit", None, ""))
        elif self._want("rtf_leak"):
            text = values["body_html"].replace("<p>", "").replace("</p>", " ")
            values["body_html"] = "{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Calibri;}}\\f0\\fs22 " + text + "\\par}"
            pending.append(("rtf_leak", None, ""))
        elif self._want("emoji_smart_quotes"):
            values["body_html"] += r.choice((" Customer very happy 👍", " “All good” – see photos 📷"))
            pending.append(("emoji_smart_quotes", None, ""))

    def _dirty_invoices(self, record: dict[str, Any], values: dict[str, str], pending: list) -> None:
        r = self.rng
        if self._want("excel_text_formula"):
            values["wo_number"] = f'="{values["wo_number"]}"'
            pending.append(("excel_text_formula", None, ""))
        if self._want("unparseable_date") and self._blocking("invoices", values):
            values["due_date"] = r.choice(("TBC", "ASAP"))
            pending.append(("unparseable_date", None, ""))
        if self._want("enum_drift_invoice_status"):
            before = values["status"]
            values["status"] = {"Partially Paid": "Part Paid", "Paid": "PAID", "Void": "Voided", "Sent": "Issued",
                                "Overdue": "overdue", "Draft": "draft"}[before]  # fmt: skip
            pending.append(("enum_drift_invoice_status", None, f"{before} -> {values['status']}"))
        if self._want("money_format"):
            total = record["total"]
            european = f"{total:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
            values["total"] = r.choice((f"${total:,.2f}", european, f"AUD {total:.2f}"))
            pending.append(("money_format", None, ""))
        if self._want("money_negative_format"):
            values["balance"] = r.choice(("(12.50)", "-$5.00"))
            pending.append(("money_negative_format", None, ""))

    # ---------------------------------------------------------------- extra rows
    def extras(self, writer: _Writer) -> None:
        """Rows that only exist in the dirty export: near-duplicates and referential gaps."""
        data = self.data
        r = self.rng
        missing_wo = f"WO-{10001 + data.plan.work_orders + 500}"
        stray_customer = f"C{10001 + data.plan.customers + 900}"
        # near-duplicate customer: the first commercial customer again under a new code
        original = next(
            (data.customer(i) for i in range(data.plan.customers) if data.customer(i)["customer_type"] == "Commercial"),
            data.customer(0),
        )
        copy = dict(original)
        copy.update(
            customer_code=f"C{10001 + data.plan.customers + 1}",
            email=original["email"].upper(),
            phone=original["phone"].replace("(07) ", "07 "),
            parent_customer_code="",
        )
        self._extra(
            writer, "customers", copy, "duplicate_customer_variant", f"same company as {original['customer_code']}"
        )
        contact = next(data.contacts_of(0))
        contact.update(contact_id=f"SC{(10001 + data.plan.customers + 900) * 10 + 1}", customer_code=stray_customer)
        self._extra(writer, "contacts", contact, "orphan_contact")
        wo = data.work_order(0, {})
        orphan = dict(wo["wo"])
        orphan.update(wo_number=f"WO-{10001 + data.plan.work_orders + 1}", customer_code=stray_customer)
        self._extra(writer, "work_orders", orphan, "orphan_work_order")
        line = dict(wo["lines"][0], wo_number=missing_wo, line_no=1)
        self._extra(writer, "work_order_lines", line, "orphan_line")
        tech = data.field_techs[0]
        self._extra(
            writer,
            "dispatch_board",
            {"date": TODAY, "tech_code": tech["tech_code"], "wo_number": missing_wo, "route_seq": 1,
             "window_start": time(8), "window_end": time(10), "eta": time(8, 20), "travel_minutes": 12},
            "orphan_dispatch",
        )  # fmt: skip
        self._extra(
            writer,
            "service_notes",
            {"wo_number": missing_wo, "note_id": f"N{900001 + r.randint(0, 99)}", "author": "Dispatch",
             "created_at": datetime(2025, 3, 1, 9, 0), "body_html": "<p>Customer rang to reschedule.</p>"},
            "orphan_note",
        )  # fmt: skip
        self._extra(
            writer,
            "invoices",
            {"invoice_no": f"INV-{29001 + r.randint(0, 99)}", "wo_number": "WO-09876",
             "invoice_date": date(2022, 6, 28),
             "due_date": date(2022, 7, 12), "subtotal": Decimal("200.00"), "tax": Decimal("20.00"),
             "total": Decimal("220.00"), "amount_paid": Decimal("220.00"), "balance": Decimal("0.00"),
             "status": "Paid"},
            "orphan_invoice",
            "job predates the export window",
        )  # fmt: skip

    def _extra(self, writer: _Writer, obj: str, record: dict[str, Any], defect: str, detail: str = "") -> None:
        spec = writer.specs[obj]
        values = {col: _std(record.get(col)) for _h, col, _f in spec.columns}
        row = writer.sinks[obj].write([values[col] for _h, col, _f in spec.columns])
        writer.counts[obj] += 1
        self._log(writer.sinks[obj], obj, defect, row, values, None, detail)


# --------------------------------------------------------------------------------------------- unseen zones


def _wkt(zone: dict[str, Any]) -> str:
    lat, lng = float(zone["centre_lat"]), float(zone["centre_lng"])
    d = float(zone["radius_km"]) / 111.0
    ring = [(lng - d, lat - d), (lng + d, lat - d), (lng + d, lat + d), (lng - d, lat + d), (lng - d, lat - d)]
    return "POLYGON((" + ", ".join(f"{x:.4f} {y:.4f}" for x, y in ring) + "))"


# --------------------------------------------------------------------------------------------- entry


def generate_export(out_dir: Path, *, records: int = 2000, seed: int = 7, variant: str = "standard") -> GeneratedExport:
    """Write a synthetic Q Dispatch export folder of about ``records`` records in total into ``out_dir``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if records < 1:
        raise ValueError("records must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _Dataset(records, seed)
    specs = {"unseen": UNSEEN_FILES, "dirty": DIRTY_FILES}.get(variant, CLEAN_FILES)
    dirt = _Dirt(seed, data) if variant == "dirty" else None
    writer = _Writer(out_dir, specs, seed, dirt)
    try:
        if dirt:
            dirt.file_level(writer)
        for zone in data.zones:
            writer.emit("zones", {**zone, "polygon_wkt": _wkt(zone)})
        for tech in data.technicians:
            writer.emit("technicians", tech)
        for index in range(data.plan.customers):
            writer.emit("customers", data.customer(index))
            for contact in data.contacts_of(index):
                writer.emit("contacts", contact)
        route: dict[tuple[date, str], int] = {}
        note_number = invoice_number = 0
        for index in range(data.plan.work_orders):
            job = data.work_order(index, route)
            writer.emit("work_orders", job["wo"])
            for line in job["lines"]:
                writer.emit("work_order_lines", line)
            for visit in job["dispatch"]:
                writer.emit("dispatch_board", visit)
            for note in job["notes"]:
                note_number += 1
                writer.emit("service_notes", {**note, "note_id": f"N{500000 + note_number}"})
            if job["invoice"]:
                invoice_number += 1
                writer.emit("invoices", {**job["invoice"], "invoice_no": f"INV-{30000 + invoice_number}"})
            if index % 64 == 0:  # forget route counters of past days (work orders come in date order)
                today = job["wo"]["scheduled_date"]
                for key in [k for k in route if k[0] < today]:
                    del route[key]
        if dirt:
            dirt.extras(writer)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    export = GeneratedExport(files=files, counts=dict(writer.counts), users=list(data.users))
    if dirt:
        export.defects = dirt.entries
        # In a subfolder: importing the export folder must not pick the manifest up as data.
        export.manifest = out_dir / MANIFEST_DIR / "manifest.json"
        _write_manifest(export.manifest, data, seed, records, dirt.entries)
    return export


def _write_manifest(path: Path, data: _Dataset, seed: int, records: int, entries: list[dict[str, Any]]) -> None:
    by_type: dict[str, int] = {}
    for entry in entries:
        by_type[entry["defect"]] = by_type.get(entry["defect"], 0) + 1
    body = {
        "source": "qdispatch",
        "variant": "dirty",
        "seed": seed,
        "records": records,
        "effects": {
            FAILS: "the record fails at load with a BAD_VALUE reason naming the column",
            SKIPPED: "the record is skipped at load: its parent is not in the export (MISSING_PARENT)",
            DROPPED: "the importer keeps one copy of an exact duplicate row",
        },
        "defect_types": {
            name: {"object": o, "column": c, "effect": e, "description": t}
            for name, (o, c, _p, e, t) in DEFECTS.items()
        },
        "counts": by_type,
        "defects": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        temp.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_samples(root: Path, *, records: int = 300, seed: int = 7) -> list[GeneratedExport]:
    """(Re)write the checked-in samples under ``root`` (``resources/samples/qdispatch``)."""
    return [
        generate_export(root / variant, records=records, seed=seed, variant=variant)
        for variant in ("clean", "dirty", "unseen")
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "resources" / "samples" / "qdispatch"
    for export in write_samples(root):
        for path in [*export.files, *([export.manifest] if export.manifest else [])]:
            print(f"{path}  ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
