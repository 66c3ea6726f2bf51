"""Sign-off of a sample migration, pinned to the map it was given for.

A sign-off says "the customer saw this map move these records and accepted the result". It is only
worth that while the map is the same, so each sign-off stores a fingerprint of the map (object
map, field map with transforms, value maps) and is valid only while the current fingerprint
matches. Any edit to the map (a retarget, a transform, a value, a workbook import) changes the
fingerprint and so invalidates the sign-off with no bookkeeping that could be forgotten.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from crmmigrator_gui.engine.errors import BlockedError, UsageError
from crmmigrator_gui.engine.project.store import Project, current_actor, now_iso


def map_fingerprint(project: Project) -> str:
    """A stable hash of everything in the map that decides what a record becomes at the destination.

    Who confirmed and when, notes and confidence do not change what moves, so they are left out;
    unconfirmed rows are in (a map with pending rows is not the one anyone signed off).
    """
    digest = hashlib.sha256()
    for sql in (
        "SELECT source_object, part, target_entity FROM object_maps ORDER BY source_object, part",
        "SELECT source_object, source_field, target_entity, target_field, transform, status FROM field_maps "
        "ORDER BY source_object, source_field, target_entity, target_field",
        "SELECT source_object, source_field, target_entity, target_field, source_value, target_label, "
        "target_value, status FROM value_maps ORDER BY source_object, source_field, target_entity, target_field, "
        "source_value",
    ):
        for row in project.db.conn.execute(sql):
            digest.update(json.dumps(row, default=str).encode())
            digest.update(b"\n")
        digest.update(b"--\n")
    return digest.hexdigest()


def record_signoff(project: Project, by: str, *, sample_run_id: int | None = None, note: str = "") -> dict[str, Any]:
    """Record a sign-off for the current map (in the audit log too)."""
    if not by.strip():
        raise UsageError("say who signs off: --by NAME")
    fingerprint = map_fingerprint(project)
    at = now_iso()
    with project.step("signoff", {"by": by, "sample_run_id": sample_run_id, "map_fingerprint": fingerprint},
                      actor=current_actor()):
        cursor = project.db.conn.execute(
            "INSERT INTO signoffs (at, actor, map_fingerprint, sample_run_id, note) VALUES (?,?,?,?,?)",
            (at, by.strip(), fingerprint, sample_run_id, note),
        )
    return {"id": cursor.lastrowid, "at": at, "by": by.strip(), "map_fingerprint": fingerprint,
            "sample_run_id": sample_run_id}


def latest_signoff(project: Project) -> dict[str, Any] | None:
    rows = project.query("SELECT * FROM signoffs ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def signoff_status(project: Project) -> dict[str, Any]:
    """``{"valid": bool, "signoff": row|None, "reason": str}`` for the current map."""
    last = latest_signoff(project)
    if last is None:
        return {"valid": False, "signoff": None, "reason": "no sample has been signed off yet"}
    if last["map_fingerprint"] != map_fingerprint(project):
        return {"valid": False, "signoff": last,
                "reason": f"the map changed after the sign-off by {last['actor']} at {last['at']}; "
                          "run the sample again and sign it off"}
    return {"valid": True, "signoff": last, "reason": f"signed off by {last['actor']} at {last['at']}"}


def assert_signed_off(project: Project) -> dict[str, Any]:
    """The full load's gate: a sign-off valid for the current map, or ``BlockedError`` (exit 3)."""
    status = signoff_status(project)
    if not status["valid"]:
        raise BlockedError(f"no valid sign-off: {status['reason']}")
    return status["signoff"]
