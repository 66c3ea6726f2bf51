"""Transform specs: validation naming the bad parameter, the catalog that drives the editor, and the preview."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.mapping.transforms import CATALOG, bind, preview, validate

PARAM_KINDS = {"text", "choice", "bool", "column", "columns", "tz", "region", "format", "json"}


def test_catalog_describes_every_type_for_the_editor():
    types = [entry["type"] for entry in CATALOG]
    assert len(types) == len(set(types))
    for wanted in ("trim", "case", "name_split", "join", "phone", "email", "money", "date", "datetime",
                   "html_to_text", "rtf_to_text", "constant", "lookup", "decompose", "merge"):  # fmt: skip
        assert wanted in types
    for entry in CATALOG:
        assert entry["label"], entry["type"]
        assert entry["help"], entry["type"]
        for param in entry["params"]:
            assert set(param) >= {"name", "label", "kind", "choices", "default"}, param
            assert param["kind"] in PARAM_KINDS, param
            assert (param["kind"] in ("choice", "format")) == bool(param["choices"]), param
            if param["default"] is not None and param["kind"] != "json":  # defaults are themselves valid
                validate({"type": entry["type"], **_required(entry), param["name"]: param["default"]})
    assert {e["type"] for e in CATALOG if not e["editable"]} == {"decompose", "merge"}


_FILL = {
    "case": "upper",
    "part": "first",
    "value": "x",
    "object": "o",
    "id_columns": ["Id"],
    "parts": [{"part": "a"}],
    "group_by": ["g"],
    "roles": {"g": "G"},
    "aggregate": {"c": {"pick": "g"}},
}


def _required(entry):
    """The smallest valid spec of a type: its required parameters (a join needs columns or a template)."""
    filled = {p["name"]: _FILL[p["name"]] for p in entry["params"] if p["required"]}
    return {**filled, "columns": ["A"]} if entry["type"] == "join" else filled


@pytest.mark.parametrize(
    ("spec", "normal"),
    [
        ({"type": "phone", "region": "au"}, {"type": "phone", "region": "AU"}),
        ({"type": "concat", "columns": "Gate Code, Notes"}, {"type": "join", "columns": ["Gate Code", "Notes"]}),
        ({"type": "longtext"}, {"type": "memo"}),
        ({"type": "text", "case": "UPPER", "default": ""}, {"type": "text", "case": "upper"}),
        ({}, {"type": "text"}),  # an unmapped row's empty spec
        ({"type": "integer", "custom_type": "Integer"}, {"type": "integer", "custom_type": "Integer"}),
        ({"type": "lookup", "to": "customers.account"}, {"type": "lookup", "to": "customers.account"}),
        (
            {"tz": "Australia/Sydney", "format": "DD/MM/YYYY", "type": "datetime"},
            {"type": "datetime", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"},
        ),
    ],
)
def test_validate_normalises(spec, normal):
    checked = validate(spec)
    assert checked == normal
    assert list(checked) == list(normal)  # a stable key order keeps the map fingerprint stable
    assert validate(json.loads(json.dumps(checked))) == checked  # serialisable and a fixed point


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("phone", "JSON object"),
        ({"type": "soundex"}, "unknown transform type 'soundex'"),
        ({"type": "phone", "regoin": "AU"}, "unknown parameter 'regoin'"),
        ({"type": "phone", "region": "XX"}, "region 'XX' is not a region code"),
        ({"type": "phone", "invalid": "ignore"}, "invalid 'ignore' is not one of keep, fail, empty"),
        ({"type": "date", "tz": "Sydney"}, "tz 'Sydney' is not a time zone"),
        ({"type": "date", "format": "DD/MM/YYY"}, "format 'DD/MM/YYY' is not a known date format"),
        ({"type": "money", "cents": "yes"}, "cents must be true or false"),
        ({"type": "name_split"}, "part is required"),
        ({"type": "case"}, "case is required"),
        ({"type": "constant"}, "value is required"),
        ({"type": "join"}, "columns (or a template"),
        ({"type": "join", "template": "no placeholders"}, "template has no {Column} placeholder"),
        ({"type": "join", "columns": ["A", ""]}, "columns must be a list of column names"),
        ({"type": "date", "format": "DD/MM/YYYY", "default": "TBC"}, "default 'TBC' does not fit"),
        ({"type": "email", "default": "nobody"}, "default 'nobody' does not fit"),
        (
            {
                "type": "merge",
                "object": "f",
                "part": "n",
                "group_by": ["b"],
                "roles": {"b": "B"},
                "aggregate": {"notetext": {"line": "{question}"}},
            },
            "aggregate notetext: unknown role 'question'",
        ),
        (
            {
                "type": "decompose",
                "object": "c",
                "id_columns": ["Id"],
                "parts": [{"part": "a", "skip_when": [{"role": "status", "in": ["x"]}]}],
            },
            "skip rule names role 'status'",
        ),
    ],
)
def test_validate_names_the_bad_parameter(spec, message):
    with pytest.raises(UsageError) as err:
        validate(spec)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_bind_fills_only_what_the_spec_leaves_open():
    assert bind({"type": "phone"}, region="AU", tz="UTC") == {"type": "phone", "region": "AU"}
    assert bind({"type": "phone", "region": "US"}, region="AU") == {"type": "phone", "region": "US"}
    assert bind({"type": "datetime"}, region="AU", tz="Australia/Perth") == {
        "type": "datetime",
        "tz": "Australia/Perth",
    }
    assert bind({"type": "text"}, region="AU", tz="UTC") == {"type": "text"}


def test_preview_renders_what_the_destination_stores():
    money = preview({"type": "money"}, ["$1,234.50", "(12.00)", "TBA", "", "-"])
    assert [p["value"] for p in money] == ["1234.50", "-12.00", "", "", ""]
    assert money[2]["error"] == "'TBA' is not an amount"
    assert [p["raw"] for p in money] == ["$1,234.50", "(12.00)", "TBA", "", "-"]
    assert all(set(p) == {"raw", "value", "error", "notes"} for p in money)
    spec = {"type": "datetime", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}
    stamps = preview(spec, ["14/03/2025 09:30", "14/03/2025"])
    assert [p["value"] for p in stamps] == ["2025-03-13T22:30:00Z", "2025-03-14"]
    assert preview({"type": "boolean"}, ["Y", "inactive"])[1]["value"] == "false"
    phones = preview({"type": "phone", "region": "AU"}, ["0412 345 678 / 0498 765 432"])
    assert phones[0]["value"] == "+61412345678"
    assert phones[0]["notes"] == ["2 numbers in one cell; the first is used, not 0498 765 432"]


def test_preview_of_multi_column_specs_reads_whole_rows():
    rows = [{"Gate": "1234", "Dog": "yes"}, {"Gate": "", "Dog": ""}]
    out = preview({"type": "join", "template": "Gate: {Gate}\nDog: {Dog}"}, [], rows=rows)
    assert out[0] == {"raw": "Gate=1234 | Dog=yes", "value": "Gate: 1234\nDog: yes", "error": None, "notes": []}
    assert out[1]["value"] == ""
    no_rows = preview({"type": "join", "columns": ["Gate"]}, ["1234"])
    assert "needs the whole source row" in no_rows[0]["error"]


def test_preview_of_an_unfinished_spec_reports_instead_of_raising():
    """The editor previews on every keystroke: a half-typed spec is an error message on each sample."""
    out = preview({"type": "phone", "region": "A"}, ["0412 345 678", "02 9123 4567"])
    assert len(out) == 2
    assert all("region 'A' is not a region code" in p["error"] for p in out)
    assert preview({"type": "name_split"}, [])[0]["error"] == "transform name_split: part is required"
