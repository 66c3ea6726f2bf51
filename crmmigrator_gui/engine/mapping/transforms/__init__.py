"""Declarative transforms: a JSON spec per field-map row turns raw source values into what the destination stores.

Specs are plain dicts (``{"type": "date", "format": "DD/MM/YYYY", "tz": "Australia/Sydney"}``) so they
serialise into the project file, the review workbook and the map fingerprint. :data:`CATALOG` lists every
type with its parameters (it drives the GUI's editor and :func:`validate`); :func:`preview` shows a spec on
sample values fast enough to run on every keystroke.

Decisions worth knowing:

* ``default`` (any type) replaces an empty source value, and is converted like one (a money default is a
  Decimal). ``case`` (upper/lower/title/sentence) applies to any text result.
* Placeholders (``N/A``, ``none``, ``-``) in a typed column mean "no value"; free text keeps what people wrote.
* Money is ``Decimal``; ``cents: true`` reads integer cents. Date-only values stay dates (never shifted
  across a time zone); date-times become UTC. A date-time written with an offset, in a date column, keeps
  the calendar day of the declared time zone.
* Phones become E.164 with the spec's ``region`` (the payload builders fill it from the playbook's
  ``default_phone_region``). An extension is kept RFC 3966 style, ``+15551234567;ext=206``: unambiguous,
  understood by dialers and by ``phonenumbers`` itself, so a second pass gives the same text.
  A value that is no phone number is kept as written with a note (``invalid: keep``), because both
  destinations store phones as free text and a record should not fail over one; ``invalid: fail`` refuses.
* E-mails are checked with email-validator (offline) and lower-cased: both destinations compare addresses
  as typed when they detect duplicates, and no mainstream mailbox is case-sensitive. An invalid address
  fails the record (``invalid: fail``, the default) since both destinations refuse it anyway.
* Several values in one phone or e-mail cell: the first is used, the rest are reported as a note.
* ``decompose`` and ``merge`` *describe* the playbook's parts (one row → several records) and grouped parts
  (several rows → one record) so the editor can show and preview them; the loader still builds parts from
  the playbook, and :func:`aggregate_value` is the one merge routine both use.

Layout (each module imports only those above it): ``base`` (error, result, aliases) → the value parsers
``names``, ``markup``, ``scalar`` (money, numbers, dates), ``contacts`` (phone, e-mail) and ``structure``
(decompose, merge) → ``convert`` (one spec on one value) → ``catalog`` (types, :func:`validate`,
:func:`bind`) → ``preview`` (:func:`preview`, :func:`render`, :func:`to_json_value`). Callers import from
this package, never from the modules.
"""

from __future__ import annotations

from crmmigrator_gui.engine.mapping.transforms.base import ALIASES, Converted, TransformError
from crmmigrator_gui.engine.mapping.transforms.catalog import CATALOG, bind, validate
from crmmigrator_gui.engine.mapping.transforms.convert import apply, convert, template_columns
from crmmigrator_gui.engine.mapping.transforms.markup import html_to_text, rtf_to_text
from crmmigrator_gui.engine.mapping.transforms.names import recase, split_name
from crmmigrator_gui.engine.mapping.transforms.preview import preview, render, to_json_value
from crmmigrator_gui.engine.mapping.transforms.scalar import parse_bool, parse_money, parse_time
from crmmigrator_gui.engine.mapping.transforms.structure import (
    aggregate_value,
    decompose_records,
    member_matches,
    merge_group_id,
    merge_groups,
)

__all__ = [
    "ALIASES",
    "CATALOG",
    "Converted",
    "TransformError",
    "aggregate_value",
    "apply",
    "bind",
    "convert",
    "decompose_records",
    "html_to_text",
    "member_matches",
    "merge_group_id",
    "merge_groups",
    "parse_bool",
    "parse_money",
    "parse_time",
    "preview",
    "recase",
    "render",
    "rtf_to_text",
    "split_name",
    "template_columns",
    "to_json_value",
    "validate",
]
