"""Declarative transforms: a JSON spec per field-map row turns raw source values into what the destination stores.

Specs are plain dicts (``{"type": "date", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}``) so they
serialise into the project file, the review workbook and the map fingerprint. :data:`CATALOG` lists every
type with its parameters (it drives the GUI's editor and :func:`validate`); :func:`preview` shows a spec on
sample values fast enough to run on every keystroke.

Decisions worth knowing:

* ``default`` (any type) replaces an empty source value, and is converted like one (a money default is a
  Decimal). ``case`` (upper/lower/title/sentence) applies to any text result.
* Placeholders (``N/A``, ``none``, ``-``) in a typed column mean "no value"; free text keeps what people wrote.
* Money is ``Decimal``; ``cents: true`` reads integer cents. Date-only values stay dates (never shifted
  across a time zone); date-times become UTC. A date-time written with an offset, in a date column, keeps
  the calendar day of the declared time zone.
* Phones become E.164 with the spec's ``region`` (the payload builders fill it from the playbook's
  ``default_phone_region``). An extension is kept RFC 3966 style, ``+15551234567;ext=206``: unambiguous,
  understood by dialers and by ``phonenumbers`` itself, so a second pass gives the same text.
  A value that is no phone number is kept as written with a note (``invalid: keep``), because both
  destinations store phones as free text and a record should not fail over one; ``invalid: fail`` refuses.
* E-mails are checked with email-validator (offline) and lower-cased: both destinations compare addresses
  as typed when they detect duplicates, and no mainstream mailbox is case-sensitive. An invalid address
  fails the record (``invalid: fail``, the default) since both destinations refuse it anyway.
* Several values in one phone or e-mail cell: the first is used, the rest are reported as a note.
* ``decompose`` and ``merge`` *describe* the playbook's parts (one row → several records) and grouped parts
  (several rows → one record) so the editor can show and preview them; the loader still builds parts from
  the playbook, and :func:`aggregate_value` is the one merge routine both use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crmmigrator_gui.engine.errors import UsageError
from crmmigrator_gui.engine.mapping.playbook import destination_key
from crmmigrator_gui.engine.source.dates import DATE_FORMATS, SPECIAL_FORMATS, parse_date, to_utc

if TYPE_CHECKING:
    from crmmigrator_gui.engine.mapping.playbook import Playbook

_PLACEHOLDERS = {"n/a", "na", "none", "null", "-", "--", "nil", "#n/a"}


class TransformError(ValueError):
    """A value that cannot be converted; the message is shown to the user with the source id."""


@dataclass(frozen=True)
class Converted:
    """A converted value and the notes worth showing (several numbers in a cell, a couple's name…)."""

    value: Any
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- catalog


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
ALIASES = {"concat": "join", "longtext": "memo", "names": "text"}
_META = {"custom_type"}  # schema hints stored with a spec (custom columns), not transform parameters
_FREE_TEXT = {"text", "memo", "longtext", "names", "trim", "case", "name_split", "html_to_text", "rtf_to_text"}


# ---------------------------------------------------------------------------------------------- text


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_PARTICLES = frozenset("van von de der den da di du del della la le st bin binti al ter ten dos das y".split())


def recase(text: str, mode: str) -> str:
    """Upper, lower, title or sentence case; title case knows O'Brien, McDonald and 'van' inside a name."""
    if mode == "upper":
        return text.upper()
    if mode == "lower":
        return text.lower()
    if mode == "sentence":
        lowered = text.lower()
        return re.sub(r"(^\s*|[.!?]\s+)([^\W\d_])", lambda m: m.group(1) + m.group(2).upper(), lowered)
    if mode != "title":
        raise TransformError(f"unknown case {mode!r}")
    first = True

    def fix(match: re.Match[str]) -> str:
        nonlocal first
        low = match.group(0).lower()
        at_start, first = first, False
        if not at_start and low in _PARTICLES:
            return low
        out = low[:1].upper() + low[1:]
        if len(low) > 2 and low[1] in "'’":  # O'Brien, D'Arcy
            out = out[:2] + out[2].upper() + out[3:]
        elif low.startswith("mc") and len(low) > 3:
            out = "Mc" + low[2].upper() + low[3:]
        return out

    return _WORD.sub(fix, text)


_TITLES = frozenset("mr mrs ms miss mx dr prof professor rev fr sir dame lady lord hon capt sgt master".split())
_SUFFIXES = {"jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq", "dds", "cpa"}
_CONNECTORS = {"&", "and", "+"}
_COMPANY = re.compile(
    r"\b(pty|ltd|llc|inc|corp|co|company|limited|plc|gmbh|services|group|trust|holdings)\b\.?", re.IGNORECASE
)


def _bare(token: str) -> str:
    return token.strip(".,").lower()


def split_name(text: str) -> tuple[dict[str, str], list[str]]:
    """A person's name → {title, first, middle, last, suffix} and flags (a couple, a company).

    One word is both the first and the last name: it is what a first-name or last-name column holds, and
    both destinations require a last name. ``"Smith, John"`` puts the surname first.
    """
    flags: list[str] = []
    name = " ".join(text.split())
    company = bool(_COMPANY.search(name))
    if company:
        flags.append(f"{name!r} looks like a company, not a person")
    fixed_last: list[str] = []
    suffix: list[str] = []
    if name.count(",") == 1:
        left, right = (p.strip() for p in name.split(","))
        if right and all(_bare(t) in _SUFFIXES for t in right.split()):
            name, suffix = left, right.split()
        elif left and right:
            fixed_last, name = left.split(), right
    tokens = name.replace("&", " & ").split()
    title: list[str] = []
    while tokens and (_bare(tokens[0]) in _TITLES or (title and tokens[0].lower() in _CONNECTORS)):
        title.append(tokens.pop(0))
    while len(tokens) > 1 and _bare(tokens[-1]) in _SUFFIXES:
        suffix.insert(0, tokens.pop())
    connector = next((i for i, t in enumerate(tokens) if t.lower() in _CONNECTORS), None)
    couple_title = any(t.lower() in _CONNECTORS for t in title)  # "Mr & Mrs Smith"
    if connector is not None or couple_title:
        flags.append(f"two people in one name ({name!r}); kept together")
    first, middle, last = "", [], fixed_last
    if fixed_last:
        first, middle = (tokens[0], tokens[1:]) if tokens else ("", [])
    elif company:  # a company in the name fields: all of it is the last name (both destinations require one)
        last = tokens
    elif connector is not None and connector > 0:
        first, last = " ".join(tokens[: connector + 2]), tokens[connector + 2 :]
    elif len(tokens) == 1:
        first, last = ("" if couple_title else tokens[0]), tokens
    elif tokens:
        start = len(tokens) - 1
        while start > 1 and _bare(tokens[start - 1]) in _PARTICLES:
            start -= 1
        first, middle, last = tokens[0], tokens[1:start], tokens[start:]
    parts = {
        "title": " ".join(title),
        "first": first,
        "middle": " ".join(middle),
        "last": " ".join(last),
        "suffix": " ".join(suffix),
    }
    return parts, flags


class _HtmlText(HTMLParser):
    """HTML → text: block ends and <br> become line breaks; whitespace between tags collapses."""

    BLOCKS = frozenset(
        "p div section article header footer blockquote ul ol table h1 h2 h3 h4 h5 h6 pre address tr dl dt dd hr "
        "form fieldset figure main nav aside li".split()
    )
    SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def _break(self) -> None:
        if not self._at_line_start():
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("td", "th"):
            if not self._at_line_start():
                self.out.append("\t")
        elif tag in self.BLOCKS:
            self._break()
            if tag == "li":
                self.out.append("- ")
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in self.BLOCKS or tag in self.SKIP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.pre -= tag == "pre" and self.pre > 0
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            self.out.append(data)
            return
        if not data.strip():  # whitespace between tags: one collapsible space
            if not self._at_line_start() and not self.out[-1].endswith((" ", "\t")):
                self.out.append(" ")
            return
        # Line breaks inside text are kept: in exports they come from a text box, not from pretty-printing.
        text = re.sub(r"[^\S\n]+", " ", data.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " "))
        if self._at_line_start():
            text = text.lstrip(" ")
        self.out.append(text)


_HAS_MARKUP = re.compile(r"<[a-zA-Z!/][^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+\d*);")


def _tidy_lines(text: str) -> str:
    lines = [re.sub(r"[ ]{2,}", " ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(text: str) -> str:
    """HTML to plain text with line breaks kept (<p>, <br>, <li>, <div>); plain text passes unchanged."""
    if not _HAS_MARKUP.search(text):
        return text.strip()
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return _tidy_lines("".join(parser.out))


_RTF_TOKEN = re.compile(r"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|[\r\n]+|([^\\{}\r\n]+)")
_RTF_SKIP = frozenset(
    "fonttbl colortbl stylesheet info pict object header footer headerl headerr headerf footerl footerr footerf "
    "listtable listoverridetable rsidtbl generator xmlnstbl themedata colorschememapping latentstyles datastore "
    "mmathPr filetbl revtbl operator author title fldinst".split()
)
_RTF_CHARS = {
    "par": "\n",
    "line": "\n",
    "sect": "\n",
    "page": "\n",
    "row": "\n",
    "tab": "\t",
    "cell": "\t",
    "emdash": "—",
    "endash": "–",
    "bullet": "•",
    "lquote": "‘",
    "rquote": "’",
    "ldblquote": "“",
    "rdblquote": "”",
    "emspace": " ",
    "enspace": " ",
    "qmspace": " ",
}
_RTF_SYMBOLS = {"\\": "\\", "{": "{", "}": "}", "~": " ", "_": "-", "-": "", "\n": "\n", "\r": "\n"}


def rtf_to_text(text: str) -> str:
    """RTF to plain text: groups, destinations and control words removed; \\par and \\line as line breaks.

    A small stripper rather than a dependency: notes in exports use a handful of control words. Handles
    ``\\'hh`` in the document's code page, ``\\uN`` with its ``\\ucN`` fallback characters, and ignorable
    ``{\\* …}`` destinations. Text that does not start with ``{\\rtf`` passes unchanged.
    """
    if not text.lstrip().startswith("{\\rtf"):
        return text.strip()
    codepage = "cp1252"
    match = re.search(r"\\ansicpg(\d+)", text)
    if match:
        codepage = f"cp{match.group(1)}"
    stack: list[tuple[bool, int]] = []
    skip, uc, pending_fallback = False, 1, 0
    out: list[str] = []
    for m in _RTF_TOKEN.finditer(text):
        word, arg, hexcode, symbol, brace, plain = m.groups()
        if brace == "{":
            stack.append((skip, uc))
            continue
        if brace == "}":
            skip, uc = stack.pop() if stack else (False, 1)
            continue
        if pending_fallback and (hexcode or plain or symbol):
            if plain:  # the fallback characters of a \uN are plain text (or \'hh escapes)
                dropped = min(pending_fallback, len(plain))
                pending_fallback -= dropped
                plain = plain[dropped:]
                if not plain:
                    continue
            else:
                pending_fallback -= 1
                continue
        if word is not None:
            if word in _RTF_SKIP:
                skip = True
            elif word == "uc" and arg is not None:
                uc = int(arg)
            elif word == "u" and arg is not None:
                if not skip:
                    out.append(chr(int(arg) % 65536))
                pending_fallback = uc
            elif word == "bin" and arg is not None:
                skip = True  # binary data: the rest of the group is not text
            elif not skip and word in _RTF_CHARS:
                out.append(_RTF_CHARS[word])
        elif symbol is not None:
            if symbol == "*":
                skip = True
            elif not skip and symbol in _RTF_SYMBOLS:
                out.append(_RTF_SYMBOLS[symbol])
        elif hexcode is not None:
            if not skip:
                out.append(bytes([int(hexcode, 16)]).decode(codepage, errors="replace"))
        elif plain is not None and not skip:
            out.append(plain)
    return _tidy_lines("".join(out))


# ---------------------------------------------------------------------------------------------- numbers


_AMOUNT = re.compile(r"\d(?:[\d.,'\u00a0 ]*\d)?")
_SPACED_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0']\d{3})+(?:[.,]\d+)?")


def parse_money(text: str, *, decimal_separator: str | None = None) -> Decimal:
    """``$1,234.50``, ``1.234,50``, ``(12.00)``, ``-$5.00``, ``AUD 129,00``, ``5.00-`` → Decimal.

    With ``decimal_separator`` "auto" (or None) the last of ``,``/``.`` is the decimal mark when both
    appear; a lone ``,`` followed by one or two digits is one too (``129,00``). Two numbers in one cell
    (``10 - 20``) are refused rather than glued together.
    """
    raw = text.strip()
    runs = list(_AMOUNT.finditer(raw))
    if not runs:
        raise TransformError(f"{text!r} is not an amount")
    if len(runs) > 1:
        raise TransformError(f"{text!r} holds more than one number")
    run = runs[0]
    digits = run.group(0)
    if re.search(r"[ \u00a0']", digits):
        if not _SPACED_THOUSANDS.fullmatch(digits):
            raise TransformError(f"{text!r} holds more than one number")
        digits = re.sub(r"[ \u00a0']", "", digits)
    before, after = raw[: run.start()], raw[run.end() :].strip()
    negative = (
        "-" in before
        or "−" in before
        or after.startswith("-")
        or ("(" in before and ")" in after)
        or after.lower().startswith("cr")
    )
    sep = decimal_separator if decimal_separator in (".", ",") else None
    if sep == ".":
        digits = digits.replace(",", "")
    elif sep == ",":
        digits = digits.replace(".", "").replace(",", ".")
    elif "," in digits and "." in digits:
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")  # 1.234,50
        else:
            digits = digits.replace(",", "")  # 1,234.50
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        if digits.count(",") == 1 and len(tail) in (1, 2):
            digits = f"{head}.{tail}"  # 129,00
        elif re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")  # 12,345
        else:
            raise TransformError(f"{text!r} is not an amount (unclear use of ',')")
    elif digits.count(".") > 1:
        if not re.fullmatch(r"\d{1,3}(?:\.\d{3})+", digits):
            raise TransformError(f"{text!r} is not an amount (unclear use of '.')")
        digits = digits.replace(".", "")  # 1.234.567
    try:
        value = Decimal(digits)
    except InvalidOperation as exc:
        raise TransformError(f"{text!r} is not an amount") from exc
    return -value if negative else value


_TRUE = {"true", "yes", "y", "1", "active", "enabled", "t"}
_FALSE = {"false", "no", "n", "0", "inactive", "disabled", "f"}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise TransformError(f"{text!r} is not yes/no")


_TIME = re.compile(r"^\s*(\d{1,2})[:.](\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?\s*$", re.IGNORECASE)


def parse_time(text: str) -> str:
    """``9:30 AM`` / ``14:05`` / ISO date-time → ``HH:MM``."""
    value = text.strip()
    if "T" in value:
        value = value.split("T", 1)[1]
    match = _TIME.match(value)
    if not match:
        raise TransformError(f"{text!r} is not a time of day")
    hour, minute = int(match.group(1)), int(match.group(2))
    meridiem = (match.group(4) or "").lower().replace(".", "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    if meridiem == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        raise TransformError(f"{text!r} is not a time of day")
    return f"{hour:02d}:{minute:02d}"


# ---------------------------------------------------------------------------------------------- contacts


_LIST_WORDS = re.compile(r"\s+(?:or|and|&)\s+", re.IGNORECASE)


def _first_of(cell: str, splitter: re.Pattern[str], what: str, notes: list[str]) -> str:
    items = [p.strip() for p in splitter.split(_LIST_WORDS.sub(";", cell)) if p and p.strip()]
    if len(items) > 1:
        notes.append(f"{len(items)} {what} in one cell; the first is used, not {', '.join(items[1:])}")
    return items[0] if items else ""


_EMAIL_SPLIT = re.compile(r"[;,\s|]+")


def _email(spec: dict[str, Any], text: str, notes: list[str]) -> str | None:
    cell = text.strip()
    bracketed = re.findall(r"<([^<>@\s]+@[^<>\s]+)>", cell)  # "Zoe Lee <zoe@x.com>"
    if bracketed:
        cell = ";".join(bracketed)
    cell = re.sub(r"mailto:", "", cell, flags=re.IGNORECASE)
    first = _first_of(cell, _EMAIL_SPLIT, "addresses", notes)
    try:
        return validate_email(first, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        return _invalid(spec, "fail", text, f"{text.strip()!r} is not an e-mail address ({exc})", notes)


def _invalid(spec: dict[str, Any], default: str, text: str, message: str, notes: list[str]) -> str | None:
    policy = spec.get("invalid") or default
    if policy == "fail":
        raise TransformError(message)
    if policy == "empty":
        notes.append(f"{message}; left empty")
        return None
    notes.append(f"{message}; kept as written")
    return " ".join(text.split())


_PHONE_SPLIT = re.compile(r"[,;|\n]+")
_EXCEL_NUMBER = re.compile(r"\+?\d{6,15}\.0+")


@lru_cache(maxsize=8192)
def _parse_phone(candidate: str, region: str | None) -> tuple[str, str | None] | None:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), number.extension


def _phone(spec: dict[str, Any], text: str, notes: list[str]) -> str | None:
    cell = re.sub(r";\s*ext\s*=\s*", " ext ", text.strip(), flags=re.IGNORECASE)
    if _EXCEL_NUMBER.fullmatch(cell):  # a number cell: 61412345678.0
        cell = cell.split(".", 1)[0]
    pieces = [p for p in (x.strip() for x in _PHONE_SPLIT.split(_LIST_WORDS.sub(";", cell))) if p]
    numbers: list[str] = []
    for piece in pieces:  # "/" separates two numbers only when both sides are whole numbers
        halves = [h.strip() for h in piece.split("/")]
        enough = len(halves) > 1 and all(len(re.sub(r"\D", "", h)) >= 6 for h in halves)
        numbers.extend(halves if enough else [piece])
    if len(numbers) > 1:
        notes.append(f"{len(numbers)} numbers in one cell; the first is used, not {', '.join(numbers[1:])}")
    region = spec.get("region") or None
    parsed = _parse_phone(numbers[0], region) if numbers else None
    if parsed is None:
        where = f" for region {region}" if region else " (no default region: add one, or write it with +)"
        return _invalid(spec, "keep", text, f"{text.strip()!r} is not a phone number{where}", notes)
    e164, extension = parsed
    if extension:
        if spec.get("extension", "keep") == "drop":
            notes.append(f"extension {extension} dropped")
        else:
            e164 = f"{e164};ext={extension}"
    return e164


# ---------------------------------------------------------------------------------------------- converters


def _date(spec: dict[str, Any], text: str, notes: list[str]) -> date | datetime:
    try:
        parsed = parse_date(text, spec.get("format"))
    except ValueError as exc:
        raise TransformError(str(exc)) from exc
    tz = spec.get("tz") or "UTC"
    if spec.get("type") == "datetime" and isinstance(parsed, datetime):
        try:
            return to_utc(parsed, tz)
        except ValueError as exc:
            raise TransformError(str(exc)) from exc
    if isinstance(parsed, datetime):
        if parsed.tzinfo is not None:  # an instant in a date column: its calendar day where the work happened
            parsed = parsed.astimezone(_zone(tz))
        return parsed.date()
    return parsed


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TransformError(f"unknown time zone {name!r} (expected an IANA name such as 'Australia/Sydney')") from None


def _money(spec: dict[str, Any], text: str, notes: list[str]) -> Decimal:
    value = parse_money(text, decimal_separator=spec.get("decimal_separator"))
    if spec.get("cents"):
        if value != value.to_integral_value():
            raise TransformError(f"{text!r} is not a whole number of cents")
        return (value / 100).quantize(Decimal("0.01"))
    return value


def _integer(spec: dict[str, Any], text: str, notes: list[str]) -> int:
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation as exc:
        raise TransformError(f"{text!r} is not a whole number") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise TransformError(f"{text!r} is not a whole number")
    return int(value)


def _name_part(spec: dict[str, Any], text: str, notes: list[str]) -> str:
    parts, flags = split_name(text)
    notes.extend(flags)
    return parts[spec.get("part") or "first"]


def _trim(spec: dict[str, Any], text: str, notes: list[str]) -> str:
    return " ".join(text.split()) if spec.get("collapse", True) else text.strip()


_SINGLE: dict[str, Any] = {
    "text": lambda s, t, n: " ".join(t.split()),
    "memo": lambda s, t, n: t.strip(),
    "trim": _trim,
    "case": lambda s, t, n: " ".join(t.split()),
    "name_split": _name_part,
    "email": _email,
    "phone": _phone,
    "money": _money,
    "decimal": lambda s, t, n: parse_money(t, decimal_separator=s.get("decimal_separator")),
    "integer": _integer,
    "boolean": lambda s, t, n: parse_bool(t),
    "time": lambda s, t, n: parse_time(t),
    "date": _date,
    "datetime": _date,
    "html_to_text": lambda s, t, n: html_to_text(t),
    "rtf_to_text": lambda s, t, n: rtf_to_text(t),
    "postcode": lambda s, t, n: t.strip(),
    "url": lambda s, t, n: t.strip(),
}
for _kind in ("enum", "lookup", "key", "owner", "reference", "id", "secret"):
    _SINGLE[_kind] = _SINGLE["text"]


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def template_columns(template: str) -> list[str]:
    """The ``{Column}`` placeholders of a join template, in order, once each."""
    return list(dict.fromkeys(name.strip() for name in _PLACEHOLDER.findall(template)))


def _cell(row: dict[str, Any], column: str) -> str:
    if column not in row:
        raise TransformError(f"no column {column!r} in this row")
    value = row[column]
    return "" if value is None else str(value).strip()


def _join(spec: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    template = spec.get("template")
    columns = spec.get("columns") or (template_columns(template) if template else [])
    if row is None:
        raise TransformError(f"joins several columns ({', '.join(columns)}): it needs the whole source row")
    if template:
        lines = []
        for line in template.replace("\\n", "\n").split("\n"):
            names = _PLACEHOLDER.findall(line)
            values = {name: _cell(row, name.strip()) for name in names}
            if names and not any(values.values()):
                continue  # "Gate: {Gate Code}" with no gate code leaves no "Gate:" line
            lines.append(_PLACEHOLDER.sub(lambda m, v=values: v[m.group(1)], line).rstrip())
        text = "\n".join(lines).strip()
        return text or None
    labels = bool(spec.get("labels"))
    separator = spec.get("separator")
    if separator is None:
        separator = "\n" if labels else " "
    items = [(c, _cell(row, c)) for c in columns]
    text = separator.join(f"{c}: {v}" if labels else v for c, v in items if v)
    return text or None


def convert(spec: dict[str, Any], raw: Any, *, row: dict[str, Any] | None = None) -> Converted:
    """Convert one source value (or, for multi-column types, the whole ``row``) and collect notes.

    Raises TransformError with a message fit for the user when the value cannot be converted.
    """
    kind = ALIASES.get(spec.get("type") or "text", spec.get("type") or "text")
    notes: list[str] = []
    value: Any
    if kind == "constant":
        value = spec.get("value")
    elif kind == "join":
        value = _join(spec, row)
    elif kind == "decompose":
        value = decompose_records(spec, row if row is not None else {})
    elif kind == "merge":
        value = merge_group_id(spec, row if row is not None else {})
    else:
        value = _convert_text(kind, spec, raw, notes)
    if (value is None or value == "") and spec.get("default") not in (None, ""):
        value = _convert_text(kind if kind in _SINGLE else "text", spec, str(spec["default"]), notes)
    if isinstance(value, str) and spec.get("case"):
        value = recase(value, spec["case"])
    return Converted(value, tuple(notes))


def _convert_text(kind: str, spec: dict[str, Any], raw: Any, notes: list[str]) -> Any:
    if raw is None:
        return None
    text = str(raw)
    stripped = text.strip()
    if not stripped:
        return None
    if kind not in _FREE_TEXT and stripped.lower() in _PLACEHOLDERS:
        return None  # "N/A", "none", "-" in a typed column mean "no value", not a bad value
    handler = _SINGLE.get(kind)
    if handler is None:
        return stripped
    value = handler(spec, text, notes)
    return None if value == "" else value


def apply(spec: dict[str, Any], raw: Any, *, row: dict[str, Any] | None = None) -> Any:
    """Convert one raw source value; ``None`` means "leave the destination column empty"."""
    return convert(spec, raw, row=row).value


def bind(spec: dict[str, Any], *, region: str | None = None, tz: str | None = None) -> dict[str, Any]:
    """The spec with the playbook's defaults filled in where it declares none (phone region, time zone)."""
    kind = spec.get("type")
    if kind == "phone" and region and not spec.get("region"):
        return {**spec, "region": region}
    if kind in ("date", "datetime") and tz and not spec.get("tz"):
        return {**spec, "tz": tz}
    return spec


# ---------------------------------------------------------------------------------------------- structure


class _KeyPrefix:
    """What :func:`destination_key` reads from a playbook, for descriptors that carry only the prefix."""

    def __init__(self, key_prefix: str) -> None:
        self.key_prefix = key_prefix


def _role_values(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, str]:
    values = {}
    for role, column in (spec.get("roles") or {}).items():
        value = row.get(column) if column else None
        values[role] = "" if value is None else str(value).strip()
    return values


def member_matches(when: dict[str, list[Any]] | None, values: dict[str, str]) -> bool:
    """All conditions hold: the role's value (case-insensitive) is one of the listed values."""
    for role, allowed in (when or {}).items():
        if (values.get(role) or "").lower() not in {str(a).lower() for a in allowed}:
            return False
    return True


def aggregate_value(spec: dict[str, Any], members: list[dict[str, str]]) -> str | None:
    """One aggregate column of a merged record: ``pick`` the first non-empty role value, or one ``line`` per
    member joined by line breaks (members filtered by ``when``). Shared by both payload builders and the preview.
    """
    chosen = [m for m in members if member_matches(spec.get("when"), m)]
    if "pick" in spec:
        return next((m[spec["pick"]] for m in chosen if m.get(spec["pick"])), None)
    return "\n".join(spec["line"].format(**m) for m in chosen)


def decompose_records(spec: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The destination records one source row becomes: part, table, key, and the skip reason if any."""
    source_id = "|".join("" if row.get(c) is None else str(row.get(c)).strip() for c in spec["id_columns"])
    if not source_id.strip("|"):
        raise TransformError(f"no source id (columns {', '.join(spec['id_columns'])} are empty)")
    values = _role_values(spec, row)
    prefix = cast("Playbook", _KeyPrefix(spec.get("key_prefix") or ""))
    records = []
    for part in spec["parts"]:
        reason = None
        for rule in part.get("skip_when", ()):
            if member_matches({rule["role"]: rule["in"]}, values):
                reason = rule.get("reason") or f"{rule['role']} is {values.get(rule['role'])!r}"
                break
        for rule in part.get("skip_when_empty", ()):
            if reason is None and not values.get(rule["role"]):
                reason = rule.get("reason") or f"no {rule['role'].replace('_', ' ')}"
        records.append(
            {
                "part": part["part"],
                "entity": part.get("entity"),
                "key": destination_key(prefix, spec["object"], source_id, part["part"]),
                "skipped": reason,
            }
        )
    return records


def merge_group_id(spec: dict[str, Any], row: dict[str, Any]) -> str:
    """The merged record a row belongs to: its group-by values joined by ``~`` (as the loader groups)."""
    values = _role_values(spec, row)
    return "~".join(values.get(role, "") for role in spec["group_by"])


def merge_groups(spec: dict[str, Any], rows: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """Rows grouped as the loader groups them: {group id, key, members, aggregate column → text}."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        gid = merge_group_id(spec, row)
        if gid not in groups:
            if limit is not None and len(groups) >= limit:
                continue
            groups[gid] = []
        groups[gid].append(_role_values(spec, row))
    prefix = cast("Playbook", _KeyPrefix(spec.get("key_prefix") or ""))
    return [
        {
            "group": gid,
            "key": destination_key(prefix, spec["object"], gid, spec["part"]),
            "members": len(members),
            "columns": {column: aggregate_value(agg, members) for column, agg in spec["aggregate"].items()},
        }
        for gid, members in groups.items()
    ]


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


# ---------------------------------------------------------------------------------------------- preview


def render(value: Any) -> str:
    """The text the destination will store: Decimal exact, dates ISO, date-times in UTC with Z."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return str(to_json_value(value))
    if isinstance(value, list):  # decompose: the records a row becomes
        return "; ".join(
            f"{r['part']}: skipped ({r['skipped']})" if r.get("skipped") else f"{r['part']} → {r['key']}" for r in value
        )
    return str(value)


def _row_summary(spec: dict[str, Any], row: dict[str, Any]) -> str:
    kind = spec["type"]
    if kind == "join":
        columns = spec.get("columns") or template_columns(spec.get("template") or "")
    elif kind == "decompose":
        columns = spec["id_columns"]
    else:
        return ""
    return " | ".join(f"{c}={row.get(c)}" for c in columns if row.get(c) not in (None, ""))


def preview(
    spec: dict[str, Any], samples: list[Any], *, rows: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Show ``spec`` on sample values: [{raw, value, error, notes}] with ``value`` as the destination stores it.

    ``rows`` (the whole staged rows, aligned with ``samples``) feed multi-column types; ``samples`` may be
    empty then. A spec that does not validate gives its message as every row's error instead of raising,
    so an editor can call this on every keystroke.
    """
    try:
        checked = validate(spec)
    except UsageError as exc:
        count = max(len(samples), len(rows or ()), 1)
        raws = list(samples) + [None] * (count - len(samples))
        return [{"raw": raws[i], "value": "", "error": str(exc), "notes": []} for i in range(count)]
    if checked["type"] == "merge":
        return [
            {
                "raw": g["group"],
                "value": "\n".join(f"{c}: {t}" for c, t in g["columns"].items() if t is not None),
                "error": None,
                "notes": [f"{g['members']} row(s) → {g['key']}"],
            }
            for g in merge_groups(checked, rows or [])
        ]
    results = []
    count = max(len(samples), len(rows or ()))
    for index in range(count):
        row = rows[index] if rows is not None and index < len(rows) else None
        raw = samples[index] if index < len(samples) else (_row_summary(checked, row) if row is not None else None)
        try:
            result = convert(checked, samples[index] if index < len(samples) else None, row=row)
        except TransformError as exc:
            results.append({"raw": raw, "value": "", "error": str(exc), "notes": []})
            continue
        results.append({"raw": raw, "value": render(result.value), "error": None, "notes": list(result.notes)})
    return results


def to_json_value(value: Any, column_type: str | None = None) -> Any:
    """Python value → JSON for the Web API (Decimal stays exact; dates ISO; date-times with Z)."""
    if isinstance(value, datetime):
        if column_type == "DateOnly":
            return value.date().isoformat()
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        if column_type in ("DateTime",):
            # A date-only value going into a date-time column: noon UTC shows the same calendar day
            # in every time zone from UTC-12 to UTC+11, so the date never shifts.
            return f"{value.isoformat()}T12:00:00Z"
        return value.isoformat()
    return value
