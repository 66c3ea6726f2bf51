"""Propose the field map, with a calibrated confidence and a human-readable reason for every row.

Signals, per (column, playbook role):

* **name**: the header against the role's own synonyms (the playbook's priors for this source
  platform) and its shared synonym clusters (``resources/mapping/synonyms.json``), normalised, then
  rapidfuzz (:mod:`names`);
* **content**: the column profile against the role's kind (an "Email" column of phone numbers is
  demoted; ids must be unique), and small enumerations against the known options (playbook value
  maps and the destination's option sets);
* **destination metadata**: the target column's type, length and required level, read once per run
  when the destination answers (degrades to "no metadata", said once);
* **ambiguity**: how far the choice is ahead of the next role for the column and the next column for
  the role;
* **memory**: what the user confirmed on earlier projects (:mod:`memory`).

The raw score becomes a probability through a monotone calibration table fitted on the FIT split of
the benchmark (``bench/automap``) and stored as data (``resources/mapping/calibration.json``).
Roles are assigned one-to-one, best first. Credentials and screen-only columns (Actions, Select,
``Unnamed: 3``, row numbers) are proposed as unmapped with the reason.
"""

from __future__ import annotations

import bisect
import contextlib
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from crmmigrator_gui.engine.mapping import memory as mapping_memory
from crmmigrator_gui.engine.mapping.names import (
    NameMatch,
    cluster_label,
    cluster_names,
    compact,
    do_not_migrate_kind,
    is_row_number_header,
    match_name,
    normalize,
    row_number_reason,
    slug,
    tokens_of,
    ui_values,
)
from crmmigrator_gui.engine.mapping.playbook import Playbook, Role, SourceObject, load_playbook
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.paths import resources_dir

NAME_FLOOR = 0.55  # below this a name is no evidence at all

# Which profiled types fit a role kind (profile.py's vocabulary); the first set is a confirmation.
_FITS: dict[str, tuple[set[str], set[str]]] = {
    "email": ({"email"}, set()),
    "phone": ({"phone"}, {"integer", "text"}),
    "date": ({"date", "datetime"}, {"integer"}),
    "datetime": ({"datetime", "date"}, set()),
    "money": ({"money", "decimal"}, {"integer"}),
    "decimal": ({"decimal", "integer", "money"}, set()),
    "integer": ({"integer"}, {"decimal"}),
    "boolean": ({"boolean"}, set()),
    "postcode": ({"postcode", "integer"}, {"text"}),
    "text": (set(), {"text", "longtext", "postcode", "integer", "url", "boolean", "decimal"}),
    "memo": ({"longtext"}, {"text"}),
    "enum": (set(), {"text", "boolean", "integer"}),
    "names": (set(), {"text", "longtext"}),
    "time": (set(), {"text", "datetime", "integer"}),
    "id": (set(), {"integer", "text", "postcode", "phone", "decimal", "email", "url"}),
    "reference": (set(), {"integer", "text", "postcode", "phone", "decimal", "email", "url"}),
}
_TYPE_WORDS = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "date": "dates",
    "datetime": "date-times",
    "money": "amounts",
    "decimal": "numbers",
    "integer": "whole numbers",
    "boolean": "yes/no values",
    "postcode": "postcodes",
    "text": "text",
    "longtext": "long text",
    "url": "web addresses",
}
_CUSTOM_TYPES = {
    "integer": "Integer",
    "decimal": "Decimal",
    "money": "Money",
    "boolean": "Boolean",
    "date": "DateOnly",
    "datetime": "DateTime",
    "longtext": "Memo",
}
# Destination column types (Dataverse and Salesforce vocabularies) -> the profiled types they accept.
_DEST_ACCEPTS: dict[str, set[str]] = {
    "boolean": {"boolean"},
    "integer": {"integer"},
    "decimal": {"integer", "decimal", "money"},
    "money": {"integer", "decimal", "money"},
    "date": {"date", "datetime", "integer"},
}
_DV_TYPES = {"Boolean": "boolean", "Integer": "integer", "BigInt": "integer", "Decimal": "decimal",
             "Double": "decimal", "Money": "money", "DateTime": "date", "DateOnly": "date",
             "Picklist": "choice", "Status": "choice", "State": "choice", "MultiSelectPicklist": "choice"}  # fmt: skip
_SCHEMA_SF_TYPES = {"Number": "decimal", "Currency": "money", "Checkbox": "boolean", "Date": "date",
                    "DateTime": "date", "Picklist": "choice", "MultiselectPicklist": "choice"}  # fmt: skip
_SF_TYPES = {"boolean": "boolean", "int": "integer", "double": "decimal", "percent": "decimal",
             "currency": "money", "date": "date", "datetime": "date", "picklist": "choice"}  # fmt: skip


@dataclass
class Proposal:
    source_object: str
    source_field: str
    target_entity: str | None
    target_field: str | None
    role: str | None
    transform: dict[str, Any]
    confidence: float
    reason: str
    evidence: float = 0.0  # the raw score before calibration (the benchmark fits the table on it)

    def to_json(self) -> dict[str, Any]:
        return {
            "source_object": self.source_object,
            "source_field": self.source_field,
            "target_entity": self.target_entity,
            "target_field": self.target_field,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
        }


# ------------------------------------------------------------------------------------------ calibration


@cache
def calibration() -> dict[str, Any]:
    """The fitted table (``resources/mapping/calibration.json``); identity when it is missing."""
    path = resources_dir() / "mapping" / "calibration.json"
    if not path.exists():
        return {"points": [[0.0, 0.0], [1.2, 1.0]], "propose_min": 0.3, "custom_field": 0.6}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def calibrate(z: float) -> float:
    """Raw evidence -> probability of being right: the monotone (isotonic) table, linearly interpolated."""
    points = calibration()["points"]
    xs = [p[0] for p in points]
    if z <= xs[0]:
        return float(points[0][1])
    if z >= xs[-1]:
        return float(points[-1][1])
    i = bisect.bisect_right(xs, z)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return float(y0 + (y1 - y0) * (z - x0) / (x1 - x0)) if x1 > x0 else float(y1)


# ------------------------------------------------------------------------------------------ destination


@dataclass
class FieldInfo:
    kind: str  # text / boolean / integer / decimal / money / date / choice / other
    max_length: int | None
    required: bool
    options: tuple[str, ...]
    planned: bool = False  # not at the destination yet; the playbook's schema creates it


@dataclass
class Destination:
    """Column metadata of the playbook's target entities, or a note saying why there is none."""

    fields: dict[str, dict[str, FieldInfo]] = field(default_factory=dict)
    note: str | None = None

    def info(self, entity: str, column: str) -> FieldInfo | None:
        return self.fields.get(entity.lower(), {}).get(column.lower())

    def knows(self, entity: str) -> bool:
        return entity.lower() in self.fields


def read_destination(project: Project, playbook: Playbook, client: Any = None) -> Destination:
    """Read target metadata once (through ``client``, else the project's own connection); any failure means
    "no metadata" with one note, never a failed automap."""
    dest = Destination()
    try:
        from crmmigrator_gui.engine.target.connection import destination

        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(destination(project))
            for entity in playbook.target_entities():
                try:
                    dest.fields[entity.lower()] = _entity_fields(client, project.target, entity)
                except Exception:  # noqa: BLE001 - a table the schema step creates later is simply unknown
                    continue
    except Exception as exc:  # noqa: BLE001 - unreachable, signed out, faults: propose from names and content
        dest.note = f"destination metadata not read ({str(exc).splitlines()[0][:120] or type(exc).__name__})"
    _add_planned(dest, playbook)
    return dest


def _add_planned(dest: Destination, playbook: Playbook) -> None:
    """Columns the schema step creates (custom tables' name columns, custom columns, lookups) count as known."""
    schema = playbook.schema
    salesforce = playbook.key_column.endswith("__c")
    for table in schema.get("tables", []):
        primary = "Name" if salesforce else table.get("primary", "new_name")
        dest.fields.setdefault(table["name"].lower(), {}).setdefault(primary.lower(), FieldInfo("text", None, True, ()))
    for column in schema.get("columns", []):
        kind = _DV_TYPES.get(column.get("type", ""), _SCHEMA_SF_TYPES.get(column.get("type", ""), "text"))
        options = column.get("options", column.get("values", ()))
        dest.fields.setdefault(column["entity"].lower(), {}).setdefault(
            column["name"].lower(),
            FieldInfo(
                kind,
                column.get("max_length", column.get("length")),
                False,
                tuple(str(o.get("label", o)) if isinstance(o, dict) else str(o) for o in options),
                planned=True,
            ),
        )
    for rel in schema.get("relationships", []):
        dest.fields.setdefault(rel["entity"].lower(), {}).setdefault(
            rel["column"].lower(), FieldInfo("other", None, False, (), planned=True)
        )


def _entity_fields(client: Any, target: str, entity: str) -> dict[str, FieldInfo]:
    result: dict[str, FieldInfo] = {}
    if target == "salesforce":
        for name, f in client.describe(entity).fields.items():
            kind = _SF_TYPES.get(
                f.type, "text" if f.type in ("string", "textarea", "email", "phone", "url") else "other"
            )
            result[name.lower()] = FieldInfo(kind, f.length or None, f.required_on_create, tuple(f.picklist_values))
        return result
    meta = client.entity(entity)
    for name, a in meta.attributes.items():
        kind = (
            "date"
            if a.type == "DateTime"
            else _DV_TYPES.get(a.type, "text" if a.type in ("String", "Memo") else "other")
        )
        required = a.required in ("ApplicationRequired", "SystemRequired")
        result[name.lower()] = FieldInfo(kind, a.max_length, required, tuple(a.options.values()))
    return result


# ------------------------------------------------------------------------------------------ signals


def _profile_values(profile: dict[str, Any], key: str) -> list[Any]:
    value = profile.get(key)
    return json.loads(value) if isinstance(value, str) else list(value or [])


def _vocabulary(role: Role, targets: list[tuple[str, str]], dest: Destination) -> set[str]:
    words = set()
    suggest = (role.value_map or {}).get("suggest", {})
    for key, label in suggest.items():
        words.add(compact(str(key)))
        words.add(compact(str(label)))
    for entity, column in targets:
        info = dest.info(entity, column)
        if info:
            words.update(compact(o) for o in info.options if o)
    words.discard("")
    return words


def _enum_fit(profile: dict[str, Any], vocab: set[str]) -> tuple[float, str]:
    """Share of a small enumeration's rows whose value is a known option."""
    top = _profile_values(profile, "top_values")
    total = sum(int(n) for _v, n in top) or 1
    known = sum(int(n) for v, n in top if compact(str(v)) in vocab)
    share = known / total
    return share, f"{share:.0%} of values are known options ({len(top)} distinct)"


def content_fit(
    role: Role, profile: dict[str, Any] | None, records: int, vocab: set[str], *, composite: bool = False
) -> tuple[float, str]:
    """Adjustment to the name score from what the values look like, with the words for the reason."""
    if profile is None or profile["inferred_type"] == "empty":
        return -0.04, "column is empty"
    inferred = profile["inferred_type"]
    words = _TYPE_WORDS.get(inferred, inferred)
    filled = f"{profile['fill_rate']:.0%} filled"
    confirm, neutral = _FITS.get(role.kind, (set(), set(_TYPE_WORDS)))
    distinct = int(profile.get("distinct_count") or profile.get("distinct") or 0)
    filled_rows = max(1, round(profile["fill_rate"] * records))
    if role.kind == "id" and not composite:
        if distinct < filled_rows * 0.98:
            return -0.25, f"but values repeat ({distinct} distinct in {filled_rows} rows), so not an id"
        return 0.02, f"{filled}, every value unique"
    if role.kind == "enum":
        if vocab and distinct <= 60:
            share, text = _enum_fit(profile, vocab)
            if share >= 0.5:
                return 0.04 * share, text
        if distinct > max(60, 0.5 * filled_rows) and inferred in ("text", "longtext"):
            return -0.12, f"but {distinct} distinct values are too many for a choice"
        if inferred in neutral or inferred in confirm:
            return 0.0, f"{filled}, {distinct} distinct values"
    if inferred in confirm:  # the profile names a type only when at least 90% of the values fit it
        return 0.03, f"{filled}, 90%+ of values parse as {words}"
    if inferred in neutral or role.kind in ("text", "memo", "names"):
        return 0.0, f"{filled}, values are {words}"  # free text takes anything
    if inferred in ("text", "longtext"):
        return -0.08, f"{filled}, but not all values parse as {role.kind}"  # dirty values or a wrong guess
    strong = {"email", "phone", "date", "datetime", "money", "url"}
    penalty = -0.4 if inferred in strong or role.kind in strong else -0.15
    return penalty, f"but values look like {words}, not {role.kind}"


def meta_fit(
    role: Role, profile: dict[str, Any] | None, targets: list[tuple[str, str]], dest: Destination
) -> tuple[float, str]:
    """Adjustment from the destination column: does it exist, take this type, hold this length?"""
    if not targets or role.kind in ("id", "reference", "secret"):
        return 0.0, ""
    entity, column = targets[0]
    if not dest.knows(entity):
        return 0.0, ""
    info = dest.info(entity, column)
    if info is None:
        return -0.12, f"{entity}.{column} is not at the destination"
    inferred = (profile or {}).get("inferred_type", "empty")
    words = [f"{entity}.{column}" + (" (created by the schema step)" if info.planned else "")]
    adjust = 0.0
    accepts = _DEST_ACCEPTS.get(info.kind)
    if accepts and inferred not in accepts | {"empty", "text", "longtext"}:
        adjust -= 0.12
        words.append(f"a {info.kind} column, values are {_TYPE_WORDS.get(inferred, inferred)}")
    longest = int((profile or {}).get("max_length") or 0)
    if info.kind == "text" and info.max_length and longest > info.max_length:
        adjust -= 0.04
        words.append(f"values up to {longest} characters, the column holds {info.max_length}")
    elif info.kind == "text" and info.max_length:
        words.append(f"text up to {info.max_length}")
    if info.required:
        words.append("required")
    return adjust, ", ".join(words)


def dnm_by_content(column: str, profile: dict[str, Any] | None, records: int) -> str | None:
    """Screen-only columns that only their values give away: row numbers and button labels."""
    if profile is None:
        return None
    samples = [str(s) for s in _profile_values(profile, "samples")]
    top = [str(v).strip().lower() for v, _n in _profile_values(profile, "top_values")]
    if top and all(v in ui_values() for v in top):
        return "values are screen controls (" + ", ".join(repr(v) for v in top[:3]) + "), not data"
    if (
        is_row_number_header(column)
        and profile["inferred_type"] == "integer"
        and int(profile.get("distinct_count") or 0) >= records
        and samples[:3] == [str(i) for i in range(1, min(4, len(samples) + 1))]
    ):
        return row_number_reason()
    return None


# ------------------------------------------------------------------------------------------ proposing


def propose(
    project: Project, *, use_destination: bool = True, propose_min: float | None = None, client: Any = None
) -> tuple[list[Proposal], list[Proposal]]:
    """Compute proposals (mapped) and unmapped rows for every imported object.

    ``propose_min`` overrides the calibrated floor under which a role is too uncertain to propose
    (the benchmark passes 0 to see every choice).
    """
    playbook = load_playbook(project.source, project.target, project.edition)
    if use_destination:
        dest = read_destination(project, playbook, client)
    else:
        dest = Destination(note="destination not consulted")
    recall = mapping_memory.Recall(project)
    proposals: list[Proposal] = []
    unmapped: list[Proposal] = []
    for row in project.query("SELECT name, columns, id_field, record_count, details FROM source_objects ORDER BY name"):
        obj = playbook.obj(row["name"])
        columns: list[str] = json.loads(row["columns"])
        profiles = {p["field"]: p for p in project.query("SELECT * FROM profiles WHERE object = ?", (obj.name,))}
        id_columns = [c.strip() for c in (row["id_field"] or "").split(" + ") if c.strip() in columns]
        ctx = _Context(playbook, obj, columns, profiles, int(row["record_count"] or 0), id_columns, dest, recall)
        ctx.propose_min = propose_min
        mapped, rest = ctx.run()
        dropped = json.loads(row["details"] or "{}").get("dropped_columns", [])
        for column in dropped:
            rest.append(
                Proposal(obj.name, column, None, None, None, {}, 0.99, "dropped at import: credentials never migrate")
            )
        proposals.extend(mapped)
        unmapped.extend(rest)
    if dest.note and (proposals or unmapped):
        first = (proposals or unmapped)[0]
        first.reason = f"{first.reason}; {dest.note} (said once for this run)"
    return proposals, unmapped


@dataclass
class _Choice:
    column: str
    role: Role | None
    score: float
    reason: str
    confidence: float = 0.0
    target: tuple[str, str] | None = None  # a remembered target outside the playbook's roles
    unmapped: bool = False
    remembered: int = 0  # earlier projects that confirmed ``target``


class _Context:
    """One object's columns against its roles."""

    def __init__(
        self,
        playbook: Playbook,
        obj: SourceObject,
        columns: list[str],
        profiles: dict[str, dict[str, Any]],
        records: int,
        id_columns: list[str],
        dest: Destination,
        recall: mapping_memory.Recall,
    ) -> None:
        self.playbook, self.obj, self.columns, self.profiles = playbook, obj, columns, profiles
        self.records, self.id_columns, self.dest, self.recall = records, id_columns, dest, recall
        self.context = tokens_of((obj.name, obj.label, *obj.sheet_aliases))
        self.propose_min: float | None = None
        self.exact: set[tuple[str, str]] = set()  # (column, role) pairs whose header names the role exactly
        # The import found the id column(s) in id-role order; they stay the id, whatever their names say.
        self.id_role_of = (
            dict(zip(id_columns, obj.id_roles, strict=False)) if len(id_columns) == len(obj.id_roles) else {}
        )

    # ---------------------------------------------------------------- scoring
    def role_targets(self, role: Role) -> list[tuple[str, str]]:
        resolved = [self.playbook.entity_of_target(self.obj, t) for t in role.targets]
        return [r for r in resolved if r is not None]

    def name_match(self, column: str, role: Role) -> NameMatch:
        return match_name(column, role.synonyms, cluster_names(role.clusters), self.context)

    def score(self, column: str, role: Role) -> tuple[float, str] | None:
        name = self.name_match(column, role)
        if name.score < NAME_FLOOR:
            return None
        profile = self.profiles.get(column)
        targets = self.role_targets(role)
        vocab = _vocabulary(role, targets, self.dest) if role.kind == "enum" else set()
        content, content_words = content_fit(role, profile, self.records, vocab, composite=len(self.obj.id_roles) > 1)
        meta, meta_words = meta_fit(role, profile, targets, self.dest)
        if name.source == "playbook":
            how = "playbook name"
        elif name.source == "synonym":
            how = "synonym: " + next(
                (cluster_label(c) for c in role.clusters if name.synonym in cluster_names((c,))), ""
            )
        else:
            how = f"similar, {name.score:.0%}"
        if name.exact:
            self.exact.add((column, role.name))
        relation = "=" if name.exact else "≈"
        parts = [f"name {column!r} {relation} {name.synonym!r} ({how})", content_words]
        if meta_words:
            parts.append(meta_words)
        return name.score + content + meta, "; ".join(p for p in parts if p)

    def run(self) -> tuple[list[Proposal], list[Proposal]]:
        dnm: dict[str, str] = {}
        for column in self.columns:
            if column in self.id_columns:
                continue
            kind = do_not_migrate_kind(column)
            why = kind[1] if kind else dnm_by_content(column, self.profiles.get(column), self.records)
            for role in self.obj.roles.values():
                if not why and role.do_not_migrate and self.name_match(column, role).score >= 0.86:
                    why = role.do_not_migrate
            if why:
                dnm[column] = why
        scores: dict[tuple[str, str], tuple[float, str]] = {}
        roles = [r for r in self.obj.roles.values() if not r.do_not_migrate]
        for column in self.columns:
            if column in dnm:
                continue
            for role in roles:
                if self.id_role_of.get(column) == role.name:
                    scored = self.score(column, role)
                    words = scored[1] if scored else f"column {column!r}"
                    scores[(column, role.name)] = (1.1, f"{words}; the import's id column")
                    continue
                scored = self.score(column, role)
                if scored:
                    scores[(column, role.name)] = scored
        choices = self.assign(scores)
        self.apply_memory(choices, scores)
        return self.emit(choices, dnm)

    def assign(self, scores: dict[tuple[str, str], tuple[float, str]]) -> dict[str, _Choice]:
        """One-to-one assignment with the most total evidence, then confidence from score and margin.

        Evidence counts as ``(score - 0.5)²``, so one exact name outweighs two fair guesses, yet "Title"
        gives way to "Salutation" for the salutation when it has another plausible home (job title).
        """
        pairs = {
            key: value
            for key, value in scores.items()
            if not (key[0] in self.id_role_of and self.id_role_of[key[0]] != key[1])  # the id column stays the id
        }
        by_column = _best_assignment(pairs, self.columns)
        by_role = {role: column for column, role in by_column.items()}
        choices: dict[str, _Choice] = {}
        margin_cap = calibration().get("margin", 0.12)
        for column, role_name in by_column.items():
            s, reason = scores[(column, role_name)]
            rivals = []
            for (c, r), (other, _w) in scores.items():
                if c == column and r != role_name:
                    holder = by_role.get(r)  # a role another column holds with a better score is no rival
                    if holder is None or scores[(holder, r)][0] < other:
                        rivals.append(other)
                elif r == role_name and c != column:
                    own = by_column.get(c)  # a column happily placed elsewhere is no rival
                    if own is None or scores[(c, own)][0] < other:
                        rivals.append(other)
            margin = s - max(rivals) if rivals else margin_cap
            z = s - max(0.0, margin_cap - margin)
            if margin < margin_cap and rivals:
                reason += f"; close call (runner-up {max(rivals):.2f})"
            choices[column] = _Choice(column, self.obj.roles[role_name], z, reason, calibrate(z))
        return choices

    def apply_memory(self, choices: dict[str, _Choice], scores: dict[tuple[str, str], tuple[float, str]]) -> None:
        """Earlier confirmations raise the same choice; a different one can win only with enough of them."""
        if not self.recall:
            return
        held = {c.role.name: c.column for c in choices.values() if c.role}
        for column in self.columns:
            remembered = self.recall.lookup(self.obj.name, column)
            if not remembered:
                continue
            current = choices.get(column)
            best = remembered[0]
            n = best.count
            earlier = f"{n} earlier project{'s' if n != 1 else ''}"
            current_targets = (
                set(self.role_targets(current.role)) | self._extra_targets(current.role)
                if current and current.role
                else set()
            )
            if best.unmapped:
                same = current is None
            elif current and current.target:
                same = current.target == (best.target_entity, best.target_field)
            else:
                same = (best.target_entity, best.target_field) in current_targets
            if same and current is not None:
                current.confidence = 1 - (1 - current.confidence) * 0.5**n
                current.reason += f"; you confirmed this on {earlier}"
                continue
            # A different remembered choice: its own evidence, boosted per confirmation, against the current one.
            role = self._role_for_target((best.target_entity, best.target_field))
            own = 0.0
            if role is not None and (column, role.name) in scores:
                own = calibrate(scores[(column, role.name)][0])
            boosted = 1 - (1 - own) * 0.5**n
            demoted = (current.confidence if current else 0.0) * 0.8**n
            where = "left it unmapped" if best.unmapped else f"mapped it to {best.target_entity}.{best.target_field}"
            if boosted <= demoted or (role is not None and held.get(role.name, column) != column):
                if current is not None:
                    current.confidence = demoted
                    current.reason += f"; but you {where} on {earlier}"
                continue
            if current is not None and current.role:
                held.pop(current.role.name, None)
            reason = f"you {where} on {earlier}"
            if best.unmapped:
                choices[column] = _Choice(column, None, 0.0, reason, boosted, unmapped=True)
            elif role is not None:
                choices[column] = _Choice(column, role, 0.0, reason, boosted)
                held[role.name] = column
            else:
                target = (best.target_entity, best.target_field)
                choices[column] = _Choice(column, None, 0.0, reason, boosted, target, remembered=n)

    def _extra_targets(self, role: Role) -> set[tuple[str, str]]:
        """Key, lookup and owner rows a role produces besides its targets."""
        extra = set()
        for part in self.obj.parts:
            if role.name in self.obj.id_roles:
                extra.add((part.entity, self.playbook.key_column))
            for lookup in part.lookups:
                if lookup["by_role"] == role.name:
                    extra.add((part.entity, lookup["column"]))
            if (part.owner or {}).get("by_role") == role.name:
                extra.add((part.entity, "ownerid"))
        return extra

    def _role_for_target(self, target: tuple[str, str]) -> Role | None:
        for role in self.obj.roles.values():
            if target in set(self.role_targets(role)) | self._extra_targets(role):
                return role
        return None

    # ---------------------------------------------------------------- output
    def emit(self, choices: dict[str, _Choice], dnm: dict[str, str]) -> tuple[list[Proposal], list[Proposal]]:
        cal = calibration()
        propose_min = float(cal.get("propose_min", 0.3) if self.propose_min is None else self.propose_min)
        mapped: list[Proposal] = []
        unmapped: list[Proposal] = []
        obj = self.obj
        for column in self.columns:
            profile = self.profiles.get(column)
            if column in dnm:
                unmapped.append(Proposal(obj.name, column, None, None, None, {}, 0.95, f"not migrated: {dnm[column]}"))
                continue
            choice = choices.get(column)
            if choice is not None and choice.unmapped:
                unmapped.append(Proposal(obj.name, column, None, None, None, {}, choice.confidence, choice.reason))
                continue
            if choice is not None and choice.target is not None:
                entity, target_field = choice.target
                custom = self.custom_column(column, profile, float(cal.get("custom_field", 0.6)))
                if custom is not None and (custom.target_entity, custom.target_field) == choice.target:
                    # The user kept the custom column this proposes anyway: the same choice, more confidence.
                    custom.confidence = 1 - (1 - custom.confidence) * 0.5**choice.remembered
                    n = choice.remembered
                    custom.reason += f"; you confirmed this on {n} earlier project{'s' if n != 1 else ''}"
                    mapped.append(custom)
                    continue
                mapped.append(
                    Proposal(
                        obj.name, column, entity, target_field, None, {"type": "text"}, choice.confidence, choice.reason
                    )
                )
                continue
            # An exact name keeps its role even when doubtful (the reason says why); a weak guess falls back.
            named = choice is not None and choice.role is not None and (column, choice.role.name) in self.exact
            if choice is not None and choice.role is not None and (choice.confidence >= propose_min or named):
                rows = _rows_for_role(
                    self.playbook, obj, choice.role, column, choice.confidence, choice.reason, profile
                )
                for row in rows:
                    row.evidence = choice.score
                if rows:
                    mapped.extend(rows)
                else:
                    why = choice.role.do_not_migrate or f"{choice.reason}; used only to link or group rows"
                    unmapped.append(
                        Proposal(obj.name, column, None, None, choice.role.name, {}, choice.confidence, why)
                    )
                continue
            custom = self.custom_column(column, profile, float(cal.get("custom_field", 0.6)))
            if custom is not None:
                mapped.append(custom)
                continue
            if choice is not None and choice.role is not None:
                hint = f"too uncertain to propose ({choice.confidence:.0%}): {choice.reason}"
            else:
                hint = self.closest_hint(column)
            unmapped.append(Proposal(obj.name, column, None, None, None, {}, 0.0, hint))
        return mapped, unmapped

    def custom_column(self, column: str, profile: dict[str, Any] | None, confidence: float) -> Proposal | None:
        obj = self.obj
        prefix = obj.custom_fields_prefix or ""
        suffix = obj.custom_fields_suffix or ""
        if not (
            obj.custom_fields
            and profile
            and profile["inferred_type"] != "empty"
            and column.startswith(prefix)
            and column.endswith(suffix)
        ):
            return None
        entity = obj.custom_fields
        field_name = f"new_cf_{slug(column[len(prefix) : len(column) - len(suffix)] or column)}"
        if self.playbook.key_column.endswith("__c"):  # Salesforce: custom fields are Name__c, not new_…
            from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

            field_name = custom_field_name(field_name)
        col_type = _CUSTOM_TYPES.get(profile["inferred_type"], "String")
        samples = _profile_values(profile, "samples")
        if col_type == "Integer" and any(str(v).startswith("0") and len(str(v)) > 1 for v in samples):
            col_type = "String"  # codes with leading zeros ("0012") must stay text
        identifier_words = {"code", "pin", "zip", "postcode", "phone", "number", "id", "ref", "reference", "sku"}
        if col_type in ("Integer", "Decimal") and identifier_words & set(normalize(column).split()):
            col_type = "String"  # a gate code or a reference is an identifier, not a quantity to sum
        transform = _transform_for(self.playbook, None, profile)
        if col_type == "String" and transform.get("type") in ("integer", "decimal", "money"):
            transform = {"type": "text"}
        transform["custom_type"] = col_type
        return Proposal(
            obj.name,
            column,
            entity,
            field_name,
            None,
            transform,
            confidence,
            f"no standard field matches {column!r}; tenant custom field → new {col_type} column "
            f"{field_name} on {entity} ({profile['fill_rate']:.0%} filled)",
        )

    def closest_hint(self, column: str) -> str:
        best: tuple[float, str] = (0.0, "")
        for role in self.obj.roles.values():
            match = self.name_match(column, role)
            if match.score > best[0]:
                best = (match.score, match.synonym)
        return f"no role matches; closest known name {best[1]!r} ({best[0]:.0%})" if best[1] else "no role matches"


def _best_assignment(scores: dict[tuple[str, str], tuple[float, str]], columns: list[str]) -> dict[str, str]:
    """column -> role maximising the summed utility (Hungarian method, roles as rows; O(roles² × columns))."""
    roles = sorted({r for _c, r in scores})
    cols = [c for c in columns if any((c, r) in scores for r in roles)]
    if not roles or not cols:
        return {}
    # Pad with dummy columns so every role can also stay unassigned (utility 0).
    width = len(cols) + len(roles)
    n = len(roles)
    inf = float("inf")

    def cost(i: int, j: int) -> float:
        if j >= len(cols):
            return 0.0
        pair = scores.get((cols[j], roles[i]))
        # Ties go to the earlier column (a small, position-based nudge), as readers expect.
        return -(max(0.0, pair[0] - 0.5) ** 2) + j * 1e-9 if pair else 0.0

    u = [0.0] * (n + 1)
    v = [0.0] * (width + 1)
    match = [0] * (width + 1)  # column (1-based) -> role row (1-based)
    way = [0] * (width + 1)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = [inf] * (width + 1)
        used = [False] * (width + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            for j in range(1, width + 1):
                if not used[j]:
                    cur = cost(i0 - 1, j - 1) - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(width + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    result = {}
    for j in range(1, len(cols) + 1):
        i = match[j]
        if i and (cols[j - 1], roles[i - 1]) in scores and scores[(cols[j - 1], roles[i - 1])][0] > 0.5:
            result[cols[j - 1]] = roles[i - 1]
    return result


def _transform_for(playbook: Playbook, role: Role | None, profile: dict[str, Any] | None) -> dict[str, Any]:
    kind = role.kind if role else (profile or {}).get("inferred_type", "text")
    spec: dict[str, Any] = {"type": kind}
    if kind in ("date", "datetime"):
        spec["format"] = (profile or {}).get("date_format") or playbook.default_date_format
        spec["tz"] = playbook.default_timezone
    return spec


def _rows_for_role(
    playbook: Playbook,
    obj: SourceObject,
    role: Role,
    column: str,
    confidence: float,
    reason: str,
    profile: dict[str, Any] | None,
) -> list[Proposal]:
    if role.do_not_migrate:
        return []
    rows: list[Proposal] = []
    if role.name in obj.id_roles:
        for part in obj.parts:
            rows.append(
                Proposal(
                    obj.name,
                    column,
                    part.entity,
                    playbook.key_column,
                    role.name,
                    {"type": "key"},
                    confidence,
                    f"{reason}; source id → alternate key",
                )
            )
    for part in obj.parts:
        for lookup in part.lookups:
            if lookup["by_role"] == role.name:
                rows.append(
                    Proposal(
                        obj.name,
                        column,
                        part.entity,
                        lookup["column"],
                        role.name,
                        {"type": "lookup", "to": lookup["to"]},
                        confidence,
                        f"{reason}; lookup → {lookup['to']}",
                    )
                )
        owner = part.owner or {}
        if owner.get("by_role") == role.name:
            rows.append(
                Proposal(
                    obj.name,
                    column,
                    part.entity,
                    "ownerid",
                    role.name,
                    {"type": "owner"},
                    confidence,
                    f"{reason}; owner = field worker matched to a user by e-mail",
                )
            )
    for target in role.targets:
        resolved = playbook.entity_of_target(obj, target)
        if resolved is None:
            continue
        entity, target_field = resolved
        rows.append(
            Proposal(
                obj.name,
                column,
                entity,
                target_field,
                role.name,
                _transform_for(playbook, role, profile),
                confidence,
                reason,
            )
        )
    return rows
