"""Export-file readers: encodings, delimiters, header detection, cell normalisation and clear refusals."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pytest

from crmmigrator_gui.engine.errors import InputError
from crmmigrator_gui.engine.source.readers import SUPPORTED_SUFFIXES, SourceTable, open_tables


def one(path: Path) -> SourceTable:
    tables = open_tables(path)
    assert len(tables) == 1
    return tables[0]


def rows(table: SourceTable) -> list[tuple[int, list[str | None]]]:
    return list(table.iter_rows())


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------- CSV


def test_utf8_bom_title_rows_and_multiline_cells(tmp_path: Path) -> None:
    text = (
        "OctopusPro data export\r\n"
        "Generated 14/03/2025\r\n"
        "\r\n"
        "Customer ID,First name,Address,Postcode\r\n"
        'C1,Zoë,"Unit 2\r\n1 Main St",0800\r\n'
        "\r\n"
        'C2,Łukasz,"12 ""The Elms""",2000\r\n'
    )
    table = one(write(tmp_path / "customers.csv", b"\xef\xbb\xbf" + text.encode("utf-8")))
    assert table.name == "customers"
    assert table.sheet is None
    assert table.encoding == "utf-8-sig"
    assert table.delimiter == ","
    assert table.header_row == 4
    assert table.columns == ["Customer ID", "First name", "Address", "Postcode"]
    assert rows(table) == [
        (5, ["C1", "Zoë", "Unit 2\r\n1 Main St", "0800"]),
        (7, ["C2", "Łukasz", '12 "The Elms"', "2000"]),
    ]
    assert any("title row" in w for w in table.warnings)


def test_key_value_preamble_is_not_the_header(tmp_path: Path) -> None:
    preamble = (
        "Company:,Sparkle Services\nExported by:,admin\nScope:,All customers\nFormat:,CSV\nNote:,none\n\n"
    )
    data = (
        preamble
        + "ID,Name,Email,Phone,Suburb\n"
        + "".join(f"{i},N{i},n{i}@x.com,0412,Perth\n" for i in range(8))
    )
    table = one(write(tmp_path / "kv.csv", data.encode()))
    assert table.header_row == 7
    assert table.columns == ["ID", "Name", "Email", "Phone", "Suburb"]


def test_cp1252_semicolons_curly_quotes(tmp_path: Path) -> None:
    text = "Job ID;Notes;Amount\r\nJ1;“Ring first” – café;12,50\r\nJ2;O’Brien’s gate;3\r\n"
    table = one(write(tmp_path / "jobs.csv", text.encode("cp1252")))
    assert table.encoding == "cp1252"
    assert table.delimiter == ";"
    assert rows(table) == [
        (2, ["J1", "“Ring first” – café", "12,50"]),
        (3, ["J2", "O’Brien’s gate", "3"]),
    ]
    assert any("Windows-1252" in w for w in table.warnings)


def test_utf16_unicode_text_is_tab_separated(tmp_path: Path) -> None:
    text = "Staff ID\tFull name\tE-mail\r\n11\t李 Wei\twei@example.com\r\n12\tZoë Brown\tzoe@example.com\r\n"
    table = one(write(tmp_path / "Staff.txt", text.encode("utf-16")))
    assert table.encoding == "utf-16"
    assert table.delimiter == "\t"
    assert rows(table) == [
        (2, ["11", "李 Wei", "wei@example.com"]),
        (3, ["12", "Zoë Brown", "zoe@example.com"]),
    ]


def test_utf16_big_endian_and_bomless_little_endian(tmp_path: Path) -> None:
    text = "Name\tCity\r\nJosé\tDarwin\r\n"
    big = one(write(tmp_path / "be.txt", b"\xfe\xff" + text.encode("utf-16-be")))
    assert rows(big) == [(2, ["José", "Darwin"])]
    bare = one(write(tmp_path / "le.tsv", text.encode("utf-16-le")))
    assert bare.encoding == "utf-16-le"
    assert rows(bare) == [(2, ["José", "Darwin"])]


def test_plain_utf8_pipe_delimiter(tmp_path: Path) -> None:
    table = one(write(tmp_path / "x.txt", "a|b|c\n1|2|3\nSøren|é|–\n".encode()))
    assert table.encoding == "utf-8"
    assert table.delimiter == "|"
    assert rows(table)[-1] == (3, ["Søren", "é", "–"])


def test_delimiters_inside_quotes_do_not_count(tmp_path: Path) -> None:
    lines = ["Name,Notes,Total"] + [f'N{i},"a;b;c;d;e;f",{i}' for i in range(10)]
    table = one(write(tmp_path / "q.csv", "\n".join(lines).encode()))
    assert table.delimiter == ","
    assert rows(table)[0] == (2, ["N0", "a;b;c;d;e;f", "0"])


def test_non_ascii_after_a_long_ascii_head_decides_the_encoding(tmp_path: Path) -> None:
    body = "".join(f"{i},Smith,plain text\r\n" for i in range(30_000))  # ~600 KB of ASCII
    data = ("ID,Name,Notes\r\n" + body + "30000,Renée,“late” – café\r\n").encode("cp1252")
    table = one(write(tmp_path / "late.csv", data))
    assert table.encoding == "cp1252"
    assert rows(table)[-1] == (30_002, ["30000", "Renée", "“late” – café"])


def test_text_formula_wrappers_are_unwrapped(tmp_path: Path) -> None:
    data = 'Job #,Postcode,Formula\n="00123","=""0800""",=SUM(A1:A2)\n'
    table = one(write(tmp_path / "hcp.csv", data.encode()))
    assert rows(table) == [(2, ["00123", "0800", "=SUM(A1:A2)"])]


def test_short_rows_padded_blank_rows_skipped_whitespace_is_none(tmp_path: Path) -> None:
    data = "a,b,c\n1\n\n ,\t, \n2,  ,x \n"
    table = one(write(tmp_path / "short.csv", data.encode()))
    assert rows(table) == [(2, ["1", None, None]), (5, ["2", None, "x "])]


def test_header_names_blank_and_duplicate(tmp_path: Path) -> None:
    data = " Phone , ,Phone,Mobile\n  No. ,x,y,z,\n"
    table = one(write(tmp_path / "h.csv", data.encode()))
    assert table.columns == ["Phone", "Column 2", "Phone (2)", "Mobile"]
    assert any("Column 2" in w for w in table.warnings)
    assert any("Phone (2)" in w for w in table.warnings)


def test_trailing_empty_column_is_fine(tmp_path: Path) -> None:
    table = one(write(tmp_path / "t.csv", b"a,b,\n1,2,\n3,4,\n"))
    assert table.columns == ["a", "b"]
    assert rows(table) == [(2, ["1", "2"]), (3, ["3", "4"])]


def test_ragged_row_names_file_row_and_column(tmp_path: Path) -> None:
    data = "Title row\n\nID,Name,City\n1,Ann,Perth\n2,Bob,Hobart,TAS\n"
    table = one(write(tmp_path / "ragged.csv", data.encode()))
    with pytest.raises(InputError) as info:
        rows(table)
    err = info.value
    assert err.file == "ragged.csv"
    assert err.row == 5
    assert err.column == "column 4 (no header)"
    assert "ragged.csv" in str(err)
    assert "row 5" in str(err)
    assert "column 4 (no header)" in str(err)


def test_iter_rows_can_be_called_again_and_streams(tmp_path: Path) -> None:
    data = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(1000))
    table = one(write(tmp_path / "s.csv", data.encode()))
    first = table.iter_rows()
    assert next(first) == (2, ["0", "n0"])
    assert len(rows(table)) == 1000
    assert next(first) == (3, ["1", "n1"])


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    table = one(write(tmp_path / "h.csv", b"Customer ID,Email\n"))
    assert table.columns == ["Customer ID", "Email"]
    assert rows(table) == []


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"  \r\n\r\n ", "empty"),
        ("numbers.csv", b"1,2,3\n4,5,6\n7,8,9\n", "no header row"),
        ("binary.csv", b"ID,Name\n1,\x00\x01\x02\x03\xff\n", "NUL"),
        ("workbook.csv", b"PK\x03\x04" + b"\x00" * 40, "zip"),
        ("old.csv", b"\xd0\xcf\x11\xe0" + b"\x00" * 40, ".xls"),
        ("notes.docx", b"whatever", "unsupported file type"),
        ("noext", b"a,b\n", "unsupported file type"),
    ],
)
def test_refusals_name_the_file(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(InputError) as info:
        rows(one(path))
    assert expected in str(info.value)
    assert info.value.file == name
    assert str(info.value).startswith(name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_tables(tmp_path / "gone.csv")


def test_nul_bytes_deep_in_the_file_name_the_row(tmp_path: Path) -> None:
    body = "".join(f"{i},Name {i}\n" for i in range(20_000))  # past the sniffing window
    data = ("ID,Name\n" + body).encode() + b"20000,\x00\x00\n"
    table = one(write(tmp_path / "late_nul.csv", data))
    with pytest.raises(InputError, match="NUL") as info:
        rows(table)
    assert info.value.row == 20_002


def test_undecodable_bytes_name_the_row(tmp_path: Path) -> None:
    body = "".join(f"{i},Zoë {i}\n" for i in range(20_000))  # UTF-8 evidence in the sniffing window
    data = ("ID,Name\n" + body).encode() + b"20000,Caf\xe9\n"
    table = one(write(tmp_path / "mixed.csv", data))
    assert table.encoding == "utf-8"
    with pytest.raises(InputError, match="not valid utf-8") as info:
        rows(table)
    assert info.value.row == 20_002
    assert info.value.file == "mixed.csv"


def test_supported_suffixes() -> None:
    assert frozenset({".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".json", ".jsonl", ".ndjson"}) == SUPPORTED_SUFFIXES


# --------------------------------------------------------------------------------------------- XLSX


def make_workbook(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    customers = workbook.active
    customers.title = "Customers"
    customers["A1"] = "OctopusPro export"
    customers["A2"] = "Exported 2025-03-14"
    customers.append([])
    customers.append(["ID", "When", "Day", "Amount", "Count", "Flag", "Clock", "Code", "Blank"])
    customers.append([1, datetime(2025, 3, 14, 9, 30), date(2025, 3, 14), 12.5, 45123.0, True, time(9, 30),
                      '="00123"', "   "])  # fmt: skip
    customers["H5"].data_type = "s"  # the text ="00123" as a string cell, not a formula
    customers.append([2, None, None, 1234.5678, 1e20, False, None, "Zoë", "=1+1"])  # formula, no cached value
    customers.append([])
    customers.append([3, None, None, -4.0, None, None, None, None, None])
    hidden = workbook.create_sheet("Secret")
    hidden.append(["a", "b"])
    hidden.append([1, 2])
    hidden.sheet_state = "hidden"
    workbook.create_sheet("Empty")
    offset = workbook.create_sheet("Offset")
    offset["C3"] = "Name"
    offset["D3"] = "Email"
    offset["C4"] = "José"
    offset["D4"] = "jose@example.com"
    offset["C5"] = "Ann"
    offset["E5"] = "stray"
    workbook.save(path)
    return path


def test_xlsx_sheets_title_rows_and_cell_normalisation(tmp_path: Path) -> None:
    tables = open_tables(make_workbook(tmp_path / "export.xlsx"))
    assert [t.name for t in tables] == ["Customers", "Offset"]
    customers = tables[0]
    assert customers.sheet == "Customers"
    assert customers.encoding is None
    assert customers.delimiter is None
    assert customers.header_row == 4
    assert customers.columns == ["ID", "When", "Day", "Amount", "Count", "Flag", "Clock", "Code", "Blank"]
    assert rows(customers) == [
        (5, ["1", "2025-03-14T09:30:00", "2025-03-14", "12.5", "45123", "TRUE", "09:30:00", "00123", None]),
        (6, ["2", None, None, "1234.5678", "100000000000000000000", "FALSE", None, "Zoë", None]),
        (8, ["3", None, None, "-4", None, None, None, None, None]),
    ]
    assert any("Secret" in w and "hidden" in w for w in customers.warnings)
    assert any("I6" in w and "formula" in w for w in customers.warnings)  # =1+1 has no saved value


def test_xlsx_overflow_reports_the_physical_column(tmp_path: Path) -> None:
    offset = open_tables(make_workbook(tmp_path / "export.xlsx"))[1]
    assert offset.header_row == 3
    assert offset.columns == ["Name", "Email"]
    with pytest.raises(InputError) as info:
        rows(offset)
    assert info.value.file == "export.xlsx [Offset]"
    assert info.value.row == 5
    assert info.value.column == "column 5 (no header)"


def test_xlsm_is_read_like_xlsx(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["Service", "Price"])
    workbook.active.append(["Lawn Mowing", 65])
    path = tmp_path / "macro.xlsm"
    workbook.save(path)
    assert rows(one(path)) == [(2, ["Lawn Mowing", "65"])]


@pytest.mark.parametrize(
    "data",
    [b"this is not a zip", b"PK\x03\x04garbage-that-is-not-a-real-zip", b""],
    ids=["text", "broken-zip", "empty"],
)
def test_corrupt_xlsx_is_refused_without_traceback(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "broken.xlsx", data)
    with pytest.raises(InputError) as info:
        open_tables(path)
    assert info.value.file == "broken.xlsx"
    assert "Traceback" not in str(info.value)


def test_truncated_xlsx_is_refused(tmp_path: Path) -> None:
    good = make_workbook(tmp_path / "good.xlsx").read_bytes()
    path = write(tmp_path / "cut.xlsx", good[: len(good) // 2])
    with pytest.raises(InputError, match=r"cut\.xlsx"):
        open_tables(path)


def test_workbook_without_any_table(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append([1, 2, 3])
    workbook.active.append([4, 5, 6])
    workbook.create_sheet("Nothing")
    path = tmp_path / "numbers.xlsx"
    workbook.save(path)
    with pytest.raises(InputError, match="no header row"):
        open_tables(path)
