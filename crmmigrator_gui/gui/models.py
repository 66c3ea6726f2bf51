"""Table models: thin ``QAbstractTableModel`` adapters over engine data (the data stays in the engine).

- :class:`StagingPreviewModel` pages staged rows in lazily (``canFetchMore``/``fetchMore``) and
  keeps a bounded LRU cache of pages, so a million-row object scrolls smoothly in little memory.
- :class:`FieldMapModel` presents the field map for review; edits go straight to the engine's
  ``retarget_row``/``confirm_rows`` and the rows are re-read. :func:`matches_filter` backs the
  Map page's filters (to review, unmapped, required, low confidence, changed by the customer).
- :class:`RecordsModel` shows a short list of dicts (import summary, reconciliation counts).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps, values
from crmmigrator_gui.engine.project.store import Project

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CENTER = Qt.AlignmentFlag.AlignCenter


def display_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class PagedRows:
    """An LRU cache of pages read from the engine on demand, for lazy table models.

    The model sets ``page_size``, ``max_cached_pages``, ``pages_fetched`` and ``_pages`` (an OrderedDict) and
    implements ``_fetch(page_number)``; pages already shown are re-read only after they were evicted.
    """

    page_size: int
    max_cached_pages: int
    pages_fetched: int
    _pages: OrderedDict[int, list[Any]]

    def _fetch(self, number: int) -> list[Any]:
        raise NotImplementedError

    def _page(self, number: int) -> list[Any]:
        page = self._pages.get(number)
        if page is not None:
            self._pages.move_to_end(number)
            return page
        page = self._fetch(number)
        self.pages_fetched += 1
        self._pages[number] = page
        while len(self._pages) > self.max_cached_pages:
            self._pages.popitem(last=False)
        return page

    def _row_at(self, row: int) -> Any:
        page = self._page(row // self.page_size)
        offset = row % self.page_size
        return page[offset] if offset < len(page) else None


class StagingPreviewModel(PagedRows, QAbstractTableModel):
    """Staged rows of one source object, fetched page by page from the engine.

    ``rowCount`` grows by :attr:`page_size` each time the view asks for more; pages already
    shown are cached (up to :attr:`max_cached_pages`, least recently used evicted) and re-read
    from the engine if the user scrolls back to an evicted page.
    """

    def __init__(self, parent: Any = None, *, page_size: int = 500, max_cached_pages: int = 40) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self.max_cached_pages = max_cached_pages
        self._project: Project | None = None
        self._object = ""
        self._columns: list[str] = []
        self._total = 0
        self._loaded = 0
        self._pages: OrderedDict[int, list[tuple[str, dict[str, Any]]]] = OrderedDict()
        self.pages_fetched = 0  # engine reads so far (tests and diagnostics)

    @property
    def object_name(self) -> str:
        return self._object

    @property
    def total(self) -> int:
        return self._total

    def set_object(self, project: Project | None, obj: str) -> None:
        self.beginResetModel()
        self._project = project
        self._object = obj
        self._pages.clear()
        self._loaded = 0
        if project is not None and obj:
            self._columns = project.source_columns(obj)
            self._total = project.staged_count(obj)
        else:
            self._columns, self._total = [], 0
        self.endResetModel()

    def clear(self) -> None:
        self.set_object(None, "")

    # ------------------------------------------------------------------ lazy rows
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else self._loaded

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def canFetchMore(self, parent: Index = _ROOT) -> bool:
        return not parent.isValid() and self._loaded < self._total

    def fetchMore(self, parent: Index = _ROOT) -> None:
        if not self.canFetchMore(parent):
            return
        count = min(self.page_size, self._total - self._loaded)
        first = self._loaded
        rows = self._page(first // self.page_size)
        count = min(count, len(rows) - first % self.page_size)
        if count <= 0:  # the staging shrank under us: stop asking
            self._total = self._loaded
            return
        self.beginInsertRows(_ROOT, first, first + count - 1)
        self._loaded += count
        self.endInsertRows()

    def _fetch(self, number: int) -> list[tuple[str, dict[str, Any]]]:
        if self._project is None:
            return []
        return self._project.staged_page(self._object, number * self.page_size, self.page_size)

    # ------------------------------------------------------------------ presentation
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (
            Qt.ItemDataRole.DisplayRole,
            Qt.ItemDataRole.ToolTipRole,
            Qt.ItemDataRole.TextAlignmentRole,
        ):
            return None
        record = self._row_at(index.row())
        if record is None:
            return None
        value = record[1].get(self._columns[index.column()])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if isinstance(value, int | float) and not isinstance(value, bool) else None
        text = display_value(value)
        if role == Qt.ItemDataRole.ToolTipRole:
            return text if len(text) > 40 else None
        return text

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return f"{section + 1:,}"


#: Confidence below this is "low": the auto-mapper guessed, a person must look.
LOW_CONFIDENCE = 0.7
#: Confidence at or above this is green.
HIGH_CONFIDENCE = 0.9

#: The Map page's filters: key → (label, tooltip). ``matches_filter`` says which rows each keeps.
MAP_FILTERS: dict[str, tuple[str, str]] = {
    "all": ("All", "Every source column"),
    "review": ("To review", "Proposed by the auto-mapper and not confirmed yet"),
    "unmapped": ("Unmapped", "Columns with no destination: they will not be migrated"),
    "required": ("Required", "Columns mapped to a destination column that the destination requires"),
    "low": ("Low confidence", f"Mapped with a confidence below {LOW_CONFIDENCE:.0%}"),
    "customer": ("Changed by customer", "Rows (or their value maps) the customer changed in the review workbook"),
}


def row_target(row: dict[str, Any]) -> str:
    """``entity.field`` or the empty string for a column left out."""
    return f"{row['target_entity']}.{row['target_field']}" if row.get("target_entity") else ""


def matches_filter(row: dict[str, Any], key: str, required: set[tuple[str, str]]) -> bool:
    """Whether a field-map row belongs under one of :data:`MAP_FILTERS`."""
    if key == "review":
        return row["status"] == "proposed"
    if key == "unmapped":
        return not row.get("target_entity")
    if key == "required":
        return bool(row.get("target_entity")) and (row["target_entity"], row["target_field"]) in required
    if key == "low":
        return bool(row.get("target_entity")) and float(row.get("confidence") or 0) < LOW_CONFIDENCE
    if key == "customer":
        return bool(row.get("customer_change") or row.get("values_changed_by_customer"))
    return True


class FieldMapModel(QAbstractTableModel):
    """The editable field map: one row per source column, as the engine proposes and stores it.

    Signals:
        changed(): the stored map changed (an edit or a confirmation), so completeness may differ.
        error(str): an edit the engine refused, with its user-facing reason.
    """

    changed = Signal()
    error = Signal(str)

    OBJECT, FIELD, SAMPLES, TARGET, CONFIDENCE, CONFIRMED, NOTES = range(7)
    HEADERS = (
        "Source object",
        "Source field",
        "Sample values",
        "Destination (entity.field)",
        "Confidence",
        "Status",
        "Notes",
    )

    def __init__(self, parent: Any = None, *, actor: str | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._rows: list[dict[str, Any]] = []
        self._required: set[tuple[str, str]] = set()
        self.actor = actor

    # ------------------------------------------------------------------ loading
    def set_project(self, project: Project | None) -> None:
        self._project = project
        self.refresh()

    def refresh(self) -> None:
        rows = maps.field_rows_with_ids(self._project) if self._project else []
        if rows and self._project is not None:
            changed = Counter(
                (v["source_object"], v["source_field"], v["target_entity"], v["target_field"])
                for v in values.value_rows(self._project)
                if v.get("customer_change")
            )
            for row in rows:
                key = (row["source_object"], row["source_field"], row["target_entity"], row["target_field"])
                row["values_changed_by_customer"] = changed.get(key, 0)
        if [r["id"] for r in rows] == [r["id"] for r in self._rows] and rows:
            self._rows = rows
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(self.HEADERS) - 1))
        else:
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()

    def set_required(self, required: set[tuple[str, str]]) -> None:
        """Destination columns the destination requires (read from its metadata on a worker)."""
        self._required = set(required)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.HEADERS) - 1))

    @property
    def required(self) -> set[tuple[str, str]]:
        return self._required

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def row(self, number: int) -> dict[str, Any]:
        return self._rows[number]

    def row_number(self, row_id: int) -> int | None:
        return next((i for i, r in enumerate(self._rows) if r["id"] == row_id), None)

    def find(self, source_object: str, field: str | None) -> int | None:
        """The row of ``source_object.field``: by source column first, then by destination column."""
        for key in ("source_field", "target_field"):
            for number, row in enumerate(self._rows):
                if row["source_object"] == source_object and (field is None or row.get(key) == field):
                    return number
        return None

    def entities(self) -> set[str]:
        return {r["target_entity"] for r in self._rows if r.get("target_entity")}

    def targets(self) -> list[str]:
        """Distinct ``entity.field`` targets already in the map (for the editor's completer)."""
        return sorted({row_target(r) for r in self._rows if r.get("target_entity")})

    def counts(self) -> dict[str, int]:
        result = {"proposed": 0, "confirmed": 0, "unmapped": 0}
        for row in self._rows:
            result[row["status"]] = result.get(row["status"], 0) + 1
        return result

    def filter_counts(self) -> dict[str, int]:
        return {key: sum(matches_filter(r, key, self._required) for r in self._rows) for key in MAP_FILTERS}

    # ------------------------------------------------------------------ shape
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        row = self._rows[index.row()]
        if index.column() == self.TARGET:
            return base | Qt.ItemFlag.ItemIsEditable
        if index.column() == self.CONFIRMED and row["status"] == "proposed":
            return base | Qt.ItemFlag.ItemIsUserCheckable
        return base

    # ------------------------------------------------------------------ presentation
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.UserRole:
            return row
        column = index.column()
        if column == self.OBJECT:
            return row["source_object"] if role == Qt.ItemDataRole.DisplayRole else None
        if column == self.FIELD:
            return self._field_data(row, role)
        if column == self.SAMPLES:
            text = ", ".join(display_value(s) for s in row.get("samples") or [])
            return text if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole) else None
        if column == self.TARGET:
            return self._target_data(row, role)
        if column == self.CONFIDENCE:
            return self._confidence_data(row, role)
        if column == self.CONFIRMED:
            return self._status_data(row, role)
        if column == self.NOTES:
            return self._notes_data(row, role)
        return None

    def _field_data(self, row: dict[str, Any], role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return row["source_field"]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row['source_object']}.{row['source_field']}"
        return None

    def _target_data(self, row: dict[str, Any], role: int) -> Any:
        target = row_target(row)
        required = bool(target) and (row["target_entity"], row["target_field"]) in self._required
        if role == Qt.ItemDataRole.EditRole:
            return target
        if role == Qt.ItemDataRole.DisplayRole:
            if not target:
                return "— not migrated"
            return f"{target}  ✱" if required else target
        if role == Qt.ItemDataRole.ForegroundRole and not target:
            return QBrush(QColor("#7a7a7a"))
        if role == Qt.ItemDataRole.FontRole and not target:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            need = "\nThe destination requires this column." if required else ""
            return f"Double-click to change: type entity.field, or clear it to leave the column out.{need}"
        return None

    def _confidence_data(self, row: dict[str, Any], role: int) -> Any:
        mapped = bool(row.get("target_entity"))
        confidence = float(row.get("confidence") or 0)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{confidence:.0%}" if mapped else ""
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _CENTER
        if role == Qt.ItemDataRole.BackgroundRole and mapped:
            return QBrush(QColor(confidence_colour(confidence)))
        if role == Qt.ItemDataRole.ForegroundRole and mapped:
            return QBrush(QColor("#1b1b1b"))
        if role == Qt.ItemDataRole.ToolTipRole:
            head = f"{confidence:.0%} — " if mapped else ""
            return f"{head}{row.get('reason') or 'no reason recorded'}"
        return None

    def _status_data(self, row: dict[str, Any], role: int) -> Any:
        if role == Qt.ItemDataRole.CheckStateRole and row["status"] in ("proposed", "confirmed"):
            return Qt.CheckState.Checked if row["status"] == "confirmed" else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            return {"confirmed": "confirmed", "proposed": "to review"}.get(row["status"], "left out")
        if role == Qt.ItemDataRole.ForegroundRole and row["status"] == "proposed":
            return QBrush(QColor("#8a5a00"))
        if role == Qt.ItemDataRole.ToolTipRole and row.get("confirmed_by"):
            return f"Confirmed by {row['confirmed_by']} at {row['confirmed_at']}"
        return None

    def _notes_data(self, row: dict[str, Any], role: int) -> Any:
        notes = str(row.get("notes") or "")
        change = row.get("customer_change")
        value_changes = int(row.get("values_changed_by_customer") or 0)
        if role == Qt.ItemDataRole.DisplayRole:
            if change or value_changes:
                what = "changed by the customer" if change else f"{value_changes} value(s) changed by the customer"
                return f"✎ {notes}" if notes else f"✎ {what}"
            return notes
        if role == Qt.ItemDataRole.ForegroundRole and (change or value_changes):
            return QBrush(QColor("#1d3f6e"))
        if role == Qt.ItemDataRole.ToolTipRole and (notes or change or value_changes):
            parts = [f"Changed by the customer: {change}"] if change else []
            if value_changes:
                parts.append(f"The customer changed {value_changes} value mapping(s): see the Value map tab.")
            return "\n".join([*parts, notes] if notes else parts)
        return None

    # ------------------------------------------------------------------ edits (through the engine)
    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or self._project is None:
            return False
        row = self._rows[index.row()]
        try:
            if index.column() == self.TARGET and role == Qt.ItemDataRole.EditRole:
                target = str(value or "").replace("✱", "").strip()
                if target == row_target(row):
                    return False
                maps.retarget_row(self._project, int(row["id"]), target or "-", actor=self.actor)
            elif index.column() == self.CONFIRMED and role == Qt.ItemDataRole.CheckStateRole:
                if Qt.CheckState(value) != Qt.CheckState.Checked or row["status"] != "proposed":
                    return False
                maps.confirm_rows(self._project, [int(row["id"])], actor=self.actor)
            else:
                return False
        except MigratorError as exc:
            self.error.emit(str(exc))
            return False
        self.refresh()
        self.changed.emit()
        return True


def confidence_colour(confidence: float) -> str:
    """Green when the auto-mapper is sure, amber when it wants a look, red when it guessed."""
    if confidence >= HIGH_CONFIDENCE:
        return "#cdebd6"
    if confidence >= LOW_CONFIDENCE:
        return "#fbe7b5"
    return "#f6cfcb"


@dataclass(frozen=True)
class Column:
    """One column of a :class:`RecordsModel`."""

    key: str
    title: str
    numeric: bool = False
    alert: bool = False  # non-zero numbers in red (failures)


class RecordsModel(QAbstractTableModel):
    """A short, read-only list of dicts; an optional last row is shown in bold as the total."""

    def __init__(self, columns: list[Column], parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self._rows: list[dict[str, Any]] = []
        self._total_row = False

    def set_rows(self, rows: list[dict[str, Any]], *, total: dict[str, Any] | None = None) -> None:
        self.beginResetModel()
        self._rows = list(rows) + ([total] if total is not None else [])
        self._total_row = total is not None
        self.endResetModel()

    def row(self, number: int) -> dict[str, Any]:
        return self._rows[number]

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        if role == Qt.ItemDataRole.TextAlignmentRole and self.columns[section].numeric:
            return _RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        column = self.columns[index.column()]
        value = self._rows[index.row()].get(column.key)
        if role == Qt.ItemDataRole.DisplayRole:
            if column.numeric and isinstance(value, int | float):
                return f"{value:,}"
            return display_value(value)
        if role == Qt.ItemDataRole.ToolTipRole:
            text = display_value(value)
            return text if len(text) > 30 else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return _RIGHT
        if role == Qt.ItemDataRole.FontRole and self._total_row and index.row() == len(self._rows) - 1:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and column.alert and isinstance(value, int) and value > 0:
            return QBrush(QColor("#b3261e"))
        return None
