"""Org bootstrap and the ServiceTracker seed (item 4; reference source-platforms §3).

``base_org`` creates what every org has: the integration user, the standard price book, the admin
profile's owned permission set (a FieldPermissions parent). ``servicetracker`` adds ServiceTracker's
schema from ``servicetracker.json`` (custom objects/fields as a managed package would, already granted
FLS) and generates rows with a seeded RNG so every run produces the same org: clients, contacts,
technicians, sites, assets, contracts, parts, work orders and lines, inspections, files, ~5 % of rows in the
recycle bin, and CreatedDate/LastModifiedDate/SystemModstamp spread over two years before a fixed anchor.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ids, tooling
from . import values as V

if TYPE_CHECKING:
    from .app import SalesforceSandbox

ANCHOR = datetime(2025, 12, 31, 18, 0, tzinfo=UTC)
_HERE = Path(__file__).parent
FIRST = [
    "Alex",
    "Jordan",
    "Sam",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Dana",
    "Lee",
    "Chris",
    "Pat",
    "Robin",
    "Drew",
    "Maria",
    "José",
    "Zoë",
    "Siobhán",
    "Chen",
    "Priya",
    "Olu",
    "Anh",
]
LAST = [
    "Smith",
    "Garcia",
    "Nguyen",
    "O'Brien",
    "Müller",
    "Johnson",
    "Patel",
    "Kim",
    "Brown",
    "Davis",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Moore",
    "Martin",
    "Jackson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Young",
]
STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lakeview Blvd", "Industrial Pkwy"]
CITIES = [
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Columbus", "OH", "43215"),
    ("Tampa", "FL", "33602"),
    ("Portland", "OR", "97201"),
    ("Raleigh", "NC", "27601"),
    ("Phoenix", "AZ", "85004"),
    ("Boise", "ID", "83702"),
]
SUFFIX = ["Plumbing", "HVAC", "Property Management", "Dental Group", "Restaurants", "Schools", "Holdings", "Clinic"]
ISSUES = [
    "No heat",
    "Leaking valve",
    "Annual PM visit",
    "Compressor noise",
    "Thermostat replacement",
    "Filter change",
    "Boiler inspection",
    "Water heater install",
    "Drain blockage",
    "Refrigerant recharge",
]


def _email(first: str, last: str, n: int) -> str:
    local = f"{first}.{last}".lower().replace("'", "").encode("ascii", "ignore").decode()
    return f"{local}{n}@example.com"


class Seeder:
    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb
        self.cat = sb.catalog

    def _put(self, obj_name: str, values: dict[str, Any], system: dict[str, Any] | None = None) -> str:
        obj = self.cat.objects[obj_name]
        return self.sb.records.insert_values(obj, dict(values), system)

    # -- base org -----------------------------------------------------------------------------------------------

    def base_org(self) -> None:
        sb = self.sb
        with sb.store.transaction():
            sb.org_id = f"00D5g0000{sb.store.next_counter():06d}"[:15]
            sb.org_id += ids.checksum(sb.org_id)
            sb.store.set_value("org_id", sb.org_id)
            sb.admin_id = self._user_row("Integration User", "integration@crmmigrator.sandbox", True, admin=True)
            sb.store.set_value("admin_id", sb.admin_id)
            # The integration user owns itself.
            user_obj = self.cat.objects["User"]
            row = sb.store.get(user_obj, sb.admin_id)
            if row:
                row[0].update(CreatedById=sb.admin_id, LastModifiedById=sb.admin_id, OwnerId=None)
                sb.store.update(user_obj, sb.admin_id, row[0])
            self._put("Pricebook2", {"Name": "Standard Price Book", "IsActive": True}, {"IsStandard": True})
            ps = self._put(
                "PermissionSet",
                {"Name": "X00ex000000018ozh_128_09_04_12_1", "Label": "System Administrator"},
                {"IsOwnedByProfile": True, "ProfileId": "00e5g000000AdminAAA"},
            )
            sb.permset_id = ps
            sb.store.set_value("permset_id", ps)

    def _user_row(self, name: str, email: str, active: bool, admin: bool = False) -> str:
        first, _, last = name.strip().rpartition(" ")
        alias = (first[:1] + last[:7]).lower() or "user"
        values = {
            "Username": email if admin else f"{email}.sandbox",
            "FirstName": first or None,
            "LastName": last or name,
            "Email": email,
            "Alias": alias[:8],
            "IsActive": active,
            "TimeZoneSidKey": "America/Los_Angeles",
            "LocaleSidKey": "en_US",
            "EmailEncodingKey": "UTF-8",
            "LanguageLocaleKey": "en_US",
            "ProfileId": "00e5g000000AdminAAA",
            "CommunityNickname": alias,
        }
        return self._put("User", values)

    def user(self, name: str, email: str, *, active: bool = True) -> str:
        obj = self.cat.objects["User"]
        with self.sb.store.transaction():
            for rid, row in self.sb.store.find(obj, obj.fields["Email"], email, limit=1):
                first, _, last = name.strip().rpartition(" ")
                row.update(FirstName=first or None, LastName=last or name, IsActive=active, SystemModstamp=V.now())
                self.sb.records._derive(obj, row)
                self.sb.store.update(obj, rid, row)
                return rid
            return self._user_row(name, email, active)

    # -- ServiceTracker ---------------------------------------------------------------------------------------

    def servicetracker(self, spec: str) -> dict[str, int]:
        name, _, count = spec.partition(":")
        if name.strip().lower() != "servicetracker":
            raise ValueError(f"unknown seed {spec!r} (use 'servicetracker' or 'servicetracker:N')")
        n = max(10, int(count)) if count.strip() else 120
        schema = json.loads((_HERE / "servicetracker.json").read_text(encoding="utf-8"))
        with self.sb.store.transaction():
            tooling.apply_package(self.sb, schema)
            return _Generator(self, n).run()


class _Generator:
    def __init__(self, seeder: Seeder, n: int):
        self.s = seeder
        self.n = n
        self.rng = random.Random(20251231)
        self.counts: dict[str, int] = {}
        self.ids: dict[str, list[str]] = {}

    def stamps(self) -> dict[str, Any]:
        created = ANCHOR - timedelta(days=self.rng.uniform(30, 730), seconds=self.rng.randint(0, 86399))
        modified = created + timedelta(days=self.rng.uniform(0, (ANCHOR - created).days or 1))
        modstamp = modified + timedelta(minutes=self.rng.choice([0, 0, 0, 1, 5, 90]))
        return {
            "CreatedDate": V.fmt_datetime(created),
            "LastModifiedDate": V.fmt_datetime(modified),
            "SystemModstamp": V.fmt_datetime(min(modstamp, ANCHOR)),
        }

    def put(self, obj: str, values: dict[str, Any]) -> str:
        rid = self.s._put(obj, {k: v for k, v in values.items() if v is not None}, self.stamps())
        self.counts[obj] = self.counts.get(obj, 0) + 1
        self.ids.setdefault(obj, []).append(rid)
        return rid

    def pick(self, obj: str) -> str:
        return self.rng.choice(self.ids[obj])

    def person(self) -> tuple[str, str]:
        return self.rng.choice(FIRST), self.rng.choice(LAST)

    def run(self) -> dict[str, int]:
        r, n = self.rng, self.n
        techs = []
        for i in range(max(5, n // 20)):
            first, last = self.person()
            techs.append(self.s.user(f"{first} {last}", f"tech{i + 1}@servicetracker.example", active=i % 9 != 8))
        self.counts["User"] = len(techs)
        for i in range(n):
            city, state, zip_ = r.choice(CITIES)
            self.put(
                "Account",
                {
                    "Name": f"{r.choice(LAST)} {r.choice(SUFFIX)}" + (f" #{i}" if i % 7 == 0 else ""),
                    "Type": r.choice(["Customer - Direct", "Customer - Channel", "Prospect"]),
                    "BillingStreet": f"{r.randint(10, 9999)} {r.choice(STREETS)}"
                    + ("\nSuite 200" if i % 5 == 0 else ""),
                    "BillingCity": city,
                    "BillingState": state,
                    "BillingPostalCode": zip_,
                    "BillingCountry": "USA",
                    "Phone": f"({r.randint(200, 989)}) 555-{r.randint(1000, 9999)}",
                    "ST_Customer_Number__c": f"C-{10000 + i}",
                    "Billing_Terms__c": r.choice(["Net 15", "Net 30", "Due on receipt"]),
                },
            )
        for _ in range(int(n * 1.5)):
            first, last = self.person()
            self.put(
                "Contact",
                {
                    "AccountId": self.pick("Account"),
                    "FirstName": first,
                    "LastName": last,
                    "Email": _email(first, last, r.randint(1, 99)),
                    "Phone": f"({r.randint(200, 989)}) 555-{r.randint(1000, 9999)}",
                    "Title": r.choice(["Facilities Manager", "Owner", "Office Manager", None]),
                    "MobilePhone": f"+1 {r.randint(200, 989)} 555 {r.randint(1000, 9999)}"
                    if r.random() < 0.5
                    else None,
                },
            )
        for i in range(n):
            city, state, zip_ = r.choice(CITIES)
            self.put(
                "Site__c",
                {
                    "Name": f"Site {i + 1} - {city}",
                    "Account__c": self.pick("Account"),
                    "Street__c": f"{r.randint(10, 9999)} {r.choice(STREETS)}",
                    "City__c": city,
                    "State__c": state,
                    "Postal_Code__c": zip_,
                    "Latitude__c": round(r.uniform(25, 48), 6),
                    "Longitude__c": round(r.uniform(-123, -75), 6),
                    "Access_Notes__c": r.choice(["Gate code 1234", "Call on arrival", "Dog on premises", None]),
                },
            )
        for i in range(max(10, n // 3)):
            self.put(
                "Part__c",
                {
                    "Name": r.choice(["Valve", "Filter", "Compressor", "Thermostat", "Gasket", "Pump", "Fan Motor"])
                    + f" {i}",
                    "Part_Number__c": f"{r.randint(0, 99999):05d}",
                    "Qty_On_Hand__c": r.randint(0, 400),
                    "Unit_Price__c": round(r.uniform(2, 900), 2),
                    "Location__c": r.choice(["Main Warehouse", "Truck 3", "Van 7"]),
                },
            )
        for _ in range(n):
            self.put(
                "Asset__c",
                {
                    "Name": r.choice(["Rooftop Unit", "Boiler", "Water Heater", "Chiller", "Furnace"]),
                    "Account__c": self.pick("Account"),
                    "Site__c": self.pick("Site__c"),
                    "Serial_Number__c": f"SN{r.randint(10**7, 10**8 - 1)}",
                    "Install_Date__c": (ANCHOR - timedelta(days=r.randint(100, 4000))).date().isoformat(),
                },
            )
        for _ in range(max(10, n // 2)):
            start = ANCHOR - timedelta(days=r.randint(30, 700))
            self.put(
                "Contract__c",
                {
                    "Account__c": self.pick("Account"),
                    "Start_Date__c": start.date().isoformat(),
                    "End_Date__c": (start + timedelta(days=365)).date().isoformat(),
                    "Frequency__c": r.choice(["Monthly", "Quarterly", "Semi-Annual", "Annual"]),
                    "Next_Visit__c": (start + timedelta(days=r.randint(20, 120))).date().isoformat(),
                },
            )
        statuses = ["Open", "In Progress", "On Hold", "Closed Complete", "Cancelled"]
        for _ in range(int(n * 2)):
            begin = ANCHOR - timedelta(days=r.uniform(1, 700))
            status = r.choice(statuses)
            self.put(
                "Work_Order__c",
                {
                    "Account__c": self.pick("Account"),
                    "Contact__c": self.pick("Contact") if r.random() < 0.8 else None,
                    "Site__c": self.pick("Site__c"),
                    "Asset__c": self.pick("Asset__c") if r.random() < 0.6 else None,
                    "Contract__c": self.pick("Contract__c") if r.random() < 0.3 else None,
                    "Status__c": status,
                    "Priority__c": r.choice(["Low", "Medium", "High", "Critical"]),
                    "Subject__c": r.choice(ISSUES),
                    "Description__c": f"<p>{r.choice(ISSUES)} reported.</p><ul><li>Checked unit</li></ul>",
                    "Scheduled_Start__c": V.fmt_datetime(begin),
                    "Scheduled_End__c": V.fmt_datetime(begin + timedelta(hours=2)),
                    "Completed_Date__c": V.fmt_datetime(begin + timedelta(hours=3))
                    if status == "Closed Complete"
                    else None,
                    "Technician__c": r.choice(techs),
                    "Skills_Required__c": ";".join(
                        sorted(r.sample(["Electrical", "Gas", "Refrigeration", "Plumbing"], r.randint(1, 2)))
                    ),
                },
            )
        for _ in range(int(n * 3)):
            self.put(
                "Work_Order_Line__c",
                {
                    "Work_Order__c": self.pick("Work_Order__c"),
                    "Part__c": self.pick("Part__c") if r.random() < 0.7 else None,
                    "Quantity__c": r.randint(1, 6),
                    "Unit_Price__c": round(r.uniform(5, 500), 2),
                    "Line_Type__c": r.choice(["Part", "Labor", "Travel", "Fee"]),
                },
            )
        for _ in range(n):
            self.put(
                "Inspection__c",
                {
                    "Work_Order__c": self.pick("Work_Order__c"),
                    "Result__c": r.choice(["Pass", "Fail", "Needs Follow-up"]),
                    "Inspected_On__c": (ANCHOR - timedelta(days=r.randint(1, 600))).date().isoformat(),
                    "Readings__c": f"Pressure {r.randint(20, 90)} psi",
                },
            )
        for i in range(max(3, n // 20)):
            data = f"ServiceTracker attachment {i}".encode()
            self.put(
                "ContentVersion",
                {
                    "Title": f"Signature {i}",
                    "PathOnClient": f"signature_{i}.png",
                    "VersionData": base64.b64encode(data).decode(),
                    "FirstPublishLocationId": self.pick("Work_Order__c"),
                },
            )
        self._recycle()
        return self.counts

    def _recycle(self) -> None:
        """Soft-delete ~5 % of work orders, lines and contacts so queryAll has something to find."""
        recs = self.s.sb.records
        for name in ("Work_Order_Line__c", "Work_Order__c", "Contact"):
            obj = self.s.cat.objects[name]
            for rid in self.rng.sample(self.ids[name], max(1, len(self.ids[name]) // 20)):
                hit = self.s.sb.store.get(obj, rid)
                if hit and not hit[1]:
                    stamp = V.fmt_datetime(ANCHOR - timedelta(days=self.rng.uniform(0, 10)))
                    recs._delete_row(obj, hit[0], hard=False)
                    row = self.s.sb.store.get(obj, rid)
                    if row:
                        row[0].update(SystemModstamp=stamp, _DeletedDate=stamp)
                        self.s.sb.store.update(obj, rid, row[0], deleted=True)
