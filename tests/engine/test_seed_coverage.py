"""Every row of every seed's object-mapping table is present in its pair's playbook.

The seeds (``../shared/seeds``) are requirements. A row must either name the source objects that
carry it (and the demo for that pair loads them) or be routed to the rebuild reference package.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crmmigrator_gui.engine.mapping.playbook import load_playbook, playbook_path

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"
SOURCES = {"Dispatch Pro": "dispatchpro", "Q Dispatch": "qdispatch", "ServiceTracker": "servicetracker",
           "OctopusPro": "octopuspro"}
TARGETS = {"Microsoft Dynamics 365 Sales": "dynamics365", "Salesforce Sales Cloud": "salesforce"}


def seed_tables() -> list[tuple[str, str, str, list[str]]]:
    tables = []
    for path in sorted(SEEDS.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            match = re.match(r"^\| (.+?) \| (.+?) \| Compatibility \| \|$", line)
            if not match:
                continue
            rows = []
            for row in lines[index + 2:]:
                if not row.startswith("| "):
                    break
                rows.append(row.split(" | ")[0].lstrip("| ").strip())
            tables.append((path.name, SOURCES[match.group(1)], TARGETS[match.group(2)], rows))
    return tables


TABLES = seed_tables() if SEEDS.exists() else []


def test_the_five_seed_tables_are_found():
    if not SEEDS.exists():
        pytest.skip("shared/seeds is not beside this checkout")
    assert len(TABLES) == 5
    assert [len(t[3]) for t in TABLES] == [12, 11, 12, 15, 9]


@pytest.mark.parametrize(("seed", "source", "target", "rows"), TABLES, ids=[t[0] for t in TABLES])
def test_every_seed_row_is_in_its_playbook(seed, source, target, rows):
    if not playbook_path(source, target).exists():
        pytest.skip(f"{source} → {target} has no playbook yet")
    for edition in ("enterprise", "professional"):
        playbook = load_playbook(source, target, edition)
        names = [row["row"] for row in playbook.seed_rows]
        assert sorted(names) == sorted(rows), f"{seed}: playbook rows differ from the seed table"
        objects = {o.name for o in playbook.objects}
        for row in playbook.seed_rows:
            if row.get("rebuild"):
                continue
            assert row.get("objects"), f"{row['row']}: neither source objects nor a rebuild route"
            assert set(row["objects"]) <= objects, row
