"""The OctopusPro export generator: shape, referential integrity, traps, determinism and the samples."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from crmmigrator_gui.engine.demo.octopuspro import OBJECTS, GeneratedExport, generate_export
from crmmigrator_gui.engine.source.dates import parse_date
from crmmigrator_gui.engine.source.readers import SourceTable, open_tables

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples" / "octopuspro"

STANDARD_HEADERS = {
    "Customers": ["Customer ID", "Customer title", "First name", "Last name", "Business name",
                  "Customer type", "Email", "Mobile", "Phone", "Address", "Suburb/City", "State", "Postcode",
                  "Country", "Date joined", "Labels", "Gate code", "Preferred technician", "Password"],
    "Bookings": ["Booking ID", "Customer ID", "Service", "Status", "Booking date", "Start time", "End time",
                 "Fieldworker(s)", "Address", "Total", "Paid", "Created", "Modified", "Access notes"],
    "Field Workers": ["ID", "Name", "Email", "Mobile", "Active", "Industry label", "Pay rate"],
    "Invoices": ["Invoice number", "Booking ID", "Status", "Issue date", "Due date", "Total", "Balance"],
    "Payments": ["Payment ID", "Invoice number", "Method", "Amount", "Date", "Reference"],
    "Quotes": ["Quote number", "Customer ID", "Status", "Follow up date", "Total"],
    "Services": ["Service", "Category", "Price", "Duration"],
    "Form Responses": ["Booking ID", "Form", "Question", "Answer"],
}  # fmt: skip


def records(table: SourceTable) -> list[dict[str, str | None]]:
    return [dict(zip(table.columns, values, strict=True)) for _row, values in table.iter_rows()]


def read_all(files: list[Path]) -> dict[str, list[dict[str, str | None]]]:
    return {table.label: records(table) for path in files for table in open_tables(path)}


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedExport, dict[str, SourceTable]]:
    out = tmp_path_factory.mktemp("standard")
    export = generate_export(out, records=2000, seed=7)
    return export, {t.name: t for t in open_tables(export.files[0])}


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedExport, dict[str, SourceTable]]:
    out = tmp_path_factory.mktemp("unseen")
    export = generate_export(out, records=2000, seed=7, variant="unseen")
    return export, {t.label: t for path in export.files for t in open_tables(path)}


def test_standard_shape_and_counts(standard: tuple[GeneratedExport, dict[str, SourceTable]]) -> None:
    export, tables = standard
    assert [p.name for p in export.files] == ["octopuspro_export.xlsx"]
    assert list(tables) == list(STANDARD_HEADERS)
    for name, headers in STANDARD_HEADERS.items():
        assert tables[name].columns == headers, name
        assert tables[name].header_row == 1
    assert set(export.counts) == set(OBJECTS)
    assert sum(export.counts.values()) == 2000
    assert 450 <= export.counts["customers"] <= 550
    assert 650 <= export.counts["bookings"] <= 750
    assert 12 <= export.counts["fieldworkers"] <= 20
    assert 15 <= export.counts["services"] <= 22
    sheet_of = {"customers": "Customers", "bookings": "Bookings", "fieldworkers": "Field Workers",
                "invoices": "Invoices", "payments": "Payments", "quotes": "Quotes", "services": "Services",
                "form_responses": "Form Responses"}  # fmt: skip
    for key, sheet in sheet_of.items():
        assert len(records(tables[sheet])) == export.counts[key], key


def test_referential_integrity(standard: tuple[GeneratedExport, dict[str, SourceTable]]) -> None:
    _export, tables = standard
    data = {name: records(table) for name, table in tables.items()}
    customers = {r["Customer ID"] for r in data["Customers"]}
    bookings = {r["Booking ID"] for r in data["Bookings"]}
    invoices = {r["Invoice number"] for r in data["Invoices"]}
    workers = {r["Name"] for r in data["Field Workers"]}
    services = {r["Service"] for r in data["Services"]}
    assert len(customers) == len(data["Customers"])
    assert len(bookings) == len(data["Bookings"])
    for booking in data["Bookings"]:
        assert booking["Customer ID"] in customers
        assert booking["Service"] in services
        assert set(str(booking["Fieldworker(s)"]).split(", ")) <= workers
    assert all(r["Booking ID"] in bookings for r in data["Invoices"])
    assert all(r["Invoice number"] in invoices for r in data["Payments"])
    assert all(r["Customer ID"] in customers for r in data["Quotes"])
    assert all(r["Booking ID"] in bookings for r in data["Form Responses"])
    assert all(r["Preferred technician"] in workers for r in data["Customers"] if r["Preferred technician"])


def test_money_balances_add_up(standard: tuple[GeneratedExport, dict[str, SourceTable]]) -> None:
    _export, tables = standard
    paid: dict[str, Decimal] = defaultdict(Decimal)
    payments = records(tables["Payments"])
    for payment in payments:
        paid[str(payment["Invoice number"])] += Decimal(str(payment["Amount"]))
    assert any(Decimal(str(p["Amount"])) < 0 for p in payments), "a refund"
    partial = 0
    for invoice in records(tables["Invoices"]):
        total, balance = Decimal(str(invoice["Total"])), Decimal(str(invoice["Balance"]))
        assert invoice["Status"] in {"Draft", "Unpaid", "Paid", "Void"}
        if invoice["Status"] == "Paid":
            assert balance == 0
            assert paid[str(invoice["Invoice number"])] == total
        if invoice["Status"] == "Unpaid":
            assert balance == total - paid[str(invoice["Invoice number"])]
            partial += 0 < balance < total
    assert partial >= 1, "a partial payment"


def test_standard_values_and_traps(standard: tuple[GeneratedExport, dict[str, SourceTable]]) -> None:
    export, tables = standard
    customers = records(tables["Customers"])
    bookings = records(tables["Bookings"])
    names = " ".join(f"{c['First name']} {c['Last name']}" for c in customers)
    for name in ("Zoë", "Łukasz", "李", "O'Brien", "José"):
        assert name in names
    postcodes = {c["Postcode"] for c in customers}
    assert "0800" in postcodes or "0830" in postcodes or "0870" in postcodes
    assert all(len(str(p)) == 4 for p in postcodes)
    assert all(c["Password"] for c in customers)
    assert all(parse_date(str(c["Date joined"]), "YYYY/MM/DD") for c in customers)
    assert all(str(c["Date joined"])[4] == "/" for c in customers)
    assert any(c["Customer type"] == "Business" and not c["Business name"] for c in customers)
    assert any("\n" in str(c["Address"]) for c in customers)
    assert any(str(c["Mobile"]).startswith("04") for c in customers)
    statuses = {b["Status"] for b in bookings}
    assert {"Completed", "Cancelled", "Canceled"} <= statuses
    allowed = {
        "Pending",
        "Scheduled",
        "En Route",
        "Enroute",
        "In Progress",
        "Completed",
        "Cancelled",
        "Canceled",
    }
    assert statuses <= allowed
    assert any("," in str(b["Fieldworker(s)"]) for b in bookings)
    assert all(len(str(b["Booking date"])) == 10 for b in bookings)  # an Excel date cell, read as YYYY-MM-DD
    assert all("T" in str(b["Created"]) for b in bookings)  # a date-time cell
    assert any(str(b["Total"]).count(".") == 1 for b in bookings)  # cents
    workers = {r["Email"]: r["Name"] for r in records(tables["Field Workers"])}
    assert 0.7 <= len(export.users) / len(workers) <= 0.9
    assert all(workers[email] == name for name, email in export.users)


def test_deterministic(tmp_path: Path) -> None:
    first = generate_export(tmp_path / "a", records=400, seed=3)
    second = generate_export(tmp_path / "b", records=400, seed=3)
    other = generate_export(tmp_path / "c", records=400, seed=4)
    assert read_all(first.files) == read_all(second.files)
    assert first.counts == second.counts
    assert first.users == second.users
    assert read_all(first.files) != read_all(other.files)


def test_unseen_files_and_their_traps(
    standard: tuple[GeneratedExport, dict[str, SourceTable]],
    unseen: tuple[GeneratedExport, dict[str, SourceTable]],
) -> None:
    export, tables = unseen
    assert export.counts == standard[0].counts  # same dataset, another shape
    assert export.users == standard[0].users
    by_name = {p.name: p for p in export.files}
    assert set(by_name) == {"Customer list.csv", "jobs_export.csv", "Staff.txt", "invoices_and_payments.xlsx",
                            "quotes.csv", "services.csv", "form_responses.csv"}  # fmt: skip
    assert by_name["Customer list.csv"].read_bytes().startswith(b"\xef\xbb\xbf")
    customers = tables["Customer list.csv"]
    assert (customers.encoding, customers.delimiter, customers.header_row) == ("utf-8-sig", ",", 4)
    assert {
        "Client ID",
        "Given name",
        "Surname",
        "Company",
        "E-mail address",
        "Mobile No.",
        "Post code",
    } <= set(customers.columns)
    jobs = tables["jobs_export.csv"]
    assert (jobs.encoding, jobs.delimiter, jobs.header_row) == ("cp1252", ";", 3)
    assert {"Job ID", "Cust No", "Job status", "Scheduled date", "Worker(s)", "Amount"} <= set(jobs.columns)
    notes = " ".join(str(r["Access notes"]) for r in records(jobs))
    assert "’" in notes or "“" in notes
    assert "–" in notes
    staff = tables["Staff.txt"]
    assert (staff.encoding, staff.delimiter) == ("utf-16", "\t")
    invoices = tables["invoices_and_payments.xlsx [Invoices]"]
    assert invoices.header_row == 4
    dates = [str(r["Invoice date"]) for r in records(invoices)]
    assert any(d.isdigit() for d in dates)
    assert any("/" in d for d in dates)
    names = " ".join(f"{r['Given name']} {r['Surname']}" for r in records(customers))
    assert "Zoë" in names
    assert "李" in names
    assert any("\n" in str(r["Street address"]) for r in records(customers))


def test_unseen_mixed_dates_match_the_standard_export(
    standard: tuple[GeneratedExport, dict[str, SourceTable]],
    unseen: tuple[GeneratedExport, dict[str, SourceTable]],
) -> None:
    canonical = {r["Invoice number"]: r["Issue date"] for r in records(standard[1]["Invoices"])}
    mixed = records(unseen[1]["invoices_and_payments.xlsx [Invoices]"])
    assert len(mixed) == len(canonical)
    for row in mixed:
        assert parse_date(str(row["Invoice date"]), "DD/MM/YYYY") == parse_date(str(canonical[row["Invoice #"]]))


def test_small_exports_and_bad_arguments(tmp_path: Path) -> None:
    small = generate_export(tmp_path / "small", records=60, seed=1)
    assert all(count >= 1 for key, count in small.counts.items() if key != "form_responses")
    with pytest.raises(ValueError, match="variant"):
        generate_export(tmp_path, variant="bogus")
    with pytest.raises(ValueError, match="records"):
        generate_export(tmp_path, records=0)


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    generate_export(tmp_path, records=100, variant="unseen")
    generate_export(tmp_path, records=100, variant="standard")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.parametrize("variant", ["standard", "unseen"])
def test_checked_in_samples_are_small_and_current(tmp_path: Path, variant: str) -> None:
    folder = SAMPLES / variant
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert files, f"run python -m crmmigrator_gui.engine.demo.octopuspro to create {folder}"
    assert sum(p.stat().st_size for p in files) < 200_000
    fresh = generate_export(tmp_path, records=300, seed=7, variant=variant)
    assert sorted(p.name for p in fresh.files) == [p.name for p in files]
    assert read_all(files) == read_all(fresh.files), "samples are stale: regenerate them"


def test_clean_is_the_standard_export(tmp_path: Path) -> None:
    standard = generate_export(tmp_path / "s", records=300, seed=2)
    clean = generate_export(tmp_path / "c", records=300, seed=2, variant="clean")
    assert [p.name for p in clean.files] == [p.name for p in standard.files]
    assert read_all(clean.files) == read_all(standard.files)
    assert clean.counts == standard.counts
    assert clean.manifest is None
    assert clean.defects == []


def test_above_the_workbook_limit_every_sheet_is_a_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large exports stream one CSV per would-be sheet, with the workbook's content (LARGE lowered to test)."""
    from crmmigrator_gui.engine.demo import octopuspro

    workbook = generate_export(tmp_path / "xlsx", records=400, seed=4)
    monkeypatch.setattr(octopuspro, "LARGE", 100)
    large = generate_export(tmp_path / "csv", records=400, seed=4)
    assert [p.name for p in large.files] == [f"{sheet}.csv" for sheet in STANDARD_HEADERS]
    assert large.counts == workbook.counts
    sheets = {t.name: records(t) for t in open_tables(workbook.files[0])}
    for path in large.files:
        (table,) = open_tables(path)
        assert table.columns == STANDARD_HEADERS[path.stem]
        rows = records(table)
        assert len(rows) == len(sheets[path.stem])
        for csv_row, xlsx_row in zip(rows, sheets[path.stem], strict=True):
            for column in ("Customer ID", "Booking ID", "Invoice number", "Payment ID", "Quote number", "Form"):
                if column in csv_row:
                    assert str(csv_row[column]) == str(xlsx_row[column])
    unseen = generate_export(tmp_path / "unseen", records=400, seed=4, variant="unseen")
    assert {"Invoices.csv", "Payments.csv"} <= {p.name for p in unseen.files}
    assert not [p for p in unseen.files if p.suffix == ".xlsx"]
