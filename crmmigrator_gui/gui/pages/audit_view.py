"""The Audit tab: search the append-only audit log and export what matches to CSV or XLSX.

:class:`AuditModel` is a lazy adapter over the engine's ``count_entries``/``search``: the row count comes
from one COUNT, rows arrive a page at a time as the view scrolls (``canFetchMore``/``fetchMore``), and only
a bounded number of pages stays cached. The log is never loaded whole: filters and paging run in SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.audit import COLUMNS, STATUSES, AuditFilter, count_entries, search
from crmmigrator_gui.gui.models import PagedRows, display_value
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
#: Record operations in the crosswalk, and the entry a rollback adds; engine steps are found by text.
OPERATIONS = ("created", "updated", "unchanged", "linked", "failed", "skipped", "pending", "rolled back")
SEARCH_DELAY_MS = 300  # wait for the typing to pause before querying
_STATUS_COLOURS = {"failed": "#b3261e", "skipped": "#8a5a00", "pending": "#1d3f6e"}


class AuditModel(PagedRows, QAbstractTableModel):
    """Audit entries matching an :class:`AuditFilter`, fetched page by page from the engine.

    Signals:
        total_changed(int): how many entries match the current filter.
    """

    total_changed = Signal(int)

    def __init__(self, parent: Any = None, *, page_size: int = 200, max_cached_pages: int = 20) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self.max_cached_pages = max_cached_pages
        self._project: Project | None = None
        self.filter = AuditFilter()
        self.total = 0
        self._loaded = 0
        self._pages: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self.pages_fetched = 0  # engine reads so far (tests and diagnostics)

    def set_source(self, project: Project | None, flt: AuditFilter | None = None) -> None:
        """Show ``project``'s entries matching ``flt``; counts them, reads no entry yet."""
        self.beginResetModel()
        self._project = project
        self.filter = flt or AuditFilter()
        self._pages.clear()
        self._loaded = 0
        self.total = count_entries(project, self.filter) if project is not None else 0
        self.endResetModel()
        self.total_changed.emit(self.total)

    def refresh(self) -> None:
        """Re-count and drop the cache (after a run or a rollback added entries)."""
        self.set_source(self._project, self.filter)

    def clear(self) -> None:
        self.set_source(None)

    # ------------------------------------------------------------------ lazy rows
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else self._loaded

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def canFetchMore(self, parent: Index = _ROOT) -> bool:
        return not parent.isValid() and self._loaded < self.total

    def fetchMore(self, parent: Index = _ROOT) -> None:
        if not self.canFetchMore(parent):
            return
        first = self._loaded
        page = self._page(first // self.page_size)
        count = min(self.total - first, len(page) - first % self.page_size)
        if count <= 0:  # the log changed under us: stop asking
            self.total = self._loaded
            return
        self.beginInsertRows(_ROOT, first, first + count - 1)
        self._loaded += count
        self.endInsertRows()

    def _fetch(self, number: int) -> list[dict[str, Any]]:
        if self._project is None:
            return []
        return search(self._project, self.filter, limit=self.page_size, offset=number * self.page_size)

    def entry(self, row: int) -> dict[str, Any] | None:
        return self._row_at(row)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ presentation
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (
            Qt.ItemDataRole.DisplayRole,
            Qt.ItemDataRole.ToolTipRole,
            Qt.ItemDataRole.ForegroundRole,
        ):
            return None
        entry = self.entry(index.row())
        if entry is None:
            return None
        key = COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.ForegroundRole:
            colour = _STATUS_COLOURS.get(str(entry.get("status")))
            return QBrush(QColor(colour)) if colour and key in ("status", "error", "operation") else None
        text = display_value(entry.get(key))
        if key == "at":
            text = text.replace("T", " ").replace("+00:00", "")
        if role == Qt.ItemDataRole.ToolTipRole:
            return text if len(text) > 30 else None
        return text

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return f"{section + 1:,}"


class AuditView(QWidget):
    """Search box, run/operation/status filters, the lazy table, and the export buttons.

    Signals:
        export_requested(str, object): the suffix (``csv``/``xlsx``) and the :class:`AuditFilter` to export.
    """

    export_requested = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = AuditModel(self)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search source id, destination id, table, error, operation…")
        self.search_edit.setClearButtonEnabled(True)
        self.run_combo = QComboBox()
        self.run_combo.addItem("All runs", None)
        self.operation_combo = QComboBox()
        self.operation_combo.addItem("All operations", None)
        for operation in OPERATIONS:
            self.operation_combo.addItem(operation, operation)
        self.status_combo = QComboBox()
        self.status_combo.addItem("Any status", None)
        for status in STATUSES:
            self.status_combo.addItem(status, status)
        self.count_label = hint(QLabel(""))
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_xlsx_button = QPushButton("Export XLSX…")
        filters = QHBoxLayout()
        filters.addWidget(self.search_edit, 1)
        filters.addWidget(self.run_combo)
        filters.addWidget(self.operation_combo)
        filters.addWidget(self.status_combo)

        self.view = QTableView()
        configure_table(self.view)
        self.view.setModel(self.model)
        header = self.view.horizontalHeader()
        for section, width in enumerate((135, 40, 135, 100, 100, 70, 130, 55, 110, 260)):
            header.resizeSection(section, width)
        header.setStretchLastSection(True)
        self.view.verticalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        footer = QHBoxLayout()
        footer.addWidget(self.count_label, 1)
        footer.addWidget(self.export_csv_button)
        footer.addWidget(self.export_xlsx_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(filters)
        layout.addWidget(self.view, 1)
        layout.addLayout(footer)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(SEARCH_DELAY_MS)
        self.timer.timeout.connect(self.apply_filter)
        self.search_edit.textChanged.connect(self.timer.start)
        for combo in (self.run_combo, self.operation_combo, self.status_combo):
            combo.currentIndexChanged.connect(self.apply_filter)
        self.model.total_changed.connect(self._total_changed)
        self.export_csv_button.clicked.connect(lambda: self.export_requested.emit("csv", self.current_filter()))
        self.export_xlsx_button.clicked.connect(lambda: self.export_requested.emit("xlsx", self.current_filter()))
        self._project: Project | None = None

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self.apply_filter()

    def set_runs(self, run_ids: list[int]) -> None:
        """Offer these runs in the run filter, keeping the chosen one."""
        chosen = self.run_combo.currentData()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem("All runs", None)
        for run_id in run_ids:
            self.run_combo.addItem(f"Run {run_id}", run_id)
        position = self.run_combo.findData(chosen) if chosen is not None else 0
        self.run_combo.setCurrentIndex(max(position, 0))
        self.run_combo.blockSignals(False)

    def show_run(self, run_id: int) -> None:
        position = self.run_combo.findData(run_id)
        if position < 0:
            self.run_combo.addItem(f"Run {run_id}", run_id)
            position = self.run_combo.count() - 1
        self.run_combo.setCurrentIndex(position)
        self.apply_filter()

    def current_filter(self) -> AuditFilter:
        return AuditFilter(
            text=self.search_edit.text().strip() or None,
            run_id=self.run_combo.currentData(),
            operation=self.operation_combo.currentData(),
            status=self.status_combo.currentData(),
        )

    def apply_filter(self) -> None:
        self.timer.stop()
        self.model.set_source(self._project, self.current_filter())
        if self.model.canFetchMore():
            self.model.fetchMore()

    def refresh(self) -> None:
        self.apply_filter()

    def _total_changed(self, total: int) -> None:
        flt = self.model.filter
        narrowed = any((flt.text, flt.run_id is not None, flt.operation, flt.status))
        self.count_label.setText(
            f"{total:,} matching entr{'y' if total == 1 else 'ies'}"
            if narrowed
            else f"{total:,} entries in the audit log"
        )
        has_rows = total > 0
        self.export_csv_button.setEnabled(has_rows)
        self.export_xlsx_button.setEnabled(has_rows)
