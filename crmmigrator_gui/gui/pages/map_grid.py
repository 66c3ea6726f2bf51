"""The Map grid's helpers: the filter proxy, the destination editor and the confidence legend."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QCompleter, QLabel, QLineEdit, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from crmmigrator_gui.gui.models import FieldMapModel, confidence_colour, matches_filter, row_target


class MapFilter(QSortFilterProxyModel):
    """Filters the field map by free text (object, field, target; ``object.field`` works) and by a filter key."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.key = "all"

    def set_filter(self, text: str, key: str) -> None:
        self.beginFilterChange()
        self.text, self.key = text.strip().lower(), key
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        assert isinstance(model, FieldMapModel)
        row = model.data(model.index(source_row, 0, source_parent), Qt.ItemDataRole.UserRole)
        if row is None:
            return True
        if not matches_filter(row, self.key, model.required):
            return False
        if not self.text:
            return True
        haystack = " ".join(
            [
                f"{row['source_object']}.{row['source_field']}",
                row_target(row),
                str(row.get("notes") or ""),
            ]
        ).lower()
        return self.text in haystack


class TargetDelegate(QStyledItemDelegate):
    """Edits ``entity.field`` with completion from the targets already in the map."""

    def __init__(self, model: FieldMapModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.map_model = model

    def createEditor(
        self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QWidget:
        editor = QLineEdit(parent)
        editor.setPlaceholderText("entity.field, or empty to leave out")
        completer = QCompleter(self.map_model.targets(), editor)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        editor.setCompleter(completer)
        return editor


def legend_chip(text: str, confidence: float) -> QLabel:
    chip = QLabel(text)
    chip.setStyleSheet(
        f"background:{confidence_colour(confidence)}; color:#1b1b1b; border-radius:3px; padding:1px 7px;"
    )
    return chip


CHIP_STYLE = """
QToolButton { border:1px solid palette(mid); border-radius:11px; padding:2px 10px; background:palette(base); }
QToolButton:checked { background:#1d3f6e; color:white; border-color:#1d3f6e; }
QToolButton:hover:!checked { background:palette(alternate-base); }
"""
