"""Which entities the emulator serves, under which paths, with which filters (reference §1.2–§1.4).

The table below is data, not code paths: routing (:mod:`.app`), listing and export (:mod:`.query`) read
it, so adding an entity or a filter is a one-line change here. Paths are the *tenant-relative* part of
``/{module}/v2/tenant/{tenant}/…``.

Conventions kept from the reference:

* ``active_filter`` entities accept ``active=True|False|Any`` with **True as the default** (§1.2, §1.7).
  Entities whose list model has no ``active`` field (jobs, appointments, invoices, contacts …) never show
  soft-deleted rows on the list endpoint; only their export shows them with ``active:false`` (§1.2).
* ``export_only`` fields are present in export rows but removed from list rows (§1.4 "export rows add").
* ``filters`` map a query parameter to a JSON path in the stored row and an operator; ``ids``,
  ``modifiedOnOrAfter`` and friends come from ``STANDARD_FILTERS`` when the list model carries the field.
  Unknown query parameters are ignored, as ASP.NET model binding does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# param -> (column or $.json.path, operator). Column names (modified/created) are normalised timestamps.
MODIFIED_FILTERS = {
    "modifiedOnOrAfter": ("modified", ">="),
    "modifiedBefore": ("modified", "<"),
}
CREATED_FILTERS = {
    "createdOnOrAfter": ("created", ">="),
    "createdBefore": ("created", "<"),
}


@dataclass(frozen=True)
class EntityDef:
    name: str  # store key and the name used in ``sb.counts`` / ``sb.mutate()`` reports
    module: str  # crm, jpm, dispatch, settings, accounting, sales, pricebook, forms, marketing
    list_path: str | None = None  # tenant-relative list path (GET), also ``{list_path}/{id}``
    export_path: str | None = None  # tenant-relative export path
    parent: str | None = None  # dotted JSON path of the parent id (nested routes, ``parent`` column)
    nested: tuple[str, ...] = ()  # extra list routes "customers/{id}/contacts" filtered by ``parent``
    active_filter: bool = False
    has_modified: bool = True  # the list model carries modifiedOn (payments do not, §1.4)
    has_created: bool = True
    export_only: tuple[str, ...] = ()
    export_only_nested: tuple[str, ...] = ()  # "appliedTo.appliedId": drop a key inside a list of objects
    list_hidden: tuple[str, ...] = ()  # fields the list model never shows (notes carry no id); "_x" keys never show
    filters: dict[str, tuple[str, str]] = field(default_factory=dict)
    sorts: tuple[str, ...] = ("Id", "ModifiedOn", "CreatedOn")


E = EntityDef
ENTITIES: dict[str, EntityDef] = {
    d.name: d
    for d in (
        E("customers", "crm", "customers", "export/customers", active_filter=True,
          filters={"name": ("$.name", "="), "street": ("$.address.street", "="), "zip": ("$.address.zip", "=")}),
        E("customer-contacts", "crm", "customers/contacts", "export/customers/contacts", parent="customerId",
          nested=("customers/{id}/contacts",), export_only=("active",)),
        E("locations", "crm", "locations", "export/locations", parent="customerId", active_filter=True,
          filters={"customerId": ("$.customerId", "="), "name": ("$.name", "="), "zip": ("$.address.zip", "=")}),
        E("location-contacts", "crm", "locations/contacts", "export/locations/contacts", parent="locationId",
          nested=("locations/{id}/contacts",), export_only=("active",)),
        E("customer-notes", "crm", parent="_customerId", nested=("customers/{id}/notes",),
          list_hidden=("id",), sorts=("CreatedOn", "ModifiedOn", "Id")),
        E("location-notes", "crm", parent="_locationId", nested=("locations/{id}/notes",),
          list_hidden=("id",), sorts=("CreatedOn", "ModifiedOn", "Id")),
        E("jobs", "jpm", "jobs", "export/jobs", parent="customerId", export_only=("active",),
          filters={"customerId": ("$.customerId", "="), "locationId": ("$.locationId", "="),
                   "jobStatus": ("$.jobStatus", "in"), "businessUnitId": ("$.businessUnitId", "="),
                   "jobTypeId": ("$.jobTypeId", "="), "campaignId": ("$.campaignId", "="),
                   "priority": ("$.priority", "="), "number": ("$.jobNumber", "="),
                   "completedOnOrAfter": ("$.completedOn", ">="), "completedBefore": ("$.completedOn", "<")}),
        E("job-notes", "jpm", parent="_jobId", nested=("jobs/{id}/notes",), list_hidden=("id",),
          sorts=("CreatedOn", "ModifiedOn", "Id")),
        E("job-history", "jpm", export_path="export/job-history", parent="jobId", nested=("jobs/{id}/history",),
          export_only=("jobId", "active", "modifiedOn"), has_modified=False, has_created=False),
        E("appointments", "jpm", "appointments", "export/appointments", parent="jobId",
          export_only=("customerId", "active", "unused"),
          filters={"jobId": ("$.jobId", "="), "status": ("$.status", "in"),
                   "startsOnOrAfter": ("$.start", ">="), "startsBefore": ("$.start", "<")}),
        E("appointment-assignments", "dispatch", "appointment-assignments", "export/appointment-assignments",
          parent="appointmentId", export_only=("active", "modifiedOn", "createdOn"),
          has_modified=False, has_created=False,
          filters={"appointmentIds": ("$.appointmentId", "in"), "jobId": ("$.jobId", "="),
                   "technicianId": ("$.technicianId", "=")}),
        E("technicians", "settings", "technicians", "export/technicians", active_filter=True,
          filters={"name": ("$.name", "="), "businessUnitId": ("$.businessUnitId", "=")}),
        E("employees", "settings", "employees", "export/employees", active_filter=True,
          filters={"name": ("$.name", "="), "role": ("$.role", "=")}),
        E("business-units", "settings", "business-units", "export/business-units", active_filter=True,
          filters={"name": ("$.name", "=")}),
        E("tag-types", "settings", "tag-types", "export/tag-types", active_filter=True),
        E("zones", "dispatch", "zones", active_filter=True, filters={"name": ("$.name", "=")}),
        E("job-types", "jpm", "job-types", active_filter=True, filters={"name": ("$.name", "=")}),
        E("campaigns", "marketing", "campaigns", active_filter=True, filters={"name": ("$.name", "=")}),
        E("estimates", "sales", "estimates", "estimates/export", parent="jobId", active_filter=True,
          export_only=("customerId", "locationId"),
          filters={"jobId": ("$.jobId", "="), "status": ("$.status.name", "="),
                   "soldAfter": ("$.soldOn", ">="), "soldBefore": ("$.soldOn", "<")}),
        E("estimate-items", "sales", "estimates/items", parent="estimateId", has_created=False,
          filters={"estimateId": ("$.estimateId", "=")}),
        E("invoices", "accounting", "invoices", "export/invoices", parent="job.id",
          export_only=("location", "invoiceType", "depositedOn", "createdOn", "active", "sentStatus",
                       "reviewStatus", "assignedTo"),
          filters={"jobId": ("$.job.id", "="), "customerId": ("$.customer.id", "="),
                   "businessUnitId": ("$.businessUnit.id", "="), "batchId": ("$.batch.id", "="),
                   "invoicedOnOrAfter": ("$.invoiceDate", ">="), "invoicedOnBefore": ("$.invoiceDate", "<"),
                   "number": ("$.referenceNumber", "=")}),
        E("invoice-items", "accounting", export_path="export/invoice-items", parent="invoiceId", has_created=False),
        E("payments", "accounting", "payments", "export/payments", parent="customer.id", has_modified=False,
          has_created=False, export_only=("businessUnit", "createdOn", "modifiedOn", "active"),
          export_only_nested=("appliedTo.appliedId",),
          filters={"customerId": ("$.customer.id", "="), "paidOnAfter": ("$.date", ">="),
                   "paidOnBefore": ("$.date", "<")}),
        E("pricebook-services", "pricebook", "services", active_filter=True),
        E("pricebook-materials", "pricebook", "materials", active_filter=True),
        E("pricebook-equipment", "pricebook", "equipment", active_filter=True),
        E("forms", "forms", "forms", active_filter=True, has_created=False),
        E("form-submissions", "forms", "submissions", parent="formId", has_created=False,
          filters={"formId": ("$.formId", "="), "submittedOnOrAfter": ("$.submittedOn", ">="),
                   "submittedBefore": ("$.submittedOn", "<")}),
        E("job-attachments", "forms", parent="jobId", nested=("jobs/{id}/attachments",)),
    )
}
del E

#: path prefixes a composite server routes to this emulator (token endpoint on the same host, §1.2).
MODULES = tuple(sorted({d.module for d in ENTITIES.values()}))
PREFIXES = ("/connect/token", *(f"/{m}/v2/" for m in MODULES))


@dataclass(frozen=True)
class Route:
    kind: str  # list | get | export | attachment
    entity: EntityDef
    parts: tuple[str, ...]  # path segments; "{id}" matches a positive integer


def build_routes() -> dict[str, list[Route]]:
    """Routes per module, most specific (longest, fewest placeholders) first."""
    out: dict[str, list[Route]] = {m: [] for m in MODULES}
    for d in ENTITIES.values():
        add = out[d.module].append
        if d.list_path:
            add(Route("list", d, tuple(d.list_path.split("/"))))
            add(Route("get", d, (*d.list_path.split("/"), "{id}")))
        if d.export_path:
            add(Route("export", d, tuple(d.export_path.split("/"))))
        for pattern in d.nested:
            add(Route("list", d, tuple(pattern.split("/"))))
    att = ENTITIES["job-attachments"]
    out["forms"] += [Route("attachment", att, ("jobs", "attachment", "{id}")),
                     Route("attachment", att, ("jobs", "attachments", "{id}"))]
    for routes in out.values():
        routes.sort(key=lambda r: (-len(r.parts), sum(p == "{id}" for p in r.parts)))
    return out
