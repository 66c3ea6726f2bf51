"""OData URL pieces: ``$filter`` parsing, its SQL and Python evaluation, key segments, ``$orderby``.

The filter is parsed once into a small tuple AST. Entity rows are filtered in SQLite (``json_extract`` over
the
row's JSON column), so that queries over 100k rows stay fast; metadata and virtual sets (EntityDefinitions,
sdkmessagefilters) are plain dicts and use :func:`evaluate`. Both follow Dataverse semantics rather than
textbook OData where they differ: string comparisons are case-insensitive, ``contains``/``startswith``/
``endswith`` treat ``%`` and ``_`` as SQL wildcards, and ``ne`` does not match nulls (SQL ``<>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import DataverseError, bad_request

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\w:]))
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<name>[A-Za-z_$][\w.]*(?:/[A-Za-z_$][\w.]*)*)
  | (?P<punct>[(),=\[\]])
""",
    re.VERBOSE,
)
COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
STRING_FUNCS = {"contains", "startswith", "endswith"}
IN_FUNCS = {"microsoft.dynamics.crm.in": False, "microsoft.dynamics.crm.notin": True}


def filter_error(text: str) -> DataverseError:
    return bad_request(f"Syntax error in $filter: {text}", "0x80060888")


def normalize_datetime(text: str, date_only: bool = False) -> str:
    """ISO literal -> the canonical stored form (UTC ``Z``, seconds) or ``YYYY-MM-DD`` for DateOnly."""
    if len(text) == 10:
        return text if date_only else text + "T00:00:00Z"
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d") if date_only else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise filter_error(f"unexpected character at position {pos} in '{text}'")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _literal(kind: str, raw: str) -> tuple:
    if kind == "str":
        if raw[0] == "'":
            return ("lit", raw[1:-1].replace("''", "'"), "str")
        return ("lit", raw[1:-1].replace('\\"', '"'), "str")
    if kind == "guid":
        return ("lit", raw.lower(), "guid")
    if kind == "dt":
        return ("lit", raw, "dt")
    raw = raw.rstrip("mMdDfFlL")
    return ("lit", float(raw) if any(c in raw for c in ".eE") else int(raw), "num")


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, off: int = 0) -> tuple[str, str] | None:
        j = self.i + off
        return self.toks[j] if j < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1].lower() != value):
            raise filter_error(f"expected '{value or 'token'}' but found '{tok[1] if tok else 'end'}'")
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "name" and tok[1].lower() == word

    def parse(self) -> tuple:
        node = self.or_expr()
        if self.peek() is not None:
            raise filter_error(f"unexpected '{self.peek()[1]}'")
        return node

    def or_expr(self) -> tuple:
        node = self.and_expr()
        while self.is_word("or"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple:
        node = self.not_expr()
        while self.is_word("and"):
            self.take()
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> tuple:
        if self.is_word("not"):
            self.take()
            return ("not", self.not_expr())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.operand()
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1].lower() in COMPARISONS:
            self.take()
            return ("cmp", tok[1].lower(), left, self.operand())
        if left[0] in ("func", "in", "and", "or", "not", "cmp"):
            return left
        raise filter_error("a comparison operator was expected")

    def operand(self) -> tuple:
        tok = self.take()
        kind, raw = tok
        if raw == "(":
            node = self.or_expr()
            self.take(")")
            return node
        if kind in ("str", "guid", "dt", "num"):
            return _literal(kind, raw)
        if kind != "name":
            raise filter_error(f"unexpected '{raw}'")
        low = raw.lower()
        if low in ("null", "true", "false"):
            return ("lit", None if low == "null" else low == "true", "null" if low == "null" else "bool")
        nxt = self.peek()
        if nxt and nxt[1] == "(":
            return self.function(low, raw)
        return ("prop", raw)

    def function(self, low: str, raw: str) -> tuple:
        self.take("(")
        if low in STRING_FUNCS:
            prop = self.operand()
            self.take(",")
            value = self.operand()
            self.take(")")
            if prop[0] != "prop" or value[0] != "lit" or value[2] != "str":
                raise filter_error(f"{raw} expects a property and a string literal")
            return ("func", low, prop, value[1])
        if low in IN_FUNCS:
            args: dict[str, Any] = {}
            while True:
                name = self.take()[1]
                self.take("=")
                if self.peek() and self.peek()[1] == "[":
                    self.take("[")
                    vals = []
                    while self.peek() and self.peek()[1] != "]":
                        vals.append(self.operand())
                        if self.peek() and self.peek()[1] == ",":
                            self.take(",")
                    self.take("]")
                    args[name] = vals
                else:
                    args[name] = self.operand()
                if self.peek() and self.peek()[1] == ",":
                    self.take(",")
                    continue
                self.take(")")
                break
            prop, vals = args.get("PropertyName"), args.get("PropertyValues")
            if not prop or prop[0] != "lit" or not isinstance(vals, list):
                raise filter_error(f"{raw} requires PropertyName and PropertyValues")
            return ("in", ("prop", prop[1]), [v for v in vals if v[0] == "lit"], IN_FUNCS[low])
        raise filter_error(f"unknown function '{raw}'")


def parse_filter(text: str) -> tuple:
    return _Parser(text).parse()


# -- SQL compilation -----------------------------------------------------------------------------------------

Resolver = Callable[[str], tuple[str, str]]
"""Maps a property name to (sql_expression, kind) where kind is str|guid|num|bool|date|datetime."""


def _coerce_literal(lit: tuple, kind: str) -> Any:
    value, lkind = lit[1], lit[2]
    if lkind == "bool":
        return 1 if value else 0
    if lkind == "dt":
        try:
            return normalize_datetime(value, kind == "date")
        except ValueError as exc:
            raise filter_error(f"invalid date literal '{value}'") from exc
    if lkind == "guid" or kind == "guid":
        return str(value).lower()
    return value


def to_sql(node: tuple, resolve: Resolver, params: list) -> str:
    """Compile a filter AST into a SQL boolean expression, appending bound values to ``params``."""
    op = node[0]
    if op in ("and", "or"):
        return f"({to_sql(node[1], resolve, params)} {op.upper()} {to_sql(node[2], resolve, params)})"
    if op == "not":
        return f"(NOT {to_sql(node[1], resolve, params)})"
    if op == "func":
        expr, _ = resolve(node[2][1])
        value = node[3]
        pattern = {"contains": f"%{value}%", "startswith": f"{value}%", "endswith": f"%{value}"}[node[1]]
        params.append(pattern)
        return f"({expr} LIKE ?)"
    if op == "in":
        expr, kind = resolve(node[1][1])
        if not node[2]:
            return "(1=0)" if not node[3] else "(1=1)"
        values = [_coerce_literal(v, kind) for v in node[2]]
        neg = "NOT " if node[3] else ""
        if kind == "str":
            params.extend(v.lower() if isinstance(v, str) else v for v in values)
            return f"(lower({expr}) {neg}IN ({','.join('?' * len(values))}))"
        params.extend(values)
        return f"({expr} {neg}IN ({','.join('?' * len(values))}))"
    if op == "cmp":
        sym = COMPARISONS[node[1]]
        left, right = node[2], node[3]
        if left[0] == "lit" and right[0] == "prop":
            left, right = right, left
            sym = {">": "<", "<": ">", ">=": "<=", "<=": ">="}.get(sym, sym)
        if left[0] != "prop":
            raise filter_error("the left side of a comparison must be a property")
        expr, kind = resolve(left[1])
        if right[0] == "prop":
            rexpr, _ = resolve(right[1])
            return f"({expr} {sym} {rexpr})"
        if right[0] != "lit":
            raise filter_error("the right side of a comparison must be a literal or a property")
        if right[2] == "null":
            if sym not in ("=", "<>"):
                raise filter_error("null can only be compared with eq or ne")
            return f"({expr} IS {'NOT ' if sym == '<>' else ''}NULL)"
        value = _coerce_literal(right, kind)
        if kind == "str" and sym == "=" and isinstance(value, str):
            # lower() = lower() matches the alternate-key index expression, so key lookups stay indexed.
            params.append(value.lower())
            return f"(lower({expr}) = ?)"
        params.append(value)
        coll = " COLLATE NOCASE" if kind == "str" else ""
        return f"({expr} {sym} ?{coll})"
    raise filter_error("a boolean expression was expected")


# -- Python evaluation (metadata, virtual sets) ------------------------------------------------------------


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def evaluate(node: tuple, row: dict[str, Any]) -> bool:
    """Evaluate a filter AST against a plain dict (property paths like ``a/b`` are looked up verbatim)."""
    op = node[0]
    if op == "and":
        return evaluate(node[1], row) and evaluate(node[2], row)
    if op == "or":
        return evaluate(node[1], row) or evaluate(node[2], row)
    if op == "not":
        return not evaluate(node[1], row)
    if op == "func":
        v = row.get(node[2][1])
        if not isinstance(v, str):
            return False
        v, needle = v.lower(), node[3].lower()
        return {"contains": needle in v, "startswith": v.startswith(needle), "endswith": v.endswith(needle)}[
            node[1]
        ]
    if op == "in":
        v = _norm(row.get(node[1][1]))
        hit = v in {_norm(x[1]) for x in node[2]}
        return hit != node[3]
    if op == "cmp":
        left = _norm(row.get(node[2][1])) if node[2][0] == "prop" else _norm(node[2][1])
        right = _norm(row.get(node[3][1])) if node[3][0] == "prop" else _norm(node[3][1])
        if node[1] == "eq":
            return left == right
        if node[1] == "ne":
            return left != right
        if left is None or right is None:
            return False
        try:
            return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[node[1]]
        except TypeError:
            return False
    raise filter_error("a boolean expression was expected")


# -- $orderby, $select, key segments -------------------------------------------------------------------------


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """``name asc, createdon desc`` -> [(name, False), (createdon, True)] (True = descending)."""
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise bad_request(f"Syntax error in $orderby: '{text}'")
        out.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return out


def parse_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_key_segment(text: str) -> tuple[str, Any]:
    """Parse the inside of ``accounts(...)``.

    Returns ``("id", guid)`` for a bare GUID, or ``("keys", {name: value})`` for ``name=value`` pairs, where
    strings are unquoted (``''`` -> ``'``), GUIDs lower-cased and numbers converted.
    """
    text = text.strip()
    if GUID_RE.match(text):
        return ("id", text.lower())
    pairs: dict[str, Any] = {}
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise bad_request(f"Bad Request - Error in query syntax: key segment '{text}'")
        name = text[i:eq].strip()
        j = eq + 1
        if j < n and text[j] == "'":
            buf, j = [], j + 1
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            value: Any = "".join(buf)
            j += 1
        else:
            end = text.find(",", j)
            end = n if end < 0 else end
            raw = text[j:end].strip()
            j = end
            value = _key_literal(raw, text)
        pairs[name] = value
        while j < n and text[j] in " ,":
            j += 1
        i = j
    if not pairs:
        raise bad_request(f"Bad Request - Error in query syntax: key segment '{text}'")
    return ("keys", pairs)


def _key_literal(raw: str, text: str) -> Any:
    if GUID_RE.match(raw):
        return raw.lower()
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError as exc:
        raise bad_request(f"Bad Request - Error in query syntax: key segment '{text}'") from exc
