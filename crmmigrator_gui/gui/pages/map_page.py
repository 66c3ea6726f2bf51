"""Step 4, Map: the auto-mapper proposes, the consultant reviews, edits and confirms.

The grid filters by what needs a look (to review, unmapped, required, low confidence, changed by the
customer); the side panel edits the selected row's value map and transform. The map travels to the
customer as a review workbook and comes back as a diff the consultant applies or not.

No record moves until the map is confirmed: ``isComplete()`` is the engine's ``is_confirmed``. Every
slow step (automap, reading destination metadata, the workbook, creating an option) runs on a worker.
"""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps, values
from crmmigrator_gui.gui.models import (
    HIGH_CONFIDENCE,
    LOW_CONFIDENCE,
    MAP_FILTERS,
    FieldMapModel,
    row_target,
)
from crmmigrator_gui.gui.pages import map_tasks
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.pages.map_editors import ValueMapEditor
from crmmigrator_gui.gui.pages.map_grid import CHIP_STYLE, MapFilter, TargetDelegate, legend_chip
from crmmigrator_gui.gui.pages.review_dialog import ReviewDiffDialog
from crmmigrator_gui.gui.pages.transform_editor import TransformEditor
from crmmigrator_gui.gui.widgets import configure_table
from crmmigrator_gui.gui.worker import TaskRunner

REVIEW_FILTER = "Excel workbook (*.xlsx)"


class MapPage(BasePage):
    """The editable field map, its value maps and transforms, the review workbook, and the confirm gate."""

    def __init__(self) -> None:
        super().__init__(
            "Map",
            "Review how each source column lands in the destination. Filter to what needs a look, double-click a "
            "destination to change it, and edit value maps and transforms on the right. No record moves until the "
            "map is confirmed.",
        )
        self.meta_runner = TaskRunner(self)  # destination metadata: never holds up the consultant's own actions
        self._required_cache: dict[str, list[str]] = {}
        self._required_wanted = False
        self._last_review_path: Path | None = None
        self.diff_dialog: ReviewDiffDialog | None = None

        # -------------------------------------------------------------- toolbar
        self.automap_button = QPushButton("Run automap")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.5, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(HIGH_CONFIDENCE)
        self.threshold.setToolTip("Rows proposed with at least this confidence are confirmed; the rest stay to review.")
        self.accept_button = QPushButton("Accept all ≥")
        self.accept_button.setToolTip(self.threshold.toolTip())
        self.confirm_all_button = QPushButton("Confirm all")
        self.export_button = QPushButton("Export for review…")
        self.export_button.setToolTip("Write the map to an Excel workbook the customer can review and edit offline.")
        self.import_button = QPushButton("Import review…")
        self.import_button.setToolTip("Read the customer's edited workbook and show what changed before applying it.")
        toolbar = QHBoxLayout()
        toolbar.addWidget(self.automap_button)
        toolbar.addSpacing(12)
        toolbar.addWidget(self.accept_button)
        toolbar.addWidget(self.threshold)
        toolbar.addWidget(self.confirm_all_button)
        toolbar.addStretch(1)
        toolbar.addWidget(self.export_button)
        toolbar.addWidget(self.import_button)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Search object.field, destination or notes…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(220)
        self.chip_group = QButtonGroup(self)
        self.chip_group.setExclusive(True)
        self.chips: dict[str, QToolButton] = {}
        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit, 1)
        filters.addSpacing(8)
        for key, (label, tip) in MAP_FILTERS.items():
            chip = QToolButton()
            chip.setText(label)
            chip.setToolTip(tip)
            chip.setCheckable(True)
            chip.setStyleSheet(CHIP_STYLE)
            chip.setProperty("filter", key)
            self.chip_group.addButton(chip)
            self.chips[key] = chip
            filters.addWidget(chip)
        self.chips["all"].setChecked(True)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        legend = QHBoxLayout()
        legend.addWidget(self.summary, 1)
        legend.addWidget(hint(QLabel("Confidence:")))
        legend.addWidget(legend_chip(f"≥ {HIGH_CONFIDENCE:.0%}", 0.95))
        legend.addWidget(legend_chip(f"{LOW_CONFIDENCE:.0%}–{HIGH_CONFIDENCE:.0%}", 0.8))
        legend.addWidget(legend_chip(f"< {LOW_CONFIDENCE:.0%}", 0.5))
        legend.addWidget(hint(QLabel("✱ required")))

        # -------------------------------------------------------------- grid
        self.model = FieldMapModel(self)
        self.proxy = MapFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        configure_table(self.view)
        self.view.setModel(self.proxy)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setItemDelegateForColumn(FieldMapModel.TARGET, TargetDelegate(self.model, self.view))
        self.view.setEditTriggers(
            QTableView.EditTrigger.DoubleClicked
            | QTableView.EditTrigger.EditKeyPressed
            | QTableView.EditTrigger.SelectedClicked
        )
        self.view.verticalHeader().hide()
        self.view.setColumnHidden(FieldMapModel.SAMPLES, True)  # shown in the side panel and the preview
        header = self.view.horizontalHeader()
        widths = {
            FieldMapModel.OBJECT: 96,
            FieldMapModel.FIELD: 130,
            FieldMapModel.TARGET: 220,
            FieldMapModel.CONFIDENCE: 82,
            FieldMapModel.CONFIRMED: 96,
        }
        for column, width in widths.items():
            header.resizeSection(column, width)
        header.setSectionResizeMode(FieldMapModel.NOTES, QHeaderView.ResizeMode.Stretch)
        self.empty = hint(QLabel())
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setVisible(False)

        # -------------------------------------------------------------- side panel
        self.details = QTextBrowser()  # long reasons scroll instead of being cut off
        self.details.setOpenLinks(False)
        self.details.setFrameShape(QFrame.Shape.StyledPanel)
        self.details.setStyleSheet("QTextBrowser { background: palette(window); }")
        line = self.details.fontMetrics().lineSpacing()
        self.details.setFixedHeight(line * 8 + 14)
        self.value_editor = ValueMapEditor()
        self.transform_editor = TransformEditor()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.value_editor, "Value map")
        self.tabs.addTab(self.transform_editor, "Transform")
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.details)
        side_layout.addWidget(self.tabs, 1)

        grid_host = QWidget()
        grid_layout = QVBoxLayout(grid_host)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.view, 1)
        grid_layout.addWidget(self.empty)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(grid_host)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        side.setMinimumWidth(360)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addLayout(toolbar)
        layout.addLayout(filters)
        layout.addLayout(legend)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.banner)

        self.automap_button.clicked.connect(self.run_automap)
        self.accept_button.clicked.connect(self.accept_above_threshold)
        self.confirm_all_button.clicked.connect(self.confirm_all)
        self.export_button.clicked.connect(self._choose_export_path)
        self.import_button.clicked.connect(self._choose_review_to_import)
        self.filter_edit.textChanged.connect(self._filter_changed)
        self.chip_group.buttonClicked.connect(self._filter_changed)
        self.model.changed.connect(self._map_changed)
        self.model.error.connect(self._edit_refused)
        self.model.modelReset.connect(self._show_selected)
        self.view.selectionModel().currentRowChanged.connect(self._show_selected)
        self.value_editor.changed.connect(self._values_changed)
        self.value_editor.error.connect(self._edit_refused)
        self.value_editor.add_option_requested.connect(self._ask_option_label)
        self.transform_editor.applied.connect(self._transform_applied)
        self.transform_editor.error.connect(self._edit_refused)
        self.meta_runner.busy_changed.connect(self._meta_busy_changed)

    # ------------------------------------------------------------------ selection
    def selected_row(self) -> dict[str, Any] | None:
        index = self.view.currentIndex()
        return self.proxy.data(index, Qt.ItemDataRole.UserRole) if index.isValid() else None

    def select_source_row(self, number: int) -> bool:
        """Select a model row (if the filter shows it) and bring it into view."""
        proxy_index = self.proxy.mapFromSource(self.model.index(number, FieldMapModel.FIELD))
        if not proxy_index.isValid():
            return False
        self.view.setCurrentIndex(proxy_index)
        self.view.scrollTo(proxy_index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def _show_selected(self, *_args: Any) -> None:
        row = self.selected_row()
        project = self.state.project if self.wizard() is not None else None
        self._show_details(row)
        self.value_editor.set_row(project, row)
        columns = project.source_columns(row["source_object"]) if project is not None and row else []
        self.transform_editor.set_row(project, row, columns)
        values_count = self.value_editor.model.rowCount()
        self.tabs.setTabText(0, f"Value map ({values_count})" if values_count else "Value map")

    def _show_details(self, row: dict[str, Any] | None) -> None:
        if row is None:
            self.details.setHtml("Select a row to see why it was proposed and to edit its value map and transform.")
            return
        target = row_target(row) or "not migrated"
        required = (row.get("target_entity"), row.get("target_field")) in self.model.required
        samples = ", ".join(str(v) for v in row.get("samples") or []) or "no values"
        lines = [
            f"<b>{escape(row['source_object'])}.{escape(row['source_field'])}</b> → <b>{escape(target)}</b>"
            + (" <span style='color:#8a1c12'>(required at the destination)</span>" if required else ""),
            escape(str(row.get("reason") or "no reason recorded")),
            f"<span style='color:#6b6b6b'>Samples: {escape(samples)}</span>",
        ]
        if row.get("confirmed_by"):
            lines.append(f"Confirmed by {escape(str(row['confirmed_by']))} at {escape(str(row.get('confirmed_at')))}.")
        blue = "<span style='color:#1d3f6e'>✎ {}</span>"
        if row.get("customer_change"):
            lines.append(blue.format(f"Changed by the customer: {escape(str(row['customer_change']))}"))
        if row.get("values_changed_by_customer"):
            count = row["values_changed_by_customer"]
            lines.append(blue.format(f"The customer changed {count} value mapping(s): see the Value map tab."))
        if row.get("notes"):
            lines.append(f"Notes: {escape(str(row['notes']))}")
        self.details.setHtml("<br>".join(lines))

    # ------------------------------------------------------------------ filters
    def current_filter(self) -> str:
        button = self.chip_group.checkedButton()
        return str(button.property("filter")) if button is not None else "all"

    def set_filter(self, key: str, text: str | None = None) -> None:
        self.chips[key].setChecked(True)
        if text is not None:
            self.filter_edit.setText(text)
        self._filter_changed()

    def _filter_changed(self, *_args: Any) -> None:
        self.proxy.set_filter(self.filter_edit.text(), self.current_filter())
        shown = self.proxy.rowCount()
        self.empty.setVisible(shown == 0 and self.model.rowCount() > 0)
        self.empty.setText("No row matches this filter.")
        if self.selected_row() is None:
            self._show_selected()

    def _update_chips(self) -> None:
        counts = self.model.filter_counts()
        for key, chip in self.chips.items():
            label = MAP_FILTERS[key][0]
            chip.setText(f"{label} · {counts[key]}")
        if not self._required_cache and self.model.entities():
            self.chips["required"].setToolTip(MAP_FILTERS["required"][1] + " (reading the destination's metadata…)")
        else:
            self.chips["required"].setToolTip(MAP_FILTERS["required"][1])

    def focus_field(self, source_object: str, field: str | None, message: str = "") -> bool:
        """Show one object's field (from a pre-flight finding): clear the filters, select its row."""
        self.model.refresh()
        number = self.model.find(source_object, field)
        if number is None:
            self.set_filter("all", source_object)
            set_banner(
                self.banner,
                f"{source_object}.{field or ''} is not a row of the map (it may be a destination column). "
                f"{message}".strip(),
                "warning",
            )
            return False
        row = self.model.row(number)
        self.set_filter("all", f"{row['source_object']}.{row['source_field']}")
        self.select_source_row(number)
        if message:
            set_banner(self.banner, f"Pre-flight: {message}", "warning")
        return True

    # ------------------------------------------------------------------ actions
    def run_automap(self) -> None:
        if self.runner.busy:
            return
        set_banner(self.banner, "Proposing a map from the imported columns…", "info")
        self.runner.start(
            self.state.project_path,
            map_tasks.automap_operation,
            name="automap",
            on_finished=self._automap_finished,
            on_failed=self._failed,
        )

    @Slot(object)
    def _automap_finished(self, result: tuple[int, int]) -> None:
        proposed, unmapped = result
        self.model.refresh()
        self._show_selected()
        self.view.setFocus()
        set_banner(
            self.banner,
            f"Automap proposed {proposed} mapping(s); {unmapped} column(s) have no destination "
            "and will not be migrated unless you give them one.",
            "info",
        )
        self._map_changed()

    @Slot(str)
    def _failed(self, message: str) -> None:
        set_banner(self.banner, message, "error")

    def accept_above_threshold(self) -> None:
        threshold = round(self.threshold.value(), 2)
        try:
            count = maps.accept(self.project, min_confidence=threshold, actor=self.model.actor)
        except MigratorError as exc:
            set_banner(self.banner, str(exc), "error")
            return
        self.model.refresh()
        left = self.model.counts()["proposed"]
        set_banner(
            self.banner,
            f"Confirmed {count} row(s) proposed with {threshold:.0%} confidence or more; {left} still to review.",
            "success" if not left else "info",
        )
        self._map_changed()
        if left:
            self.set_filter("review")

    def confirm_all(self) -> None:
        try:
            count = maps.accept(self.project, actor=self.model.actor)
        except MigratorError as exc:
            set_banner(self.banner, str(exc), "error")
            return
        self.model.refresh()
        set_banner(self.banner, f"Confirmed {count} proposed row(s) and their value mappings.", "success")
        self._map_changed()

    @Slot(str)
    def _edit_refused(self, message: str) -> None:
        set_banner(self.banner, message, "error")

    def _values_changed(self) -> None:
        self._map_changed(keep_selection=True)

    def _transform_applied(self) -> None:
        row = self.selected_row()
        self.model.refresh()
        self._map_changed(keep_selection=True)
        self._show_selected()  # the editors show the stored spec now
        if row is not None:
            set_banner(
                self.banner,
                f"Transform of {row['source_object']}.{row['source_field']} saved; the row is confirmed.",
                "success",
            )

    # ------------------------------------------------------------------ destination options (worker)
    def _ask_option_label(self, entity: str, field: str, suggested: str, row_id: int) -> None:
        label, ok = QInputDialog.getText(
            self,
            "Add option to destination",
            f"New option for {entity}.{field} (created at the destination through its metadata API):",
            QLineEdit.EchoMode.Normal,
            suggested,
        )
        if ok and label.strip():
            self.add_option(entity, field, label.strip(), row_id)

    def add_option(self, entity: str, field: str, label: str, row_id: int | None = None) -> None:
        """Create ``label`` in the destination's choice column on the worker, then use it for ``row_id``."""
        if self.runner.busy:
            return
        set_banner(self.banner, f"Adding “{label}” to {entity}.{field} at the destination…", "info")
        self.runner.start(
            self.state.project_path,
            functools.partial(map_tasks.add_option_operation, entity, field, label, row_id, self.model.actor),
            name="add option",
            on_finished=functools.partial(self._option_added, entity, field),
            on_failed=self._failed,
        )

    def _option_added(self, entity: str, field: str, option: dict) -> None:
        self.value_editor.model.refresh()
        self._map_changed(keep_selection=True)
        stored = (
            f" (stored as {option['value']})"
            if option.get("value") is not None
            else "; the column does not exist yet, so it is created with this option by the schema step"
        )
        set_banner(self.banner, f"Option “{option['label']}” is available in {entity}.{field}{stored}.", "success")

    # ------------------------------------------------------------------ review workbook (worker)
    def default_review_path(self) -> Path:
        project_path = self.state.project_path or Path.home() / "map"
        return project_path.parent / f"{project_path.stem}-map-review.xlsx"

    def _choose_export_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the map for review", str(self.default_review_path()), REVIEW_FILTER
        )
        if path:
            self.export_review_to(Path(path))

    def export_review_to(self, path: Path) -> None:
        if self.runner.busy:
            return
        path = path if path.suffix.lower() == ".xlsx" else path.with_suffix(".xlsx")
        set_banner(self.banner, f"Writing the review workbook {path.name}…", "info")
        self.runner.start(
            self.state.project_path,
            functools.partial(map_tasks.export_operation, path),
            name="review export",
            on_finished=functools.partial(self._exported, path),
            on_failed=self._failed,
        )

    def _exported(self, path: Path, result: dict) -> None:
        self._last_review_path = path
        sheets = result.get("sheets") if isinstance(result, dict) else None
        rows = result.get("rows") if isinstance(result, dict) else None
        count = len(sheets) if isinstance(sheets, list | tuple | dict) else sheets
        what = f" ({rows} row(s) on {count} sheet(s))" if rows is not None and count is not None else ""
        set_banner(
            self.banner,
            f"Saved {path}{what}. Send it to the customer; when it comes back, use Import review… to see and "
            "apply their changes.",
            "success",
        )

    def _choose_review_to_import(self) -> None:
        start = self._last_review_path or self.default_review_path()
        path, _ = QFileDialog.getOpenFileName(self, "Import the customer's review", str(start), REVIEW_FILTER)
        if path:
            self.import_review_from(Path(path))

    def import_review_from(self, path: Path) -> None:
        """Read the workbook on the worker, then show the diff; nothing is applied yet."""
        if self.runner.busy:
            return
        set_banner(self.banner, f"Reading {path.name}…", "info")
        self.runner.start(
            self.state.project_path,
            functools.partial(map_tasks.read_review_operation, path),
            name="review import",
            on_finished=functools.partial(self._review_read, path),
            on_failed=self._failed,
        )

    def _review_read(self, path: Path, diff: Any) -> None:
        changes = list(getattr(diff, "changes", []) or [])
        errors = list(getattr(diff, "errors", []) or [])
        if not changes and not errors:
            set_banner(self.banner, f"{path.name} has no changes: the map is as the customer saw it.", "success")
            return
        set_banner(self.banner, f"{len(changes)} change(s) in {path.name}: review them before applying.", "info")
        dialog = ReviewDiffDialog(diff, path.name, self)
        dialog.accepted.connect(functools.partial(self.apply_review, diff, path.name))
        dialog.rejected.connect(
            lambda: set_banner(self.banner, f"The changes in {path.name} were not applied.", "warning")
        )
        dialog.destroyed.connect(self._diff_dialog_closed)
        self.diff_dialog = dialog
        dialog.open()

    def _diff_dialog_closed(self, *_args: Any) -> None:
        self.diff_dialog = None

    def apply_review(self, diff: Any, filename: str = "the workbook") -> None:
        if self.runner.busy:
            return
        set_banner(self.banner, f"Applying the changes from {filename}…", "info")
        self.runner.start(
            self.state.project_path,
            functools.partial(map_tasks.apply_review_operation, diff, self.model.actor),
            name="review apply",
            on_finished=functools.partial(self._review_applied, filename),
            on_failed=self._failed,
        )

    def _review_applied(self, filename: str, count: int) -> None:
        self.model.refresh()
        self._map_changed()
        self._show_selected()
        set_banner(
            self.banner,
            f"Applied {count} change(s) from {filename}; they show under “Changed by customer”.",
            "success",
        )

    # ------------------------------------------------------------------ destination metadata (worker)
    def _refresh_required(self) -> None:
        """Read the required columns of entities not seen yet, in the background."""
        missing = sorted(self.model.entities() - set(self._required_cache))
        if not missing or self.state.project_path is None:
            return
        if self.meta_runner.busy:
            self._required_wanted = True
            return
        self.meta_runner.start(
            self.state.project_path,
            functools.partial(map_tasks.required_operation, missing),
            name="destination metadata",
            on_finished=self._required_read,
            on_failed=self._required_failed,
        )

    def _required_read(self, found: dict[str, list[str]]) -> None:
        self._required_cache.update(found)
        self.model.set_required({(e, f) for e, fields in self._required_cache.items() for f in fields})
        self._filter_changed()
        self._update_chips()

    def _required_failed(self, message: str) -> None:
        self.chips["required"].setToolTip(f"The destination's required columns could not be read: {message}")

    def _meta_busy_changed(self, busy: bool) -> None:
        if not busy and self._required_wanted:
            self._required_wanted = False
            self._refresh_required()

    # ------------------------------------------------------------------ state
    def _pending_values(self) -> int:
        proposed, unmapped = values.pending_values(self.project)
        return proposed + unmapped

    def _map_changed(self, *_args: Any, keep_selection: bool = False) -> None:
        selected = self.selected_row()
        counts = self.model.counts()
        total = sum(counts.values())
        if not total:
            self.summary.setText("No map yet. Press <b>Run automap</b> to propose one from the imported columns.")
        else:
            confirmed = maps.is_confirmed(self.project)
            pending_values = self._pending_values()
            gate = (
                "<span style='color:#1c5e33'><b>✔ Map confirmed</b></span> — records may move."
                if confirmed
                else "<span style='color:#8a1c12'><b>Not confirmed yet</b></span> — records cannot move."
            )
            values_text = f", {pending_values} value mapping(s) to decide" if pending_values else ""
            self.summary.setText(
                f"{gate}&nbsp;&nbsp;{total} source columns: {counts['confirmed']} confirmed, "
                f"{counts['proposed']} to review, {counts['unmapped']} not migrated{values_text}."
            )
        busy = self.runner.busy
        self.confirm_all_button.setEnabled(not busy and total > 0)
        self.accept_button.setEnabled(not busy and counts["proposed"] > 0)
        self.export_button.setEnabled(not busy and total > 0)
        self._update_chips()
        self._filter_changed()
        if keep_selection and selected is not None:
            number = self.model.row_number(int(selected["id"]))
            if number is not None:
                self.select_source_row(number)
        self._refresh_required()
        self._show_details(self.selected_row())
        self.completeChanged.emit()

    def busy_changed(self, busy: bool) -> None:
        total = self.model.rowCount()
        for button in (self.automap_button, self.import_button):
            button.setEnabled(not busy)
        self.confirm_all_button.setEnabled(not busy and total > 0)
        self.accept_button.setEnabled(not busy and self.model.counts()["proposed"] > 0)
        self.export_button.setEnabled(not busy and total > 0)
        self.view.setEnabled(not busy)
        self.tabs.setEnabled(not busy)
        focus = QApplication.focusWidget()
        if not busy and (focus is None or focus is self.threshold or self.threshold.isAncestorOf(focus)):
            self.view.setFocus()  # disabling the grid pushed the focus into the spin box; give it back

    # ------------------------------------------------------------------ QWizardPage
    def initializePage(self) -> None:
        width = max(self.width(), 900)
        self.splitter.setSizes([width * 64 // 100, width * 36 // 100])
        self.model.set_project(self.project)
        self._map_changed()
        self._show_selected()
        self.view.setFocus()

    def isComplete(self) -> bool:
        return not self.runner.busy and self.state.project is not None and maps.is_confirmed(self.project)

    def shutdown(self) -> None:
        super().shutdown()
        self.meta_runner.shutdown()
        if self.diff_dialog is not None:
            self.diff_dialog.close()
        self.model.set_project(None)
