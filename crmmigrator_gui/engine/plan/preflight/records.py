"""Checks on the staged data itself: values that load, but not as the customer would want.

Every staged row passes once through :meth:`RecordChecks.on_row` (during the dry run's first pass over its
object); what needs the whole column or several records is settled in :meth:`RecordChecks.finish`. What a
consultant asks before a load:

- e-mails and phones that are not valid (email-validator; phonenumbers in the record's country, else the
  playbook's default region), and cells holding several of them (only the first is kept);
- possible duplicate customers and totals that do not add up (:mod:`.related`);
- test records ("TEST CUSTOMER - DO NOT USE", "Z-…"), a title or two people in a first name;
- spreadsheet damage: postcodes that lost a leading zero, long numbers shown as 8.7557E+15, text cut at
  Excel's 32,767-character limit, mojibake (UTF-8 read as Windows-1252), placeholder dates (1900-01-01);
- a state or country spelt several ways, HTML/RTF that would load as code, coordinates at 0,0 / swapped /
  outside the region, and a PO box given as the address a technician must visit;
- the choice values in the data, counted for the value-map check.

Nothing here reads the defect manifests of the demo generators: every finding comes from the values.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

from crmmigrator_gui.engine.mapping import transforms
from crmmigrator_gui.engine.mapping.playbook import Playbook
from crmmigrator_gui.engine.plan.order import role_columns
from crmmigrator_gui.engine.plan.preflight import detectors as d
from crmmigrator_gui.engine.plan.preflight.findings import Finding, Findings
from crmmigrator_gui.engine.plan.preflight.related import MONEY_ROLES, Duplicates, Totals
from crmmigrator_gui.engine.project.store import Project

PARTY_ENTITIES = {"account", "contact", "lead"}
NUMERIC_TRANSFORMS = {"money", "decimal", "integer", "boolean", "date", "datetime", "time"}
DATAVERSE_MIN_DATE = date(1753, 1, 1)


class Columns:
    """Which source columns of one object play which part, from the stored map and the playbook roles."""

    def __init__(self, project: Project, playbook: Playbook, obj: str, roles: dict[str, str]) -> None:
        self.roles = roles
        self.transform: dict[str, dict[str, Any]] = {}
        for row in project.query(
            "SELECT source_field, transform, status, target_entity FROM field_maps WHERE source_object = ? ORDER BY id",
            (obj,),
        ):
            if row["status"] != "unmapped" and row["target_entity"]:
                self.transform.setdefault(row["source_field"], json.loads(row["transform"]))
        self.kinds = kinds = {c: str(t.get("type", "text")) for c, t in self.transform.items()}
        self.emails = [c for c, k in kinds.items() if k == "email"]
        self.phones = [c for c, k in kinds.items() if k == "phone"]
        self.dates = [c for c, k in kinds.items() if k in ("date", "datetime")]
        self.textual = [c for c, k in kinds.items() if k not in NUMERIC_TRANSFORMS]
        spec = next((o for o in playbook.objects if o.name == obj), None)
        parties = [p for p in spec.parts if p.entity.lower() in PARTY_ENTITIES] if spec else []
        self.party = bool(parties) or bool(spec and spec.match_user)
        self.postcodes = [c for r, c in roles.items() if "postcode" in r or "zip" in r]
        self.postcodes += [c for c, k in kinds.items() if k == "postcode" and c not in self.postcodes]
        self.names = [c for r, c in roles.items() if r == "name" or r.endswith("_name")]
        self.first_names = [c for r, c in roles.items() if r == "first_name"]
        self.addresses = [] if self.party else [c for r, c in roles.items() if "address" in r]  # service sites
        self.lat = next((c for r, c in roles.items() if r in ("latitude", "lat")), None)
        self.lng = next((c for r, c in roles.items() if r in ("longitude", "lng", "lon")), None)
        self.money = {role: roles[role] for role in MONEY_ROLES if role in roles}
        self.country = roles.get("country")
        self.spelled = [c for r, c in roles.items() if r in ("state", "country") or r.endswith(("_state", "_country"))]


class RecordChecks:
    """Per-row detectors for every object, and the column-wide and cross-record ones settled in :meth:`finish`.

    Args:
        choice_columns: object -> [(source column, transform)] whose destination column is a choice; their
            values are counted (``choice_counts``, with up to ten source ids each in ``choice_ids``).
    """

    def __init__(self, project: Project, playbook: Playbook, findings: Findings, *, choice_columns: Any) -> None:
        self.project = project
        self.playbook = playbook
        self.findings = findings
        self.region = str(playbook.raw.get("default_phone_region") or "").upper()
        self.dataverse = project.target == "dynamics365"
        self.choice_columns: dict[str, list[tuple[str, dict[str, Any]]]] = choice_columns
        self.choice_counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.choice_ids: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self._roles = role_columns(project)
        self._columns: dict[str, Columns] = {}
        self._postcodes: dict[tuple[str, str], dict[int, list[tuple[str, str]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._postcode_lengths: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        self._markup: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        self._text_rows: Counter[tuple[str, str]] = Counter()
        self._spellings: dict[tuple[str, str], dict[str, dict[str, list[str]]]] = defaultdict(dict)
        self.duplicates = Duplicates(findings, self.region_of)
        self.totals = Totals(playbook, set(project.source_object_names()), self.columns, findings)

    def columns(self, obj: str) -> Columns:
        if obj not in self._columns:
            self._columns[obj] = Columns(self.project, self.playbook, obj, self._roles.get(obj, {}))
        return self._columns[obj]

    def region_of(self, cols: Columns, column: str, raw: dict[str, Any]) -> str:
        """The region a phone is read in: the transform's, the record's country, else the playbook's default."""
        region = str(cols.transform.get(column, {}).get("region") or "").upper()
        if region:
            return region
        country = d.country_region(str(raw.get(cols.country) or "")) if cols.country else None
        return country or self.region

    # ------------------------------------------------------------------ one row
    def on_row(self, obj: str, sid: str, raw: dict[str, Any]) -> None:
        cols = self.columns(obj)
        self._emails(obj, sid, raw, cols)
        self._phones(obj, sid, raw, cols)
        self._mojibake(obj, sid, raw)
        self._text(obj, sid, raw, cols)
        self._names(obj, sid, raw, cols)
        self._dates(obj, sid, raw, cols)
        self._coordinates(obj, sid, raw, cols)
        self.totals.on_row(obj, sid, raw, cols)
        if cols.party:
            self.duplicates.add(obj, sid, raw, cols)
        for field, spec in self.choice_columns.get(obj, ()):
            try:
                value = transforms.apply(spec, raw.get(field))
            except transforms.TransformError:
                continue
            if value is None:
                continue
            self.choice_counts[(obj, field)][str(value)] += 1
            ids = self.choice_ids[(obj, field, str(value))]
            if len(ids) < 10:
                ids.append(sid)

    def _add(self, code: str, message: str, obj: str, field: str | None, sid: str | None, detail: Any) -> None:
        self.findings.add(Finding("warning", code, message, obj, field, sid, detail))

    def _emails(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        for column in cols.emails:
            text = str(raw.get(column) or "").strip()
            if not text or text.lower() in d.EMPTY_WORDS:
                continue
            parts = [p for p in d.SEVERAL_EMAILS.split(text) if p]
            if len(parts) > 1 and sum("@" in p for p in parts) > 1:
                message = f"{len(parts)} e-mail addresses in one cell; only {parts[0]!r} is kept"
                self._add("MULTIPLE_VALUES", message, obj, column, sid, {"values": parts})
            policy = str(cols.transform.get(column, {}).get("invalid") or "fail")
            if policy == "fail":
                continue  # the transform refuses it: the dry run reports the record as failing
            problem = d.email_problem(parts[0] if parts else text)
            if problem:
                effect = "it is left empty" if policy == "empty" else "it loads as written"
                message = f"{d.clip(text)!r} is not a valid e-mail address ({problem}); {effect}"
                self._add("BAD_EMAIL", message, obj, column, sid, {"value": d.clip(text)})

    def _phones(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        for column in cols.phones:
            text = str(raw.get(column) or "").strip()
            region = self.region_of(cols, column, raw)
            if not text or not region or text.lower() in d.EMPTY_WORDS:
                continue
            parts = [p for p in d.SEVERAL_PHONES.split(text) if p.strip()]
            if len(parts) > 1 and all(sum(ch.isdigit() for ch in p) >= 6 for p in parts):
                message = f"{len(parts)} phone numbers in one cell; only the first is kept"
                self._add("MULTIPLE_VALUES", message, obj, column, sid, {"values": parts})
                text = parts[0]
            _e164, problem = d.phone(text, region)
            if problem:
                message = (
                    f"{d.clip(text)!r} is not a valid phone number ({problem}, region {region}); it loads as given"
                )
                self._add("BAD_PHONE", message, obj, column, sid, {"value": d.clip(text)})

    def _mojibake(self, obj: str, sid: str, raw: dict[str, Any]) -> None:
        if not d.MOJIBAKE_HINT.search("\x00".join(v for v in raw.values() if isinstance(v, str))):
            return  # one search per row; the cells are looked at only when something is there
        for column, value in raw.items():
            fixed = d.fix_mojibake(value) if isinstance(value, str) and d.MOJIBAKE_HINT.search(value) else None
            if fixed:
                message = f"{d.clip(value)!r} looks mis-decoded; it probably reads {d.clip(fixed)!r}"
                self._add("MOJIBAKE", message, obj, column, sid, {"value": d.clip(value), "fixed": d.clip(fixed)})

    def _text(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        for column in cols.textual:
            value = raw.get(column)
            if not isinstance(value, str) or not value:
                continue
            if d.is_scientific(value.strip()):
                message = (
                    f"{value!r} is a long number a spreadsheet rounded to scientific notation (8.7557E+15): its last "
                    "digits are lost; take the value from the source system"
                )
                self._add("SCIENTIFIC_NOTATION", message, obj, column, sid, {"value": value})
            if len(value) == d.EXCEL_CELL_LIMIT:
                message = (
                    f"exactly {d.EXCEL_CELL_LIMIT:,} characters, Excel's cell limit: the text was probably cut when "
                    "the export went through Excel"
                )
                self._add("EXCEL_CELL_LIMIT", message, obj, column, sid, {"length": len(value)})
            self._text_rows[(obj, column)] += 1
            kind = d.markup(value) if cols.kinds.get(column) not in ("html_to_text", "rtf_to_text") else None
            if kind:
                self._markup[(obj, column)].append((sid, kind, d.clip(value, 60)))
        for column in cols.postcodes:
            value = str(raw.get(column) or "").strip()
            if value.isdigit() and len(value) <= 6:
                self._postcode_lengths[(obj, column)][len(value)] += 1
                held = self._postcodes[(obj, column)][len(value)]
                if len(held) < 5000:
                    held.append((sid, value))
        for column in cols.spelled:
            value = str(raw.get(column) or "").strip()
            if value:
                held = self._spellings[(obj, column)].setdefault(d.spelling_key(value), {}).setdefault(value, [])
                if len(held) < 2000:
                    held.append(sid)
        for column in cols.addresses:
            value = str(raw.get(column) or "")
            if value and d.PO_BOX.search(value):
                message = (
                    f"{d.clip(value)!r} is a PO box: a technician cannot visit it; ask for the site's street address"
                )
                self._add("PO_BOX_SITE", message, obj, column, sid, {"value": d.clip(value)})

    def _names(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        for column in cols.names:
            value = str(raw.get(column) or "")
            if value and d.TEST_NAME.search(value):
                message = (
                    f"{d.clip(value)!r} looks like a test record; leave it out of the migration or confirm it is real"
                )
                self._add("TEST_RECORD", message, obj, column, sid, {"value": d.clip(value)})
        for column in cols.first_names:
            value = str(raw.get(column) or "").strip()
            if value and (d.TITLE_FIRST.match(value) or d.COUPLE.search(value)):
                what = "a title" if d.TITLE_FIRST.match(value) else "two people"
                message = (
                    f"first name {d.clip(value)!r} holds {what}: split it (the name_split transform) or the contact "
                    "gets it as a first name"
                )
                self._add("NAME_FORMAT", message, obj, column, sid, {"value": d.clip(value)})

    def _dates(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        for column in cols.dates:
            text = raw.get(column)
            if not isinstance(text, str) or not d.LONG_AGO.search(text):
                continue  # only values that can hold a placeholder year are parsed
            try:
                value = transforms.apply(cols.transform[column], text)
            except transforms.TransformError:
                continue  # the dry run reports values that do not parse
            day = value.date() if isinstance(value, datetime) else value
            if not isinstance(day, date) or (day not in d.PLACEHOLDER_DAYS and day.year >= 1900):
                continue
            effect = (
                "Dataverse refuses dates before 1753, so the record fails (see BAD_VALUE); clear it"
                if self.dataverse and day < DATAVERSE_MIN_DATE
                else "it loads as that date; clear it if it means 'unknown'"
            )
            message = f"{text!r} is a placeholder date: {effect}"
            self._add("PLACEHOLDER_DATE", message, obj, column, sid, {"value": text, "date": day.isoformat()})

    def _coordinates(self, obj: str, sid: str, raw: dict[str, Any], cols: Columns) -> None:
        if not cols.lat or not cols.lng:
            return
        try:
            lat, lng = float(str(raw.get(cols.lat)).strip()), float(str(raw.get(cols.lng)).strip())
        except ValueError:
            return
        problem = d.coordinates_problem(lat, lng, self.region)
        if problem:
            detail = {"latitude": lat, "longitude": lng}
            self._add("COORDINATES_SUSPECT", f"({lat:g}, {lng:g}): {problem}", obj, cols.lat, sid, detail)

    # ------------------------------------------------------------------ end of the data
    def finish(self) -> None:
        self.duplicates.finish()
        self.totals.finish()
        self._finish_postcodes()
        self._finish_spellings()
        self._finish_markup()

    def _finish_postcodes(self) -> None:
        """Numeric postcodes shorter than the column's usual length lost their leading zeros.

        The usual length comes from the column itself (a playbook's region can be wrong for the data), and is
        only trusted when most postcodes have it.
        """
        for (obj, column), lengths in self._postcode_lengths.items():
            usual, count = lengths.most_common(1)[0]
            total = sum(lengths.values())
            expected = d.POSTCODE_DIGITS.get(self.region)
            if count < 0.8 * total or (expected and expected != usual and count < 0.95 * total):
                continue  # no dominant length: a mixed-country column, not judged
            for length, held in self._postcodes[(obj, column)].items():
                for sid, value in held if length < usual else ():
                    message = (
                        f"postcode {value!r} has {length} digits where this column's postcodes have {usual}: "
                        f"probably {value.zfill(usual)!r} with its leading zero lost"
                    )
                    detail = {"value": value, "probably": value.zfill(usual)}
                    self._add("LEADING_ZERO_LOST", message, obj, column, sid, detail)

    def _finish_spellings(self) -> None:
        """One state or country written several ways: the records off the most common spelling are named."""
        for (obj, column), keys in self._spellings.items():
            for spellings in keys.values():
                if len(spellings) < 2:
                    continue
                usual = max(spellings, key=lambda v: (len(spellings[v]), v))
                others = sorted(v for v in spellings if v != usual)
                for value in others:
                    message = (
                        f"{value!r} where {len(spellings[usual])} records write {usual!r}: standardise it (a value "
                        "map or a fix in the source) so reports and filters see one value"
                    )
                    detail = {"value": value, "usual": usual, "variants": [usual, *others]}
                    for sid in spellings[value]:
                        self._add("INCONSISTENT_SPELLING", message, obj, column, sid, detail)

    def _finish_markup(self) -> None:
        """HTML/RTF in text: one finding for a column that holds a markup by design, else one per record."""
        for (obj, column), hits in self._markup.items():
            rows = self._text_rows[(obj, column)]
            for kind in sorted({k for _sid, k, _text in hits}):
                of_kind = [h for h in hits if h[1] == kind]
                fix = f"{kind.lower()}_to_text"
                if len(of_kind) > 10 and len(of_kind) * 2 > rows:
                    message = f"{len(of_kind)} of {rows} values are {kind}: the column loads as code; map it with {fix}"
                    detail = {"count": len(of_kind), "source_ids": [h[0] for h in of_kind[:20]]}
                    self._add("MARKUP_IN_TEXT", message, obj, column, None, detail)
                    continue
                for sid, _kind, text in of_kind:
                    message = f"{kind} markup in the text ({text!r}): it loads as code; use the {fix} transform"
                    self._add("MARKUP_IN_TEXT", message, obj, column, sid, {"markup": kind})
