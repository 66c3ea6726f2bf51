"""What every transform module shares: the error a bad value raises, the converted result, the type aliases.

Kept apart so the value parsers (names, markup, numbers, contacts) and the dispatcher can all import it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TransformError(ValueError):
    """A value that cannot be converted; the message is shown to the user with the source id."""


@dataclass(frozen=True)
class Converted:
    """A converted value and the notes worth showing (several numbers in a cell, a couple's name…)."""

    value: Any
    notes: tuple[str, ...] = ()


#: Other names playbooks and saved maps use for a type; read as the canonical type everywhere.
ALIASES = {"concat": "join", "longtext": "memo", "names": "text"}
