"""Row shaping for the ServiceTitan extractor: flatten, deduplicate, follow merges, derive the zone.

* **Flatten** (reference §1.4 shapes): nested objects become dotted columns (``address.street``,
  ``status.name``, ``phoneSettings.phoneNumber``); ``customFields[{typeId,name,value}]`` becomes one column per
  field (``customFields.Equipment Model``), ``externalData[{key,value}]`` one per key; lists of scalars
  (``tagTypeIds``, ``zips``) are joined with ``", "``; any other list of objects is kept as JSON text. Values
  are strings (``true``/``false`` for booleans, exact decimals for money), like cells of an export file, so
  API rows and files share one staging path.
* **Dedupe** (§1.2 ``includeRecentChanges``, §6.14): the same ``id`` may arrive more than once; the row with
  the highest ``modifiedOn`` wins (a later delivery wins a tie).
* **Merges** (§1.7): customers and locations carry ``mergedToId``; chains (A→B→C) are followed to the
  surviving record, with a cycle guard.
* **Zone** (§1.4: a zone is a list of ZIPs and cities, with no coordinates, and a location does not name its zone):
  a location's zone is derived from its ZIP (first five digits), then its city, against the active zones.
  The result goes to the extra columns ``derived.zoneId`` / ``derived.zoneName``, and the API's own fields are
  never overwritten.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

CUSTOM_FIELDS = "customFields"
EXTERNAL_DATA = "externalData"


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def flatten(row: dict[str, Any], prefix: str = "", out: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """One API row as ``{dotted column: string value}`` (see the module docstring)."""
    out = {} if out is None else out
    for key, value in row.items():
        column = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                flatten(value, column + ".", out)
            else:
                out.setdefault(column, None)
        elif isinstance(value, list):
            if key == CUSTOM_FIELDS and all(isinstance(v, dict) for v in value):
                for item in value:
                    name = item.get("name") or f"type{item.get('typeId')}"
                    out[f"{column}.{name}"] = _scalar(item.get("value"))
            elif key == EXTERNAL_DATA and all(isinstance(v, dict) for v in value):
                for item in value:
                    out[f"{column}.{item.get('key')}"] = _scalar(item.get("value"))
            elif all(not isinstance(v, (dict, list)) for v in value):
                out[column] = ", ".join(s for s in (_scalar(v) for v in value) if s is not None) or None
            else:
                out[column] = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
        else:
            out[column] = _scalar(value)
    return out


def parse_moment(text: Any) -> datetime | None:
    if not text:
        return None
    value = str(text).strip().replace(" ", "T")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Deduper:
    """Keeps one row per id: the highest ``modifiedOn`` (a later delivery wins a tie); counts repeats."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.repeats = 0
        self.high_water: datetime | None = None

    def add(self, row: dict[str, Any]) -> None:
        rid = str(row.get("id"))
        moment = parse_moment(row.get("modifiedOn"))
        if moment and (self.high_water is None or moment > self.high_water):
            self.high_water = moment
        seen = self.rows.get(rid)
        if seen is not None:
            self.repeats += 1
            before = parse_moment(seen.get("modifiedOn"))
            if before and moment and moment < before:
                return
        self.rows[rid] = row


def survivor(merges: dict[str, str], rid: str | None) -> str | None:
    """Follow ``mergedToId`` links to the record that survived (stops at a cycle or after 50 hops)."""
    if rid is None:
        return None
    seen = {rid}
    current = rid
    for _ in range(50):
        nxt = merges.get(current)
        if nxt is None or nxt in seen:
            return current
        seen.add(nxt)
        current = nxt
    return current


class ZoneIndex:
    """Active zones by ZIP5 and by lower-case city (first zone wins, in id order)."""

    def __init__(self, zones: list[dict[str, Any]]) -> None:
        self.by_zip: dict[str, tuple[str, str]] = {}
        self.by_city: dict[str, tuple[str, str]] = {}
        for zone in sorted(zones, key=lambda z: int(z.get("id") or 0)):
            if zone.get("active") is False:
                continue
            ident = (str(zone.get("id")), str(zone.get("name") or zone.get("id")))
            for code in zone.get("zips") or []:
                self.by_zip.setdefault(str(code).strip()[:5], ident)
            for city in zone.get("cities") or []:
                self.by_city.setdefault(str(city).strip().lower(), ident)

    def find(self, address: dict[str, Any] | None) -> tuple[str, str] | None:
        address = address or {}
        code = str(address.get("zip") or "").strip()[:5]
        if code and code in self.by_zip:
            return self.by_zip[code]
        city = str(address.get("city") or "").strip().lower()
        return self.by_city.get(city) if city else None


# ---------------------------------------------------------------------------------------------- accounting

PAID, PARTIAL, UNPAID = "Paid", "PartiallyPaid", "Unpaid"
APPLICATION_ID = "derived.paymentApplicationId"


def money(value: Any) -> Decimal | None:
    """An accounting amount (sent as a string, §1.4) as an exact Decimal; None when empty or unreadable."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return Decimal(str(value).strip())
    except ArithmeticError:
        return None


def payment_status(invoice: dict[str, Any]) -> str | None:
    """``Paid`` / ``PartiallyPaid`` / ``Unpaid`` from an invoice's ``balance`` against its ``total``."""
    balance, total = money(invoice.get("balance")), money(invoice.get("total"))
    if balance is None:
        return None
    if balance <= 0:
        return PAID
    if total is not None and balance < total:
        return PARTIAL
    return UNPAID


def shape_invoice(row: dict[str, Any]) -> dict[str, Any]:
    """Drop the nested items (staged from export/invoice-items), move ``customer.id``, add the payment status."""
    row.pop("items", None)
    _customer_id(row)
    row["derived.paymentStatus"] = payment_status(row)
    return row


def shape_payment(row: dict[str, Any]) -> dict[str, Any]:
    """Move ``customer.id`` to ``customerId`` (merges re-point it) before the row is expanded."""
    _customer_id(row)
    return row


def _customer_id(row: dict[str, Any]) -> None:
    """Move ``customer.id`` to a top-level ``customerId`` (the column merges re-point; a second copy in
    ``customer.id`` would keep the merged-away id and could be picked instead)."""
    customer = row.get("customer")
    if isinstance(customer, dict) and "id" in customer:
        customer = dict(customer)
        row["customerId"] = customer.pop("id")
        row["customer"] = customer
    else:
        row.setdefault("customerId", None)


def payment_applications(row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One ``(staged id, row)`` per ``appliedTo[]`` entry (one row with empty fields when nothing is applied).

    The staged id is the payment id unless the payment is split over several invoices; then each application
    is ``<payment id>-<invoice id>`` (``#n`` is added if the same invoice appears twice).
    """
    pid = str(row.get("id"))
    base = {k: v for k, v in row.items() if k != "appliedTo"}
    if "customerId" not in base:
        _customer_id(base)
    applied = [a for a in (row.get("appliedTo") or []) if isinstance(a, dict)]
    base["appliedTo.count"] = len(applied)
    if not applied:
        return [(pid, {**base, APPLICATION_ID: pid, "appliedTo.invoiceId": None, "appliedTo.amount": None,
                       "appliedTo.appliedOn": None, "appliedTo.appliedId": None})]
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for n, app in enumerate(applied, 1):
        invoice = app.get("appliedTo")
        sid = pid if len(applied) == 1 else f"{pid}-{invoice}"
        if sid in seen:
            sid = f"{sid}#{n}"
        seen.add(sid)
        out.append((sid, {**base, APPLICATION_ID: sid, "appliedTo.invoiceId": invoice,
                          "appliedTo.amount": app.get("appliedAmount"), "appliedTo.appliedOn": app.get("appliedOn"),
                          "appliedTo.appliedBy": app.get("appliedBy"), "appliedTo.appliedId": app.get("appliedId")}))
    return out
