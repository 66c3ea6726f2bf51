"""Synthetic OctopusPro exports: demo data and robustness fixtures.

One seeded dataset (customers, bookings, field workers, invoices, payments, quotes, services and form
responses, with referential integrity) is rendered in one of these shapes:

* ``"standard"`` (``"clean"`` is the same): ``octopuspro_export.xlsx``, one sheet per object, with the
  canonical headers of the source-platform reference (§4), Excel date cells, a plaintext ``Password``
  column (which must never migrate) and two customer custom fields.
* ``"unseen"``: a folder of files with other header spellings, title rows above the headers, a UTF-8-BOM
  customers CSV, a Windows-1252 ``;``-separated jobs CSV with curly quotes and decimal commas, a UTF-16
  tab-separated staff list, and a workbook whose dates mix Excel serial numbers with ``DD/MM/YYYY`` text.
* ``"dirty"``: a support-style export (``octopuspro_export.xlsx`` with invoices, payments, quotes and
  services, plus ``customers.csv``, ``bookings.csv``, ``Staff.txt`` and ``form_responses.csv``) with the
  §4/§6 traps injected, and ``_fixture/manifest.json`` (a subfolder, so importing the folder ignores it)
  listing every defect: file, sheet, physical row, column, defect type, the source id the load reports
  and the expected effect (``fails``/``skipped``/``dropped_at_import`` or a non-blocking one such as
  ``parsed``, ``normalised_by_value_map``, ``loaded_as_given``). Blocking defects sit only where they
  cannot cascade: leaf records (payments, quotes, services, invoices without payments) or rows that
  exist only in the dirty export (nobody references them). Never a duplicate id with different values:
  the importer would reject the whole file.

Scale: the dataset is a stream (:class:`_Dataset`), so CSV output is written row by row in bounded memory
up to 1,000,000 records. Workbooks are written only up to ``LARGE`` (200,000) records; above that every
would-be sheet becomes a CSV named after it (``Customers.csv``, ``Invoices.csv``, ...), because openpyxl is
slow and memory-hungry at that size and Excel stops at 1,048,576 rows anyway.

The content is deterministic for a given ``(records, seed, variant)`` (the reference date is fixed at
14 March 2025); file bytes may differ in workbook metadata. Every file is written atomically.

Regenerate the checked-in samples with ``python -m crmmigrator_gui.engine.demo.octopuspro``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import random
import secrets
import sys
import tempfile
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, ClassVar

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

KIND = "files"  # for the demo runner: this source arrives as export files

TODAY = date(2025, 3, 14)
VARIANTS = ("standard", "clean", "dirty", "unseen")
SAMPLES = ("standard", "unseen")  # checked in under resources/samples/octopuspro
LARGE = 200_000  # above this many records, workbooks are written as one CSV per sheet
OBJECTS = (
    "customers",
    "bookings",
    "fieldworkers",
    "invoices",
    "payments",
    "quotes",
    "services",
    "form_responses",
)
CENTS = Decimal("0.01")
_EXCEL_EPOCH = date(1899, 12, 30)


@dataclass
class GeneratedExport:
    files: list[Path]
    counts: dict[str, int]  # per object, keys as in OBJECTS
    users: list[tuple[str, str]]  # (full name, e-mail) of ~80% of field workers: the destination's users
    manifest: Path | None = None  # dirty variant only
    defects: list[dict[str, Any]] = field(default_factory=list)  # dirty variant only (as in the manifest)


# --------------------------------------------------------------------------------------------- vocabulary

_FIRST = (
    "Zoë", "Łukasz", "José", "Siobhán", "Liam", "Olivia", "Noah", "Charlotte", "Jack", "Mia", "William",
    "Amelia", "Thomas", "Isla", "James", "Ava", "Lucas", "Chloe", "Mohammed", "Priya", "Wei", "Aroha",
    "Björn", "Renée", "François", "Ngaio", "Seán", "Grace", "Hannah", "Oliver", "Matilda", "Aisha", "Kai",
    "Mei", "Anh", "Ethan", "Sophie", "Henry", "Ruby", "Zara",
)  # fmt: skip
_LAST = (
    "O'Brien", "Nguyễn", "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Müller", "Kowalski",
    "Papadopoulos", "Singh", "Patel", "Chen", "李", "García", "Murphy", "Kelly", "Walker", "White", "Martin",
    "Anderson", "Thompson", "Nguyen", "Ryan", "MacDonald", "Rossi", "Søndergaard", "Tan", "Lee", "D'Angelo",
    "van der Berg",
)  # fmt: skip
_BUSINESS = (
    "{last} Plumbing Pty Ltd", "Harbour View Strata", "Café Allegro", "Blue Gum Property Management",
    "{last} & Sons Electrical", "Southern Cross Realty", "Wattle Grove Childcare", "Bayside Dental",
    "{last} Holdings", "Red Centre Motors", "Coastal Body Corporate", "Jacaranda Aged Care",
)  # fmt: skip
_PLACES = (
    ("Darwin", "NT", "0800"), ("Palmerston", "NT", "0830"), ("Alice Springs", "NT", "0870"),
    ("Sydney", "NSW", "2000"), ("Parramatta", "NSW", "2150"), ("Bondi Beach", "NSW", "2026"),
    ("Newcastle", "NSW", "2300"), ("Melbourne", "VIC", "3000"), ("St Kilda", "VIC", "3182"),
    ("Geelong", "VIC", "3220"), ("Brisbane", "QLD", "4000"), ("Fortitude Valley", "QLD", "4006"),
    ("Gold Coast", "QLD", "4217"), ("Adelaide", "SA", "5000"), ("Glenelg", "SA", "5045"),
    ("Perth", "WA", "6000"), ("Fremantle", "WA", "6160"), ("Hobart", "TAS", "7000"),
    ("Launceston", "TAS", "7250"), ("Canberra", "ACT", "2600"), ("Braddon", "ACT", "2612"),
)  # fmt: skip
_STATE_NAMES = {"NSW": "New South Wales", "VIC": "Victoria", "QLD": "Queensland"}
_STREETS = ("George", "King", "Queen", "Elizabeth", "Mitchell", "Bay", "Ocean", "Station", "Church", "Park",
            "Wattle", "Banksia", "Jacaranda", "Smith", "Victoria", "Marine")  # fmt: skip
_STREET_TYPES = ("St", "Rd", "Ave", "Pde", "Cres", "Ct", "Lane", "Hwy", "Tce")
_DOMAINS = ("gmail.com", "outlook.com", "bigpond.com", "icloud.com", "yahoo.com.au", "optusnet.com.au")
_LABELS = ("VIP", "Strata", "Repeat", "Referral", "Commercial", "Pet on site", "Late payer")
_SERVICES = (
    ("Standard Plumbing Call-out", "Plumbing", "129.00", 60),
    ("Blocked Drain Clearing", "Plumbing", "249.00", 90),
    ("Hot Water System Service", "Plumbing", "189.50", 90),
    ("Air Conditioner Service", "HVAC", "159.00", 60),
    ("Split System Install", "HVAC", "1249.00", 240),
    ("Electrical Safety Inspection", "Electrical", "179.00", 60),
    ("Smoke Alarm Compliance", "Electrical", "99.00", 30),
    ("Carpet Steam Clean", "Cleaning", "220.00", 120),
    ("End of Lease Clean", "Cleaning", "449.00", 300),
    ("Window Cleaning", "Cleaning", "185.00", 120),
    ("Gutter Cleaning", "Exterior", "210.00", 120),
    ("Lawn Mowing", "Gardening", "65.00", 45),
    ("Hedge Trimming", "Gardening", "95.00", 60),
    ("Pest Control – General", "Pest Control", "189.00", 60),
    ("Termite Inspection", "Pest Control", "275.00", 90),
    ("Pool Maintenance", "Pools", "110.00", 60),
    ("Appliance Repair", "Repairs", "145.00", 60),
    ("Locksmith Call-out", "Security", "155.00", 45),
    ("Pressure Washing", "Exterior", "299.00", 150),
    ("Solar Panel Cleaning", "Exterior", "199.00", 90),
    ("Roof Repair", "Repairs", "650.00", 240),
    ("Tiling Repair", "Repairs", "320.00", 180),
)
_INDUSTRIES = (
    "Plumber",
    "Electrician",
    "HVAC Technician",
    "Cleaner",
    "Gardener",
    "Pest Controller",
    "Handyman",
)
_PAYMENT_METHODS = ("Credit card", "Cash", "Bank transfer", "Stripe", "EFTPOS", "Cheque")
_ACCESS_NOTES = (
    "Key under the mat",
    "Call on arrival – dog in yard",
    "Side gate, code {gate}",
    "Park on the street; driveway is shared",
    "Tenant’s name is on the buzzer",
    "Ask for the “site manager” at reception",
    "Level 3 – use the service lift\nLoading dock closes at 4pm",
)
_FORMS = (
    (
        "Job completion checklist",
        (
            ("Work completed as quoted?", ("Yes", "Yes", "Yes", "No")),
            ("Customer signature obtained?", ("Yes", "Yes", "No")),
            ("Technician notes", None),
        ),
    ),
    (
        "Site safety assessment",
        (
            (
                "Hazards identified",
                ("None", "Slippery surface", "Asbestos suspected – stopped work", "Live wires"),
            ),
            ("PPE worn", ("Yes", "Yes", "Yes", "No")),
            ("Customer rating (1-5)", ("5", "5", "4", "3", "2")),
        ),
    ),
)
_NOTES = (
    "Replaced washer and tested – all good.",
    "Customer asked for a quote on the ensuite.\nFollow up next week.",
    "Part on back-order; “temporary fix” in place.",
    "Access was difficult, extra 30 min charged.",
    "No issues found.",
)
_PASSWORDS = ("Summer2024!", "password1", "Octopus#22", "letmein", "Winter-2023", "qwerty123")


# --------------------------------------------------------------------------------------------- dataset


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _slug(text: str) -> str:
    return "".join(ch for ch in _ascii(text) if ch.isalnum())


def _cp1252_safe(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENTS)


def _plan_counts(records: int) -> dict[str, int]:
    records = max(records, 40)
    counts = {
        "customers": round(records * 0.25),
        "bookings": round(records * 0.35),
        "invoices": round(records * 0.15),
        "payments": round(records * 0.10),
        "quotes": round(records * 0.07),
        "services": min(len(_SERVICES), max(6, round(records * 0.01))),
        "fieldworkers": max(5, min(60, round(records * 0.0075))),
    }
    counts["form_responses"] = max(0, records - sum(counts.values()))
    return counts


class _Spool:
    """Records parked in a temporary file (pickled) until they can be emitted: bounded memory at any size."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.count = 0

    def add(self, item: dict[str, Any]) -> None:
        pickle.dump(item, self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.file.flush()
        self.file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self.file)

    def close(self) -> None:
        self.file.close()


class _Dataset:
    """The seeded dataset as a stream: :meth:`stream` yields every record once, as a dict of typed values.

    Order: services, field workers, customers, bookings, invoices, payments, quotes, form responses. Only
    what later objects need is kept (per customer its street, place and gate code; per booking its day,
    status and total in cents); invoices and payments wait in a temporary spool file until the
    "at least one refund and one partial payment" guarantees have been applied. Memory therefore grows
    by a few dozen bytes per customer and booking, not by whole records. The random draws are the same,
    in the same order, as when every object was built as a list, so the exports did not change.
    """

    def __init__(self, records: int, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.plan = _plan_counts(records)
        self.services = self._services()
        self.workers = self._workers()
        self.users = [(w["name"], w["email"]) for w in self.workers if w["is_user"]]
        self.emitted = dict.fromkeys(OBJECTS, 0)
        self._streets: list[str] = []  # per customer, for the bookings' site address
        self._place: list[tuple[str, str, str]] = []
        self._gate: list[str] = []
        self._day = array("l")  # per booking: date ordinal, status, total in cents (for the invoices)
        self._status: list[str] = []
        self._cents = array("q")

    def counts(self) -> dict[str, int]:
        """Records per object; complete once :meth:`stream` has been consumed."""
        keys = ("customers", "bookings", "fieldworkers", "invoices", "payments", "quotes", "services",
                "form_responses")  # fmt: skip
        return {key: self.emitted[key] for key in keys}

    def stream(self) -> Iterator[tuple[str, dict[str, Any]]]:
        parts: list[Iterable[tuple[str, dict[str, Any]]]] = [
            (("services", s) for s in self.services),
            (("fieldworkers", w) for w in self.workers),
            self._customers(),
            self._bookings(),
            self._invoices_and_payments(),
            self._quotes(),
            self._form_responses(),
        ]
        for part in parts:
            for obj, record in part:
                self.emitted[obj] += 1
                yield obj, record

    def customer_id(self, index: int) -> int:
        return 1001 + index

    def booking_id(self, index: int) -> int:
        return 50001 + index

    # helpers
    def _mobile(self) -> str:
        r = self.rng
        number = f"04{r.randint(10, 99)} {r.randint(100, 999)} {r.randint(100, 999)}"
        return "+61 " + number[1:] if r.random() < 0.1 else number

    def _landline(self, state: str) -> str:
        area = {"NSW": "02", "ACT": "02", "VIC": "03", "TAS": "03", "QLD": "07"}.get(state, "08")
        return f"({area}) {self.rng.randint(5000, 9999)} {self.rng.randint(1000, 9999)}"

    def _street(self) -> str:
        r = self.rng
        street = f"{r.randint(1, 240)} {r.choice(_STREETS)} {r.choice(_STREET_TYPES)}"
        if r.random() < 0.15:
            return f"Unit {r.randint(1, 40)}\n{street}"
        return street

    def _when(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, (end - start).days))

    def _person(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST), self.rng.choice(_LAST)

    # objects
    def _services(self) -> list[dict[str, Any]]:
        return [
            {"service": name, "category": cat, "price": Decimal(price), "duration": minutes}
            for name, cat, price, minutes in _SERVICES[: self.plan["services"]]
        ]

    def _workers(self) -> list[dict[str, Any]]:
        r = self.rng
        safe_first = [n for n in _FIRST if _cp1252_safe(n)]
        safe_last = [n for n in _LAST if _cp1252_safe(n)]
        workers: list[dict[str, Any]] = []
        used: set[str] = set()
        count = self.plan["fieldworkers"]
        users = round(count * 0.8)
        for index in range(count):
            while True:
                first, last = r.choice(safe_first), r.choice(safe_last)
                name = f"{first} {last}"
                if name not in used:
                    used.add(name)
                    break
            workers.append(
                {
                    "id": 11 + index,
                    "name": name,
                    "email": f"{_slug(first)}.{_slug(last)}@sparkleservices.com.au",
                    "mobile": self._mobile(),
                    "active": index < count - 1 or count < 3,  # the last one has left
                    "industry": r.choice(_INDUSTRIES),
                    "pay_rate": _money(r.choice((32, 35.5, 38, 42.75, 45, 55))),
                    "is_user": index < users,
                }
            )
        return workers

    def _customers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        r = self.rng
        count = self.plan["customers"]
        for index in range(count):
            first, last = self._person()
            business = r.random() < 0.25
            company = ""
            if business:
                company = r.choice(_BUSINESS).format(last=last)
                if r.random() < 0.08:
                    company = ""  # trap: "Business" customer with a blank business name
            place = r.choice(_PLACES)
            suburb, state, postcode = place
            local = _slug(first) + "." + _slug(last) if _slug(first) and _slug(last) else f"customer{1001 + index}"
            email = f"{local}@{r.choice(_DOMAINS)}"
            if r.random() < 0.03:
                email = f"{email}; accounts@{_slug(company) or 'example'}.com.au"  # trap: two addresses
            if r.random() < 0.05:
                email = ""
            customer = {
                "id": self.customer_id(index),
                "title": r.choice(("Mr", "Mrs", "Ms", "Miss", "Dr", "", "")),
                "first": first,
                "last": last,
                "company": company,
                "type": "Business" if business else "Personal",
                "email": email,
                "mobile": self._mobile() if r.random() < 0.9 else "",
                "phone": self._landline(state) if r.random() < 0.4 else "",
                "street": self._street(),
                "suburb": suburb,
                "state": state,
                "postcode": postcode,
                "country": "Australia",
                "joined": self._when(date(2019, 1, 1), TODAY),
                "labels": ", ".join(r.sample(_LABELS, r.choice((0, 0, 1, 1, 2)))),
                "gate_code": f"{r.randint(0, 9999):04d}" if r.random() < 0.3 else "",
                "preferred": r.choice(self.workers)["name"] if r.random() < 0.4 else "",
                "password": r.choice(_PASSWORDS),
            }
            self._streets.append(customer["street"])
            self._place.append(place)
            self._gate.append(customer["gate_code"])
            if index == count - 1:  # the record everyone forgets to delete
                customer.update(first="Test", last="DO NOT USE", email="test@example.com", labels="")
            yield "customers", customer

    def _status_for(self, day: date) -> str:
        r = self.rng
        if day > TODAY:
            return r.choice(("Pending", "Scheduled", "Scheduled", "Scheduled"))
        if day == TODAY:
            return r.choice(("En Route", "Enroute", "In Progress", "Scheduled"))
        roll = r.random()
        if roll < 0.08:
            return "Cancelled"
        if roll < 0.11:
            return "Canceled"
        return "Completed"

    def _bookings(self) -> Iterator[tuple[str, dict[str, Any]]]:
        r = self.rng
        customers = range(len(self._streets))  # choosing from a range draws like choosing from the list
        for index in range(self.plan["bookings"]):
            ci = r.choice(customers)
            suburb, state, postcode = self._place[ci]
            service = r.choice(self.services)
            day = self._when(date(2023, 1, 1), TODAY + timedelta(days=45))
            if r.random() < 0.04:
                day = TODAY
            status = self._status_for(day)
            start = time(r.choice((7, 8, 9, 10, 11, 13, 14, 15)), r.choice((0, 0, 15, 30, 45)))
            end_dt = datetime.combine(day, start) + timedelta(minutes=service["duration"])
            crew = r.sample(self.workers, 2 if r.random() < 0.12 else 1)
            total = _money(service["price"] * Decimal(r.choice(("1", "1", "1", "1.1", "1.25", "0.9"))))
            if status == "Completed":
                paid = total if r.random() < 0.8 else _money(total * Decimal("0.5"))
            else:
                paid = Decimal("0.00")
            created = datetime.combine(day - timedelta(days=r.randint(1, 30)), time(r.randint(8, 17), r.randint(0, 59)))
            modified = created + timedelta(days=r.randint(0, 40), minutes=r.randint(0, 600))
            street = self._streets[ci] if r.random() < 0.85 else self._street()
            self._day.append(day.toordinal())
            self._status.append(status)
            self._cents.append(int(total.scaleb(2)))
            yield (
                "bookings",
                {
                    "id": self.booking_id(index),
                    "customer": self.customer_id(ci),
                    "service": service["service"],
                    "status": status,
                    "date": day,
                    "start": start,
                    "end": end_dt.time(),
                    "workers": [w["name"] for w in crew],
                    "address": f"{street}, {suburb} {state} {postcode}",
                    "total": total,
                    "paid": paid,
                    "created": created,
                    "modified": min(modified, datetime.combine(TODAY, time(17, 0))),
                    "access": r.choice(_ACCESS_NOTES).format(gate=self._gate[ci] or "1234")
                    if r.random() < 0.35
                    else "",
                },
            )

    def _invoices_and_payments(self) -> Iterator[tuple[str, dict[str, Any]]]:
        r = self.rng
        statuses = self._status
        done = [i for i, s in enumerate(statuses) if s == "Completed"]
        others = [i for i, s in enumerate(statuses) if s != "Completed"]
        wanted = min(self.plan["invoices"], len(statuses))
        from_others = min(len(others), max(1, round(wanted * 0.1)), wanted)
        from_done = min(len(done), wanted - from_others)
        from_others = min(len(others), wanted - from_done)
        picked = r.sample(done, from_done) + r.sample(others, from_others)
        chosen = sorted(picked, key=lambda i: (self._day[i], i))  # (date, id): ids rise with the index
        del done, others, picked
        budget = self.plan["payments"]
        invoices, payments = _Spool(), _Spool()
        state = {"payments": 0, "refund": False}

        def pay(invoice: dict[str, Any], amount: Decimal, day: date, method: str | None = None) -> None:
            payments.add(
                {
                    "id": 90001 + state["payments"],
                    "invoice": invoice["number"],
                    "method": method or r.choice(_PAYMENT_METHODS),
                    "amount": amount,
                    "date": day,
                    "reference": f"TXN{r.randint(100000, 999999)}" if r.random() < 0.7 else "",
                }
            )
            state["payments"] += 1
            state["refund"] = state["refund"] or amount < 0

        def settle(invoice: dict[str, Any], booking_status: str) -> None:
            issue = invoice["issue"]
            left = budget - state["payments"]
            paid_on = min(issue + timedelta(days=r.randint(0, 20)), TODAY)
            if booking_status != "Completed":
                invoice["status"] = "Void" if booking_status in ("Cancelled", "Canceled") else "Draft"
                if invoice["status"] == "Void" and left >= 2 and r.random() < 0.5:
                    # Paid up front, then refunded when the job was cancelled.
                    pay(invoice, invoice["total"], paid_on)
                    pay(invoice, -invoice["total"], min(paid_on + timedelta(days=3), TODAY), "Credit card")
                invoice["balance"] = Decimal("0.00") if invoice["status"] == "Void" else invoice["total"]
                return
            if left <= 0 or issue > TODAY:
                return
            roll = r.random()
            if roll < 0.15 and left >= 1:  # partial payment
                part = _money(invoice["total"] * Decimal("0.4"))
                pay(invoice, part, paid_on)
                invoice["balance"] = invoice["total"] - part
            elif roll < 0.25 and left >= 2:  # paid in two instalments
                first = _money(invoice["total"] / 2)
                pay(invoice, first, paid_on)
                pay(invoice, invoice["total"] - first, min(paid_on + timedelta(days=7), TODAY))
                invoice.update(balance=Decimal("0.00"), status="Paid")
            else:
                pay(invoice, invoice["total"], paid_on)
                invoice.update(balance=Decimal("0.00"), status="Paid")

        partial = False
        paid_count = 0
        first_paid: tuple[int, dict[str, Any], list[int]] | None = None  # (position, invoice, its payments)
        last_paid: tuple[int, dict[str, Any]] | None = None
        try:
            for position, b in enumerate(chosen):
                total = Decimal(self._cents[b]).scaleb(-2)
                issue = date.fromordinal(self._day[b])
                invoice = {
                    "number": f"INV-{10001 + position}",
                    "booking": self.booking_id(b),
                    "issue": issue,
                    "due": issue + timedelta(days=14),
                    "total": total,
                    "balance": total,
                    "status": "Unpaid",
                }
                before = state["payments"]
                settle(invoice, statuses[b])
                invoice["n_payments"] = state["payments"] - before  # not a column: dirty fixtures use it
                partial = partial or 0 < invoice["balance"] < invoice["total"]
                if invoice["status"] == "Paid":
                    paid_count += 1
                    last_paid = (position, invoice)
                    if first_paid is None:
                        first_paid = (position, invoice, list(range(before, state["payments"])))
                invoices.add(invoice)
            # Guarantee the documented traps even in tiny exports: at least one refund and one partial payment.
            changed: dict[int, dict[str, Any]] = {}
            amounts: dict[int, Decimal] = {}
            removed: set[int] = set()
            if last_paid is not None and not state["refund"]:
                position, target = last_paid
                pay(target, -_money(target["total"] * Decimal("0.2")), TODAY, "Credit card")
                changed[position] = {"balance": _money(target["total"] * Decimal("0.2")), "status": "Unpaid",
                                     "n_payments": target["n_payments"] + 1}  # fmt: skip
                partial = partial or 0 < changed[position]["balance"] < target["total"]
            if paid_count > 1 and not partial and first_paid is not None:
                position, target, mine = first_paid
                amounts[mine[0]] = _money(target["total"] * Decimal("0.6"))
                removed.update(mine[1:])
                changed[position] = {"balance": target["total"] - amounts[mine[0]], "status": "Unpaid",
                                     "n_payments": 1}  # fmt: skip
            for position, invoice in enumerate(invoices):
                invoice.update(changed.get(position, {}))
                yield "invoices", invoice
            number = 0
            for position, payment in enumerate(payments):
                if position in removed:
                    continue
                if position in amounts:
                    payment["amount"] = amounts[position]
                payment["id"] = 90001 + number
                number += 1
                yield "payments", payment
        finally:
            invoices.close()
            payments.close()

    def _quotes(self) -> Iterator[tuple[str, dict[str, Any]]]:
        r = self.rng
        customers = range(len(self._streets))
        for index in range(self.plan["quotes"]):
            ci = r.choice(customers)
            service = r.choice(self.services)
            yield (
                "quotes",
                {
                    "number": f"Q-{5001 + index}",
                    "customer": self.customer_id(ci),
                    "status": r.choice(("Draft", "Sent", "Sent", "Accepted", "Accepted", "Rejected", "Revised")),
                    "follow_up": self._when(date(2024, 6, 1), TODAY + timedelta(days=30)),
                    "total": _money(service["price"] * Decimal(r.choice(("1", "1.5", "2", "3.2")))),
                },
            )

    def _form_responses(self) -> Iterator[tuple[str, dict[str, Any]]]:
        r = self.rng
        done = [self.booking_id(i) for i, s in enumerate(self._status) if s == "Completed"]
        done = done or [self.booking_id(i) for i in range(len(self._status))]
        made = 0
        target = self.plan["form_responses"]
        while made < target and done:
            booking = r.choice(done)
            form, questions = r.choice(_FORMS)
            for question, answers in questions:
                if made >= target:
                    break
                answer = r.choice(answers) if answers else r.choice(_NOTES)
                made += 1
                yield "form_responses", {"booking": booking, "form": form, "question": question, "answer": answer}


# --------------------------------------------------------------------------------------------- writing

Columns = list[tuple[str, Callable[[dict[str, Any]], Any]]]


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder, then rename over the target (ordinary permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _table(
    columns: Columns, items: Iterable[dict[str, Any]], preamble: list[list[Any]] | None = None
) -> list[list[Any]]:
    rows = [list(line) for line in preamble or []]
    rows.append([header for header, _get in columns])
    rows.extend([get(item) for _header, get in columns] for item in items)
    return rows


def _write_csv(path: Path, rows: list[list[Any]], *, encoding: str, delimiter: str = ",") -> None:
    """A small CSV in one go (the streaming writers use :class:`_CsvSink`)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")
    _atomic_write(path, lambda temp: temp.write_bytes(data))


class _CsvSink:
    """One CSV streamed into a temp file beside its final name (renamed into place by :meth:`close`).

    ``row`` is the number of physical records written so far (a spreadsheet's row number). Characters the
    encoding lacks become ``?``, as when Excel saves a Windows-1252 CSV. With ``raw_formulas`` a ``="…"``
    cell is written unquoted, as Excel writes it; otherwise the csv module quotes it as any other cell.
    """

    def __init__(
        self, path: Path, *, encoding: str = "utf-8", delimiter: str = ",", newline: str = "\r\n",
        trailing_empty_column: bool = False, raw_formulas: bool = False,
    ) -> None:  # fmt: skip
        self.path = path
        self.sheet: str | None = None
        self.delimiter = delimiter
        self.newline = newline
        self.trailing = trailing_empty_column
        self.raw_formulas = raw_formulas
        self.temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        self.handle: IO[str] = self.temp.open("w", encoding=encoding, errors="replace", newline="")
        self.writer = csv.writer(self.handle, delimiter=delimiter, lineterminator=newline)
        self.row = 0

    def append(self, values: list[Any], bold: bool = False) -> int:
        if self.trailing:
            values = [*values, ""]
        formulas = {
            i
            for i, v in enumerate(values)
            if self.raw_formulas and isinstance(v, str) and v[:2] == '="' and v[-1:] == '"'
        }
        if formulas:  # Excel writes its keep-as-text wrapper unquoted (="00123"); the csv module would quote it
            buffer = io.StringIO()  # the real terminator, so cells with line breaks are still quoted
            csv.writer(buffer, delimiter=self.delimiter, lineterminator="\r\n").writerow(
                [f"\x00{i}\x00" if i in formulas else v for i, v in enumerate(values)]
            )
            line = buffer.getvalue()[:-2]
            for i in formulas:
                line = line.replace(f"\x00{i}\x00", values[i])
            self.handle.write(line + self.newline)
        else:
            self.writer.writerow(values)
        self.row += 1
        return self.row

    def close(self) -> None:
        self.handle.close()
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


class _XlsxBook:
    """A write-only workbook whose sheets can be filled in any interleaving (openpyxl spools each sheet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.workbook = Workbook(write_only=True)
        self.bold = Font(bold=True)

    def sheet(self, title: str) -> _XlsxSheet:
        return _XlsxSheet(self, title)

    def close(self) -> None:
        self.workbook.properties.creator = "CRM Migrator demo generator"
        self.workbook.properties.created = datetime(2025, 3, 14, 9, 0)
        _atomic_write(self.path, lambda temp: self.workbook.save(temp))

    def abort(self) -> None:
        self.workbook = Workbook(write_only=True)  # drop the spooled sheets


class _XlsxSheet:
    """One sheet of an :class:`_XlsxBook`; dates become date cells, Decimals numbers."""

    def __init__(self, book: _XlsxBook, title: str) -> None:
        self.book = book
        self.path = book.path
        self.sheet: str | None = title
        self.ws = book.workbook.create_sheet(title)
        self.row = 0

    def append(self, values: list[Any], bold: bool = False) -> int:
        font = self.book.bold if bold else None
        self.ws.append([_xlsx_cell(self.ws, value, font) for value in values])
        self.row += 1
        return self.row

    def close(self) -> None:
        return None  # the book saves its sheets

    def abort(self) -> None:
        return None


_Sink = _CsvSink | _XlsxSheet


def _write_xlsx(path: Path, sheets: list[tuple[str, list[list[Any]], int]]) -> None:
    """Sheets as (title, rows, index of the header row); dates become date cells, Decimals numbers."""
    book = _XlsxBook(path)
    for title, rows, header_at in sheets:
        sheet = book.sheet(title)
        for number, row in enumerate(rows):
            sheet.append(row, bold=number == header_at)
    book.close()


def _xlsx_cell(sheet: Any, value: Any, font: Font | None) -> Any:
    if value is None or (isinstance(value, str) and not value):
        return None
    cell = WriteOnlyCell(sheet, value=float(value) if isinstance(value, Decimal) else value)
    if isinstance(value, datetime):
        cell.number_format = "DD/MM/YYYY HH:MM"
    elif isinstance(value, date):
        cell.number_format = "DD/MM/YYYY"
    elif isinstance(value, Decimal):
        cell.number_format = "#,##0.00"
    if font is not None:
        cell.font = font
    return cell


@dataclass
class _Route:
    """Where one object's records go: a sink and its columns (the header is written on creation)."""

    sink: _Sink
    columns: Columns

    @classmethod
    def open(cls, sink: _Sink, columns: Columns, preamble: list[list[Any]] | None = None) -> _Route:
        for line in preamble or []:
            sink.append(list(line))
        sink.append([header for header, _get in columns], bold=True)
        return cls(sink, columns)

    def values(self, record: dict[str, Any]) -> dict[str, Any]:
        return {header: get(record) for header, get in self.columns}

    def write(self, values: dict[str, Any]) -> int:
        return self.sink.append([values[header] for header, _get in self.columns])


class _Outputs:
    """The open sinks of one export; files appear (atomically) only when every record was written."""

    def __init__(self) -> None:
        self.sinks: list[_Sink] = []
        self.books: list[_XlsxBook] = []
        self.files: list[Path] = []

    def csv(self, path: Path, **options: Any) -> _CsvSink:
        sink = _CsvSink(path, **options)
        self.sinks.append(sink)
        if path not in self.files:
            self.files.append(path)
        return sink

    def book(self, path: Path) -> _XlsxBook:
        book = _XlsxBook(path)
        self.books.append(book)
        self.files.append(path)
        return book

    def close(self) -> list[Path]:
        for sink in self.sinks:
            sink.close()
        for book in self.books:
            book.close()
        return list(self.files)

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()
        for book in self.books:
            book.abort()


def _pump(data: _Dataset, routes: dict[str, _Route], dirt: Any = None) -> None:
    """Stream every record of the dataset into its route (through the dirt injector when given)."""
    for obj, record in data.stream():
        route = routes.get(obj)
        if route is None:
            continue
        values = route.values(record)
        if dirt is None:
            route.write(values)
        else:
            dirt.emit(route, obj, record, values)


def _hm(moment: time) -> str:
    return moment.strftime("%H:%M")


def _ampm(moment: time) -> str:
    return f"{(moment.hour % 12) or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def _dmy(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _dmy_hm(moment: datetime) -> str:
    return moment.strftime("%d/%m/%Y %H:%M")


def _serial(day: date) -> int:
    return (day - _EXCEL_EPOCH).days


def _comma_decimal(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def _dollars(value: Decimal) -> str:
    return f"${value:,.2f}"


def _key(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item[name]


def _cols(*pairs: tuple[str, str | Callable[[dict[str, Any]], Any]]) -> Columns:
    return [(header, _key(get) if isinstance(get, str) else get) for header, get in pairs]


# --------------------------------------------------------------------------------------------- standard

_STANDARD_CUSTOMERS = _cols(
    ("Customer ID", "id"), ("Customer title", "title"), ("First name", "first"), ("Last name", "last"),
    ("Business name", "company"), ("Customer type", "type"), ("Email", "email"), ("Mobile", "mobile"),
    ("Phone", "phone"), ("Address", "street"), ("Suburb/City", "suburb"), ("State", "state"),
    ("Postcode", "postcode"), ("Country", "country"),
    ("Date joined", lambda x: x["joined"].strftime("%Y/%m/%d")), ("Labels", "labels"),
    ("Gate code", "gate_code"), ("Preferred technician", "preferred"), ("Password", "password"),
)  # fmt: skip
_STANDARD_BOOKINGS = _cols(
    ("Booking ID", "id"), ("Customer ID", "customer"), ("Service", "service"), ("Status", "status"),
    ("Booking date", "date"), ("Start time", lambda x: _hm(x["start"])),
    ("End time", lambda x: _hm(x["end"])),
    ("Fieldworker(s)", lambda x: ", ".join(x["workers"])), ("Address", "address"), ("Total", "total"),
    ("Paid", "paid"), ("Created", "created"), ("Modified", "modified"), ("Access notes", "access"),
)  # fmt: skip
_STANDARD_WORKERS = _cols(
    ("ID", "id"), ("Name", "name"), ("Email", "email"), ("Mobile", "mobile"),
    ("Active", lambda x: "Yes" if x["active"] else "No"), ("Industry label", "industry"),
    ("Pay rate", "pay_rate"),
)  # fmt: skip
_STANDARD_INVOICES = _cols(
    ("Invoice number", "number"), ("Booking ID", "booking"), ("Status", "status"), ("Issue date", "issue"),
    ("Due date", "due"), ("Total", "total"), ("Balance", "balance"),
)  # fmt: skip
_STANDARD_PAYMENTS = _cols(
    ("Payment ID", "id"), ("Invoice number", "invoice"), ("Method", "method"), ("Amount", "amount"),
    ("Date", "date"), ("Reference", "reference"),
)  # fmt: skip
_STANDARD_QUOTES = _cols(
    ("Quote number", "number"), ("Customer ID", "customer"), ("Status", "status"),
    ("Follow up date", lambda x: _dmy(x["follow_up"])), ("Total", "total"),
)  # fmt: skip
_STANDARD_SERVICES = _cols(
    ("Service", "service"), ("Category", "category"), ("Price", "price"), ("Duration", "duration")
)
_STANDARD_FORMS = _cols(("Booking ID", "booking"), ("Form", "form"), ("Question", "question"), ("Answer", "answer"))


_STANDARD_SHEETS: tuple[tuple[str, str, Columns], ...] = (
    ("customers", "Customers", _STANDARD_CUSTOMERS),
    ("bookings", "Bookings", _STANDARD_BOOKINGS),
    ("fieldworkers", "Field Workers", _STANDARD_WORKERS),
    ("invoices", "Invoices", _STANDARD_INVOICES),
    ("payments", "Payments", _STANDARD_PAYMENTS),
    ("quotes", "Quotes", _STANDARD_QUOTES),
    ("services", "Services", _STANDARD_SERVICES),
    ("form_responses", "Form Responses", _STANDARD_FORMS),
)


def _standard(data: _Dataset, out_dir: Path, large: bool) -> list[Path]:
    outputs = _Outputs()
    try:
        if large:  # one CSV per sheet: openpyxl is too slow (and Excel too small) for a million rows
            sinks: dict[str, _Sink] = {
                obj: outputs.csv(out_dir / f"{title}.csv") for obj, title, _c in _STANDARD_SHEETS
            }
        else:
            book = outputs.book(out_dir / "octopuspro_export.xlsx")
            sinks = {obj: book.sheet(title) for obj, title, _c in _STANDARD_SHEETS}
        routes = {obj: _Route.open(sinks[obj], columns) for obj, _t, columns in _STANDARD_SHEETS}
        _pump(data, routes)
        return outputs.close()
    except BaseException:
        outputs.abort()
        raise


# --------------------------------------------------------------------------------------------- unseen

_PREAMBLE = [["OctopusPro export"], [f"Exported {TODAY.isoformat()}"], []]

_UNSEEN_JOBS = _cols(
    ("Job ID", "id"), ("Cust No", "customer"), ("Service type", "service"), ("Job status", "status"),
    ("Scheduled date", lambda x: _dmy(x["date"])), ("Start", lambda x: _ampm(x["start"])),
    ("Finish", lambda x: _ampm(x["end"])), ("Worker(s)", lambda x: ", ".join(x["workers"])),
    ("Site address", "address"), ("Amount", lambda x: _comma_decimal(x["total"])),
    ("Amount paid", lambda x: _comma_decimal(x["paid"])), ("Created on", lambda x: _dmy_hm(x["created"])),
    ("Last modified", lambda x: _dmy_hm(x["modified"])), ("Access notes", "access"),
)  # fmt: skip
_UNSEEN_STAFF = _cols(
    ("Staff ID", "id"), ("Full name", "name"), ("E-mail", "email"), ("Mobile No.", "mobile"),
    ("Status", lambda x: "Active" if x["active"] else "Inactive"), ("Trade", "industry"),
    ("Hourly rate", lambda x: f"{x['pay_rate']:.2f}"),
)  # fmt: skip
_UNSEEN_QUOTES = _cols(
    ("Quote #", "number"), ("Client ID", "customer"), ("Quote status", "status"),
    ("Follow-up", lambda x: _dmy(x["follow_up"])), ("Quote total", lambda x: _dollars(x["total"])),
)  # fmt: skip
_UNSEEN_SERVICES = _cols(
    ("Service name", "service"), ("Category", "category"), ("Price", lambda x: _dollars(x["price"])),
    ("Duration (mins)", "duration"),
)  # fmt: skip
_UNSEEN_FORMS = _cols(("Job ID", "booking"), ("Form name", "form"), ("Question", "question"), ("Answer", "answer"))


def _unseen(data: _Dataset, out_dir: Path, large: bool) -> list[Path]:
    r = random.Random(data.seed * 7919 + 1)  # independent of the dataset's own stream

    # Customers: UTF-8 with BOM, title rows, multi-line quoted addresses, some NT postcodes that Excel
    # turned into numbers (0800 -> 800), state names now and then written out in full.
    def postcode(x: dict[str, Any]) -> str:
        code: str = x["postcode"]
        return code.lstrip("0") if code.startswith("0") and r.random() < 0.5 else code

    def state(x: dict[str, Any]) -> str:
        return _STATE_NAMES.get(x["state"], x["state"]) if r.random() < 0.15 else x["state"]

    customers = _cols(
        ("Client ID", "id"), ("Title", "title"), ("Given name", "first"), ("Surname", "last"),
        ("Company", "company"), ("Client type", "type"), ("E-mail address", "email"),
        ("Mobile No.", "mobile"),
        ("Phone No.", "phone"), ("Street address", "street"), ("Suburb", "suburb"), ("State", state),
        ("Post code", postcode), ("Country", "country"), ("Joined", lambda x: _dmy(x["joined"])),
        ("Tags", "labels"), ("Gate code", "gate_code"), ("Preferred technician", "preferred"),
        ("Password", "password"),
    )  # fmt: skip

    # Invoices and payments: a workbook with title rows; dates mix bare serial numbers with text.
    def mixed(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda x: _serial(x[name]) if r.random() < 0.5 else _dmy(x[name])

    invoices = _cols(
        ("Invoice #", "number"), ("Job ID", "booking"), ("Invoice status", "status"),
        ("Invoice date", mixed("issue")), ("Due", mixed("due")), ("Amount", "total"),
        ("Outstanding", "balance"),
    )  # fmt: skip
    payments = _cols(
        ("Receipt no", "id"), ("Invoice #", "invoice"), ("Payment method", "method"), ("Amount", "amount"),
        ("Payment date", mixed("date")), ("Ref", "reference"),
    )  # fmt: skip
    outputs = _Outputs()
    try:
        routes = {
            "customers": _Route.open(outputs.csv(out_dir / "Customer list.csv", encoding="utf-8-sig"), customers,
                                     _PREAMBLE),
            # Jobs: Windows-1252, semicolons, decimal commas, curly quotes and en dashes, 12-hour times.
            "bookings": _Route.open(outputs.csv(out_dir / "jobs_export.csv", encoding="cp1252", delimiter=";"),
                                    _UNSEEN_JOBS, [["OctopusPro export – Jobs"], []]),
            # Staff: Excel "Unicode text" (UTF-16 with BOM, tab-separated).
            "fieldworkers": _Route.open(outputs.csv(out_dir / "Staff.txt", encoding="utf-16", delimiter="\t"),
                                        _UNSEEN_STAFF),
        }  # fmt: skip
        if large:
            routes["invoices"] = _Route.open(outputs.csv(out_dir / "Invoices.csv"), invoices, _PREAMBLE)
            routes["payments"] = _Route.open(outputs.csv(out_dir / "Payments.csv"), payments, _PREAMBLE[:1])
        else:
            book = outputs.book(out_dir / "invoices_and_payments.xlsx")
            routes["invoices"] = _Route.open(book.sheet("Invoices"), invoices, _PREAMBLE)
            routes["payments"] = _Route.open(book.sheet("Payments"), payments, _PREAMBLE[:1])
        routes["quotes"] = _Route.open(outputs.csv(out_dir / "quotes.csv"), _UNSEEN_QUOTES)
        routes["services"] = _Route.open(outputs.csv(out_dir / "services.csv"), _UNSEEN_SERVICES)
        routes["form_responses"] = _Route.open(outputs.csv(out_dir / "form_responses.csv"), _UNSEEN_FORMS)
        _pump(data, routes)
        return outputs.close()
    except BaseException:
        outputs.abort()
        raise


# --------------------------------------------------------------------------------------------- dirty

MANIFEST_DIR = "_fixture"  # dirty variant: <out_dir>/_fixture/manifest.json (a subfolder: folder imports skip it)
# Effects a defect has when the export is loaded (the manifest's "effect" field). The blocking ones:
FAILS = "fails"  # the record fails at load (BAD_VALUE naming the column, or TOO_LONG)
SKIPPED = "skipped"  # the record is skipped at load: its parent is not in the export (MISSING_PARENT)
DROPPED = "dropped_at_import"  # an exact duplicate row: the importer keeps one copy
EXCLUDED = "excluded_as_total"  # a grand-total row: the reader leaves it out and keeps it as a checksum
BLOCKING = (FAILS, SKIPPED)
EFFECTS = {
    FAILS: "the record fails at load: BAD_VALUE naming the column, or TOO_LONG naming the column and the limit",
    SKIPPED: "the record is skipped at load: its parent is not in the export (MISSING_PARENT)",
    DROPPED: "the importer keeps one copy of an exact duplicate row",
    EXCLUDED: "the reader leaves a grand-total row out (kept as a checksum)",
    "parsed": "read correctly despite the format",
    "decoded": "the file's encoding/delimiter/line endings are detected",
    "ignored": "the reader skips it (title rows, an unnamed empty last column)",
    "kept": "loaded as written, quoting intact",
    "unwrapped": 'Excel\'s ="…" wrapper is removed at read',
    "loaded_as_given": "loaded as written; cleaning it is a data decision, not a load error",
    "loaded_as_empty": "a placeholder (N/A, None, -) in a typed column is read as no value",
    "whitespace_trimmed": "outer and repeated whitespace collapsed",
    "first_kept": "only the first of several values fits the destination column",
    "dropped_at_ingest": "the column never reaches staging",
    "normalised_by_value_map": "the drifted spelling is one more source value of the confirmed value map",
    "name_from_person": "the account name falls back to the person's name",
    "owner_from_first_matched": "the first field worker with a destination user owns the record",
}

# (object, column, probability per eligible row, effect, description); the first eligible row after a few
# rows always gets the defect, so even a 100-record export has every type.
Defect = tuple[str, str, float, str, str]


class _Dirt:
    """Injects a source's defects into rows as they are written and records each one for the manifest.

    Subclasses define ``DEFECTS`` (keyed by ``(object, defect type)``), ``IDS`` (the id column(s) of each
    object as the load reports them; a ``~`` group joins form answers merged into one note) and
    ``_dirty_<object>(record, values)`` hooks that edit ``values`` (header -> cell) in place.
    """

    DEFECTS: ClassVar[dict[tuple[str, str], Defect]] = {}
    IDS: ClassVar[dict[str, tuple[str, ...]]] = {}
    GROUPED: ClassVar[frozenset[str]] = frozenset()  # objects loaded as groups (source id = "a~b")
    NATURAL: ClassVar[frozenset[str]] = frozenset()  # types logged only where the data has them already

    def __init__(self, seed: int, data: _Dataset) -> None:
        self.rng = random.Random(f"{seed}:dirty")
        self.data = data
        self.entries: list[dict[str, Any]] = []
        self.seen: dict[str, int] = dict.fromkeys(OBJECTS, 0)
        self.applied: dict[tuple[str, str], int] = dict.fromkeys(self.DEFECTS, 0)
        self.extras: dict[str, int] = dict.fromkeys(OBJECTS, 0)
        self.repeats: dict[str, int] = dict.fromkeys(OBJECTS, 0)  # rows the generator itself repeated exactly
        self._answers: set[tuple[Any, ...]] = set()
        self.duplicated: dict[str, int] = dict.fromkeys(OBJECTS, 0)
        self._order = {key: i for i, key in enumerate(self.DEFECTS)}
        self._blocked = False
        self._pending: list[tuple[tuple[str, str], str | None, str]] = []
        self.routes: dict[str, _Route] = {}

    # ---------------------------------------------------------------- bookkeeping
    def want(self, obj: str, defect: str, eligible: bool = True) -> bool:
        if not eligible:
            return False
        key = (obj, defect)
        _o, _c, probability, effect, _t = self.DEFECTS[key]
        if effect in BLOCKING and self._blocked:
            return False  # one blocking defect per record, so the manifest names its cause
        threshold = min(2 + self._order[key] % 5, max(1, self.data.plan.get(obj, 1)))  # small objects too
        first = self.applied[key] == 0 and self.seen[obj] >= threshold
        chosen = first or self.rng.random() < probability
        if chosen and effect in BLOCKING:
            self._blocked = True
        return chosen

    def note(self, obj: str, defect: str, column: str | None = None, detail: str = "") -> None:
        """Record a defect applied to the row being built (logged once the row's number is known)."""
        self.applied[(obj, defect)] += 1
        self._pending.append(((obj, defect), column, detail))

    @classmethod
    def source_id(cls, obj: str, values: dict[str, Any]) -> str:
        """The id the load reports for a row (``="…"`` unwrapped; merged form answers as ``booking~form``)."""
        parts = []
        for header in cls.IDS[obj]:
            value = "" if values.get(header) is None else str(values[header])
            if value.startswith('="') and value.endswith('"'):
                value = value[2:-1]
            parts.append(value.strip())
        return "~".join(parts) if obj in cls.GROUPED else "|".join(parts)

    def log(self, sink: _Sink, key: tuple[str, str], row: int, values: dict[str, Any] | None,
            column: str | None = None, detail: str = "") -> dict[str, Any]:  # fmt: skip
        obj, defect = key
        _o, col, _p, effect, text = self.DEFECTS[key]
        entry = {
            "file": sink.path.name,
            "sheet": sink.sheet,
            "row": row,
            "column": column if column is not None else col,
            "defect": defect,
            "object": obj,
            "source_id": self.source_id(obj, values) if values else "",
            "effect": effect,
            "description": text,
        }
        if detail:
            entry["detail"] = detail
        self.entries.append(entry)
        return entry

    def file_level(self, routes: dict[str, _Route], *keys: tuple[str, str]) -> None:
        for key in keys:
            self.applied[key] += 1
            self.log(routes[key[0]].sink, key, 0, None)

    # ---------------------------------------------------------------- rows
    def emit(self, route: _Route, obj: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        self.seen[obj] += 1
        self._blocked = False
        self._pending = []
        hook = getattr(self, f"_dirty_{obj}", None)
        if hook is not None:
            hook(record, values)
        row = route.write(values)
        for key, column, detail in self._pending:
            self.log(route.sink, key, row, values, column, detail)
        if obj in self.GROUPED:  # answer rows can repeat exactly (same booking, form, question and answer)
            seen = tuple(values[header] for header, _get in route.columns)
            if seen in self._answers:
                self.repeats[obj] += 1
                self.applied[(obj, "repeated_row")] += 1
                self.log(route.sink, (obj, "repeated_row"), row, values, "")
            self._answers.add(seen)
        dup = (obj, "duplicate_row_exact")
        if dup in self.DEFECTS and not self._blocked and self.want(obj, "duplicate_row_exact"):
            self.applied[dup] += 1
            self.duplicated[obj] += 1
            self.log(route.sink, dup, route.write(values), values, "", f"repeats row {row}")

    def extra(self, route: _Route, obj: str, record: dict[str, Any], defect: str,
              change: dict[str, Any] | None = None, detail: str = "", column: str | None = None) -> None:  # fmt: skip
        """A row that exists only in the dirty export (near-duplicates, referential gaps, typos)."""
        values = route.values(record)
        values.update(change or {})
        row = route.write(values)
        self.extras[obj] += 1
        self.applied[(obj, defect)] += 1
        self.log(route.sink, (obj, defect), row, values, column, detail)["added"] = True

    def counts(self) -> dict[str, int]:
        """Distinct records the importer stages per object (generated rows plus extras)."""
        return {obj: n + self.extras[obj] - self.repeats[obj] for obj, n in self.data.counts().items()}


def _write_manifest(path: Path, source: str, seed: int, records: int, dirt: _Dirt) -> None:
    by_type: dict[str, int] = {}
    for entry in dirt.entries:
        by_type[entry["defect"]] = by_type.get(entry["defect"], 0) + 1
    body = {
        "source": source,
        "variant": "dirty",
        "seed": seed,
        "records": records,
        "note": "row is the physical row (1 = first record of the file or sheet, title rows and the header "
        "included; 0 = the whole file); source_id is the id the load reports (form answers merged into one "
        "note: 'booking~form'); added = a row that is not in the clean export",
        "effects": EFFECTS,
        "defect_types": {
            f"{obj}.{defect}": {"object": obj, "column": c, "effect": e, "description": t}
            for (obj, defect), (_o, c, _p, e, t) in dirt.DEFECTS.items()
        },
        "counts": by_type,
        "defects": dirt.entries,
    }
    data = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8")
    _atomic_write(path, lambda temp: temp.write_bytes(data))


def _mis_decoded(text: str) -> str:
    """UTF-8 bytes read back as Windows-1252 (``José`` -> ``JosÃ©``)."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


def _european(value: Decimal) -> str:
    return f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")


def _a_mobile(r: random.Random) -> str:
    return f"04{r.randint(10, 99)} {r.randint(100, 999)} {r.randint(100, 999)}"


def _long_note(text: str) -> str:
    """A note pasted until Excel cut it at its cell limit (32,767 characters)."""
    base = (text or "Customer called about the invoice.").replace("\n", " ") + " "
    return (base * (32767 // len(base) + 1))[:32767]


_G = "loaded_as_given"
# The often-empty notes column is not last: rows keep one width, which is what delimiter sniffing counts.
_DIRTY_BOOKINGS_CSV = _cols(
    ("Booking ID", "id"), ("Customer ID", "customer"), ("Service", "service"), ("Status", "status"),
    ("Booking date", lambda x: _dmy(x["date"])), ("Start time", lambda x: _hm(x["start"])),
    ("End time", lambda x: _hm(x["end"])), ("Fieldworker(s)", lambda x: ", ".join(x["workers"])),
    ("Address", "address"), ("Booking notes", "access"), ("Total", lambda x: _comma_decimal(x["total"])),
    ("Paid", lambda x: _comma_decimal(x["paid"])), ("Created", lambda x: _dmy_hm(x["created"])),
    ("Modified", lambda x: _dmy_hm(x["modified"])),
)  # fmt: skip


class _OctopusDirt(_Dirt):
    """OctopusPro support export: the §4 and §6 traps that apply to a workbook plus CSV files."""

    DEFECTS: ClassVar[dict[tuple[str, str], Defect]] = {
        # files and sheets
        ("customers", "utf8_bom"): ("customers", "", 0.0, "decoded", "saved as Excel 'CSV UTF-8' (byte-order mark)"),
        ("customers", "plaintext_password"): ("customers", "Password", 0.0, "dropped_at_ingest",
                                              "customer portal passwords in plain text"),
        ("bookings", "cp1252_encoding"): ("bookings", "", 0.0, "decoded", "Windows-1252 (’ “ – as one byte)"),
        ("bookings", "semicolon_delimiter"): ("bookings", "", 0.0, "decoded", "';' delimiters from EU-locale Excel"),
        ("bookings", "decimal_comma"): ("bookings", "Total", 0.0, "parsed", "amounts written 129,00"),
        ("fieldworkers", "utf16_tab_text"): ("fieldworkers", "", 0.0, "decoded",
                                             "Excel 'Unicode text': UTF-16 with BOM, tab-separated"),
        ("invoices", "title_rows"): ("invoices", "", 0.0, "ignored", "title and blank rows above the header"),
        ("invoices", "grand_total_row"): ("invoices", "Invoice number", 0.0, EXCLUDED,
                                          "a 'Total' row under the data, summing Total and Balance"),
        ("form_responses", "lf_line_endings"): ("form_responses", "", 0.0, "decoded", "LF line endings"),
        ("form_responses", "trailing_empty_column"): ("form_responses", "", 0.0, "ignored",
                                                      "every row ends with a delimiter: an empty, unnamed column"),
        # customers
        ("customers", "test_record"): ("customers", "Last name", 0.0, _G, "'Test' / 'DO NOT USE' record"),
        ("customers", "business_blank_name"): ("customers", "Business name", 0.0, "name_from_person",
                                               "customer type Business with a blank business name"),
        ("customers", "two_emails_in_cell"): ("customers", "Email", 0.0, "first_kept", "two addresses in one cell"),
        ("customers", "mojibake"): ("customers", "First name", 0.01, _G, "UTF-8 once mis-read as Windows-1252 (JosÃ©)"),
        ("customers", "embedded_quotes_commas"): ("customers", "Business name", 0.01, "kept",
                                                  'commas and "quotes" inside a quoted cell'),
        ("customers", "multiline_cell"): ("customers", "Address", 0.01, "kept", "street over two lines in one cell"),
        ("customers", "leading_zero_lost"): ("customers", "Postcode", 0.1, _G, "NT postcode 0800 became 800"),
        ("customers", "excel_text_formula"): ("customers", "Postcode", 0.01, "unwrapped", 'postcode kept as ="2000"'),
        ("customers", "phone_format_variant"): ("customers", "Phone", 0.03, _G,
                                                "(02) 9123 4567 vs 02.9123.4567 vs +61 2 9123 4567 x206"),
        ("customers", "phone_as_number"): ("customers", "Mobile", 0.01, _G, "mobile as a number: 61412345678"),
        ("customers", "multiple_values_in_cell"): ("customers", "Mobile", 0.01, _G,
                                                   "two numbers in one cell (/ , ; or 'or')"),
        ("customers", "name_case_whitespace"): ("customers", "Last name", 0.01, "whitespace_trimmed",
                                                "ALL CAPS with trailing spaces or a tab"),
        ("customers", "title_in_first_name"): ("customers", "First name", 0.005, _G, "'Mrs Olivia' in the first name"),
        ("customers", "couple_name"): ("customers", "First name", 0.005, _G, "'John & Jane' in the first name"),
        ("customers", "state_spelling"): ("customers", "State", 0.02, _G, "New South Wales / N.S.W. / nsw"),
        ("customers", "country_spelling"): ("customers", "Country", 0.02, _G, "AU / AUS / Aust. / blank"),
        ("customers", "excel_serial_date"): ("customers", "Date joined", 0.01, "parsed", "a serial (45123)"),
        ("customers", "mixed_date_format"): ("customers", "Date joined", 0.01, "parsed",
                                             "ISO or '14 Mar 2024' in a YYYY/MM/DD column"),
        ("customers", "placeholder_date"): ("customers", "Date joined", 0.005, "loaded_as_empty", "N/A / None / -"),
        ("customers", "duplicate_row_exact"): ("customers", "", 0.003, DROPPED, "the same row twice (re-export)"),
        ("customers", "duplicate_customer_variant"): ("customers", "Customer ID", 0.0, _G,
                                                      "same person under a new id; e-mail case and phone differ"),
        ("customers", "invalid_email"): ("customers", "Email", 0.0, FAILS, "not an e-mail address ('see notes')"),
        ("customers", "unparseable_date"): ("customers", "Date joined", 0.0, FAILS, "'TBC' in a date column"),
        # bookings
        ("bookings", "status_spelling_variant"): ("bookings", "Status", 0.0, "normalised_by_value_map",
                                                  "Canceled beside Cancelled, Enroute beside En Route"),
        ("bookings", "several_workers_in_cell"): ("bookings", "Fieldworker(s)", 0.0, "owner_from_first_matched",
                                                  "comma-joined field workers (multi-worker booking)"),
        ("bookings", "address_in_one_cell"): ("bookings", "Address", 0.0, _G, "street, suburb, state, postcode in one"),
        ("bookings", "enum_drift_status"): ("bookings", "Status", 0.02, "normalised_by_value_map",
                                            "COMPLETED / completed / Complete / scheduled"),
        ("bookings", "money_format"): ("bookings", "Total", 0.02, "parsed", "$1,234.50 / 1.234,50 / AUD 129,00"),
        ("bookings", "excel_serial_date"): ("bookings", "Booking date", 0.01, "parsed", "a serial (45730)"),
        ("bookings", "mixed_date_format"): ("bookings", "Booking date", 0.01, "parsed",
                                            "ISO or '14 Mar 2025' in a DD/MM/YYYY column"),
        ("bookings", "time_format"): ("bookings", "Start time", 0.02, "parsed", "9:30 AM / 9.30am for 09:30"),
        ("bookings", "placeholder_date"): ("bookings", "Modified", 0.005, "loaded_as_empty", "N/A / None / -"),
        ("bookings", "po_box_site"): ("bookings", "Address", 0.003, _G, "a PO box as the service address"),
        ("bookings", "html_in_notes"): ("bookings", "Booking notes", 0.01, _G, "<p>, <br> and &amp; in a note"),
        ("bookings", "totals_mismatch"): ("bookings", "Paid", 0.005, _G, "paid more than the total"),
        ("bookings", "long_note_excel_limit"): ("bookings", "Booking notes", 0.0, FAILS,
                                                "32,767 characters (Excel's cell limit); the note column holds 2,000"),
        ("bookings", "duplicate_row_exact"): ("bookings", "", 0.003, DROPPED, "the same row twice (re-export)"),
        ("bookings", "orphan_booking"): ("bookings", "Customer ID", 0.0, SKIPPED, "customer id not in the customers"),
        ("bookings", "fk_holds_name"): ("bookings", "Customer ID", 0.0, SKIPPED, "the customer's name, not the id"),
        ("bookings", "money_unparseable"): ("bookings", "Total", 0.0, FAILS, "'TBA' where an amount belongs"),
        ("bookings", "unparseable_time"): ("bookings", "Start time", 0.0, FAILS, "'ASAP' where a time belongs"),
        ("bookings", "unparseable_date"): ("bookings", "Booking date", 0.0, FAILS, "'TBC' in a date column"),
        # field workers
        ("fieldworkers", "boolean_as_text"): ("fieldworkers", "Active", 0.0, "parsed", "Y / TRUE / active for Yes"),
        ("fieldworkers", "phone_as_number"): ("fieldworkers", "Mobile", 0.0, _G, "mobile as a number: 61412345678"),
        ("fieldworkers", "money_format"): ("fieldworkers", "Pay rate", 0.0, "parsed", "$38.00/hr"),
        # invoices
        ("invoices", "excel_serial_date"): ("invoices", "Issue date", 0.01, "parsed", "a number cell (45730)"),
        ("invoices", "enum_drift_invoice_status"): ("invoices", "Status", 0.02, "normalised_by_value_map",
                                                    "PAID / unpaid / VOID / draft"),
        ("invoices", "money_format"): ("invoices", "Total", 0.02, "parsed", "'$1,234.50' as text"),
        ("invoices", "money_negative_format"): ("invoices", "Balance", 0.005, "parsed", "(12.50) for a credit"),
        ("invoices", "unparseable_date"): ("invoices", "Due date", 0.003, FAILS, "'TBC' in a date column"),
        ("invoices", "money_unparseable"): ("invoices", "Total", 0.003, FAILS, "'TBA' where an amount belongs"),
        ("invoices", "orphan_invoice"): ("invoices", "Booking ID", 0.0, SKIPPED, "booking outside the export window"),
        # payments
        ("payments", "money_negative_format"): ("payments", "Amount", 0.1, "parsed", "(45.00) / -$45.00 refunds"),
        ("payments", "scientific_notation"): ("payments", "Reference", 0.01, _G, "a long reference as 8.7557E+15"),
        ("payments", "excel_serial_date"): ("payments", "Date", 0.01, "parsed", "a number cell (45730)"),
        ("payments", "unparseable_date"): ("payments", "Date", 0.003, FAILS, "'ASAP' in a date column"),
        ("payments", "money_unparseable"): ("payments", "Amount", 0.003, FAILS, "'see bank' where an amount belongs"),
        ("payments", "orphan_payment"): ("payments", "Invoice number", 0.0, SKIPPED, "invoice not in the export"),
        # quotes
        ("quotes", "enum_drift_quote_status"): ("quotes", "Status", 0.02, "normalised_by_value_map",
                                                "accepted / SENT / draft"),
        ("quotes", "mixed_date_format"): ("quotes", "Follow up date", 0.01, "parsed", "ISO in a DD/MM/YYYY column"),
        ("quotes", "unparseable_date"): ("quotes", "Follow up date", 0.003, FAILS, "'TBC' in a date column"),
        ("quotes", "money_unparseable"): ("quotes", "Total", 0.003, FAILS, "'POA' where an amount belongs"),
        ("quotes", "orphan_quote"): ("quotes", "Customer ID", 0.0, SKIPPED, "customer id not in the customers"),
        # services
        ("services", "money_unparseable"): ("services", "Price", 0.0, FAILS, "'POA' where a price belongs"),
        ("services", "bad_integer"): ("services", "Duration", 0.0, FAILS, "'1 hr' where minutes belong"),
        # form responses
        ("form_responses", "repeated_row"): ("form_responses", "", 0.0, DROPPED,
                                             "the same answer row again (the export repeats rows)"),
        ("form_responses", "html_entities"): ("form_responses", "Answer", 0.01, _G, "<p>, <br> and &amp;"),
        ("form_responses", "emoji_smart_quotes"): ("form_responses", "Answer", 0.01, "kept", "emoji and curly quotes"),
        ("form_responses", "rtf_leak"): ("form_responses", "Answer", 0.003, _G, "RTF control words in the text"),
        ("form_responses", "orphan_form_response"): ("form_responses", "Booking ID", 0.0, SKIPPED,
                                                     "answers for a booking not in the export"),
    }  # fmt: skip
    NATURAL: ClassVar[frozenset[str]] = frozenset(
        {"test_record", "business_blank_name", "two_emails_in_cell", "status_spelling_variant",
         "several_workers_in_cell", "repeated_row"}
    )  # fmt: skip
    IDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "customers": ("Customer ID",), "bookings": ("Booking ID",), "fieldworkers": ("ID",),
        "invoices": ("Invoice number",), "payments": ("Payment ID",), "quotes": ("Quote number",),
        "services": ("Service",), "form_responses": ("Booking ID", "Form"),
    }  # fmt: skip
    GROUPED = frozenset({"form_responses"})

    def __init__(self, seed: int, data: _Dataset) -> None:
        super().__init__(seed, data)
        self.templates: dict[str, dict[str, Any]] = {}
        self.sums = [Decimal("0.00"), Decimal("0.00")]  # invoices: Total, Balance (the grand-total row)

    def emit(self, route: _Route, obj: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        self.templates.setdefault(obj, dict(record))
        if obj == "invoices":
            self.sums[0] += record["total"]
            self.sums[1] += record["balance"]
        super().emit(route, obj, record, values)

    def _dirty_customers(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "customers"
        if record["last"] == "DO NOT USE":
            self.note(o, "test_record")
        if record["type"] == "Business" and not record["company"] and self.applied[(o, "business_blank_name")] == 0:
            self.note(o, "business_blank_name")
        if ";" in record["email"]:
            self.note(o, "two_emails_in_cell")
        if self.want(o, "mojibake", not record["first"].isascii()):
            values["First name"] = _mis_decoded(record["first"])
            self.note(o, "mojibake")
        elif self.want(o, "title_in_first_name", bool(record["title"])):
            values["First name"] = f"{record['title']} {record['first']}"
            self.note(o, "title_in_first_name")
        elif self.want(o, "couple_name"):
            values["First name"] = f"{record['first']} & {r.choice(_FIRST)}"
            self.note(o, "couple_name")
        if self.want(o, "embedded_quotes_commas", bool(record["company"])):
            values["Business name"] = f'{record["company"]}, "Head Office"'
            self.note(o, "embedded_quotes_commas")
        if self.want(o, "name_case_whitespace"):
            values["Last name"] = record["last"].upper() + r.choice(("  ", "\t", " "))
            self.note(o, "name_case_whitespace")
        if self.want(o, "multiline_cell", "\n" not in record["street"]):
            values["Address"] = f"Shop {r.randint(1, 20)}\n{record['street']}"
            self.note(o, "multiline_cell")
        if self.want(o, "leading_zero_lost", record["postcode"].startswith("0")):
            values["Postcode"] = record["postcode"].lstrip("0")
            self.note(o, "leading_zero_lost")
        elif self.want(o, "excel_text_formula"):
            values["Postcode"] = f'="{record["postcode"]}"'
            self.note(o, "excel_text_formula")
        if self.want(o, "phone_format_variant", record["phone"].startswith("(")):
            digits = "".join(ch for ch in record["phone"] if ch.isdigit())
            dotted = f"{digits[:2]}.{digits[2:6]}.{digits[6:]}"
            values["Phone"] = r.choice((dotted, f"+61 {digits[1]} {digits[2:6]} {digits[6:]} x{r.randint(100, 299)}"))
            self.note(o, "phone_format_variant")
        if self.want(o, "phone_as_number", record["mobile"].startswith("04")):
            values["Mobile"] = "61" + "".join(ch for ch in record["mobile"] if ch.isdigit())[1:]
            self.note(o, "phone_as_number")
        elif self.want(o, "multiple_values_in_cell", bool(record["mobile"])):
            values["Mobile"] = f"{record['mobile']} {r.choice(('/', ',', ';', 'or'))} {_a_mobile(r)}"
            self.note(o, "multiple_values_in_cell")
        if self.want(o, "state_spelling", record["state"] in _STATE_NAMES):
            values["State"] = r.choice((_STATE_NAMES[record["state"]], ".".join(record["state"]) + ".",
                                        record["state"].lower()))  # fmt: skip
            self.note(o, "state_spelling")
        if self.want(o, "country_spelling"):
            values["Country"] = r.choice(("AU", "AUS", "Aust.", ""))
            self.note(o, "country_spelling")
        joined = record["joined"]
        if self.want(o, "excel_serial_date"):
            values["Date joined"] = str(_serial(joined))
            self.note(o, "excel_serial_date")
        elif self.want(o, "mixed_date_format"):
            values["Date joined"] = r.choice((joined.isoformat(), f"{joined.day} {joined:%b %Y}"))
            self.note(o, "mixed_date_format")
        elif self.want(o, "placeholder_date"):
            values["Date joined"] = r.choice(("N/A", "None", "-"))
            self.note(o, "placeholder_date")

    def _dirty_bookings(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "bookings"
        status = record["status"]
        if status in ("Canceled", "Enroute") and self.applied[(o, "status_spelling_variant")] < 2:
            self.note(o, "status_spelling_variant", detail={"Canceled": "Cancelled", "Enroute": "En Route"}[status]
                      + f" -> {status}")  # fmt: skip
        if len(record["workers"]) > 1 and self.applied[(o, "several_workers_in_cell")] == 0:
            self.note(o, "several_workers_in_cell")
        if self.applied[(o, "address_in_one_cell")] == 0:
            self.note(o, "address_in_one_cell")
        drift = {"Completed": ("COMPLETED", "completed", "Complete"), "Scheduled": ("scheduled", "SCHEDULED"),
                 "Cancelled": ("CANCELLED", "cancelled"), "Pending": ("pending",)}.get(status)  # fmt: skip
        if self.want(o, "enum_drift_status", drift is not None):
            values["Status"] = r.choice(drift or ("",))
            self.note(o, "enum_drift_status", detail=f"{status} -> {values['Status']}")
        if self.want(o, "money_format"):
            total = record["total"]
            values["Total"] = r.choice((f"${total:,.2f}", _european(total), f"AUD {_comma_decimal(total)}"))
            self.note(o, "money_format")
        day = record["date"]
        if self.want(o, "excel_serial_date"):
            values["Booking date"] = str(_serial(day))
            self.note(o, "excel_serial_date")
        elif self.want(o, "mixed_date_format"):
            values["Booking date"] = r.choice((day.isoformat(), f"{day.day} {day:%b %Y}"))
            self.note(o, "mixed_date_format")
        if self.want(o, "time_format"):
            start = record["start"]
            values["Start time"] = r.choice((_ampm(start), f"{(start.hour % 12) or 12}.{start.minute:02d}"
                                             f"{'am' if start.hour < 12 else 'pm'}"))  # fmt: skip
            self.note(o, "time_format")
        if self.want(o, "placeholder_date"):
            values["Modified"] = r.choice(("N/A", "None", "-"))
            self.note(o, "placeholder_date")
        if self.want(o, "po_box_site"):
            values["Address"] = f"PO Box {r.randint(100, 9999)}, {values['Address'].rsplit(', ', 1)[-1]}"
            self.note(o, "po_box_site")
        if self.want(o, "long_note_excel_limit"):
            values["Booking notes"] = _long_note(record["access"])
            self.note(o, "long_note_excel_limit")
        elif self.want(o, "html_in_notes"):
            text = record["access"] or "Call on arrival"
            values["Booking notes"] = f"<p>{text.replace(chr(10), '<br>')}</p><p>Parts &amp; labour as quoted</p>"
            self.note(o, "html_in_notes")
        if self.want(o, "totals_mismatch"):
            values["Paid"] = _comma_decimal(record["total"] + Decimal("10.00"))
            self.note(o, "totals_mismatch")

    def _dirty_fieldworkers(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "fieldworkers"
        if self.want(o, "boolean_as_text", record["active"]):
            values["Active"] = r.choice(("Y", "TRUE", "active"))
            self.note(o, "boolean_as_text")
        if self.want(o, "phone_as_number", record["mobile"].startswith("04")):
            values["Mobile"] = "61" + "".join(ch for ch in record["mobile"] if ch.isdigit())[1:]
            self.note(o, "phone_as_number")
        if self.want(o, "money_format"):
            values["Pay rate"] = f"${record['pay_rate']:.2f}/hr"
            self.note(o, "money_format")

    def _dirty_invoices(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "invoices"
        leaf = record["n_payments"] == 0  # a failing invoice must not take payments down with it
        if self.want(o, "unparseable_date", leaf):
            values["Due date"] = r.choice(("TBC", "ASAP"))
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable", leaf):
            values["Total"] = r.choice(("TBA", "see job"))
            self.note(o, "money_unparseable")
        elif self.want(o, "money_format"):
            values["Total"] = f"${record['total']:,.2f}"
            self.note(o, "money_format")
        if self.want(o, "excel_serial_date"):
            values["Issue date"] = _serial(record["issue"])
            self.note(o, "excel_serial_date")
        drift = {"Paid": ("PAID", "paid"), "Unpaid": ("UNPAID", "unpaid"), "Void": ("VOID", "void"),
                 "Draft": ("draft", "DRAFT")}.get(record["status"])  # fmt: skip
        if self.want(o, "enum_drift_invoice_status", drift is not None):
            values["Status"] = r.choice(drift or ("",))
            self.note(o, "enum_drift_invoice_status", detail=f"{record['status']} -> {values['Status']}")
        if self.want(o, "money_negative_format"):
            values["Balance"] = r.choice(("(12.50)", "-$5.00"))
            self.note(o, "money_negative_format")

    def _dirty_payments(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "payments"
        if self.want(o, "unparseable_date"):
            values["Date"] = r.choice(("ASAP", "TBC"))
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable"):
            values["Amount"] = r.choice(("see bank", "TBA"))
            self.note(o, "money_unparseable")
        elif self.want(o, "money_negative_format", record["amount"] < 0):
            amount = -record["amount"]
            values["Amount"] = r.choice((f"({amount:.2f})", f"-${amount:,.2f}"))
            self.note(o, "money_negative_format")
        if self.want(o, "scientific_notation"):
            number = r.randint(10000, 99999)
            values["Reference"] = (
                f"{number / 10000:.4f}E+15" if isinstance(self.sink_of(o), _CsvSink) else float(number * 10**11)
            )
            self.note(o, "scientific_notation", detail=f"{number / 10000:.4f}E+15")
        if self.want(o, "excel_serial_date", values["Date"] == record["date"]):
            values["Date"] = _serial(record["date"])
            self.note(o, "excel_serial_date")

    def _dirty_quotes(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "quotes"
        if self.want(o, "unparseable_date"):
            values["Follow up date"] = "TBC"
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable"):
            values["Total"] = "POA"
            self.note(o, "money_unparseable")
        elif self.want(o, "mixed_date_format"):
            values["Follow up date"] = record["follow_up"].isoformat()
            self.note(o, "mixed_date_format")
        drift = {"Accepted": ("accepted", "ACCEPTED"), "Sent": ("SENT", "sent"), "Draft": ("draft",)}.get(
            record["status"]
        )
        if self.want(o, "enum_drift_quote_status", drift is not None):
            values["Status"] = r.choice(drift or ("",))
            self.note(o, "enum_drift_quote_status", detail=f"{record['status']} -> {values['Status']}")

    def _dirty_services(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        o = "services"
        if self.applied[(o, "money_unparseable")] == 0 and self.want(o, "money_unparseable"):
            values["Price"] = "POA"
            self.note(o, "money_unparseable")
        elif self.applied[(o, "bad_integer")] == 0 and self.want(o, "bad_integer"):
            values["Duration"] = "1 hr"
            self.note(o, "bad_integer")

    def _dirty_form_responses(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "form_responses"
        free_text = record["question"] == "Technician notes"
        if self.want(o, "html_entities", free_text):
            values["Answer"] = "<p>" + record["answer"].replace("\n", "<br>") + "</p><p>Parts &amp; labour ok</p>"
            self.note(o, "html_entities")
        elif self.want(o, "rtf_leak", free_text):
            values["Answer"] = (
                "{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Calibri;}}\\f0\\fs22 " + record["answer"] + "\\par}"
            )
            self.note(o, "rtf_leak")
        elif self.want(o, "emoji_smart_quotes", free_text):
            values["Answer"] = record["answer"] + r.choice((" Customer very happy 👍", " “All good” – see photos 📷"))
            self.note(o, "emoji_smart_quotes")

    def sink_of(self, obj: str) -> _Sink:
        return self.routes[obj].sink

    # ---------------------------------------------------------------- extra rows
    def finish(self) -> None:
        """Rows that only exist in the dirty export, then the invoices' grand-total row."""
        routes, data, t = self.routes, self.data, self.templates
        plan = data.plan
        new_customer = 1001 + plan["customers"]
        missing_customer = new_customer + 900
        missing_booking = 50001 + plan["bookings"] + 900
        first = t["customers"]
        c = routes["customers"]
        self.extra(c, "customers", first, "duplicate_customer_variant",
                   {"Customer ID": new_customer, "Email": first["email"].upper(),
                    "Mobile": first["mobile"].replace(" ", "")}, f"same person as {first['id']}")  # fmt: skip
        self.extra(c, "customers", first, "invalid_email",
                   {"Customer ID": new_customer + 1, "Email": "see notes"})  # fmt: skip
        self.extra(c, "customers", first, "unparseable_date", {"Customer ID": new_customer + 2, "Date joined": "TBC"})
        b = routes["bookings"]
        booking = t["bookings"]
        new_booking = 50001 + plan["bookings"]
        self.extra(
            b, "bookings", booking, "orphan_booking", {"Booking ID": new_booking, "Customer ID": missing_customer}
        )
        self.extra(b, "bookings", booking, "fk_holds_name",
                   {"Booking ID": new_booking + 1, "Customer ID": f"{first['first']} {first['last']}"},
                   f"customer {first['id']}")  # fmt: skip
        self.extra(b, "bookings", booking, "money_unparseable", {"Booking ID": new_booking + 2, "Total": "TBA"})
        self.extra(b, "bookings", booking, "unparseable_time", {"Booking ID": new_booking + 3, "Start time": "ASAP"})
        self.extra(b, "bookings", booking, "unparseable_date", {"Booking ID": new_booking + 4, "Booking date": "TBC"})
        self.extra(routes["quotes"], "quotes", t["quotes"], "orphan_quote",
                   {"Quote number": f"Q-{5001 + plan['quotes'] + 900}", "Customer ID": missing_customer})  # fmt: skip
        if "invoices" in t:
            self.extra(routes["invoices"], "invoices", t["invoices"], "orphan_invoice",
                       {"Invoice number": "INV-09876", "Booking ID": missing_booking, "Status": "Paid"},
                       "job predates the export window")  # fmt: skip
        if "payments" in t:
            self.extra(
                routes["payments"],
                "payments",
                t["payments"],
                "orphan_payment",
                {"Payment ID": 90001 + data.emitted["payments"] + 900, "Invoice number": "INV-09875"},
            )
        if "form_responses" in t:
            self.extra(
                routes["form_responses"],
                "form_responses",
                t["form_responses"],
                "orphan_form_response",
                {"Booking ID": missing_booking},
            )
        invoices = routes["invoices"]
        key = ("invoices", "grand_total_row")
        self.applied[key] += 1
        total = {"Invoice number": "Total", "Total": self.sums[0], "Balance": self.sums[1]}
        if isinstance(invoices.sink, _CsvSink):
            total = {k: f"{v:f}" if isinstance(v, Decimal) else v for k, v in total.items()}
        row = invoices.sink.append([total.get(h) for h, _get in invoices.columns])
        self.log(invoices.sink, key, row, None, detail=f"Total {self.sums[0]:f}, Balance {self.sums[1]:f}")


def _dirty(data: _Dataset, out_dir: Path, large: bool, seed: int, records: int) -> GeneratedExport:
    """Workbook (invoices, payments, quotes, services) plus CSVs, with the defects injected, and the manifest."""
    dirt = _OctopusDirt(seed, data)
    outputs = _Outputs()
    try:
        routes = {
            "customers": _Route.open(outputs.csv(out_dir / "customers.csv", encoding="utf-8-sig", raw_formulas=True),
                                     _STANDARD_CUSTOMERS),
            "bookings": _Route.open(outputs.csv(out_dir / "bookings.csv", encoding="cp1252", delimiter=";"),
                                    _DIRTY_BOOKINGS_CSV),
            "fieldworkers": _Route.open(outputs.csv(out_dir / "Staff.txt", encoding="utf-16", delimiter="\t"),
                                        _STANDARD_WORKERS),
        }  # fmt: skip
        sheets = (("invoices", "Invoices", _STANDARD_INVOICES, [["OctopusPro support export – invoices"], []]),
                  ("payments", "Payments", _STANDARD_PAYMENTS, None), ("quotes", "Quotes", _STANDARD_QUOTES, None),
                  ("services", "Services", _STANDARD_SERVICES, None))  # fmt: skip
        if large:
            for obj, title, columns, preamble in sheets:
                routes[obj] = _Route.open(outputs.csv(out_dir / f"{title}.csv"), columns, preamble)
        else:
            book = outputs.book(out_dir / "octopuspro_export.xlsx")
            for obj, title, columns, preamble in sheets:
                routes[obj] = _Route.open(book.sheet(title), columns, preamble)
        routes["form_responses"] = _Route.open(
            outputs.csv(out_dir / "form_responses.csv", newline="\n", trailing_empty_column=True), _STANDARD_FORMS
        )
        dirt.routes = routes
        dirt.file_level(
            routes, ("customers", "utf8_bom"), ("customers", "plaintext_password"), ("bookings", "cp1252_encoding"),
            ("bookings", "semicolon_delimiter"), ("bookings", "decimal_comma"), ("fieldworkers", "utf16_tab_text"),
            ("invoices", "title_rows"), ("form_responses", "lf_line_endings"),
            ("form_responses", "trailing_empty_column"),
        )  # fmt: skip
        _pump(data, routes, dirt)
        dirt.finish()
        files = outputs.close()
    except BaseException:
        outputs.abort()
        raise
    manifest = out_dir / MANIFEST_DIR / "manifest.json"
    _write_manifest(manifest, "octopuspro", seed, records, dirt)
    return GeneratedExport(files=files, counts=dirt.counts(), users=list(data.users), manifest=manifest,
                           defects=dirt.entries)  # fmt: skip


# --------------------------------------------------------------------------------------------- entry


def generate_export(out_dir: Path, *, records: int = 2000, seed: int = 7, variant: str = "standard") -> GeneratedExport:
    """Write a synthetic OctopusPro export of about ``records`` records in total into ``out_dir``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if records < 1:
        raise ValueError("records must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _Dataset(records, seed)
    large = records > LARGE
    if variant == "dirty":
        return _dirty(data, out_dir, large, seed, records)
    files = _unseen(data, out_dir, large) if variant == "unseen" else _standard(data, out_dir, large)
    return GeneratedExport(files=files, counts=data.counts(), users=list(data.users))


def write_samples(root: Path, *, records: int = 300, seed: int = 7) -> list[GeneratedExport]:
    """(Re)write the checked-in samples under ``root`` (``resources/samples/octopuspro``)."""
    return [generate_export(root / variant, records=records, seed=seed, variant=variant) for variant in SAMPLES]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "resources" / "samples" / "octopuspro"
    for export in write_samples(root):
        for path in export.files:
            print(f"{path}  ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
