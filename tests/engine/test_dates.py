"""Date parsing, format inference, Excel serials and the move to UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from crmmigrator_gui.engine.source.dates import (
    DATE_FORMATS,
    excel_serial_to_date,
    infer_date_format,
    parse_date,
    parse_time,
    to_utc,
)


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("14/03/2025", "DD/MM/YYYY", date(2025, 3, 14)),
        ("4/3/2025", "DD/MM/YYYY", date(2025, 3, 4)),
        ("03/04/2025", "MM/DD/YYYY", date(2025, 3, 4)),
        ("2025/03/14", "YYYY/MM/DD", date(2025, 3, 14)),
        ("2025-03-14", "YYYY-MM-DD", date(2025, 3, 14)),
        ("14.03.2025", "DD.MM.YYYY", date(2025, 3, 14)),
        ("14/03/25", "DD/MM/YY", date(2025, 3, 14)),
        ("20250314", "YYYYMMDD", date(2025, 3, 14)),
        ("14 Mar 2025", "D MMM YYYY", date(2025, 3, 14)),
        ("March 14, 2025", "MMM D, YYYY", date(2025, 3, 14)),
        ("14/03/2025 09:30", "DD/MM/YYYY", datetime(2025, 3, 14, 9, 30)),
        ("14/03/2025 9:30 AM", "DD/MM/YYYY", datetime(2025, 3, 14, 9, 30)),
        ("14/03/2025 9:30 pm", "DD/MM/YYYY", datetime(2025, 3, 14, 21, 30)),
        ("14/03/2025 12:05 AM", "DD/MM/YYYY", datetime(2025, 3, 14, 0, 5)),
        ("03/14/2025 5:07:09 PM", "MM/DD/YYYY", datetime(2025, 3, 14, 17, 7, 9)),
    ],
)
def test_declared_formats(text: str, fmt: str, expected: date) -> None:
    result = parse_date(text, fmt)
    assert result == expected
    assert type(result) is type(expected)


def test_serials_and_text_mix_under_one_format() -> None:
    column = ["45730", "15/03/2025", "45732.5", "2025-03-17", "2025-03-18T08:15:00"]
    assert [parse_date(v, "DD/MM/YYYY") for v in column] == [
        date(2025, 3, 14),
        date(2025, 3, 15),
        datetime(2025, 3, 16, 12, 0),
        date(2025, 3, 17),
        datetime(2025, 3, 18, 8, 15),
    ]


def test_unambiguous_forms_are_accepted_whatever_the_declared_format() -> None:
    assert parse_date("2025/03/14", "MM/DD/YYYY") == date(2025, 3, 14)
    assert parse_date("14 March 2025", "DD/MM/YYYY") == date(2025, 3, 14)
    assert parse_date("2024-03-05T14:22:11.000+0000", "DD/MM/YYYY") == datetime(
        2024, 3, 5, 14, 22, 11, tzinfo=UTC
    )
    assert parse_date("2025-03-14T09:30:00Z").tzinfo == UTC


def test_day_and_month_are_never_swapped_silently() -> None:
    with pytest.raises(ValueError, match="no month 14"):
        parse_date("14/03/2025", "MM/DD/YYYY")
    with pytest.raises(ValueError, match="year first"):
        parse_date("14/03/2025", "YYYY/MM/DD")


def test_without_a_format_ambiguous_dates_are_day_first() -> None:
    assert parse_date("03/04/2025") == date(2025, 4, 3)  # Australian default
    assert parse_date("03/14/2025") == date(2025, 3, 14)  # only one reading is possible


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("", None, "empty"),
        ("   ", "DD/MM/YYYY", "empty"),
        ("31/02/2025", "DD/MM/YYYY", "not a valid date"),
        ("N/A", "DD/MM/YYYY", "not a date in the format DD/MM/YYYY"),
        ("soon", None, "not a date"),
        ("14/03/2025 25:00", "DD/MM/YYYY", "time part"),
        ("0", "DD/MM/YYYY", "not an Excel date serial"),
        ("3000000", None, "not an Excel date serial"),
        ("14/03/2025", "DD-MM-YY-ish", "unknown date format"),
    ],
)
def test_errors_are_clear(text: str, fmt: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_date(text, fmt)


def test_excel_serials_and_the_1900_leap_year_bug() -> None:
    assert excel_serial_to_date(1) == date(1900, 1, 1)
    assert excel_serial_to_date(59) == date(1900, 2, 28)
    with pytest.raises(ValueError, match="29 February 1900"):
        excel_serial_to_date(60)
    assert excel_serial_to_date(61) == date(1900, 3, 1)
    assert excel_serial_to_date(45123) == date(2023, 7, 16)
    assert excel_serial_to_date(45730) == date(2025, 3, 14)
    assert excel_serial_to_date(45730.375) == datetime(2025, 3, 14, 9, 0)
    assert excel_serial_to_date(45730.99999999) == datetime(2025, 3, 14) + timedelta(seconds=86400)
    assert excel_serial_to_date(2958465) == date(9999, 12, 31)
    for bad in (0, -1, 2958466, float("nan")):
        with pytest.raises(ValueError, match="serial"):
            excel_serial_to_date(bad)


def test_parse_time() -> None:
    assert parse_time("9:30 AM").isoformat() == "09:30:00"
    assert parse_time("12:00 pm").isoformat() == "12:00:00"
    assert parse_time("17:05:12").isoformat() == "17:05:12"
    assert parse_time("9 am").isoformat() == "09:00:00"
    for bad in ("13:00 PM", "9", "later", "24:00"):
        with pytest.raises(ValueError, match="time"):
            parse_time(bad)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["14/03/2025", "01/02/2025", "28/12/2024"], "DD/MM/YYYY"),
        (["03/14/2025", "01/02/2025"], "MM/DD/YYYY"),
        (["01/02/2025", "03/04/2025", "05/06/2025"], "DD/MM/YYYY"),  # ambiguous: day-first
        (["14/03/2025", "45123", "45124", "", None], "DD/MM/YYYY"),
        (["2025/03/14", "2024/12/01"], "YYYY/MM/DD"),
        (["2025-03-14", "2024-12-01"], "YYYY-MM-DD"),
        (["2025-03-14", "2025-03-14T09:30:00"], "ISO"),
        (["14-03-2025", "15-03-2025"], "DD-MM-YYYY"),
        (["14.03.2025"], "DD.MM.YYYY"),
        (["14/03/25", "15/03/25"], "DD/MM/YY"),
        (["14 Mar 2025", "1 April 2024"], "D MMM YYYY"),
        (["45123", "45124", "45730"], "EXCEL_SERIAL"),
        (["1001", "1002", "1003"], None),  # ids, not 1902
        (["Completed", "14/03/2025"], None),
        (["hello"], None),
        ([], None),
        ([None, ""], None),
    ],
)
def test_infer_date_format(values: list[str], expected: str | None) -> None:
    assert infer_date_format(values) == expected


def test_infer_tolerates_a_few_bad_values_but_not_many() -> None:
    good = [f"{d:02d}/03/2025" for d in range(13, 31)]
    assert infer_date_format([*good, "N/A"]) == "DD/MM/YYYY"
    assert infer_date_format([*good[:5], "N/A", "TBC"]) is None


def test_inferred_formats_are_known_tokens() -> None:
    for token in ("DD/MM/YYYY", "MM/DD/YYYY", "YYYY/MM/DD", "YYYY-MM-DD", "DD/MM/YY", "D MMM YYYY"):
        assert token in DATE_FORMATS


@pytest.mark.parametrize(
    "tz", ["UTC", "Australia/Sydney", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Darwin"]
)
def test_date_only_values_never_shift_a_day(tz: str) -> None:
    assert to_utc(date(2025, 3, 14), tz) == date(2025, 3, 14)
    parsed = parse_date("2025-03-14")  # what the reader writes for a date-only Excel cell
    result = to_utc(parsed, tz)
    assert result == date(2025, 3, 14)
    assert not isinstance(result, datetime)


def test_naive_datetimes_are_localised_then_converted() -> None:
    summer = to_utc(datetime(2025, 1, 14, 9, 30), "Australia/Sydney")  # AEDT, +11
    winter = to_utc(datetime(2025, 7, 14, 9, 30), "Australia/Sydney")  # AEST, +10
    assert summer == datetime(2025, 1, 13, 22, 30, tzinfo=UTC)
    assert winter == datetime(2025, 7, 13, 23, 30, tzinfo=UTC)
    assert summer.tzinfo == UTC
    darwin = to_utc(parse_date("14/03/2025 9:30 AM", "DD/MM/YYYY"), "Australia/Darwin")  # +9:30, no DST
    assert darwin == datetime(2025, 3, 14, 0, 0, tzinfo=UTC)


def test_aware_datetimes_are_converted_not_relocalised() -> None:
    aware = datetime(2025, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=10)))
    assert to_utc(aware, "America/New_York") == datetime(2025, 3, 13, 23, 30, tzinfo=UTC)


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        to_utc(datetime(2025, 3, 14, 9, 30), "Mars/Olympus_Mons")
