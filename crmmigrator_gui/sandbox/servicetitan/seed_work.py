"""Deterministic tenant generator, part 2: the work graph (jobs → appointments → assignments, history,
notes, estimates, invoices with items, payments, form submissions and job attachments).

Statuses and priorities use the real ServiceTitan values (§1.5/§1.6: ``Scheduled/InProgress/Hold/
Completed/Canceled`` plus ``Dispatched``; ``Low/Normal/High/Urgent``), never the planning documents'
"In Progress/Cancelled/eight priorities". Money is a string on accounting rows and a number on sales rows
(§1.7), and a few invoices deliberately do not add up (§6.10).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from . import fakes as F
from .seed import Ctx, notes, stamps

JOB_STATUS = [("Completed", 60), ("Scheduled", 14), ("Canceled", 9), ("InProgress", 5), ("Hold", 5),
              ("Dispatched", 7)]
PRIORITY = [("Normal", 70), ("High", 15), ("Low", 10), ("Urgent", 5)]
APPT_STATUS = {"Completed": "Done", "Scheduled": "Scheduled", "Canceled": "Canceled", "InProgress": "Working",
               "Hold": "Hold", "Dispatched": "Dispatched"}
ASSIGN_STATUS = {"Done": "Done", "Scheduled": "Scheduled", "Canceled": "Scheduled", "Working": "Working",
                 "Hold": "Scheduled", "Dispatched": "Dispatched"}
EVENTS = {"Scheduled": ["Job Booked", "Appointment Scheduled"],
          "Dispatched": ["Job Booked", "Appointment Scheduled", "Technician Dispatched"],
          "InProgress": ["Job Booked", "Technician Dispatched", "Technician Arrived"],
          "Hold": ["Job Booked", "Technician Arrived", "Job Put On Hold"],
          "Completed": ["Job Booked", "Technician Dispatched", "Technician Arrived", "Job Completed"],
          "Canceled": ["Job Booked", "Job Canceled"]}
SUMMARIES = ["AC not cooling, check refrigerant.", "<p>Water heater leaking.</p><p>Customer: &quot;urgent&quot;</p>",
             "Annual tune-up\r\nMember pricing applies", "Install new panel – permit required",
             "Drain backing up in kitchen sink", None, "Furnace making noise 🔊"]
TAX = Decimal("0.0825")
CENT = Decimal("0.01")


def weighted(ctx: Ctx, table: list[tuple[str, int]]) -> str:
    return ctx.rng.choices([v for v, _ in table], [w for _, w in table])[0]


def fmt(moment: datetime) -> str:
    return F.iso(moment)


def work(ctx: Ctx) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rng = ctx.rng
    emps = ctx.refs["employees"]
    techs = ctx.refs["technicians"]
    bus = ctx.refs["business-units"]
    customers = {c[0]: c for c in ctx.refs["customers"]}
    bu_names = dict(zip(bus, ["HVAC Service", "Plumbing", "Electrical", "Commercial HVAC", "Install & Replace"],
                        strict=False))
    jobs, appts, assigns, history, jnotes, ests, est_items = [], [], [], [], [], [], []
    invoices, inv_items, payments, subs, atts = [], [], [], [], []
    for i in range(ctx.records):
        jid = ctx.new_id("jobs")
        loc_id, cust_id, _, loc_addr = rng.choice(ctx.refs["locations"])
        status = weighted(ctx, JOB_STATUS)
        created_s, _, created = stamps(ctx, 0.02, 1.0, 0.0)
        n_appt = rng.choice([1, 1, 1, 2, 2, 3])
        start = created + timedelta(days=rng.randint(0, 10), hours=rng.randint(0, 8))
        job_appts = []
        for k in range(n_appt):
            aid = ctx.new_id("appointments")
            a_start = start + timedelta(days=3 * k)
            a_status = APPT_STATUS[status] if k == n_appt - 1 or status in ("Canceled", "Scheduled") else "Done"
            job_appts.append(aid)
            appts.append({"id": aid, "jobId": jid, "appointmentNumber": f"{20417 + i}-{k + 1}",
                          "start": fmt(a_start), "end": fmt(a_start + timedelta(hours=2)),
                          "arrivalWindowStart": fmt(a_start), "arrivalWindowEnd": fmt(a_start + timedelta(hours=4)),
                          "status": a_status,
                          "specialInstructions": rng.choice([None, None, "Call 30 min ahead", "<b>Dog</b> in yard"]),
                          "createdOn": created_s, "modifiedOn": fmt(a_start + timedelta(hours=3)),
                          "customerId": cust_id, "active": True, "unused": False})
            if a_status == "Canceled" and rng.random() < 0.5:
                continue
            for tech_id, tech_name, tech_active in rng.sample(techs, rng.choice([1, 1, 2])):
                sid = ctx.new_id("appointment-assignments")
                if not tech_active:
                    ctx.traps.add("appointment-assignments", sid, "technicianId", "inactive_technician")
                assigned = a_start - timedelta(days=1)
                assigns.append({"id": sid, "technicianId": tech_id, "technicianName": tech_name,
                                "assignedById": rng.choice(emps), "assignedOn": fmt(assigned),
                                "status": ASSIGN_STATUS[a_status], "isPaused": a_status == "Hold", "jobId": jid,
                                "appointmentId": aid, "active": True, "createdOn": fmt(assigned),
                                "modifiedOn": fmt(a_start + timedelta(hours=3))})
        last_end = start + timedelta(days=3 * (n_appt - 1), hours=3)
        modified = F.iso(last_end + timedelta(minutes=rng.randint(1, 600)), rng)
        for e, event in enumerate(EVENTS[status]):
            hid = ctx.new_id("job-history")
            when = created if e == 0 else start + timedelta(hours=e)
            history.append({"id": hid, "employeeId": rng.choice(emps), "eventType": event, "date": fmt(when),
                            "usedSchedulingTool": rng.choice([None, "DispatchPro", "Manual"]) if e else None,
                            "jobId": jid, "active": True, "modifiedOn": fmt(when)})
        summary = rng.choice(SUMMARIES)
        if summary and "<" in summary:
            ctx.traps.add("jobs", jid, "summary", "html_in_text")
        bu = rng.choice(bus)
        job_type = rng.choice(ctx.refs["job-types"])
        jobs.append({
            "id": jid, "jobNumber": str(20417 + i), "customerId": cust_id, "locationId": loc_id,
            "jobStatus": status, "completedOn": fmt(last_end) if status == "Completed" else None,
            "businessUnitId": bu, "jobTypeId": job_type, "priority": weighted(ctx, PRIORITY),
            "campaignId": rng.choice(ctx.refs["campaigns"]), "summary": summary,
            "customFields": [{"typeId": 701, "name": "Equipment Model", "value": rng.choice([None, "XR16", "TUH1"])},
                             {"typeId": 702, "name": "Refrigerant Type", "value": rng.choice([None, "R-410A", "R-22"])},
                             {"typeId": 703, "name": "Permit Number", "value": rng.choice([None, f"P-{i:05d}"])}],
            "appointmentCount": n_appt, "firstAppointmentId": job_appts[0], "lastAppointmentId": job_appts[-1],
            "recallForId": jid - rng.randint(1, 50) if i > 60 and rng.random() < 0.03 else None,
            "warrantyId": None, "jobGeneratedLeadSource": None if rng.random() < 0.9 else
            {"jobId": jid - 1, "employeeId": rng.choice(emps)}, "noCharge": rng.random() < 0.03,
            "notificationsEnabled": rng.random() < 0.8, "createdOn": created_s, "createdById": rng.choice(emps),
            "modifiedOn": modified, "tagTypeIds": rng.sample(ctx.refs["tag-types"], rng.choice([0, 0, 1])),
            "leadCallId": None, "bookingId": None, "soldById": None, "externalData": [], "projectId": None,
            "customerPo": rng.choice([None, None, f"PO-{rng.randint(1000, 9999)}"]), "active": True,
        })
        jnotes += notes(ctx, "job-notes", "_jobId", jid, rng.choice([0, 0, 1, 1, 2]))
        if rng.random() < 0.35:
            ests.append(_estimate(ctx, jid, str(20417 + i), cust_id, loc_id, created, est_items))
        cust = customers[cust_id]
        if rng.random() < 0.8:
            inv = _invoice(ctx, jobs[-1], cust, loc_addr, (bu, bu_names.get(bu, "")), last_end, inv_items)
            invoices.append(inv)
            paid = _payments(ctx, inv, cust, (bu, bu_names.get(bu, "")), last_end, payments)
            inv["balance"] = F.money(Decimal(inv["total"]) - paid)
        if rng.random() < 0.25:
            sid = ctx.new_id("form-submissions")
            form = rng.choice([(7000001, "Job Safety Checklist"), (7000002, "Customer Sign-off"),
                               (7000003, "Equipment Survey")])
            subs.append({"id": sid, "formId": form[0], "formName": form[1], "submittedOn": fmt(last_end),
                         "createdById": rng.choice(emps), "status": "Completed", "owners": [{"type": "Job", "id": jid}],
                         "units": [{"name": "Technician Signature", "type": "Signature", "value": None},
                                   {"name": "Notes", "type": "Text", "value": rng.choice(SUMMARIES)}],
                         "modifiedOn": fmt(last_end)})
        if rng.random() < 0.3:
            for _ in range(rng.choice([1, 1, 2])):
                atts.append(attachment(ctx, jid, last_end))
    forms = [{"id": fid, "name": name, "published": True, "active": fid != 7000003, "hasConditionalLogic": False,
              "hasTriggers": False, "modifiedOn": F.iso(F.EPOCH + timedelta(days=3)), "createdById": emps[0]}
             for fid, name in ((7000001, "Job Safety Checklist"), (7000002, "Customer Sign-off"),
                               (7000003, "Equipment Survey"))]
    yield from (("jobs", jobs), ("appointments", appts), ("appointment-assignments", assigns),
                ("job-history", history), ("job-notes", jnotes), ("estimates", ests), ("estimate-items", est_items),
                ("invoices", invoices), ("invoice-items", inv_items), ("payments", payments), ("forms", forms),
                ("form-submissions", subs), ("job-attachments", atts))


def attachment(ctx: Ctx, jid: int, when: datetime) -> dict[str, Any]:
    """Attachment metadata; the bytes are derived from the id on download (:func:`attachment_bytes`)."""
    rng = ctx.rng
    aid = ctx.new_id("job-attachments")
    name, ctype = rng.choice([("photo_before.png", "image/png"), ("photo_after.png", "image/png"),
                              ("signature.png", "image/png"), ("Permit #12 – final.pdf", "application/pdf"),
                              ("invoice scan.pdf", "application/pdf")])
    return {"id": aid, "jobId": jid, "fileName": name, "contentType": ctype,
            "size": len(attachment_bytes(aid, ctype)), "createdOn": fmt(when), "createdById": rng.choice(
            ctx.refs["employees"]), "modifiedOn": fmt(when), "active": True}


def attachment_bytes(aid: int, content_type: str) -> bytes:
    head = F.PNG_BYTES if content_type == "image/png" else F.PDF_BYTES
    return head + bytes((aid * 31 + k) % 256 for k in range(64 + aid % 97))


def _estimate(ctx: Ctx, jid: int, number: str, cust: int, loc: int, created: datetime, items: list) -> dict:
    rng = ctx.rng
    eid = ctx.new_id("estimates")
    status = rng.choice([(0, "Open"), (1, "Sold"), (1, "Sold"), (2, "Dismissed")])
    mod = F.iso(created + timedelta(days=rng.randint(0, 20)), rng)
    lines = []
    for _ in range(rng.randint(1, 4)):
        kind, pool = rng.choice([("Service", "pricebook-services"), ("Material", "pricebook-materials"),
                                 ("Equipment", "pricebook-equipment")])
        sku_id, sku_name, price = rng.choice(ctx.refs[pool])
        qty = float(rng.choice([1, 1, 2, 3, 0.5]))
        line = {"id": ctx.new_id("estimate-items"), "sku": {"id": sku_id, "name": sku_name, "displayName": sku_name,
                "type": kind, "soldHours": 1.0 if kind == "Service" else 0.0, "generalLedgerAccountId": 4000},
                "skuAccount": "4000", "description": f"<p>{sku_name}</p>", "qty": qty, "unitRate": price,
                "total": round(qty * price, 2), "itemGroupName": None, "itemGroupRootId": None, "modifiedOn": mod}
        lines.append(line)
        items.append({**line, "estimateId": eid, "createdOn": mod})
    return {"id": eid, "jobId": jid, "projectId": None, "name": rng.choice(["Good", "Better", "Best", None]),
            "jobNumber": number, "status": {"value": status[0], "name": status[1]},
            "summary": rng.choice(SUMMARIES), "soldOn": mod if status[1] == "Sold" else None,
            "soldBy": rng.choice(ctx.refs["employees"]) if status[1] == "Sold" else None, "active": True,
            "createdOn": F.iso(created), "modifiedOn": mod, "items": lines, "externalLinks": [],
            "customerId": cust, "locationId": loc}


def _invoice(ctx: Ctx, job: dict, cust: tuple, loc_addr: dict, bu: tuple, when: datetime, out: list) -> dict:
    rng = ctx.rng
    inv_id = ctx.new_id("invoices")
    mod = F.iso(when + timedelta(hours=rng.randint(1, 72)), rng)
    items, sub, taxable = [], Decimal(0), Decimal(0)
    for order in range(rng.randint(1, 6)):
        kind, pool = rng.choice([("Service", "pricebook-services"), ("Material", "pricebook-materials"),
                                 ("Material", "pricebook-materials"), ("Equipment", "pricebook-equipment"),
                                 ("PriceModifier", None)])
        qty = Decimal(rng.choice(["1", "1", "2", "3", "0.5"]))
        if pool:
            sku_id, name, price_f = rng.choice(ctx.refs[pool])
            price = Decimal(str(price_f))
        else:
            sku_id, name, price, qty = 99001, "Member Discount", Decimal("-15.00"), Decimal(1)
        total = (qty * price).quantize(CENT)
        cost = (price * Decimal("0.4")).quantize(CENT)
        sub += total
        taxable += total if kind == "Material" else 0
        item = {"id": ctx.new_id("invoice-items"), "invoiceId": inv_id, "description": f"{name}",
                "quantity": F.money(qty), "cost": F.money(cost), "totalCost": F.money(cost * qty),
                "price": F.money(price), "total": F.money(total), "type": kind, "skuId": sku_id, "skuName": name,
                "displayName": name, "inventory": kind == "Material", "taxable": kind == "Material",
                "soldHours": 1.0 if kind == "Service" else None, "serviceDate": fmt(when), "order": order + 1,
                "generalLedgerAccount": {"id": 4000, "name": "Service Income", "number": "4000", "type": "Income",
                                         "detailType": "Service/Fee Income"},
                "itemGroup": None, "membershipTypeId": None, "modifiedOn": mod, "active": True,
                "isChargeable": True}
        items.append(item)
    out.extend(items)
    tax = (taxable * TAX).quantize(CENT)
    total = sub + tax
    if rng.random() < 0.02:  # §6.10: totals that do not equal the sum of their lines
        total += Decimal("10.00")
        ctx.traps.add("invoices", inv_id, "total", "total_mismatch")
    cust_addr = {k: v for k, v in cust[2].items() if k not in ("latitude", "longitude")}
    loc_address = {k: v for k, v in loc_addr.items() if k not in ("latitude", "longitude")}
    return {
        "id": inv_id, "syncStatus": rng.choice(["Pending", "Posted", "Exported"]), "summary": job["summary"],
        "referenceNumber": job["jobNumber"], "invoiceDate": fmt(when), "dueDate": fmt(when + timedelta(days=30)),
        "subTotal": F.money(sub), "salesTax": F.money(tax), "total": F.money(total), "balance": F.money(total),
        "salesTaxCode": {"id": 71, "name": "AZ State", "taxRate": float(TAX)} if taxable else None,
        "customer": {"id": cust[0], "name": cust[1]}, "customerAddress": cust_addr, "locationAddress": loc_address,
        "businessUnit": {"id": bu[0], "name": bu[1]}, "termName": "Due Upon Receipt", "createdBy": "system",
        "batch": {"id": 880 + when.month, "number": str(when.month), "name": f"Batch {when:%Y-%m}"}
        if rng.random() < 0.6 else None, "modifiedOn": mod, "adjustmentToId": None,
        "job": {"id": job["id"], "number": job["jobNumber"], "type": str(job["jobTypeId"])}, "projectId": None,
        "royalty": {"status": "Pending", "date": None, "sentOn": None, "memo": None},
        "employeeInfo": {"id": ctx.rng.choice(ctx.refs["employees"]), "name": None, "modifiedOn": mod},
        "items": items, "customFields": [],
        "location": {"id": job["locationId"], "name": None}, "invoiceType": "Standard", "depositedOn": None,
        "createdOn": fmt(when), "active": True, "sentStatus": rng.choice(["NotSent", "Sent", "Opened"]),
        "reviewStatus": rng.choice(["NeedsReview", "OnHold", "Reviewed"]), "assignedTo": None,
    }


def _payments(ctx: Ctx, inv: dict, cust: tuple, bu: tuple, when: datetime, out: list) -> Decimal:
    """Zero to two payments against an invoice; returns the amount applied."""
    rng = ctx.rng
    total = Decimal(inv["total"])
    if total <= 0 or rng.random() < 0.3:
        return Decimal(0)
    parts = [total] if rng.random() < 0.8 else [(total / 2).quantize(CENT), total - (total / 2).quantize(CENT)]
    if rng.random() < 0.3:
        parts = parts[:1] if len(parts) > 1 else [(total * Decimal("0.5")).quantize(CENT)]
    applied = Decimal(0)
    for k, amount in enumerate(parts):
        pid = ctx.new_id("payments")
        paid_on = when + timedelta(days=rng.randint(0, 40) + k * 14)
        kind = rng.choice([(61, "Credit Card"), (62, "Check"), (63, "Cash"), (64, "ACH/EFT")])
        over = Decimal("5.00") if rng.random() < 0.03 else Decimal(0)
        applied += amount
        stamp = F.iso(paid_on, rng)
        out.append({
            "id": pid, "syncStatus": rng.choice(["Pending", "Posted", "Exported"]),
            "referenceNumber": f"R{pid % 100000}", "date": fmt(paid_on), "type": kind[1], "typeId": str(kind[0]),
            "total": F.money(amount + over), "unappliedAmount": F.money(over), "memo": None,
            "customer": {"id": cust[0], "name": cust[1]}, "batch": None, "createdBy": "system",
            "generalLedgerAccount": {"id": 1200, "name": "Undeposited Funds", "number": "1200", "type": "Asset",
                                     "detailType": "Cash"},
            "appliedTo": [{"appliedId": pid * 10 + 1, "appliedTo": inv["id"], "appliedAmount": F.money(amount),
                           "appliedOn": fmt(paid_on), "appliedBy": "system"}],
            "customFields": [], "authCode": f"{rng.randint(100000, 999999)}" if kind[0] == 61 else None,
            "checkNumber": str(rng.randint(1000, 9999)) if kind[0] == 62 else None,
            "businessUnit": {"id": bu[0], "name": bu[1]}, "createdOn": stamp, "modifiedOn": stamp, "active": True,
        })
    return applied
