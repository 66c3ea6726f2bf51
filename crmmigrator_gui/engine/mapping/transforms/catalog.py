"""The transform catalog and the checks on a spec: what the editor offers and what a map may store.

:data:`CATALOG` lists every type with its parameters (it drives the GUI's editor and :func:`validate`);
:func:`bind` fills in the playbook's defaults (phone region, time zone) where a spec declares none.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.mapping.transforms.base import ALIASES, TransformError
from crmmigrator_gui.engine.mapping.transforms.convert import _PLACEHOLDER, _SINGLE, _convert_text, template_columns
from crmmigrator_gui.engine.mapping.transforms.scalar import _zone
from crmmigrator_gui.engine.source.dates import DATE_FORMATS, SPECIAL_FORMATS


def _param(
    name: str,
    label: str,
    kind: str,
    *,
    choices: tuple[str, ...] = (),
    default: Any = None,
    required: bool = False,
    help: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "kind": kind,
        "choices": list(choices),
        "default": default,
        "required": required,
        "help": help,
    }


_CASES = ("upper", "lower", "title", "sentence")
_CASE = _param("case", "Case", "choice", choices=_CASES, help="Change the letter case of the result")
_DEFAULT = _param("default", "When empty", "text", help="Used when the source is empty or a placeholder (N/A, -)")
_TZ = _param("tz", "Time zone", "tz", default="UTC", help="Where the source's local times were recorded")
_FORMAT = _param(
    "format",
    "Date format",
    "format",
    choices=(*DATE_FORMATS, *SPECIAL_FORMATS),
    help="Declare DD/MM or MM/DD: 03/04/2025 is 3 April or 4 March",
)
_DECIMAL_SEP = _param(
    "decimal_separator",
    "Decimal separator",
    "choice",
    choices=("auto", ".", ","),
    default="auto",
    help="auto reads $1,234.50 and 1.234,50 alike; declare it when 1.234 means a thousand",
)
_INVALID = ("keep", "fail", "empty")


def _entry(
    kind: str, label: str, group: str, help: str, *params: dict[str, Any], editable: bool = True, multi: bool = False
) -> dict[str, Any]:
    return {
        "type": kind,
        "label": label,
        "group": group,
        "help": help,
        "params": list(params),
        "editable": editable,
        "multi_column": multi,
    }


#: Every transform type with its parameters; drives the GUI's editor and :func:`validate`.
CATALOG: list[dict[str, Any]] = [
    _entry("text", "Text", "text", "Trimmed; runs of spaces, tabs and line breaks become one space", _CASE, _DEFAULT),
    _entry("memo", "Multi-line text", "text", "Trimmed; line breaks kept", _CASE, _DEFAULT),
    _entry(
        "trim",
        "Trim",
        "text",
        "Strip outer whitespace; optionally collapse inner runs",
        _param("collapse", "Collapse inner whitespace", "bool", default=True),
        _CASE,
        _DEFAULT,
    ),
    _entry(
        "case",
        "Change case",
        "text",
        "UPPER, lower, Title (O'Brien, McDonald) or Sentence case",
        {**_CASE, "required": True},
        _DEFAULT,
    ),
    _entry(
        "name_split",
        "Split a name",
        "text",
        "One part of a person's name: 'Smith, John', 'Mr John Smith Jr', 'van der Berg'; couples and companies "
        "are flagged",
        _param("part", "Part", "choice", choices=("first", "last", "middle", "title", "suffix"), required=True),
        _CASE,
        _DEFAULT,
    ),
    _entry(
        "join",
        "Join columns",
        "text",
        "Several columns into one (e.g. a description); a template like 'Gate: {Gate Code}' drops lines whose "
        "columns are all empty",
        _param("columns", "Columns", "columns"),
        _param("separator", "Separator", "text", help="Between values (default a space; a line break with labels)"),
        _param("template", "Template", "text", help="{Column} placeholders; \\n for a new line"),
        _param("labels", "Label each value", "bool", default=False, help="'Column: value' lines"),
        _CASE,
        _DEFAULT,
        multi=True,
    ),
    _entry(
        "email",
        "E-mail",
        "contact",
        "Checked offline and lower-cased; the first of several is used",
        _param("invalid", "When invalid", "choice", choices=_INVALID, default="fail"),
        _DEFAULT,
    ),
    _entry(
        "phone",
        "Phone (E.164)",
        "contact",
        "+61412345678; extensions as ;ext=206; the first of several is used",
        _param("region", "Default region", "region", help="For numbers written without a country code"),
        _param("extension", "Extension", "choice", choices=("keep", "drop"), default="keep"),
        _param("invalid", "When not a phone number", "choice", choices=_INVALID, default="keep"),
        _DEFAULT,
    ),
    _entry(
        "money",
        "Money",
        "number",
        "$1,234.50, 1.234,50, (12.00), -$5.00 → exact Decimal",
        _param("cents", "Source is in cents", "bool", default=False),
        _DECIMAL_SEP,
        _DEFAULT,
    ),
    _entry(
        "decimal", "Decimal number", "number", "Exact Decimal; thousands separators removed", _DECIMAL_SEP, _DEFAULT
    ),
    _entry("integer", "Whole number", "number", "Refuses fractions instead of cutting them off", _DEFAULT),
    _entry("boolean", "Yes/No", "number", "Yes/No, Y/N, True/False, 1/0, Active/Inactive", _DEFAULT),
    _entry("time", "Time of day", "date", "9:30 AM, 9.30pm, 14:05 → HH:MM", _DEFAULT),
    _entry("date", "Date", "date", "A calendar day; never shifted by a time zone", _FORMAT, _TZ, _DEFAULT),
    _entry(
        "datetime",
        "Date and time",
        "date",
        "Local time in the declared zone → UTC; a date alone stays a date",
        _FORMAT,
        _TZ,
        _DEFAULT,
    ),
    _entry(
        "html_to_text",
        "HTML to text",
        "markup",
        "Tags removed, entities decoded, <p>/<br>/<li> as line breaks",
        _DEFAULT,
    ),
    _entry("rtf_to_text", "RTF to text", "markup", "RTF control words removed, \\par as line breaks", _DEFAULT),
    _entry(
        "constant",
        "Constant",
        "other",
        "The same value for every record",
        _param("value", "Value", "text", required=True),
    ),
    _entry("enum", "Choice (value map)", "other", "Matched through the value map", _DEFAULT),
    _entry(
        "lookup",
        "Lookup (crosswalk)",
        "other",
        "A source id resolved to the loaded parent's destination id",
        _param("to", "Parent", "text", help="object.part of the parent"),
    ),
    _entry("key", "Source id (alternate key)", "other", "The record's source id"),
    _entry("owner", "Owner (field worker)", "other", "Matched to a destination user by e-mail"),
    _entry("reference", "Reference", "other", "An id or number kept as text", _DEFAULT),
    _entry("id", "Id", "other", "An id kept as text", _DEFAULT),
    _entry("postcode", "Postcode", "text", "Trimmed only: leading zeros and inner spaces kept", _DEFAULT),
    _entry("url", "Web address", "text", "Trimmed", _DEFAULT),
    _entry("secret", "Secret", "other", "Not migrated"),
    _entry(
        "decompose",
        "One row → several records",
        "structure",
        "The playbook's parts: each source row becomes one record per part, with its own key",
        _param("object", "Source object", "text", required=True),
        _param("key_prefix", "Key prefix", "text"),
        _param("id_columns", "Id columns", "columns", required=True),
        _param("parts", "Parts", "json", required=True),
        _param("roles", "Roles", "json"),
        editable=False,
        multi=True,
    ),
    _entry(
        "merge",
        "Several rows → one record",
        "structure",
        "A grouped part: rows sharing the group columns become one record; aggregate columns join their lines",
        _param("object", "Source object", "text", required=True),
        _param("part", "Part", "text", required=True),
        _param("entity", "Destination table", "text"),
        _param("key_prefix", "Key prefix", "text"),
        _param("group_by", "Group by (roles)", "json", required=True),
        _param("roles", "Roles", "json", required=True),
        _param("aggregate", "Aggregate columns", "json", required=True),
        editable=False,
        multi=True,
    ),
]
_BY_TYPE = {entry["type"]: entry for entry in CATALOG}
_META = {"custom_type"}  # schema hints stored with a spec (custom columns), not transform parameters


def bind(spec: dict[str, Any], *, region: str | None = None, tz: str | None = None) -> dict[str, Any]:
    """The spec with the playbook's defaults filled in where it declares none (phone region, time zone)."""
    kind = spec.get("type")
    if kind == "phone" and region and not spec.get("region"):
        return {**spec, "region": region}
    if kind in ("date", "datetime") and tz and not spec.get("tz"):
        return {**spec, "tz": tz}
    return spec


# ---------------------------------------------------------------------------------------------- validate


def _bad(kind: str, message: str) -> UsageError:
    return UsageError(f"transform {kind}: {message}")


def _check_param(kind: str, param: dict[str, Any], value: Any) -> Any:
    name, pkind = param["name"], param["kind"]
    if pkind == "bool":
        if not isinstance(value, bool):
            raise _bad(kind, f"{name} must be true or false, not {value!r}")
        return value
    if pkind == "columns":
        if isinstance(value, str):
            value = [c.strip() for c in value.split(",")]
        if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value) or not value:
            raise _bad(kind, f"{name} must be a list of column names, not {value!r}")
        return [c.strip() for c in value]
    if pkind == "json":
        return value
    if name in ("value", "default"):
        if not isinstance(value, str | int | float | bool):
            raise _bad(kind, f"{name} must be text or a number, not {value!r}")
        return value
    if not isinstance(value, str):
        raise _bad(kind, f"{name} must be text, not {value!r}")
    if pkind == "choice":
        wanted = value.strip().lower() if value.strip().lower() in param["choices"] else value.strip()
        if wanted not in param["choices"]:
            raise _bad(kind, f"{name} {value!r} is not one of {', '.join(param['choices'])}")
        return wanted
    if pkind == "format" and value not in param["choices"]:
        raise _bad(kind, f"format {value!r} is not a known date format ({', '.join(param['choices'])})")
    if pkind == "tz":
        try:
            _zone(value)
        except TransformError:
            raise _bad(kind, f"tz {value!r} is not a time zone (an IANA name such as 'Australia/Sydney')") from None
    if pkind == "region":
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise _bad(kind, f"region {value!r} is not a region code (e.g. AU, US, GB)")
    return value


def validate(spec: Any) -> dict[str, Any]:
    """A checked, normalised copy of ``spec`` (canonical type, choices lower-cased, catalog order).

    Raises UsageError naming the bad parameter. The ``default`` is converted once to prove it fits the type.
    """
    if not isinstance(spec, dict):
        raise UsageError(f'a transform is a JSON object with a "type", not {spec!r}')
    raw_kind = spec.get("type") or "text"
    kind = ALIASES.get(raw_kind, raw_kind)
    entry = _BY_TYPE.get(kind)
    if entry is None:
        raise UsageError(f"unknown transform type {raw_kind!r} (known: {', '.join(_BY_TYPE)})")
    params = {p["name"]: p for p in entry["params"]}
    for key in spec:
        if key != "type" and key not in params and key not in _META:
            allowed = ", ".join(params) or "none"
            raise _bad(kind, f"unknown parameter {key!r} (parameters: {allowed})")
    out: dict[str, Any] = {"type": kind}
    for name, param in params.items():
        value = spec.get(name)
        if value is None or value == "" or value == []:
            if param["required"]:
                raise _bad(kind, f"{name} is required")
            continue
        out[name] = _check_param(kind, param, value)
    for key in _META:
        if key in spec:
            out[key] = spec[key]
    _check_semantics(kind, out)
    if "default" in out and kind in _SINGLE:
        try:
            _convert_text(kind, out, str(out["default"]), [])
        except TransformError as exc:
            raise _bad(kind, f"default {out['default']!r} does not fit: {exc}") from None
    return out


def _check_semantics(kind: str, spec: dict[str, Any]) -> None:
    if kind == "join":
        if not spec.get("columns") and not spec.get("template"):
            raise _bad(kind, "columns (or a template with {Column} placeholders) is required")
        if spec.get("template") and not template_columns(spec["template"]):
            raise _bad(kind, "template has no {Column} placeholder")
    elif kind == "decompose":
        parts = spec["parts"]
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) and p.get("part") for p in parts):
            raise _bad(kind, 'parts must be a list of {"part", "entity"} objects')
        roles = spec.get("roles") or {}
        for part in parts:
            for rule in [*part.get("skip_when", ()), *part.get("skip_when_empty", ())]:
                if rule.get("role") not in roles:
                    raise _bad(kind, f"part {part['part']}: skip rule names role {rule.get('role')!r} not in roles")
    elif kind == "merge":
        roles, group_by, aggregate = spec["roles"], spec["group_by"], spec["aggregate"]
        if not isinstance(roles, dict):
            raise _bad(kind, "roles must map each role to its source column")
        if not isinstance(group_by, list) or not group_by or any(r not in roles for r in group_by):
            raise _bad(kind, f"group_by must list roles from roles ({', '.join(roles)}), not {group_by!r}")
        if not isinstance(aggregate, dict) or not aggregate:
            raise _bad(kind, 'aggregate must map destination columns to {"line"} or {"pick"}')
        for column, agg in aggregate.items():
            if not isinstance(agg, dict) or ("line" not in agg and "pick" not in agg):
                raise _bad(kind, f'aggregate {column}: give a "line" template or a "pick" role')
            used = (
                [agg["pick"]]
                if "pick" in agg
                else [n.split("!")[0].split(":")[0] for n in _PLACEHOLDER.findall(agg["line"])]
            )
            unknown = [r for r in [*used, *(agg.get("when") or {})] if r not in roles]
            if unknown:
                raise _bad(kind, f"aggregate {column}: unknown role {unknown[0]!r}")
