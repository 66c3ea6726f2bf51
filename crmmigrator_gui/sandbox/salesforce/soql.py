"""SOQL subset: tokenizer, recursive-descent parser, and compilation to SQLite over the JSON rows.

Supported (reference §5): field lists with parent paths (``Account.Owner.Name``), simple child subqueries
(``(SELECT Id FROM Contacts)``), ``COUNT()``/``COUNT(field)``, one FROM object, WHERE with
= != <> < > <= >= LIKE IN / NOT IN INCLUDES/EXCLUDES AND OR NOT and parentheses, null, booleans, numbers,
quoted strings, date and (unquoted) datetime literals and the common relative literals (TODAY,
LAST_N_DAYS:n …), ORDER BY … ASC/DESC NULLS FIRST/LAST, LIMIT, OFFSET. The query is compiled to one SQL
statement per page (LIMIT/OFFSET in SQLite) so paging streams and never materialises a whole table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import ids
from .errors import SFError, bad
from .values import fmt_datetime, parse_datetime, today

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<str>'(?:\\.|[^'\\])*')
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),:])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)


@dataclass
class Tok:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass
class Path:
    parts: list[str]
    pos: int


@dataclass
class Query:
    obj: str
    obj_pos: int
    fields: list[Any] = field(default_factory=list)  # Path | ("count", Path|None, alias) | Query (child)
    where: Any = None
    order: list[tuple[Path, bool, str | None]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    count_only: bool = False


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad_char = text[pos:].lstrip()[:1]
            raise bad("MALFORMED_QUERY", f"unexpected token: '{bad_char}'")
        kind = m.lastgroup or "name"
        start = m.start(kind)
        out.append(Tok(kind, m.group(kind), start))
        pos = m.end()
    return out


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise bad("MALFORMED_QUERY", "unexpected token: '<EOF>'")
        self.i += 1
        return tok

    def accept(self, *words: str) -> Tok | None:
        tok = self.peek()
        if tok is not None and tok.kind in ("name", "punct", "op") and tok.upper in words:
            self.i += 1
            return tok
        return None

    def expect(self, word: str) -> Tok:
        tok = self.accept(word)
        if tok is None:
            found = self.peek()
            raise bad("MALFORMED_QUERY", f"unexpected token: '{found.text if found else '<EOF>'}'")
        return tok

    def parse(self) -> Query:
        query = self.query()
        if self.peek() is not None:
            raise bad("MALFORMED_QUERY", f"unexpected token: '{self.peek().text}'")  # type: ignore[union-attr]
        return query

    def query(self) -> Query:
        self.expect("SELECT")
        items: list[Any] = []
        count_only = False
        while True:
            if self.accept("("):
                child = self.query()
                self.expect(")")
                items.append(child)
            else:
                tok = self.next()
                if tok.kind != "name":
                    raise bad("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
                if tok.upper == "COUNT" and self.accept("("):
                    if self.accept(")"):
                        count_only = True
                    else:
                        arg = self.next()
                        self.expect(")")
                        alias = self.peek()
                        name = None
                        if alias is not None and alias.kind == "name" and alias.upper not in ("FROM",):
                            name = self.next().text
                        items.append(("count", Path(arg.text.split("."), arg.pos), name))
                else:
                    items.append(Path(tok.text.split("."), tok.pos))
            if not self.accept(","):
                break
        self.expect("FROM")
        obj = self.next()
        if obj.kind != "name":
            raise bad("MALFORMED_QUERY", f"unexpected token: '{obj.text}'")
        q = Query(obj.text, obj.pos, items, count_only=count_only)
        if count_only and items:
            raise bad("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")
        if self.accept("WHERE"):
            q.where = self.disjunction()
        if self.accept("GROUP"):
            raise bad("MALFORMED_QUERY", "GROUP BY is not supported by the sandbox")
        if self.accept("ORDER"):
            self.expect("BY")
            while True:
                tok = self.next()
                desc = bool(self.accept("DESC"))
                if not desc:
                    self.accept("ASC")
                nulls = None
                if self.accept("NULLS"):
                    nulls = (self.accept("FIRST") or self.expect("LAST")).upper
                q.order.append((Path(tok.text.split("."), tok.pos), desc, nulls))
                if not self.accept(","):
                    break
        if self.accept("LIMIT"):
            q.limit = int(self.next().text)
        if self.accept("OFFSET"):
            q.offset = int(self.next().text)
            if q.offset > 2000:
                raise bad("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        return q

    def disjunction(self) -> Any:
        items = [self.conjunction()]
        while self.accept("OR"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else ("or", items)

    def conjunction(self) -> Any:
        items = [self.negation()]
        while self.accept("AND"):
            items.append(self.negation())
        return items[0] if len(items) == 1 else ("and", items)

    def negation(self) -> Any:
        if self.accept("NOT"):
            return ("not", self.negation())
        if self.accept("("):
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Any:
        tok = self.next()
        if tok.kind != "name":
            raise bad("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        path = Path(tok.text.split("."), tok.pos)
        if self.accept("NOT"):
            word = self.next().upper
            if word != "IN":
                raise bad("MALFORMED_QUERY", f"unexpected token: '{word}'")
            return ("in", path, True, self.value_list())
        if self.accept("IN"):
            return ("in", path, False, self.value_list())
        if self.accept("LIKE"):
            return ("like", path, self.value())
        for word, neg in (("INCLUDES", False), ("EXCLUDES", True)):
            if self.accept(word):
                return ("includes", path, neg, self.value_list())
        op = self.next()
        if op.kind != "op":
            raise bad("MALFORMED_QUERY", f"unexpected token: '{op.text}'")
        return ("cmp", path, "!=" if op.text == "<>" else op.text, self.value())

    def value_list(self) -> list[Any]:
        self.expect("(")
        if self.peek() is not None and self.peek().upper == "SELECT":  # type: ignore[union-attr]
            raise bad("MALFORMED_QUERY", "semi-join subqueries are not supported by the sandbox")
        out = [self.value()]
        while self.accept(","):
            out.append(self.value())
        self.expect(")")
        return out

    def value(self) -> Any:
        tok = self.next()
        if tok.kind == "str":
            return ("str", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), tok.text[1:-1]))
        if tok.kind == "num":
            return ("num", float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "date":
            return ("date", tok.text)
        if tok.kind == "dt":
            parsed = parse_datetime(tok.text)
            if parsed is None:
                raise bad("MALFORMED_QUERY", f"invalid datetime: {tok.text}")
            return ("datetime", fmt_datetime(parsed))
        if tok.kind == "name":
            word = tok.upper
            if word == "NULL":
                return ("null", None)
            if word in ("TRUE", "FALSE"):
                return ("bool", word == "TRUE")
            n = None
            if self.accept(":"):
                n = int(self.next().text)
            rng = relative_range(word, n)
            if rng is None:
                raise bad("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
            return ("range", rng)
        raise bad("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")


def relative_range(word: str, n: int | None) -> tuple[date, date] | None:
    """[start, end) dates of a relative date literal, in UTC."""
    t = today()
    first = t.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    table: dict[str, tuple[date, date]] = {
        "TODAY": (t, t + timedelta(days=1)),
        "YESTERDAY": (t - timedelta(days=1), t),
        "TOMORROW": (t + timedelta(days=1), t + timedelta(days=2)),
        "THIS_MONTH": (first, next_month),
        "LAST_MONTH": ((first - timedelta(days=1)).replace(day=1), first),
        "THIS_YEAR": (t.replace(month=1, day=1), t.replace(year=t.year + 1, month=1, day=1)),
        "LAST_YEAR": (t.replace(year=t.year - 1, month=1, day=1), t.replace(month=1, day=1)),
    }
    if n is not None:
        if word == "LAST_N_DAYS":
            return (t - timedelta(days=n), t + timedelta(days=1))
        if word == "NEXT_N_DAYS":
            return (t + timedelta(days=1), t + timedelta(days=n + 1))
        return None
    return table.get(word)


def parse(text: str) -> Query:
    return Parser(text).parse()


def _dt(d: date) -> str:
    return fmt_datetime(datetime(d.year, d.month, d.day, tzinfo=UTC))


def error_at(text: str, pos: int, code: str, message: str) -> SFError:
    line = text.replace("\n", " ")
    return bad(code, f"\n{line}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\n{message}")


def norm_id_literal(value: Any) -> Any:
    canonical = ids.to18(value) if isinstance(value, str) else None
    return canonical or value
