"""Run results in the CLI contract's JSON shape, computed from the crosswalk.

Counting is per *source record*: a customer that became an account and a contact counts once,
with the worst outcome of its parts (failed > skipped > created > updated > unchanged), so
for every object created + updated + unchanged + failed + skipped = source records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan.order import load_order, members_by_record
from crmmigrator_gui.engine.progress import Failure
from crmmigrator_gui.engine.project.store import Project

PRECEDENCE = {"failed": 5, "skipped": 4, "created": 3, "updated": 2, "unchanged": 1}
COUNT_KEYS = ("created", "updated", "unchanged", "failed", "skipped")

_EXPLANATIONS = {
    "0x80044331": "a value is longer than the destination column allows",
    "0x80040217": "a record it points to does not exist at the destination",
    "0x80048d19": "the request named a lookup the destination does not know",
    "0x0": "the destination does not have one of the columns being written",
    "0x80060892": "another record already carries this source id",
    "0x80044a02": "the attachment is larger than the destination accepts",
    "0x80040220": "the migration user lacks a privilege on this table",
    "MISSING_PARENT": "its parent record was not loaded",
    "BAD_VALUE": "a source value could not be converted",
    "TOO_LONG": "a value is longer than the destination column allows",
    # Salesforce (reference §8.3)
    "REQUIRED_FIELD_MISSING": "a field Salesforce requires is empty",
    "STRING_TOO_LONG": "a value is longer than the Salesforce field allows",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "the value is not one of the restricted picklist's values; map it",
    "DUPLICATE_VALUE": "another Salesforce record already holds this unique value",
    "DUPLICATES_DETECTED": "a Salesforce duplicate rule blocked the record",
    "INVALID_CROSS_REFERENCE_KEY": "a record it points to does not exist in Salesforce (or is not accessible)",
    "FIELD_INTEGRITY_EXCEPTION": "Salesforce rejected a combination of values or a reference of the wrong type",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "a Salesforce validation rule rejected the record",
    "INVALID_FIELD": "Salesforce does not know a field or parent external id being written",
    "INVALID_FIELD_FOR_INSERT_UPDATE": "a field is not writable for the integration user",
    "MALFORMED_ID": "an id value has the wrong format or object type",
    "ENTITY_IS_DELETED": "the record or its parent was deleted in Salesforce",
    "INACTIVE_OWNER_OR_USER": "the owner is an inactive Salesforce user",
    "INSUFFICIENT_ACCESS_OR_READONLY": "the integration user lacks access to this record",
    "STANDARD_PRICE_NOT_DEFINED": "the product has no standard price yet",
    "NOT_PROCESSED": "Salesforce did not process the record (the Bulk job stopped first); run load again",
    "BULK_JOB_FAILED": "the Bulk API job failed before processing the record; run load again",
}


def explain(code: str | None, message: str) -> str:
    """Plain language first, the destination's own words after."""
    plain = _EXPLANATIONS.get(code or "")
    return f"{plain}: {message}" if plain and message else (plain or message)


def live_failures(
    source_object: str,
    failed: Iterable[tuple[str, str | None, str | None]],
    members: Mapping[str, Sequence[str]],
) -> tuple[Failure, ...]:
    """The progress event's failures for one committed batch: ``failed`` holds (record id, code, message)
    of the records the destination (or the payload builder) refused; a refused group fails each of its source
    records. Messages are already in plain language (:func:`explain` runs where an outcome is made)."""
    return tuple(
        Failure(source_object, source_id, code or "", message or "")
        for record_id, code, message in failed
        for source_id in members.get(record_id) or (record_id,)
    )


@dataclass
class RunResult:
    run_id: int
    kind: str
    status: str
    objects: list[dict[str, Any]]
    requests: int = 0
    seconds: float = 0.0
    retries: int = 0  # answers retried (429 with Retry-After, 5xx, dropped connections): throttling made visible
    warnings: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "status": self.status,
            "objects": self.objects,
            "requests": self.requests,
            "seconds": self.seconds,
            "retries": self.retries,
            "warnings": self.warnings,
            "failures": self.failures[:200],
        }

    @property
    def any_failed(self) -> bool:
        return any(o["failed"] for o in self.objects)


def summarize(
    project: Project, run_id: int, *, kind: str, status: str, later_runs: Sequence[int] = ()
) -> RunResult:
    """Per-object counts of one run. ``later_runs`` (deltas applied after it) overlay their outcomes, latest
    first, so the counts describe where each source record stands now: a record a delta created is loaded, a
    failure a delta fixed is no longer a failure. Outcomes a rollback undid in those later runs do not count."""
    playbook = load_playbook(project.source, project.target, project.edition)
    actions: dict[tuple[str, str], str] = {}
    last: dict[tuple[str, str], dict[str, Any]] = {}
    runs = [run_id, *later_runs]
    marks = ",".join("?" * len(runs))
    for row in project.query(
        "SELECT part, source_id, action, error_code, error_message, source_object FROM crosswalk "
        f"WHERE run_id IN ({marks}) AND action IN ('created','updated','unchanged','failed','skipped') "
        "AND (run_id = ? OR rolled_back_at IS NULL) ORDER BY run_id, seq",
        (*runs, run_id),
    ):
        actions[(row["part"], row["source_id"])] = row["action"]
        last[(row["part"], row["source_id"])] = row
    failures = [
        {
            "source_object": row["source_object"],
            "part": row["part"],
            "source_id": row["source_id"],
            "action": row["action"],
            "code": row["error_code"],
            "message": row["error_message"],
        }
        for row in last.values()
        if row["action"] in ("failed", "skipped")
    ]
    objects = []
    parts_by_obj = defaultdict(list)
    for part in load_order(playbook, project.source_object_names()):
        parts_by_obj[part.obj].append(part)
    for obj_name, parts in parts_by_obj.items():
        per_record: dict[str, str] = {}
        part_counts = []
        for part in parts:
            counts = dict.fromkeys(COUNT_KEYS, 0)
            for record_id, members in members_by_record(project, part).items():
                action = actions.get((part.name, record_id))
                if action is None:
                    continue
                counts[action] += 1
                for sid in members:
                    if PRECEDENCE[action] > PRECEDENCE.get(per_record.get(sid, ""), 0):
                        per_record[sid] = action
            part_counts.append({"part": part.name, "target_entity": part.entity, **counts})
        totals = dict.fromkeys(COUNT_KEYS, 0)
        for action in per_record.values():
            totals[action] += 1
        objects.append(
            {
                "source_object": obj_name,
                "target_entity": parts[0].entity,
                "source_records": project.staged_count(obj_name),
                **totals,
                "parts": part_counts,
            }
        )
    return RunResult(run_id=run_id, kind=kind, status=status, objects=objects, failures=failures)
