"""`connect … --auth sandbox --url` works for a Salesforce target (PRODUCT.md): the client runs the real
OAuth client-credentials flow against the served sandbox, with no secret in the keyring, and counts retries."""

from __future__ import annotations

import keyring

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.sandbox.server import start_background


def test_served_salesforce_sandbox_connects_without_a_stored_secret(tmp_path):
    server, thread, url = start_background(data=str(tmp_path / "served.sqlite"), faults="503=0.4,seed=2")
    project = Project.create(tmp_path / "p.cmproj", source="qdispatch", target="salesforce")
    try:
        connection.configure(project, "target", url=url, auth="sandbox", tenant=None, client_id=None,
                             token_url=None, username=None, secret=None)
        info = connection.test_connection(project)
        assert info["ok"]
        assert info["user_id"].startswith("005")
        assert keyring.get_password("crmmigrator", f"{project.path}:target") is None  # nothing stored
        with connection.destination(project) as client:
            for _ in range(6):
                client.limits()
            assert client.http.retries > 0  # injected 503s were retried, and counted
    finally:
        project.close()
        server.shutdown()
        server.server_close()
        server.get_app().close()
        thread.join(5)
