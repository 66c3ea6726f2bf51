"""Metadata reads (item 9) and writes: columns, tables, relationships, keys, options (item 10)."""

from __future__ import annotations

import time

from .conftest import add_key, add_string_column, create, label


def test_entity_definitions_filter_and_select(client):
    r = client.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'opportunity'",
        },
    )
    assert r.status_code == 200
    [ent] = r.json()["value"]
    assert ent["EntitySetName"] == "opportunities"
    assert ent["PrimaryIdAttribute"] == "opportunityid"
    assert set(ent) == {"@odata.type", "MetadataId", "LogicalName", "EntitySetName", "PrimaryIdAttribute"}
    one = client.get(
        "EntityDefinitions(LogicalName='annotation')",
        params={"$select": "LogicalName,PrimaryNameAttribute,HasNotes"},
    ).json()
    assert one["PrimaryNameAttribute"] == "subject"
    assert client.get("EntityDefinitions(LogicalName='nope')").status_code == 404


def test_string_attributes_expose_max_length_only_after_cast(client):
    base = "EntityDefinitions(LogicalName='account')/Attributes"
    r = client.get(
        f"{base}/Microsoft.Dynamics.CRM.StringAttributeMetadata", params={"$select": "LogicalName,MaxLength"}
    )
    lengths = {a["LogicalName"]: a["MaxLength"] for a in r.json()["value"]}
    assert lengths["name"] == 160
    assert lengths["accountnumber"] == 20
    assert lengths["address1_postalcode"] == 20
    assert "description" not in lengths  # a Memo
    bad = client.get(base, params={"$select": "LogicalName,MaxLength"})
    assert bad.status_code == 400
    assert "MaxLength" in bad.json()["error"]["message"]
    one = client.get(
        f"{base}(LogicalName='name')/Microsoft.Dynamics.CRM.StringAttributeMetadata",
        params={"$select": "MaxLength,RequiredLevel"},
    ).json()
    assert one["MaxLength"] == 160
    assert one["RequiredLevel"]["Value"] == "ApplicationRequired"


def test_attribute_list_reports_types_and_validity(client):
    attrs = client.get(
        "EntityDefinitions(LogicalName='invoice')/Attributes",
        params={"$select": "LogicalName,AttributeType,IsValidForCreate,IsValidForUpdate,RequiredLevel"},
    ).json()["value"]
    by = {a["LogicalName"]: a for a in attrs}
    assert by["totalamount"]["IsValidForCreate"] is False
    assert by["statecode"]["IsValidForCreate"] is False
    assert by["statecode"]["IsValidForUpdate"] is True
    assert by["customerid"]["AttributeType"] == "Customer"
    assert by["overriddencreatedon"]["IsValidForUpdate"] is False


def test_picklist_and_status_option_sets(client):
    base = "EntityDefinitions(LogicalName='opportunity')/Attributes"
    status = client.get(
        f"{base}(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    ).json()
    opts = {
        o["Value"]: (o["State"], o["Label"]["UserLocalizedLabel"]["Label"])
        for o in status["OptionSet"]["Options"]
    }
    assert opts == {
        1: (0, "In Progress"),
        2: (0, "On Hold"),
        3: (1, "Won"),
        4: (2, "Canceled"),
        5: (2, "Out-Sold"),
    }
    state = client.get(
        f"{base}/Microsoft.Dynamics.CRM.StateAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet"},
    ).json()["value"][0]
    assert {o["Value"]: o["DefaultStatus"] for o in state["OptionSet"]["Options"]} == {0: 1, 1: 3, 2: 4}
    pick = client.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='industrycode')/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet,GlobalOptionSet"},
    ).json()
    assert pick["OptionSet"]["Options"][6]["Label"]["UserLocalizedLabel"]["Label"] == "Consulting"
    assert pick["GlobalOptionSet"] is None


def test_many_to_one_navigation_names(client):
    rels = client.get(
        "EntityDefinitions(LogicalName='contact')/ManyToOneRelationships",
        params={"$select": "ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"},
    ).json()["value"]
    navs = {
        (r["ReferencingAttribute"], r["ReferencedEntity"]): r["ReferencingEntityNavigationPropertyName"]
        for r in rels
    }
    assert navs[("parentcustomerid", "account")] == "parentcustomerid_account"
    assert navs[("parentcustomerid", "contact")] == "parentcustomerid_contact"
    assert navs[("ownerid", "team")] == "ownerid"


def test_custom_column_lifecycle(client):
    r = client.post("accounts", json={"name": "x", "new_sourcesystemid": "A"})
    assert r.status_code == 400  # does not exist in a fresh org
    add_string_column(client, "account", "new_SourceSystemId", 50)
    col = client.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_sourcesystemid')/"
        "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        params={"$select": "MaxLength,IsCustomAttribute"},
    )
    assert col.json()["MaxLength"] == 50
    assert col.json()["IsCustomAttribute"] is True
    rid = create(client, "accounts", {"name": "x", "new_sourcesystemid": "A"})
    assert client.get(f"accounts({rid})").json()["new_sourcesystemid"] == "A"
    assert client.post("accounts", json={"new_sourcesystemid": "x" * 51}).status_code == 400
    dup = client.post(
        "EntityDefinitions(LogicalName='account')/Attributes",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "SchemaName": "new_SourceSystemId",
        },
    )
    assert dup.status_code == 400
    bad_prefix = client.post(
        "EntityDefinitions(LogicalName='account')/Attributes",
        json={"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "xyz_Code"},
    )
    assert bad_prefix.status_code == 400
    assert "prefix" in bad_prefix.json()["error"]["message"]


def test_other_column_types(client):
    base = "EntityDefinitions(LogicalName='contact')/Attributes"
    defs = [
        {
            "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
            "SchemaName": "new_Balance",
            "Precision": 2,
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            "SchemaName": "new_FirstVisit",
            "DateTimeBehavior": {"Value": "DateOnly"},
            "Format": "DateOnly",
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
            "SchemaName": "new_IsVip",
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": label("Yes")},
                "FalseOption": {"Value": 0, "Label": label("No")},
            },
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            "SchemaName": "new_Tier",
            "OptionSet": {
                "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [{"Label": label("Gold")}, {"Label": label("Silver")}],
            },
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
            "SchemaName": "new_Visits",
            "MinValue": 0,
            "MaxValue": 1000,
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            "SchemaName": "new_Notes",
            "MaxLength": 5000,
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
            "SchemaName": "new_Rate",
            "Precision": 3,
        },
    ]
    for d in defs:
        r = client.post(base, json=d)
        assert r.status_code == 204, r.text
        assert "/Attributes(" in r.headers["OData-EntityId"]
    tier = client.get(
        f"{base}(LogicalName='new_tier')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$expand": "OptionSet"},
    ).json()
    assert [o["Value"] for o in tier["OptionSet"]["Options"]] == [100000000, 100000001]
    r = client.post(
        "InsertOptionValue",
        json={"EntityLogicalName": "contact", "AttributeLogicalName": "new_tier", "Label": label("Bronze")},
    )
    assert r.status_code == 200
    assert r.json()["NewOptionValue"] == 100000002
    rid = create(
        client,
        "contacts",
        {
            "lastname": "V",
            "new_balance": 10.555,
            "new_firstvisit": "2024-02-29",
            "new_isvip": True,
            "new_tier": 100000002,
            "new_visits": 3,
            "new_rate": 1.25,
        },
    )
    row = client.get(f"contacts({rid})").json()
    assert row["new_balance"] == 10.56
    assert row["new_firstvisit"] == "2024-02-29"
    assert row["new_tier"] == 100000002
    assert client.post("contacts", json={"new_visits": 1001}).status_code == 400
    assert client.post("contacts", json={"new_tier": 5}).status_code == 400


def test_custom_table_relationship_and_writes(client):
    r = client.post(
        "EntityDefinitions",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
            "SchemaName": "new_Job",
            "DisplayName": label("Job"),
            "DisplayCollectionName": label("Jobs"),
            "OwnershipType": "UserOwned",
            "HasNotes": True,
            "HasActivities": False,
            "IsActivity": False,
            "Attributes": [
                {
                    "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                    "SchemaName": "new_Name",
                    "IsPrimaryName": True,
                    "MaxLength": 100,
                    "RequiredLevel": {"Value": "ApplicationRequired"},
                    "DisplayName": label("Name"),
                }
            ],
        },
    )
    assert r.status_code == 204, r.text
    ent = client.get(
        "EntityDefinitions(LogicalName='new_job')",
        params={"$select": "EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,IsCustomEntity"},
    ).json()
    assert (ent["EntitySetName"], ent["PrimaryIdAttribute"], ent["PrimaryNameAttribute"]) == (
        "new_jobs",
        "new_jobid",
        "new_name",
    )
    r = client.post(
        "RelationshipDefinitions",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
            "SchemaName": "new_job_account",
            "ReferencedEntity": "account",
            "ReferencedAttribute": "accountid",
            "ReferencingEntity": "new_job",
            "Lookup": {
                "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                "SchemaName": "new_AccountId",
                "DisplayName": label("Account"),
            },
        },
    )
    assert r.status_code == 204, r.text
    acc = create(client, "accounts", {"name": "Customer"})
    job = create(
        client, "new_jobs", {"new_name": "Fix boiler", "new_AccountId@odata.bind": f"/accounts({acc})"}
    )
    row = client.get(f"new_jobs({job})").json()
    assert row["_new_accountid_value"] == acc
    assert row["statecode"] == 0
    assert row["_ownerid_value"]
    assert client.post("new_jobs", json={"new_accountid@odata.bind": f"/accounts({acc})"}).status_code == 400
    note = create(client, "annotations", {"subject": "n", "objectid_new_job@odata.bind": f"/new_jobs({job})"})
    assert client.get(f"annotations({note})").json()["objecttypecode"] == "new_job"
    ids = client.post(
        "new_jobs/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.new_job", "new_name": "bulk"}]},
    ).json()["Ids"]
    assert len(ids) == 1
    rels = client.get(
        "EntityDefinitions(LogicalName='new_job')/ManyToOneRelationships",
        params={"$filter": "ReferencedEntity eq 'account'"},
    ).json()["value"]
    assert rels[0]["ReferencingEntityNavigationPropertyName"] == "new_AccountId"
    assert rels[0]["SchemaName"] == "new_job_account"


def test_entity_set_name_plural_rules(client):
    for schema, expected in (
        ("new_Address", "new_addresses"),
        ("new_Box", "new_boxes"),
        ("new_Visit", "new_visits"),
    ):
        client.post(
            "EntityDefinitions",
            json={
                "SchemaName": schema,
                "OwnershipType": "OrganizationOwned",
                "Attributes": [
                    {
                        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                        "SchemaName": "new_Name",
                        "IsPrimaryName": True,
                    }
                ],
            },
        )
        got = client.get(
            f"EntityDefinitions(LogicalName='{schema.lower()}')", params={"$select": "EntitySetName"}
        )
        assert got.json()["EntitySetName"] == expected


def test_key_lifecycle_pending_to_active(client, sandbox):
    sandbox.key_activation_seconds = 0.3
    add_string_column(client, "contact", "new_SourceSystemId")
    create(client, "contacts", {"lastname": "K", "new_sourcesystemid": "C-1"})
    assert add_key(client, "contact", "new_contact_src", ["new_sourcesystemid"], wait=False) == "Pending"
    r = client.get("contacts(new_sourcesystemid='C-1')")
    assert r.status_code == 400  # not usable before the index is Active
    time.sleep(0.35)
    keys = client.get("EntityDefinitions(LogicalName='contact')/Keys").json()["value"]
    assert keys[0]["EntityKeyIndexStatus"] == "Active"
    assert keys[0]["KeyAttributes"] == ["new_sourcesystemid"]
    assert client.get("contacts(new_sourcesystemid='C-1')").json()["lastname"] == "K"


def test_key_fails_when_rows_violate_it(client):
    add_string_column(client, "contact", "new_SourceSystemId")
    create(client, "contacts", {"lastname": "A", "new_sourcesystemid": "SAME"})
    create(client, "contacts", {"lastname": "B", "new_sourcesystemid": "same"})
    assert add_key(client, "contact", "new_contact_src", ["new_sourcesystemid"]) == "Failed"
    assert client.get("contacts(new_sourcesystemid='SAME')").status_code == 400


def test_publish_endpoints(client):
    r = client.post(
        "PublishXml",
        json={
            "ParameterXml": "<importexportxml><entities><entity>account</entity></entities></importexportxml>"
        },
    )
    assert r.status_code == 204
    assert client.post("PublishAllXml").status_code == 204


def test_delete_key_and_decimal_bounds(client):
    add_string_column(client, "account", "new_SourceSystemId")
    assert add_key(client, "account", "new_account_src", ["new_sourcesystemid"]) == "Active"
    r = client.delete("EntityDefinitions(LogicalName='account')/Keys(LogicalName='new_account_src')")
    assert r.status_code == 204
    assert client.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"] == []
    r = client.post(
        "EntityDefinitions(LogicalName='account')/Attributes",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
            "SchemaName": "new_Ratio",
            "MinValue": -0.5,
            "MaxValue": 99.5,
            "Precision": 2,
        },
    )
    assert r.status_code == 204, r.text
    assert client.post("accounts", json={"new_ratio": 100}).status_code == 400
    assert client.post("accounts", json={"new_ratio": 12.345}).status_code == 204


def test_custom_table_survives_restart(tmp_path):
    from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

    from .conftest import make_client

    db = tmp_path / "meta.sqlite"
    sb = DataverseSandbox(db)
    with make_client(sb) as c:
        r = c.post(
            "EntityDefinitions",
            json={
                "SchemaName": "new_Technician",
                "Attributes": [
                    {
                        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                        "SchemaName": "new_Name",
                        "IsPrimaryName": True,
                    }
                ],
            },
        )
        assert r.status_code == 204
        rid = create(c, "new_technicians", {"new_name": "Sam"})
    sb.close()
    sb2 = DataverseSandbox(db)
    try:
        with make_client(sb2) as c:
            assert c.get(f"new_technicians({rid})").json()["new_name"] == "Sam"
            r = c.get(
                "sdkmessagefilters",
                params={
                    "$filter": "sdkmessageid/name eq 'UpsertMultiple' "
                    "and primaryobjecttypecode eq 'new_technician'"
                },
            )
            assert len(r.json()["value"]) == 1
    finally:
        sb2.close()
