"""Each transform type on the awkward inputs of reference §6: money, phones, e-mails, dates, markup, names, joins."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import phonenumbers
import pytest

from crmmigrator_gui.engine.mapping.transforms import (
    TransformError,
    aggregate_value,
    apply,
    convert,
    decompose_records,
    html_to_text,
    merge_groups,
    parse_money,
    recase,
    rtf_to_text,
    split_name,
    to_json_value,
)

# ---------------------------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("(12.00)", "-12.00"),
        ("-$5.00", "-5.00"),
        ("AUD 129,00", "129.00"),
        ("$38.00/hr", "38.00"),
        ("5.00-", "-5.00"),
        ("12.50 CR", "-12.50"),
        ("1 234,50", "1234.50"),
        ("1.234.567", "1234567"),
        ("12,345", "12345"),
        ("€ 0,5", "0.5"),
    ],
)
def test_money_formats_become_exact_decimals(text, expected):
    value = apply({"type": "money"}, text)
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert str(value) == expected  # exact: no float ever touched it


@pytest.mark.parametrize("text", ["TBA", "10 - 20", "1,2345", "12 50"])
def test_money_refuses_what_is_not_one_amount(text):
    with pytest.raises(TransformError, match=r"amount|more than one number"):
        parse_money(text)


def test_money_in_cents_and_declared_separator():
    assert apply({"type": "money", "cents": True}, "123450") == Decimal("1234.50")
    assert apply({"type": "money", "cents": True}, "-5") == Decimal("-0.05")
    with pytest.raises(TransformError, match="whole number of cents"):
        apply({"type": "money", "cents": True}, "12.5")
    assert apply({"type": "decimal"}, "1.234") == Decimal("1.234")  # auto: a lone dot is a decimal mark
    assert apply({"type": "decimal", "decimal_separator": ","}, "1.234") == Decimal("1234")
    assert apply({"type": "money", "decimal_separator": "."}, "1,234") == Decimal("1234")


def test_integer_refuses_fractions_instead_of_cutting_them():
    assert apply({"type": "integer"}, "1,200") == 1200
    assert apply({"type": "integer"}, "45.0") == 45
    with pytest.raises(TransformError, match="whole number"):
        apply({"type": "integer"}, "1.5")


# ---------------------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("(555) 123-4567", "US", "+15551234567"),
        ("555.123.4567", "US", "+15551234567"),
        ("+1 555 123 4567 x206", "US", "+15551234567;ext=206"),
        ("0412 345 678", "AU", "+61412345678"),
        ("(02) 9123 4567", "AU", "+61291234567"),
        ("61412345678", "AU", "+61412345678"),  # Excel ate the +
        ("61412345678.0", "AU", "+61412345678"),  # …and made it a float
        ("+44 20 7946 0958", "AU", "+442079460958"),  # a country code beats the default region
    ],
)
def test_phone_to_e164_with_default_region(text, region, expected):
    assert apply({"type": "phone", "region": region}, text) == expected


def test_phone_output_reads_back_the_same():
    """The chosen extension form is RFC 3966: phonenumbers (and a second run of the transform) reads it back."""
    once = apply({"type": "phone", "region": "US"}, "+1 555 123 4567 x206")
    assert apply({"type": "phone", "region": "US"}, once) == once
    number = phonenumbers.parse(once, None)
    assert number.extension == "206"
    assert apply({"type": "phone", "region": "US", "extension": "drop"}, "+1 555 123 4567 x206") == "+15551234567"


@pytest.mark.parametrize(
    "cell", ["0412 345 678, 0498 765 432", "0412 345 678; 0498 765 432", "0412 345 678 / 0498 765 432",
             "0412 345 678 or 0498 765 432"]
)  # fmt: skip
def test_several_phones_in_a_cell_keep_the_first_and_report_the_rest(cell):
    result = convert({"type": "phone", "region": "AU"}, cell)
    assert result.value == "+61412345678"
    assert len(result.notes) == 1
    assert "0498 765 432" in result.notes[0]


def test_not_a_phone_is_kept_failed_or_emptied_as_declared():
    kept = convert({"type": "phone", "region": "AU"}, "call  the office")
    assert kept.value == "call the office"
    assert "not a phone number for region AU" in kept.notes[0]
    with pytest.raises(TransformError, match="not a phone number"):
        apply({"type": "phone", "region": "AU", "invalid": "fail"}, "call the office")
    emptied = convert({"type": "phone", "region": "AU", "invalid": "empty"}, "12")
    assert emptied.value is None
    assert "left empty" in emptied.notes[0]
    no_region = convert({"type": "phone"}, "0412 345 678")
    assert no_region.value == "0412 345 678"
    assert "no default region" in no_region.notes[0]


# ---------------------------------------------------------------------------------------------- e-mail


def test_email_is_validated_normalised_and_first_of_several():
    result = convert({"type": "email"}, " Zoe@Example.COM ; other@x.com")
    assert result.value == "zoe@example.com"
    assert "other@x.com" in result.notes[0]
    assert apply({"type": "email"}, "Zoe Lee <Zoe@Example.com>") == "zoe@example.com"
    assert apply({"type": "email"}, "mailto:a@b.com.au") == "a@b.com.au"


@pytest.mark.parametrize("text", ["see notes", "zoe@localhost", "zoe@@example.com", "zoe@example..com", "a@b"])
def test_invalid_email_fails_with_the_reason(text):
    with pytest.raises(TransformError, match="is not an e-mail address"):
        apply({"type": "email"}, text)


def test_invalid_email_can_be_kept_or_emptied():
    assert apply({"type": "email", "invalid": "keep"}, "see  notes") == "see notes"
    assert apply({"type": "email", "invalid": "empty"}, "see notes") is None


# ---------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Australia/Sydney", "UTC", "America/Los_Angeles", "Pacific/Niue"])
@pytest.mark.parametrize("kind", ["date", "datetime"])
def test_date_only_never_shifts_a_day_in_any_zone(tz, kind):
    spec = {"type": kind, "format": "DD/MM/YYYY", "tz": tz}
    value = apply(spec, "14/03/2025")
    assert value == date(2025, 3, 14)
    assert not isinstance(value, datetime)
    assert to_json_value(value, "DateOnly") == "2025-03-14"
    assert to_json_value(value, "DateTime") == "2025-03-14T12:00:00Z"  # noon UTC: the 14th from UTC-11 to UTC+14…
    assert apply(spec, "45730") == date(2025, 3, 14)  # an Excel serial in the same column


def test_day_month_order_is_the_declared_one():
    assert apply({"type": "date", "format": "DD/MM/YYYY"}, "03/04/2025") == date(2025, 4, 3)
    assert apply({"type": "date", "format": "MM/DD/YYYY"}, "03/04/2025") == date(2025, 3, 4)
    with pytest.raises(TransformError, match="no month 14"):
        apply({"type": "date", "format": "MM/DD/YYYY"}, "14/03/2025")


def test_datetime_local_time_becomes_utc_and_an_instant_in_a_date_column_keeps_its_local_day():
    spec = {"type": "datetime", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}
    value = apply(spec, "14/03/2025 09:30")
    assert value == datetime(2025, 3, 13, 22, 30, tzinfo=UTC)
    assert to_json_value(value) == "2025-03-13T22:30:00Z"
    # 22:30Z on the 13th is 09:30 on the 14th in Sydney: the day the job happened there
    assert apply({"type": "date", "tz": "Australia/Sydney"}, "2025-03-13T22:30:00Z") == date(2025, 3, 14)
    assert apply({"type": "date", "tz": "UTC"}, "2025-03-13T22:30:00Z") == date(2025, 3, 13)


def test_placeholders_mean_no_value_only_in_typed_columns():
    for kind in ("date", "email", "money", "phone", "integer"):
        assert apply({"type": kind, "region": "AU"} if kind == "phone" else {"type": kind}, " N/A ") is None
    assert apply({"type": "text"}, "N/A") == "N/A"
    with pytest.raises(TransformError):
        apply({"type": "date", "format": "DD/MM/YYYY"}, "TBC")


# ---------------------------------------------------------------------------------------------- markup


def test_html_to_text_keeps_line_breaks_and_decodes_entities():
    assert html_to_text("<p>a</p><br>&amp;") == "a\n\n&"
    assert html_to_text("<div>Gate <b>1234</b></div>\n<div>Dog&nbsp;friendly&#8212;ring</div>") == (
        "Gate 1234\nDog friendly—ring"
    )
    assert html_to_text("<ul><li>one</li><li>two &lt;3</li></ul><script>alert(1)</script>") == "- one\n- two <3"
    assert html_to_text("<p>Line 1<br/>Line 2</p>\n\n<p>Para 2</p>") == "Line 1\nLine 2\nPara 2"
    assert html_to_text("plain text\nwith a break & an ampersand") == "plain text\nwith a break & an ampersand"
    assert apply({"type": "html_to_text"}, "<p>a</p><br>&amp;") == "a\n\n&"


RTF = (
    r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fnil\fcharset0 Arial;}}{\colortbl ;\red255\green0\blue0;}"
    r"{\*\generator Riched20 10.0;}\viewkind4\uc1\pard\f0\fs20 Gate code 1234\par"
    "\r\n"
    r"Dog: \b friendly\b0\line Caf\'e9 \u8212? \{ok\}\par}"
)


def test_rtf_to_text_strips_control_words_and_keeps_paragraphs():
    assert rtf_to_text(RTF) == "Gate code 1234\nDog: friendly\nCafé — {ok}"
    assert apply({"type": "rtf_to_text"}, RTF).startswith("Gate code 1234\n")
    assert rtf_to_text("not rtf {at all}") == "not rtf {at all}"


# ---------------------------------------------------------------------------------------------- names and case


@pytest.mark.parametrize(
    ("name", "title", "first", "middle", "last", "suffix", "flagged"),
    [
        ("Smith, John", "", "John", "", "Smith", "", False),
        ("Mr John Smith", "Mr", "John", "", "Smith", "", False),
        ("John & Jane Smith", "", "John & Jane", "", "Smith", "", True),
        ("Mrs Olivia", "Mrs", "Olivia", "", "Olivia", "", False),  # a title inside a first-name column
        ("Dr. Jane Maria van der Berg PhD", "Dr.", "Jane", "Maria", "van der Berg", "PhD", False),
        ("John Smith, Jr.", "", "John", "", "Smith", "Jr.", False),
        ("Mr & Mrs Smith", "Mr & Mrs", "", "", "Smith", "", True),
        ("ABC Plumbing Pty Ltd", "", "", "", "ABC Plumbing Pty Ltd", "", True),
        ("  JOHN\tSMITH  ", "", "JOHN", "", "SMITH", "", False),
    ],
)
def test_name_split(name, title, first, middle, last, suffix, flagged):
    parts, flags = split_name(name)
    assert parts == {"title": title, "first": first, "middle": middle, "last": last, "suffix": suffix}
    assert bool(flags) is flagged
    result = convert({"type": "name_split", "part": "last"}, name)
    assert result.value == (last or None)
    assert bool(result.notes) is flagged


def test_case_modes_and_case_as_a_parameter():
    assert recase("O'BRIEN-MCDONALD, LUDWIG VAN BEETHOVEN", "title") == "O'Brien-McDonald, Ludwig van Beethoven"
    assert recase("van dyke", "title") == "Van Dyke"  # a particle that starts the text is capitalised
    assert recase("GATE IS LOCKED. RING FIRST!  then wait", "sentence") == "Gate is locked. Ring first!  Then wait"
    assert apply({"type": "case", "case": "upper"}, "  nsw ") == "NSW"
    assert apply({"type": "name_split", "part": "first", "case": "title"}, "SMITH, JOHN") == "John"
    assert apply({"type": "trim", "collapse": False}, "  a  b \n") == "a  b"
    assert apply({"type": "trim"}, "  a  b \n") == "a b"


# ---------------------------------------------------------------------------------------------- joins, defaults

ROW = {"Gate Code": "1234", "Dog": "", "Notes": " ring twice ", "Mobile No.": "0412 345 678"}


def test_join_template_drops_lines_whose_columns_are_empty():
    spec = {"type": "join", "template": "Gate: {Gate Code}\\nDog: {Dog}\nNotes: {Notes} (call {Mobile No.})"}
    assert apply(spec, None, row=ROW) == "Gate: 1234\nNotes: ring twice (call 0412 345 678)"
    assert apply(spec, None, row={"Gate Code": "", "Dog": None, "Notes": "", "Mobile No.": ""}) is None


def test_join_columns_with_separator_or_labels():
    assert apply({"type": "join", "columns": ["Gate Code", "Dog", "Notes"], "separator": " | "}, None, row=ROW) == (
        "1234 | ring twice"
    )
    assert apply({"type": "concat", "columns": ["Gate Code", "Notes"], "labels": True}, None, row=ROW) == (
        "Gate Code: 1234\nNotes: ring twice"
    )


def test_join_needs_the_row_and_names_a_missing_column():
    with pytest.raises(TransformError, match="needs the whole source row"):
        apply({"type": "join", "columns": ["Gate Code"]}, "1234")
    with pytest.raises(TransformError, match="no column 'Gate'"):
        apply({"type": "join", "columns": ["Gate"]}, None, row=ROW)


def test_constant_and_default():
    assert apply({"type": "constant", "value": "OctopusPro import"}, None) == "OctopusPro import"
    assert apply({"type": "constant", "value": 3}, "anything") == 3
    assert apply({"type": "text", "default": "Unknown"}, "  ") == "Unknown"
    assert apply({"type": "text", "default": "Unknown"}, "Known") == "Known"
    assert apply({"type": "money", "default": "0.00"}, "N/A") == Decimal("0.00")
    assert apply({"type": "date", "format": "DD/MM/YYYY", "default": "01/01/2020"}, "") == date(2020, 1, 1)
    assert apply({"type": "join", "columns": ["Dog"], "default": "no dog noted"}, None, row=ROW) == "no dog noted"


# ---------------------------------------------------------------------------------------------- decompose / merge

DECOMPOSE = {
    "type": "decompose",
    "object": "customers",
    "key_prefix": "OCTO",
    "id_columns": ["Customer ID"],
    "roles": {"status": "Status"},
    "parts": [
        {"part": "account", "entity": "account"},
        {
            "part": "contact",
            "entity": "contact",
            "skip_when": [{"role": "status", "in": ["Deleted"], "reason": "gone"}],
        },
    ],
}


def test_decompose_lists_the_records_of_a_row_with_their_keys():
    records = decompose_records(DECOMPOSE, {"Customer ID": "1001", "Status": "Active"})
    assert [(r["part"], r["key"], r["skipped"]) for r in records] == [
        ("account", "OCTO-customers-1001-account", None),
        ("contact", "OCTO-customers-1001-contact", None),
    ]
    records = decompose_records(DECOMPOSE, {"Customer ID": "a/b", "Status": "deleted"})
    assert records[0]["key"].startswith("OCTO-customers-a_b_")  # the playbook's safe-key rule
    assert records[1]["skipped"] == "gone"
    with pytest.raises(TransformError, match="no source id"):
        decompose_records(DECOMPOSE, {"Customer ID": " "})


def test_merge_groups_rows_and_aggregates_like_the_loader():
    spec = {
        "type": "merge",
        "object": "form_responses",
        "part": "note",
        "key_prefix": "OCTO",
        "group_by": ["booking", "form"],
        "roles": {"booking": "Booking ID", "form": "Form", "question": "Question", "answer": "Answer"},
        "aggregate": {
            "notetext": {"line": "{question}: {answer}"},
            "subject": {"pick": "form"},
            "hazards": {"line": "{answer}", "when": {"question": ["hazards"]}},
        },
    }
    rows = [
        {"Booking ID": "7", "Form": "Safety", "Question": "Hazards", "Answer": "Dog"},
        {"Booking ID": "8", "Form": "Safety", "Question": "Hazards", "Answer": "None"},
        {"Booking ID": "7", "Form": "Safety", "Question": "PPE", "Answer": "Yes"},
    ]
    groups = merge_groups(spec, rows)
    assert [(g["group"], g["members"]) for g in groups] == [("7~Safety", 2), ("8~Safety", 1)]
    assert groups[0]["columns"] == {"notetext": "Hazards: Dog\nPPE: Yes", "subject": "Safety", "hazards": "Dog"}
    assert merge_groups(spec, rows, limit=1)[0]["members"] == 2  # a limit counts groups, never cuts one
    assert aggregate_value({"pick": "answer"}, [{"answer": ""}, {"answer": "x"}]) == "x"
    assert aggregate_value({"pick": "answer"}, [{"answer": ""}]) is None
