"""Create / retrieve / update / delete / upsert semantics of reference §3 and validation (item 3)."""

from __future__ import annotations

import uuid

import pytest

from .conftest import API, create, source_key


def test_create_returns_204_with_entity_id(client):
    r = client.post("accounts", json={"name": "Contoso", "telephone1": "555-0100"})
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["OData-EntityId"].startswith(API + "accounts(")


def test_create_with_return_representation(client):
    r = client.post(
        "accounts?$select=name,telephone1",
        json={"name": "Fabrikam", "telephone1": "1"},
        headers={"Prefer": "return=representation"},
    )
    assert r.status_code == 201
    assert "OData-EntityId" not in r.headers
    assert r.headers["Preference-Applied"] == "return=representation"
    body = r.json()
    assert body["name"] == "Fabrikam"
    assert body["@odata.etag"].startswith('W/"')
    assert set(body) == {"@odata.context", "@odata.etag", "name", "telephone1", "accountid"}


def test_client_supplied_primary_key_and_duplicate(client):
    rid = str(uuid.uuid4())
    assert create(client, "accounts", {"accountid": rid, "name": "A"}) == rid
    r = client.post("accounts", json={"accountid": rid, "name": "B"})
    assert r.status_code in (400, 412)
    assert r.json()["error"]["code"] == "0x80040237"


def test_get_by_id_with_select_and_missing_row(client):
    rid = create(client, "contacts", {"firstname": "Joe", "lastname": "Smith"})
    r = client.get(f"contacts({rid})", params={"$select": "fullname,lastname"})
    assert r.status_code == 200
    assert r.headers["ETag"] == r.json()["@odata.etag"]
    assert r.json()["fullname"] == "Joe Smith"
    missing = str(uuid.uuid4())
    r = client.get(f"contacts({missing})")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "0x80040217",
        "message": f"contact With Id = {missing} Does Not Exist",
    }


def test_unknown_select_column(client):
    r = client.get("accounts", params={"$select": "Name"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x0"
    assert "Could not find a property named 'Name'" in r.json()["error"]["message"]


def test_unknown_body_column_rejected_case_sensitive(client):
    r = client.post("accounts", json={"Name": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "0x0",
        "message": "Invalid property 'Name' was found in entity 'Microsoft.Dynamics.CRM.account'.",
    }


def test_non_writable_columns_silently_dropped(client):
    r = client.post(
        "invoices",
        json={"name": "INV", "totalamount": 99, "createdon": "2001-01-01T00:00:00Z", "statecode": 2},
        headers={"Prefer": "return=representation"},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["totalamount"] is None
    assert body["createdon"] > "2020"
    assert body["createdon"].endswith("Z")
    assert body["statecode"] == 0
    assert body["statuscode"] == 1


def test_string_over_max_length(client):
    r = client.post("tasks", json={"subject": "x" * 201})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "0x80044331",
        "message": "The length of the 'subject' attribute of the "
        "'task' entity exceeded the maximum allowed length of '200'.",
    }
    assert client.post("accounts", json={"name": "n" * 160}).status_code == 204
    assert client.post("accounts", json={"name": "n" * 161}).status_code == 400


def test_choice_outside_option_set(client):
    r = client.post("accounts", json={"name": "x", "industrycode": 999})
    assert r.status_code == 400
    assert "is outside the valid range" in r.json()["error"]["message"]
    assert client.post("accounts", json={"name": "x", "industrycode": 7}).status_code == 204


def test_state_status_pairs(client):
    rid = create(client, "tasks", {"subject": "call back", "statuscode": 3})
    r = client.post("tasks", json={"subject": "bad", "statuscode": 5})
    assert r.status_code == 400
    bad = client.patch(f"tasks({rid})", json={"statecode": 1, "statuscode": 6})
    assert bad.status_code == 400
    assert client.patch(f"tasks({rid})", json={"statecode": 1, "statuscode": 5}).status_code == 204
    row = client.get(f"tasks({rid})", params={"$select": "statecode,statuscode"}).json()
    assert (row["statecode"], row["statuscode"]) == (1, 5)


def test_quote_state_rules(client):
    rid = create(client, "quotes", {"name": "Q1", "statecode": 1})
    row = client.get(f"quotes({rid})", params={"$select": "statecode,statuscode"}).json()
    assert (row["statecode"], row["statuscode"]) == (0, 1)
    assert client.patch(f"quotes({rid})", json={"statecode": 1, "statuscode": 2}).status_code == 204
    r = client.patch(f"quotes({rid})", json={"statecode": 2, "statuscode": 4})
    assert r.status_code == 400
    assert "WinQuote" in r.json()["error"]["message"]


def test_invoice_state_patch_allowed(client):
    rid = create(client, "invoices", {"name": "I1"})
    assert client.patch(f"invoices({rid})", json={"statecode": 2, "statuscode": 100001}).status_code == 204


def test_system_required_columns(client, sandbox):
    r = client.post("products", json={"name": "Widget", "quantitydecimal": 2})
    assert r.status_code == 400
    assert "productnumber" in r.json()["error"]["message"]
    assert (
        client.post(
            "products", json={"name": "Widget", "productnumber": "W-1", "quantitydecimal": 2, "price": 10.5}
        ).status_code
        == 204
    )
    # ApplicationRequired (account.name) is not enforced by the platform.
    assert client.post("accounts", json={"telephone1": "1"}).status_code == 204


def test_money_round_trips_as_json_number(client):
    rid = create(
        client,
        "opportunities",
        {"name": "Deal", "estimatedvalue": 1234.5, "estimatedclosedate": "2025-03-14"},
    )
    row = client.get(f"opportunities({rid})", params={"$select": "estimatedvalue,estimatedclosedate"})
    assert '"estimatedvalue":1234.5' in row.text
    assert row.json()["estimatedclosedate"] == "2025-03-14"


def test_datetime_validation(client):
    r = client.post("tasks", json={"subject": "t", "scheduledend": "2025-01-01T10:00:00"})
    assert r.status_code == 400
    assert "time zone" in r.json()["error"]["message"]
    r = client.post("opportunities", json={"name": "o", "estimatedclosedate": "2025-03-14T10:00:00Z"})
    assert r.status_code == 400
    assert "Edm.Date" in r.json()["error"]["message"]
    rid = create(client, "tasks", {"subject": "t", "scheduledend": "2025-01-01T10:00:00+02:00"})
    assert client.get(f"tasks({rid})").json()["scheduledend"] == "2025-01-01T08:00:00Z"


def test_overriddencreatedon_sets_createdon(client):
    rid = create(client, "accounts", {"name": "old", "overriddencreatedon": "2019-05-01T12:00:00Z"})
    row = client.get(f"accounts({rid})", params={"$select": "createdon,overriddencreatedon"}).json()
    assert row["createdon"] == "2019-05-01T12:00:00Z"
    assert row["overriddencreatedon"] > "2020"


def test_etag_increments_per_write(client):
    rid = create(client, "accounts", {"name": "v1"})
    e1 = client.get(f"accounts({rid})").headers["ETag"]
    client.patch(f"accounts({rid})", json={"name": "v2"})
    e2 = client.get(f"accounts({rid})").headers["ETag"]
    assert int(e2[3:-1]) > int(e1[3:-1])
    assert client.get(f"accounts({rid})", headers={"If-None-Match": e2}).status_code == 304


def test_delete(client):
    rid = create(client, "accounts", {"name": "gone"})
    assert client.delete(f"accounts({rid})").status_code == 204
    r = client.delete(f"accounts({rid})")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x80040217"


def test_clear_single_property_and_read_it(client):
    rid = create(client, "accounts", {"name": "p", "description": "text"})
    assert client.get(f"accounts({rid})/description").json()["value"] == "text"
    assert client.get(f"accounts({rid})/name/$value").text == "p"
    assert client.delete(f"accounts({rid})/description").status_code == 204
    assert client.get(f"accounts({rid})").json()["description"] is None


class TestUpsertTable:
    """The PATCH table of reference §3, by GUID and by alternate key."""

    @pytest.fixture
    def existing(self, client):
        source_key(client)
        rid = create(client, "accounts", {"name": "Existing", "new_sourcesystemid": "S-1"})
        return rid, client.get(f"accounts({rid})").headers["ETag"]

    def test_no_headers_updates_or_creates(self, client, existing):
        rid, _ = existing
        r = client.patch("accounts(new_sourcesystemid='S-1')", json={"name": "Updated"})
        assert r.status_code == 204
        assert r.headers["OData-EntityId"].endswith(f"accounts({rid})")
        r = client.patch(
            "accounts(new_sourcesystemid='S-2')",
            json={"name": "New"},
            headers={"Prefer": "return=representation"},
        )
        assert r.status_code == 201
        assert r.json()["new_sourcesystemid"] == "S-2"
        r = client.patch(
            "accounts(new_sourcesystemid='S-1')",
            json={"name": "Again"},
            headers={"Prefer": "return=representation"},
        )
        assert r.status_code == 200
        assert r.json()["name"] == "Again"

    def test_if_match_star(self, client, existing):
        assert (
            client.patch(
                "accounts(new_sourcesystemid='S-1')", json={"name": "x"}, headers={"If-Match": "*"}
            ).status_code
            == 204
        )
        r = client.patch("accounts(new_sourcesystemid='NOPE')", json={"name": "x"}, headers={"If-Match": "*"})
        assert r.status_code == 404
        assert "Does Not Exist" in r.json()["error"]["message"]
        r = client.patch(f"accounts({uuid.uuid4()})", json={"name": "x"}, headers={"If-Match": "*"})
        assert r.status_code == 404

    def test_if_none_match_star(self, client, existing):
        r = client.patch(
            "accounts(new_sourcesystemid='S-1')", json={"name": "x"}, headers={"If-None-Match": "*"}
        )
        assert r.status_code == 412
        assert r.json()["error"]["message"] == "A record with matching key values already exists."
        assert (
            client.patch(
                "accounts(new_sourcesystemid='S-3')", json={"name": "x"}, headers={"If-None-Match": "*"}
            ).status_code
            == 204
        )

    def test_if_match_etag(self, client, existing):
        rid, tag = existing
        assert (
            client.patch(f"accounts({rid})", json={"name": "x"}, headers={"If-Match": tag}).status_code == 204
        )
        r = client.patch(f"accounts({rid})", json={"name": "y"}, headers={"If-Match": tag})
        assert r.status_code == 412
        assert r.json()["error"]["message"] == (
            "The version of the existing record doesn't match the RowVersion property provided."
        )

    def test_key_columns_in_body_dropped_on_update(self, client, existing):
        rid, _ = existing
        client.patch(
            "accounts(new_sourcesystemid='S-1')", json={"name": "x", "new_sourcesystemid": "CHANGED"}
        )
        assert client.get(f"accounts({rid})").json()["new_sourcesystemid"] == "S-1"

    def test_patch_guid_url_creates(self, client, existing):
        new_id = str(uuid.uuid4())
        r = client.patch(f"accounts({new_id})", json={"name": "by guid"})
        assert r.status_code == 204
        assert client.get(f"accounts({new_id})").json()["name"] == "by guid"

    def test_duplicate_alternate_key(self, client, existing):
        r = client.post("accounts", json={"name": "dup", "new_sourcesystemid": "s-1"})
        assert r.status_code == 412
        assert r.json()["error"]["code"] == "0x80060892"


def test_undeclared_key_is_rejected(client):
    r = client.get("accounts(accountnumber='A1')")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.account'."
    )


def test_annotation_size_limit(client):
    acc = create(client, "accounts", {"name": "with note"})
    small = {
        "subject": "s",
        "filename": "a.txt",
        "mimetype": "text/plain",
        "documentbody": "aGVsbG8=",
        "objectid_account@odata.bind": f"/accounts({acc})",
    }
    rid = create(client, "annotations", small)
    row = client.get(f"annotations({rid})").json()
    assert row["isdocument"] is True
    assert row["objecttypecode"] == "account"
    assert row["_objectid_value"] == acc
    big = {**small, "documentbody": "A" * (5242880 + 4)}
    r = client.post("annotations", json=big)
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "0x80044a02", "message": "Attachment file size is too big."}


def test_named_primary_key_address_and_lookup_value_in_body(client):
    rid = create(client, "accounts", {"name": "named"})
    assert client.get(f"accounts(accountid={rid})").json()["name"] == "named"
    r = client.post("contacts", json={"lastname": "x", "_parentcustomerid_value": rid})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x0"


def test_expand_and_fetchxml_are_refused_clearly(client):
    r = client.get("accounts", params={"$expand": "primarycontactid($select=fullname)"})
    assert r.status_code == 400
    assert "$expand" in r.json()["error"]["message"]
