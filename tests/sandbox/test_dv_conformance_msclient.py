"""Conformance with Microsoft's Dataverse SDK for Python (``PowerPlatform-Dataverse-Client``, test-only).

The SDK runs unmodified against the emulator on a loopback socket. It refuses ``http://`` base URLs
(``DataverseClient`` raises ValueError so a bearer token never goes out in clear text), so the server runs with
``tls=True`` and the test trusts the sandbox's throw-away CA through ``REQUESTS_CA_BUNDLE`` (the SDK uses
``requests``). Authentication is a stub ``azure.core.credentials.TokenCredential``; the emulator accepts any
bearer token and the test checks the SDK asks for the ``{base_url}/.default`` scope.

Where the SDK and the reference disagree, the reference wins:

- ``tables.create`` posts the ``CreateEntities`` action, which the reference does not describe (§8 creates
  metadata through ``EntityDefinitions``); the emulator does not implement it, and the test pins the SDK's
  error (404 ``0x8006088a``) instead. Columns and alternate keys go through ``EntityDefinitions`` and work.
- The SDK surfaces ``error.innererror.message`` when present; the emulator never sends ``innererror`` (it was
  removed from the real service in 2020, reference §12), so ``HttpError.message`` is the plain message.
- ``records.delete(table, [ids])`` defaults to the ``BulkDelete`` action (an async job), which is outside the
  reference; the test deletes with ``use_bulk_delete=False`` (one DELETE per id), as the product does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("PowerPlatform.Dataverse")  # test-only dependencies; the TLS server needs trustme
pytest.importorskip("trustme")
from azure.core.credentials import AccessToken, TokenCredential
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.errors import HttpError, MetadataError
from PowerPlatform.Dataverse.models.upsert import UpsertItem

from crmmigrator_gui.sandbox.server import start_background


class StubCredential(TokenCredential):
    """Any token works against the sandbox; remember the scopes the SDK asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("stub-token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, object]]:
    server, thread, base = start_background(tls=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        try:
            yield base, server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            server.get_app().close()


@pytest.fixture
def dv(served) -> Iterator[tuple[DataverseClient, StubCredential]]:
    base, _ = served
    credential = StubCredential()
    with DataverseClient(base, credential) as client:
        yield client, credential


def test_sdk_refuses_plain_http():
    with pytest.raises(ValueError, match="HTTPS"):
        DataverseClient("http://127.0.0.1:1", StubCredential())


def test_create_read_update_delete(dv, served):
    client, credential = dv
    rid = client.records.create("account", {"name": "SDK single", "telephone1": "555-0100"})
    assert credential.scopes[0] == f"{served[0]}/.default"
    rec = client.records.retrieve("account", rid, select=["name", "telephone1"])
    assert rec["name"] == "SDK single"
    assert rec["telephone1"] == "555-0100"
    client.records.update("account", rid, {"name": "SDK renamed"})
    assert client.records.retrieve("account", rid, select=["name"])["name"] == "SDK renamed"
    client.records.delete("account", rid)
    assert client.records.retrieve("account", rid) is None  # the SDK maps 404 to None
    with pytest.raises(HttpError) as err:
        client.records.update("account", rid, {"name": "gone"})  # If-Match: * -> 404, not an upsert
    assert err.value.status_code == 404
    assert err.value.details["service_error_code"] == "0x80040217"
    assert err.value.message.endswith("Does Not Exist")


def test_create_multiple_update_multiple_and_delete_each(dv):
    client, _ = dv
    ids = client.records.create("contact", [{"lastname": f"Bulk {i}"} for i in range(5)])
    assert len(ids) == 5
    assert len(set(ids)) == 5
    client.records.update("contact", ids, {"jobtitle": "Engineer"})  # UpdateMultiple (broadcast)
    client.records.update("contact", ids[:2], [{"firstname": "A"}, {"firstname": "B"}])  # paired
    rows = {r["contactid"]: r for r in client.records.list(
        "contact", filter="jobtitle eq 'Engineer'", select=["firstname", "jobtitle"])}
    assert set(rows) == set(ids)
    assert rows[ids[1]]["firstname"] == "B"
    client.records.delete("contact", ids, use_bulk_delete=False)
    assert len(client.records.list("contact", filter="jobtitle eq 'Engineer'")) == 0


def test_query_paging_filter_select(dv):
    client, _ = dv
    client.records.create("account", [{"name": f"Page {i:02d}", "numberofemployees": i} for i in range(12)])
    pages = list(client.records.list_pages("account", filter="startswith(name,'Page ')", select=["name"], page_size=5,
                                    orderby=["name desc"]))
    assert [len(p) for p in pages] == [5, 5, 2]
    names = [r["name"] for p in pages for r in p]
    assert names == [f"Page {i:02d}" for i in reversed(range(12))]
    result = client.records.list("account", filter="numberofemployees ge 10 and startswith(name,'Page ')",
                                 select=["name", "numberofemployees"], count=True)
    assert sorted(r["numberofemployees"] for r in result) == [10, 11]


def test_columns_keys_and_upsert_by_alternate_key(dv):
    client, _ = dv
    info = client.tables.get("account")
    assert info is not None
    assert info["entity_set_name"] == "accounts"
    client.tables.add_columns("account", {"new_SdkSourceId": "string"})
    key = client.tables.create_alternate_key("account", "new_account_sdksourceid_key", ["new_sdksourceid"])
    assert key is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = client.tables.get_alternate_keys("account")
        status = next(k.status for k in keys if k.schema_name == "new_account_sdksourceid_key")
        if status == "Active":
            break
        time.sleep(0.1)
    assert status == "Active"
    client.records.upsert("account", [UpsertItem(alternate_key={"new_sdksourceid": "SRC-1"},
                                                 record={"name": "Upsert one"})])
    client.records.upsert("account", [
        UpsertItem(alternate_key={"new_sdksourceid": "SRC-1"}, record={"name": "Upsert one v2"}),
        UpsertItem(alternate_key={"new_sdksourceid": "SRC-2"}, record={"name": "Upsert two"}),
    ])  # UpsertMultiple
    rows = client.records.list("account", filter="startswith(new_sdksourceid,'SRC-')",
                               select=["name", "new_sdksourceid"])
    assert sorted((r["new_sdksourceid"], r["name"]) for r in rows) == [
        ("SRC-1", "Upsert one v2"), ("SRC-2", "Upsert two")]


def test_batch_with_changeset_and_content_id(dv):
    client, _ = dv
    batch = client.batch.new()
    batch.records.create("account", {"name": "Batch plain"})
    with batch.changeset() as cs:
        ref = cs.records.create("account", {"name": "Batch parent"})
        cs.records.create("contact", {"lastname": "Batch child", "parentcustomerid_account@odata.bind": ref})
    result = batch.execute()
    assert not result.has_errors, [(r.status_code, r.error_message) for r in result.failed]
    assert len(result.entity_ids) == 3
    child = client.records.list("contact", filter="lastname eq 'Batch child'",
                                select=["_parentcustomerid_value"]).first()
    parent = client.records.list("account", filter="name eq 'Batch parent'", select=["accountid"]).first()
    assert child["_parentcustomerid_value"] == parent["accountid"]


def test_batch_continue_on_error_reports_each_part(dv):
    client, _ = dv
    batch = client.batch.new()
    batch.records.create("account", {"name": "ok"})
    batch.records.create("account", {"name": "x" * 161})
    batch.records.create("account", {"name": "ok too"})
    result = batch.execute(continue_on_error=True)
    assert [r.status_code for r in result.responses] == [204, 400, 204]
    assert result.failed[0].error_code == "0x80044331"


def test_errors_surface_as_sdk_exceptions(dv):
    client, _ = dv
    with pytest.raises(HttpError) as err:
        client.records.create("account", {"nosuchcolumn": "x"})
    assert err.value.status_code == 400
    assert err.value.details["service_error_code"] == "0x0"
    assert "nosuchcolumn" in err.value.message
    with pytest.raises(HttpError) as err:
        client.records.create("task", {"subject": "s" * 201})
    assert err.value.details["service_error_code"] == "0x80044331"
    assert not err.value.is_transient
    with pytest.raises(MetadataError):
        client.records.create("new_nosuchtable", {"name": "x"})
    with pytest.raises(HttpError) as err:
        client.tables.create("new_SdkTable", {"new_Code": "string"})
    assert err.value.status_code == 404
    assert err.value.details["service_error_code"] == "0x8006088a"


def test_throttling_is_transient_with_retry_after(served):
    from crmmigrator_gui.sandbox.server import start_background as start

    server, thread, base = start(tls=True, faults="429=1,retry_after=2")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
            with DataverseClient(base, StubCredential()) as client, pytest.raises(HttpError) as err:
                client.records.retrieve("account", "00000000-0000-0000-0000-000000000001")
        assert err.value.status_code == 429
        assert err.value.is_transient
        assert err.value.details["retry_after"] == 2
        assert err.value.details["service_error_code"] == "0x80072322"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        server.get_app().close()
