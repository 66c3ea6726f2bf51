"""Read-back reconciliation: field totals and choice distributions, source against destination.

Why read back instead of trusting the crosswalk: a record can be deleted, edited or rolled back at the
destination after the load, and a status can fail to apply after create. Only what the destination returns
over HTTP proves the migration. The source side is computed from staging with the same transform spec the
loader used (with the playbook's defaults bound), so a difference points at the destination, not at parsing.

Per money/decimal/integer column mapped (one line per source column → destination column):

- ``source_total``: every staged value that parses; ``unparsed`` counts those that do not (they fail the load);
- ``expected_total``: the values of the records this project loaded (those with a destination id in ``xref``);
- ``destination_total``: the sum read back for exactly those destination ids (batched by id);
- ``difference`` = destination − expected; ``not_loaded_total`` = source − expected (failed or skipped records);
- ``verdict``: ``match`` (all loaded, equal), ``explained`` (equal, but some records did not load: see the
  failures), ``mismatch`` (the destination holds something else or lost records; ``missing`` lists them).

Picklists: per destination option, the staged records whose value maps to it, those loaded, and the records
that carry it at the destination.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook, load_playbook
from crmmigrator_gui.engine.mapping.values import mapped_value
from crmmigrator_gui.engine.plan.order import group_id, role_columns
from crmmigrator_gui.engine.project.store import Project

NUMERIC_TRANSFORMS = ("money", "decimal", "integer")
READ_CHUNK = 100  # destination ids per request: keeps a Dataverse URL and a SOQL IN list short
MISSING_LISTED = 50


@dataclass
class _Rule:
    source_object: str
    source_field: str
    target_entity: str
    target_field: str
    transform: dict[str, Any]
    part: Part


@dataclass
class _Column:
    """What the destination should hold per loaded source record, for one rule."""

    rule: _Rule
    expected: dict[str, Any] = field(default_factory=dict)  # source id -> converted value (loaded records)
    source_total: Decimal = Decimal(0)
    source_values: int = 0
    unparsed: int = 0
    unparsed_ids: list[str] = field(default_factory=list)


def reconcile(project: Project, client: Any | None = None) -> dict[str, Any]:
    """Totals and distributions, read back through ``client`` (or the project's destination, opened here)."""
    loaded = _loaded(project)
    if client is None and loaded:
        from crmmigrator_gui.engine.target.connection import destination

        with destination(project) as opened:
            return reconcile(project, opened)
    # Nothing loaded yet: the source side alone, without opening a connection.
    playbook = load_playbook(project.source, project.target, project.edition)
    requests_before = int(getattr(client, "requests", 0))
    rules = _rules(project, playbook)
    numeric = [r for r in rules if r.transform.get("type") in NUMERIC_TRANSFORMS]
    choices = _choice_rules(project, client, rules)
    reads: dict[tuple[str, str], set[str]] = defaultdict(set)  # (entity, part) -> columns to read back
    for rule in numeric + [c for c, _ in choices]:
        reads[(rule.target_entity, rule.part.name)].add(rule.target_field)
    dest_rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for (entity, part_name), columns in reads.items():
        ids = list(loaded.get((entity, part_name), {}).values())
        dest_rows[(entity, part_name)] = read_back(project, client, entity, ids, sorted(columns))
    totals = [_total_line(project, playbook, rule, loaded, dest_rows) for rule in numeric]
    distributions = [
        line for rule, options in choices for line in _distribution(project, playbook, rule, options, loaded, dest_rows)
    ]
    return {
        "field_totals": totals,
        "distributions": distributions,
        "read_requests": int(getattr(client, "requests", 0)) - requests_before,
    }


# ---------------------------------------------------------------------------------------------- inputs


def _rules(project: Project, playbook: Playbook) -> list[_Rule]:
    """Confirmed field maps with a destination column, each tied to the playbook part that writes it."""
    parts = {(p.obj, p.entity): p for o in playbook.objects for p in o.parts}
    names = set(project.source_object_names())
    out = []
    for row in project.query(
        "SELECT source_object, source_field, target_entity, target_field, transform FROM field_maps "
        "WHERE status = 'confirmed' AND target_entity IS NOT NULL AND target_field IS NOT NULL ORDER BY id"
    ):
        part = parts.get((row["source_object"], row["target_entity"]))
        if part is None or row["source_object"] not in names:
            continue
        spec = json.loads(row["transform"])
        if spec.get("type") in ("key", "lookup", "owner"):
            continue
        spec = transforms.bind(spec, region=playbook.raw.get("default_phone_region"), tz=playbook.default_timezone)
        out.append(
            _Rule(row["source_object"], row["source_field"], row["target_entity"], row["target_field"], spec, part)
        )
    return out


def _loaded(project: Project) -> dict[tuple[str, str], dict[str, str]]:
    """(entity, part) -> {source id: destination id} for every record the project currently has at the destination."""
    out: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for row in project.query("SELECT target_entity, part, source_id, dest_id FROM xref"):
        out[(row["target_entity"], row["part"])][row["source_id"]] = row["dest_id"]
    return out


def _records(project: Project, part: Part) -> list[tuple[str, dict[str, Any]]]:
    """(source id as the loader keys it, row) — a grouped part is keyed by group and built from its first member."""
    rows = list(project.iter_staged(part.obj))
    if not part.group_by:
        return rows
    columns = role_columns(project).get(part.obj, {})
    first: dict[str, dict[str, Any]] = {}
    for _sid, raw in rows:
        first.setdefault(group_id(part, raw, columns), raw)
    return list(first.items())


def _convert(rule: _Rule, raw: dict[str, Any]) -> Any:
    """The value the loader would write (raises TransformError as the loader's BAD_VALUE does)."""
    return transforms.convert(rule.transform, raw.get(rule.source_field), row=raw).value


# ---------------------------------------------------------------------------------------------- read back


def read_back(project: Project, client: Any, entity: str, ids: list[str], columns: list[str]) -> dict[str, dict]:
    """{destination id: {column: value}} for the ids that still exist; numbers come back as Decimal."""
    if not ids:
        return {}
    if project.target == "salesforce":
        return _read_salesforce(client, entity, ids, columns)
    return _read_dataverse(client, entity, ids, columns)


def _read_dataverse(client: Any, entity: str, ids: list[str], columns: list[str]) -> dict[str, dict]:
    from crmmigrator_gui.engine.target.dataverse import error_of

    meta = client.entity(entity)
    select = sorted({*columns, meta.primary_id})
    headers = {"Prefer": "odata.maxpagesize=5000", "If-None-Match": "null"}
    found: dict[str, dict] = {}
    for start in range(0, len(ids), READ_CHUNK):
        values = ",".join(json.dumps(i) for i in ids[start : start + READ_CHUNK])
        flt = f"Microsoft.Dynamics.CRM.In(PropertyName='{meta.primary_id}',PropertyValues=[{values}])"
        response = client.send(
            "GET", meta.entity_set, headers=headers, params={"$select": ",".join(select), "$filter": flt}
        )
        while True:
            if response.status_code >= 400:
                code, message = error_of(response)
                raise DestinationError(f"reading back {entity}: {message} ({response.status_code} {code})")
            data = json.loads(response.content, parse_float=Decimal)  # money stays exact
            for row in data.get("value", []):
                found[str(row[meta.primary_id])] = row
            next_link = data.get("@odata.nextLink")
            if not next_link:
                break
            response = client.http.request("GET", next_link, headers=headers)
    return found


def _read_salesforce(client: Any, sobject: str, ids: list[str], columns: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    fields = ", ".join(sorted({*columns, "Id"}))
    for start in range(0, len(ids), READ_CHUNK):
        quoted = ", ".join("'" + i.replace("'", "") + "'" for i in ids[start : start + READ_CHUNK])
        for row in client.query(f"SELECT {fields} FROM {sobject} WHERE Id IN ({quoted})"):
            found[str(row["Id"])[:15]] = {k: _exact(v) for k, v in row.items()}
    return found


def _exact(value: Any) -> Any:
    """A float from a JSON parser as the Decimal it was written as (its shortest repr)."""
    return Decimal(repr(value)) if isinstance(value, float) else value


def _dest_key(project: Project, dest_id: str) -> str:
    # Salesforce answers with 18-character ids; the crosswalk may hold either form.
    return dest_id[:15] if project.target == "salesforce" else dest_id


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# ---------------------------------------------------------------------------------------------- totals


def _total_line(
    project: Project,
    playbook: Playbook,
    rule: _Rule,
    loaded: dict[tuple[str, str], dict[str, str]],
    dest_rows: dict[tuple[str, str], dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    ids = loaded.get((rule.target_entity, rule.part.name), {})
    rows = dest_rows.get((rule.target_entity, rule.part.name), {})
    column = _Column(rule)
    records = 0
    for sid, raw in _records(project, rule.part):
        records += 1
        try:
            value = _convert(rule, raw)
        except transforms.TransformError:
            column.unparsed += 1
            if len(column.unparsed_ids) < MISSING_LISTED:
                column.unparsed_ids.append(sid)
            continue
        number = _number(value)
        if number is not None:
            column.source_total += number
            column.source_values += 1
        if sid in ids:
            column.expected[sid] = number
    expected_total = sum((v for v in column.expected.values() if v is not None), Decimal(0))
    destination_total = Decimal(0)
    missing: list[str] = []
    changed: list[str] = []
    for sid, expected in column.expected.items():
        row = rows.get(_dest_key(project, ids[sid]))
        if row is None:
            missing.append(sid)
            continue
        got = _number(row.get(rule.target_field))
        if got is not None:
            destination_total += got
        if (got or Decimal(0)) != (expected or Decimal(0)):
            changed.append(sid)
    difference = destination_total - expected_total
    not_loaded = records - len(column.expected)
    if difference == 0 and not missing and not changed:
        verdict = "match" if not_loaded == 0 else "explained"
    else:
        verdict = "mismatch"
    return {
        "source_object": rule.source_object,
        "source_field": rule.source_field,
        "target_entity": rule.target_entity,
        "target_field": rule.target_field,
        "kind": rule.transform.get("type"),
        "source_records": records,
        "source_values": column.source_values,
        "source_total": str(column.source_total),
        "unparsed": column.unparsed,
        "unparsed_ids": column.unparsed_ids,
        "loaded_records": len(column.expected),
        "expected_total": str(expected_total),
        "destination_records": len(column.expected) - len(missing),
        "destination_total": str(destination_total),
        "difference": str(difference),
        "not_loaded_records": not_loaded,
        "not_loaded_total": str(column.source_total - expected_total),
        "missing": missing[:MISSING_LISTED],
        "missing_count": len(missing),
        "changed": changed[:MISSING_LISTED],
        "changed_count": len(changed),
        "verdict": verdict,
    }


# ---------------------------------------------------------------------------------------------- picklists


def _choice_rules(project: Project, client: Any, rules: list[_Rule]) -> list[tuple[_Rule, dict[str, str]]]:
    """Rules that write a choice column, with the column's {stored value: label} read from the destination."""
    # ``client`` is None only when nothing is loaded; no read-back happens then.
    out = []
    for rule in rules:
        options: dict[str, str] | None = None
        if client is None:  # before any load: the options the value map chose
            rows = project.query(
                "SELECT target_value, target_label FROM value_maps WHERE status = 'confirmed' AND source_object = ? "
                "AND source_field = ? AND target_entity = ? AND target_field = ?",
                (rule.source_object, rule.source_field, rule.target_entity, rule.target_field),
            )
            if rows:
                out.append((rule, {str(r["target_value"]): r["target_label"] or "" for r in rows}))
            continue
        try:
            meta = (client.describe if project.target == "salesforce" else client.entity)(rule.target_entity)
        except DestinationError:
            continue  # the table is not at the destination: the totals and failures say why
        if project.target == "salesforce":
            fmeta = meta.fields.get(rule.target_field)
            if fmeta is not None and fmeta.type in ("picklist", "multipicklist"):
                options = {v: v for v in fmeta.picklist_values}
        else:
            attr = meta.attributes.get(rule.target_field)
            if attr is not None and attr.type in ("Picklist", "Status", "State"):
                options = {str(k): v for k, v in attr.options.items()}
        if options is not None:
            out.append((rule, options))
    return out


def _distribution(
    project: Project,
    playbook: Playbook,
    rule: _Rule,
    options: dict[str, str],
    loaded: dict[tuple[str, str], dict[str, str]],
    dest_rows: dict[tuple[str, str], dict[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    mapping = {
        r["source_value"]: (r["target_label"], r["target_value"])
        for r in project.query(
            "SELECT source_value, target_label, target_value FROM value_maps WHERE status = 'confirmed' AND "
            "source_object = ? AND source_field = ? AND target_entity = ? AND target_field = ?",
            (rule.source_object, rule.source_field, rule.target_entity, rule.target_field),
        )
    }
    ids = loaded.get((rule.target_entity, rule.part.name), {})
    rows = dest_rows.get((rule.target_entity, rule.part.name), {})
    labels_lower = {v.strip().lower(): v for v in options.values()}
    source: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    values_of: dict[str, set[str]] = defaultdict(set)
    for sid, raw in _records(project, rule.part):
        raw_value = raw.get(rule.source_field)
        try:
            converted = _convert(rule, raw)
        except transforms.TransformError:
            converted = None
        entry = mapped_value(mapping, raw_value, converted) if converted is not None else None
        if entry is None or entry == (None, None):
            label = "(empty)" if converted is None or entry == (None, None) else "(unmapped)"
        else:
            text, stored = entry
            label = options.get(str(stored)) if stored not in (None, "") else None
            label = label or labels_lower.get((text or "").strip().lower(), text or str(stored))
        source[label] += 1
        values_of[label].add("" if raw_value is None else str(raw_value).strip())
        if sid in ids:
            expected[label] += 1
    destination: Counter[str] = Counter()
    for sid in ids:
        row = rows.get(_dest_key(project, ids[sid]))
        if row is None:
            continue
        value = row.get(rule.target_field)
        destination["(empty)" if value in (None, "") else options.get(str(value), str(value))] += 1
    out = []
    for label in sorted(set(source) | set(destination), key=lambda x: (-source.get(x, 0), x)):
        out.append(
            {
                "source_object": rule.source_object,
                "source_field": rule.source_field,
                "target_entity": rule.target_entity,
                "target_field": rule.target_field,
                "label": label,
                "source_values": sorted(values_of.get(label, set())),
                "source_count": source.get(label, 0),
                "loaded_count": expected.get(label, 0),
                "destination_count": destination.get(label, 0),
                "difference": destination.get(label, 0) - expected.get(label, 0),
            }
        )
    return out
