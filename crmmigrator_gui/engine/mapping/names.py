"""Header-name matching: normalisation, abbreviations, synonym clusters and fuzzy scores (rapidfuzz).

Exports spell the same column many ways ("Mobile No.", "mobile_number", "MobilePhone", "Cell #").
Normalising first (case, punctuation, camelCase, abbreviations from ``resources/mapping/synonyms.json``)
turns most variants into exact matches; a looser form (plurals, ``__c`` suffixes, filler words) and
stripping the object's own words ("Client First Name" in a client list) catch most of the rest, and
rapidfuzz scores what is left. We avoid ``token_set_ratio`` because it scores any subset as 100
(PLATFORM-NOTES).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from rapidfuzz import fuzz

from crmmigrator_gui.paths import resources_dir

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SF_SUFFIX = re.compile(r"(?:^[A-Za-z0-9]+__(?=\w+__[cr]$))|(?:__[cr]$)")
_FILLER = frozenset({"the", "of", "a", "an", "on", "at", "in", "for", "by", "s"})
_KEEP_S = ("ss", "us", "is", "ys")
# Words that qualify a header without changing what it holds ("Primary Email" is the e-mail).
_QUALIFIERS = frozenset(
    {"primary", "main", "default", "preferred", "current", "record", "billing", "mailing", "physical"}
)
# Head nouns: two names that differ in these are different things however alike they look
# ("Customer name" is not "Customer number", "Due date" is not "Due amount").
_HEADS = frozenset(
    "name number date time phone email address status type total amount code city state country street "
    "price cost rate quantity description note title balance tax id zip post method reference tag label "
    "category mobile fax website url latitude longitude count percent minute hour duration value".split()
)


@cache
def knowledge() -> dict[str, Any]:
    """``resources/mapping/synonyms.json``: abbreviations, synonym clusters, do-not-migrate names."""
    path = resources_dir() / "mapping" / "synonyms.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _abbreviations() -> dict[str, str]:
    return dict(knowledge()["abbreviations"])


@lru_cache(maxsize=65536)
def normalize(name: str) -> str:
    """Lower-case, accent-free, punctuation-free, camelCase split, abbreviations expanded."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _CAMEL.sub(" ", text)
    text = text.replace("#", " # ").replace("&", " and ").replace("(s)", "s").replace("%", " percent ")
    text = text.lower()
    text = re.sub(r"e-mail", "email", text)
    text = re.sub(r"[^a-z0-9#]+", " ", text)
    abbreviations = _abbreviations()
    words = [abbreviations.get(word, word) for word in text.split()]
    joined = " ".join(words)
    for short, full in (("e mail", "email"), ("zipcode", "zip code")):
        joined = joined.replace(short, full)
    return joined.strip()


def compact(name: str) -> str:
    """The normalised name without spaces: "Mobile Phone" == "mobilephone" == "Mobile_Phone"."""
    return normalize(name).replace(" ", "")


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


@lru_cache(maxsize=65536)
def loose(name: str) -> tuple[str, ...]:
    """Tokens for near-exact matching: Salesforce ``__c``/namespace dropped, singular, no filler words."""
    text = _SF_SUFFIX.sub("", name.strip())
    tokens = tuple(_singular(w) for w in normalize(text).split() if w not in _FILLER)
    return tokens or tuple(normalize(name).split())


def tokens_of(names: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Every loose token of some names (an object's name, label and aliases: its own words)."""
    return frozenset(token for name in names for token in loose(name))


@dataclass(frozen=True)
class NameMatch:
    score: float  # 0..1
    synonym: str
    exact: bool
    source: str = "playbook"  # "playbook" (the pair's own names), "synonym" (a shared cluster) or "fuzzy"


def _strip(tokens: tuple[str, ...], context: frozenset[str]) -> tuple[str, ...]:
    """Drop leading qualifier words ("Client Mobile" -> "Mobile") while something is left.

    Only leading ones: a trailing object word changes the meaning ("Total Appointments" is a count).
    """
    drop = context | _QUALIFIERS
    start = 0
    while len(tokens) - start > 1 and tokens[start] in drop:
        start += 1
    return tokens[start:]


@lru_cache(maxsize=262144)
def _compare(header: str, synonym: str, context: frozenset[str]) -> tuple[float, bool]:
    """(score, exact) of one header against one synonym (cached: a re-run of automap asks again)."""
    if normalize(header) == normalize(synonym) or compact(header) == compact(synonym):
        return 1.0, True
    h, s = loose(header), loose(synonym)
    if h == s or "".join(h) == "".join(s):
        return 0.98, True
    hs, ss = _strip(h, context), _strip(s, context)
    # One side stripped of the object's own words: "Client First Name" (clients) is "First name", and the
    # header "Status" is a "Job status" in a jobs file; stripping both could make "Order No" a "Customer No".
    if hs == s or h == ss or "".join(hs) == "".join(s) or "".join(h) == "".join(ss):
        return 0.94, True
    a, b = " ".join(h), " ".join(s)
    ratio = max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b) * 0.97)
    if hs != h or ss != s:
        c, d = " ".join(hs), " ".join(ss)
        ratio = max(ratio, max(fuzz.ratio(c, d), fuzz.token_sort_ratio(c, d) * 0.97) * 0.97)
    score = ratio / 100.0 * 0.95
    if score < 0.5:
        return score, False  # no evidence either way; the penalties below cannot make it matter
    if h and s and h[-1] != s[-1] and h[-1] in _HEADS and s[-1] in _HEADS:
        score *= 0.6
    return score * 0.85 ** _unmatched_words(h, s), False


def _unmatched_words(h: tuple[str, ...], s: tuple[str, ...]) -> int:
    """Words of the shorter name with no look-alike in the longer one ("Gate Code" has no "gate" in "State Code")."""
    shorter, longer = (h, s) if len(h) <= len(s) else (s, h)
    missing = 0
    for word in shorter:
        if not any(
            fuzz.ratio(word, other) >= 80 or (min(len(word), len(other)) >= 3 and other.startswith(word))
            for other in longer
        ):
            missing += 1
    return missing


def match_name(
    header: str,
    synonyms: tuple[str, ...] | list[str],
    cluster_synonyms: tuple[str, ...] | list[str] = (),
    context: frozenset[str] = frozenset(),
) -> NameMatch:
    """Best match of one header against a role's own synonyms (priors) and its clusters' names.

    The pair's own synonyms count fully, earlier ones a little more (a playbook lists its preferred
    names first, so "Company name" beats "Display name" for the account name); a shared cluster name
    scores 0.97 of the same match, so a playbook's knowledge of its platform wins a tie against general
    vocabulary. Headers an export marks as custom fields (Jobber ``CFT[...]``) only match exactly.
    """
    custom = is_custom_field_marker(header)
    if custom:
        header = custom_field_label(header)
    best = NameMatch(0.0, "", False, "fuzzy")
    for weight, source, names in ((1.0, "playbook", synonyms), (0.97, "synonym", cluster_synonyms)):
        for rank, synonym in enumerate(names):
            score, exact = _compare(header, synonym, context)
            if custom and not exact:
                continue
            score *= weight * (1.0 - 0.001 * min(rank, 20))
            if score > best.score:
                best = NameMatch(score, synonym, exact, source if exact else "fuzzy")
    return best


def cluster_names(clusters: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The names of some synonym clusters, in order, without repeats."""
    return _cluster_names(tuple(clusters))


@lru_cache(maxsize=1024)
def _cluster_names(clusters: tuple[str, ...]) -> tuple[str, ...]:
    known = knowledge()["clusters"]
    seen: dict[str, None] = {}
    for cluster in clusters:
        for name in known.get(cluster, {}).get("names", ()):
            seen.setdefault(name, None)
    return tuple(seen)


def cluster_label(cluster: str) -> str:
    return str(knowledge()["clusters"].get(cluster, {}).get("label", cluster))


@cache
def _dnm_tables() -> dict[str, Any]:
    rules = knowledge()["do_not_migrate"]
    tables: dict[str, Any] = {}
    for kind, spec in rules.items():
        tables[kind] = {
            "reason": spec["reason"],
            "names": {compact(n) for n in spec.get("names", ())},
            "words": frozenset(spec.get("words", ())),
            "patterns": [re.compile(p, re.IGNORECASE) for p in spec.get("patterns", ())],
            "values": frozenset(v.lower() for v in spec.get("values", ())),
        }
    return tables


def do_not_migrate_kind(header: str) -> tuple[str, str] | None:
    """(kind, reason) when the header alone says the column must not migrate: "secret" or "ui".

    Row-number headers ("#", "No.") are only candidates: the caller checks the values too.
    """
    tables = _dnm_tables()
    raw = header.strip()
    for pattern in tables["ui"]["patterns"]:
        if pattern.match(raw):
            return "ui", "no header: " + tables["ui"]["reason"]
    key = compact(raw)
    words = set(normalize(raw).split()) | set(loose(raw))
    secret = tables["secret"]
    if key in secret["names"] or (words & secret["words"] and not words & {"code", "zip", "post"}):
        return "secret", secret["reason"]
    if key in tables["ui"]["names"]:
        return "ui", tables["ui"]["reason"]
    return None


def is_row_number_header(header: str) -> bool:
    return compact(header) in _dnm_tables()["row_number"]["names"] or header.strip() in ("#", "")


def row_number_reason() -> str:
    return str(_dnm_tables()["row_number"]["reason"])


def ui_values() -> frozenset[str]:
    return frozenset(_dnm_tables()["ui"]["values"])


_CUSTOM_MARKER = re.compile(r"^\s*(?:CF[TSIN]?|PF[TSIN]?)\s*\[\s*(.*?)\s*\]\s*$", re.IGNORECASE)


def custom_field_label(name: str) -> str:
    """Jobber-style custom-field headers (``CFT[Gate Code]``, ``PFI[ Date of Loss ]``) → the label inside."""
    match = _CUSTOM_MARKER.match(name)
    return match.group(1) if match else name


def id_like_column(columns: list[str], context: frozenset[str]) -> str | None:
    """The column that most looks like a record id ("Visit #", "Ref", "Code"), preferring the object's own words."""
    candidates = []
    for index, column in enumerate(columns):
        tokens = loose(column)
        if tokens and tokens[-1] in ("number", "code", "key", "reference"):
            own = bool(set(tokens[:-1]) & context) or len(tokens) == 1
            candidates.append((0 if own else 1, index, column))
        elif len(tokens) == 1 and tokens[0] in context:
            candidates.append((2, index, column))  # "Customer" in a customer list: the customer's own name or code
    return min(candidates)[2] if candidates else None


_NOISE = frozenset(
    {
        "export",
        "report",
        "list",
        "data",
        "all",
        "copy",
        "file",
        "download",
        "backup",
        "final",
        "new",
        "summary",
        "csv",
        "xlsx",
        "sheet",
        "table",
        "dump",
        "extract",
        "full",
        "latest",
    }
)


def object_name_score(name: str, aliases: tuple[str, ...] | list[str]) -> float:
    """How strongly a file or sheet name says it holds an object with these aliases (0..1).

    An alias whose words all appear in the name counts (vendor names, dates and "export" around it do not
    matter); longer aliases score higher, so "job line items" beats "jobs" for "Job line items 2026".
    """
    words = [w for w in loose(name) if w not in _NOISE and not w.isdigit()]
    if not words:
        return 0.0
    present = set(words)
    best = 0.0
    for alias in aliases:
        tokens = [w for w in loose(alias) if w not in _NOISE]
        if tokens and set(tokens) <= present:
            last = words[-1] in tokens
            best = max(best, min(1.0, 0.85 + 0.05 * len(tokens) + (0.04 if last else 0.0)))
    if best:
        return best
    text = " ".join(words)
    return max((fuzz.ratio(text, " ".join(loose(a))) / 100.0 * 0.8 for a in aliases), default=0.0)


def is_custom_field_marker(name: str) -> bool:
    """A header that its export marks as a tenant custom field (Jobber ``CFT[...]``)."""
    return bool(_CUSTOM_MARKER.match(name))


def slug(name: str, *, max_length: int = 40) -> str:
    """A safe lower-case identifier for a custom column derived from a header."""
    text = normalize(custom_field_label(name)).replace("#", "number")
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    return (text or "field")[:max_length]
