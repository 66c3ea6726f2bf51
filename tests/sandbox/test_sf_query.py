"""SOQL over REST: operators, relationships, paging, queryAll, errors (reference §5, §10)."""

from __future__ import annotations

import httpx
import pytest

from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

from .sf_helpers import V, client_fixture, create, make_client, sb_fixture  # noqa: F401


@pytest.fixture
def org(client: httpx.Client) -> dict[str, str]:
    acme = create(client, "Account", {"Name": "Acme", "Industry": "Energy", "AnnualRevenue": 5000, "Type": "Prospect"})
    beta = create(client, "Account", {"Name": "Beta's Boilers", "Industry": "Retail", "AnnualRevenue": 100})
    create(client, "Account", {"Name": "Gamma"})
    ng = create(client, "Contact", {"LastName": "Ng", "FirstName": "Ana", "AccountId": acme, "Birthdate": "1990-05-01"})
    create(client, "Contact", {"LastName": "Ortiz", "AccountId": beta, "Email": "o@example.com"})
    create(client, "Contact", {"LastName": "Solo"})
    return {"acme": acme, "beta": beta, "ng": ng}


def q(client: httpx.Client, soql: str, endpoint: str = "query", **headers: str) -> httpx.Response:
    return client.get(f"{V}/{endpoint}", params={"q": soql}, headers=headers)


def names(resp: httpx.Response, field: str = "Name") -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r[field] for r in resp.json()["records"]]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'acme'", ["Acme"]),  # string comparison is case-insensitive
        ("Name != 'Acme'", ["Beta's Boilers", "Gamma"]),
        ("Name LIKE 'b%'", ["Beta's Boilers"]),
        ("Name = 'Beta\\'s Boilers'", ["Beta's Boilers"]),
        ("AnnualRevenue > 100", ["Acme"]),
        ("AnnualRevenue >= 100 AND Industry IN ('Retail', 'Energy')", ["Acme", "Beta's Boilers"]),
        ("Industry NOT IN ('Retail')", ["Acme", "Gamma"]),  # NOT IN keeps nulls, as SOQL does
        ("Industry = null", ["Gamma"]),
        ("Industry != null AND NOT (Name = 'Acme')", ["Beta's Boilers"]),
        ("(Name = 'Gamma' OR Type = 'Prospect') AND AnnualRevenue = null", ["Gamma"]),
        ("CreatedDate > 2020-01-01T00:00:00Z", ["Acme", "Beta's Boilers", "Gamma"]),
        ("CreatedDate < 2020-01-01T00:00:00+02:00", []),
        ("CreatedDate = TODAY", ["Acme", "Beta's Boilers", "Gamma"]),
        ("CreatedDate = LAST_N_DAYS:3", ["Acme", "Beta's Boilers", "Gamma"]),
        ("CreatedDate > TODAY", []),
        ("IsDeleted = false AND Name IN ('Gamma')", ["Gamma"]),
    ],
)
def test_where_operators(client: httpx.Client, org: dict, where: str, expected: list[str]) -> None:
    assert names(q(client, f"SELECT Name FROM Account WHERE {where} ORDER BY Name")) == expected


def test_parent_fields_nesting_and_order(client: httpx.Client, org: dict) -> None:
    r = q(
        client,
        "SELECT Id, LastName, Account.Name, Account.Owner.Name FROM Contact "
        "ORDER BY Account.Name DESC NULLS LAST, LastName",
    )
    recs = r.json()["records"]
    assert [x["LastName"] for x in recs] == ["Ortiz", "Ng", "Solo"]
    assert recs[1]["Account"]["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{org['acme']}"}
    assert recs[1]["Account"]["Name"] == "Acme"
    assert recs[1]["Account"]["Owner"]["Name"] == "Integration User"
    assert recs[2]["Account"] is None
    r = q(client, "SELECT LastName FROM Contact WHERE Account.Industry = 'Energy' AND Birthdate = 1990-05-01")
    assert names(r, "LastName") == ["Ng"]


def test_child_subquery(client: httpx.Client, org: dict) -> None:
    r = q(client, "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account ORDER BY Name")
    recs = r.json()["records"]
    assert recs[0]["Contacts"]["totalSize"] == 1
    assert recs[0]["Contacts"]["records"][0]["LastName"] == "Ng"
    assert recs[2]["Contacts"] is None


def test_count_limit_offset(client: httpx.Client, org: dict) -> None:
    r = q(client, "SELECT COUNT() FROM Contact")
    assert r.json() == {"totalSize": 3, "done": True, "records": []}
    agg = q(client, "SELECT COUNT(Id) cnt FROM Account WHERE Industry != null").json()
    assert agg["records"][0] == {"attributes": {"type": "AggregateResult"}, "cnt": 2}
    r = q(client, "SELECT Name FROM Account ORDER BY Name LIMIT 1 OFFSET 1")
    assert names(r) == ["Beta's Boilers"]
    assert r.json()["totalSize"] == 1
    r = q(client, "SELECT Name FROM Account LIMIT 1 OFFSET 2001")
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_query_errors(client: httpx.Client, org: dict) -> None:
    r = q(client, "SELECT Id, Foo FROM Account")
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo' on entity 'Account'" in r.json()[0]["message"]
    assert "ERROR at Row:1:Column:12" in r.json()[0]["message"]
    r = q(client, "SELECT Id FROM Nope__c")
    assert r.json()[0]["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'Nope__c' is not supported" in r.json()[0]["message"]
    for bad in (
        "SELECT FROM Account",
        "SELECT Id FROM Account WHERE",
        "SELEKT Id FROM Account",
        "SELECT Id FROM Account WHERE Name = 'x",
    ):
        r = q(client, bad)
        assert r.status_code == 400, bad
        assert r.json()[0]["errorCode"] == "MALFORMED_QUERY", bad
    r = q(client, "SELECT Id FROM Account WHERE AnnualRevenue = '5'")
    assert r.status_code == 400
    r = q(client, "SELECT Id, Bogus.Name FROM Contact")
    assert r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "Didn't understand relationship 'Bogus'" in r.json()[0]["message"]
    assert client.get(f"{V}/query/0r8000000000000AAA-2000").json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_paging_with_batch_size(sb: SalesforceSandbox, client: httpx.Client) -> None:
    body = {
        "allOrNone": True,
        "records": [{"attributes": {"type": "Lead"}, "LastName": f"L{i:04d}", "Company": "C"} for i in range(200)],
    }
    for _ in range(3):
        assert client.post(f"{V}/composite/sobjects", json=body).status_code == 200
    first = q(client, "SELECT Id, LastName FROM Lead", **{"Sforce-Query-Options": "batchSize=250"}).json()
    assert first["totalSize"] == 600
    assert first["done"] is False
    assert len(first["records"]) == 250
    assert first["nextRecordsUrl"].startswith(f"{V}/query/0r8")
    assert first["nextRecordsUrl"].endswith("-250")
    seen = [r["Id"] for r in first["records"]]
    page = first
    while not page["done"]:
        page = client.get(page["nextRecordsUrl"]).json()
        seen += [r["Id"] for r in page["records"]]
        assert page["totalSize"] == 600
    assert len(seen) == len(set(seen)) == 600
    assert "nextRecordsUrl" not in page
    small = q(client, "SELECT Id FROM Lead", **{"Sforce-Query-Options": "batchSize=5"}).json()
    assert len(small["records"]) == 200  # batchSize minimum is 200
    default = q(client, "SELECT Id FROM Lead").json()
    assert len(default["records"]) == 600
    assert default["done"] is True


def test_query_all_sees_recycle_bin(client: httpx.Client, org: dict) -> None:
    client.delete(f"{V}/sobjects/Account/{org['beta']}")
    assert "Beta's Boilers" not in names(q(client, "SELECT Name FROM Account"))
    r = q(client, "SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true", "queryAll")
    assert r.json()["records"][0]["Name"] == "Beta's Boilers"
    assert r.json()["records"][0]["IsDeleted"] is True
    # deleting an account cascades to its contacts (reference §10)
    assert names(q(client, "SELECT LastName FROM Contact ORDER BY LastName"), "LastName") == ["Ng", "Solo"]
    assert "Ortiz" in names(q(client, "SELECT LastName FROM Contact", "queryAll"), "LastName")


def test_large_table_pages_stream_from_sqlite() -> None:
    """Paging reads each page with LIMIT/OFFSET: only one page of rows is ever materialised."""
    sb = SalesforceSandbox()
    obj = sb.catalog.objects["Lead"]
    with sb.store.transaction():
        for i in range(5000):
            sb.records.insert_values(obj, {"LastName": f"N{i}", "Company": "C", "Status": "Open - Not Contacted"})
    c = make_client(sb)
    calls = []
    real = sb.store.execute

    def spy(sql, params=()):
        rows = real(sql, params)
        calls.append(len(rows))
        return rows

    sb.store.execute = spy  # type: ignore[method-assign]
    page = q(c, "SELECT Id FROM Lead").json()
    assert page["totalSize"] == 5000
    assert len(page["records"]) == 2000
    assert max(calls) <= 2000
    sb.close()
