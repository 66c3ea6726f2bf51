"""The client honours 429 + Retry-After from a served sandbox with injected faults, and loses nothing."""

from __future__ import annotations

from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.sandbox.server import start_background


def test_load_survives_injected_429_and_500(mapped_project, tmp_path):
    server, thread, url = start_background(data=str(tmp_path / "served.sqlite"),
                                           faults="429=0.15,500=0.02,retry_after=0,seed=4")
    try:
        connection.configure(mapped_project, "target", url=url, auth="sandbox", tenant=None, client_id=None,
                             token_url=None, username=None, secret=None)
        result = load(mapped_project)
        assert result.status == "completed"
        for o in result.objects:
            assert o["created"] + o["failed"] + o["skipped"] == o["source_records"]
            assert o["failed"] == 0, o
        sandbox = server.get_app()
        assert sandbox.request_count > result.requests * 0.5
        again = load(mapped_project)
        assert sum(o["created"] for o in again.objects) == 0
    finally:
        server.shutdown()
        server.server_close()
        server.get_app().close()
        thread.join(5)
