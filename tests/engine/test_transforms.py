"""Transforms: money as Decimal, dates that never shift, booleans and times."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crmmigrator_gui.engine.mapping.transforms import TransformError, apply, parse_money, to_json_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("(12.00)", "-12.00"),
        ("-$5.00", "-5.00"),
        ("AUD 99", "99"),
        ("0.1", "0.1"),
    ],
)
def test_money_is_exact_decimal(text, expected):
    assert parse_money(text) == Decimal(expected)


def test_money_rejects_words():
    with pytest.raises(TransformError):
        parse_money("n/a")


def test_date_only_stays_a_date_with_declared_format_and_serials():
    spec = {"type": "date", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}
    assert apply(spec, "14/03/2025") == date(2025, 3, 14)
    assert apply(spec, "45730") == date(2025, 3, 14)  # Excel serial in the same column
    assert to_json_value(apply(spec, "01/01/2025"), "DateOnly") == "2025-01-01"


def test_datetime_becomes_utc_with_offset():
    spec = {"type": "datetime", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}
    value = apply(spec, "14/03/2025 09:30")
    assert to_json_value(value, "DateTime") == "2025-03-13T22:30:00Z"


def test_email_phone_bool_time():
    assert apply({"type": "email"}, " Zoe@Example.COM ; other@x.com") == "zoe@example.com"
    with pytest.raises(TransformError):
        apply({"type": "email"}, "not an email")
    assert apply({"type": "boolean"}, "Yes") is True
    assert apply({"type": "time"}, "9:05 pm") == "21:05"
    assert apply({"type": "text"}, "  ") is None


def test_placeholders_in_typed_columns_mean_no_value():
    assert apply({"type": "date", "format": "DD/MM/YYYY"}, "N/A") is None
    assert apply({"type": "email"}, "n/a") is None
    assert apply({"type": "money"}, "-") is None
    assert apply({"type": "text"}, "N/A") == "N/A"  # free text keeps what people wrote
    with pytest.raises(TransformError):
        apply({"type": "date", "format": "DD/MM/YYYY"}, "TBC")
