"""Generic export generator: a folder of peer-style CSV/JSON files (Jobber, Housecall Pro, ServiceM8 shapes).

The data is the OctopusPro generator's realistic dataset (same referential integrity and traps),
written the way other field-service tools export it (reference §5): Jobber's client columns with
several phone numbers per cell and ``CFT[...]`` custom fields, Housecall Pro's job export with
``="2"`` id wrappers, currency strings and US dates, a JSON Lines technician file. It proves the
generic playbook maps headers nobody wrote a playbook for.

Variants:

* ``"standard"`` (``"clean"`` is the same): the files above, every CSV UTF-8 with a BOM.
* ``"dirty"``: the same folder with the §6 traps that fit these exports injected (a Windows-1252
  ``;``-separated invoice list, a UTF-16 tab-separated estimate list, LF line endings and a trailing
  empty column on the checklists, a grand-total row under the jobs, mixed and placeholder dates, money
  in several formats, enum drift, HTML/RTF/over-long notes, Excel damage, near-duplicates, exact
  duplicates and referential gaps) and ``_fixture/manifest.json`` listing each defect with its file,
  physical row, column, type, the source id the load reports and the expected effect (see
  :mod:`crmmigrator_gui.engine.demo.octopuspro` for the effects). The technician JSON Lines file is
  left clean.

Every CSV is streamed row by row from the streaming dataset, so 1,000,000 records fit in bounded memory.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from crmmigrator_gui.engine.demo import octopuspro as base
from crmmigrator_gui.engine.demo.octopuspro import (
    DROPPED,
    EXCLUDED,
    FAILS,
    MANIFEST_DIR,
    SKIPPED,
    GeneratedExport,
)

KIND = "files"  # for the demo runner: this source arrives as export files
VARIANTS = ("standard", "clean", "dirty")


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

# object -> (file name, columns, CSV options in the standard variant, CSV options in the dirty variant)
_FILES: dict[str, tuple[str, base.Columns, dict[str, Any], dict[str, Any]]] = {
    "customers": ("clients.csv", _CLIENTS, {"encoding": "utf-8-sig"}, {"encoding": "utf-8-sig", "raw_formulas": True}),
    "bookings": ("jobs.csv", _JOBS, {"encoding": "utf-8-sig"}, {"encoding": "utf-8-sig"}),
    "invoices": ("invoices.csv", _INVOICES, {"encoding": "utf-8-sig"}, {"encoding": "cp1252", "delimiter": ";"}),
    "payments": ("payments.csv", _PAYMENTS, {"encoding": "utf-8-sig"}, {"encoding": "utf-8-sig"}),
    "quotes": ("estimates.csv", _ESTIMATES, {"encoding": "utf-8-sig"}, {"encoding": "utf-16", "delimiter": "\t"}),
    "services": ("price_list.csv", _SERVICES, {"encoding": "utf-8-sig"}, {"encoding": "utf-8-sig"}),
    "form_responses": ("job_checklists.csv", _NOTES, {"encoding": "utf-8-sig"},
                       {"encoding": "utf-8", "newline": "\n", "trailing_empty_column": True}),
}  # fmt: skip


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


def generate_export(out_dir: Path, *, records: int = 2000, seed: int = 7, variant: str = "standard") -> GeneratedExport:
    """Write the generic export folder and return ``GeneratedExport(files, counts, users[, manifest, defects])``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if records < 1:
        raise ValueError("records must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = base._Dataset(records, seed)
    dirty = variant == "dirty"
    dirt = _GenericDirt(seed, data) if dirty else None
    outputs = base._Outputs()
    try:
        routes = {
            obj: base._Route.open(outputs.csv(out_dir / name, **(options_dirty if dirty else options)), columns)
            for obj, (name, columns, options, options_dirty) in _FILES.items()
        }
        if dirt is not None:
            dirt.routes = routes
            dirt.file_level(
                routes, ("customers", "utf8_bom"), ("invoices", "cp1252_encoding"),
                ("invoices", "semicolon_delimiter"), ("quotes", "utf16_tab_text"),
                ("form_responses", "lf_line_endings"), ("form_responses", "trailing_empty_column"),
            )  # fmt: skip
        base._pump(data, routes, dirt)
        if dirt is not None:
            dirt.finish()
        files = outputs.close()
    except BaseException:
        outputs.abort()
        raise
    technicians = out_dir / "technicians.jsonl"
    _technicians_jsonl(technicians, data.workers)
    files.append(technicians)
    if dirt is None:
        return GeneratedExport(files=files, counts=data.counts(), users=list(data.users))
    manifest = out_dir / MANIFEST_DIR / "manifest.json"
    base._write_manifest(manifest, "generic", seed, records, dirt)
    return GeneratedExport(
        files=files, counts=dirt.counts(), users=list(data.users), manifest=manifest, defects=dirt.entries
    )


# --------------------------------------------------------------------------------------------- dirty

_G = "loaded_as_given"
_MAP = "normalised_by_value_map"


class _GenericDirt(base._Dirt):
    """Peer exports (Jobber / Housecall Pro shapes): the §5 quirks and the §6 traps that fit them."""

    DEFECTS: ClassVar[dict[tuple[str, str], base.Defect]] = {
        # files
        ("customers", "utf8_bom"): ("customers", "", 0.0, "decoded", "Excel 'CSV UTF-8' (byte-order mark)"),
        ("invoices", "cp1252_encoding"): ("invoices", "", 0.0, "decoded", "saved as Windows-1252"),
        ("invoices", "semicolon_delimiter"): ("invoices", "", 0.0, "decoded", "';' delimiters from EU-locale Excel"),
        ("quotes", "utf16_tab_text"): ("quotes", "", 0.0, "decoded", "Excel 'Unicode text': UTF-16, tab-separated"),
        ("form_responses", "lf_line_endings"): ("form_responses", "", 0.0, "decoded", "LF line endings"),
        ("form_responses", "trailing_empty_column"): ("form_responses", "", 0.0, "ignored",
                                                      "every row ends with a delimiter: an empty, unnamed column"),
        ("bookings", "grand_total_row"): ("bookings", "Job #", 0.0, EXCLUDED,
                                          "a report footer: 'Total' with the summed job amount"),
        # clients (Jobber)
        ("customers", "several_numbers_in_cell"): ("customers", "Main Phone #s", 0.0, _G,
                                                   "Jobber's '#s' columns: several numbers in one cell"),
        ("customers", "test_record"): ("customers", "Last Name", 0.0, _G, "'Test' / 'DO NOT USE' record"),
        ("customers", "two_emails_in_cell"): ("customers", "E-mails", 0.0, "first_kept", "two addresses in one cell"),
        ("customers", "mojibake"): ("customers", "First Name", 0.01, _G, "UTF-8 once mis-read as Windows-1252"),
        ("customers", "embedded_quotes_commas"): ("customers", "Display Name", 0.01, "kept",
                                                  'commas and "quotes" inside a quoted cell'),
        ("customers", "multiline_cell"): ("customers", "Billing Street 1", 0.01, "kept", "street over two lines"),
        ("customers", "leading_zero_lost"): ("customers", "Billing Zip code", 0.1, _G, "0800 became 800"),
        ("customers", "excel_text_formula"): ("customers", "Billing Zip code", 0.01, "unwrapped", 'zip as ="2000"'),
        ("customers", "phone_format_variant"): ("customers", "Mobile Phone #s", 0.03, _G,
                                                "0412.345.678 / +61 (4) 1234-5678 / 0412 345 678 x12"),
        ("customers", "phone_with_letters"): ("customers", "Mobile Phone #s", 0.005, _G, "'0412 345 678 (home)'"),
        ("customers", "name_case_whitespace"): ("customers", "Last Name", 0.01, "whitespace_trimmed",
                                                "ALL CAPS with trailing spaces or a tab"),
        ("customers", "title_in_first_name"): ("customers", "First Name", 0.005, _G, "'Dr Wei' in the first name"),
        ("customers", "couple_name"): ("customers", "First Name", 0.005, _G, "'John & Jane' in the first name"),
        ("customers", "state_spelling"): ("customers", "Billing State", 0.02, _G, "New South Wales / N.S.W. / nsw"),
        ("customers", "country_spelling"): ("customers", "Billing Country", 0.02, _G, "AU / AUS / Aust. / blank"),
        ("customers", "boolean_spelling"): ("customers", "Is Company?", 0.02, _MAP, "TRUE / FALSE for true / false"),
        ("customers", "excel_serial_date"): ("customers", "Created Date", 0.01, "parsed", "a serial (45123)"),
        ("customers", "mixed_date_format"): ("customers", "Created Date", 0.01, "parsed",
                                             "ISO or 'Mar 14, 2024' in an MM/DD/YYYY column"),
        ("customers", "placeholder_date"): ("customers", "Created Date", 0.005, "loaded_as_empty", "N/A / None / -"),
        ("customers", "duplicate_row_exact"): ("customers", "", 0.003, DROPPED, "the same row twice (re-export)"),
        ("customers", "duplicate_customer_variant"): ("customers", "J-ID", 0.0, _G,
                                                      "same client under a new id; e-mail case and phone differ"),
        ("customers", "invalid_email"): ("customers", "E-mails", 0.0, FAILS, "not an e-mail address ('jane@')"),
        ("customers", "unparseable_date"): ("customers", "Created Date", 0.0, FAILS, "'unknown' in a date column"),
        # jobs (Housecall Pro)
        ("bookings", "excel_text_formula"): ("bookings", "Job #", 0.0, "unwrapped", 'ids written ="50001"'),
        ("bookings", "several_workers_in_cell"): ("bookings", "Assigned employees", 0.0, "owner_from_first_matched",
                                                  "comma-joined employees"),
        ("bookings", "status_spelling_variant"): ("bookings", "Job status", 0.0, _MAP,
                                                  "Canceled beside Cancelled, Enroute beside En Route"),
        ("bookings", "enum_drift_status"): ("bookings", "Job status", 0.02, _MAP, "COMPLETED / completed / Complete"),
        ("bookings", "money_format"): ("bookings", "Job amount", 0.02, "parsed", "1.234,50 / USD 129.00 / 129"),
        ("bookings", "excel_serial_date"): ("bookings", "Job scheduled start date", 0.01, "parsed", "a serial"),
        ("bookings", "mixed_date_format"): ("bookings", "Job scheduled start date", 0.01, "parsed",
                                            "ISO or 'Mar 14, 2025' in an MM/DD/YYYY column"),
        ("bookings", "iso_offset_datetime"): ("bookings", "updated_at", 0.02, "parsed",
                                              "2024-03-05T14:22:11.000+0000 / ...Z"),
        ("bookings", "placeholder_date"): ("bookings", "updated_at", 0.005, "loaded_as_empty", "N/A / None / -"),
        ("bookings", "po_box_site"): ("bookings", "Address", 0.003, _G, "a PO box as the service address"),
        ("bookings", "html_in_notes"): ("bookings", "Job description", 0.01, _G, "<p>, <br> and &amp; in a note"),
        ("bookings", "totals_mismatch"): ("bookings", "Amount paid", 0.005, _G, "paid more than the job amount"),
        ("bookings", "long_note_excel_limit"): ("bookings", "Job description", 0.0, FAILS,
                                                "32,767 characters (Excel's cell limit); the note column holds 2,000"),
        ("bookings", "duplicate_row_exact"): ("bookings", "", 0.003, DROPPED, "the same row twice (re-export)"),
        ("bookings", "orphan_booking"): ("bookings", "Customer ID", 0.0, SKIPPED, "customer id not in the clients"),
        ("bookings", "fk_holds_name"): ("bookings", "Customer ID", 0.0, SKIPPED, "the client's name, not the id"),
        ("bookings", "money_unparseable"): ("bookings", "Job amount", 0.0, FAILS, "'TBD' where an amount belongs"),
        ("bookings", "unparseable_date"): ("bookings", "Job scheduled start date", 0.0, FAILS, "'ASAP' as a date"),
        # invoices
        ("invoices", "excel_serial_date"): ("invoices", "Invoice Date", 0.01, "parsed", "a serial (45730)"),
        ("invoices", "enum_drift_invoice_status"): ("invoices", "Status", 0.02, _MAP, "PAID / unpaid / VOID / draft"),
        ("invoices", "money_negative_format"): ("invoices", "Balance", 0.005, "parsed", "($12.50) for a credit"),
        ("invoices", "money_format"): ("invoices", "Invoice Total", 0.02, "parsed", "1.234,50 / AUD 99.00"),
        ("invoices", "unparseable_date"): ("invoices", "Due Date", 0.003, FAILS, "'on receipt' in a date column"),
        ("invoices", "money_unparseable"): ("invoices", "Invoice Total", 0.003, FAILS, "'TBA' as an amount"),
        ("invoices", "orphan_invoice"): ("invoices", "Job #", 0.0, SKIPPED, "job outside the export window"),
        # payments
        ("payments", "money_negative_format"): ("payments", "Amount", 0.1, "parsed", "($45.00) for a refund"),
        ("payments", "scientific_notation"): ("payments", "Reference", 0.01, _G, "a long reference as 8.7557E+15"),
        ("payments", "excel_serial_date"): ("payments", "Payment Date", 0.01, "parsed", "a serial (45730)"),
        ("payments", "unparseable_date"): ("payments", "Payment Date", 0.003, FAILS, "'pending' as a date"),
        ("payments", "money_unparseable"): ("payments", "Amount", 0.003, FAILS, "'see bank' as an amount"),
        ("payments", "orphan_payment"): ("payments", "Invoice #", 0.0, SKIPPED, "invoice not in the export"),
        # estimates
        ("quotes", "enum_drift_quote_status"): ("quotes", "Status", 0.02, _MAP, "accepted / SENT / draft"),
        ("quotes", "mixed_date_format"): ("quotes", "Follow up date", 0.01, "parsed", "ISO in an MM/DD/YYYY column"),
        ("quotes", "unparseable_date"): ("quotes", "Follow up date", 0.003, FAILS, "'TBC' in a date column"),
        ("quotes", "money_unparseable"): ("quotes", "Estimate Total", 0.003, FAILS, "'POA' as an amount"),
        ("quotes", "orphan_quote"): ("quotes", "Customer ID", 0.0, SKIPPED, "customer id not in the clients"),
        # price list
        ("services", "money_unparseable"): ("services", "Unit price", 0.0, FAILS, "'POA' where a price belongs"),
        ("services", "bad_integer"): ("services", "Duration (minutes)", 0.0, FAILS, "'90 min' where minutes belong"),
        # checklists
        ("form_responses", "repeated_row"): ("form_responses", "", 0.0, DROPPED,
                                             "the same answer row again (the export repeats rows)"),
        ("form_responses", "html_entities"): ("form_responses", "Answer", 0.01, _G, "<p>, <br> and &amp;"),
        ("form_responses", "emoji_smart_quotes"): ("form_responses", "Answer", 0.01, "kept", "emoji and curly quotes"),
        ("form_responses", "rtf_leak"): ("form_responses", "Answer", 0.003, _G, "RTF control words in the text"),
        ("form_responses", "orphan_form_response"): ("form_responses", "Job #", 0.0, SKIPPED,
                                                     "checklist answers for a job not in the export"),
    }  # fmt: skip
    NATURAL: ClassVar[frozenset[str]] = frozenset({"test_record", "two_emails_in_cell", "several_workers_in_cell",
                                                   "status_spelling_variant", "repeated_row"})  # fmt: skip
    IDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "customers": ("J-ID",), "bookings": ("Job #",), "invoices": ("Invoice #",), "payments": ("Payment ID",),
        "quotes": ("Estimate #",), "services": ("Item name",), "form_responses": ("Job #", "Checklist"),
    }  # fmt: skip
    GROUPED: ClassVar[frozenset[str]] = frozenset({"form_responses"})

    def __init__(self, seed: int, data: base._Dataset) -> None:
        super().__init__(seed, data)
        self.templates: dict[str, dict[str, Any]] = {}
        self.job_total = Decimal("0.00")

    def emit(self, route: base._Route, obj: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        self.templates.setdefault(obj, dict(record))
        if obj == "bookings":
            self.job_total += record["total"]
        super().emit(route, obj, record, values)

    def _dirty_customers(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "customers"
        if record["last"] == "DO NOT USE":
            self.note(o, "test_record")
        if ";" in record["email"]:
            self.note(o, "two_emails_in_cell")
        if record["phone"] and record["mobile"] and self.applied[(o, "several_numbers_in_cell")] == 0:
            self.note(o, "several_numbers_in_cell")
        if self.want(o, "mojibake", not record["first"].isascii()):
            values["First Name"] = base._mis_decoded(record["first"])
            self.note(o, "mojibake")
        elif self.want(o, "title_in_first_name", bool(record["title"])):
            values["First Name"] = f"{record['title']} {record['first']}"
            self.note(o, "title_in_first_name")
        elif self.want(o, "couple_name"):
            values["First Name"] = f"{record['first']} & {r.choice(base._FIRST)}"
            self.note(o, "couple_name")
        if self.want(o, "embedded_quotes_commas", bool(record["company"])):
            values["Display Name"] = f'{record["company"]}, "Head Office"'
            self.note(o, "embedded_quotes_commas")
        if self.want(o, "name_case_whitespace"):
            values["Last Name"] = record["last"].upper() + r.choice(("  ", "\t", " "))
            self.note(o, "name_case_whitespace")
        if self.want(o, "multiline_cell", "\n" not in record["street"]):
            values["Billing Street 1"] = f"Suite {r.randint(1, 20)}\n{record['street']}"
            self.note(o, "multiline_cell")
        if self.want(o, "leading_zero_lost", record["postcode"].startswith("0")):
            values["Billing Zip code"] = record["postcode"].lstrip("0")
            self.note(o, "leading_zero_lost")
        elif self.want(o, "excel_text_formula"):
            values["Billing Zip code"] = f'="{record["postcode"]}"'
            self.note(o, "excel_text_formula")
        digits = "".join(ch for ch in record["mobile"] if ch.isdigit())
        if self.want(o, "phone_format_variant", record["mobile"].startswith("04")):
            values["Mobile Phone #s"] = r.choice((f"{digits[:4]}.{digits[4:7]}.{digits[7:]}",
                                                  f"+61 ({digits[1]}) {digits[2:6]}-{digits[6:]}",
                                                  f"{record['mobile']} x{r.randint(10, 99)}"))  # fmt: skip
            self.note(o, "phone_format_variant")
        elif self.want(o, "phone_with_letters", bool(record["mobile"])):
            values["Mobile Phone #s"] = f"{record['mobile']} ({r.choice(('home', 'wife', 'after 5pm'))})"
            self.note(o, "phone_with_letters")
        if self.want(o, "state_spelling", record["state"] in base._STATE_NAMES):
            values["Billing State"] = r.choice((base._STATE_NAMES[record["state"]], ".".join(record["state"]) + ".",
                                                record["state"].lower()))  # fmt: skip
            self.note(o, "state_spelling")
        if self.want(o, "country_spelling"):
            values["Billing Country"] = r.choice(("AU", "AUS", "Aust.", ""))
            self.note(o, "country_spelling")
        if self.want(o, "boolean_spelling"):
            values["Is Company?"] = values["Is Company?"].upper()
            self.note(o, "boolean_spelling", detail=f"{'true' if record['type'] == 'Business' else 'false'} -> "
                      f"{values['Is Company?']}")  # fmt: skip
        joined = record["joined"]
        if self.want(o, "excel_serial_date"):
            values["Created Date"] = str(base._serial(joined))
            self.note(o, "excel_serial_date")
        elif self.want(o, "mixed_date_format"):
            values["Created Date"] = r.choice((joined.isoformat(), f"{joined:%b} {joined.day}, {joined.year}"))
            self.note(o, "mixed_date_format")
        elif self.want(o, "placeholder_date"):
            values["Created Date"] = r.choice(("N/A", "None", "-"))
            self.note(o, "placeholder_date")

    def _dirty_bookings(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "bookings"
        status = record["status"]
        if self.applied[(o, "excel_text_formula")] == 0:
            self.note(o, "excel_text_formula")
        if status in ("Canceled", "Enroute") and self.applied[(o, "status_spelling_variant")] < 2:
            before = {"Canceled": "Cancelled", "Enroute": "En Route"}[status]
            self.note(o, "status_spelling_variant", detail=f"{before} -> {status}")
        if len(record["workers"]) > 1 and self.applied[(o, "several_workers_in_cell")] == 0:
            self.note(o, "several_workers_in_cell")
        drift = {"Completed": ("COMPLETED", "completed", "Complete"), "Scheduled": ("scheduled", "SCHEDULED"),
                 "Cancelled": ("CANCELLED", "cancelled"), "Pending": ("pending",)}.get(status)  # fmt: skip
        if self.want(o, "enum_drift_status", drift is not None):
            values["Job status"] = r.choice(drift or ("",))
            self.note(o, "enum_drift_status", detail=f"{status} -> {values['Job status']}")
        if self.want(o, "money_format"):
            total = record["total"]
            values["Job amount"] = r.choice((base._european(total), f"USD {total:.2f}", f"{total:f}"))
            self.note(o, "money_format")
        day = record["date"]
        if self.want(o, "excel_serial_date"):
            values["Job scheduled start date"] = str(base._serial(day))
            self.note(o, "excel_serial_date")
        elif self.want(o, "mixed_date_format"):
            values["Job scheduled start date"] = r.choice((day.isoformat(), f"{day:%b} {day.day}, {day.year}"))
            self.note(o, "mixed_date_format")
        if self.want(o, "iso_offset_datetime"):
            moment = record["modified"]
            values["updated_at"] = r.choice((f"{moment:%Y-%m-%dT%H:%M:%S}.000+0000", f"{moment:%Y-%m-%dT%H:%M:%S}Z"))
            self.note(o, "iso_offset_datetime")
        elif self.want(o, "placeholder_date"):
            values["updated_at"] = r.choice(("N/A", "None", "-"))
            self.note(o, "placeholder_date")
        if self.want(o, "po_box_site"):
            values["Address"] = f"PO Box {r.randint(100, 9999)}, {values['Address'].rsplit(', ', 1)[-1]}"
            self.note(o, "po_box_site")
        if self.want(o, "long_note_excel_limit"):
            values["Job description"] = base._long_note(record["access"])
            self.note(o, "long_note_excel_limit")
        elif self.want(o, "html_in_notes"):
            text = record["access"] or "Call on arrival"
            values["Job description"] = f"<p>{text.replace(chr(10), '<br>')}</p><p>Parts &amp; labour as quoted</p>"
            self.note(o, "html_in_notes")
        if self.want(o, "totals_mismatch"):
            values["Amount paid"] = _usd(record["total"] + Decimal("10.00"))
            self.note(o, "totals_mismatch")

    def _dirty_invoices(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "invoices"
        leaf = record["n_payments"] == 0  # a failing invoice must not take payments down with it
        if self.want(o, "unparseable_date", leaf):
            values["Due Date"] = r.choice(("on receipt", "TBC"))
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable", leaf):
            values["Invoice Total"] = r.choice(("TBA", "see job"))
            self.note(o, "money_unparseable")
        elif self.want(o, "money_format"):
            values["Invoice Total"] = r.choice((base._european(record["total"]), f"AUD {record['total']:.2f}"))
            self.note(o, "money_format")
        if self.want(o, "excel_serial_date"):
            values["Invoice Date"] = str(base._serial(record["issue"]))
            self.note(o, "excel_serial_date")
        drift = {"Paid": ("PAID", "paid"), "Unpaid": ("UNPAID", "unpaid"), "Void": ("VOID", "void"),
                 "Draft": ("draft", "DRAFT")}.get(record["status"])  # fmt: skip
        if self.want(o, "enum_drift_invoice_status", drift is not None):
            values["Status"] = r.choice(drift or ("",))
            self.note(o, "enum_drift_invoice_status", detail=f"{record['status']} -> {values['Status']}")
        if self.want(o, "money_negative_format"):
            values["Balance"] = r.choice(("($12.50)", "-$5.00"))
            self.note(o, "money_negative_format")

    def _dirty_payments(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "payments"
        if self.want(o, "unparseable_date"):
            values["Payment Date"] = r.choice(("pending", "TBC"))
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable"):
            values["Amount"] = r.choice(("see bank", "TBA"))
            self.note(o, "money_unparseable")
        elif self.want(o, "money_negative_format", record["amount"] < 0):
            values["Amount"] = f"(${-record['amount']:,.2f})"
            self.note(o, "money_negative_format")
        if self.want(o, "scientific_notation"):
            values["Reference"] = f"{r.randint(10000, 99999) / 10000:.4f}E+15"
            self.note(o, "scientific_notation")
        if self.want(o, "excel_serial_date", values["Payment Date"] == _mdy(record["date"])):
            values["Payment Date"] = str(base._serial(record["date"]))
            self.note(o, "excel_serial_date")

    def _dirty_quotes(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "quotes"
        if self.want(o, "unparseable_date"):
            values["Follow up date"] = "TBC"
            self.note(o, "unparseable_date")
        elif self.want(o, "money_unparseable"):
            values["Estimate Total"] = "POA"
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
            values["Unit price"] = "POA"
            self.note(o, "money_unparseable")
        elif self.applied[(o, "bad_integer")] == 0 and self.want(o, "bad_integer"):
            values["Duration (minutes)"] = f"{record['duration']} min"
            self.note(o, "bad_integer")

    def _dirty_form_responses(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        r = self.rng
        o = "form_responses"
        free_text = record["question"] == "Technician notes"
        if self.want(o, "html_entities", free_text):
            values["Answer"] = "<p>" + record["answer"].replace("\n", "<br>") + "</p><p>Parts &amp; labour ok</p>"
            self.note(o, "html_entities")
        elif self.want(o, "rtf_leak", free_text):
            values["Answer"] = "{\\rtf1\\ansi {\\fonttbl {\\f0 Calibri;}}\\f0\\fs22 " + record["answer"] + "\\par}"
            self.note(o, "rtf_leak")
        elif self.want(o, "emoji_smart_quotes", free_text):
            values["Answer"] = record["answer"] + r.choice((" Customer very happy 👍", " “All good” – see photos 📷"))
            self.note(o, "emoji_smart_quotes")

    def finish(self) -> None:
        """Rows that only exist in the dirty export, then the jobs report's grand-total row."""
        routes, data, t = self.routes, self.data, self.templates
        plan = data.plan
        new_customer = 1001 + plan["customers"]
        missing_customer = new_customer + 900
        missing_booking = 50001 + plan["bookings"] + 900
        first = t["customers"]
        c = routes["customers"]
        mobile = first["mobile"] or "0400 000 000"
        self.extra(c, "customers", first, "duplicate_customer_variant",
                   {"J-ID": new_customer, "E-mails": first["email"].upper(), "Mobile Phone #s": mobile.replace(" ", ""),
                    "Main Phone #s": mobile.replace(" ", "")}, f"same client as {first['id']}")  # fmt: skip
        self.extra(c, "customers", first, "invalid_email", {"J-ID": new_customer + 1, "E-mails": "jane@"})
        self.extra(c, "customers", first, "unparseable_date", {"J-ID": new_customer + 2, "Created Date": "unknown"})
        b = routes["bookings"]
        job = t["bookings"]
        new_job = 50001 + plan["bookings"]
        self.extra(b, "bookings", job, "orphan_booking", {"Job #": _wrapped(new_job), "Customer ID": missing_customer})
        self.extra(b, "bookings", job, "fk_holds_name",
                   {"Job #": _wrapped(new_job + 1), "Customer ID": f"{first['first']} {first['last']}"},
                   f"client {first['id']}")  # fmt: skip
        self.extra(b, "bookings", job, "money_unparseable", {"Job #": _wrapped(new_job + 2), "Job amount": "TBD"})
        self.extra(b, "bookings", job, "unparseable_date",
                   {"Job #": _wrapped(new_job + 3), "Job scheduled start date": "ASAP"})  # fmt: skip
        self.extra(routes["quotes"], "quotes", t["quotes"], "orphan_quote",
                   {"Estimate #": f"Q-{5001 + plan['quotes'] + 900}", "Customer ID": missing_customer})  # fmt: skip
        if "invoices" in t:
            self.extra(routes["invoices"], "invoices", t["invoices"], "orphan_invoice",
                       {"Invoice #": "INV-09876", "Job #": missing_booking, "Status": "Paid"},
                       "job predates the export window")  # fmt: skip
        if "payments" in t:
            self.extra(routes["payments"], "payments", t["payments"], "orphan_payment",
                       {"Payment ID": 90001 + data.emitted["payments"] + 900, "Invoice #": "INV-09875"})  # fmt: skip
        if "form_responses" in t:
            self.extra(routes["form_responses"], "form_responses", t["form_responses"], "orphan_form_response",
                       {"Job #": missing_booking})  # fmt: skip
        key = ("bookings", "grand_total_row")
        self.applied[key] += 1
        total = {"Job #": "Total", "Job amount": _usd(self.job_total)}
        row = b.sink.append([total.get(header, "") for header, _get in b.columns])
        self.log(b.sink, key, row, None, detail=f"Job amount {self.job_total:f}")
