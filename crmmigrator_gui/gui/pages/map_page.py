"""Step 4, Map: the auto-mapper proposes, the consultant reviews, edits and confirms.

No record moves until the map is confirmed: ``isComplete()`` is the engine's ``is_confirmed``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.gui.models import FieldMapModel, confidence_colour
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.widgets import configure_table

SHOW_CHOICES = [
    ("All rows", None),
    ("To review", "proposed"),
    ("Confirmed", "confirmed"),
    ("Not migrated", "unmapped"),
]


def _automap_operation(project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> tuple[int, int]:
    proposals, unmapped = maps.run_automap(project)
    return len(proposals), len(unmapped)


class MapFilter(QSortFilterProxyModel):
    """Filters the field map by free text (object, field, target) and by status."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.status: str | None = None

    def set_filter(self, text: str, status: str | None) -> None:
        self.beginFilterChange()
        self.text, self.status = text.strip().lower(), status
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        row = model.data(model.index(source_row, 0, source_parent), Qt.ItemDataRole.UserRole)
        if row is None:
            return True
        if self.status and row["status"] != self.status:
            return False
        if not self.text:
            return True
        haystack = " ".join(
            str(row.get(k) or "") for k in ("source_object", "source_field", "target_entity", "target_field")
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


def _legend_chip(text: str, confidence: float) -> QLabel:
    chip = QLabel(text)
    chip.setStyleSheet(
        f"background:{confidence_colour(confidence)}; color:#1b1b1b; border-radius:3px; padding:2px 8px;"
    )
    return chip


class MapPage(BasePage):
    """The editable field map and its confirm gate."""

    def __init__(self) -> None:
        super().__init__(
            "Map",
            "Review how each source column lands in Dynamics 365. Double-click a target to change it, tick "
            "rows as you confirm them, or confirm them all. No record moves until the map is confirmed.",
        )
        self.automap_button = QPushButton("Run automap")
        self.confirm_all_button = QPushButton("Confirm all")
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by object, field or target…")
        self.filter_edit.setClearButtonEnabled(True)
        self.show_combo = QComboBox()
        for label, status in SHOW_CHOICES:
            self.show_combo.addItem(label, status)
        toolbar = QHBoxLayout()
        toolbar.addWidget(self.automap_button)
        toolbar.addWidget(self.confirm_all_button)
        toolbar.addSpacing(16)
        toolbar.addWidget(self.filter_edit, 1)
        toolbar.addWidget(QLabel("Show:"))
        toolbar.addWidget(self.show_combo)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        legend = QHBoxLayout()
        legend.addWidget(hint(QLabel("Confidence:")))
        legend.addWidget(_legend_chip("90% and above", 0.95))
        legend.addWidget(_legend_chip("70–89%: worth a look", 0.8))
        legend.addWidget(_legend_chip("below 70%: check it", 0.5))
        legend.addStretch(1)

        self.model = FieldMapModel(self)
        self.proxy = MapFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        configure_table(self.view)
        self.view.setModel(self.proxy)
        self.view.setItemDelegateForColumn(FieldMapModel.TARGET, TargetDelegate(self.model, self.view))
        self.view.setEditTriggers(
            QTableView.EditTrigger.DoubleClicked
            | QTableView.EditTrigger.EditKeyPressed
            | QTableView.EditTrigger.SelectedClicked
        )
        self.view.verticalHeader().hide()
        header = self.view.horizontalHeader()
        widths = {  # the Reason column takes the rest; the full text shows below the grid
            FieldMapModel.OBJECT: 110,
            FieldMapModel.FIELD: 140,
            FieldMapModel.SAMPLES: 160,
            FieldMapModel.TARGET: 215,
            FieldMapModel.CONFIDENCE: 88,
            FieldMapModel.CONFIRMED: 105,
        }
        for column, width in widths.items():
            header.resizeSection(column, width)
        header.setSectionResizeMode(FieldMapModel.REASON, QHeaderView.ResizeMode.Stretch)

        self.details = QLabel("Select a row to see why it was proposed.")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(self.details.fontMetrics().height() * 2 + 4)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addLayout(toolbar)
        layout.addWidget(self.summary)
        layout.addLayout(legend)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.banner)

        self.automap_button.clicked.connect(self.run_automap)
        self.confirm_all_button.clicked.connect(self.confirm_all)
        self.filter_edit.textChanged.connect(self._filter_changed)
        self.show_combo.currentIndexChanged.connect(self._filter_changed)
        self.model.changed.connect(self._map_changed)
        self.model.changed.connect(self._show_details)
        self.view.selectionModel().currentRowChanged.connect(self._show_details)
        self.model.error.connect(self._edit_refused)

    # ------------------------------------------------------------------ actions
    def run_automap(self) -> None:
        if self.runner.busy:
            return
        set_banner(self.banner, "Proposing a map from the imported columns…", "info")
        self.runner.start(
            self.state.project_path,
            _automap_operation,
            name="automap",  # type: ignore[arg-type]
            on_finished=self._automap_finished,
            on_failed=self._automap_failed,
        )

    @Slot(object)
    def _automap_finished(self, result: tuple[int, int]) -> None:
        proposed, unmapped = result
        self.model.refresh()
        set_banner(
            self.banner,
            f"Automap proposed {proposed} mapping(s); {unmapped} column(s) have no target "
            "and will not be migrated unless you give them one.",
            "info",
        )
        self._map_changed()

    @Slot(str)
    def _automap_failed(self, message: str) -> None:
        set_banner(self.banner, message, "error")

    def confirm_all(self) -> None:
        try:
            count = maps.accept(self.project, actor=self.model.actor)
        except MigratorError as exc:
            set_banner(self.banner, str(exc), "error")
            return
        self.model.refresh()
        set_banner(self.banner, f"Confirmed {count} proposed row(s) and their picklist value mappings.", "success")
        self._map_changed()

    @Slot(str)
    def _edit_refused(self, message: str) -> None:
        set_banner(self.banner, message, "error")

    def _show_details(self, *_args: Any) -> None:
        """The selected row's full reason and samples, which the grid can only elide."""
        index = self.view.currentIndex()
        row = self.proxy.data(index, Qt.ItemDataRole.UserRole) if index.isValid() else None
        if row is None:
            self.details.setText("Select a row to see why it was proposed.")
            return
        target = f"{row['target_entity']}.{row['target_field']}" if row["target_entity"] else "not migrated"
        who = f" Confirmed by {row['confirmed_by']}." if row.get("confirmed_by") else ""
        samples = ", ".join(str(v) for v in row["samples"]) or "no values"
        self.details.setText(
            f"<b>{row['source_object']}.{row['source_field']}</b> → <b>{target}</b>: {row['reason']}."
            f" Samples: {samples}.{who}"
        )

    def _filter_changed(self, *_args: Any) -> None:
        self.proxy.set_filter(self.filter_edit.text(), self.show_combo.currentData())

    # ------------------------------------------------------------------ state
    def _pending_values(self) -> int:
        values = maps.show_map(self.project)["value_maps"]
        return sum(1 for v in values if v["status"] == "proposed")

    def _map_changed(self) -> None:
        counts = self.model.counts()
        total = sum(counts.values())
        if not total:
            self.summary.setText("No map yet. Press <b>Run automap</b> to propose one from the imported columns.")
        else:
            confirmed = maps.is_confirmed(self.project)
            pending_values = self._pending_values()
            gate = (
                "<span style='color:#1c5e33'><b>✔ Map confirmed</b> — records may move.</span>"
                if confirmed
                else "<span style='color:#8a1c12'><b>Not confirmed yet</b> — records cannot move.</span>"
            )
            values = f", {pending_values} picklist value mapping(s) to confirm" if pending_values else ""
            self.summary.setText(
                f"{gate}&nbsp;&nbsp; {total} source columns: {counts['confirmed']} confirmed, "
                f"{counts['proposed']} to review, {counts['unmapped']} not migrated{values}."
            )
        self.confirm_all_button.setEnabled(not self.runner.busy and total > 0)
        self.completeChanged.emit()

    def busy_changed(self, busy: bool) -> None:
        self.automap_button.setEnabled(not busy)
        self.confirm_all_button.setEnabled(not busy and self.model.rowCount() > 0)
        self.view.setEnabled(not busy)

    # ------------------------------------------------------------------ QWizardPage
    def initializePage(self) -> None:
        self.model.set_project(self.project)
        self._map_changed()

    def isComplete(self) -> bool:
        return not self.runner.busy and self.state.project is not None and maps.is_confirmed(self.project)

    def shutdown(self) -> None:
        super().shutdown()
        self.model.set_project(None)
