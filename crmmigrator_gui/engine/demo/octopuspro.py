"""Synthetic OctopusPro exports: demo data and robustness fixtures.

One seeded dataset (customers, bookings, field workers, invoices, payments, quotes, services and form
responses, with referential integrity) is rendered in one of two shapes:

* ``"standard"``: ``octopuspro_export.xlsx``, one sheet per object, with the canonical headers of the
  source-platform reference (§4), Excel date cells, a plaintext ``Password`` column (which must never
  migrate) and two customer custom fields.
* ``"unseen"``: a folder of files with other header spellings, title rows above the headers, a UTF-8-BOM
  customers CSV, a Windows-1252 ``;``-separated jobs CSV with curly quotes and decimal commas, a UTF-16
  tab-separated staff list, and a workbook whose dates mix Excel serial numbers with ``DD/MM/YYYY`` text.

The content is deterministic for a given ``(records, seed)`` (the reference date is fixed at 14 March 2025);
file bytes may differ in workbook metadata. Every file is written atomically.

Regenerate the checked-in samples with ``python -m crmmigrator_gui.engine.demo.octopuspro``.
"""

from __future__ import annotations

import csv
import io
import os
import random
import secrets
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

KIND = "files"  # for the demo runner: this source arrives as export files

TODAY = date(2025, 3, 14)
VARIANTS = ("standard", "unseen")
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


class _Dataset:
    """All objects as dicts with typed values (dates, Decimals), keyed by canonical names."""

    def __init__(self, records: int, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.plan = _plan_counts(records)
        self.services = self._services()
        self.workers = self._workers()
        self.customers = self._customers()
        self.bookings = self._bookings()
        self.invoices, self.payments = self._invoices_and_payments()
        self.quotes = self._quotes()
        self.form_responses = self._form_responses()
        self.users = [(w["name"], w["email"]) for w in self.workers if w["is_user"]]

    def counts(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "bookings": len(self.bookings),
            "fieldworkers": len(self.workers),
            "invoices": len(self.invoices),
            "payments": len(self.payments),
            "quotes": len(self.quotes),
            "services": len(self.services),
            "form_responses": len(self.form_responses),
        }

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

    def _customers(self) -> list[dict[str, Any]]:
        r = self.rng
        customers = []
        for index in range(self.plan["customers"]):
            first, last = self._person()
            business = r.random() < 0.25
            company = ""
            if business:
                company = r.choice(_BUSINESS).format(last=last)
                if r.random() < 0.08:
                    company = ""  # trap: "Business" customer with a blank business name
            suburb, state, postcode = r.choice(_PLACES)
            local = _slug(first) + "." + _slug(last) if _slug(first) and _slug(last) else f"customer{1001 + index}"
            email = f"{local}@{r.choice(_DOMAINS)}"
            if r.random() < 0.03:
                email = f"{email}; accounts@{_slug(company) or 'example'}.com.au"  # trap: two addresses
            if r.random() < 0.05:
                email = ""
            customers.append(
                {
                    "id": 1001 + index,
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
            )
        if customers:  # the record everyone forgets to delete
            customers[-1].update(first="Test", last="DO NOT USE", email="test@example.com", labels="")
        return customers

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

    def _bookings(self) -> list[dict[str, Any]]:
        r = self.rng
        bookings = []
        for index in range(self.plan["bookings"]):
            customer = r.choice(self.customers)
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
            street = customer["street"] if r.random() < 0.85 else self._street()
            bookings.append(
                {
                    "id": 50001 + index,
                    "customer": customer["id"],
                    "service": service["service"],
                    "status": status,
                    "date": day,
                    "start": start,
                    "end": end_dt.time(),
                    "workers": [w["name"] for w in crew],
                    "address": f"{street}, {customer['suburb']} {customer['state']} {customer['postcode']}",
                    "total": total,
                    "paid": paid,
                    "created": created,
                    "modified": min(modified, datetime.combine(TODAY, time(17, 0))),
                    "access": r.choice(_ACCESS_NOTES).format(gate=customer["gate_code"] or "1234")
                    if r.random() < 0.35
                    else "",
                }
            )
        return bookings

    def _invoices_and_payments(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        r = self.rng
        done = [b for b in self.bookings if b["status"] == "Completed"]
        others = [b for b in self.bookings if b["status"] != "Completed"]
        wanted = min(self.plan["invoices"], len(self.bookings))
        from_others = min(len(others), max(1, round(wanted * 0.1)), wanted)
        from_done = min(len(done), wanted - from_others)
        from_others = min(len(others), wanted - from_done)
        picked = r.sample(done, from_done) + r.sample(others, from_others)
        chosen = sorted(picked, key=lambda b: (b["date"], b["id"]))
        budget = self.plan["payments"]
        invoices: list[dict[str, Any]] = []
        payments: list[dict[str, Any]] = []

        def pay(invoice: dict[str, Any], amount: Decimal, day: date, method: str | None = None) -> None:
            payments.append(
                {
                    "id": 90001 + len(payments),
                    "invoice": invoice["number"],
                    "method": method or r.choice(_PAYMENT_METHODS),
                    "amount": amount,
                    "date": day,
                    "reference": f"TXN{r.randint(100000, 999999)}" if r.random() < 0.7 else "",
                }
            )

        for index, booking in enumerate(chosen):
            issue = booking["date"]
            invoice = {
                "number": f"INV-{10001 + index}",
                "booking": booking["id"],
                "issue": issue,
                "due": issue + timedelta(days=14),
                "total": booking["total"],
                "balance": booking["total"],
                "status": "Unpaid",
            }
            invoices.append(invoice)
            left = budget - len(payments)
            paid_on = min(issue + timedelta(days=r.randint(0, 20)), TODAY)
            if booking["status"] != "Completed":
                invoice["status"] = "Void" if booking["status"] in ("Cancelled", "Canceled") else "Draft"
                if invoice["status"] == "Void" and left >= 2 and r.random() < 0.5:
                    # Paid up front, then refunded when the job was cancelled.
                    pay(invoice, invoice["total"], paid_on)
                    pay(invoice, -invoice["total"], min(paid_on + timedelta(days=3), TODAY), "Credit card")
                invoice["balance"] = Decimal("0.00") if invoice["status"] == "Void" else invoice["total"]
                continue
            if left <= 0 or issue > TODAY:
                continue
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
        # Guarantee the documented traps even in tiny exports: at least one refund and one partial payment.
        paid = [i for i in invoices if i["status"] == "Paid"]
        if paid and not any(p["amount"] < 0 for p in payments):
            target = paid[-1]
            pay(target, -_money(target["total"] * Decimal("0.2")), TODAY, "Credit card")
            target["balance"] = _money(target["total"] * Decimal("0.2"))
            target["status"] = "Unpaid"
        if len(paid) > 1 and not any(0 < i["balance"] < i["total"] for i in invoices):
            target = paid[0]
            mine = [p for p in payments if p["invoice"] == target["number"]]
            mine[0]["amount"] = _money(target["total"] * Decimal("0.6"))
            for extra in mine[1:]:
                payments.remove(extra)
            target["balance"] = target["total"] - mine[0]["amount"]
            target["status"] = "Unpaid"
        for number, payment in enumerate(payments):
            payment["id"] = 90001 + number
        return invoices, payments

    def _quotes(self) -> list[dict[str, Any]]:
        r = self.rng
        quotes = []
        for index in range(self.plan["quotes"]):
            customer = r.choice(self.customers)
            service = r.choice(self.services)
            quotes.append(
                {
                    "number": f"Q-{5001 + index}",
                    "customer": customer["id"],
                    "status": r.choice(("Draft", "Sent", "Sent", "Accepted", "Accepted", "Rejected", "Revised")),
                    "follow_up": self._when(date(2024, 6, 1), TODAY + timedelta(days=30)),
                    "total": _money(service["price"] * Decimal(r.choice(("1", "1.5", "2", "3.2")))),
                }
            )
        return quotes

    def _form_responses(self) -> list[dict[str, Any]]:
        r = self.rng
        done = [b for b in self.bookings if b["status"] == "Completed"] or self.bookings
        rows: list[dict[str, Any]] = []
        target = self.plan["form_responses"]
        while len(rows) < target and done:
            booking = r.choice(done)
            form, questions = r.choice(_FORMS)
            for question, answers in questions:
                if len(rows) >= target:
                    break
                answer = r.choice(answers) if answers else r.choice(_NOTES)
                rows.append({"booking": booking["id"], "form": form, "question": question, "answer": answer})
        return rows


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


def _table(columns: Columns, items: list[dict[str, Any]], preamble: list[list[Any]] | None = None) -> list[list[Any]]:
    rows = [list(line) for line in preamble or []]
    rows.append([header for header, _get in columns])
    rows.extend([get(item) for _header, get in columns] for item in items)
    return rows


def _write_csv(path: Path, rows: list[list[Any]], *, encoding: str, delimiter: str = ",") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")
    _atomic_write(path, lambda temp: temp.write_bytes(data))


def _write_xlsx(path: Path, sheets: list[tuple[str, list[list[Any]], int]]) -> None:
    """Sheets as (title, rows, index of the header row); dates become date cells, Decimals numbers."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    for title, rows, header_at in sheets:
        sheet = workbook.create_sheet(title)
        for number, row in enumerate(rows):
            cells = [_xlsx_cell(sheet, value, bold if number == header_at else None) for value in row]
            sheet.append(cells)
    workbook.properties.creator = "CRM Migrator demo generator"
    workbook.properties.created = datetime(2025, 3, 14, 9, 0)
    _atomic_write(path, lambda temp: workbook.save(temp))


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


def _standard(data: _Dataset, out_dir: Path) -> list[Path]:
    sheets = [
        ("Customers", _table(_STANDARD_CUSTOMERS, data.customers), 0),
        ("Bookings", _table(_STANDARD_BOOKINGS, data.bookings), 0),
        ("Field Workers", _table(_STANDARD_WORKERS, data.workers), 0),
        ("Invoices", _table(_STANDARD_INVOICES, data.invoices), 0),
        ("Payments", _table(_STANDARD_PAYMENTS, data.payments), 0),
        ("Quotes", _table(_STANDARD_QUOTES, data.quotes), 0),
        ("Services", _table(_STANDARD_SERVICES, data.services), 0),
        ("Form Responses", _table(_STANDARD_FORMS, data.form_responses), 0),
    ]
    path = out_dir / "octopuspro_export.xlsx"
    _write_xlsx(path, sheets)
    return [path]


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


def _unseen(data: _Dataset, out_dir: Path) -> list[Path]:
    r = random.Random(data.seed * 7919 + 1)  # independent of the dataset's own stream
    files: list[Path] = []

    def save_csv(name: str, rows: list[list[Any]], encoding: str, delimiter: str = ",") -> None:
        path = out_dir / name
        _write_csv(path, rows, encoding=encoding, delimiter=delimiter)
        files.append(path)

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
    save_csv("Customer list.csv", _table(customers, data.customers, _PREAMBLE), "utf-8-sig")
    # Jobs: Windows-1252, semicolons, decimal commas, curly quotes and en dashes, 12-hour times.
    save_csv(
        "jobs_export.csv",
        _table(_UNSEEN_JOBS, data.bookings, [["OctopusPro export – Jobs"], []]),
        "cp1252",
        ";",
    )
    # Staff: Excel "Unicode text" (UTF-16 with BOM, tab-separated).
    save_csv("Staff.txt", _table(_UNSEEN_STAFF, data.workers), "utf-16", "\t")

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
    path = out_dir / "invoices_and_payments.xlsx"
    _write_xlsx(
        path,
        [
            ("Invoices", _table(invoices, data.invoices, _PREAMBLE), len(_PREAMBLE)),
            ("Payments", _table(payments, data.payments, _PREAMBLE[:1]), 1),
        ],
    )
    files.append(path)

    save_csv("quotes.csv", _table(_UNSEEN_QUOTES, data.quotes), "utf-8")
    save_csv("services.csv", _table(_UNSEEN_SERVICES, data.services), "utf-8")
    save_csv("form_responses.csv", _table(_UNSEEN_FORMS, data.form_responses), "utf-8")
    return files


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
    files = _standard(data, out_dir) if variant == "standard" else _unseen(data, out_dir)
    return GeneratedExport(files=files, counts=data.counts(), users=list(data.users))


def write_samples(root: Path, *, records: int = 300, seed: int = 7) -> list[GeneratedExport]:
    """(Re)write the checked-in samples under ``root`` (``resources/samples/octopuspro``)."""
    return [generate_export(root / variant, records=records, seed=seed, variant=variant) for variant in VARIANTS]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "resources" / "samples" / "octopuspro"
    for export in write_samples(root):
        for path in export.files:
            print(f"{path}  ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
