"""Reader features: Shift-JIS, two-row headers, total rows kept as checksums, restored numbers, JSON shapes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source.readers import SourceTable, open_tables


def one(path: Path) -> SourceTable:
    tables = open_tables(path)
    assert len(tables) == 1
    return tables[0]


def rows(table: SourceTable) -> list[tuple[int, list[str | None]]]:
    return list(table.iter_rows())


# --------------------------------------------------------------------------------------------- CSV


def test_shift_jis_is_not_read_as_cp1252(tmp_path: Path) -> None:
    text = (
        "顧客ID,氏名,フリガナ,電話番号,住所\r\n"
        "1001,山田 太郎,ヤマダ タロウ,03-1234-5678,東京都港区芝公園4-2-8\r\n"
        "1002,佐藤 花子,サトウ ハナコ,06-9876-5432,大阪府大阪市北区梅田\r\n"
    )
    path = tmp_path / "jp.csv"
    path.write_bytes(text.encode("cp932"))
    table = one(path)
    assert table.encoding == "cp932"
    assert table.columns == ["顧客ID", "氏名", "フリガナ", "電話番号", "住所"]
    assert rows(table)[1] == (3, ["1002", "佐藤 花子", "サトウ ハナコ", "06-9876-5432", "大阪府大阪市北区梅田"])
    assert any("Shift-JIS" in w for w in table.warnings)


def test_shift_jis_without_bytes_cp1252_rejects(tmp_path: Path) -> None:
    # No 0x81/0x8D/0x8F/0x90/0x9D bytes: cp1252 would decode this as accented soup.
    text = "ID,Name,Kana\r\n1,Yamada,ヤマダ\r\n2,Sato,サトウ\r\n3,Ito,イトウ\r\n"
    data = text.encode("cp932")
    assert not any(b in data for b in (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d"))
    path = tmp_path / "kana.csv"
    path.write_bytes(data)
    table = one(path)
    assert table.encoding == "cp932"
    assert rows(table)[0] == (2, ["1", "Yamada", "ヤマダ"])


def test_western_cp1252_is_still_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "de.csv"
    text = "Name;Straße;Ort\r\nMüller;Hauptstraße 5;Köln\r\nRenée;Rue de l’Église;Zürich\r\n"
    path.write_bytes(text.encode("cp1252"))
    table = one(path)
    assert table.encoding == "cp1252"
    assert rows(table)[0] == (2, ["Müller", "Hauptstraße 5", "Köln"])


def test_formula_like_values_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('Name,Note\nA,=HYPERLINK("http://x")\nB,+61 400 000 000\nC,-5\nD,@SUM(A1)\n', encoding="utf-8")
    values = [r[1][1] for r in rows(one(path))]
    assert values == ['=HYPERLINK("http://x")', "+61 400 000 000", "-5", "@SUM(A1)"]


def test_scientific_ids_in_csv_are_written_out_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("J-ID,Name,Amount\n8.7557E+15,Ann,1.5E+3\n123,Bob,2\n", encoding="utf-8")
    table = one(path)
    assert rows(table) == [(2, ["8755700000000000", "Ann", "1.5E+3"]), (3, ["123", "Bob", "2"])]
    assert any("'J-ID'" in w and "scientific" in w and "precision" in w for w in table.warnings)


def test_csv_grand_total_row_is_excluded_and_kept_as_checksum(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Job #", "Status", "Business Unit", "Created Date", "Jobs Subtotal"])
        for i in range(1, 4):
            writer.writerow([f"{1000 + i}", "Completed", "HVAC", "03/14/2025", f"{i * 100}.00"])
        writer.writerow(["3", "", "", "", "600.00"])
    table = one(path)
    assert [r[0] for r in rows(table)] == [2, 3, 4]
    assert table.excluded_rows == [5]
    assert table.checksums == {"Job #": "3", "Jobs Subtotal": "600.00"}
    assert any("grand-total" in w and "Row 5" in w for w in table.warnings)
    rows(table)  # a second pass does not repeat the warning
    assert sum("grand-total" in w for w in table.warnings) == 1


def test_last_row_that_is_data_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("Job #,Status,Amount\n1,Done,5\n2,Open,6\n2,Open,7\n", encoding="utf-8")
    assert [r[0] for r in rows(one(path))] == [2, 3, 4]


# --------------------------------------------------------------------------------------------- XLSX


def test_xlsx_two_row_header_grand_total_and_restored_numbers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Jobs"
    sheet.append(["ServiceTitan report"])
    sheet.append([])
    sheet.append(["Job #", "Billing", None, "Service", None, "Amount", "Postcode", "Phone"])
    sheet.append([None, "Street", "City", "Street", "City", None, None, None])
    sheet.merge_cells("B3:C3")
    sheet.merge_cells("D3:E3")
    sheet.append([8.7557e15, "1 Main St", "Perth", "2 Side St", "Perth", 100.5, "0800", 61412345678.0])
    sheet.append([2.0, "3 High St", "Darwin", None, None, 200, 800, 61498765432.0])
    sheet.append([3.0, "4 Low St", "Hobart", None, None, 300, "0870", None])
    sheet.append(["Subtotal", None, None, None, None, 600.5, None, None])
    sheet.append([3, None, None, None, None, 600.5, None, None])
    path = tmp_path / "report.xlsx"
    workbook.save(path)
    table = one(path)
    assert table.header_row == 4
    assert table.columns == [
        "Job #", "Billing Street", "Billing City", "Service Street", "Service City", "Amount", "Postcode", "Phone"
    ]  # fmt: skip
    data = rows(table)
    assert [r[0] for r in data] == [5, 6, 7]
    assert data[0][1][0] == "8755700000000000"
    assert data[1][1][6] == "0800"  # the number 800 padded like the rest of the column
    assert data[0][1][7] == "61412345678"
    assert table.excluded_rows == [8, 9]
    assert table.checksums == {"Job #": "3", "Amount": "600.5"}
    warnings = " | ".join(table.warnings)
    assert "Two-row header" in warnings
    assert "'Job #' holds long numbers" in warnings
    assert "'Postcode': numbers padded" in warnings
    assert "Row 9 is a grand-total row" in warnings
    assert "1 subtotal row(s)" in warnings


def test_xlsx_hidden_columns_and_uncached_formula_are_reported(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["ID", "Name", "Total"])
    sheet.append([1, "Ann", "=2*3"])
    sheet.column_dimensions["B"].hidden = True
    path = tmp_path / "f.xlsx"
    workbook.save(path)
    table = one(path)
    assert rows(table) == [(2, ["1", "Ann", None])]
    assert any("C2" in w and "formula" in w for w in table.warnings)
    assert any("Column(s) B are hidden" in w for w in table.warnings)


# --------------------------------------------------------------------------------------------- JSON

RECORDS = [
    '{"id": 1, "name": "Ann", "address": {"street": "1 Main", "geo": {"lat": 1.50}}, "tags": ["a", "b"]}',
    '{"id": 2, "name": " ", "phones": [{"type": "home", "n": 5}], "active": true, "amount": 12.50, "x": null}',
]


def _check_json(table: SourceTable) -> None:
    assert table.columns == ["id", "name", "address.street", "address.geo.lat", "tags", "phones", "active",
                             "amount", "x"]  # fmt: skip
    data = rows(table)
    assert data[0][1] == ["1", "Ann", "1 Main", "1.50", "a; b", None, None, None, None]
    assert data[1][1] == ["2", None, None, None, None, '[{"type":"home","n":5}]', "TRUE", "12.50", None]


def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text("[\n  " + ",\n  ".join(RECORDS) + "\n]\n")
    table = one(path)
    _check_json(table)
    assert [r[0] for r in rows(table)] == [1, 2]


@pytest.mark.parametrize("key", ["data", "value", "records"])
def test_json_envelope(tmp_path: Path, key: str) -> None:
    path = tmp_path / "clients.json"
    path.write_text(f'{{"@odata.context": "x", "{key}": [{",".join(RECORDS)}], "@odata.nextLink": "https://n"}}')
    table = one(path)
    _check_json(table)
    assert any("one page" in w for w in table.warnings)


@pytest.mark.parametrize("name", ["clients.jsonl", "clients.ndjson", "clients.json"])
def test_json_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(RECORDS[0] + "\n\n" + RECORDS[1] + "\n")
    table = one(path)
    _check_json(table)
    assert [r[0] for r in rows(table)] == [1, 3]  # physical line numbers


def test_big_json_array_streams(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    with path.open("w") as handle:
        handle.write("[")
        handle.write(",".join(json.dumps({"id": i, "note": "x" * 200}) for i in range(20_000)))
        handle.write("]")
    table = one(path)
    assert sum(1 for _ in table.iter_rows()) == 20_000


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": "unauthorized"}', "without a records array"),
        ("[1, 2, 3]", "not a JSON object"),
        ('[{"a": 1}, {"a": 2}', "not valid JSON"),
        ('[{"a": 1}] trailing', "more text"),
        ("[]", "no records"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_json_is_refused(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(InputError, match=expected) as info:
        rows(one(path))
    assert info.value.file == "bad.json"
