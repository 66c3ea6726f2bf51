"""Records of technicians with no user go to the project's fallback owner, which pre-flight and load resolve
the same way; an unknown or disabled fallback owner stops the load before anything is written."""

from __future__ import annotations

import json

import pytest

from crmmigrator_gui.engine.errors import BlockedError
from crmmigrator_gui.engine.plan.preflight import preflight
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.target.connection import destination, embedded_sandbox_path
from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox


def _sandbox(project) -> DataverseSandbox:
    return DataverseSandbox(embedded_sandbox_path(project))


def test_unknown_fallback_owner_blocks_preflight_and_load(mapped_project) -> None:
    with mapped_project.step("fallback owner"):
        mapped_project.set_meta("fallback_owner", "nobody@example.invalid")
    result = preflight(mapped_project)
    assert any(f["code"] == "FALLBACK_OWNER_UNKNOWN" and f["blocking"] for f in result["findings"])
    with pytest.raises(BlockedError, match=r"nobody@example\.invalid"):
        load(mapped_project)
    assert mapped_project.scalar("SELECT COUNT(*) FROM crosswalk") == 0


def test_records_of_unmatched_technicians_are_owned_by_the_fallback_owner(mapped_project) -> None:
    sandbox = _sandbox(mapped_project)
    fallback = sandbox.add_user("Office Manager", "office@example.com")
    # Disable one technician's user: that technician is now unmatched.
    tech = mapped_project.query("SELECT raw FROM staging WHERE object = 'fieldworkers' LIMIT 1")[0]["raw"]
    email = next(v for k, v in json.loads(tech).items() if "mail" in k.lower())
    sandbox.add_user("Disabled Tech", email, disabled=True)
    sandbox.close()
    with mapped_project.step("fallback owner"):
        mapped_project.set_meta("fallback_owner", "office@example.com")
    result = load(mapped_project)
    assert result.status.startswith("completed")
    with destination(mapped_project) as client:
        owners = [str(r["_ownerid_value"]) for r in client.query("new_jobs", select=["_ownerid_value"])]
    assert owners
    assert fallback in owners  # the disabled technician's jobs
    assert len(set(owners)) > 1  # and only those: matched technicians keep their own records
