"""Generic export generator: a folder of peer-style CSV/JSON files (Jobber, Housecall Pro, ServiceM8 shapes).

The data is the OctopusPro generator's realistic dataset (same referential integrity and traps),
written the way other field-service tools export it (reference §5): Jobber's client columns with
several phone numbers per cell and ``CFT[...]`` custom fields, Housecall Pro's job export with
``="2"`` id wrappers, currency strings and US dates, a JSON Lines technician file. It proves the
generic playbook maps headers nobody wrote a playbook for.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.demo import octopuspro as base

KIND = "files"  # for the demo runner: this source arrives as export files


def _mdy(day: date | datetime) -> str:
    return day.strftime("%m/%d/%Y")


def _mdy_hm(moment: datetime) -> str:
    return moment.strftime("%m/%d/%Y %I:%M %p")


def _usd(value: Decimal) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _wrapped(value: Any) -> str:
    return f'="{value}"'  # Excel text-formula wrapper seen in Housecall Pro exports


_CLIENTS = base._cols(
    ("J-ID", "id"), ("Created Date", lambda x: _mdy(x["joined"])),
    ("Is Company?", lambda x: "true" if x["type"] == "Business" else "false"),
    ("Display Name", lambda x: x["company"] or f"{x['first']} {x['last']}".strip()),
    ("Title", "title"), ("First Name", "first"), ("Last Name", "last"),
    ("Main Phone #s", lambda x: ", ".join(p for p in (x["phone"], x["mobile"]) if p)),
    ("Mobile Phone #s", "mobile"), ("E-mails", "email"), ("Tags", "labels"),
    ("Billing Street 1", "street"), ("Billing City", "suburb"), ("Billing State", "state"),
    ("Billing Country", "country"), ("Billing Zip code", "postcode"), ("CFT[Gate Code]", "gate_code"),
)  # fmt: skip
_JOBS = base._cols(
    ("Job #", lambda x: _wrapped(x["id"])), ("Customer ID", "customer"), ("Job description", "access"),
    ("Job status", "status"), ("Address", "address"), ("Job created date", lambda x: _mdy_hm(x["created"])),
    ("Job scheduled start date", lambda x: _mdy(x["date"])), ("Service type", "service"),
    ("Assigned employees", lambda x: ", ".join(x["workers"])), ("Job amount", lambda x: _usd(x["total"])),
    ("Amount paid", lambda x: _usd(x["paid"])), ("updated_at", lambda x: x["modified"].isoformat()),
)  # fmt: skip
_INVOICES = base._cols(
    ("Invoice #", "number"), ("Job #", "booking"), ("Status", "status"), ("Invoice Date", lambda x: _mdy(x["issue"])),
    ("Due Date", lambda x: _mdy(x["due"])), ("Invoice Total", lambda x: _usd(x["total"])),
    ("Balance", lambda x: _usd(x["balance"])),
)  # fmt: skip
_PAYMENTS = base._cols(
    ("Payment ID", "id"), ("Invoice #", "invoice"), ("Payment Method", "method"),
    ("Amount", lambda x: _usd(x["amount"])), ("Payment Date", lambda x: _mdy(x["date"])), ("Reference", "reference"),
)  # fmt: skip
_ESTIMATES = base._cols(
    ("Estimate #", "number"), ("Customer ID", "customer"), ("Status", "status"),
    ("Follow up date", lambda x: _mdy(x["follow_up"])), ("Estimate Total", lambda x: _usd(x["total"])),
)  # fmt: skip
_SERVICES = base._cols(
    ("Item name", "service"), ("Category", "category"), ("Unit price", lambda x: _usd(x["price"])),
    ("Duration (minutes)", "duration"),
)  # fmt: skip
_NOTES = base._cols(("Job #", "booking"), ("Checklist", "form"), ("Question", "question"), ("Answer", "answer"))


def _technicians_jsonl(path: Path, workers: list[dict[str, Any]]) -> None:
    lines = [
        json.dumps({
            "Employee ID": w["id"], "Employee name": w["name"], "Email": w["email"],
            "contact": {"mobile": w["mobile"]}, "Active": bool(w["active"]), "Role": w["industry"],
            "Hourly rate": str(w["pay_rate"]),
        }, ensure_ascii=False)
        for w in workers
    ]  # fmt: skip
    data = ("\n".join(lines) + "\n").encode("utf-8")
    base._atomic_write(path, lambda temp: temp.write_bytes(data))


def generate_export(out_dir: Path, *, records: int = 2000, seed: int = 7, variant: str = "standard") -> Any:
    """Write the generic export folder and return ``GeneratedExport(files, counts, users)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = base._Dataset(records, seed)
    files: list[Path] = []
    for name, columns, items in (
        ("clients.csv", _CLIENTS, data.customers),
        ("jobs.csv", _JOBS, data.bookings),
        ("invoices.csv", _INVOICES, data.invoices),
        ("payments.csv", _PAYMENTS, data.payments),
        ("estimates.csv", _ESTIMATES, data.quotes),
        ("price_list.csv", _SERVICES, data.services),
        ("job_checklists.csv", _NOTES, data.form_responses),
    ):
        rows = base._table(columns, [_plain(item) for item in items])
        path = out_dir / name
        base._write_csv(path, rows, encoding="utf-8-sig")
        files.append(path)
    technicians = out_dir / "technicians.jsonl"
    _technicians_jsonl(technicians, data.workers)
    files.append(technicians)
    return base.GeneratedExport(files=files, counts=data.counts(), users=list(data.users))


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return item
