"""Cutover activity: what the tenant's users do while a migration runs (``ServiceTitanSandbox.mutate``).

A delta-pickup window (seed rows: "capture any jobs modified or newly created while the team continues
working") only has something to pick up if the source changes after the full load. One call updates
``n`` rows (new ``modifiedOn``), creates new customers with a site, a contact, a job and an appointment,
soft-deletes a few rows (``active:false``, §1.2 "a deletion shows up as active:false") and merges one
customer into another (``mergedToId``, §1.7), all in one transaction. Every touched row takes a new store
version and a ``modifiedOn`` later than anything before it, so an export walk resumed from the last
``continueFrom`` yields exactly these rows (§7 "a delta run should contain updated rows, new rows,
soft-deleted rows").

Choices are drawn from ``Random(f"{seed}:{call number}")``: deterministic per call, different per call.
Rows are picked with ``LIMIT 1 OFFSET k`` so no table is loaded into memory.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from . import fakes as F
from .catalog import ENTITIES
from .store import Store, parse_ts

UPDATABLE = ("customers", "locations", "jobs", "appointments", "invoices", "customer-contacts", "technicians")
NEXT_JOB_STATUS = {"Scheduled": "Dispatched", "Dispatched": "InProgress", "InProgress": "Completed",
                   "Hold": "InProgress", "Completed": "Completed", "Canceled": "Canceled"}
NEXT_APPT_STATUS = {"Scheduled": "Dispatched", "Dispatched": "Working", "Working": "Done", "Hold": "Working"}


class Mutator:
    def __init__(self, store: Store, rng: random.Random):
        self.store = store
        self.rng = rng
        latest = store.max_modified()
        now = datetime.now(UTC)
        self.clock = max(now, parse_ts(latest) + timedelta(milliseconds=1)) if latest else now
        self.report: dict[str, Any] = {"updated": defaultdict(list), "created": defaultdict(list),
                                       "deactivated": defaultdict(list), "merged": []}
        self.touched: set[tuple[str, int]] = set()

    def stamp(self) -> str:
        self.clock += timedelta(milliseconds=1)
        return F.iso(self.clock, self.rng)

    def pick(self, entity: str) -> dict[str, Any] | None:
        """A random active row not yet touched by this call (a few tries, then give up)."""
        total = self.store.count(entity, active_only=True)
        for _ in range(8):
            if not total:
                return None
            hit = self.store.query("SELECT data FROM rows WHERE entity=? AND active=1 ORDER BY id LIMIT 1 OFFSET ?",
                                   [entity, self.rng.randrange(total)])
            row = json.loads(hit[0][0])
            if (entity, row["id"]) not in self.touched:
                return row
        return None

    def save(self, entity: str, row: dict[str, Any], category: str) -> None:
        if "modifiedOn" in row or entity in ("customers", "locations", "jobs"):
            row["modifiedOn"] = self.stamp()
        self.store.put_many(ENTITIES[entity], [row])
        self.touched.add((entity, row["id"]))
        self.report[category][entity].append(row["id"])

    def update(self, entity: str) -> None:
        row = self.pick(entity)
        if row is None:
            return
        if entity == "customers":
            row["doNotMail"] = not row.get("doNotMail")
            row["balance"] = round(float(row.get("balance") or 0) + 42.5, 2)
        elif entity == "locations":
            row["address"]["unit"] = f"Suite {self.rng.randint(100, 999)}"
        elif entity == "jobs":
            row["jobStatus"] = NEXT_JOB_STATUS[row["jobStatus"]]
            if row["jobStatus"] == "Completed" and not row.get("completedOn"):
                row["completedOn"] = F.iso(self.clock)
            row["summary"] = (row.get("summary") or "") + "\nUpdated during cutover"
        elif entity == "appointments":
            row["status"] = NEXT_APPT_STATUS.get(row["status"], row["status"])
            row["specialInstructions"] = "Rescheduled by customer"
        elif entity == "invoices":
            row["balance"] = "0.00"
            row["syncStatus"] = "Posted"
        elif entity == "customer-contacts":
            value, digits, _ = F.phone(self.rng)
            row.update(type="MobilePhone", value=value, phoneSettings={"phoneNumber": digits, "doNotText": False})
        elif entity == "technicians":
            row["dailyGoal"] = float(row.get("dailyGoal") or 0) + 100.0
        self.save(entity, row, "updated")

    def create_customer(self) -> None:
        rng, stamp = self.rng, self.stamp()
        cid = self.store.max_id("customers") + 1
        lid = self.store.max_id("locations") + 1
        first, last = F.person(rng)
        address, _ = F.address(rng)
        employee = (self.store.sample_ids("employees", limit=1) or [None])[0]
        base = {"createdOn": stamp, "modifiedOn": stamp}
        customer = {"id": cid, "active": True, "name": f"{first} {last}", "type": "Residential", "address": address,
                    "customFields": [], "balance": 0.0, "tagTypeIds": [], "doNotMail": False, "doNotService": False,
                    "createdById": employee, "mergedToId": None, "externalData": [], **base}
        location = {"id": lid, "customerId": cid, "active": True, "name": f"{first} {last}", "address": address,
                    "customFields": [], "createdById": employee, "mergedToId": None, "taxZoneId": None,
                    "zoneId": None, "tagTypeIds": [], **base}
        mail, _ = F.email(rng, first, last)
        contact = {"id": self.store.max_id("customer-contacts") + 1, "type": "Email", "value": mail, "memo": None,
                   "phoneSettings": None, "customerId": cid, "createdById": employee, "active": True, **base}
        self.save("customers", customer, "created")
        self.save("locations", location, "created")
        self.save("customer-contacts", contact, "created")
        self.create_job(cid, lid, employee)

    def create_job(self, cid: int, lid: int, employee: int | None) -> None:
        jid, aid = self.store.max_id("jobs") + 1, self.store.max_id("appointments") + 1
        template = self.pick("jobs") or {}
        stamp = self.stamp()
        start = self.clock + timedelta(days=2)
        job = {**template, "id": jid, "jobNumber": str(jid - 1000001 + 20417), "customerId": cid, "locationId": lid,
               "jobStatus": "Scheduled", "completedOn": None, "priority": "Normal", "summary": "Booked during cutover",
               "appointmentCount": 1, "firstAppointmentId": aid, "lastAppointmentId": aid, "recallForId": None,
               "createdOn": stamp, "createdById": employee, "tagTypeIds": [], "active": True}
        appt = {"id": aid, "jobId": jid, "appointmentNumber": f"{job['jobNumber']}-1", "start": F.iso(start),
                "end": F.iso(start + timedelta(hours=2)), "arrivalWindowStart": F.iso(start),
                "arrivalWindowEnd": F.iso(start + timedelta(hours=4)), "status": "Scheduled",
                "specialInstructions": None, "createdOn": stamp, "customerId": cid, "active": True,
                "unused": False, "modifiedOn": stamp}
        self.save("jobs", job, "created")
        self.save("appointments", appt, "created")

    def deactivate(self, entity: str) -> None:
        row = self.pick(entity)
        if row is not None:
            row["active"] = False
            self.save(entity, row, "deactivated")

    def merge(self) -> None:
        loser, winner = self.pick("customers"), None
        if loser is not None:
            self.touched.add(("customers", loser["id"]))
            winner = self.pick("customers")
        if loser is None or winner is None:
            return
        loser.update(active=False, mergedToId=winner["id"])
        self.save("customers", loser, "deactivated")
        self.report["merged"].append({"entity": "customers", "id": loser["id"], "mergedToId": winner["id"]})

    def run(self, n: int) -> dict[str, Any]:
        for k in range(n):
            self.update(UPDATABLE[k % len(UPDATABLE)])
        for _ in range(max(1, n // 5)):
            self.create_customer()
        for entity in ("customers", "customers", "customer-contacts", "jobs", "locations")[: max(1, n // 4)]:
            self.deactivate(entity)
        self.merge()
        out = {key: {e: sorted(ids) for e, ids in value.items()} if isinstance(value, dict) else value
               for key, value in self.report.items()}
        out["changed"] = {e: sorted({i for cat in ("updated", "created", "deactivated")
                                     for i in out[cat].get(e, [])}) for e in sorted({e for e, _ in self.touched})}
        return out

