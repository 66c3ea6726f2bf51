"""Custom fields through the Tooling API, plus the field-level security that makes them usable (reference §9).

A field created through Tooling is invisible to every profile until FieldPermissions grant it: absent from
describe, ``INVALID_FIELD`` in queries and writes. So creating a field is always two steps here: the
``CustomField`` insert (an existing field, ``DUPLICATE_DEVELOPER_NAME``, is fine: creation is idempotent)
and a FieldPermissions row with read+edit on the running user's profile-owned permission set (added if
missing, upgraded to edit if read-only). Activity fields (``Activity.X__c``) are granted on Task and Event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmmigrator_gui.engine.errors import DestinationError
from crmmigrator_gui.engine.target.sf_codec import soql_string
from crmmigrator_gui.engine.target.sf_types import rest_errors

if TYPE_CHECKING:
    from crmmigrator_gui.engine.target.salesforce import SalesforceClient

TOOLING_TYPES = {
    "text": "Text",
    "string": "Text",
    "textarea": "TextArea",
    "longtextarea": "LongTextArea",
    "html": "Html",
    "number": "Number",
    "double": "Number",
    "int": "Number",
    "currency": "Currency",
    "percent": "Percent",
    "checkbox": "Checkbox",
    "boolean": "Checkbox",
    "date": "Date",
    "datetime": "DateTime",
    "email": "Email",
    "phone": "Phone",
    "url": "Url",
    "picklist": "Picklist",
    "multiselectpicklist": "MultiselectPicklist",
    "multipicklist": "MultiselectPicklist",
    "lookup": "Lookup",
    "reference": "Lookup",
}


def running_permission_set(client: SalesforceClient) -> str:
    user_id = client.user_info()["user_id"]
    users = list(client.query(f"SELECT ProfileId FROM User WHERE Id = {soql_string(user_id)}"))
    if not users or not users[0].get("ProfileId"):
        raise DestinationError(f"cannot read the profile of the integration user {user_id}")
    soql = (
        "SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = true AND "
        f"ProfileId = {soql_string(users[0]['ProfileId'])} LIMIT 1"
    )
    sets = list(client.query(soql))
    if not sets:
        raise DestinationError("the integration user's profile has no permission set to grant field access to")
    return str(sets[0]["Id"])


def create_custom_field(
    client: SalesforceClient,
    sobject: str,
    field_api_name: str,
    *,
    kind: str,
    label: str,
    length: int | None,
    external_id: bool,
    unique: bool,
    picklist_values: list[str] | None,
    restricted: bool,
    precision: int | None,
    scale: int | None,
    reference_to: str | None,
) -> None:
    name = field_api_name if field_api_name.endswith("__c") else f"{field_api_name}__c"
    metadata_type = TOOLING_TYPES.get(kind.replace(" ", "").lower())
    if metadata_type is None:
        raise ValueError(f"unsupported custom field type {kind!r} (use e.g. Text, Number, Picklist, Lookup)")
    meta = field_metadata(
        metadata_type,
        label,
        name,
        length=length,
        external_id=external_id,
        unique=unique,
        picklist_values=picklist_values,
        restricted=restricted,
        precision=precision,
        scale=scale,
        reference_to=reference_to,
    )
    response = client._send("POST", "tooling/sobjects/CustomField", {"FullName": f"{sobject}.{name}", "Metadata": meta})
    if response.status_code >= 400 and rest_errors(response)[0][0] != "DUPLICATE_DEVELOPER_NAME":
        client._check(response, f"creating the field {sobject}.{name}")
    targets = ["Task", "Event"] if sobject.lower() == "activity" else [sobject]
    permset = client.running_permission_set()
    for target in targets:
        grant(client, permset, target, name)
        client.invalidate(target)


def grant(client: SalesforceClient, permset: str, sobject: str, field_name: str) -> None:
    """Read+edit on ``sobject.field_name`` for the permission set (insert, or upgrade a read-only grant)."""
    full = f"{sobject}.{field_name}"
    soql = (
        "SELECT Id, PermissionsRead, PermissionsEdit FROM FieldPermissions "
        f"WHERE ParentId = {soql_string(permset)} AND Field = {soql_string(full)}"
    )
    existing = list(client.query(soql))
    what = f"granting access to {full}"
    if not existing:
        body = {
            "ParentId": permset,
            "SobjectType": sobject,
            "Field": full,
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
        client._json("POST", "sobjects/FieldPermissions", body, what=what)
    elif not existing[0].get("PermissionsEdit"):
        client._json(
            "PATCH",
            f"sobjects/FieldPermissions/{existing[0]['Id']}",
            {"PermissionsRead": True, "PermissionsEdit": True},
            what=what,
        )


def field_metadata(
    kind: str,
    label: str,
    name: str,
    *,
    length: int | None = None,
    external_id: bool = False,
    unique: bool = False,
    picklist_values: list[str] | None = None,
    restricted: bool = True,
    precision: int | None = None,
    scale: int | None = None,
    reference_to: str | None = None,
) -> dict[str, Any]:
    """Metadata API ``CustomField`` block (``kind`` is the Metadata type name, e.g. ``Text``)."""
    meta: dict[str, Any] = {"label": label, "type": kind, "required": False}
    if kind in ("Text", "EncryptedText"):
        meta["length"] = length or 255
    elif kind in ("LongTextArea", "Html"):
        meta.update(length=length or 32768, visibleLines=5)
    elif kind in ("Number", "Currency", "Percent"):
        meta.update(precision=precision or 18, scale=scale if scale is not None else (2 if kind == "Currency" else 0))
    elif kind == "Checkbox":
        meta["defaultValue"] = False
    elif kind in ("Picklist", "MultiselectPicklist"):
        if not picklist_values:
            raise ValueError("a picklist field needs picklist_values")
        meta["valueSet"] = {
            "restricted": restricted,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": v, "label": v, "default": False} for v in picklist_values],
            },
        }
        if kind == "MultiselectPicklist":
            meta["visibleLines"] = 4
    elif kind == "Lookup":
        if not reference_to:
            raise ValueError("a lookup field needs reference_to")
        meta.update(referenceTo=reference_to, relationshipName=name[:-3], deleteConstraint="SetNull")
    if external_id:
        meta["externalId"] = True
    if unique:
        meta.update(unique=True, caseSensitive=False)
    return meta
