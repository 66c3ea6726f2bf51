"""Deterministic tenant generator, part 1: settings, pricebook, customers, locations, contacts, notes.

Why a generator rather than fixtures: the product must be exercised at realistic volume and with every
§6 trap, and a seeded RNG gives exactly the same tenant (ids, values, timestamps) on every run, so a file
database and a fresh in-memory one agree and tests can hard-code nothing but counts and rules.

Ids live in per-entity ranges (customers 100001…, jobs 1000001…), so an id used against the wrong entity
is a visible miss instead of an accidental hit, and ``jobNumber`` differs from the job ``id`` on purpose.
:mod:`.seed_work` adds the work side (jobs … payments); :func:`generate` drives both and yields
``(entity, rows)`` batches that the caller stores in modification order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import fakes as F

BASE = {
    "business-units": 1001, "zones": 2001, "job-types": 3001, "tag-types": 4001, "campaigns": 5001,
    "employees": 6001, "technicians": 7001, "pricebook-services": 8001, "pricebook-materials": 9001,
    "pricebook-equipment": 9501, "customers": 100001, "locations": 200001, "customer-contacts": 300001,
    "location-contacts": 350001, "jobs": 1000001, "appointments": 2000001, "appointment-assignments": 2500001,
    "job-history": 2800001, "estimates": 3000001, "estimate-items": 3100001, "invoices": 4000001,
    "invoice-items": 4100001, "payments": 5000001, "customer-notes": 6000001, "location-notes": 6100001,
    "job-notes": 6200001, "forms": 7000001, "form-submissions": 7100001, "job-attachments": 8000001,
}


@dataclass
class Ctx:
    """Shared state between the generator parts: rng, sizes, and the ids later parts refer to."""

    rng: random.Random
    tenant: int
    records: int
    traps: F.Traps = field(default_factory=F.Traps)
    next_ids: dict[str, int] = field(default_factory=dict)
    refs: dict[str, list[Any]] = field(default_factory=dict)

    def new_id(self, entity: str) -> int:
        rid = self.next_ids.get(entity, BASE[entity])
        self.next_ids[entity] = rid + 1
        return rid

    def scaled(self, per_thousand: float, minimum: int = 1) -> int:
        return max(minimum, round(per_thousand * self.records / 1000))


def stamps(ctx: Ctx, lo: float = 0.0, hi: float = 1.0, edit_rate: float = 0.5) -> tuple[str, str, Any]:
    """(createdOn, modifiedOn, created datetime); some rows were edited after creation, some never."""
    created = F.moment(ctx.rng, lo, hi)
    modified = created
    if ctx.rng.random() < edit_rate:
        modified = created + timedelta(days=ctx.rng.uniform(0, 60), seconds=ctx.rng.randrange(86400))
        modified = min(modified, F.EPOCH + timedelta(days=F.SPAN_DAYS + 30))
    return F.iso(created, ctx.rng), F.iso(modified, ctx.rng), created


def settings(ctx: Ctx) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rng = ctx.rng
    names = ["HVAC Service", "Plumbing", "Electrical", "Commercial HVAC", "Install & Replace"]
    bus = []
    for i, name in enumerate(names):
        created, modified, _ = stamps(ctx, 0, 0.01, 0.3)
        address, _ = F.address(rng)
        address.pop("latitude"), address.pop("longitude")
        bus.append({
            "id": ctx.new_id("business-units"), "active": i != 4 or ctx.records < 200, "name": name,
            "officialName": f"{name} Division", "email": f"{name.split()[0].lower()}@dispatchpro.example",
            "currency": "USD", "phoneNumber": F.phone(rng)[0], "invoiceHeader": None,
            "invoiceMessage": "Thank you for your business!", "defaultTaxRate": 0.0825, "address": address,
            "materialSku": None, "quickbooksClass": name[:3].upper(), "accountCode": f"4{i}00",
            "franchiseId": None, "conceptCode": None, "tenant": {"id": ctx.tenant, "name": "Sandbox Services"},
            "createdOn": created, "modifiedOn": modified, "externalData": [],
        })
    ctx.refs["business-units"] = [b["id"] for b in bus]
    yield "business-units", bus

    zones = []
    for i in range(8):
        created, modified, _ = stamps(ctx, 0, 0.02)
        cities = rng.sample(F.CITIES, 2)
        zones.append({
            "id": ctx.new_id("zones"), "active": i != 7, "name": f"Zone {chr(65 + i)} – {cities[0][0]}",
            "zips": sorted({f"{c[3]}{rng.randint(0, 99):02d}" for c in cities for _ in range(3)}),
            "cities": [c[0] for c in cities], "territoryNumbers": [str(100 + i)], "locnNumbers": [],
            "serviceDaysEnabled": i % 2 == 0, "serviceDays": ["Monday", "Wednesday", "Friday"] if i % 2 == 0 else [],
            "businessUnits": rng.sample(ctx.refs["business-units"], 2), "createdBy": BASE["employees"],
            "createdOn": created, "modifiedOn": modified,
        })
    yield "zones", zones

    tag_names = ["VIP", "Member", "Warranty", "Commercial", "Do Not Service", "Needs Follow-up", "Rental",
                 "New Construction", "Dog on Site", "Gate Code", "Spanish Speaking", "Legacy Import"]
    tags = []
    for i, name in enumerate(tag_names):
        created, modified, _ = stamps(ctx, 0, 0.05)
        tags.append({"id": ctx.new_id("tag-types"), "name": name, "code": name[:4].upper(),
                     "color": f"#{rng.randrange(0xFFFFFF):06X}", "importance": rng.choice(["Low", "Medium", "High"]),
                     "isConversionOpportunity": i == 1, "active": name != "Legacy Import",
                     "createdOn": created, "modifiedOn": modified})
    ctx.refs["tag-types"] = [t["id"] for t in tags]
    yield "tag-types", tags

    roles = ["Owner", "Admin", "Dispatch", "Dispatch", "CSR", "CSR", "CSR", "Accounting", "FieldManager",
             "SalesManager", "GeneralOffice"]
    emps = []
    for i, role in enumerate(roles):
        created, modified, _ = stamps(ctx, 0, 0.3)
        first, last = F.person(rng)
        mail, _ = F.email(rng, first, last)
        emps.append({"id": ctx.new_id("employees"), "userId": 90000 + i, "name": f"{first} {last}", "role": role,
                     "businessUnitId": rng.choice(ctx.refs["business-units"]), "email": mail,
                     "phoneNumber": F.phone(rng)[0], "loginName": f"{first[0]}{last}".lower(),
                     "active": i != len(roles) - 1, "customFields": [], "createdOn": created, "modifiedOn": modified})
    ctx.refs["employees"] = [e["id"] for e in emps]
    yield "employees", emps

    techs = []
    for i in range(ctx.scaled(20, 3)):
        created, modified, _ = stamps(ctx, 0, 0.6)
        first, last = F.person(rng)
        mail, kind = F.email(rng, first, last)
        home, _ = F.address(rng)
        home["streetAddress"] = home["street"]
        managed = rng.random() < 0.7
        tid = ctx.new_id("technicians")
        active = i % 9 != 8
        if kind:
            ctx.traps.add("technicians", tid, "email", kind)
        if not active:
            ctx.traps.add("technicians", tid, "active", "inactive_technician")
        techs.append({
            "id": tid, "userId": 91000 + i, "name": f"{first} {last}" + (" (Sub)" if i % 7 == 6 else ""),
            "businessUnitId": rng.choice(ctx.refs["business-units"]), "email": None if i % 11 == 5 else mail,
            "phoneNumber": F.phone(rng)[0], "loginName": f"{first}.{last}".lower(), "home": home,
            "dailyGoal": float(rng.choice([0, 1200, 1500, 2000, 2500.5])), "isManagedTech": managed,
            "licenseType": "ManagedTech" if managed else "NonManagedTech",
            "customFields": [{"typeId": 501, "name": "Skills", "value": rng.choice(["HVAC;Refrigeration",
                              "Plumbing", "Electrical;Low Voltage", "Gas Fitting"])},
                             {"typeId": 502, "name": "Trade License", "value": f"LIC-{rng.randint(10000, 99999)}"}],
            "active": active, "createdOn": created, "modifiedOn": modified,
        })
    ctx.refs["technicians"] = [(t["id"], t["name"], t["active"]) for t in techs]
    yield "technicians", techs

    jt_names = ["Repair", "Maintenance", "Installation", "Estimate", "Warranty Call", "Emergency", "Inspection",
                "Drain Cleaning", "Panel Upgrade", "Tune-Up"]
    jts = []
    for i, name in enumerate(jt_names):
        created, modified, _ = stamps(ctx, 0, 0.05)
        jts.append({"id": ctx.new_id("job-types"), "name": name,
                    "businessUnitIds": rng.sample(ctx.refs["business-units"], 2), "skills": [],
                    "tagTypeIds": [], "priority": "Urgent" if name == "Emergency" else "Normal",
                    "duration": rng.choice([3600, 5400, 7200]), "soldThreshold": None, "class": None,
                    "summary": f"<p>{name}</p>", "noCharge": name == "Warranty Call", "active": i != 9,
                    "createdOn": created, "modifiedOn": modified})
    ctx.refs["job-types"] = [j["id"] for j in jts]
    yield "job-types", jts

    camp_names = ["Google Ads", "Yelp", "Referral", "Direct Mail Spring", "Website", "Facebook", "Yard Sign",
                  "Home Show 2023"]
    camps = []
    for i, name in enumerate(camp_names):
        created, modified, _ = stamps(ctx, 0, 0.1)
        camps.append({"id": ctx.new_id("campaigns"), "name": name, "active": i != 7,
                      "category": {"id": 5500 + i % 3, "name": ["Digital", "Word of Mouth", "Print"][i % 3],
                                   "active": True},
                      "source": None, "otherSource": None, "businessUnit": None, "medium": None,
                      "otherMedium": None, "campaignPhoneNumbers": [], "createdOn": created, "modifiedOn": modified})
    ctx.refs["campaigns"] = [c["id"] for c in camps]
    yield "campaigns", camps


def pricebook(ctx: Ctx) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rng = ctx.rng
    for entity, count, words in (
        ("pricebook-services", 40, ["Diagnostic", "Tune-Up", "Repair Labor", "Drain Clear", "Install Labor"]),
        ("pricebook-materials", 60, ["Capacitor", "Contactor", "Filter 16x25", "PVC Elbow", "Breaker 20A"]),
        ("pricebook-equipment", 15, ["AC Condenser 3T", "Furnace 80k", "Water Heater 50gal", "Heat Pump"]),
    ):
        rows, ids = [], []
        for i in range(count):
            created, modified, _ = stamps(ctx, 0, 0.5)
            rid = ctx.new_id(entity)
            price = round(rng.uniform(15, 3500 if entity.endswith("equipment") else 450), 2)
            row = {"id": rid, "code": f"{entity[10:13].upper()}-{i + 1:04d}",
                   "displayName": f"{rng.choice(words)} {i + 1}", "description": f"<p>{rng.choice(words)}</p>",
                   "price": price, "memberPrice": round(price * 0.85, 2), "cost": round(price * 0.4, 2),
                   "active": i % 13 != 12, "taxable": entity != "pricebook-services",
                   "createdOn": created, "modifiedOn": modified}
            if entity == "pricebook-services":
                row["hours"] = rng.choice([0.5, 1.0, 1.5, 2.0])
            rows.append(row)
            ids.append((rid, row["displayName"], price))
        ctx.refs[entity] = ids
        yield entity, rows


def contacts(ctx: Ctx, entity: str, owner_key: str, owner_id: int, name: str, created: str) -> list[dict]:
    rng = ctx.rng
    first, last = [*name.split(" ", 1), "Customer"][:2] if name.strip() else ("info", "customer")
    out = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3]) if entity == "customer-contacts" else rng.choice([0, 0, 1])):
        rid = ctx.new_id(entity)
        kind = rng.choice(["Phone", "MobilePhone", "Email", "Email", "Phone", "Fax"])
        if kind == "Email":
            value, trap = F.email(rng, first, last)
            settings_ = None
        else:
            value, digits, trap = F.phone(rng)
            settings_ = {"phoneNumber": digits, "doNotText": kind != "MobilePhone"}
        if trap:
            ctx.traps.add(entity, rid, "value", trap)
        out.append({"id": rid, "type": kind, "value": value, "memo": rng.choice([None, None, "office", "wife"]),
                    "phoneSettings": settings_, owner_key: owner_id, "createdOn": created, "createdById":
                    rng.choice(ctx.refs["employees"]), "modifiedOn": created, "active": rng.random() > 0.03})
    return out


def notes(ctx: Ctx, entity: str, owner_key: str, owner_id: int, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        created, modified, _ = stamps(ctx, 0.1, 1.0, 0.1)
        rid = ctx.new_id(entity)
        text, trap = F.note_text(ctx.rng)
        if trap:
            ctx.traps.add(entity, rid, "text", trap)
        out.append({"id": rid, owner_key: owner_id, "text": text, "isPinned": ctx.rng.random() < 0.1,
                    "createdById": ctx.rng.choice(ctx.refs["employees"]), "createdOn": created, "modifiedOn": modified})
    return out


def customers(ctx: Ctx) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Customers with their locations, contacts and notes; includes merges, duplicates and inactive rows."""
    rng = ctx.rng
    n = ctx.scaled(200, 3)
    import_stamp = F.iso(F.EPOCH)  # the legacy bulk import: many rows share one modifiedOn (§6.14)
    custs, locs, ccons, lcons, cnotes, lnotes = [], [], [], [], [], []
    for i in range(n):
        cid = ctx.new_id("customers")
        commercial = rng.random() < 0.25
        name, trap = F.customer_name(rng, commercial)
        if i and rng.random() < 0.03:  # duplicate of an earlier customer with case/format drift (§6.8)
            name, trap = custs[rng.randrange(len(custs))]["name"].upper(), "duplicate_customer"
        if trap:
            ctx.traps.add("customers", cid, "name", trap)
        if i < max(2, n // 5):  # the oldest fifth came in through one legacy import
            created = modified = import_stamp
        else:
            created, modified, _ = stamps(ctx, 0.0, 0.9)
        address, addr_traps = F.address(rng)
        for fld, kind in addr_traps:
            ctx.traps.add("customers", cid, fld, kind)
        custs.append({
            "id": cid, "active": rng.random() > 0.05, "name": name,
            "type": "Commercial" if commercial else "Residential", "address": address,
            "customFields": [{"typeId": 601, "name": "Referral Source", "value": rng.choice(["Google", "Friend",
                              None, "yelp", "Yelp "])}, {"typeId": 602, "name": "Gate Code", "value": None}],
            "balance": float(rng.choice([0, 0, 0, 125.5, 89.99, -20.0])), "tagTypeIds":
            rng.sample(ctx.refs["tag-types"], rng.choice([0, 0, 1, 2])), "doNotMail": rng.random() < 0.1,
            "doNotService": rng.random() < 0.02, "createdOn": created, "createdById": rng.choice(ctx.refs["employees"]),
            "modifiedOn": modified, "mergedToId": None,
            "externalData": [{"key": "legacyId", "value": f"QB-{cid % 100000}"}] if rng.random() < 0.2 else [],
        })
        if not custs[-1]["active"]:
            ctx.traps.add("customers", cid, "active", "inactive")
        ccons += contacts(ctx, "customer-contacts", "customerId", cid, name, created)
        cnotes += notes(ctx, "customer-notes", "_customerId", cid, rng.choice([0, 0, 1, 2]))
        for j in range(1 if rng.random() < 0.6 else rng.choice([2, 2, 3])):
            lid = ctx.new_id("locations")
            laddr, ltraps = (address, addr_traps) if j == 0 and rng.random() < 0.7 else F.address(rng)
            for fld, kind in ltraps:
                ctx.traps.add("locations", lid, fld, kind)
            locs.append({"id": lid, "customerId": cid, "active": True,
                         "name": name if j == 0 else f"{name} – Site {j + 1}", "address": laddr,
                         "customFields": [], "createdOn": created, "createdById": custs[-1]["createdById"],
                         "modifiedOn": modified, "mergedToId": None, "taxZoneId": rng.choice([None, 71, 72]),
                         "zoneId": None, "tagTypeIds": []})
            lcons += contacts(ctx, "location-contacts", "locationId", lid, name, created)
            lnotes += notes(ctx, "location-notes", "_locationId", lid, rng.choice([0, 0, 0, 1]))
    # Merges (§1.7): a few customers were merged into another; one chain A -> B -> C; their sites follow.
    first_site: dict[int, int] = {}
    for loc in locs:
        first_site.setdefault(loc["customerId"], loc["id"])
    merged = rng.sample(range(1, n), min(n - 1, max(1, n // 30)))
    for k, idx in enumerate(merged):
        target = custs[0] if k == 0 else custs[merged[0]] if k == 1 else custs[idx - 1]
        row = custs[idx]
        row.update(active=False, mergedToId=target["id"])
        ctx.traps.add("customers", row["id"], "mergedToId", "merged_customer" if k != 1 else "merge_chain")
        for loc in locs:
            if loc["customerId"] == row["id"] and rng.random() < 0.5:
                loc.update(active=False, mergedToId=first_site[target["id"]])
                ctx.traps.add("locations", loc["id"], "mergedToId", "merged_location")
    ctx.refs["customers"] = [(c["id"], c["name"], c["address"]) for c in custs]
    ctx.refs["locations"] = [(loc["id"], loc["customerId"], loc["name"], loc["address"]) for loc in locs]
    yield from (("customers", custs), ("locations", locs), ("customer-contacts", ccons),
                ("location-contacts", lcons), ("customer-notes", cnotes), ("location-notes", lnotes))


def generate(ctx: Ctx) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    from .seed_work import work

    yield from settings(ctx)
    yield from pricebook(ctx)
    yield from customers(ctx)
    yield from work(ctx)
