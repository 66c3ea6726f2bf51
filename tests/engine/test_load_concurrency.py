"""Parallel writes sized by x-ms-dop-hint give the same ledger and destination as one at a time, with faults too."""

from __future__ import annotations

import threading

import pytest

from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.engine.target.dataverse import DataverseClient
from tests.engine.conftest import confirmed_project
from tests.engine.test_load_pause import keys_at_destination


@pytest.fixture
def writers(monkeypatch):
    """Names of the threads that sent each CreateMultiple."""
    names: list[str] = []
    real = DataverseClient.create_multiple

    def create_multiple(self, meta, records):
        names.append(threading.current_thread().name)
        return real(self, meta, records)

    monkeypatch.setattr(DataverseClient, "create_multiple", create_multiple)
    return names


def _loaded(tmp_path, name: str, faults: str, records: int = 300):
    """A fresh project (same export every time), its embedded sandbox configured with ``faults``, loaded."""
    project = confirmed_project(tmp_path / name, records=records)
    connection.configure(
        project, "target", url=None, auth="sandbox", tenant=None, client_id=None, token_url=None, username=None,
        secret=None, faults=faults,
    )  # fmt: skip
    record_signoff(project, "tester")
    result = load(project, batch_size=10)
    ledger = {
        (r["part"], r["source_id"], r["key"], r["action"])
        for r in project.query(
            "SELECT part, source_id, key, action FROM crosswalk WHERE run_id = ? AND action != 'pending'",
            (result.run_id,),
        )
    }
    created: dict[str, set[str]] = {}
    for r in project.query(
        "SELECT target_entity, key FROM crosswalk WHERE run_id = ? AND action = 'created'", (result.run_id,)
    ):
        created.setdefault(r["target_entity"], set()).add(r["key"])
    stored = {entity: keys_at_destination(project, entity) for entity in created}
    project.close()
    return result, ledger, created, stored


def _exactly_once(created: dict[str, set[str]], stored: dict) -> None:
    for entity, keys in created.items():
        assert set(stored[entity]) == keys, entity
        assert set(stored[entity].values()) == {1}, entity  # no duplicates at the destination


def test_dop_4_matches_dop_1_and_sends_no_more_requests(tmp_path, monkeypatch, writers):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    one, ledger_one, created_one, stored_one = _loaded(tmp_path, "one", "dop=1")
    assert one.status == "completed"
    assert writers
    assert not [n for n in writers if n.startswith("crm-write")]  # dop 1: every write from the run's thread
    writers.clear()

    four, ledger_four, created_four, stored_four = _loaded(tmp_path, "four", "dop=4")
    assert four.status == "completed"
    assert [n for n in writers if n.startswith("crm-write")]  # sub-requests went out side by side

    assert ledger_four == ledger_one
    assert created_four == created_one
    _exactly_once(created_one, stored_one)
    _exactly_once(created_four, stored_four)
    assert [o for o in four.objects] == [o for o in one.objects]
    assert four.requests <= one.requests  # splitting never costs requests


def test_injected_429_and_500_lose_and_duplicate_nothing_at_dop_4(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    # 5% of requests fail (429 with Retry-After, or 500, each retried with backoff by the client).
    clean, ledger_clean, created_clean, _stored = _loaded(tmp_path, "clean", "dop=4", records=150)
    faulty, ledger_faulty, created_faulty, stored_faulty = _loaded(
        tmp_path, "faulty", "429=0.03,500=0.02,retry_after=0,dop=4,seed=11", records=150
    )
    assert faulty.status == "completed"
    assert all(o["failed"] == 0 for o in faulty.objects)
    assert ledger_faulty == ledger_clean
    assert created_faulty == created_clean
    _exactly_once(created_faulty, stored_faulty)
    assert faulty.requests > clean.requests  # the faults were there, and retried
