"""Checks across records: possible duplicate customers, and totals that do not add up.

Both index the rows as they stream past (a key per record, a running sum per parent) and report at the end,
so memory grows with the number of distinct keys, not with the records themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.plan.preflight import detectors as d
from crmmigrator_gui.engine.plan.preflight.findings import Finding, Findings

CENT = Decimal("0.01")
SUBTOTAL_ROLES = ("subtotal", "total_ex_tax", "sub_total")
PAID_ROLES = ("paid", "amount_paid")
MONEY_ROLES = ("total", *SUBTOTAL_ROLES, "tax", *PAID_ROLES, "line_total")


class Duplicates:
    """Records of one object that share a normalised name, an e-mail (any case) or a phone (E.164).

    A person's name is the key where there is one (a business name is shared by its people); two records of
    the same name whose e-mails differ are two people; a branch that names its head office in a parent column
    is not a duplicate of it.
    """

    def __init__(self, findings: Findings, region_of: Callable[[Any, str, dict[str, Any]], str]) -> None:
        self.findings = findings
        self.region_of = region_of
        self._first: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)  # (kind, value) -> first record
        self._names: dict[str, dict[str, list[tuple[str, tuple[str, ...]]]]] = defaultdict(dict)
        self._links: dict[str, dict[str, set[tuple[str, str, str]]]] = defaultdict(lambda: defaultdict(set))
        self._branches: dict[str, dict[str, str]] = defaultdict(dict)

    def add(self, obj: str, sid: str, raw: dict[str, Any], cols: Any) -> None:
        keys: list[tuple[str, str, str]] = []  # (kind, normalised value, column)
        emails = []
        for column in cols.emails:
            text = str(raw.get(column) or "").strip().lower()
            first = d.SEVERAL_EMAILS.split(text)[0] if text else ""
            if "@" in first:
                keys.append(("e-mail", first, column))
                emails.append(first)
        for column in cols.phones:
            text = str(raw.get(column) or "").strip()
            region = self.region_of(cols, column, raw)
            if text and region:
                e164, _problem = d.phone(d.SEVERAL_PHONES.split(text)[0], region)
                if e164:
                    keys.append(("phone", e164, column))
        links = self._links[obj]
        name_col, name = self._name(raw, cols)
        normal = d.normal_name(name)
        if name_col and len(normal) >= 3:
            holders = self._names[obj].setdefault(normal, [])
            for other, other_emails in holders:
                if emails and other_emails and not set(emails) & set(other_emails):
                    continue  # same name, different e-mails: two people
                links[sid].add((other, "name", name_col))
                links[other].add((sid, "name", name_col))
            if len(holders) < 50:
                holders.append((sid, tuple(emails)))
        first_of = self._first[obj]
        for kind, value, column in keys:
            first = first_of.setdefault((kind, value), sid)
            if first != sid:
                links[sid].add((first, kind, column))
                links[first].add((sid, kind, column))
        parent_col = next((c for r, c in cols.roles.items() if r.startswith("parent")), None)
        parent = str(raw.get(parent_col) or "").strip() if parent_col else ""
        if parent:
            self._branches[obj][sid] = parent

    @staticmethod
    def _name(raw: dict[str, Any], cols: Any) -> tuple[str | None, str]:
        roles = cols.roles
        if roles.get("last_name") and str(raw.get(roles["last_name"]) or "").strip():
            first_name = str(raw.get(roles.get("first_name", "")) or "")
            return roles["last_name"], f"{first_name} {raw.get(roles['last_name']) or ''}"
        column = next((roles[r] for r in ("business_name", "company_name", "name") if r in roles), None)
        return column, str(raw.get(column) or "") if column else ""

    def finish(self) -> None:
        """Every member of a group is named, with the others and what they share."""
        for obj, links in self._links.items():
            branches = self._branches.get(obj, {})
            for sid in list(links):  # a branch and its head office share a name and an e-mail on purpose
                links[sid] = {m for m in links[sid] if branches.get(sid) != m[0] and branches.get(m[0]) != sid}
                if not links[sid]:
                    del links[sid]
            for members in d.groups({sid: {m[0] for m in others} for sid, others in links.items()}):
                for sid in members:
                    matches = sorted(links[sid], key=lambda m: (d.natural(m[0]), m[1]))
                    kinds = sorted({kind for _o, kind, _c in matches})
                    others = [m for m in members if m != sid]
                    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                    self.findings.add(
                        Finding(
                            "warning",
                            "DUPLICATE",
                            f"possible duplicate of {shown} (same {', '.join(kinds)})",
                            obj,
                            matches[0][2],
                            sid,
                            {"group": members[:50], "group_size": len(members), "by": kinds},
                        )
                    )


class Totals:
    """Money that does not add up: sub-total + tax ≠ total, paid more than the total, and lines that do not sum
    to their order's sub-total (line objects found from the playbook: a ``line_total`` role and a lookup)."""

    def __init__(self, playbook: Playbook, staged: set[str], columns_of: Callable[[str], Any], findings: Findings):
        self.findings = findings
        self._sums: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self._unreadable: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._parents: dict[str, dict[str, tuple[Decimal, str]]] = defaultdict(dict)
        self._links: list[tuple[str, str, str, str]] = []  # (line object, its parent column, parent, sub-total)
        for obj in playbook.objects:
            if obj.name not in staged:
                continue
            cols = columns_of(obj.name)
            if "line_total" not in cols.money:
                continue
            for part in obj.parts:
                for lookup in part.lookups:
                    parent = playbook.part(lookup["to"]).obj
                    if lookup.get("optional") or lookup.get("through") or parent == obj.name or parent not in staged:
                        continue
                    money = columns_of(parent).money
                    sub = next((money[r] for r in SUBTOTAL_ROLES if r in money), None)
                    if sub is None and "tax" not in money:
                        sub = money.get("total")
                    by = cols.roles.get(lookup["by_role"])
                    if sub and by and (obj.name, by, parent, sub) not in self._links:
                        self._links.append((obj.name, by, parent, sub))

    @staticmethod
    def amount(cols: Any, column: str | None, raw: dict[str, Any]) -> Decimal | None:
        """The column's value read by its own transform (so ``1.234,50`` counts), or None."""
        text = raw.get(column) if column else None
        if text is None or not str(text).strip():
            return None
        try:
            value = transforms.apply(cols.transform.get(column, {"type": "money"}), text)
            return value if isinstance(value, Decimal) else transforms.parse_money(str(value))
        except transforms.TransformError:
            return None

    def on_row(self, obj: str, sid: str, raw: dict[str, Any], cols: Any) -> None:
        money = cols.money
        if not money:
            return
        total_col = money.get("total")
        total = self.amount(cols, total_col, raw)
        sub_col = next((money[r] for r in SUBTOTAL_ROLES if r in money), None)
        sub = self.amount(cols, sub_col, raw)
        tax = self.amount(cols, money.get("tax"), raw)
        if total is not None and sub is not None and tax is not None and abs(sub + tax - total) >= CENT:
            self._add(
                f"total {total} is not sub-total {sub} + tax {tax} (= {sub + tax})",
                obj,
                total_col,
                sid,
                {"total": str(total), "expected": str(sub + tax)},
            )
        paid_col = next((money[r] for r in PAID_ROLES if r in money), None)
        paid = self.amount(cols, paid_col, raw)
        if paid is not None and total is not None and total >= 0 and paid - total >= CENT:
            self._add(
                f"paid {paid} is more than the total {total}",
                obj,
                paid_col,
                sid,
                {"paid": str(paid), "total": str(total)},
            )
        for line_obj, by, parent, sub_column in self._links:
            if parent == obj and sub_column in (sub_col, total_col):
                value = self.amount(cols, sub_column, raw)
                if value is not None:
                    self._parents[parent][sid] = (value, sub_column)
            if line_obj == obj:
                parent_id = str(raw.get(by) or "").strip()
                if not parent_id:
                    continue
                line = self.amount(cols, money["line_total"], raw)
                if line is None:
                    self._unreadable[(obj, parent)].add(parent_id)  # its sum is unknown: not judged
                else:
                    self._sums[(obj, parent)][parent_id] += line

    def finish(self) -> None:
        for (line_obj, parent), sums in self._sums.items():
            unreadable = self._unreadable.get((line_obj, parent), set())
            for parent_id, (value, column) in self._parents.get(parent, {}).items():
                if parent_id in unreadable or parent_id not in sums:
                    continue
                lines = sums[parent_id]
                if abs(lines - value) >= CENT:
                    self._add(
                        f"{column} {value} is not the sum of its {line_obj} ({lines})",
                        parent,
                        column,
                        parent_id,
                        {"total": str(value), "lines": str(lines)},
                    )

    def _add(self, message: str, obj: str, field: str | None, sid: str, detail: dict[str, Any]) -> None:
        self.findings.add(Finding("warning", "TOTALS_MISMATCH", message, obj, field, sid, detail))
