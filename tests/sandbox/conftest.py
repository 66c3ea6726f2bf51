"""Fixtures for the Dataverse sandbox tests: every test talks to the emulator over httpx only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from crmmigrator_gui.sandbox.dataverse.app import DataverseSandbox

API = "http://sandbox.localhost/api/data/v9.2/"
HEADERS = {
    "Authorization": "Bearer test-token",
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


def make_client(sandbox: DataverseSandbox) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url=API, headers=HEADERS)


@pytest.fixture
def sandbox() -> Iterator[DataverseSandbox]:
    sb = DataverseSandbox(key_activation_seconds=0.05)
    yield sb
    sb.close()


@pytest.fixture
def client(sandbox: DataverseSandbox) -> Iterator[httpx.Client]:
    with make_client(sandbox) as c:
        yield c


def label(text: str) -> dict:
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}
        ],
    }


def add_string_column(client: httpx.Client, entity: str, schema_name: str, max_length: int = 100) -> None:
    r = client.post(
        f"EntityDefinitions(LogicalName='{entity}')/Attributes",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "SchemaName": schema_name,
            "AttributeType": "String",
            "AttributeTypeName": {"Value": "StringType"},
            "MaxLength": max_length,
            "FormatName": {"Value": "Text"},
            "RequiredLevel": {"Value": "None", "CanBeChanged": True},
            "DisplayName": label(schema_name),
        },
    )
    assert r.status_code == 204, r.text


def add_key(client: httpx.Client, entity: str, schema_name: str, attrs: list[str], wait: bool = True) -> str:
    r = client.post(
        f"EntityDefinitions(LogicalName='{entity}')/Keys",
        json={"SchemaName": schema_name, "KeyAttributes": attrs, "DisplayName": label(schema_name)},
    )
    assert r.status_code == 204, r.text
    status = "Pending"
    deadline = time.monotonic() + 5
    while wait and status == "Pending" and time.monotonic() < deadline:
        time.sleep(0.02)
        keys = client.get(
            f"EntityDefinitions(LogicalName='{entity}')/Keys",
            params={"$select": "SchemaName,KeyAttributes,EntityKeyIndexStatus"},
        ).json()["value"]
        status = next(k["EntityKeyIndexStatus"] for k in keys if k["SchemaName"] == schema_name)
    return status


def source_key(client: httpx.Client, entity: str = "account") -> None:
    """The product's standard setup: new_sourcesystemid plus an Active alternate key on it."""
    add_string_column(client, entity, "new_SourceSystemId")
    assert add_key(client, entity, f"new_{entity}_sourcesystemid_key", ["new_sourcesystemid"]) == "Active"


def create(client: httpx.Client, entity_set: str, body: dict) -> str:
    r = client.post(entity_set, json=body)
    assert r.status_code == 204, r.text
    return r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
