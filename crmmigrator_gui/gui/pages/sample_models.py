"""Table models of the Sample page: the sampled records of an object, and one record's fields side by side.

Why plain list models: a sample is at most 500 records (~10,000 field rows), already in memory from the
read-back, and the page filters them in Python; the views only ever show one object's records or one
record's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from crmmigrator_gui.engine.report.sample_diff import VERDICT_COLOURS, cell_value
from crmmigrator_gui.engine.run.sample import FLAGGED, VERDICTS, FieldDiff

_Index = QModelIndex | QPersistentModelIndex
#: Worst first: the order a reviewer wants to read verdicts in.
SEVERITY = {v: i for i, v in enumerate(("failed", "misread", "changed_by_server", "missing", "truncated",
                                        "skipped", "transformed", "equal"))}  # fmt: skip
assert set(SEVERITY) == set(VERDICTS)


def verdict_brush(verdict: str) -> QBrush:
    return QBrush(QColor(f"#{VERDICT_COLOURS.get(verdict, 'FFFFFF')}"))


def shown(value: Any) -> str:
    """The compared value as text, the way the exported workbook writes it."""
    text = cell_value(value)
    return text if isinstance(text, str) else str(text)


@dataclass
class SampledRecord:
    """One destination record of a sampled source record, with its compared fields."""

    source_object: str
    source_id: str
    target_entity: str
    dest_id: str | None
    rows: list[FieldDiff] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        return sum(r.flagged for r in self.rows)

    @property
    def worst(self) -> str:
        return min((r.verdict for r in self.rows), key=lambda v: SEVERITY[v], default="equal")


def group_records(rows: list[FieldDiff]) -> dict[str, list[SampledRecord]]:
    """source object -> its sampled records (flagged first, then by source id)."""
    records: dict[tuple[str, str, str], SampledRecord] = {}
    for r in rows:
        key = (r.source_object, r.source_id, r.target_entity)
        rec = records.get(key)
        if rec is None:
            rec = records[key] = SampledRecord(r.source_object, r.source_id, r.target_entity, r.dest_id)
        rec.dest_id = rec.dest_id or r.dest_id
        rec.rows.append(r)
    out: dict[str, list[SampledRecord]] = {}
    for rec in records.values():
        out.setdefault(rec.source_object, []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda x: (-x.flagged, SEVERITY[x.worst], x.source_id, x.target_entity))
    return dict(sorted(out.items()))


class RecordsModel(QAbstractTableModel):
    """The records of the selected object: where each went and how many of its fields are flagged."""

    HEADERS = ("Source id", "Table", "Flagged", "Worst", "Fields", "Destination id")

    def __init__(self) -> None:
        super().__init__()
        self.records: list[SampledRecord] = []

    def set_records(self, records: list[SampledRecord]) -> None:
        self.beginResetModel()
        self.records = list(records)
        self.endResetModel()

    def record(self, row: int) -> SampledRecord:
        return self.records[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        rec = self.records[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (rec.source_id, rec.target_entity, rec.flagged, rec.worst.replace("_", " "), len(rec.rows),
                    rec.dest_id or "—")[column]  # fmt: skip
        if role == Qt.ItemDataRole.BackgroundRole and column == 3:
            return verdict_brush(rec.worst)
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return QBrush(QColor("#1a1a1a"))  # the verdict fills are light: keep the text dark on dark themes
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (2, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class FieldsModel(QAbstractTableModel):
    """One record's fields side by side: source value → expected → stored, verdict coloured, flagged first."""

    HEADERS = ("Field", "Source value", "Expected", "Stored", "Verdict", "Note")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[FieldDiff] = []

    def set_rows(self, rows: list[FieldDiff]) -> None:
        self.beginResetModel()
        self.rows = sorted(rows, key=lambda r: (not r.flagged, SEVERITY[r.verdict], r.field))
        self.endResetModel()

    def diff_row(self, row: int) -> FieldDiff:
        return self.rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            name = r.field or "(record)"
            if r.source_field and role == Qt.ItemDataRole.ToolTipRole:
                name = f"{r.source_field} → {r.target_entity}.{name}"
            return (name, shown(r.source_value), shown(r.expected), shown(r.stored), r.verdict.replace("_", " "),
                    r.note)[column]  # fmt: skip
        if role == Qt.ItemDataRole.BackgroundRole and column == 4:
            return verdict_brush(r.verdict)
        if role == Qt.ItemDataRole.ForegroundRole and column == 4:
            return QBrush(QColor("#1a1a1a"))
        if role == Qt.ItemDataRole.FontRole and column == 4 and r.verdict in FLAGGED:
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        return None
