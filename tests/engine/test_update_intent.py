"""A crash between an update's write and its commit keeps the prior values: the update intent (snapshot) is
committed before the write, the resumed run attributes the update to itself, and rollback restores exactly."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.run import load as load_module
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.rollback import rollback
from tests.engine.test_load_engine import _count


def _change_emails(project, count: int) -> dict[str, tuple[str, str]]:
    """Source id -> (old e-mail, new e-mail) for the first ``count`` staged customers that have one."""
    changed: dict[str, tuple[str, str]] = {}
    for sid, raw in project.iter_staged("customers"):
        column = next(c for c in raw if "mail" in c.lower())
        if not (raw[column] or "").strip() or "@" not in raw[column]:
            continue
        new = f"moved.{sid}@example.org"
        changed[sid] = (raw[column].strip().lower(), new)
        raw[column] = new
        project.db.conn.execute(
            "UPDATE staging SET raw = ? WHERE object = 'customers' AND source_id = ?", (json.dumps(raw), sid)
        )
        if len(changed) == count:
            return changed
    raise AssertionError("not enough customers with an e-mail")


def test_crash_after_an_update_is_written_keeps_the_snapshot_for_rollback(mapped_project, monkeypatch):
    assert load(mapped_project).status == "completed"
    changed = _change_emails(mapped_project, 3)
    real_commit = load_module._Runner._commit

    def crashing_commit(self, part, outcomes, batch):
        if any(o.action == "updated" for o in outcomes.values()):  # the update landed; power fails now
            raise KeyboardInterrupt("power loss")
        return real_commit(self, part, outcomes, batch)

    monkeypatch.setattr(load_module._Runner, "_commit", crashing_commit)
    with pytest.raises(KeyboardInterrupt):
        load(mapped_project)
    monkeypatch.setattr(load_module._Runner, "_commit", real_commit)

    intents = mapped_project.query("SELECT key, prior, written FROM crosswalk WHERE action = 'pending_update'")
    assert len(intents) == 3
    assert all(json.loads(i["prior"]).get("emailaddress1") for i in intents)  # snapshot taken before the write
    for _sid, (_old, new) in changed.items():
        assert _count(mapped_project, "accounts", f"emailaddress1 eq '{new}'") == 1  # the write did land

    resumed = load(mapped_project)
    assert resumed.status == "completed"
    customers = next(o for o in resumed.objects if o["source_object"] == "customers")
    assert customers["updated"] == 3  # attributed to the run that wrote them, with their snapshot
    assert not mapped_project.query("SELECT 1 FROM crosswalk WHERE action = 'pending_update'")

    rollback(mapped_project, run_id=resumed.run_id)
    for _sid, (old, new) in changed.items():
        assert _count(mapped_project, "accounts", f"emailaddress1 eq '{new}'") == 0
        assert _count(mapped_project, "accounts", f"emailaddress1 eq '{old}'") >= 1


def test_rollback_of_a_crashed_run_restores_an_update_that_was_never_committed(mapped_project, monkeypatch):
    load(mapped_project)
    changed = _change_emails(mapped_project, 2)
    real_commit = load_module._Runner._commit

    def crashing_commit(self, part, outcomes, batch):
        if any(o.action == "updated" for o in outcomes.values()):
            raise KeyboardInterrupt("power loss")
        return real_commit(self, part, outcomes, batch)

    monkeypatch.setattr(load_module._Runner, "_commit", crashing_commit)
    with pytest.raises(KeyboardInterrupt):
        load(mapped_project)
    monkeypatch.setattr(load_module._Runner, "_commit", real_commit)
    crashed = int(mapped_project.scalar("SELECT MAX(id) FROM runs WHERE kind = 'load'"))
    mapped_project.db.conn.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (crashed,))

    rollback(mapped_project, run_id=crashed)  # no resume: the intents alone must be enough
    for _sid, (old, new) in changed.items():
        assert _count(mapped_project, "accounts", f"emailaddress1 eq '{new}'") == 0
        assert _count(mapped_project, "accounts", f"emailaddress1 eq '{old}'") >= 1
