"""Credentials never reach the project file, even in columns no playbook role knows about."""

from __future__ import annotations

import json

from crmmigrator_gui.engine.mapping.maps import run_automap
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.importer import import_paths


def test_unknown_credential_columns_are_dropped_at_import(tmp_path) -> None:
    export = tmp_path / "clients.csv"
    export.write_text(
        "Client ID,Company Name,Email,Portal PIN,API Token,Zip code\n"
        "C-1,Acme Plumbing,ops@acme.example,4711,tok_9f8e7d,02108\n"
        "C-2,Best Heating,info@best.example,0000,tok_1a2b3c,10001\n",
        encoding="utf-8",
    )
    project = Project.create(tmp_path / "p.cmproj", source="generic", target="dynamics365")
    result = import_paths(project, [export])
    raws = [json.loads(r["raw"]) for r in project.query("SELECT raw FROM staging")]
    assert len(raws) == 2
    for raw in raws:
        assert "Portal PIN" not in raw
        assert "API Token" not in raw
        assert raw["Zip code"] in ("02108", "10001")  # "code" words are not credentials
    wal = project.path.with_name(project.path.name + "-wal")
    text = project.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"ops@acme.example" in text  # the check below can see staged data
    assert b"tok_9f8e7d" not in text
    assert b"tok_1a2b3c" not in text
    dropped = {c for o in result.objects for c in o.dropped_columns}
    assert {"Portal PIN", "API Token"} <= dropped
    _proposals, unmapped = run_automap(project)
    assert {"Portal PIN", "API Token"} <= {u.source_field for u in unmapped}
    project.close()
