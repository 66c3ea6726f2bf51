"""Playbooks: the migration knowledge for one source→destination pair, kept as data.

A playbook (``resources/playbooks/<source>-<target>.json``) names the source objects, the
*roles* their columns can play (with header synonyms and a kind), where each role lands
(``part.column``), how parts link to each other, the value maps, and the custom schema the
destination needs. Code here only reads it and resolves edition-specific variants, so a new
pair or a corrected mapping is a data change, not a code change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.paths import resources_dir


@dataclass(frozen=True)
class Role:
    name: str
    synonyms: tuple[str, ...]
    kind: str
    targets: tuple[str, ...]  # "part.column"
    value_map: dict[str, Any] | None
    do_not_migrate: str | None
    clusters: tuple[str, ...] = ()  # shared synonym clusters (resources/mapping/synonyms.json) the role joins


@dataclass(frozen=True)
class Part:
    obj: str
    name: str
    entity: str
    derived: dict[str, Any]
    constants: dict[str, Any]
    lookups: tuple[dict[str, Any], ...]
    links: tuple[dict[str, Any], ...]
    constant_lookups: tuple[dict[str, Any], ...]
    owner: dict[str, Any] | None
    user_lookup: dict[str, Any] | None
    group_by: tuple[str, ...]
    aggregate: dict[str, Any]
    skip_when: tuple[dict[str, Any], ...] = ()  # [{"role", "in": [values], "reason"}]: skip, don't fail

    @property
    def qualified(self) -> str:
        return f"{self.obj}.{self.name}"


@dataclass(frozen=True)
class SourceObject:
    name: str
    label: str
    sheet_aliases: tuple[str, ...]
    id_roles: tuple[str, ...]
    roles: dict[str, Role]
    parts: tuple[Part, ...]
    custom_fields: str | None  # entity that receives unrecognised columns
    match_user: dict[str, Any] | None
    custom_fields_prefix: str | None = None  # only columns starting with this become custom columns
    custom_fields_suffix: str | None = None  # …and ending with this (Salesforce custom fields: "__c")

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)


@dataclass(frozen=True)
class Playbook:
    id: str
    title: str
    source: str
    target: str
    edition: str
    key_prefix: str
    key_column: str
    default_timezone: str
    default_date_format: str
    seed_rows: tuple[dict[str, Any], ...]
    objects: tuple[SourceObject, ...]
    schema: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)

    def obj(self, name: str) -> SourceObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise MigratorError(f"playbook {self.id} has no source object {name!r}")

    def part(self, qualified: str) -> Part:
        obj_name, _, part_name = qualified.partition(".")
        return self.obj(obj_name).part(part_name)

    def parts(self) -> list[Part]:
        return [part for obj in self.objects for part in obj.parts]

    def entity_of_target(self, obj: SourceObject, target: str) -> tuple[str, str] | None:
        """``"account.name"`` (part.column) → (entity, column), or None if the part is not in this edition."""
        part_name, _, column = target.partition(".")
        for part in obj.parts:
            if part.name == part_name:
                return part.entity, column
        return None

    def target_entities(self) -> list[str]:
        seen: list[str] = []
        for part in self.parts():
            if part.entity not in seen:
                seen.append(part.entity)
        return seen


def _in_edition(item: dict[str, Any], edition: str) -> bool:
    editions = item.get("editions")
    return not editions or edition in editions


def playbook_path(source: str, target: str) -> Path:
    return resources_dir() / "playbooks" / f"{source}-{target}.json"


@cache
def load_playbook(source: str, target: str, edition: str = "enterprise") -> Playbook:
    """Load and resolve the playbook for a pair and edition."""
    path = playbook_path(source, target)
    if not path.exists():
        raise MigratorError(
            f"no playbook for {source} → {target} yet ({path.name}); this pair arrives in a later release"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    objects = []
    for obj in data["objects"]:
        roles = {
            name: Role(
                name=name,
                synonyms=tuple(spec.get("synonyms", ())),
                kind=spec.get("kind", "text"),
                targets=tuple(spec.get("targets", ())),
                value_map=spec.get("value_map"),
                do_not_migrate=spec.get("do_not_migrate"),
                clusters=tuple(spec.get("clusters", ())),
            )
            for name, spec in obj["roles"].items()
        }
        parts = tuple(
            Part(
                obj=obj["name"],
                name=p["part"],
                entity=p["entity"],
                derived=p.get("derived", {}),
                constants=p.get("constants", {}),
                lookups=tuple(lk for lk in p.get("lookups", ()) if _in_edition(lk, edition)),
                links=tuple(p.get("links", ())),
                constant_lookups=tuple(p.get("constant_lookups", ())),
                owner=p.get("owner"),
                user_lookup=p.get("user_lookup"),
                group_by=tuple(p.get("group_by", ())),
                aggregate=p.get("aggregate", {}),
                skip_when=tuple(p.get("skip_when", ())),
            )
            for p in obj["parts"]
            if _in_edition(p, edition)
        )
        objects.append(
            SourceObject(
                name=obj["name"],
                label=obj.get("label", obj["name"]),
                sheet_aliases=tuple(obj.get("sheet_aliases", ())),
                id_roles=tuple(obj.get("id_roles", ())),
                roles=roles,
                parts=parts,
                custom_fields=obj.get("custom_fields"),
                match_user=obj.get("match_user"),
                custom_fields_prefix=obj.get("custom_fields_prefix"),
                custom_fields_suffix=obj.get("custom_fields_suffix"),
            )
        )
    schema = {
        key: [item for item in data.get("schema", {}).get(key, []) if _in_edition(item, edition)]
        for key in ("tables", "columns", "relationships")
    }
    return Playbook(
        id=data["id"],
        title=data["title"],
        source=data["source"],
        target=data["target"],
        edition=edition,
        key_prefix=data.get("key_prefix", data["source"].upper()),
        key_column=data.get("key_column", "new_sourcesystemid"),
        default_timezone=data.get("default_timezone", "UTC"),
        default_date_format=data.get("default_date_format", "YYYY-MM-DD"),
        seed_rows=tuple(data.get("seed_rows", ())),
        objects=tuple(objects),
        schema=schema,
        raw=data,
    )


_UNSAFE_KEY = re.compile(r"[/<>*%&:\\?+'\"#\s]")


def destination_key(playbook: Playbook, obj: str, source_id: str, part: str) -> str:
    """Deterministic, distinct alternate-key value for one part of one source record.

    Dataverse key URLs break on ``/ < > * % & : \\ ? +``, so unsafe characters are replaced and
    a short hash keeps two different source ids from colliding after replacement.
    """
    safe = _UNSAFE_KEY.sub("_", source_id)
    if safe != source_id:
        import hashlib

        safe = f"{safe}_{hashlib.sha1(source_id.encode('utf-8')).hexdigest()[:6]}"
    return f"{playbook.key_prefix}-{obj}-{safe}-{part}"[:100]
