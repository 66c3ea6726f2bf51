"""The Map page's value-map editor: each distinct source value of the selected column and its destination option.

:class:`ValueMapModel` adapts the engine's ``values.value_rows`` (the data stays in the engine); choosing an
option calls ``values.set_value``. "Add option to destination…" asks the page to create one through the
destination's metadata API, on the page's worker. The transform editor lives in :mod:`.transform_editor`,
the review-workbook diff in :mod:`.review_dialog`.
"""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import values
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.gui.models import display_value
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CENTER = Qt.AlignmentFlag.AlignCenter


class ValueMapModel(QAbstractTableModel):
    """The value map of one source column: each distinct source value and the destination option it becomes.

    Rows come from the engine's ``values.value_rows``; choosing an option calls ``values.set_value``
    (which validates the label against the destination's options and confirms the row).

    Signals:
        changed(): a value was set, so the map's completeness may differ.
        error(str): a choice the engine refused, with its user-facing reason.
    """

    changed = Signal()
    error = Signal(str)

    VALUE, COUNT, OPTION, STATUS, NOTES = range(5)
    HEADERS = ("Source value", "Records", "Destination option", "Status", "Notes")
    LEAVE_EMPTY = "(leave empty)"

    def __init__(self, parent: Any = None, *, actor: str | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._source: tuple[str, str] | None = None
        self._target: tuple[str, str] | None = None
        self._rows: list[dict[str, Any]] = []
        self.actor = actor

    def set_field(
        self,
        project: Project | None,
        source_object: str | None,
        source_field: str | None,
        target: tuple[str, str] | None = None,
    ) -> None:
        """Show the values of one source column (only those feeding ``target`` when one is given)."""
        self._project = project
        self._source = (source_object, source_field) if source_object and source_field else None
        self._target = target
        self.refresh()

    def refresh(self) -> None:
        rows: list[dict[str, Any]] = []
        if self._project is not None and self._source is not None:
            obj, field = self._source
            rows = values.value_rows(self._project, source_object=obj, source_field=field)
            if self._target is not None:
                rows = [r for r in rows if (r.get("target_entity"), r.get("target_field")) == self._target]
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def row(self, number: int) -> dict[str, Any]:
        return self._rows[number]

    def options(self, number: int) -> list[str]:
        """The destination's option labels for that row's column (what the editor offers)."""
        return [str(o["label"]) for o in self._rows[number].get("options") or []]

    def pending(self) -> int:
        return sum(r["status"] != "confirmed" for r in self._rows)

    # ------------------------------------------------------------------ shape
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section == self.COUNT:
            return _RIGHT
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return base | Qt.ItemFlag.ItemIsEditable if index.column() == self.OPTION else base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return row
        if column == self.VALUE:
            return display_value(row["source_value"]) if role == Qt.ItemDataRole.DisplayRole else None
        if column == self.COUNT:
            if role == Qt.ItemDataRole.DisplayRole:
                return f"{int(row.get('count') or 0):,}"
            return _RIGHT if role == Qt.ItemDataRole.TextAlignmentRole else None
        if column == self.OPTION:
            return self._option_data(row, role)
        if column == self.STATUS:
            return self._status_data(row, role)
        if column == self.NOTES:
            notes, change = str(row.get("notes") or ""), row.get("customer_change")
            if role == Qt.ItemDataRole.DisplayRole:
                return (f"✎ {notes}" if notes else "✎ changed by the customer") if change else notes
            if role == Qt.ItemDataRole.ToolTipRole and (notes or change):
                return "\n".join(p for p in (f"Changed by the customer: {change}" if change else "", notes) if p)
        return None

    def _option_data(self, row: dict[str, Any], role: int) -> Any:
        label = row.get("target_label")
        if role == Qt.ItemDataRole.EditRole:
            return label or ""
        if role == Qt.ItemDataRole.DisplayRole:
            if label:
                return str(label)
            return self.LEAVE_EMPTY if row["status"] == "confirmed" else "— no mapping"
        if role == Qt.ItemDataRole.ForegroundRole and not label:
            return QBrush(QColor("#8a1c12" if row["status"] != "confirmed" else "#7a7a7a"))
        if role == Qt.ItemDataRole.FontRole and not label:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            stored = row.get("target_value")
            where = f"{row.get('target_entity')}.{row.get('target_field')}"
            value = f"; stored as {stored}" if stored not in (None, "") else ""
            return f"{where}{value}. Double-click to choose another option."
        return None

    @staticmethod
    def _status_data(row: dict[str, Any], role: int) -> Any:
        status = row["status"]
        if role == Qt.ItemDataRole.DisplayRole:
            return {"confirmed": "confirmed", "proposed": "to review"}.get(status, "no mapping")
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(QColor({"confirmed": "#cdebd6", "proposed": "#fbe7b5"}.get(status, "#f6cfcb")))
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor("#1b1b1b"))
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _CENTER
        if role == Qt.ItemDataRole.ToolTipRole and row.get("reason"):
            return str(row["reason"])
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or self._project is None or index.column() != self.OPTION:
            return False
        if role != Qt.ItemDataRole.EditRole:
            return False
        row = self._rows[index.row()]
        label = "" if value in (None, self.LEAVE_EMPTY) else str(value).strip()
        if label == (row.get("target_label") or "") and row["status"] == "confirmed":
            return False
        try:
            values.set_value(self._project, int(row["id"]), label, actor=self.actor)
        except MigratorError as exc:
            self.error.emit(str(exc))
            return False
        self.refresh()
        self.changed.emit()
        return True


class OptionDelegate(QStyledItemDelegate):
    """Edits a value-map row's destination option with a combo of the destination's own labels."""

    def __init__(self, model: ValueMapModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.value_model = model

    def createEditor(
        self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QWidget:
        editor = QComboBox(parent)
        editor.addItem(ValueMapModel.LEAVE_EMPTY)
        editor.addItems(self.value_model.options(index.row()))
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        current = index.data(Qt.ItemDataRole.EditRole) or ValueMapModel.LEAVE_EMPTY
        position = editor.findText(str(current))
        editor.setCurrentIndex(max(position, 0))

    def setModelData(self, editor: QWidget, model: Any, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)


class ValueMapEditor(QWidget):
    """One source column's value map, edited through the engine.

    Signals:
        add_option_requested(str, str, str, int): entity, field, suggested label and the value-map row
            that should use the new option (the page asks for the label and runs the worker).
        changed(): a value was set.
        error(str): the engine refused a choice.
    """

    add_option_requested = Signal(str, str, str, int)
    changed = Signal()
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ValueMapModel(self)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.view = QTableView()
        configure_table(self.view)
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setItemDelegateForColumn(ValueMapModel.OPTION, OptionDelegate(self.model, self.view))
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(ValueMapModel.VALUE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(ValueMapModel.OPTION, QHeaderView.ResizeMode.Stretch)
        for column, width in ((ValueMapModel.COUNT, 64), (ValueMapModel.STATUS, 86), (ValueMapModel.NOTES, 70)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.empty = hint(QLabel())
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.stack = QStackedWidget()  # the table, or a hint where there is nothing to decide
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty)
        self.add_option_button = QPushButton("Add option to destination…")
        self.add_option_button.setToolTip(
            "Create a new option in the destination's choice column (through its metadata API) and use it "
            "for the selected source value."
        )
        buttons = QHBoxLayout()
        buttons.addWidget(hint(QLabel("Double-click an option to change it.")), 1)
        buttons.addWidget(self.add_option_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.stack, 1)
        layout.addLayout(buttons)
        self.add_option_button.clicked.connect(self._ask_for_option)
        self.model.changed.connect(self._refresh_title)
        self.model.changed.connect(self.changed)
        self.model.error.connect(self.error)
        self._row: dict[str, Any] | None = None
        self.set_row(None, None)

    def set_row(self, project: Project | None, row: dict[str, Any] | None) -> None:
        """Show the value map of the selected field-map row (or a hint when it has none)."""
        self._row = row
        mapped = row is not None and bool(row.get("target_entity"))
        try:
            self.model.set_field(
                project if mapped else None,
                row["source_object"] if row else None,
                row["source_field"] if row else None,
                (row["target_entity"], row["target_field"]) if row and mapped else None,
            )
        except MigratorError as exc:
            self.model.set_field(None, None, None)
            self.error.emit(str(exc))
        self._refresh_title()

    def _refresh_title(self) -> None:
        row = self._row
        count = self.model.rowCount()
        has_values = count > 0
        self.stack.setCurrentWidget(self.view if has_values else self.empty)
        self.add_option_button.setEnabled(has_values)
        if row is None:
            self.title.setText("")
            self.empty.setText("Select a row in the map to see its value map.")
            return
        source = f"<b>{escape(row['source_object'])}.{escape(row['source_field'])}</b>"
        if not has_values:
            self.title.setText(source)
            self.empty.setText(
                "This column has no value map: its values are copied as they are (after the transform)."
                if row.get("target_entity")
                else "This column is not migrated, so it has no value map."
            )
            return
        pending = self.model.pending()
        target = {f"{r['target_entity']}.{r['target_field']}" for r in self.model.rows()}
        todo = (
            f"<span style='color:#8a1c12'>{pending} to decide</span>"
            if pending
            else "<span style='color:#1c5e33'>all decided ✔</span>"
        )
        self.title.setText(f"{source} → {escape(', '.join(sorted(target)))} · {count} value(s), {todo}")

    def selected_row(self) -> dict[str, Any] | None:
        index = self.view.currentIndex()
        if not index.isValid():
            return None
        return self.model.row(index.row())

    def _ask_for_option(self) -> None:
        row = (
            self.selected_row()
            or next((r for r in self.model.rows() if r["status"] != "confirmed"), None)
            or (self.model.row(0) if self.model.rowCount() else None)
        )
        if row is None:
            return
        self.add_option_requested.emit(
            str(row["target_entity"]), str(row["target_field"]), str(row["source_value"]).strip(), int(row["id"])
        )
