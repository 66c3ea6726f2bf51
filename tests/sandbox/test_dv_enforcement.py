"""Platform enforcement (reference §3–§5, §9, §10, §12): what the real API refuses, the sandbox refuses."""

from __future__ import annotations

import uuid

from .conftest import create, source_key


def test_system_required_lookup_cannot_be_cleared(client):
    rid = create(client, "accounts", {"name": "owned"})
    for body in ({"ownerid@odata.bind": None}, {"ownerid": None}):
        r = client.patch(f"accounts({rid})", json=body)
        assert r.status_code == 400, body
        assert "ownerid" in r.json()["error"]["message"]
    r = client.delete(f"accounts({rid})/ownerid/$ref")
    assert r.status_code == 400
    assert client.get(f"accounts({rid})").json()["_ownerid_value"]
    # an ordinary lookup can be cleared all three ways
    other = create(client, "accounts", {"name": "parent"})
    client.patch(f"accounts({rid})", json={"parentaccountid@odata.bind": f"/accounts({other})"})
    assert client.patch(f"accounts({rid})", json={"parentaccountid": None}).status_code == 204


def test_system_required_string_on_create_and_update(client):
    r = client.post("products", json={"name": "no number", "quantitydecimal": 2})
    assert r.status_code == 400
    assert "productnumber" in r.json()["error"]["message"]
    pid = create(client, "products", {"name": "p", "productnumber": "P-1", "quantitydecimal": 2})
    assert client.patch(f"products({pid})", json={"productnumber": None}).status_code == 400
    # ApplicationRequired (account.name) is not enforced by the API
    assert client.post("accounts", json={"telephone1": "1"}).status_code == 204


def test_max_length_and_option_values_on_every_write_path(client):
    rid = create(client, "tasks", {"subject": "ok"})
    r = client.patch(f"tasks({rid})", json={"subject": "x" * 201})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "0x80044331",
        "message": "The length of the 'subject' attribute of the 'task' entity exceeded the maximum allowed "
        "length of '200'.",
    }
    r = client.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "a", "industrycode": 9999}]})
    assert r.status_code == 400
    assert "outside the valid range" in r.json()["error"]["message"]
    r = client.post("accounts", json={"name": "a", "industrycode": "1"})
    assert r.status_code == 400  # choices are integers, not strings


def test_state_status_rules(client):
    # statecode is not valid for create: ignored; a status of another state is refused
    tid = create(client, "tasks", {"subject": "t", "statecode": 1})
    assert client.get(f"tasks({tid})").json()["statecode"] == 0
    r = client.post("tasks", json={"subject": "t", "statuscode": 5})
    assert r.status_code == 400
    assert "not a valid status code" in r.json()["error"]["message"]
    # a PATCH needs a valid pair; statecode alone takes the state's default status
    assert client.patch(f"tasks({tid})", json={"statecode": 1, "statuscode": 3}).status_code == 400
    assert client.patch(f"tasks({tid})", json={"statecode": 1}).status_code == 204
    assert client.get(f"tasks({tid})").json()["statuscode"] == 5
    # tables that refuse a plain state PATCH name the message to use
    opp = create(client, "opportunities", {"name": "o"})
    r = client.patch(f"opportunities({opp})", json={"statecode": 1, "statuscode": 3})
    assert r.status_code == 400
    assert "WinOpportunity" in r.json()["error"]["message"]


def test_lookups_must_resolve_and_binds_are_case_sensitive(client):
    acc = create(client, "accounts", {"name": "a"})
    missing = uuid.uuid4()
    r = client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": f"/accounts({missing})"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x80040217"
    r = client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": f"/Accounts({acc})"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x8006088a"
    r = client.post("contacts", json={"lastname": "x", "ParentCustomerId_account@odata.bind": f"/accounts({acc})"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80048d19"
    r = client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": f"/contacts({acc})"})
    assert r.status_code == 400  # a contact cannot be bound through the account navigation property
    r = client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": "accounts(name='a')"})
    assert r.status_code == 400  # not a declared key
    assert client.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind":
                                         f"https://org.crm.dynamics.com/api/data/v9.2/accounts({acc})"}
                       ).status_code == 204


def test_overriddencreatedon_is_create_only(client):
    rid = create(client, "accounts", {"name": "old", "overriddencreatedon": "2019-05-01T12:00:00Z"})
    assert client.patch(f"accounts({rid})", json={"overriddencreatedon": "2001-01-01T00:00:00Z"}).status_code == 204
    row = client.get(f"accounts({rid})", params={"$select": "createdon,overriddencreatedon"}).json()
    assert row["createdon"] == "2019-05-01T12:00:00Z"
    assert row["overriddencreatedon"] > "2020"
    r = client.post("accounts", json={"name": "too old", "overriddencreatedon": "1700-01-01T00:00:00Z"})
    assert r.status_code == 400
    # activities and lines keep it too (history of field-service jobs)
    tid = create(client, "phonecalls", {"subject": "c", "overriddencreatedon": "2018-02-03T04:05:06Z"})
    assert client.get(f"phonecalls({tid})").json()["createdon"] == "2018-02-03T04:05:06Z"


def test_documentbody_limit_is_the_org_setting_on_base64_length(client, sandbox):
    acc = create(client, "accounts", {"name": "notes"})
    org = sandbox.organization_id
    assert client.get("organizations", params={"$select": "maxuploadfilesize"}).json()["value"][0][
        "maxuploadfilesize"] == 5242880
    assert client.patch(f"organizations({org})", json={"maxuploadfilesize": 1000}).status_code == 204
    note = {"subject": "s", "filename": "a.bin", "objectid_account@odata.bind": f"/accounts({acc})"}
    create(client, "annotations", {**note, "documentbody": "A" * 1000})  # exactly the limit: fine
    r = client.post("annotations", json={**note, "documentbody": "A" * 1004})  # 753 bytes decoded, 1004 base64
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "0x80044a02", "message": "Attachment file size is too big."}
    nid = create(client, "annotations", {**note, "documentbody": "QUJD"})
    r = client.patch(f"annotations({nid})", json={"documentbody": "A" * 2000})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80044a02"
    assert client.patch(f"organizations({org})", json={"maxuploadfilesize": 131072001}).status_code == 400


def test_upsert_conditional_headers_by_key_and_id(client):
    source_key(client)
    rid = create(client, "accounts", {"name": "v1", "new_sourcesystemid": "K-1"})
    tag = client.get(f"accounts({rid})").headers["ETag"]
    r = client.patch("accounts(new_sourcesystemid='K-1')", json={"name": "v2"}, headers={"If-Match": tag})
    assert r.status_code == 204
    r = client.patch("accounts(new_sourcesystemid='K-1')", json={"name": "v3"}, headers={"If-Match": tag})
    assert r.status_code == 412  # the etag moved on
    r = client.patch("accounts(new_sourcesystemid='K-404')", json={"name": "x"}, headers={"If-Match": 'W/"5"'})
    assert r.status_code == 404
    r = client.patch(f"accounts({uuid.uuid4()})", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 204
    r = client.patch(f"accounts({rid})", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert client.get(f"accounts({rid})").json()["name"] == "v2"
