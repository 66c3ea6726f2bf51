"""Lookups with @odata.bind (item 4) and queries: $filter, $orderby, paging, counts (item 5)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from .conftest import API, create, source_key


@pytest.fixture
def account(client):
    return create(client, "accounts", {"name": "Contoso"})


def test_bind_by_guid_reads_back_as_value(client, account):
    rid = create(
        client,
        "contacts",
        {"lastname": "Smith", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )
    row = client.get(f"contacts({rid})", params={"$select": "_parentcustomerid_value"}).json()
    assert row["_parentcustomerid_value"] == account
    assert "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in row
    ann = client.get(
        f"contacts({rid})",
        params={"$select": "_parentcustomerid_value"},
        headers={"Prefer": 'odata.include-annotations="*"'},
    ).json()
    assert ann["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert (
        ann["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"]
        == "parentcustomerid_account"
    )


def test_bind_by_alternate_key_and_absolute_url(client):
    source_key(client)
    acc = create(client, "accounts", {"name": "Keyed", "new_sourcesystemid": "CRM-42"})
    c1 = create(
        client,
        "contacts",
        {"lastname": "A", "parentcustomerid_account@odata.bind": "/accounts(new_sourcesystemid='CRM-42')"},
    )
    c2 = create(
        client, "contacts", {"lastname": "B", "parentcustomerid_account@odata.bind": f"{API}accounts({acc})"}
    )
    for cid in (c1, c2):
        assert client.get(f"contacts({cid})").json()["_parentcustomerid_value"] == acc


def test_bind_with_undeclared_or_miscased_navigation_property(client, account):
    for nav in ("parentcustomerid", "Parentcustomerid_account"):
        r = client.post("contacts", json={"lastname": "x", f"{nav}@odata.bind": f"/accounts({account})"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "0x80048d19"
        assert f"An undeclared property '{nav}' which only has property annotations" in err["message"]


def test_bind_to_missing_row(client):
    missing = uuid.uuid4()
    r = client.post(
        "contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": f"/accounts({missing})"}
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x80040217"
    assert r.json()["error"]["message"].endswith("Does Not Exist")


def test_clear_lookup_with_null_and_ref_delete(client, account):
    contact = create(client, "contacts", {"lastname": "Primary"})
    client.patch(
        f"accounts({account})",
        json={
            "primarycontactid@odata.bind": f"/contacts({contact})",
            "parentaccountid@odata.bind": f"/accounts({account})",
        },
    )
    row = client.get(f"accounts({account})").json()
    assert row["_primarycontactid_value"] == contact
    assert row["_parentaccountid_value"] == account
    assert client.delete(f"accounts({account})/primarycontactid/$ref").status_code == 204
    client.patch(f"accounts({account})", json={"parentaccountid@odata.bind": None})
    row = client.get(f"accounts({account})").json()
    assert row["_primarycontactid_value"] is None
    assert row["_parentaccountid_value"] is None


def test_owner_binds_to_users_and_teams(client, sandbox):
    team = client.get("teams").json()["value"][0]["teamid"]
    user = sandbox.add_user("Tech One", "one@example.com")
    a1 = create(client, "accounts", {"name": "u", "ownerid@odata.bind": f"/systemusers({user})"})
    a2 = create(client, "accounts", {"name": "t", "ownerid@odata.bind": f"/teams({team})"})
    assert client.get(f"accounts({a1})").json()["_ownerid_value"] == user
    assert client.get(f"accounts({a2})").json()["_ownerid_value"] == team
    default = create(client, "accounts", {"name": "default owner"})
    assert client.get(f"accounts({default})").json()["_ownerid_value"] == sandbox.whoami_user_id
    gone = sandbox.add_user("Old Tech", "old@example.com", disabled=True)
    r = client.post("accounts", json={"name": "d", "ownerid@odata.bind": f"/systemusers({gone})"})
    assert r.status_code == 400
    assert "disabled" in r.json()["error"]["message"]


def test_task_regarding_and_note_object_navs(client, account):
    tid = create(
        client,
        "tasks",
        {"subject": "s", "regardingobjectid_account_task@odata.bind": f"/accounts({account})"},
    )
    assert client.get(f"tasks({tid})").json()["_regardingobjectid_value"] == account
    r = client.post(
        "tasks", json={"subject": "s", "regardingobjectid_account@odata.bind": f"/accounts({account})"}
    )
    assert r.status_code == 400


@pytest.fixture
def people(client):
    acc = create(client, "accounts", {"name": "Acme"})
    rows = [
        ("Ann", "Smith", "ann@x.com", 10, "2024-01-05T00:00:00Z"),
        ("Bob", "smithers", "bob@y.com", 20, None),
        ("Cy", "Jones", None, 30, "2024-06-01T00:00:00Z"),
        ("Di", "O'Brien", "di@x.com", 40, None),
    ]
    ids = {}
    for first, last, mail, n, sched in rows:
        body = {"firstname": first, "lastname": last, "emailaddress1": mail}
        if last == "Smith":
            body["parentcustomerid_account@odata.bind"] = f"/accounts({acc})"
        ids[first] = create(client, "contacts", body)
        create(
            client, "tasks", {"subject": f"task {first}", "actualdurationminutes": n, "scheduledend": sched}
        )
    return acc, ids


def names(resp):
    assert resp.status_code == 200, resp.text
    return sorted(r.get("firstname") or r.get("subject") for r in resp.json()["value"])


def test_filter_operators(client, people):
    acc, ids = people
    q = lambda f, s="contacts": names(client.get(s, params={"$filter": f}))  # noqa: E731
    assert q("lastname eq 'SMITH'") == ["Ann"]
    assert q("startswith(lastname,'smith')") == ["Ann", "Bob"]
    assert q("contains(emailaddress1,'@x.')") == ["Ann", "Di"]
    assert q("endswith(emailaddress1,'y.com')") == ["Bob"]
    assert q("emailaddress1 eq null") == ["Cy"]
    assert q("emailaddress1 ne null and not (lastname eq 'Smith')") == ["Bob", "Di"]
    assert q("lastname eq 'O''Brien' or firstname eq 'Cy'") == ["Cy", "Di"]
    assert q(f"_parentcustomerid_value eq {acc}") == ["Ann"]
    assert q(f"contactid eq {ids['Bob']}") == ["Bob"]
    assert q("Microsoft.Dynamics.CRM.In(PropertyName='firstname',PropertyValues=['ann','Cy'])") == [
        "Ann",
        "Cy",
    ]
    assert q('Microsoft.Dynamics.CRM.In(PropertyName="lastname",PropertyValues=["jones","o\'brien"])') == [
        "Cy",
        "Di",
    ]
    assert q("actualdurationminutes gt 10 and actualdurationminutes le 30", "tasks") == [
        "task Bob",
        "task Cy",
    ]
    assert q("scheduledend ge 2024-03-01T00:00:00Z", "tasks") == ["task Cy"]
    assert q("scheduledend lt 2024-03-01", "tasks") == ["task Ann"]
    assert q("statecode eq 0", "tasks") == ["task Ann", "task Bob", "task Cy", "task Di"]


def test_filter_errors(client):
    r = client.get("contacts", params={"$filter": "nosuch eq 1"})
    assert r.status_code == 400
    assert "Could not find a property named 'nosuch'" in r.json()["error"]["message"]
    assert client.get("contacts", params={"$filter": "lastname eq"}).status_code == 400


def test_orderby_top_and_count(client, people):
    r = client.get(
        "contacts",
        params={"$select": "firstname", "$orderby": "lastname desc,firstname", "$top": "3", "$count": "true"},
    )
    body = r.json()
    assert [v["firstname"] for v in body["value"]] == ["Bob", "Ann", "Di"]
    assert body["@odata.count"] == 4
    assert "@odata.nextLink" not in body
    assert body["@odata.context"] == f"{API}$metadata#contacts(firstname,contactid)"
    assert all(v["@odata.etag"].startswith('W/"') for v in body["value"])


def test_count_endpoint_plain_text(client, people):
    r = client.get("contacts/$count")
    assert r.status_code == 200
    assert r.text == "4"
    assert r.headers["content-type"].startswith("text/plain")


def test_skip_is_refused(client):
    r = client.get("accounts", params={"$skip": "10"})
    assert r.status_code == 400
    assert "$skip" in r.json()["error"]["message"]


@pytest.mark.parametrize("orderby", [None, "name desc"])
def test_paging_with_maxpagesize_and_skiptoken(client, orderby):
    client.post(
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={
            "Targets": [
                {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": f"A{i:03d}"} for i in range(25)
            ]
        },
    )
    params = {"$select": "name"} | ({"$orderby": orderby} if orderby else {})
    r = client.get("accounts", params=params, headers={"Prefer": "odata.maxpagesize=10"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
    seen, pages = [], 0
    while True:
        body = r.json()
        pages += 1
        seen += [v["name"] for v in body["value"]]
        link = body.get("@odata.nextLink")
        if not link:
            break
        assert "$skiptoken=" in link
        parts = urlsplit(link)
        r = client.get(
            f"{parts.path.split('/v9.2/')[1]}?{parts.query}", headers={"Prefer": "odata.maxpagesize=10"}
        )
    assert pages == 3
    assert len(seen) == 25
    assert len(set(seen)) == 25
    if orderby:
        assert seen == sorted(seen, reverse=True)


def test_paging_survives_deleting_the_previous_page(client):
    client.post(
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={
            "Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": f"D{i}"} for i in range(12)]
        },
    )
    deleted = 0
    r = client.get("accounts", params={"$select": "name"}, headers={"Prefer": "odata.maxpagesize=5"})
    while True:
        body = r.json()
        for v in body["value"]:
            assert client.delete(f"accounts({v['accountid']})").status_code == 204
            deleted += 1
        if "@odata.nextLink" not in body:
            break
        r = client.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=5"})
    assert deleted == 12
