"""Catalog completeness: sales lines (§13), activities with parties (§10), cases, contracts, addresses."""

from __future__ import annotations

import pytest

from .conftest import create


@pytest.fixture
def catalog_product(client):
    """A product on the seeded default price list, with its unit: (product id, uom id, price list id)."""
    uom = client.get("uoms", params={"$select": "uomid,_uomscheduleid_value"}).json()["value"][0]
    price_list = client.get("pricelevels", params={"$select": "pricelevelid"}).json()["value"][0]["pricelevelid"]
    product = create(
        client,
        "products",
        {
            "name": "Boiler service",
            "productnumber": "SVC-1",
            "quantitydecimal": 2,
            "defaultuomscheduleid@odata.bind": f"/uomschedules({uom['_uomscheduleid_value']})",
            "defaultuomid@odata.bind": f"/uoms({uom['uomid']})",
        },
    )
    create(
        client,
        "productpricelevels",
        {
            "pricelevelid@odata.bind": f"/pricelevels({price_list})",
            "productid@odata.bind": f"/products({product})",
            "uomid@odata.bind": f"/uoms({uom['uomid']})",
            "amount": 120.5,
        },
    )
    return product, uom["uomid"], price_list


def _header(client, entity_set: str, price_list: str | None, account: str) -> str:
    body = {"name": "Header", "customerid_account@odata.bind": f"/accounts({account})"}
    if price_list:
        body["pricelevelid@odata.bind"] = f"/pricelevels({price_list})"
    return create(client, entity_set, body)


@pytest.mark.parametrize(
    ("header_set", "line_set", "parent_nav"),
    [
        ("quotes", "quotedetails", "quoteid"),
        ("salesorders", "salesorderdetails", "salesorderid"),
        ("invoices", "invoicedetails", "invoiceid"),
        ("opportunities", "opportunityproducts", "opportunityid"),
    ],
)
def test_line_items_catalog_and_write_in(client, catalog_product, header_set, line_set, parent_nav):
    product, uom, price_list = catalog_product
    account = create(client, "accounts", {"name": "Customer"})
    header = _header(client, header_set, price_list, account)
    bind = {f"{parent_nav}@odata.bind": f"/{header_set}({header})"}

    catalog_line = create(
        client,
        line_set,
        {**bind, "productid@odata.bind": f"/products({product})", "uomid@odata.bind": f"/uoms({uom})", "quantity": 2},
    )
    got = client.get(f"{line_set}({catalog_line})", params={"$select": "priceperunit,baseamount,extendedamount"})
    assert (got.json()["priceperunit"], got.json()["baseamount"], got.json()["extendedamount"]) == (120.5, 241, 241)

    write_in = {**bind, "isproductoverridden": True, "productdescription": "Call-out fee", "priceperunit": 50,
                "quantity": 1, "manualdiscountamount": 5}
    wid = create(client, line_set, write_in)
    assert client.get(f"{line_set}({wid})").json()["extendedamount"] == 45
    if header_set != "opportunities":
        assert client.get(f"{header_set}({header})").json()["totallineitemamount"] == 286

    # calculated amounts are not valid for create: silently ignored
    wid2 = create(client, line_set, {**write_in, "baseamount": 999, "extendedamount": 999})
    assert client.get(f"{line_set}({wid2})").json()["baseamount"] == 50

    r = client.post(line_set, json={**write_in, "productdescription": "x" * 501})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80044331"
    r = client.post(line_set, json={**bind, "isproductoverridden": True, "priceperunit": 1})
    assert r.status_code == 400
    assert "productdescription" in r.json()["error"]["message"]
    r = client.post(line_set, json={**bind, "quantity": 1})
    assert r.status_code == 400
    assert "productid" in r.json()["error"]["message"]
    r = client.post(line_set, json={**bind, "productid@odata.bind": f"/products({product})", "quantity": 1})
    assert r.status_code == 400
    assert "uomid" in r.json()["error"]["message"]
    r = client.post(line_set, json={"isproductoverridden": True, "productdescription": "x", "priceperunit": 1})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(f"Attribute '{parent_nav}'")


def test_catalog_product_must_be_on_the_headers_price_list(client, catalog_product):
    product, uom, _ = catalog_product
    account = create(client, "accounts", {"name": "Customer"})
    other_list = create(client, "pricelevels", {"name": "Other list"})
    line = {"productid@odata.bind": f"/products({product})", "uomid@odata.bind": f"/uoms({uom})", "quantity": 1}
    quote = _header(client, "quotes", other_list, account)
    r = client.post("quotedetails", json={**line, "quoteid@odata.bind": f"/quotes({quote})"})
    assert r.status_code == 400
    assert "price list" in r.json()["error"]["message"]
    no_list = _header(client, "quotes", None, account)
    r = client.post("quotedetails", json={**line, "quoteid@odata.bind": f"/quotes({no_list})"})
    assert r.status_code == 400
    assert "pricelevelid" in r.json()["error"]["message"]


def test_lines_only_while_header_is_editable(client, catalog_product):
    _, _, price_list = catalog_product
    account = create(client, "accounts", {"name": "Customer"})
    quote = _header(client, "quotes", price_list, account)
    line = {"quoteid@odata.bind": f"/quotes({quote})", "isproductoverridden": True, "productdescription": "Fee",
            "priceperunit": 10, "quantity": 1}
    lid = create(client, "quotedetails", line)
    assert client.patch(f"quotes({quote})", json={"statecode": 1, "statuscode": 2}).status_code == 204
    r = client.post("quotedetails", json=line)
    assert r.status_code == 400
    assert "Draft" in r.json()["error"]["message"]
    assert client.patch(f"quotedetails({lid})", json={"quantity": 3}).status_code == 400
    assert client.delete(f"quotedetails({lid})").status_code == 400
    # order lines: the order must be Active (0); canceling needs CancelSalesOrder, submitted (1) locks lines
    order = _header(client, "salesorders", price_list, account)
    oline = {**line, "salesorderid@odata.bind": f"/salesorders({order})"}
    del oline["quoteid@odata.bind"]
    create(client, "salesorderdetails", oline)
    assert client.patch(f"salesorders({order})", json={"statecode": 1, "statuscode": 3}).status_code == 204
    assert client.post("salesorderdetails", json=oline).status_code == 400


def test_deleting_header_cascades_lines(client, catalog_product):
    _, _, price_list = catalog_product
    account = create(client, "accounts", {"name": "Customer"})
    invoice = _header(client, "invoices", price_list, account)
    create(client, "invoicedetails", {"invoiceid@odata.bind": f"/invoices({invoice})", "isproductoverridden": True,
                                      "productdescription": "Fee", "priceperunit": 10, "quantity": 1})
    assert client.delete(f"invoices({invoice})").status_code == 204
    assert client.get("invoicedetails/$count").text == "0"


@pytest.mark.parametrize(
    ("entity_set", "activity", "masks"),
    [("phonecalls", "phonecall", (1, 2)), ("appointments", "appointment", (7, 5)), ("emails", "email", (1, 2))],
)
def test_activity_parties_inline_and_read_back(client, sandbox, entity_set, activity, masks):
    account = create(client, "accounts", {"name": "Regarding"})
    contact = create(client, "contacts", {"lastname": "Party"})
    body = {
        "subject": "Visit",
        f"regardingobjectid_account_{activity}@odata.bind": f"/accounts({account})",
        f"{activity}_activity_parties": [
            {"partyid_systemuser@odata.bind": f"/systemusers({sandbox.whoami_user_id})",
             "participationtypemask": masks[0]},
            {"partyid_contact@odata.bind": f"/contacts({contact})", "participationtypemask": masks[1]},
        ],
    }
    aid = create(client, entity_set, body)
    row = client.get(f"{entity_set}({aid})").json()
    assert row["_regardingobjectid_value"] == account
    assert row["activitytypecode"] == activity
    parties = client.get(
        "activityparties",
        params={"$filter": f"_activityid_value eq {aid}", "$select": "_partyid_value,participationtypemask"},
        headers={"Prefer": 'odata.include-annotations="*"'},
    ).json()["value"]
    assert sorted((p["participationtypemask"], p["_partyid_value"]) for p in parties) == sorted(
        [(masks[0], sandbox.whoami_user_id), (masks[1], contact)]
    )
    assert {p["_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] for p in parties} == {"systemuser", "contact"}
    via_nav = client.get(f"{entity_set}({aid})/{activity}_activity_parties").json()["value"]
    assert len(via_nav) == 2
    # replace the list with PUT
    r = client.put(f"{entity_set}({aid})/{activity}_activity_parties",
                   json={"value": [{"partyid_contact@odata.bind": f"/contacts({contact})",
                                    "participationtypemask": masks[1]}]})
    assert r.status_code == 204
    assert client.get(f"{entity_set}({aid})/{activity}_activity_parties").json()["value"][0][
        "_partyid_value"] == contact
    # deleting the activity deletes its parties
    assert client.delete(f"{entity_set}({aid})").status_code == 204
    assert client.get("activityparties", params={"$filter": f"_activityid_value eq {aid}"}).json()["value"] == []


def test_activity_party_rules(client):
    contact = create(client, "contacts", {"lastname": "Party"})
    bad_mask = {"subject": "Call", "phonecall_activity_parties": [
        {"partyid_contact@odata.bind": f"/contacts({contact})", "participationtypemask": 5}]}
    r = client.post("phonecalls", json=bad_mask)
    assert r.status_code == 400
    assert "participationtypemask" in r.json()["error"]["message"]
    assert client.get("phonecalls/$count").text == "0"  # nothing half-written
    r = client.post("phonecalls", json={"subject": "Call", "phonecall_activity_parties": [
        {"partyid_contact@odata.bind": "/contacts(00000000-0000-0000-0000-000000000001)", "participationtypemask": 2}]})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "0x80040217"
    r = client.post("phonecalls", json={"subject": "Call", "phonecall_activity_parties": [
        {"PartyId_contact@odata.bind": f"/contacts({contact})", "participationtypemask": 2}]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80048d19"
    r = client.post("phonecalls", json={"subject": "Call", "phonecall_activity_parties": {"not": "a list"}})
    assert r.status_code == 400
    r = client.post("phonecalls", json={"subject": "Call", "email_activity_parties": []})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x0"


@pytest.mark.parametrize(
    ("entity_set", "closed", "open_state"),
    [("phonecalls", (1, 2), (0, 1)), ("appointments", (2, 4), (0, 1)), ("tasks", (1, 5), (0, 2)),
     ("emails", (2, 5), (0, 1))],
)
def test_closed_activities_are_read_only(client, entity_set, closed, open_state):
    aid = create(client, entity_set, {"subject": "Open", "actualend": "2024-05-01T10:00:00Z"})
    r = client.patch(f"{entity_set}({aid})", json={"statecode": closed[0], "statuscode": closed[1]})
    assert r.status_code == 204, r.text
    r = client.patch(f"{entity_set}({aid})", json={"subject": "Changed after close"})
    assert r.status_code == 400
    assert "read-only" in r.json()["error"]["message"]
    # reopening (state only) is allowed, then edits work again
    r = client.patch(f"{entity_set}({aid})", json={"statecode": open_state[0], "statuscode": open_state[1]})
    assert r.status_code == 204, r.text
    assert client.patch(f"{entity_set}({aid})", json={"subject": "Edited"}).status_code == 204


def test_activity_state_tables(client):
    for entity_set, bad_pair in (("phonecalls", (1, 3)), ("appointments", (3, 3)), ("emails", (1, 5))):
        aid = create(client, entity_set, {"subject": "x"})
        r = client.patch(f"{entity_set}({aid})", json={"statecode": bad_pair[0], "statuscode": bad_pair[1]})
        assert r.status_code == 400, (entity_set, r.text)
    aid = create(client, "appointments", {"subject": "Booked"})
    assert client.patch(f"appointments({aid})", json={"statecode": 3, "statuscode": 6}).status_code == 204
    # status on create must belong to the create state (statecode itself is not valid for create)
    r = client.post("phonecalls", json={"subject": "x", "statuscode": 2})
    assert r.status_code == 400
    pid = create(client, "phonecalls", {"subject": "x", "statecode": 1})
    assert client.get(f"phonecalls({pid})").json()["statecode"] == 0


def test_incident_needs_close_incident_to_resolve(client):
    account = create(client, "accounts", {"name": "Customer"})
    r = client.post("incidents", json={"title": "No customer"})
    assert r.status_code == 400
    assert "customerid" in r.json()["error"]["message"]
    customer = {"customerid_account@odata.bind": f"/accounts({account})"}
    case = create(client, "incidents", {"title": "Boiler leak", **customer,
                                        "caseorigincode": 1, "prioritycode": 1})
    row = client.get(f"incidents({case})").json()
    assert row["ticketnumber"].startswith("CAS-")
    assert row["statecode"] == 0
    assert row["statuscode"] == 1
    r = client.patch(f"incidents({case})", json={"statecode": 1, "statuscode": 5})
    assert r.status_code == 400
    assert "CloseIncident" in r.json()["error"]["message"]
    assert client.post("incidents", json={"title": "x", "caseorigincode": 4,
                                          "customerid_account@odata.bind": f"/accounts({account})"}).status_code == 400
    r = client.post("CloseIncident", json={"IncidentResolution": {
        "@odata.type": "Microsoft.Dynamics.CRM.incidentresolution", "subject": "Fixed",
        "incidentid@odata.bind": f"/incidents({case})"}, "Status": 6})
    assert r.status_code == 400  # 6 = Canceled belongs to state 2, not Resolved
    r = client.post("CloseIncident", json={"IncidentResolution": {
        "subject": "Fixed", "incidentid@odata.bind": f"/incidents({case})"}, "Status": 5})
    assert r.status_code == 204, r.text
    row = client.get(f"incidents({case})").json()
    assert (row["statecode"], row["statuscode"]) == (1, 5)
    r = client.post("CloseIncident", json={"IncidentResolution": {
        "subject": "Again", "incidentid@odata.bind": f"/incidents({case})"}, "Status": 5})
    assert r.status_code == 400
    # cancel is a plain state PATCH
    other = create(client, "incidents", {"title": "Dup", "customerid_account@odata.bind": f"/accounts({account})"})
    assert client.patch(f"incidents({other})", json={"statecode": 2, "statuscode": 6}).status_code == 204


def test_contract_team_businessunit_and_customeraddress(client, sandbox):
    account = create(client, "accounts", {"name": "Customer"})
    template = create(client, "contracttemplates", {"name": "Service", "abbreviation": "SVC"})
    r = client.post("contracts", json={"title": "Annual", "customerid_account@odata.bind": f"/accounts({account})",
                                       "activeon": "2025-01-01", "expireson": "2025-12-31"})
    assert r.status_code == 400
    assert "contracttemplateid" in r.json()["error"]["message"]
    contract = create(client, "contracts", {
        "title": "Annual", "customerid_account@odata.bind": f"/accounts({account})",
        "contracttemplateid@odata.bind": f"/contracttemplates({template})",
        "activeon": "2025-01-01", "expireson": "2025-12-31", "billingfrequencycode": 1})
    row = client.get(f"contracts({contract})").json()
    assert row["contractnumber"].startswith("CNR-")
    assert row["activeon"] == "2025-01-01"

    addr = create(client, "customeraddresses", {"parentid_account@odata.bind": f"/accounts({account})",
                                                "name": "Depot", "line1": "1 Main St", "city": "Leeds",
                                                "addresstypecode": 2, "latitude": 53.8})
    row = client.get(f"customeraddresses({addr})").json()
    assert row["objecttypecode"] == "account"
    assert row["_parentid_value"] == account
    assert client.post("customeraddresses", json={"name": "Orphan"}).status_code == 400

    bu = create(client, "businessunits", {"name": "Field team",
                                          "parentbusinessunitid@odata.bind":
                                          f"/businessunits({sandbox.business_unit_id})"})
    team = create(client, "teams", {"name": "Engineers", "businessunitid@odata.bind": f"/businessunits({bu})",
                                    "administratorid@odata.bind": f"/systemusers({sandbox.whoami_user_id})",
                                    "teamtype": 0})
    task = create(client, "tasks", {"subject": "Owned by team", "ownerid@odata.bind": f"/teams({team})",
                                    "regardingobjectid_incident_task@odata.bind": "/incidents("
                                    + create(client, "incidents", {"title": "c", "customerid_account@odata.bind":
                                                                   f"/accounts({account})"}) + ")"})
    row = client.get(f"tasks({task})", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"
    assert row["_regardingobjectid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "regardingobjectid_incident_task")


def test_new_tables_in_metadata(client):
    names = {e["LogicalName"]: e["EntitySetName"] for e in client.get(
        "EntityDefinitions", params={"$select": "LogicalName,EntitySetName"}).json()["value"]}
    for logical, entity_set in {
        "opportunityproduct": "opportunityproducts", "quotedetail": "quotedetails",
        "salesorderdetail": "salesorderdetails", "invoicedetail": "invoicedetails", "task": "tasks",
        "appointment": "appointments", "phonecall": "phonecalls", "email": "emails",
        "activityparty": "activityparties", "team": "teams", "businessunit": "businessunits",
        "incident": "incidents", "contract": "contracts", "customeraddress": "customeraddresses",
    }.items():
        assert names[logical] == entity_set
    rels = client.get("EntityDefinitions(LogicalName='phonecall')/ManyToOneRelationships",
                      params={"$select": "ReferencingAttribute,ReferencedEntity,"
                              "ReferencingEntityNavigationPropertyName"}
                      ).json()["value"]
    navs = {(r["ReferencingAttribute"], r["ReferencedEntity"]): r["ReferencingEntityNavigationPropertyName"]
            for r in rels}
    assert navs[("regardingobjectid", "incident")] == "regardingobjectid_incident_phonecall"
    attrs = client.get("EntityDefinitions(LogicalName='quotedetail')/Attributes",
                       params={"$select": "LogicalName,IsValidForCreate,RequiredLevel"}).json()["value"]
    by_name = {a["LogicalName"]: a for a in attrs}
    assert by_name["baseamount"]["IsValidForCreate"] is False
    assert by_name["quoteid"]["RequiredLevel"]["Value"] == "SystemRequired"
