"""Step 3, Import: stage export files (CSV, TSV, XLSX, JSON or a folder of them) and preview them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelection, Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
)

from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.extract import EXTRACTORS, ExtractResult, extract
from crmmigrator_gui.engine.source.importer import ImportResult, import_paths
from crmmigrator_gui.gui.models import Column, RecordsModel, StagingPreviewModel
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.settings import GuiSettings
from crmmigrator_gui.gui.widgets import configure_table

FILE_FILTER = "Export files (*.csv *.tsv *.txt *.xlsx *.xlsm *.json);;All files (*)"
MAX_COLUMN_WIDTH = 280


def _extract_operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> ExtractResult:
    return extract(project, progress=progress, cancel=cancel)


def _import_operation(
    paths: list[Path], project: Project, progress: ProgressCallback, cancel: CancelToken
) -> ImportResult:
    return import_paths(project, paths, progress=progress, cancel=cancel)


class ImportPage(BasePage):
    """Pick export files, import them on a worker, then review each object's rows."""

    OBJECT_COLUMNS = (
        Column("source_object", "Object"),
        Column("records", "Records", numeric=True),
        Column("columns", "Columns", numeric=True),
    )

    def __init__(self, settings: GuiSettings) -> None:
        super().__init__(
            "Import",
            "Add the export files the customer's platform produced. Each sheet or file is recognised as an "
            "object and staged in the project; nothing is sent anywhere yet.",
        )
        self.settings = settings
        self.last_result: ImportResult | None = None

        files_box = QGroupBox("Export files")
        self.file_list = QListWidget()
        self.file_list.setMaximumHeight(86)
        self.file_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.clear_button = QPushButton("Clear")
        buttons = QVBoxLayout()
        for button in (self.add_files_button, self.add_folder_button, self.clear_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        files_row = QHBoxLayout(files_box)
        files_row.addWidget(self.file_list, 1)
        files_row.addLayout(buttons)

        self.import_button = QPushButton("Import")
        self.import_button.setDefault(False)
        self.import_button.setMinimumWidth(110)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(14)
        self.status = QLabel("Add files or a folder, then press Import.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.extract_button = QPushButton("Extract from the API")
        self.extract_button.setToolTip(
            "Read every object from the source platform's API (the embedded source emulator unless a source "
            "connection was set with `crmmigrator connect PROJECT source`). Run it again later for a delta."
        )
        self.extract_button.setVisible(False)
        run_row = QHBoxLayout()
        run_row.addWidget(self.extract_button)
        run_row.addWidget(self.import_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)

        self.objects_model = RecordsModel(list(self.OBJECT_COLUMNS), self)
        self.objects_view = QTableView()
        configure_table(self.objects_view)
        self.objects_view.setModel(self.objects_model)
        self.objects_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.objects_view.verticalHeader().hide()
        header = self.objects_view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        objects_box = QGroupBox("Imported objects")
        QVBoxLayout(objects_box).addWidget(self.objects_view)

        self.preview_model = StagingPreviewModel(self)
        self.preview_view = QTableView()
        configure_table(self.preview_view)
        self.preview_view.setModel(self.preview_model)
        self.preview_view.horizontalHeader().setDefaultSectionSize(140)
        self.preview_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.preview_caption = hint(QLabel("Select an object to preview its staged rows."))
        self.preview_box = QGroupBox("Preview")
        preview_layout = QVBoxLayout(self.preview_box)
        preview_layout.addWidget(self.preview_view, 1)
        preview_layout.addWidget(self.preview_caption)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(objects_box)
        splitter.addWidget(self.preview_box)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 760])
        splitter.setChildrenCollapsible(False)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(files_box)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.banner)

        self.add_files_button.clicked.connect(self.browse_files)
        self.add_folder_button.clicked.connect(self.browse_folder)
        self.clear_button.clicked.connect(self.file_list.clear)
        self.file_list.model().rowsInserted.connect(self._update_buttons)
        self.file_list.model().modelReset.connect(self._update_buttons)
        self.import_button.clicked.connect(self.start_import)
        self.extract_button.clicked.connect(self.start_extract)
        self.cancel_button.clicked.connect(self.runner.cancel)
        selection = self.objects_view.selectionModel()
        selection.selectionChanged.connect(self._object_selected)
        self.preview_model.rowsInserted.connect(self._update_caption)
        self._update_buttons()

    # ------------------------------------------------------------------ choosing files
    def paths(self) -> list[Path]:
        return [Path(self.file_list.item(i).text()) for i in range(self.file_list.count())]

    def add_paths(self, paths: list[Path]) -> None:
        known = {str(p) for p in self.paths()}
        for path in paths:
            if str(path) not in known:
                self.file_list.addItem(str(path))
                known.add(str(path))
        if paths:
            self.settings.set("paths/last_import_folder", str(paths[0].parent if paths[0].is_file() else paths[0]))

    def browse_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Add export files", self.settings.get("paths/last_import_folder"), FILE_FILTER
        )
        self.add_paths([Path(n) for n in names])

    def browse_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(
            self, "Add a folder of export files", self.settings.get("paths/last_import_folder")
        )
        if name:
            self.add_paths([Path(name)])

    def _update_buttons(self) -> None:
        busy = self.runner.busy
        self.import_button.setEnabled(not busy and self.file_list.count() > 0)
        self.extract_button.setEnabled(not busy)
        for button in (self.add_files_button, self.add_folder_button, self.clear_button):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    # ------------------------------------------------------------------ importing
    def start_import(self) -> None:
        paths = self.paths()
        if paths:
            self._stage(
                functools.partial(_import_operation, list(paths)),
                "import",
                f"Importing {len(paths)} item(s)…",
                self._import_finished,
            )

    def start_extract(self) -> None:
        self._stage(_extract_operation, "extract", "Extracting from the source API…", self._extract_finished)

    def _stage(self, operation: Any, name: str, status: str, on_finished: Any) -> None:
        """Run an import or an extraction on the worker; both stage rows and share progress/failure handling."""
        if self.runner.busy:
            return
        set_banner(self.banner, "")
        self.preview_model.clear()
        self.progress.setRange(0, 0)
        self.status.setText(status)
        self.runner.start(
            self.state.project_path,
            operation,
            name=name,  # type: ignore[arg-type]
            on_progress=self._import_progress,
            on_finished=on_finished,
            on_failed=self._import_failed,
            on_cancelled=self._import_cancelled,
        )

    @Slot(object)
    def _extract_finished(self, result: ExtractResult) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        records = sum(o["records"] for o in result.objects)
        new = sum(o["new"] for o in result.objects)
        changed = sum(o["changed"] for o in result.objects)
        deleted = sum(o["deleted"] for o in result.objects)
        self.status.setText(
            f"Extracted {records:,} records from {len(result.objects)} object(s) in {result.requests:,} requests: "
            f"{new:,} new, {changed:,} changed, {deleted:,} deleted at the source."
        )
        set_banner(self.banner, "\n".join(result.warnings[:6]), "warning" if result.warnings else "info")
        self.refresh_objects()

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    @Slot(object)
    def _import_progress(self, event: ProgressEvent) -> None:
        where = Path(event.message).name if event.message else ""
        state = "staged" if event.total and event.done >= event.total else "read"
        self.status.setText(f"{event.obj}: {event.done:,} rows {state}" + (f" from {where}" if where else ""))

    @Slot(object)
    def _import_finished(self, result: ImportResult) -> None:
        self.last_result = result
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        records = sum(o.records for o in result.objects)
        self.status.setText(f"Imported {records:,} records into {len(result.objects)} object(s).")
        duplicates = sum(o.duplicates_skipped for o in result.objects)
        notes = list(result.warnings)
        if duplicates:
            notes.insert(0, f"{duplicates:,} exact duplicate row(s) were skipped.")
        dropped = [f"{o.name}: {', '.join(o.dropped_columns)}" for o in result.objects if o.dropped_columns]
        if dropped:
            notes.append("Columns never migrated (dropped at import): " + "; ".join(dropped))
        set_banner(self.banner, "\n".join(notes[:6]), "warning" if notes else "info")
        self.refresh_objects(select=result.objects[0].name if result.objects else None)

    @Slot(str)
    def _import_failed(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("The import stopped; the project is unchanged.")
        set_banner(self.banner, message, "error")
        self.refresh_objects()

    @Slot()
    def _import_cancelled(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Import cancelled; the project is unchanged.")
        self.refresh_objects()

    # ------------------------------------------------------------------ objects and preview
    def refresh_objects(self, select: str | None = None) -> None:
        project = self.project
        rows = [
            {
                "source_object": name,
                "records": project.staged_count(name),
                "columns": len(project.source_columns(name)),
            }
            for name in project.source_object_names()
        ]
        current = select or self.preview_model.object_name
        self.objects_model.set_rows(rows)
        names = [r["source_object"] for r in rows]
        if names:
            self.select_object(current if current in names else names[0])
        else:
            self.preview_model.clear()
        self.completeChanged.emit()

    def select_object(self, name: str) -> None:
        for row in range(self.objects_model.rowCount()):
            if self.objects_model.row(row)["source_object"] == name:
                self.objects_view.selectRow(row)
                return

    def _object_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        name = self.objects_model.row(indexes[0].row())["source_object"]
        self.preview_model.set_object(self.project, name)
        if self.preview_model.canFetchMore():
            self.preview_model.fetchMore()
        self.preview_box.setTitle(f"Preview: {name}")
        self.preview_view.resizeColumnsToContents()
        header = self.preview_view.horizontalHeader()
        for column in range(self.preview_model.columnCount()):
            header.resizeSection(column, min(MAX_COLUMN_WIDTH, max(90, header.sectionSize(column) + 12)))
        self._update_caption()

    def _update_caption(self) -> None:
        model = self.preview_model
        if not model.object_name:
            self.preview_caption.setText("Select an object to preview its staged rows.")
            return
        self.preview_caption.setText(
            f"{model.total:,} staged rows, {model.columnCount()} columns — showing the first "
            f"{model.rowCount():,}; more load as you scroll."
        )

    # ------------------------------------------------------------------ QWizardPage
    def initializePage(self) -> None:
        api = self.project.source in EXTRACTORS
        self.extract_button.setVisible(api)
        if api:
            self.setSubTitle(
                "Extract every object from the source platform's API (again later for the changes), or add "
                "export files. Records are staged in the project; nothing is sent anywhere yet."
            )
        self.refresh_objects()

    def isComplete(self) -> bool:
        return not self.runner.busy and self.objects_model.rowCount() > 0

    def shutdown(self) -> None:
        super().shutdown()
        self.preview_model.clear()
