"""Column profiles: fill rate, distinct values, examples and the type the values look like.

A type wins when at least 90% of a column's non-empty values fit it. Types are tried in this order, so the
first that fits is the answer:

``boolean`` (true/false, yes/no, y/n; a 0/1 column only when both 0 and 1 occur) -> ``date`` /
``datetime`` (text dates, optionally mixed with Excel serials in 1950..2099; at least 2% must be text) ->
``postcode`` (3-5 digit codes, or ZIP+4, with at least one leading zero or +4 suffix: the zero is what shows
they are codes, not numbers) -> ``integer`` (no leading zeros, and no value with a fraction) -> ``money``
(currency symbol or code, ``(12.00)`` negatives, ``1,234.50`` / ``1.234,50`` grouping, or two decimals on
at least half the values and on nearly all that have a fraction) -> ``decimal`` ->
``phone`` (8-15 digits written with ``+ ( ) - .`` or spaces, or with a leading 0; optional extension) ->
``email`` (several addresses in one cell count) -> ``url`` -> ``text``, or ``longtext`` past 255
characters. A column with no values is ``empty``.

Everything is bounded, so a million-row table profiles in constant memory:

* Values are processed in chunks of rows, column by column, with C-level builtins.
* ``top_values`` and ``distinct`` are exact while a column has at most 10,000 distinct values. Past that,
  ``distinct`` stays exact up to 100,000 (then it is a lower bound and ``distinct_exact`` is False) and
  ``top_values`` are estimated from a uniform random sample (values seen at least twice in it, scaled).
* Types are decided on exact (value, count) pairs for columns with up to 10,000 distinct values and on a
  seeded reservoir sample of 8,192 values otherwise (deterministic for the same input).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

from crmmigrator_gui.engine.source.dates import (
    PLAUSIBLE_SERIAL_MAX,
    PLAUSIBLE_SERIAL_MIN,
    date_kind,
    infer_date_format,
)

TYPES = (
    "empty",
    "integer",
    "decimal",
    "money",
    "boolean",
    "date",
    "datetime",
    "email",
    "phone",
    "url",
    "postcode",
    "text",
    "longtext",
)

THRESHOLD = 0.9
LONGTEXT_OVER = 255
_CHUNK_ROWS = 4096
_TOP_CAP = 10_000
_DISTINCT_CAP = 100_000
_SAMPLE_CAP = 8192  # values kept per column for type decisions on high-cardinality columns
_SAMPLES = 5
_TINY = 1e-300
_TOP = 20

# Value flags.
_BOOL = 1 << 0
_BOOL_WORD = 1 << 1
_ZERO = 1 << 2
_ONE = 1 << 3
_INT = 1 << 4
_DEC = 1 << 5
_MONEY = 1 << 6
_MONEY_SIGN = 1 << 7  # currency symbol or code, or (parentheses)
_TWO_DP = 1 << 8
_DATE = 1 << 9
_DATETIME = 1 << 10
_SERIAL = 1 << 11
_POSTCODE = 1 << 12
_CODE_MARK = 1 << 13  # leading zero or ZIP+4 suffix
_PHONE = 1 << 14
_EMAIL = 1 << 15
_URL = 1 << 16
_FLAG_BITS = 17

_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})
_DEC_RE = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_CURRENCY_CODES = r"(?:AUD|NZD|USD|CAD|GBP|EUR|SGD|HKD|JPY|CHF|ZAR|INR|CNY)"
_MONEY_RE = re.compile(
    rf"(?P<open>\()?\s*(?P<neg>-)?\s*(?P<code1>{_CURRENCY_CODES}\s?)?(?P<sym>(?:A|AU|NZ|US|C|S|HK)?[$€£¥])?"
    r"\s*(?P<neg2>-)?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?)"
    rf"\s*(?P<code2>{_CURRENCY_CODES})?\s*(?P<close>\))?"
)
_PHONE_RE = re.compile(r"\+?[\d\s().\-/]+?(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?", re.I)
_EXT_RE = re.compile(r"(?:x|ext\.?|extension)\s*\d{1,6}$", re.I)
_ZIP4_RE = re.compile(r"\d{5}-\d{4}")
_EMAIL_RE = re.compile(r"[^@\s;,<>]+@[^@\s;,<>]+\.[^@\s;,<>]{2,}")
_EMAIL_SPLIT = re.compile(r"[;,\s]+")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.I)


@dataclass
class FieldProfile:
    name: str
    count: int
    filled: int
    fill_rate: float
    distinct: int
    inferred_type: str
    date_format: str | None
    max_length: int
    samples: list[str]
    top_values: list[tuple[str, int]]
    distinct_exact: bool = field(default=True)


def _classify(value: str) -> int:
    """Bit flags for every type the value could belong to."""
    text = value.strip()
    if not text:
        return 0
    low = text.lower()
    flags = 0
    if low in _BOOL_WORDS:
        return _BOOL | _BOOL_WORD
    if text.isdigit() and text.isascii():
        size = len(text)
        if text == "0":
            flags |= _BOOL | _ZERO
        elif text == "1":
            flags |= _BOOL | _ONE
        if text[0] != "0" or size == 1:
            flags |= _INT | _DEC | _MONEY
        if 3 <= size <= 5:
            flags |= _POSTCODE | (_CODE_MARK if text[0] == "0" else 0)
        if 8 <= size <= 15 and text[0] == "0":
            flags |= _PHONE
        if size == 5 and PLAUSIBLE_SERIAL_MIN <= int(text) <= PLAUSIBLE_SERIAL_MAX:
            flags |= _SERIAL
        return flags
    if _DEC_RE.fullmatch(text):
        flags |= _DEC | _MONEY
        dot = text.find(".")
        if dot >= 0 and "e" not in low:
            if len(text) - dot - 1 == 2:
                flags |= _TWO_DP
            if PLAUSIBLE_SERIAL_MIN <= float(text) <= PLAUSIBLE_SERIAL_MAX:
                flags |= _SERIAL
        elif "e" not in low:
            flags |= _INT  # a signed integer such as -5
        return flags
    money = _MONEY_RE.fullmatch(text)
    if money and bool(money["open"]) == bool(money["close"]):
        flags |= _MONEY
        number = money["num"]
        marker = money["sym"] or money["code1"] or money["code2"] or money["open"]
        if marker:
            flags |= _MONEY_SIGN
        if len(number) > 3 and number[-3] in ".,":
            flags |= _TWO_DP
        elif not marker and "," in number and "." not in number and number[-4:-3] == ",":
            flags |= _DEC  # 1,234: a grouped whole number
        return flags
    if "@" in text:
        parts = [p for p in _EMAIL_SPLIT.split(text) if p]
        if parts and all(_EMAIL_RE.fullmatch(p) for p in parts):
            flags |= _EMAIL
        return flags
    if low.startswith(("http://", "https://", "www.")):
        return _URL if _URL_RE.fullmatch(text) else 0
    kind = date_kind(text)
    if kind:
        return _DATE | (_DATETIME if kind == 2 else 0)
    if _ZIP4_RE.fullmatch(text):
        return _POSTCODE | _CODE_MARK
    if _PHONE_RE.fullmatch(text):
        digits = sum(ch.isdigit() for ch in _EXT_RE.sub("", text))
        if 8 <= digits <= 15:
            flags |= _PHONE
    return flags


class _Column:
    __slots__ = (
        "counter", "distinct_exact", "distinct_floor", "filled", "first", "max_len", "next_pick", "rng",
        "sample", "seen", "weight",
    )  # fmt: skip

    def __init__(self, seed: int) -> None:
        self.filled = 0
        self.max_len = 0
        self.counter: Counter[str] | None = Counter()
        self.seen: set[str] | None = None
        self.first: list[str] = []
        self.distinct_floor = 0
        self.distinct_exact = True
        # Reservoir sample, used once the counter is dropped (see _drop_counter).
        self.rng = random.Random(seed)
        self.sample: list[str] = []
        self.weight = 1.0
        self.next_pick = 0

    def add(self, column: tuple[str | None, ...]) -> None:
        values = list(filter(None, column))
        if not values:
            return
        longest = max(map(len, values))
        if longest > self.max_len:
            self.max_len = longest
        before = self.filled
        self.filled += len(values)
        if self.counter is not None:
            self.counter.update(values)
            if len(self.counter) > _TOP_CAP:
                self._drop_counter()
            return
        if self.seen is not None:
            self.seen.update(values)
            if len(self.seen) > _DISTINCT_CAP:
                self.distinct_floor = len(self.seen)
                self.distinct_exact = False
                self.seen = None
        rng = self.rng
        end = before + len(values)
        while self.next_pick < end:
            self.sample[rng.randrange(_SAMPLE_CAP)] = values[self.next_pick - before]
            self.weight *= math.exp(math.log(rng.random() or _TINY) / _SAMPLE_CAP)
            self._schedule(self.next_pick)

    def _drop_counter(self) -> None:
        """Too many distinct values to count them all: keep a set for ``distinct`` and start a reservoir.

        The reservoir (Li's "Algorithm L") starts as a uniform draw from the values counted so far, with the
        weight it would have had after seeing them (the K-th smallest of n uniforms is Beta(K, n-K+1)),
        so the sample stays uniform over the whole column while only replacements cost Python time.
        """
        counter = self.counter
        assert counter is not None
        self.first = list(islice(counter, _SAMPLES))
        self.seen = set(counter)
        self.counter = None
        seen = self.filled  # > _TOP_CAP > _SAMPLE_CAP
        self.sample = self.rng.sample(list(counter), counts=list(counter.values()), k=_SAMPLE_CAP)
        self.weight = self.rng.betavariate(_SAMPLE_CAP, seen - _SAMPLE_CAP + 1)
        self._schedule(seen - 1)

    def _schedule(self, index: int) -> None:
        gap = math.floor(math.log(self.rng.random() or _TINY) / math.log1p(-self.weight))
        self.next_pick = index + gap + 1

    def weighted_values(self) -> list[tuple[str, int]]:
        if self.counter is not None:
            return list(self.counter.items())
        return [(value, 1) for value in self.sample]

    def distinct(self) -> int:
        if self.counter is not None:
            return len(self.counter)
        if self.seen is not None:
            return len(self.seen)
        return self.distinct_floor

    def top_values(self) -> list[tuple[str, int]]:
        if self.counter is not None:
            return self.counter.most_common(_TOP)
        scale = self.filled / len(self.sample)
        counts = Counter(self.sample)
        return [(value, round(n * scale)) for value, n in counts.most_common(_TOP) if n >= 2]

    def samples(self) -> list[str]:
        if self.counter is None:
            return list(self.first)
        return list(islice(self.counter, _SAMPLES))


def _decide(weighted: list[tuple[str, int]], max_len: int) -> tuple[str, str | None]:
    combos: Counter[int] = Counter()
    n = 0
    for value, weight in weighted:
        n += weight
        combos[_classify(value)] += weight
    totals = [0] * _FLAG_BITS
    for flags, weight in combos.items():
        for bit in range(_FLAG_BITS):
            if flags >> bit & 1:
                totals[bit] += weight
    if n == 0:
        return "empty", None

    def count(flag: int) -> int:
        return totals[flag.bit_length() - 1]

    need = THRESHOLD * n
    if count(_BOOL) >= need and (count(_BOOL_WORD) or (count(_ZERO) and count(_ONE))):
        return "boolean", None
    text_dates = count(_DATE)
    if text_dates + count(_SERIAL) >= need and text_dates >= max(1, 0.02 * n):
        kind = "datetime" if count(_DATETIME) else "date"
        return kind, infer_date_format(value for value, _weight in weighted)
    if count(_POSTCODE) >= need and count(_CODE_MARK):
        return "postcode", None
    fractional = count(_DEC) - count(_INT)  # numbers with a fractional part (or an exponent)
    if count(_INT) >= need and fractional == 0:
        return "integer", None
    two_dp = count(_TWO_DP)
    if count(_MONEY) >= need and (count(_MONEY_SIGN) or (two_dp >= 0.5 * n and two_dp >= 0.9 * fractional)):
        return "money", None
    if count(_DEC) >= need:
        return "decimal", None
    for flag, name in ((_PHONE, "phone"), (_EMAIL, "email"), (_URL, "url")):
        if count(flag) >= need:
            return name, None
    return ("longtext" if max_len > LONGTEXT_OVER else "text"), None


def profile_columns(
    columns: list[str],
    rows: Iterable[list[str | None]],
    *,
    sample_limit: int = 200_000,
) -> list[FieldProfile]:
    """Profile up to ``sample_limit`` rows (value lists aligned to ``columns``; ``None`` = empty)."""
    width = len(columns)
    states = [_Column(seed=index) for index in range(len(columns))]
    count = 0
    chunk: list[list[str | None]] = []
    for row in rows:
        if count >= sample_limit:
            break
        count += 1
        if len(row) != width:
            row = (list(row) + [None] * width)[:width]
        chunk.append(row)
        if len(chunk) == _CHUNK_ROWS:
            _consume(states, chunk)
            chunk = []
    if chunk:
        _consume(states, chunk)
    profiles = []
    for name, state in zip(columns, states, strict=True):
        inferred, date_format = _decide(state.weighted_values(), state.max_len)
        profiles.append(
            FieldProfile(
                name=name,
                count=count,
                filled=state.filled,
                fill_rate=state.filled / count if count else 0.0,
                distinct=state.distinct(),
                inferred_type=inferred,
                date_format=date_format,
                max_length=state.max_len,
                samples=state.samples(),
                top_values=state.top_values(),
                distinct_exact=state.distinct_exact,
            )
        )
    return profiles


def _consume(states: list[_Column], chunk: list[list[str | None]]) -> None:
    for state, column in zip(states, zip(*chunk, strict=True), strict=False):
        state.add(column)
