"""$batch (item 6), bulk actions (item 7) and the sdkmessagefilters probe (item 8)."""

from __future__ import annotations

import re
import uuid

import pytest

from .conftest import API, create, source_key

T_ACCOUNT = "Microsoft.Dynamics.CRM.account"


def batch_body(parts: list[str], boundary: str = "batch_b1", newline: str = "\r\n") -> str:
    body = "".join(f"--{boundary}\n{p}\n" for p in parts) + f"--{boundary}--\n"
    return body.replace("\r\n", "\n").replace("\n", newline)


def changeset(ops: list[tuple[str, str, str | None, int | None]], boundary: str = "changeset_c1") -> str:
    out = [f"Content-Type: multipart/mixed; boundary={boundary}", ""]
    for method, url, body, cid in ops:
        out += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if cid is not None:
            out.append(f"Content-ID: {cid}")
        out += ["", f"{method} {url} HTTP/1.1", "Content-Type: application/json; type=entry", "", body or ""]
    out.append(f"--{boundary}--")
    return "\n".join(out)


def single(method: str, url: str, body: str | None = None) -> str:
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        f"{method} {url} HTTP/1.1",
    ]
    if body is not None:
        lines += ["Content-Type: application/json", "", body]
    else:
        lines += ["", ""]
    return "\n".join(lines)


def post_batch(client, body: str, prefer: str | None = None, boundary: str = "batch_b1"):
    headers = {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}
    if prefer:
        headers["Prefer"] = prefer
    return client.post("$batch", content=body.encode(), headers=headers)


def statuses(text: str) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", text, re.M)]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_changeset_with_content_id_references(client, newline):
    body = batch_body(
        [
            changeset(
                [
                    ("POST", "/api/data/v9.2/accounts", '{"name":"A"}', 1),
                    (
                        "POST",
                        "/api/data/v9.2/contacts",
                        '{"lastname":"B","parentcustomerid_account@odata.bind":"$1"}',
                        2,
                    ),
                    ("PATCH", "$1", '{"telephone1":"555"}', 3),
                ]
            ),
            single("GET", "http://sandbox.localhost/api/data/v9.2/accounts?$select=name,telephone1"),
        ],
        newline=newline,
    )
    r = post_batch(client, body)
    assert r.status_code == 200, r.text
    assert re.match(r"multipart/mixed; boundary=batchresponse_[0-9a-f-]{36}$", r.headers["content-type"])
    assert "changesetresponse_" in r.text
    assert statuses(r.text) == [204, 204, 204, 200]
    assert "Content-ID: 2" in r.text
    assert "OData-EntityId: " + API + "contacts(" in r.text
    acc = client.get("accounts").json()["value"][0]
    assert acc["telephone1"] == "555"
    contact = client.get("contacts").json()["value"][0]
    assert contact["_parentcustomerid_value"] == acc["accountid"]


def test_changeset_is_atomic(client):
    body = batch_body(
        [
            changeset(
                [
                    ("POST", "accounts", '{"name":"ok"}', 1),
                    ("POST", "accounts", '{"name":"' + "x" * 200 + '"}', 2),
                ]
            )
        ]
    )
    r = post_batch(client, body)
    assert r.status_code == 400
    assert statuses(r.text) == [400]
    assert "0x80044331" in r.text
    assert "Content-ID: 2" in r.text
    assert client.get("accounts/$count").text == "0"


def test_without_continue_on_error_stops_at_first_failure(client):
    body = batch_body(
        [
            single("POST", "accounts", '{"name":"first"}'),
            single("POST", "accounts", '{"bogus":1}'),
            single("POST", "accounts", '{"name":"never"}'),
        ]
    )
    r = post_batch(client, body)
    assert r.status_code == 400
    assert statuses(r.text) == [400]
    names = [a["name"] for a in client.get("accounts").json()["value"]]
    assert names == ["first"]


def test_continue_on_error_reports_every_part(client):
    body = batch_body(
        [
            single("POST", "accounts", '{"name":"first"}'),
            single("POST", "accounts", '{"bogus":1}'),
            changeset([("POST", "accounts", '{"industrycode":12345}', 1)]),
            single("POST", "accounts", '{"name":"third"}'),
        ]
    )
    r = post_batch(client, body, prefer="odata.continue-on-error")
    assert r.status_code == 200
    assert r.headers["Preference-Applied"] == "odata.continue-on-error"
    assert statuses(r.text) == [204, 400, 400, 204]
    assert sorted(a["name"] for a in client.get("accounts").json()["value"]) == ["first", "third"]


def test_undeclared_content_id_reference(client):
    body = batch_body(
        [changeset([("POST", "contacts", '{"lastname":"B","parentcustomerid_account@odata.bind":"$9"}', 1)])]
    )
    r = post_batch(client, body)
    assert r.status_code == 400
    assert "Content-ID Reference: '$9' does not exist in the batch context." in r.text


def test_get_not_allowed_in_changeset(client):
    r = post_batch(client, batch_body([changeset([("GET", "accounts", None, 1)])]))
    assert r.status_code == 400


def test_batch_operation_limit(client):
    parts = [single("GET", "WhoAmI") for _ in range(1001)]
    r = post_batch(client, batch_body(parts))
    assert r.status_code == 400
    assert "1000" in r.json()["error"]["message"]


def test_batch_counts_as_one_request(client, sandbox):
    before = sandbox.request_count
    post_batch(client, batch_body([single("GET", "WhoAmI"), single("GET", "WhoAmI")]))
    assert sandbox.request_count == before + 1


def targets(n: int, **extra) -> list[dict]:
    return [{"@odata.type": T_ACCOUNT, "name": f"Bulk {i}", **extra} for i in range(n)]


def test_create_multiple_returns_ids_in_order(client):
    r = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets(5)})
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    for i, rid in enumerate(body["Ids"]):
        assert client.get(f"accounts({rid})").json()["name"] == f"Bulk {i}"


def test_create_multiple_500_in_one_call(client):
    # Speed is measured outside the test suite (timed assertions are flaky); this checks the batch size works.
    r = client.post(
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": targets(500, telephone1="555", revenue=1000.25)},
    )
    assert r.status_code == 200
    assert len(r.json()["Ids"]) == 500
    assert client.get("accounts/$count").text == "500"


def test_create_multiple_requires_odata_type_and_is_all_or_nothing(client):
    r = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [{"name": "x"}]})
    assert r.status_code == 400
    assert "@odata.type" in r.json()["error"]["message"]
    bad = [*targets(3), {"@odata.type": T_ACCOUNT, "name": "y" * 161}]
    r = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": bad})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80044331"
    assert client.get("accounts/$count").text == "0"


def test_update_multiple(client):
    ids = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets(2)}).json()[
        "Ids"
    ]
    r = client.post(
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {"@odata.type": T_ACCOUNT, "accountid": ids[0], "name": "first wins"},
                {"@odata.type": T_ACCOUNT, "accountid": ids[0], "name": "ignored"},
                {"@odata.type": T_ACCOUNT, "accountid": ids[1], "telephone1": "2"},
            ]
        },
    )
    assert r.status_code == 204
    assert client.get(f"accounts({ids[0]})").json()["name"] == "first wins"
    missing = client.post(
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {"@odata.type": T_ACCOUNT, "accountid": ids[1], "name": "rolled back"},
                {"@odata.type": T_ACCOUNT, "accountid": str(uuid.uuid4()), "name": "x"},
            ]
        },
    )
    assert missing.status_code == 404
    assert client.get(f"accounts({ids[1]})").json()["name"] == "Bulk 1"


def test_upsert_multiple_with_key_references(client):
    source_key(client)
    existing = create(client, "accounts", {"name": "old", "new_sourcesystemid": "K1"})
    r = client.post(
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {
                    "@odata.type": T_ACCOUNT,
                    "@odata.id": "accounts(new_sourcesystemid='K1')",
                    "name": "updated",
                },
                {
                    "@odata.type": T_ACCOUNT,
                    "@odata.id": "accounts(new_sourcesystemid='K2')",
                    "name": "created",
                },
            ]
        },
    )
    assert r.status_code == 204, r.text
    assert client.get(f"accounts({existing})").json()["name"] == "updated"
    k2 = client.get("accounts(new_sourcesystemid='K2')").json()
    assert k2["name"] == "created"
    assert k2["new_sourcesystemid"] == "K2"
    dup = client.post(
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {"@odata.type": T_ACCOUNT, "@odata.id": "accounts(new_sourcesystemid='K3')", "name": "a"},
                {"@odata.type": T_ACCOUNT, "@odata.id": "accounts(new_sourcesystemid='K3')", "name": "b"},
            ]
        },
    )
    assert dup.status_code == 400
    assert client.get("accounts(new_sourcesystemid='K3')").status_code == 404


def test_upsert_multiple_needs_active_key(client):
    r = client.post(
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [{"@odata.type": T_ACCOUNT, "@odata.id": "accounts(accountnumber='X')", "name": "a"}]
        },
    )
    assert r.status_code == 400
    assert "key in the request URI is not valid" in r.json()["error"]["message"]


def test_bulk_on_unsupported_table(client):
    r = client.post(
        "uoms/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.uom", "name": "x"}]},
    )
    assert r.status_code == 400
    assert "does not support entities of type 'uom'" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("table", "supported"),
    [("account", True), ("contact", True), ("annotation", True), ("uom", False), ("systemuser", False)],
)
def test_sdkmessagefilters_probe(client, table, supported):
    r = client.get(
        "sdkmessagefilters",
        params={
            "$select": "sdkmessagefilterid",
            "$filter": f"sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq '{table}'",
        },
    )
    assert r.status_code == 200
    assert bool(r.json()["value"]) is supported
    if supported:
        assert set(r.json()["value"][0]) == {"@odata.etag", "sdkmessagefilterid"}


def test_bulk_support_is_configurable_per_table():
    from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

    from .conftest import make_client

    sb = DataverseSandbox(bulk_messages={"account": []})
    try:
        with make_client(sb) as c:
            probe = c.get(
                "sdkmessagefilters",
                params={
                    "$filter": "sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'account'"
                },
            )
            assert probe.json()["value"] == []
            r = c.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets(1)})
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "0x80040800"
    finally:
        sb.close()
