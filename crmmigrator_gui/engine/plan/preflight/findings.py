"""Findings: one problem, on one record (or one object, or the project), in the CLI contract's shape.

Codes are stable UPPER_SNAKE names: scripts, the GUI and the tests key on them, so a code is never renamed.
``blocking`` findings stop the load (exit 3): the load would refuse, or records would fail at the
destination. ``warning`` findings load, but not as the data says (a record skipped, a lookup left empty, a
value that is probably wrong). ``info`` findings are facts worth seeing (the estimate, what the sandbox
provisions).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

SEVERITY_ORDER = {"blocking": 0, "warning": 1, "info": 2}

CODES: dict[str, str] = {
    "NOTHING_STAGED": "nothing is imported or extracted yet",
    "MAP_UNCONFIRMED": "the map has unconfirmed rows",
    "SCHEMA_MISSING": "custom tables, columns or keys the map needs do not exist at the destination",
    "EDITION_TABLE_LIMIT": "more custom tables than Dynamics 365 Sales Professional allows",
    "AUDIT_FIELDS_OFF": "Salesforce will not take original created dates",
    "UNMATCHED_OWNER": "a technician / field worker has no active user with the same e-mail",
    "FALLBACK_OWNER_UNKNOWN": "the configured fallback owner is not an active user",
    "MISSING_OBJECT": "records point at an object that was not imported",
    "MISSING_REFERENCE": "a fixed record the map points at (unit, price list …) is not at the destination",
    "REQUIRED_MISSING": "a column the destination requires is empty",
    "TOO_LONG": "a value is longer than its destination column",
    "BAD_VALUE": "a date, amount or number that cannot be converted: the record fails at load",
    "BAD_EMAIL": "an e-mail address that is not valid",
    "BAD_PHONE": "a phone number that is not valid for the region",
    "MULTIPLE_VALUES": "several e-mails or phones in one cell: only the first is kept",
    "DUPLICATE": "records that look like the same customer (normalised name, e-mail or phone)",
    "ORPHAN": "a child whose parent is not in the export: the load skips it",
    "PARENT_WILL_FAIL": "a child whose parent will fail or be skipped: the load skips it",
    "DANGLING_LOOKUP": "an optional reference to a record not in the export: the lookup is left empty",
    "UNMAPPED_VALUE": "a choice value with no mapping to a destination option",
    "ATTACHMENT_TOO_LARGE": "a file over the destination's size limit",
    "API_BUDGET": "API requests the load needs against the destination's limits",
    "TEST_RECORD": "a record that looks like test data",
    "TOTALS_MISMATCH": "totals that do not add up",
    "PLACEHOLDER_DATE": "a placeholder date (1900-01-01 and the like)",
    "MOJIBAKE": "text that was once decoded with the wrong encoding",
    "SCIENTIFIC_NOTATION": "a long number that a spreadsheet turned into 8.7557E+15",
    "EXCEL_CELL_LIMIT": "text exactly 32,767 characters long: cut by Excel",
    "MARKUP_IN_TEXT": "HTML or RTF markup in a text column that loads it as code",
    "LEADING_ZERO_LOST": "a postcode that lost its leading zero",
    "PO_BOX_SITE": "a PO box given as the address a technician visits",
    "COORDINATES_SUSPECT": "latitude/longitude at 0,0, swapped, or outside the region",
    "INCONSISTENT_SPELLING": "one state or country written several ways (QLD / Qld. / Queensland)",
    "NAME_FORMAT": "a first name holding a title or two people",
}


@dataclass
class Finding:
    severity: str  # blocking | warning | info
    code: str
    message: str
    object: str | None = None
    field: str | None = None
    source_id: str | None = None
    detail: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "blocking": self.severity == "blocking",
            "code": self.code,
            "object": self.object,
            "field": self.field,
            "source_id": self.source_id,
            "message": self.message,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


class Findings:
    """The findings of one pre-flight, each (code, object, field, source id) reported once.

    The same bad cell can surface through two parts (a customer's e-mail goes to the account and to the
    contact); the consultant must see it once.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str | None, str | None, str | None], Finding] = {}

    def add(self, finding: Finding) -> None:
        if finding.code not in CODES:
            raise ValueError(f"unknown pre-flight code {finding.code}")
        key = (finding.code, finding.object, finding.field, finding.source_id)
        held = self._items.get(key)
        if held is None or SEVERITY_ORDER[finding.severity] < SEVERITY_ORDER[held.severity]:
            self._items[key] = finding

    def extend(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.add(finding)

    def __len__(self) -> int:
        return len(self._items)

    def sorted(self) -> list[Finding]:
        return sorted(self._items.values(), key=lambda f: SEVERITY_ORDER[f.severity])

    def summary(self) -> dict[str, dict[str, int]]:
        """Per code: how many findings, and of which severity."""
        out: dict[str, Counter[str]] = {}
        for finding in self._items.values():
            out.setdefault(finding.code, Counter())[finding.severity] += 1
        return {code: {"count": sum(c.values()), **dict(c)} for code, c in sorted(out.items())}
