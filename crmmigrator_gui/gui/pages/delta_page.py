"""Step 8 (optional), Delta: pick up what changed in the source during cutover and apply it the same idempotent way.

Why a page of its own: between the full load and go-live the customer keeps working, so the consultant brings a
newer export (or reads the source API from its high-water mark), sees per object what is new, changed, unchanged
and deleted, decides what happens to deletions, and applies it as a run in the same ledger (reconciled, and
rolled back like any other). Detect and Apply run on the worker; Apply is watched, paused and cancelled with the
same panel as the Load page. Nothing here is required: Next works without a delta.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.results import RunResult
from crmmigrator_gui.engine.source.extract import EXTRACTORS
from crmmigrator_gui.gui.models import Column, RecordsModel
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.pages.load_page import progress_rows
from crmmigrator_gui.gui.pages.run_progress import RunProgressPanel
from crmmigrator_gui.gui.widgets import configure_table, format_duration, heading

FILE_FILTER = "Export files (*.csv *.tsv *.txt *.xlsx *.xlsm *.json);;All files (*)"
PLAN_COLUMNS = [
    Column("source_object", "Object"),
    Column("new", "New", numeric=True),
    Column("changed", "Changed", numeric=True),
    Column("unchanged", "Unchanged", numeric=True),
    Column("deleted", "Deleted", numeric=True, alert=True),
]
DELETED_COLUMNS = [
    Column("source_object", "Object"),
    Column("source_id", "Source id"),
    Column("state", "At the destination"),
]
STATUS_TEXT = {
    "completed": "Delta applied",
    "completed_with_failures": "Delta applied with failures",
    "cancelled": "Delta cancelled",
    "interrupted": "Delta interrupted",
}


def _delta_engine() -> Any:
    """The delta engine, imported when first used (the wizard opens without touching it)."""
    from crmmigrator_gui.engine.run import delta

    return delta


class DropList(QListWidget):
    """The newer export files; files and folders can be dropped on it from the file manager."""

    def __init__(self) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.setToolTip("Drop newer export files or a folder here")
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def paths(self) -> list[Path]:
        return [Path(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def add_paths(self, paths: list[Path]) -> None:
        """Listed by name then folder (the name is what a person recognises), the full path as tooltip."""
        known = {str(p) for p in self.paths()}
        for path in paths:
            if str(path) not in known:
                item = QListWidgetItem(f"{path.name}  —  {path.parent}")
                item.setData(Qt.ItemDataRole.UserRole, str(path))
                item.setToolTip(str(path))
                self.addItem(item)
                known.add(str(path))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: Any) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            super().dropEvent(event)
            return
        self.add_paths([Path(u.toLocalFile()) for u in urls])
        event.acceptProposedAction()


class DeltaPage(BasePage):
    """Detect a delta from newer files or the source API, review it per object, apply it (optional step)."""

    def __init__(self) -> None:
        super().__init__(
            "Delta (optional)",
            "Records created, changed or deleted in the source since the full load: bring a newer export, or read "
            "the source API since the last extraction. New and changed records are applied like the load "
            "(upserted by source id); deletions are only reported unless you choose otherwise.",
        )
        # --- where the newer data comes from
        self.files_radio = QRadioButton("Newer export files")
        self.api_radio = QRadioButton("From the source API since the last extraction")
        self.source_group = QButtonGroup(self)
        self.source_group.addButton(self.files_radio)
        self.source_group.addButton(self.api_radio)
        self.files_radio.setChecked(True)
        self.file_list = DropList()
        self.file_list.setMinimumHeight(40)
        self.file_list.setMaximumHeight(48)
        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.clear_button = QPushButton("Clear")
        file_buttons = QHBoxLayout()
        file_buttons.addWidget(self.add_files_button)
        file_buttons.addWidget(self.add_folder_button)
        file_buttons.addWidget(self.clear_button)
        file_buttons.addStretch(1)
        self.detect_button = QPushButton("Detect changes")
        self.api_note = hint(QLabel(""))
        self.api_note.setWordWrap(True)
        source_box = QGroupBox("1. Newer data")
        source_layout = QVBoxLayout(source_box)
        source_layout.setSpacing(4)
        source_layout.addWidget(self.files_radio)
        source_layout.addWidget(self.file_list)
        source_layout.addLayout(file_buttons)
        source_layout.addWidget(self.api_radio)
        source_layout.addWidget(self.api_note)
        file_buttons.addWidget(self.detect_button)

        # --- what changed
        self.plan_model = RecordsModel(PLAN_COLUMNS, self)
        self.plan_view = QTableView()
        self.plan_view.setModel(self.plan_model)
        configure_table(self.plan_view)
        self.plan_view.verticalHeader().setVisible(False)
        plan_header = self.plan_view.horizontalHeader()
        plan_header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        plan_header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.plan_note = QLabel("Nothing detected yet.")
        self.plan_note.setWordWrap(True)
        self.plan_note.setTextFormat(Qt.TextFormat.RichText)
        plan_box = QGroupBox("2. What changed in the source")
        plan_layout = QVBoxLayout(plan_box)
        plan_layout.addWidget(self.plan_view, 1)
        plan_layout.addWidget(self.plan_note)

        # --- deletions and apply
        self.report_radio = QRadioButton("Report only (leave them at the destination)")
        self.delete_radio = QRadioButton("Delete at the destination (rollback restores them)")
        self.deletes_group = QButtonGroup(self)
        self.deletes_group.addButton(self.report_radio)
        self.deletes_group.addButton(self.delete_radio)
        self.report_radio.setChecked(True)
        self.apply_button = QPushButton("Apply delta")
        self.apply_button.setMinimumWidth(120)
        apply_box = QGroupBox("3. Records deleted in the source")
        apply_layout = QVBoxLayout(apply_box)
        apply_layout.setSpacing(4)
        apply_layout.addWidget(self.report_radio)
        apply_layout.addWidget(self.delete_radio)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(source_box)
        left_layout.addWidget(plan_box, 1)
        left_layout.addWidget(apply_box)

        # --- applying: the Load page's panel, plus the deleted records
        self.panel = RunProgressPanel(verb="Applying", progress_title="Applying, by object")
        self.pause_button = self.panel.pause_button
        self.cancel_button = self.panel.cancel_button
        self.outcome = heading("")
        run_row = QHBoxLayout()
        run_row.addWidget(self.apply_button)
        run_row.addWidget(self.pause_button)
        run_row.addWidget(self.cancel_button)
        run_row.addSpacing(8)
        run_row.addWidget(self.outcome, 1)
        self.deleted_model = RecordsModel(DELETED_COLUMNS, self)
        self.deleted_view = QTableView()
        self.deleted_view.setModel(self.deleted_model)
        configure_table(self.deleted_view)
        self.deleted_view.verticalHeader().setVisible(False)
        deleted_header = self.deleted_view.horizontalHeader()
        deleted_header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        deleted_header.setStretchLastSection(True)
        self.deleted_box = QGroupBox("Deleted in the source (0)")
        deleted_layout = QVBoxLayout(self.deleted_box)
        deleted_layout.addWidget(self.deleted_view)
        self.panel.splitter.addWidget(self.deleted_box)
        self.panel.splitter.setStretchFactor(0, 3)
        self.panel.splitter.setStretchFactor(1, 1)
        self.panel.splitter.setStretchFactor(2, 2)
        self.panel.splitter.setSizes([260, 110, 170])
        self.deleted_box.setVisible(False)  # until an applied delta lists some
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(run_row)
        right_layout.addWidget(self.panel, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([470, 760])

        self.optional_note = hint(QLabel("This step is optional: with no delta, Next goes on to the results."))
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.optional_note)
        layout.addWidget(self.banner)

        self.plan: Any = None  # the engine's DeltaPlan
        self.result: RunResult | None = None
        self.confirm_box: QMessageBox | None = None
        self.add_files_button.clicked.connect(self.browse_files)
        self.add_folder_button.clicked.connect(self.browse_folder)
        self.clear_button.clicked.connect(self.file_list.clear)
        self.detect_button.clicked.connect(self.start_detect)
        self.apply_button.clicked.connect(self.ask_apply)
        self.files_radio.toggled.connect(self._update_buttons)
        self.file_list.model().rowsInserted.connect(self._update_buttons)
        self.file_list.model().rowsRemoved.connect(self._update_buttons)
        self.file_list.model().modelReset.connect(self._update_buttons)

    # ------------------------------------------------------------------ setup
    def initializePage(self) -> None:
        """Offer the API only for API sources; show a delta already detected and not yet applied."""
        project = self.project
        api = project.source in EXTRACTORS
        self.api_radio.setEnabled(api)
        self.api_note.setText(
            "Reads only what changed since the last extraction (the source's high-water mark)."
            if api
            else "Not available: this source arrives as export files."
        )
        if api and not self.file_list.count():
            self.api_radio.setChecked(True)
        if not self.runner.busy:
            self.panel.step_label.setText("Detect the changes, then press Apply delta.")
            if self.plan is None and self.result is None:
                plan = _delta_engine().pending_delta(project)
                if plan is not None:
                    self._show_plan(plan, "A delta detected earlier is waiting to be applied.")
                else:
                    self._set_rows({})
        self._update_buttons()

    def _set_rows(self, expected: dict[str, int]) -> None:
        """Rows for the parts of the objects the delta writes (expected: source object -> new + changed)."""
        project = self.project
        rows = progress_rows(project, project.source_object_names())
        self.panel.set_rows(
            ((part, title, entity, expected.get(part.partition(".")[0], 0)) for part, title, entity, _n in rows),
            lazy=True,
        )

    def browse_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Newer export files", "", FILE_FILTER)
        self.add_paths([Path(n) for n in names])

    def browse_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "A folder of newer export files")
        if name:
            self.add_paths([Path(name)])

    def add_paths(self, paths: list[Path]) -> None:
        self.file_list.add_paths(paths)
        if paths:
            self.files_radio.setChecked(True)

    def _update_buttons(self, *_: Any) -> None:
        busy = self.runner.busy
        from_files = self.files_radio.isChecked()
        for widget in (self.file_list, self.add_files_button, self.add_folder_button, self.clear_button):
            widget.setEnabled(not busy and from_files)
        self.files_radio.setEnabled(not busy)
        self.detect_button.setEnabled(not busy and (not from_files or self.file_list.count() > 0))
        pending = self.plan is not None and _pending(self.plan) > 0
        self.apply_button.setEnabled(not busy and pending)
        self.report_radio.setEnabled(not busy)
        self.delete_radio.setEnabled(not busy)

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    # ------------------------------------------------------------------ detect
    def start_detect(self) -> None:
        if self.runner.busy:
            return
        paths = self.file_list.paths() if self.files_radio.isChecked() else None
        if paths is not None and not paths:
            return
        set_banner(self.banner, "")
        self.plan_note.setText("Detecting…")

        def operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> Any:
            return _delta_engine().detect_delta(project, paths, progress=progress, cancel=cancel)

        self.runner.start(
            self.state.project_path,
            operation,
            name="delta detect",
            on_progress=self._detect_progress,
            on_finished=lambda plan: self._show_plan(plan, ""),
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )

    @Slot(object)
    def _detect_progress(self, event: ProgressEvent) -> None:
        what = event.message or event.obj or event.step
        counted = f" ({event.done:,} / {event.total:,})" if event.total else ""
        self.plan_note.setText(f"Detecting: {html.escape(what)}{counted}")

    def _show_plan(self, plan: Any, note: str) -> None:
        self.plan, self.result = plan, None
        rows = [dict(o) for o in plan.objects]
        total = {"source_object": "Total"} | {k: sum(int(r.get(k, 0)) for r in rows) for k in PLAN_KEYS}
        self.plan_model.set_rows(rows, total=total)
        lines = []
        partial = sorted(obj for obj, complete in plan.complete.items() if not complete)
        if partial:
            lines.append(
                "<b>Changes-only export</b> for "
                + html.escape(", ".join(partial))
                + ": records missing from it are <i>not</i> deletions, so none are counted as deleted."
            )
        lines.extend(html.escape(w) for w in plan.warnings)
        source = "the newer export" if plan.mode == "files" else "the source API"
        pending = _pending(plan)
        if pending:
            lines.append(
                f"{pending:,} record(s) to apply from {source}: {total['new']:,} new, {total['changed']:,} changed, "
                f"{total['deleted']:,} deleted."
            )
        else:
            lines.append(f"Nothing changed in {source}: there is nothing to apply.")
        self.plan_note.setText("<br>".join(lines))
        to_write = {o["source_object"]: int(o.get("new", 0)) + int(o.get("changed", 0)) for o in rows}
        self._set_rows(to_write)
        writes = sum(to_write.values())
        self.panel.step_label.setText(
            f"Apply delta writes {writes:,} new and changed record(s), upserted by source id; "
            f"{total['deleted']:,} deletion(s) are reported, or deleted if you choose so on the left."
            if pending
            else "Nothing to apply."
        )
        self.deleted_model.set_rows([])
        self.deleted_box.setTitle("Deleted in the source (0)")
        self.deleted_box.setVisible(False)
        if note:
            set_banner(self.banner, note, "info")
        elif pending:
            set_banner(self.banner, "Review the changes, choose what happens to deletions, then Apply delta.", "info")
        else:
            set_banner(self.banner, "No changes found. Press Next to go on to the results.", "success")
        self._update_buttons()
        self.completeChanged.emit()

    # ------------------------------------------------------------------ apply
    def deletes_choice(self) -> str:
        return "apply" if self.delete_radio.isChecked() else "report"

    def ask_apply(self) -> None:
        """Apply; deleting at the destination asks first (it removes customer records, though rollback restores)."""
        if self.runner.busy or self.plan is None:
            return
        deleted = sum(int(o.get("deleted", 0)) for o in self.plan.objects)
        if self.deletes_choice() != "apply" or not deleted:
            self.start_apply()
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Delete at the destination?")
        box.setText(
            f"{deleted:,} record(s) deleted in the source will be deleted at the destination too. Their values are "
            "saved first, so rolling back this delta run restores them."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Delete and apply")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda result: self._confirmed(result == QMessageBox.StandardButton.Yes))
        box.finished.connect(box.deleteLater)
        self.confirm_box = box
        box.open()

    def _confirmed(self, yes: bool) -> None:
        self.confirm_box = None
        if yes:
            self.start_apply()
        else:
            set_banner(self.banner, "Not applied. Choose Report only to keep deleted records at the destination.")

    def start_apply(self) -> None:
        if self.runner.busy or self.plan is None:
            return
        deletes = self.deletes_choice()
        set_banner(self.banner, "")
        self.outcome.setText("")
        monitor = self.panel.prepare()

        def operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> RunResult:
            engine = _delta_engine()
            return engine.apply_delta(project, deletes=deletes, progress=monitor.wrap(progress), cancel=cancel)  # type: ignore[no-any-return]

        worker = self.runner.start(
            self.state.project_path,
            operation,
            name="delta",
            on_progress=self.panel.handle,
            on_finished=self._applied,
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )
        self.panel.started(worker.token)

    @Slot(object)
    def _applied(self, result: RunResult) -> None:
        self.result = result
        totals = self.panel.finished(result)
        self.outcome.setText(f"{STATUS_TEXT.get(result.status, result.status)} in {format_duration(result.seconds)}")
        self.panel.step_label.setText(f"Delta run {result.run_id} finished.")
        delta = result.to_json().get("delta") or {}
        applied = {o["source_object"]: int(o.get("deleted_applied", 0)) for o in delta.get("objects", [])}
        deleted = [
            {
                "source_object": d["source_object"],
                "source_id": d["source_id"],
                "state": "deleted (rollback restores it)"
                if applied.get(d["source_object"])
                else "kept — reported only",
            }
            for d in delta.get("deleted", [])
        ]
        self.deleted_model.set_rows(deleted)
        self.deleted_box.setTitle(
            f"Deleted in the source ({sum(int(o.get('deleted', 0)) for o in delta.get('objects', [])):,})"
        )
        text = (
            f"Delta run {result.run_id}: {totals['created']:,} created, {totals['updated']:,} updated, "
            f"{totals['failed']:,} failed. It is a run in the ledger: the results reconcile it, and it rolls back "
            "like any other."
        )
        if result.warnings:
            text = "\n".join(result.warnings[:3]) + "\n" + text
        set_banner(self.banner, text, "warning" if totals["failed"] else "success")
        self.plan = None
        self._update_buttons()
        self.completeChanged.emit()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.panel.ended()
        self.plan_note.setText(self.plan_note.text() if self.plan is not None else "Nothing detected yet.")
        set_banner(self.banner, message, "error")
        self._update_buttons()

    @Slot()
    def _cancelled(self) -> None:
        self.panel.ended()
        set_banner(
            self.banner,
            "Cancelled between batches. Press Apply delta again to resume; nothing is duplicated.",
            "warning",
        )
        self._update_buttons()

    # ------------------------------------------------------------------ QWizardPage
    def isComplete(self) -> bool:
        """Optional step: Next only waits for a running detect or apply to end."""
        return not self.runner.busy


PLAN_KEYS = ("new", "changed", "unchanged", "deleted")


def _pending(plan: Any) -> int:
    return sum(int(o.get(k, 0)) for o in plan.objects for k in ("new", "changed", "deleted"))
