"""Editing a row's transform on a real project: validated, audited, previewed on staged rows, and loaded as shown."""

from __future__ import annotations

import json
import re
from typing import ClassVar

import httpx
import pytest

from crmmigrator_gui.engine.errors import BlockedError, MigratorError, UsageError
from crmmigrator_gui.engine.mapping.editing import (
    describe_object,
    preview_object,
    preview_row,
    sample_rows,
    set_transform,
)
from crmmigrator_gui.engine.mapping.maps import retarget_row
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.mapping.signoff import map_fingerprint
from crmmigrator_gui.engine.mapping.transforms import merge_groups, validate
from crmmigrator_gui.engine.plan.payloads import BuildError, FieldRule, PayloadBuilder
from crmmigrator_gui.engine.run.load import load
from tests.engine.conftest import open_sandbox, sign_off_for_tests


def _row_id(project, obj, field, entity, target):
    return project.scalar(
        "SELECT id FROM field_maps WHERE source_object = ? AND source_field = ? AND target_entity = ? "
        "AND target_field = ?",
        (obj, field, entity, target),
    )


def _stored(project, row_id):
    row = project.query("SELECT transform, status, confirmed_by FROM field_maps WHERE id = ?", (row_id,))[0]
    return json.loads(row["transform"]), row["status"], row["confirmed_by"]


def _audit_count(project):
    return project.scalar("SELECT COUNT(*) FROM audit")


class _Reader:
    """Loaded records read over HTTP from the embedded sandbox, found through the crosswalk (xref)."""

    SETS: ClassVar[dict[str, str]] = {"account": "accounts", "contact": "contacts", "annotation": "annotations"}

    def __init__(self, project):
        self.project = project
        self.sandbox = open_sandbox(project)
        self.client = httpx.Client(transport=httpx.WSGITransport(app=self.sandbox), base_url="http://sb")

    def __call__(self, entity, key, select):
        dest = self.project.scalar("SELECT dest_id FROM xref WHERE target_entity = ? AND key = ?", (entity, key))
        assert dest, key
        r = self.client.get(
            f"/api/data/v9.2/{self.SETS[entity]}({dest})",
            params={"$select": select},
            headers={"Authorization": "Bearer t"},
        )
        assert r.status_code == 200, r.text
        return r.json()

    def close(self):
        self.client.close()
        self.sandbox.close()


def _national_digits(raw: str) -> str:
    """The AU national number of a phone cell, worked out by hand: digits, no extension, no 61/0 prefix."""
    digits = re.sub(r"\D", "", re.split(r"x|ext", raw, flags=re.IGNORECASE)[0])
    return digits[2:] if digits.startswith("61") else digits.lstrip("0")


def test_set_transform_is_audited_and_the_load_sends_what_the_preview_shows(mapped_project):
    project = mapped_project
    phone_row = _row_id(project, "customers", "Phone", "contact", "telephone1")
    tech_row = _row_id(project, "customers", "Preferred technician", "account", "new_cf_preferred_technician")
    fingerprint, audits = map_fingerprint(project), _audit_count(project)

    result = set_transform(project, phone_row, {"type": "phone", "extension": "DROP"}, actor="consultant")
    assert result == {"row": phone_row, "transform": {"type": "phone", "extension": "drop"}, "changed": True}
    assert _stored(project, phone_row) == ({"type": "phone", "extension": "drop"}, "confirmed", "consultant")
    last = project.query("SELECT actor, action, detail FROM audit ORDER BY id DESC LIMIT 1")[0]
    assert (last["actor"], last["action"]) == ("consultant", "map transform")
    assert json.loads(last["detail"])["before"] == {"type": "phone"}
    assert _audit_count(project) == audits + 1
    assert map_fingerprint(project) != fingerprint  # a sign-off given before this edit no longer holds

    template = "Tech: {Preferred technician}\nGate: {Gate code}"
    set_transform(project, tech_row, {"type": "join", "template": template}, actor="consultant")
    stored, _status, _by = _stored(project, tech_row)
    assert stored == {"type": "join", "template": template, "custom_type": "String"}  # the schema hint is kept
    audits = _audit_count(project)
    assert set_transform(project, tech_row, {"type": "join", "template": template})["changed"] is False
    assert _audit_count(project) == audits  # nothing changed, nothing written

    phone_preview = preview_row(project, phone_row)
    assert phone_preview
    assert len({p["raw"] for p in phone_preview}) == len(phone_preview)  # distinct real values
    assert all(p["value"].startswith("+61") and not p["error"] for p in phone_preview)  # the playbook's region
    join_rows = sample_rows(project, tech_row)
    join_preview = preview_row(project, tech_row)
    assert len(join_rows) == len(join_preview) > 0
    typed = {"type": "concat", "columns": "Preferred technician, Gate code", "separator": " / "}  # as typed in a form
    shown = preview_row(project, tech_row, typed)
    assert shown
    assert all(p["raw"].startswith(("Preferred technician=", "Gate code=")) and not p["error"] for p in shown)

    with pytest.raises(BlockedError, match="map changed after the sign-off"):
        load(project)  # the fixture's sign-off was given before these edits
    sign_off_for_tests(project)
    result = load(project)
    assert result.status == "completed"
    read = _Reader(project)
    staged = dict(project.iter_staged("customers"))
    checked = 0
    for sid, raw in staged.items():
        contact = read("contact", f"OCTO-customers-{sid}-contact", "telephone1")
        phone = (raw.get("Phone") or "").strip()
        if phone:
            assert contact["telephone1"] == "+61" + _national_digits(phone), (phone, contact)
            checked += 1
        else:
            assert contact["telephone1"] is None
        tech, gate = ((raw.get(c) or "").strip() for c in ("Preferred technician", "Gate code"))
        expected = "\n".join(line for line in (tech and f"Tech: {tech}", gate and f"Gate: {gate}") if line) or None
        account = read("account", f"OCTO-customers-{sid}-account", "new_cf_preferred_technician")
        assert account["new_cf_preferred_technician"] == expected, raw
    assert checked > 10
    for raw, shown in zip(join_rows, join_preview, strict=True):  # the preview is what was sent
        account = read("account", f"OCTO-customers-{raw['Customer ID']}-account", "new_cf_preferred_technician")
        assert account["new_cf_preferred_technician"] == shown["value"]


def test_bad_edits_are_refused_and_change_nothing(mapped_project):
    project = mapped_project
    phone_row = _row_id(project, "customers", "Phone", "contact", "telephone1")
    key_row = _row_id(project, "customers", "Customer ID", "account", "new_sourcesystemid")
    before, audits = _stored(project, phone_row), _audit_count(project)
    with pytest.raises(UsageError, match="region 'XX' is not a region code"):
        set_transform(project, phone_row, {"type": "phone", "region": "XX"})
    with pytest.raises(UsageError, match="customers has no column 'Gate'"):
        set_transform(project, phone_row, {"type": "join", "columns": ["Phone", "Gate"]})
    with pytest.raises(UsageError, match="is the record's key"):
        set_transform(project, key_row, {"type": "text"})
    with pytest.raises(UsageError, match="not set on a field"):
        set_transform(project, phone_row, describe_object(project, "customers")[0])
    with pytest.raises(MigratorError, match="no field-map row 99999"):
        set_transform(project, 99999, {"type": "text"})
    assert (_stored(project, phone_row), _audit_count(project)) == (before, audits)
    retarget_row(project, phone_row, "-", actor="consultant")
    with pytest.raises(UsageError, match="is not mapped"):
        set_transform(project, phone_row, {"type": "phone"})


def test_every_transform_automap_stores_is_a_valid_spec(mapped_project):
    for row in mapped_project.query("SELECT source_object, source_field, transform FROM field_maps"):
        spec = json.loads(row["transform"])
        assert validate(spec)["type"], row  # raises UsageError naming the parameter otherwise


def test_structure_and_lookups_preview_the_records_the_load_writes(mapped_project):
    project = mapped_project
    (decompose,) = describe_object(project, "customers")
    assert decompose["type"] == "decompose"
    assert [p["part"] for p in decompose["parts"]] == ["account", "contact"]
    (merge,) = describe_object(project, "form_responses")
    assert merge["group_by"] == ["booking_ref", "form"]
    with pytest.raises(MigratorError, match="no imported object"):
        describe_object(project, "timesheets")

    customers = preview_object(project, "customers", limit=5)[0]["preview"]
    assert len(customers) == 5
    notes = preview_object(project, "form_responses", limit=3)[0]["preview"]
    assert 0 < len(notes) <= 3
    lookup_row = _row_id(project, "bookings", "Customer ID", "new_job", "new_accountid")
    before = preview_row(project, lookup_row, limit=3)
    assert all(any("no account loaded" in n for n in p["notes"]) for p in before)

    load(project)
    read = _Reader(project)
    xref = {r["key"]: (r["target_entity"], r["dest_id"]) for r in project.query("SELECT * FROM xref")}
    for shown in customers:  # "account → KEY; contact → KEY"
        for part, key in re.findall(r"(\w+) → (\S+?)(?:;|$)", shown["value"]):
            assert xref[key][0] == part
    rows = [raw for _sid, raw in project.iter_staged("form_responses")]
    groups = {g["key"]: g for g in merge_groups(merge, rows)}
    for shown in notes:
        key = re.search(r"→ (\S+)$", shown["notes"][0]).group(1)
        booking, form = groups[key]["group"].split("~")
        by_hand = "\n".join(  # the playbook's line, "{question}: {answer}", over the group's rows in export order
            f"{r['Question'].strip()}: {(r['Answer'] or '').strip()}"
            for r in rows
            if r["Booking ID"].strip() == booking and r["Form"].strip() == form
        )
        assert xref[key][0] == "annotation"
        assert read("annotation", key, "notetext")["notetext"] == by_hand
        assert shown["value"] == f"notetext: {by_hand}"
    after = preview_row(project, lookup_row, limit=3)
    for shown in after:
        dest = xref[f"OCTO-customers-{shown['value']}-account"][1]
        assert f"crosswalk: account {dest}" in shown["notes"]
    read.close()


def test_the_payload_builder_binds_playbook_defaults_and_tallies_notes(mapped_project):
    project = mapped_project
    playbook = load_playbook(project.source, project.target, project.edition)
    builder = PayloadBuilder(project, playbook, None, {}, "owner")  # no destination call is needed to convert
    mobile = next(r for r in builder.rules[("customers", "contact")] if r.source_field == "Mobile")
    assert mobile.transform == {"type": "phone", "region": "AU"}  # the stored spec has no region: the playbook's
    warnings: list[str] = []
    value = builder.apply_transform("customers", mobile, {"Mobile": "0412 345 678 or 0498 765 432"}, warnings)
    assert value == "+61412345678"
    assert warnings == ["column 'Mobile': 2 numbers in one cell; the first is used, not 0498 765 432"]
    builder.apply_transform("customers", mobile, {"Mobile": "0400 111 222 / 0400 333 444"}, warnings)
    assert builder.transform_notes() == [
        "customers column 'Mobile': 2 value(s) converted with a note, e.g. 2 numbers in one cell; the first is used, "
        "not 0498 765 432"
    ]
    strict = FieldRule("Mobile", "mobilephone", {"type": "phone", "region": "AU", "invalid": "fail"})
    with pytest.raises(BuildError, match="column 'Mobile': 'ring the office' is not a phone number") as err:
        builder.apply_transform("customers", strict, {"Mobile": "ring the office"}, warnings)
    assert err.value.code == "BAD_VALUE"
