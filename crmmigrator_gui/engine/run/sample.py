"""Sample migration: a stratified slice loaded for real, read back, and compared field by field.

Why: a customer signs off on records they saw arrive, not on a map. So a slice of 100–500 records is
loaded with the load's own runner (a normal run of kind ``sample``: it rolls back on its own, or a later
full load finds its records by key and adopts them), every sampled record is read back over HTTP, and
each mapped field is shown as source value → expected value (the map's transforms and value maps, built
by the load's own payload builder) → stored value, with a verdict:

- ``equal``: stored as the source wrote it; ``transformed``: the map changed it and it arrived as expected;
- ``truncated``: the destination holds the start of the expected text only;
- ``missing``: a value was expected and the destination holds none;
- ``changed_by_server``: the destination holds something else;
- ``misread``: stored as expected, but the expected value itself contradicts the source column: a date
  read as MM/DD in a column whose values prove DD/MM (a value there that the map cannot read and the
  column's own format can — see :func:`_reference_spec`);
- ``failed``: the field stopped its record from loading (the transform's error is the note), or, with no
  field to blame, the destination refused the record; ``skipped``: the record was skipped (its parent did
  not load, or the playbook skips it on purpose).

Comparison knows the types: numbers by value (Decimal), date-only by calendar day, date-times by instant
(``Z`` and ``+0000`` alike), option integers by value but shown as their labels, lookups by record id
(links of the load's second pass and owners included). Salesforce file parts are not compared field by
field: the upload's own answer is their check.

Selection (:func:`select_sample`) is deterministic for a seed: every object gets a floor then a share
proportional to its size; within an object the rarest values of its status/type roles (kind ``enum``),
owner roles and business-unit roles are covered first, the rest is spread proportionally over their
combinations; then every sampled record's parents (lookups, ``through`` lookups and links) are added, so
lookups resolve. Children are picked before parents, so parents brought in by children count against the
parents' share; when they still outgrow it, the shares shrink until the whole slice fits in ``size``.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.mapping.signoff import map_fingerprint, record_signoff
from crmmigrator_gui.engine.plan.order import group_id, load_order, role_columns
from crmmigrator_gui.engine.plan.payloads import BuildError, Skip
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from crmmigrator_gui.engine.project.store import Project, current_actor
from crmmigrator_gui.engine.run.results import RunResult
from crmmigrator_gui.engine.run.rollback import instant, numbers_equal
from crmmigrator_gui.engine.source.dates import infer_date_format
from crmmigrator_gui.engine.target.connection import destination

DEFAULT_SIZE = 200
MIN_SIZE, MAX_SIZE = 100, 500
VERDICTS = ("equal", "transformed", "truncated", "missing", "changed_by_server", "misread", "failed", "skipped")
FLAGGED = frozenset({"truncated", "missing", "changed_by_server", "misread", "failed"})
READ_CHUNK = 100  # ids per read-back request
EVIDENCE_SCAN = 10_000  # staged values scanned for proof of a column's date order
_DATE_TYPES = ("date", "datetime")


# ---------------------------------------------------------------------------------------------- selection


@dataclass
class _Unit:
    """One destination record of an object: a staged row, or a whole group of a merged part."""

    uid: str
    order: int
    members: list[str]
    strata: tuple[tuple[str, str], ...]
    parents: list[tuple[str, str]]  # (object, source id) this record looks up or links to


def _strata_roles(playbook: Playbook, obj: str) -> dict[str, tuple[int, bool]]:
    """role -> (priority, names an owner): status/type (enum) roles first, then owners and business units."""
    source = playbook.obj(obj)
    roles = {name: (0, False) for name, role in source.roles.items() if role.kind == "enum"}
    for part in source.parts:
        if part.owner and not part.owner.get("via"):  # "via" owners are child rows: the role is the record id
            roles.setdefault(part.owner["by_role"], (1, True))
    for name in source.roles:
        if "business_unit" in name or name == "owner":
            roles.setdefault(name, (1, False))
    return roles


def _units(project: Project, playbook: Playbook, obj: str, columns: dict[str, dict[str, str]]) -> list[_Unit]:
    """The object's destination records in staging order, with their stratum values and parents."""

    def value(raw: dict[str, Any] | None, role: str, of: str = obj) -> str:
        text = (raw or {}).get(columns.get(of, {}).get(role, ""))
        return "" if text is None else str(text).strip()

    parts = list(playbook.obj(obj).parts)
    grouped = next((p for p in parts if p.group_by), None)
    roles = _strata_roles(playbook, obj)
    through: dict[tuple[str, str], dict[str, str]] = {}  # (object, role) -> source id -> the role's value
    units: dict[str, _Unit] = {}
    for order, (sid, raw) in enumerate(project.iter_staged(obj)):
        uid = group_id(grouped, raw, columns.get(obj, {})) if grouped else sid
        unit = units.get(uid)
        if unit is None:
            strata = []
            for role, (_priority, owner) in roles.items():
                text = value(raw, role)
                if owner:  # "Ann Lee, Bo Chan": the first listed worker is the one the owner rules try first
                    text = text.replace(";", ",").split(",")[0].strip()
                strata.append((role, text.lower()))
            unit = units[uid] = _Unit(uid, order, [], tuple(strata), [])
        unit.members.append(sid)
        for part in parts:
            for lookup in part.lookups:
                ref, via = value(raw, lookup["by_role"]), lookup.get("through")
                if ref and via:  # the parent is named by the record this one points at
                    table = (via["object"], via["role"])
                    if table not in through:
                        through[table] = {s: value(r, via["role"], via["object"]) for s, r in
                                          project.iter_staged(via["object"])}  # fmt: skip
                    ref = through[table].get(ref, "")
                if ref:
                    unit.parents.append((playbook.part(lookup["to"]).obj, ref))
            for link in part.links:
                ref = value(raw, link["by_role"])
                if ref:
                    unit.parents.append((playbook.part(link["to"]).obj, ref))
    return list(units.values())


def _quotas(counts: dict[str, int], size: int) -> dict[str, int]:
    """Per object: a floor, then the rest of ``size`` proportional to its size (largest remainder)."""
    if sum(counts.values()) <= size:
        return dict(counts)
    present = [o for o, c in counts.items() if c]
    floor = max(1, size // (4 * max(1, len(present))))
    quota = {o: min(c, floor) for o, c in counts.items()}
    left = size - sum(quota.values())
    while left > 0:
        room = {o: counts[o] - quota[o] for o in counts if counts[o] > quota[o]}
        if not room:
            break
        weight = sum(room.values())
        shares = {o: left * r / weight for o, r in room.items()}
        given = {o: min(room[o], int(s)) for o, s in shares.items()}
        if not any(given.values()):
            for o in sorted(room, key=lambda o: (-(shares[o] % 1), o))[:left]:
                given[o] = 1
        for o, g in given.items():
            quota[o] += g
        left -= sum(given.values())
    return quota


def _proportional(pool: list[_Unit], count: int) -> list[_Unit]:
    """``count`` units spread over the combinations of stratum values in proportion to their sizes."""
    groups: dict[tuple[tuple[str, str], ...], list[_Unit]] = defaultdict(list)
    for unit in pool:
        groups[unit.strata].append(unit)
    total = len(pool)
    shares = {k: count * len(v) / total for k, v in groups.items()} if total else {}
    take = {k: int(s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: (-(shares[k] % 1), k))[: count - sum(take.values())]:
        take[k] += 1
    return [u for k, units in groups.items() for u in units[: take[k]]]


def select_sample(project: Project, size: int = DEFAULT_SIZE, seed: int = 0) -> dict[str, list[str]]:
    """A representative slice: source object -> source ids (staging order), parents included.

    Raises UsageError for a size outside 100–500. The slice holds at most ``size`` records (parents
    included) unless covering every status and type value needs more.
    """
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"the sample size must be {MIN_SIZE}–{MAX_SIZE} records (got {size})")
    playbook = load_playbook(project.source, project.target, project.edition)
    objects = list(dict.fromkeys(p.obj for p in load_order(playbook, project.source_object_names())))
    columns = role_columns(project)
    units = {obj: _units(project, playbook, obj, columns) for obj in objects}
    for obj in objects:
        random.Random(zlib.crc32(f"{seed}:{obj}".encode())).shuffle(units[obj])
    picker = _Picker(playbook, objects, units)
    # Parents brought in by children can outgrow their own share: find the largest shares whose slice fits.
    chosen = picker.pick(size)
    if picker.total(chosen) > size:
        low, high, best = max(1, size // 4), size - 1, None
        while low <= high:
            middle = (low + high) // 2
            trial = picker.pick(middle)
            if picker.total(trial) <= size:
                best, low = trial, middle + 1
            else:
                high = middle - 1
        chosen = best or picker.pick(max(1, size // 4))  # none fits: covering every status value needs more
    return {
        obj: [sid for u in sorted(chosen[obj].values(), key=lambda u: u.order) for sid in u.members]
        for obj in objects
        if chosen[obj]
    }


class _Picker:
    """Picks units for given object shares: coverage of rare values first, then proportional, parents closed."""

    def __init__(self, playbook: Playbook, objects: list[str], pools: dict[str, list[_Unit]]) -> None:
        self.playbook = playbook
        self.objects = objects
        self.pools = pools  # shuffled
        self.index = {obj: {sid: u for u in us for sid in u.members} for obj, us in pools.items()}
        self.roles = {obj: _strata_roles(playbook, obj) for obj in objects}

    @staticmethod
    def total(chosen: dict[str, dict[str, _Unit]]) -> int:
        return sum(len(u.members) for units in chosen.values() for u in units.values())

    def pick(self, budget: int) -> dict[str, dict[str, _Unit]]:
        chosen: dict[str, dict[str, _Unit]] = {obj: {} for obj in self.objects}
        quota = _quotas({obj: len(us) for obj, us in self.pools.items()}, budget)
        for obj in reversed(self.objects):  # children first: the parents they bring count against their share
            need = quota[obj] - len(chosen[obj])
            if need <= 0:
                continue
            need -= self._cover(chosen, obj, 1, need)
            if need > 0:
                for unit in _proportional([u for u in self.pools[obj] if u.uid not in chosen[obj]], need):
                    self._add(chosen, obj, unit)
        for obj in self.objects:  # every status and type value, even past the size
            self._cover(chosen, obj, 0, None)
        return chosen

    def _add(self, chosen: dict[str, dict[str, _Unit]], obj: str, unit: _Unit) -> None:
        stack = [(obj, unit)]
        while stack:
            o, u = stack.pop()
            if u.uid not in chosen[o]:
                chosen[o][u.uid] = u
                stack += [(p, self.index[p][sid]) for p, sid in u.parents if sid in self.index.get(p, {})]

    def _cover(self, chosen: dict[str, dict[str, _Unit]], obj: str, priority: int, limit: int | None) -> int:
        """Add units for (role, value) pairs no chosen unit has yet, rarest first; returns how many."""
        wanted = {r for r, (p, _owner) in self.roles[obj].items() if p <= priority}
        pool = [u for u in self.pools[obj] if u.uid not in chosen[obj]]
        freq = Counter(pair for u in pool for pair in u.strata if pair[0] in wanted)
        covered = {pair for u in chosen[obj].values() for pair in u.strata}
        added = 0
        for pair in sorted(freq, key=lambda p: (freq[p], p)):
            if limit is not None and added >= limit:
                break
            if pair not in covered:
                self._add(chosen, obj, next(u for u in pool if pair in u.strata and u.uid not in chosen[obj]))
                covered = {pair for u in chosen[obj].values() for pair in u.strata}
                added += 1
        return added


# ---------------------------------------------------------------------------------------------- diff


@dataclass
class FieldDiff:
    """One field of one sampled record: source → expected → stored, and the verdict."""

    source_object: str
    source_id: str
    target_entity: str
    dest_id: str | None
    field: str  # destination field ("" for a record-level row: a refusal or a skip)
    source_value: Any
    expected: Any
    stored: Any
    verdict: str
    source_field: str = ""
    note: str = ""

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED

    def to_json(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.__dict__.items()}


@dataclass
class _Field:
    """A destination field as the diff compares it."""

    name: str  # as the builder writes it
    read: str  # as it is read back (Dataverse lookups: _x_value)
    kind: str  # text | number | double | option | date | datetime | bool | lookup
    options: dict[int, str] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _same_id(a: Any, b: Any) -> bool:
    x, y = str(a), str(b)
    if len(x) in (15, 18) and len(y) in (15, 18) and "-" not in x + y:  # Salesforce ids: 15 = 18[:15]
        return x[:15] == y[:15]
    return x.lower() == y.lower()


def _same(f: _Field, expected: Any, stored: Any) -> bool:
    if _empty(expected) or _empty(stored):
        return _empty(expected) and _empty(stored)
    if f.kind == "lookup":
        return _same_id(expected, stored)
    if f.kind in ("number", "option", "double"):
        equal = numbers_equal(expected, stored)
        if equal is not None:
            return equal or (f.kind == "double" and abs(float(expected) - float(stored)) < 1e-5)
    if f.kind == "date":
        return str(expected)[:10] == str(stored)[:10]
    if f.kind == "datetime":
        a, b = instant(expected), instant(stored)
        if a is not None and b is not None:
            return a == b
    if f.kind == "bool":
        return isinstance(stored, bool) and bool(expected) == stored
    return str(expected) == str(stored)


def _shown(f: _Field, value: Any) -> Any:
    """Option integers as their labels; everything else as read."""
    if f.kind == "option" and not _empty(value) and f.options:
        try:
            return f.options.get(int(value), value)
        except (TypeError, ValueError):
            return value
    return value


def _verdict(f: _Field, source: Any, expected: Any, stored: Any) -> str:
    """The verdict for one field whose record loaded (``misread`` is decided by the caller)."""
    if _empty(expected):
        if not _empty(stored):
            return "changed_by_server"
        return "equal" if _empty(source) else "transformed"
    if _empty(stored):
        return "missing"
    if not _same(f, expected, stored):
        if isinstance(expected, str) and isinstance(stored, str) and len(stored) < len(expected):
            if expected.startswith(stored.rstrip("…")):
                return "truncated"
        return "changed_by_server"
    text = "" if source is None else str(source).strip()
    shown = _shown(f, expected)
    if text == str(shown) or (f.kind == "option" and text.lower() == str(shown).lower()):
        return "equal"
    if f.kind in ("number", "double") and numbers_equal(text, expected):
        return "equal"
    return "transformed"


_Expected = tuple[_Field, Any, str, Any, Any]  # field, rule (None for lookups), source field, source, expected


class _Destination:
    """What the diff needs from one destination: its metadata, the load's builder, reads by id."""

    def __init__(self, project: Project, playbook: Playbook, client: Any) -> None:
        from crmmigrator_gui.engine.run import load_salesforce
        from crmmigrator_gui.engine.run.load import _Runner

        self.salesforce = project.target == "salesforce"
        runner_class: Any = load_salesforce._SfRunner if self.salesforce else _Runner
        runner = runner_class(project, playbook, client, no_progress, CancelToken(), 1, current_actor())
        runner._match_users()  # owners as the load resolved them (reads only)
        self.builder: Any = runner.builder
        self.client = client

    def meta(self, part: Part) -> Any:
        return self.client.describe(part.entity) if self.salesforce else self.client.entity(part.entity)

    def file_part(self, part: Part) -> bool:
        return self.salesforce and self.builder.file_spec(part) is not None

    def replay(self, part: Part, rule: Any, raw: dict[str, Any], meta: Any) -> None:
        """One field rule on its own (raises BuildError when this column alone stops the record)."""
        if self.salesforce:
            from crmmigrator_gui.engine.plan.sf_payloads import SfPayload

            self.builder._sf_rule(part, rule, raw, meta, SfPayload(key="", body={}))
        else:
            from crmmigrator_gui.engine.plan.payloads import Payload

            self.builder._apply_rule(part, rule, raw, meta, Payload(key="", body={}))

    def describe_field(self, meta: Any, name: str, lookup: bool = False) -> _Field | None:
        if self.salesforce:
            f = meta.field(name)
            if f is None:
                return None
            kinds = {"currency": "number", "double": "number", "percent": "number", "int": "number"}
            kinds |= {"long": "number", "date": "date", "datetime": "datetime", "boolean": "bool"}
            kind = "lookup" if lookup or f.type in ("reference", "id") else kinds.get(f.type, "text")
            return _Field(f.name, f.name, kind)
        if lookup:
            return _Field(name, f"_{name}_value", "lookup")
        attr = meta.attributes.get(name)
        if attr is None:
            return None
        kinds = {"Money": "number", "Decimal": "number", "Integer": "number", "BigInt": "number", "Double": "double"}
        kinds |= {"Picklist": "option", "Status": "option", "State": "option", "Boolean": "bool"}
        kinds |= {"Lookup": "lookup", "Customer": "lookup", "Owner": "lookup"}
        kind = kinds.get(attr.type, "text")
        if attr.type == "DateTime":
            kind = "date" if attr.date_behavior == "DateOnly" else "datetime"
        read = f"_{name}_value" if kind == "lookup" else name
        if name == "overriddencreatedon":  # Dataverse swaps them: createdon shows the date we supplied
            read = "createdon"
        return _Field(name, read, kind, dict(attr.options))

    def target(self, part: Part, rule: Any) -> str:
        """The field a rule writes, as the builder names it (Salesforce API names, the audit-field fallback)."""
        if not self.salesforce:
            return str(rule.target_field)
        from crmmigrator_gui.engine.plan.sf_payloads import AUDIT_FIELD, DEFAULT_AUDIT_FALLBACK
        from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

        name = custom_field_name(rule.target_field)
        if name == AUDIT_FIELD and not self.builder.audit_on(part.entity):
            return str(self.builder.spec(part).get("audit_fallback", {}).get(AUDIT_FIELD, DEFAULT_AUDIT_FALLBACK))
        return name

    def expected(self, part: Part, raw: dict[str, Any], payload: Any, meta: Any) -> list[_Expected]:
        """(field, rule, source field, source value, expected value) for every mapped field, lookup and owner."""
        b, out = self.builder, []
        for rule in b.rules.get((part.obj, part.entity), []):
            f = self.describe_field(meta, self.target(part, rule))
            if f is None:
                continue
            value = payload.body.get(f.name)
            if self.salesforce and value is None:
                value = payload.insert_only.get(f.name)  # CreatedDate goes with inserts only
            post = getattr(payload, "post_state", None)
            if not self.salesforce and post and f.name == "statuscode":
                value = post["statuscode"]  # a closed status is set after create
            out.append((f, rule, rule.source_field, raw.get(rule.source_field), value))
        columns = b.role_columns.get(part.obj, {})
        sources = {lk["column"]: lk["by_role"] for lk in part.lookups}
        if part.owner:
            sources["OwnerId" if self.salesforce else "ownerid"] = part.owner["by_role"]
        if self.salesforce:
            pairs = [(ref.field, ref.dest_id) for ref in payload.refs.values()]
            pairs += [(c, payload.body.get(c)) for c in ("OwnerId",) if c in payload.body]
        else:
            pairs = [(column, dest) for column, dest in payload.binds.values()]
        for link in part.links:  # set by the load's second pass
            target = b.playbook.part(link["to"])
            ref = b.role_value(part.obj, link["by_role"], raw)
            pairs.append((link["column"], b.xref.get((target.entity, b.key(target, ref))) if ref else None))
            sources[link["column"]] = link["by_role"]
        for column, dest in pairs:
            f = self.describe_field(meta, column, lookup=True)
            role = sources.get(column, "")
            if f is not None:
                out.append((f, None, columns.get(role, ""), b.role_value(part.obj, role, raw) if role else None, dest))
        return out

    def read(self, part: Part, meta: Any, ids: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
        """Records by id (lower-cased; Salesforce by its 15-character id), ``READ_CHUNK`` per request."""
        found: dict[str, dict[str, Any]] = {}
        if self.salesforce:
            from crmmigrator_gui.engine.target.sf_codec import in_chunks, soql_string

            prefix = f"SELECT {', '.join(sorted({'Id', *names}))} FROM {meta.name} WHERE Id IN ("
            for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", self.client.soql_url_budget):
                for record in self.client.query(soql):
                    found[str(record["Id"])[:15]] = record
            return found
        select = sorted({meta.primary_id, *names})
        for start in range(0, len(ids), READ_CHUNK):
            values = ",".join(json.dumps(i) for i in ids[start : start + READ_CHUNK])
            flt = f"Microsoft.Dynamics.CRM.In(PropertyName='{meta.primary_id}',PropertyValues=[{values}])"
            for record in self.client.query(meta.entity_set, select=select, filter=flt):
                found[str(record[meta.primary_id]).lower()] = record
        return found

    def id_key(self, dest_id: str) -> str:
        return dest_id[:15] if self.salesforce else dest_id.lower()


def _reference_spec(project: Project, obj: str, rule: Any, cache: dict[tuple[str, str], Any]) -> Any:
    """The rule's date transform with the format the column's own values prove, or None.

    A column proves a format when its values are dates in that format (``infer_date_format``) and at least
    one of them is readable in it but not in the map's format (``25/03/2024`` under ``MM/DD/YYYY``). Without
    such proof — a column of values that read either way — the map's choice stands.
    """
    spec = rule.transform
    if transforms.ALIASES.get(spec.get("type"), spec.get("type")) not in _DATE_TYPES:
        return None
    key = (obj, rule.source_field)
    if key not in cache:
        values = []
        for _sid, raw in project.iter_staged(obj):
            text = raw.get(rule.source_field)
            if text not in (None, ""):
                values.append(str(text))
            if len(values) >= EVIDENCE_SCAN:
                break
        found = infer_date_format(values)
        cache[key] = None
        if found and found != spec.get("format"):
            other = {**spec, "format": found}
            if any(_reads(other, v) and not _reads(spec, v) for v in values):
                cache[key] = other
    return cache[key]


def _reads(spec: dict[str, Any], text: str) -> bool:
    try:
        transforms.convert(spec, text)
    except transforms.TransformError:
        return False
    return True


def _misread(spec: dict[str, Any], reference: Any, source: Any, raw: dict[str, Any]) -> str:
    """Why the map's reading of a date contradicts the column's proven format ("" when it does not)."""
    if reference is None or _empty(source):
        return ""
    try:
        ours = transforms.convert(spec, source, row=raw).value
        theirs = transforms.convert(reference, source, row=raw).value
    except transforms.TransformError:
        return ""
    if ours is None or theirs is None or ours == theirs:
        return ""
    return (
        f"{source!r} is {_plain(theirs)} in the column's own format {reference['format']}; "
        f"the map reads it as {spec.get('format')} ({_plain(ours)})"
    )


def _staged_rows(project: Project, obj: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The staged rows of these source ids only (a sample is a few hundred rows of a possibly huge object)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT source_id, raw FROM staging WHERE object = ? AND source_id IN ({','.join('?' * len(chunk))})"
        for sid, raw in project.db.conn.execute(sql, (obj, *chunk)):
            found[sid] = json.loads(raw)
    return found


def _final_rows(project: Project, run_id: int) -> list[dict[str, Any]]:
    """The last outcome of every (part, record) of the run, in load order."""
    rows = project.query(
        "SELECT source_object, part, source_id, target_entity, dest_id, action, error_code, error_message, "
        "rolled_back_at FROM crosswalk WHERE run_id = ? AND action IN ('created','updated','unchanged','failed',"
        "'skipped') ORDER BY seq",
        (run_id,),
    )
    return list({(r["part"], r["source_id"]): r for r in rows}.values())


def diff(
    project: Project, run_id: int, *, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None
) -> list[FieldDiff]:
    """Read every record of a sample (or any) run back and compare it field by field with what the current
    map expects. Raises MigratorError for an unknown or rolled-back run."""
    return _diff(project, run_id, progress, cancel)[0]


def _diff(
    project: Project, run_id: int, progress: ProgressCallback, cancel: CancelToken | None
) -> tuple[list[FieldDiff], int]:
    """The rows, and the number of requests the read-back took."""
    run = project.query("SELECT status FROM runs WHERE id = ?", (run_id,))
    if not run:
        raise MigratorError(f"run {run_id} does not exist")
    if run[0]["status"] == "rolled_back":
        raise MigratorError(f"run {run_id} was rolled back: there is nothing to read back")
    cancel = cancel or CancelToken()
    playbook = load_playbook(project.source, project.target, project.edition)
    rows = [r for r in _final_rows(project, run_id) if not r["rolled_back_at"]]
    by_part: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_part[row["part"]].append(row)
    out: list[FieldDiff] = []
    references: dict[tuple[str, str], Any] = {}
    done = 0
    with destination(project) as client:
        first = client.requests
        dest = _Destination(project, playbook, client)
        for part in load_order(playbook, project.source_object_names()):
            todo = [r for r in by_part.get(part.name, []) if r["source_object"] == part.obj]
            if not todo or dest.file_part(part):
                continue
            meta = dest.meta(part)
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            if part.group_by:  # a merged record is rebuilt from all its rows
                for _sid, raw in project.iter_staged(part.obj):
                    groups[group_id(part, raw, dest.builder.role_columns.get(part.obj, {}))].append(raw)
                staged = {}
            else:
                staged = _staged_rows(project, part.obj, [r["source_id"] for r in todo])
            for start in range(0, len(todo), READ_CHUNK):
                chunk = todo[start : start + READ_CHUNK]
                out += _compare(project, dest, part, meta, chunk, staged, groups, references)
                done += len(chunk)
                progress(ProgressEvent("sample", f"read back {part.qualified}", done, len(rows)))
                cancel.raise_if_cancelled()
        requests = client.requests - first
    return out, requests


def _compare(
    project: Project,
    dest: _Destination,
    part: Part,
    meta: Any,
    chunk: list[dict[str, Any]],
    staged: dict[str, dict[str, Any]],
    groups: dict[str, list[dict[str, Any]]],
    references: dict[tuple[str, str], Any],
) -> list[FieldDiff]:
    out: list[FieldDiff] = []
    built: list[tuple[dict[str, Any], dict[str, Any], list[_Expected]]] = []
    for row in chunk:
        sid = row["source_id"]
        members = groups.get(sid) if part.group_by else None
        raw = members[0] if members else staged.get(sid)

        def record_row(verdict: str, note: str, row: dict[str, Any] = row) -> FieldDiff:
            return FieldDiff(part.obj, row["source_id"], part.entity, row["dest_id"], "", None, None, None, verdict,
                             note=note)  # fmt: skip

        if raw is None:
            out.append(record_row("skipped", "the source record is no longer staged"))
            continue
        if row["action"] == "skipped":
            out.append(record_row("skipped", row["error_message"] or ""))
            continue
        if row["action"] == "failed":
            blamed = _blame(dest, part, meta, row, raw)
            out += blamed or [record_row("failed", row["error_message"] or row["error_code"] or "")]
            continue
        try:
            payload = dest.builder.build(part, sid, raw, meta, members if part.group_by else None)
        except (Skip, BuildError) as exc:  # the map changed since the run
            out.append(record_row("failed", f"the current map cannot build it: {exc}"))
            continue
        built.append((row, raw, dest.expected(part, raw, payload, meta)))
    names = sorted({e[0].read for _r, _raw, fields in built for e in fields})
    ids = [str(r["dest_id"]) for r, _raw, _f in built]
    stored = dest.read(part, meta, ids, names) if ids else {}
    for row, raw, fields in built:
        record = stored.get(dest.id_key(str(row["dest_id"])))
        head = (part.obj, row["source_id"], part.entity, row["dest_id"])
        for f, rule, source_field, source, expected in fields:
            value = None if record is None else record.get(f.read)
            judged = _verdict(f, source, expected, value)
            note = "" if record is not None else "the record is not at the destination"
            if rule is not None and judged in ("equal", "transformed"):
                note = _misread(rule.transform, _reference_spec(project, part.obj, rule, references), source, raw)
                judged = "misread" if note else judged
            shown = (_shown(f, expected), _shown(f, value))
            out.append(FieldDiff(*head, f.name, source, *shown, judged, source_field, note))
    return out


def _blame(dest: _Destination, part: Part, meta: Any, row: dict[str, Any], raw: dict[str, Any]) -> list[FieldDiff]:
    """One ``failed`` row per field rule that stops the record on its own (the dry run's way)."""
    out = []
    for rule in dest.builder.rules.get((part.obj, part.entity), []):
        try:
            dest.replay(part, rule, raw, meta)
        except BuildError as exc:
            head = (part.obj, row["source_id"], part.entity, None, dest.target(part, rule))
            out.append(FieldDiff(*head, raw.get(rule.source_field), None, None, "failed", rule.source_field, str(exc)))
    return out


def summarize_diff(rows: list[FieldDiff]) -> dict[str, Any]:
    """Counts by verdict, overall and per (object, field), flagged fields first."""
    verdicts = Counter(r.verdict for r in rows)
    per: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
    for r in rows:
        per[(r.source_object, r.source_field, r.target_entity, r.field)][r.verdict] += 1
    fields = [
        {"source_object": o, "source_field": s, "target_entity": e, "field": f, **{v: c.get(v, 0) for v in VERDICTS}}
        for (o, s, e, f), c in per.items()
    ]
    fields.sort(key=lambda x: (-sum(x[v] for v in FLAGGED), x["source_object"], x["target_entity"], x["field"]))
    return {
        "records": len({(r.source_object, r.source_id, r.target_entity) for r in rows}),
        "fields": len(rows),
        "verdicts": {v: verdicts.get(v, 0) for v in VERDICTS},
        "flagged": sum(verdicts.get(v, 0) for v in FLAGGED),
        "by_field": fields,
    }


# ---------------------------------------------------------------------------------------------- run


@dataclass
class SampleResult:
    """The sample run (load contract), the slice, every field compared, and their summary."""

    run: RunResult
    sample: dict[str, list[str]]
    rows: list[FieldDiff] = field(default_factory=list)
    summary: dict[str, Any] | None = None  # None when the run was cancelled before the read-back

    def to_json(self) -> dict[str, Any]:
        summary = None
        if self.summary is not None:
            summary = {k: v for k, v in self.summary.items() if k != "by_field"}
            summary["flagged_fields"] = [f for f in self.summary["by_field"] if any(f[v] for v in FLAGGED)]
            summary["flagged_rows"] = [r.to_json() for r in self.rows if r.flagged][:200]
        return {**self.run.to_json(), "sample": {o: len(ids) for o, ids in self.sample.items()}, "diff": summary}


def run_sample(
    project: Project,
    *,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    actor: str | None = None,
) -> SampleResult:
    """Select, load (run kind ``sample``), read back and diff; the diff summary and the map fingerprint are
    stored on the run (for :func:`sign_off`). Raises BlockedError while the map is unconfirmed."""
    from crmmigrator_gui.engine.run.load import load

    started = time.monotonic()
    cancel = cancel or CancelToken()
    subset = select_sample(project, size, seed)
    run = load(project, subset=subset, progress=progress, cancel=cancel, actor=actor)
    result = SampleResult(run, subset)
    if run.status not in ("completed", "completed_with_failures"):
        return result
    result.rows, requests = _diff(project, run.run_id, progress, cancel)
    result.summary = summarize_diff(result.rows)
    run.requests += requests
    run.seconds = round(time.monotonic() - started, 3)
    fingerprint = map_fingerprint(project)
    stats = json.loads(project.scalar("SELECT stats FROM runs WHERE id = ?", (run.run_id,)) or "{}")
    stats["diff"] = {k: v for k, v in result.summary.items() if k != "by_field"}
    stats["map_fingerprint"] = fingerprint
    detail = {"run_id": run.run_id, "verdicts": result.summary["verdicts"], "map_fingerprint": fingerprint}
    with project.step("sample read back", detail, actor=actor or current_actor()):
        project.db.conn.execute("UPDATE runs SET stats = ? WHERE id = ?", (json.dumps(stats), run.run_id))
    return result


def latest_sample(project: Project) -> dict[str, Any] | None:
    """The newest sample run that was not rolled back (id, status, stats), or None."""
    rows = project.query(
        "SELECT id, status, stats FROM runs WHERE kind = 'sample' AND status NOT IN ('rolled_back', 'running') "
        "ORDER BY id DESC LIMIT 1"
    )
    if not rows:
        return None
    return {**rows[0], "stats": json.loads(rows[0]["stats"] or "{}")}


def sign_off(project: Project, by: str, *, note: str = "") -> dict[str, Any]:
    """Record the sign-off of the latest sample (``signoff PROJECT --by NAME``).

    Refuses (BlockedError, exit 3) when no sample was read back, or when the map changed after it: the
    person signs off on records they saw move with this map.
    """
    sample = latest_sample(project)
    if sample is None or "map_fingerprint" not in sample["stats"]:
        raise BlockedError("no sample has been loaded and read back yet; run `crmmigrator sample PROJECT` first")
    if sample["stats"]["map_fingerprint"] != map_fingerprint(project):
        raise BlockedError(f"the map changed after sample run {sample['id']}; run the sample again, then sign off")
    return record_signoff(project, by, sample_run_id=int(sample["id"]), note=note)
