"""A delta's deletions on Salesforce, and their undoing when the delta run is rolled back.

:func:`delete_records` snapshots each record's createable fields before deleting it, children first; one whose
delete would cascade to records that stay (an Account's Opportunities) is left in place. REST cannot undelete,
so rollback (:func:`_recreate`, called by :mod:`.rollback_salesforce`) re-creates deleted records from their
snapshots, parents first, under new Ids (auto-numbers are assigned anew too), re-pointing lookups, the xref and
earlier crosswalk rows, and says so in a warning per object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.mapping.playbook import Playbook, load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.ledger import server_now
from crmmigrator_gui.engine.run.load_salesforce import FILE_OBJECT, ROLLBACK_BATCH, _file_entities
from crmmigrator_gui.engine.target.salesforce import SalesforceClient
from crmmigrator_gui.engine.target.sf_codec import in_chunks, soql_string

GONE = ("ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_ID_FIELD")
SNAPSHOT_EXTRA = ("OwnerId", "RecordTypeId")  # kept even where describe does not call them createable
UNREADABLE = ("address", "location", "base64")  # compound fields (their parts are read) and file bodies
RECREATED = (
    "{entity}: {count} record(s) re-created with new Salesforce Ids (Salesforce cannot restore an Id over the API; "
    "the Recycle Bin can)"
)


def _runs_of(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of one object, at most ``size`` each (keeps reverse creation order)."""
    chunk: list[dict[str, Any]] = []
    for row in rows:
        if chunk and (len(chunk) >= size or row["target_entity"] != chunk[-1]["target_entity"]):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def snapshot_fields(meta: Any, key_column: str) -> list[str]:
    """What re-creates a record of ``meta``: ``Id`` and every createable field, the external id, the owner and
    the record type (lookups are read as Ids)."""
    names = ["Id"]
    for f in meta.fields.values():
        if f.type in UNREADABLE or f.name == "Id":
            continue
        if f.createable or f.name.lower() == key_column.lower() or f.name in SNAPSHOT_EXTRA:
            names.append(f.name)
    return names


def delete_records(
    project: Project, client: SalesforceClient, rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Delete the destination records of xref ``rows`` (a delta's deletions), each snapshotted first.

    Returns (snapshot, error) per row, in order. Each record's createable fields are read with one
    ``SELECT … WHERE Id IN (…)`` per object and URL-sized chunk; then the records are deleted with sObject
    Collections (``DELETE /composite/sobjects?ids=…&allOrNone=false``, at most 200 Ids per call), one call per run
    of consecutive rows of one object, in the order given (the caller sorts children first, so a cascade
    never takes a child before its snapshot). A record not found (already deleted) is (None, None): nothing to
    delete or restore. Files are refused: a ContentDocument cannot be re-created from a snapshot of its fields,
    so the rollback could not undo the deletion."""
    playbook = load_playbook(project.source, project.target, project.edition)
    key_column = playbook.key_column
    files = set(_file_entities(playbook, project.source_object_names())) | {FILE_OBJECT}
    out: list[tuple[dict[str, Any] | None, str | None]] = [(None, None)] * len(rows)
    by_entity: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row["target_entity"] in files:
            out[index] = (None, "a file is not deleted by a delta (rollback could not re-create it): delete it in "
                                "Salesforce if it must go")  # fmt: skip
        elif row["dest_id"]:
            by_entity.setdefault(row["target_entity"], []).append(index)
    snapshots: dict[int, dict[str, Any]] = {}
    for entity, indexes in by_entity.items():
        meta = client.describe(entity)
        names = snapshot_fields(meta, key_column)
        prefix = f"SELECT {', '.join(names)} FROM {meta.name} WHERE Id IN ("
        found: dict[str, dict[str, Any]] = {}
        ids = sorted({str(rows[i]["dest_id"]) for i in indexes})
        for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
            for record in client.query(soql):
                found[str(record["Id"])[:15]] = record
        for index in indexes:
            record = found.get(str(rows[index]["dest_id"])[:15])
            if record is not None:
                snapshots[index] = {name: record.get(name) for name in names}
    deleting = {str(rows[i]["dest_id"])[:15] for i in snapshots}
    for entity, indexes in by_entity.items():  # children first: a child left in place keeps its parent too
        kept = _cascading(client, client.describe(entity), [str(rows[i]["dest_id"]) for i in indexes], deleting)
        for index in indexes:
            count = kept.get(str(rows[index]["dest_id"])[:15])
            if count and index in snapshots:
                deleting.discard(str(rows[index]["dest_id"])[:15])
                reason = f"deleting it would also delete {count} record(s) that Salesforce removes with it (cascade)"
                out[index] = (snapshots.pop(index), f"{reason} and that stay: left in place")
    present = [i for i in range(len(rows)) if i in snapshots]
    runs: list[list[int]] = []
    for index in present:
        entity = rows[index]["target_entity"]
        if runs and len(runs[-1]) < ROLLBACK_BATCH and rows[runs[-1][-1]]["target_entity"] == entity:
            runs[-1].append(index)
        else:
            runs.append([index])
    for run in runs:
        results = client.delete_collection([str(rows[i]["dest_id"]) for i in run])
        for index, result in zip(run, results, strict=True):
            gone = result.ok or any(c in GONE for c in result.codes)
            out[index] = (snapshots[index], None if gone else result.message)
    return out


def _cascading(client: SalesforceClient, meta: Any, ids: list[str], deleting: set[str]) -> dict[str, int]:
    """Parent 15-character Id -> live records a delete of it would take along (``cascadeDelete`` children, e.g.
    an Account's Contacts) that are not being deleted themselves. Those have no snapshot: rollback could not
    bring them back, and the source still has them."""
    counts: dict[str, int] = {}
    for relation in meta.child_relationships:
        child, column = relation.get("childSObject"), relation.get("field")
        if not relation.get("cascadeDelete") or not child or not column:
            continue
        prefix = f"SELECT Id, {column} FROM {child} WHERE {column} IN ("
        try:
            for soql in in_chunks(prefix, [soql_string(i) for i in ids], ")", client.soql_url_budget):
                for record in client.query(soql):
                    if str(record["Id"])[:15] not in deleting and record.get(column):
                        parent = str(record[column])[:15]
                        counts[parent] = counts.get(parent, 0) + 1
        except DestinationError:
            continue  # an object the integration user cannot query (shares, histories): nothing of ours
    return counts


def _recreate_body(
    meta: Any, snapshot: dict[str, Any], moved: dict[str, str], waiting: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The create body of a snapshot, and its lookups to records of the same chunk (set once they exist).

    Only fields the org lets us create now go in (the audit-fields permission may have been revoked since);
    a lookup to a record that was itself re-created points at its new Id (``moved``: old 15-character Id ->
    new Id). A null is sent only where the field would otherwise take a default."""
    body: dict[str, Any] = {}
    later: dict[str, str] = {}
    for name, value in snapshot.items():
        f = meta.field(name)
        if name == "Id" or f is None or not f.createable:
            continue
        if value is None:
            if f.nillable and (f.defaulted_on_create or f.default_value is not None):
                body[f.name] = None
            continue
        if f.type == "reference" and isinstance(value, str):
            old = value[:15]
            if old in moved:
                value = moved[old]
            elif old in waiting:
                later[f.name] = old
                continue
        body[f.name] = value
    return body, later


def _moved_ids(project: Project) -> dict[str, str]:
    """Old 15-character Id -> new Id of every record a rollback re-created (this rollback's earlier attempts
    included), from the 'deleted' crosswalk rows and the xref that points at the re-created record."""
    rows = project.query(
        "SELECT c.dest_id AS old, x.dest_id AS new FROM crosswalk c JOIN xref x ON x.target_entity = "
        "c.target_entity AND x.key = c.key WHERE c.action = 'deleted' AND c.rolled_back_at IS NOT NULL AND "
        "c.prior IS NOT NULL AND c.dest_id IS NOT NULL"
    )
    return {str(r["old"])[:15]: str(r["new"]) for r in rows if str(r["old"])[:15] != str(r["new"])[:15]}


def _recreate(
    project: Project,
    client: SalesforceClient,
    playbook: Playbook,
    rows: list[dict[str, Any]],
    problems: list[str],
    actor: str,
) -> None:
    """Re-create the records a delta deleted, parents first, from the snapshots taken before the deletes.

    Salesforce gives them new Ids (REST cannot undelete), so the external id is set from the snapshot, lookups
    to re-created parents are re-pointed, and the xref and every earlier crosswalk row of the record move to the
    new Id: a later rollback of the load that created the record deletes the new one. A record found by its
    external id already (an interrupted earlier attempt) is adopted. Each chunk is one project step."""
    key_column = playbook.key_column
    rank = {p.name: i for i, p in enumerate(load_order(playbook, project.source_object_names()))}
    rows = sorted(rows, key=lambda r: rank.get(r["part"], 0))  # parents first (stable: creation order kept)
    moved = _moved_ids(project)
    for chunk in _runs_of(rows, ROLLBACK_BATCH):
        entity = chunk[0]["target_entity"]
        meta = client.describe(entity)
        live = [r for r in chunk if r["prior"]]
        existing = client.find_by_external_ids(entity, key_column, [r["key"] for r in live], []) if live else {}
        waiting = {str(r["dest_id"])[:15] for r in live if r["dest_id"]}
        new_ids: dict[int, str] = {}
        creates: list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]] = []
        failed: dict[int, str] = {}
        for row in live:
            hit = existing.get(row["key"])
            if hit is not None:
                new_ids[row["id"]] = str(hit["Id"])
                continue
            body, later = _recreate_body(meta, json.loads(row["prior"]), moved, waiting)
            creates.append((row, {**body, key_column: row["key"]}, later))
        if creates:
            results = client.create_collection([body for _r, body, _l in creates], sobject=entity)
            for (row, _body, _later), result in zip(creates, results, strict=True):
                if result.ok and result.id:
                    new_ids[row["id"]] = str(result.id)
                else:
                    failed[row["id"]] = result.message
        local = {str(r["dest_id"])[:15]: new_ids[r["id"]] for r in live if r["id"] in new_ids and r["dest_id"]}
        links = [
            {"Id": new_ids[row["id"]], **{name: local[old] for name, old in later.items() if old in local}}
            for row, _body, later in creates
            if later and row["id"] in new_ids
        ]
        links = [link for link in links if len(link) > 1]
        if links:  # lookups between records of this chunk (a branch Account's parent)
            for link, result in zip(links, client.update_collection(links, sobject=entity), strict=True):
                if not result.ok:
                    problems.append(f"{entity} {link['Id']}: re-created, but a lookup was not restored "
                                    f"({result.message})")  # fmt: skip
        touched = server_now(client)
        detail = {
            "entity": entity,
            "recreated": {r["key"]: {"old": r["dest_id"], "new": new_ids[r["id"]]} for r in live if r["id"] in new_ids},
            "failed": len(failed),
        }
        with project.step("rollback re-create (new Salesforce Ids)", detail, actor=actor):
            conn = project.db.conn
            for row in chunk:
                if row["id"] in failed:
                    problems.append(f"{entity} {row['key']}: not re-created ({failed[row['id']]})")
                    continue
                conn.execute("UPDATE crosswalk SET rolled_back_at = ? WHERE id = ?", (touched, row["id"]))
                new = new_ids.get(row["id"])
                if new is None:
                    continue  # already gone when the delta ran: nothing to restore
                conn.execute(
                    "INSERT INTO xref VALUES (?,?,?,?,?,?) ON CONFLICT(target_entity, key) DO UPDATE SET "
                    "dest_id = excluded.dest_id",
                    (entity, row["key"], new, row["source_object"], row["source_id"], row["part"]),
                )
                if row["dest_id"]:
                    conn.execute(
                        "UPDATE crosswalk SET dest_id = ? WHERE target_entity = ? AND key = ? AND action NOT IN "
                        "('deleted', 'delete_failed') AND substr(dest_id, 1, 15) = ?",
                        (new, entity, row["key"], str(row["dest_id"])[:15]),
                    )
                    moved[str(row["dest_id"])[:15]] = new


def _recreated_warnings(project: Project, run_id: int) -> list[str]:
    """One warning per object whose deleted records this run's rollback re-created under new Ids."""
    return [
        RECREATED.format(entity=r["target_entity"], count=r["n"])
        for r in project.query(
            "SELECT target_entity, COUNT(*) AS n FROM crosswalk WHERE run_id = ? AND action = 'deleted' AND "
            "rolled_back_at IS NOT NULL AND prior IS NOT NULL GROUP BY target_entity ORDER BY target_entity",
            (run_id,),
        )
    ]
