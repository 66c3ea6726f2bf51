"""A load without writes: every record is built by the load's own payload builder, in load order.

Why the real builder: the records pre-flight says will fail are then exactly the ones the load fails (the
same transforms, lengths read from the destination, value maps, skip rules), and every transform added to
the builders is checked here for free. What the builder cannot tell alone, this adds:

- all the bad columns of a failing record, not just the first (each field rule is replayed on its own);
- which parent is missing: a reference to a record that is not in the export (ORPHAN — skipped, or for an
  optional lookup DANGLING_LOOKUP — left empty) versus a parent that is there but will itself fail or be
  skipped (PARENT_WILL_FAIL). Parents are tracked by destination key, as the load's crosswalk does;
- required columns left empty, and files over the destination's size limit.

Rows are streamed from staging, part by part; memory holds the keys of the records (and whatever the
builder caches for parent look-ups, as during the load).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Part, Playbook
from crmmigrator_gui.engine.plan.order import group_id
from crmmigrator_gui.engine.plan.payloads import BuildError, FieldRule, Payload, PayloadBuilder, Skip
from crmmigrator_gui.engine.plan.preflight.findings import Finding, Findings
from crmmigrator_gui.engine.project.store import Project

DATAVERSE_MIN = "1753-01-01"  # the earliest date-time Dataverse stores
DEFAULT_MAX_UPLOAD = 5_242_880  # organization.maxuploadfilesize default (reference §9), on the base64 length
TOO_LONG_CODES = ("TOO_LONG", "STRING_TOO_LONG")
_SKIP_REQUIRED_TYPES = {"Owner", "State", "Status", "Uniqueidentifier", "Virtual", "EntityName", "PartyList"}
_DEFAULTED = {"owningbusinessunit", "transactioncurrencyid", "statecode", "statuscode", "ownerid"}
_FREE_TEXT = {"description", "notetext", "body", "comments", "new_description", "new_notes"}

RowCallback = Callable[[str, dict[str, Any]], None]


class _EchoXref(dict):  # type: ignore[type-arg]
    """Every parent key resolves (to itself): lookups are judged by :class:`DryRun`, not by the build."""

    def get(self, key: Any, default: Any = None) -> Any:
        return key[1]


class DryRun:
    """Build every record of every part, as the load would, and report what would not load as the data says.

    Args:
        project: the project (read only).
        playbook: the resolved playbook.
        client: a planned client (:mod:`.planned`): real reads, metadata as after ``schema apply``.
        findings: where findings go.
        max_upload: the destination's attachment limit in bytes (Dataverse ``maxuploadfilesize``).
        tick: called with the number of rows just processed (progress and cancel live there).
    """

    def __init__(
        self,
        project: Project,
        playbook: Playbook,
        client: Any,
        findings: Findings,
        *,
        max_upload: int = DEFAULT_MAX_UPLOAD,
        tick: Callable[[str, int], None] | None = None,
    ) -> None:
        self.project = project
        self.playbook = playbook
        self.client = client
        self.findings = findings
        self.max_upload = max_upload
        self.tick = tick or (lambda _label, _n: None)
        self.salesforce = project.target == "salesforce"
        if self.salesforce:
            from crmmigrator_gui.engine.plan.sf_payloads import SfPayloadBuilder

            self.builder: PayloadBuilder = SfPayloadBuilder(project, playbook, client, _EchoXref(), "preflight")
            self._apply_rule: Callable[..., None] = self.builder._sf_rule  # type: ignore[attr-defined]
        else:
            self.builder = PayloadBuilder(project, playbook, client, _EchoXref(), "preflight")
            self._apply_rule = self.builder._apply_rule
        self.present: dict[str, set[str]] = {}  # part -> destination keys of its records
        self.passing: dict[str, set[str]] = {}  # part -> keys of the records that would load
        self.reasons: dict[tuple[str, str], str] = {}  # (part, key) -> why it would not load
        self.stats: dict[str, dict[str, int]] = {}
        # (object, part, record id, outcome, reason, skipped on purpose by a playbook rule)
        self.not_loading: list[tuple[str, str, str, str, str, bool]] = []
        self._staged_objects = set(project.source_object_names())
        self._missing: dict[tuple[str, str], Finding] = {}

    # ------------------------------------------------------------------ records of a part
    def _records(self, part: Part) -> Iterator[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]] | None]]:
        if not part.group_by:
            for sid, raw in self.project.iter_staged(part.obj):
                yield sid, raw, None
            return
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        columns = self.builder.role_columns.get(part.obj, {})
        for sid, raw in self.project.iter_staged(part.obj):
            groups[group_id(part, raw, columns)].append((sid, raw))
        for gid, members in groups.items():
            yield gid, members[0][1], members

    def _meta(self, part: Part) -> Any:
        return self.client.describe(part.entity) if self.salesforce else self.client.entity(part.entity)

    def run_part(self, part: Part, on_row: RowCallback | None = None) -> None:
        """Dry-run one part; ``on_row`` sees every staged row of the object (for the record checks)."""
        q = part.qualified
        present = self.present.setdefault(q, set())
        passing = self.passing.setdefault(q, set())
        stats = self.stats.setdefault(
            q, {"records": 0, "rows": 0, "loads": 0, "fails": 0, "skipped": 0, "skipped_by_rule": 0}
        )
        try:
            meta = self._meta(part)
        except DestinationError as exc:
            self.findings.add(Finding("blocking", "SCHEMA_MISSING", f"{part.entity}: {exc}", part.obj))
            meta = None
        required = self._required(meta) if meta is not None else []
        file_spec = self.builder.file_spec(part) if self.salesforce else None  # type: ignore[attr-defined]
        pending = 0
        for rid, raw, members in self._records(part):
            rows = members or [(rid, raw)]
            if on_row is not None:  # a merged record's rows are reported under its id, as the load does
                for sid, row in rows:
                    on_row(rid if members else sid, row)
            stats["records"] += 1
            stats["rows"] += len(rows)
            key = self.builder.key(part, rid)
            present.add(key)
            ok = meta is not None and self._record(part, rid, raw, members, meta, required, file_spec)
            if ok:
                passing.add(key)
                stats["loads"] += 1
            pending += len(rows)
            if pending >= 500:
                self.tick(q, pending)
                pending = 0
        self.tick(q, pending)

    def _record(
        self,
        part: Part,
        rid: str,
        raw: dict[str, Any],
        members: list[tuple[str, dict[str, Any]]] | None,
        meta: Any,
        required: list[Any],
        file_spec: dict[str, Any] | None,
    ) -> bool:
        """Judge one destination record; True when it would load."""
        key = self.builder.key(part, rid)
        stats = self.stats[part.qualified]
        payload = None
        failed = ""
        try:
            if file_spec is not None:  # a Salesforce file: the upload's own checks (body, size) included
                payload = self.builder.build_file(part, rid, raw, meta)  # type: ignore[attr-defined]
            else:
                payload = self.builder.build(part, rid, raw, meta, [m[1] for m in members] if members else None)
        except Skip as exc:
            if exc.code == "SOURCE_STATE":  # skipped on purpose (deleted at the source …): nothing to report
                stats["skipped"] += 1
                stats["skipped_by_rule"] += 1
                self._not_loading(part, rid, key, "skipped", f"skipped: {exc}", on_purpose=True)
                return False
        except BuildError as exc:
            failed = self._failed(part, rid, raw, meta, exc)
        except DestinationError as exc:
            self.findings.add(Finding("blocking", "SCHEMA_MISSING", f"{part.entity}: {exc}", part.obj))
            failed = "fails: the destination schema is incomplete"
        skipped = self._lookups(part, rid, raw)
        if payload is not None:
            failed = self._required_missing(part, rid, payload, required) if file_spec is None else ""
            if not self.salesforce:
                failed = self._attachment_too_large(part, rid, payload) or failed
                failed = self._before_1753(part, rid, payload, meta) or failed
        if failed:
            stats["fails"] += 1
            self._not_loading(part, rid, key, "failed", failed)
            return False
        if skipped or payload is None:
            stats["skipped"] += 1
            self._not_loading(part, rid, key, "skipped", skipped or "skipped: a parent is missing")
            return False
        return True

    def _not_loading(
        self, part: Part, rid: str, key: str, outcome: str, reason: str, *, on_purpose: bool = False
    ) -> None:
        self.reasons[(part.qualified, key)] = reason
        self.not_loading.append((part.obj, part.name, rid, outcome, reason, on_purpose))

    # ------------------------------------------------------------------ lookups
    def _lookups(self, part: Part, rid: str, raw: dict[str, Any]) -> str:
        """Findings for each lookup that will not resolve; the reason the record is skipped ('' if it is not)."""
        skipped = ""
        for lookup in part.lookups:
            column = self.builder.role_columns.get(part.obj, {}).get(lookup["by_role"])
            optional = bool(lookup.get("optional"))
            target = self.playbook.part(lookup["to"])
            label = self.playbook.obj(target.obj).label.lower()
            if target.obj not in self._staged_objects:
                value = self.builder.role_value(part.obj, lookup["by_role"], raw)
                if value:
                    self._missing_object(part, lookup, target, optional)
                    if not optional:
                        skipped = skipped or f"skipped: no {label} was imported"
                continue
            try:
                resolved = self.builder.resolve_parent(part, lookup, raw)
            except Skip:
                if optional:
                    continue
                skipped = skipped or self._no_reference(part, rid, raw, lookup, column)
                continue
            if resolved is None:
                continue
            target_part, parent_key, _echo = resolved
            shown = self._shown_value(part, lookup, raw)
            if parent_key not in self.present.get(target_part.qualified, ()):
                if optional:
                    self.findings.add(
                        Finding(
                            "warning",
                            "DANGLING_LOOKUP",
                            f"{label} {shown!r} is not in the export: {part.entity}.{lookup['column']} is left empty",
                            part.obj,
                            column,
                            rid,
                            {"target": target_part.qualified, "value": shown},
                        )
                    )
                else:
                    self.findings.add(
                        Finding(
                            "warning",
                            "ORPHAN",
                            f"{label} {shown!r} is not in the export: the load skips this record",
                            part.obj,
                            column,
                            rid,
                            {"target": target_part.qualified, "value": shown},
                        )
                    )
                    skipped = skipped or f"skipped: its {label} is not in the export"
            elif parent_key not in self.passing.get(target_part.qualified, ()):
                if target_part.obj == part.obj and parent_key == self.builder.key(target_part, rid):
                    skipped = skipped or "skipped: another part of the same record fails"
                    continue  # the record's own other part: its failure is already reported
                why = self.reasons.get((target_part.qualified, parent_key), "it will not load")
                effect = f"{part.entity}.{lookup['column']} is left empty" if optional else "the load skips this record"
                self.findings.add(
                    Finding(
                        "warning",
                        "PARENT_WILL_FAIL",
                        f"its {label} {shown!r} will not load ({why}): {effect}",
                        part.obj,
                        column,
                        rid,
                        {"target": target_part.qualified, "value": shown},
                    )
                )
                if not optional:
                    skipped = skipped or f"skipped: its {label} will not load"
        return skipped

    def _shown_value(self, part: Part, lookup: dict[str, Any], raw: dict[str, Any]) -> str:
        value = self.builder.role_value(part.obj, lookup["by_role"], raw) or ""
        through = lookup.get("through")
        if through:
            parent = self.builder._staged(through["object"]).get(value)
            return (self.builder.role_value(through["object"], through["role"], parent) if parent else None) or value
        return value

    def _no_reference(
        self, part: Part, rid: str, raw: dict[str, Any], lookup: dict[str, Any], column: str | None
    ) -> str:
        value = self.builder.role_value(part.obj, lookup["by_role"], raw)
        through = lookup.get("through")
        if value and through:
            via = self.playbook.obj(through["object"]).label.lower()
            if self.builder._staged(through["object"]).get(value) is None:
                message = f"{via} {value!r} is not in the export: the load skips this record"
            else:
                message = f"{via} {value!r} has no {through['role'].replace('_', ' ')}: the load skips this record"
        else:
            message = f"no {lookup['by_role'].replace('_', ' ')}: the load skips this record"
        self.findings.add(Finding("warning", "ORPHAN", message, part.obj, column, rid, {"value": value}))
        return "skipped: " + message.split(":", 1)[0]

    def _missing_object(self, part: Part, lookup: dict[str, Any], target: Part, optional: bool) -> None:
        """One finding per lookup to an object that was not imported at all, counting the records it touches."""
        held = self._missing.get((part.qualified, lookup["column"]))
        if held is not None:
            held.detail["records"] += 1  # type: ignore[index]
            return
        label = self.playbook.obj(target.obj).label.lower()
        effect = f"{part.entity}.{lookup['column']} is left empty" if optional else "these records are skipped"
        finding = Finding(
            "warning" if optional else "blocking",
            "MISSING_OBJECT",
            f"{part.obj} records point at {label} records, but none were imported: {effect}; import the {label} export",
            part.obj,
            self.builder.role_columns.get(part.obj, {}).get(lookup["by_role"]),
            None,
            {"target": target.qualified, "records": 1},
        )
        self._missing[(part.qualified, lookup["column"])] = finding
        self.findings.add(finding)

    # ------------------------------------------------------------------ failures
    def _failed(self, part: Part, rid: str, raw: dict[str, Any], meta: Any, error: BuildError) -> str:
        """Findings for every bad column of a failing record (the builder stops at the first)."""
        if error.code == "FILE_TOO_LARGE":
            spec = self.builder.file_spec(part) or {}  # type: ignore[attr-defined]
            column = self.builder.role_columns.get(part.obj, {}).get(spec.get("body_role", "body"))
            self.findings.add(Finding("blocking", "ATTACHMENT_TOO_LARGE", str(error), part.obj, column, rid))
            return "fails: the file is over the size limit"
        reasons = []
        for rule in self.builder.rules.get((part.obj, part.entity), []):
            scratch = Payload(key="", body={})
            if self.salesforce:
                from crmmigrator_gui.engine.plan.sf_payloads import SfPayload

                scratch = SfPayload(key="", body={})  # type: ignore[assignment]
            try:
                self._apply_rule(part, rule, raw, meta, scratch)
            except BuildError as exc:
                self.findings.add(self._column_finding(part, rid, raw, meta, rule, exc))
                reasons.append(f"{exc.code} in {rule.source_field!r}")
            except DestinationError:
                continue
        if not reasons:  # a derived, aggregated or fixed value: one finding for the record
            code = "TOO_LONG" if error.code in TOO_LONG_CODES else error.code
            if code in ("MISSING_REFERENCE", "MISSING_COLUMN"):
                self.findings.add(
                    Finding(
                        "blocking",
                        "MISSING_REFERENCE" if code == "MISSING_REFERENCE" else "SCHEMA_MISSING",
                        f"{part.qualified}: {error}",
                        part.obj,
                    )
                )
            else:
                severity = "warning" if code == "TOO_LONG" and self._aggregate_truncatable(part) else "blocking"
                self.findings.add(
                    Finding(severity, code if code in _KNOWN else "BAD_VALUE", str(error), part.obj, None, rid)
                )
            reasons.append(error.code)
        return "fails: " + ", ".join(reasons)

    def _aggregate_truncatable(self, part: Part) -> bool:
        return any(column in _FREE_TEXT for column in part.aggregate)

    def _column_finding(
        self, part: Part, rid: str, raw: dict[str, Any], meta: Any, rule: FieldRule, exc: BuildError
    ) -> Finding:
        kind = str(rule.transform.get("type", "text"))
        target = f"{part.entity}.{rule.target_field}"
        if exc.code in TOO_LONG_CODES:
            limit, truncatable = self._column_limit(meta, rule.target_field)
            try:
                actual = len(str(transforms.apply(rule.transform, raw.get(rule.source_field)) or ""))
            except transforms.TransformError:
                actual = len(str(raw.get(rule.source_field) or ""))
            detail = {"max": limit, "actual": actual, "truncatable": truncatable, "target": target}
            if truncatable:
                message = (
                    f"{actual:,} characters; {target} holds {limit:,}. The load fails this record as it stands; "
                    f"this is free text, so it can be truncated to {limit:,} (losing {actual - limit:,})"
                )
                return Finding("warning", "TOO_LONG", message, part.obj, rule.source_field, rid, detail)
            message = (
                f"{actual:,} characters; {target} holds {limit:,}, and a name or key must not be cut: "
                "the record fails at load — shorten it in the source"
            )
            return Finding("blocking", "TOO_LONG", message, part.obj, rule.source_field, rid, detail)
        code = {"email": "BAD_EMAIL", "phone": "BAD_PHONE"}.get(kind, "BAD_VALUE")
        text = str(exc).removeprefix(f"column {rule.source_field!r}: ")
        detail = {"value": _clip(raw.get(rule.source_field)), "transform": kind, "target": target}
        return Finding("blocking", code, f"{text}: the record fails at load", part.obj, rule.source_field, rid, detail)

    def _column_limit(self, meta: Any, column: str) -> tuple[int, bool]:
        if self.salesforce:
            from crmmigrator_gui.engine.plan.sf_schema import custom_field_name

            f = meta.field(custom_field_name(column))
            return (int(f.length or 0) if f else 0), bool(f and f.type == "textarea")
        attr = meta.attributes.get(column)
        limit = int(attr.max_length or 0) if attr else 0
        return limit, bool(attr and (attr.type == "Memo" or column in _FREE_TEXT))

    # ------------------------------------------------------------------ required columns and files
    def _required(self, meta: Any) -> list[Any]:
        if self.salesforce:
            skip = {"id", "ownerid", self.playbook.key_column.lower()}
            return [f for f in meta.fields.values() if f.required_on_create and f.name.lower() not in skip]
        return [
            a
            for a in meta.attributes.values()
            if a.required in ("SystemRequired", "ApplicationRequired")
            and a.valid_create
            and a.name != meta.primary_id
            and a.type not in _SKIP_REQUIRED_TYPES
            and a.name not in _DEFAULTED
        ]

    def _required_missing(self, part: Part, rid: str, payload: Any, required: list[Any]) -> str:
        if not required:
            return ""
        if self.salesforce:
            filled = {
                k.lower()
                for k, v in payload.record(self.playbook.key_column, insert=True).items()
                if v not in (None, "")
            } | {r.field.lower() for r in payload.refs.values()}
            missing = [f for f in required if f.name.lower() not in filled]
            hard = missing
        else:
            bound = {column for column, _dest in payload.binds.values()}
            missing = [a for a in required if payload.body.get(a.name) in (None, "") and a.name not in bound]
            hard = [a for a in missing if a.required == "SystemRequired"]
        for item in missing:
            name = item.name
            is_hard = item in hard
            message = (
                f"{part.entity}.{name} is required and would be empty: the destination refuses this record"
                if is_hard
                else f"{part.entity}.{name} is business-required and would be empty (the API accepts it; users "
                "will be asked to fill it)"
            )
            self.findings.add(
                Finding(
                    "blocking" if is_hard else "warning",
                    "REQUIRED_MISSING",
                    message,
                    part.obj,
                    self._source_of(part, name),
                    rid,
                    {"target": f"{part.entity}.{name}"},
                )
            )
        return f"fails: {hard[0].name} is required" if hard else ""

    def _source_of(self, part: Part, target_field: str) -> str | None:
        for rule in self.builder.rules.get((part.obj, part.entity), []):
            if rule.target_field.lower() == target_field.lower():
                return rule.source_field
        return None

    def _before_1753(self, part: Part, rid: str, payload: Payload, meta: Any) -> str:
        """Dataverse refuses date-times before 1753-01-01 (reference §10); the builder does not check it."""
        failed = ""
        for column, value in payload.body.items():
            attr = meta.attributes.get(column)
            if attr is None or attr.type != "DateTime" or not isinstance(value, str) or value[:10] >= DATAVERSE_MIN:
                continue
            source = self._source_of(part, column)
            self.findings.add(
                Finding(
                    "blocking",
                    "BAD_VALUE",
                    f"{value[:10]} is before 1753-01-01, which Dataverse refuses: the record fails at load",
                    part.obj,
                    source,
                    rid,
                    {"value": value, "target": f"{part.entity}.{column}"},
                )
            )
            failed = f"fails: {column} is before 1753"
        return failed

    def _attachment_too_large(self, part: Part, rid: str, payload: Payload) -> str:
        body = payload.body.get("documentbody")
        if not isinstance(body, str) or len(body) <= self.max_upload:
            return ""
        self.findings.add(
            Finding(
                "blocking",
                "ATTACHMENT_TOO_LARGE",
                f"the file is {_mb(len(body))} as base64; the destination accepts {_mb(self.max_upload)} "
                "(organization.maxuploadfilesize, up to 128 MB if an admin raises it): the record fails at load",
                part.obj,
                self._source_of(part, "documentbody"),
                rid,
                {"size": len(body), "limit": self.max_upload, "measured_on": "base64"},
            )
        )
        return "fails: attachment too large"


_KNOWN = {"TOO_LONG", "BAD_VALUE", "BAD_EMAIL", "BAD_PHONE", "ATTACHMENT_TOO_LARGE", "REQUIRED_MISSING"}


def _clip(value: Any, size: int = 80) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= size else text[:size] + "…"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"
