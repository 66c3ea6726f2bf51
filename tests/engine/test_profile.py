"""Column profiling: type inference, counts and bounded bookkeeping."""

from __future__ import annotations

import pytest

from crmmigrator_gui.engine.source.profile import FieldProfile, profile_columns


def profile(values: list[str | None], name: str = "col") -> FieldProfile:
    return profile_columns([name], [[v] for v in values])[0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1001", "1002", "87557342", "-5", "0"], "integer"),
        (["12.5", "3", "0.25", "-1.75"], "decimal"),
        (["$1,234.50", "$12.00", "(12.00)", "-$5.00", "$0.99"], "money"),
        (["1.234,50", "12,00", "99,95"], "money"),
        (["AUD 120.00", "15.50 AUD", "A$30.00"], "money"),
        (["12.50", "99.00", "5.00", "7.25"], "money"),
        (["TRUE", "FALSE", "TRUE"], "boolean"),
        (["Yes", "No", "yes", "N"], "boolean"),
        (["0", "1", "1", "0"], "boolean"),
        (["14/03/2025", "01/02/2025", "28/12/2024"], "date"),
        (["2025-03-14T09:30:00", "2025-03-15T10:00:00"], "datetime"),
        (["14/03/2025 9:30 AM", "15/03/2025 10:00 AM"], "datetime"),
        (["ann@example.com", "BOB@Example.COM.AU", "a@b.co; c@d.com"], "email"),
        (["0412 345 678", "(02) 9876 5432", "+61 412 345 678", "0412345678", "555.123.4567 x206"], "phone"),
        (["https://example.com", "www.octopuspro.com/help"], "url"),
        (["0800", "2000", "3000", "0870"], "postcode"),
        (["02108", "90210-1234", "10001"], "postcode"),
        (["Completed", "Cancelled", "En Route"], "text"),
        (["INV-10001", "INV-10002", "TXN603823"], "text"),
        (["x" * 300, "short"], "longtext"),
        ([None, None, ""], "empty"),
    ],
)
def test_inferred_types(values: list[str | None], expected: str) -> None:
    assert profile(values).inferred_type == expected


def test_ninety_percent_rule() -> None:
    assert profile([str(i) for i in range(1, 10)] + ["N/A"]).inferred_type == "integer"
    assert profile([str(i) for i in range(1, 9)] + ["N/A", "TBC"]).inferred_type == "text"


def test_integer_columns_are_not_dates_and_fractions_make_decimals() -> None:
    assert profile(["45123", "45124", "45125"]).inferred_type == "integer"  # ids, even in the serial range
    assert profile(["129", "249", "189.5", "65", "110"]).inferred_type == "decimal"


def test_serial_and_text_date_mix_is_a_date_column() -> None:
    result = profile(["45730", "15/03/2025", "45732", "17/03/2025", None])
    assert result.inferred_type == "date"
    assert result.date_format == "DD/MM/YYYY"


def test_date_formats_reported() -> None:
    assert profile(["2025/03/14", "2024/01/02"]).date_format == "YYYY/MM/DD"
    assert profile(["03/14/2025", "12/25/2024"]).date_format == "MM/DD/YYYY"
    assert profile(["2025-03-14T09:30:00"]).date_format == "ISO"
    assert profile(["12"]).date_format is None


def test_counts_fill_distinct_samples_and_top_values() -> None:
    values = (
        ["Completed"] * 6 + ["Cancelled"] * 3 + ["Canceled", None, None, "Pending", "En Route", "Enroute"]
    )
    result = profile(values, "Status")
    assert result.name == "Status"
    assert result.count == 15
    assert result.filled == 13
    assert result.fill_rate == pytest.approx(13 / 15)
    assert result.distinct == 6
    assert result.max_length == len("Completed")
    assert result.samples == ["Completed", "Cancelled", "Canceled", "Pending", "En Route"]
    assert result.top_values[:2] == [("Completed", 6), ("Cancelled", 3)]
    assert len(result.top_values) == 6
    assert result.distinct_exact


def test_several_columns_and_ragged_rows() -> None:
    rows = [["1", "a@b.com", "x"], ["2", None], ["3", "c@d.com", "y", "extra"]]
    ids, emails, third = profile_columns(["ID", "Email", "Third"], rows)
    assert (ids.inferred_type, emails.inferred_type, third.inferred_type) == ("integer", "email", "text")
    assert emails.filled == 2
    assert third.filled == 2


def test_sample_limit() -> None:
    result = profile_columns(["n"], ([str(i)] for i in range(1000)), sample_limit=100)[0]
    assert result.count == 100
    assert result.distinct == 100


def test_no_rows() -> None:
    result = profile_columns(["a", "b"], [])
    assert [(p.name, p.count, p.fill_rate, p.inferred_type) for p in result] == [
        ("a", 0, 0.0, "empty"),
        ("b", 0, 0.0, "empty"),
    ]


def test_high_cardinality_columns_stay_bounded_and_sensible() -> None:
    rows = ([f"user{i}@example.com", "N/A" if i % 50 == 0 else f"{i}.{i % 100:02d}"] for i in range(30_000))
    emails, amounts = profile_columns(["Email", "Amount"], rows)
    assert emails.inferred_type == "email"
    assert emails.distinct == 30_000
    assert emails.distinct_exact
    assert len(emails.samples) == 5
    assert amounts.inferred_type == "money"
    assert amounts.top_values[0][0] == "N/A"  # estimated from the sample once the counter is dropped
    assert amounts.top_values[0][1] == pytest.approx(600, rel=0.2)
