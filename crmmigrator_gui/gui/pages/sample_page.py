"""Step 6, Sample: load a slice for real, read it back, compare it side by side, and sign it off.

Why a page of its own: the customer signs off on records they saw arrive, not on a map. The page runs
:func:`run_sample` on a worker, shows per object → record → field what the source said, what the map
expected and what the destination stored (flagged first), exports that as XLSX, and records the sign-off.
Next is enabled only while a sign-off is valid for the current map (any map edit voids it).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping.signoff import signoff_status
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.sample_diff import export_diff
from crmmigrator_gui.engine.run import sample as sample_engine
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.run.sample import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, FieldDiff, SampleResult
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.pages.sample_models import FieldsModel, RecordsModel, SampledRecord, group_records
from crmmigrator_gui.gui.widgets import configure_table, format_duration, heading

ALL = "__all__"


class _Card(QFrame):
    """A summary figure with its caption and a detail line."""

    def __init__(self, caption: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addWidget(hint(QLabel(caption)))
        self.value = heading("—")
        self.detail = hint(QLabel(""))
        self.detail.setWordWrap(True)
        layout.addWidget(self.value)
        layout.addWidget(self.detail)

    def show_value(self, value: str, detail: str = "") -> None:
        self.value.setText(value)
        self.detail.setText(detail)


class SamplePage(BasePage):
    """Run the sample, review it side by side with filters and drill-down, export it, sign it off."""

    def __init__(self) -> None:
        super().__init__(
            "Sample",
            "Load a stratified slice of the data for real, read every record back and compare each field: "
            "source value, what the map expects, what the destination stored. Review it with the customer "
            "and sign it off; the full load needs a sign-off for the current map.",
        )
        # --- run controls
        self.size_spin = QSpinBox()
        self.size_spin.setRange(MIN_SIZE, MAX_SIZE)
        self.size_spin.setValue(DEFAULT_SIZE)
        self.size_spin.setSingleStep(50)
        self.size_spin.setSuffix(" records")
        self.run_button = QPushButton("Run sample")
        self.run_button.setMinimumWidth(110)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setMinimumWidth(220)
        self.step_label = hint(QLabel("Choose a size and press Run sample."))
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Sample size:"))
        controls.addWidget(self.size_spin)
        controls.addWidget(self.run_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress)
        controls.addWidget(self.step_label, 1)

        # --- summary cards
        self.records_card = _Card("Records loaded")
        self.fields_card = _Card("Fields compared")
        self.flagged_card = _Card("Flagged")
        cards = QHBoxLayout()
        cards.addWidget(self.records_card, 3)
        cards.addWidget(self.fields_card, 1)
        cards.addWidget(self.flagged_card, 1)

        # --- filters and actions
        self.mismatches_only = QCheckBox("Mismatches only")
        self.object_combo = QComboBox()
        self.object_combo.setMinimumWidth(160)
        self.field_combo = QComboBox()
        self.field_combo.setMinimumWidth(200)
        self.export_button = QPushButton("Export diff…")
        self.signoff_button = QPushButton("Sign off…")
        self.rollback_button = QPushButton("Roll back sample")
        filters = QHBoxLayout()
        filters.addWidget(self.mismatches_only)
        filters.addSpacing(8)
        filters.addWidget(QLabel("Object:"))
        filters.addWidget(self.object_combo)
        filters.addWidget(QLabel("Field:"))
        filters.addWidget(self.field_combo)
        filters.addStretch(1)
        filters.addWidget(self.export_button)
        filters.addWidget(self.rollback_button)
        filters.addWidget(self.signoff_button)

        # --- drill-down: objects | records | fields
        self.objects_list = QListWidget()
        self.objects_list.setMinimumWidth(165)
        self.records_model = RecordsModel()
        self.records_view = QTableView()
        self.records_view.setModel(self.records_model)
        configure_table(self.records_view)
        self.records_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        records_header = self.records_view.horizontalHeader()
        records_header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        records_header.setSectionResizeMode(5, QHeaderView.ResizeMode.Interactive)  # GUIDs: let it be cut
        records_header.setStretchLastSection(True)
        self.fields_model = FieldsModel()
        self.fields_view = QTableView()
        self.fields_view.setModel(self.fields_model)
        configure_table(self.fields_view)
        header = self.fields_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((130, 110, 120, 120, 100)):
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        self.record_label = hint(QLabel("Select a record to compare its fields."))
        fields_box = QWidget()
        fields_layout = QVBoxLayout(fields_box)
        fields_layout.setContentsMargins(0, 0, 0, 0)
        fields_layout.addWidget(self.record_label)
        fields_layout.addWidget(self.fields_view, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.objects_list)
        self.splitter.addWidget(self.records_view)
        self.splitter.addWidget(fields_box)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 5)
        self.splitter.setSizes([165, 385, 700])

        self.signoff_label = QLabel()
        self.signoff_label.setWordWrap(True)
        self.signoff_label.setTextFormat(Qt.TextFormat.RichText)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addLayout(controls)
        layout.addLayout(cards)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.signoff_label)
        layout.addWidget(self.banner)

        self.result: SampleResult | None = None
        self.run_id: int | None = None
        self.rows: list[FieldDiff] = []
        self.records: dict[str, list[SampledRecord]] = {}
        self.signoff_dialog: QInputDialog | None = None
        self.exported: Path | None = None

        self.run_button.clicked.connect(self.start_sample)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self._ask_export)
        self.signoff_button.clicked.connect(self._ask_signoff)
        self.rollback_button.clicked.connect(self.roll_back)
        self.mismatches_only.toggled.connect(self._refilter)
        self.object_combo.currentIndexChanged.connect(self._object_combo_changed)
        self.field_combo.currentIndexChanged.connect(self._refilter)
        self.objects_list.currentItemChanged.connect(self._object_selected)
        self.records_view.selectionModel().currentRowChanged.connect(self._record_selected)
        self._update_buttons()

    # ------------------------------------------------------------------ setup
    def initializePage(self) -> None:
        """Show the sign-off state; re-read the latest kept sample, so a reopened project shows it."""
        self._refresh_signoff()
        if self.rows or self.runner.busy:
            return
        latest = sample_engine.latest_sample(self.project)
        if latest is None or "map_fingerprint" not in latest["stats"]:
            return
        run_id = int(latest["id"])
        self.step_label.setText(f"Reading sample run {run_id} back…")

        def reread(project: Project, progress: ProgressCallback, cancel: CancelToken) -> list[FieldDiff]:
            return sample_engine.diff(project, run_id, progress=progress, cancel=cancel)

        self.runner.start(
            self.state.project_path,
            reread,
            name="sample read-back",  # type: ignore[arg-type]
            on_progress=self._progress,
            on_finished=lambda rows: self._show_rows(run_id, rows, f"Sample run {run_id}, read back again."),
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )

    # ------------------------------------------------------------------ running
    def start_sample(self) -> None:
        if self.runner.busy:
            return
        size = self.size_spin.value()
        set_banner(self.banner, "")
        self.step_label.setText("Selecting the sample…")
        self.progress.setRange(0, 0)

        def operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> SampleResult:
            return sample_engine.run_sample(project, size=size, progress=progress, cancel=cancel)

        self.runner.start(
            self.state.project_path,
            operation,
            name="sample",  # type: ignore[arg-type]
            on_progress=self._progress,
            on_finished=self._finished,
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )

    def cancel(self) -> None:
        self.runner.cancel()
        self.cancel_button.setEnabled(False)
        self.step_label.setText("Cancelling after the current batch…")

    def busy_changed(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if self.rows else 0)
            self.progress.setFormat("")
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.runner.busy
        self.run_button.setEnabled(not busy)
        self.size_spin.setEnabled(not busy)
        self.export_button.setEnabled(not busy and bool(self.rows))
        self.rollback_button.setEnabled(not busy and self.run_id is not None)
        self.signoff_button.setEnabled(not busy and self.run_id is not None)

    @Slot(object)
    def _progress(self, event: ProgressEvent) -> None:
        total = max(event.total, 1)
        self.progress.setRange(0, total)
        self.progress.setValue(min(event.done, total))
        self.progress.setFormat(f"{event.done:,} / {event.total:,}")
        what = event.obj or event.message or event.step
        self.step_label.setText(f"{event.step.capitalize()}: {what}" if event.step else what)

    @Slot(object)
    def _finished(self, result: SampleResult) -> None:
        self.result = result
        if result.summary is None:  # the load stopped before the read-back
            self._cancelled()
            return
        took = format_duration(result.run.seconds)
        self._show_rows(result.run.run_id, result.rows, f"Sample run {result.run.run_id} in {took}.")

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.step_label.setText("")
        set_banner(self.banner, message, "error")

    @Slot()
    def _cancelled(self) -> None:
        self.step_label.setText("")
        set_banner(self.banner, "Sample cancelled. Press Run sample to start it again.", "warning")

    # ------------------------------------------------------------------ showing
    def _show_rows(self, run_id: int, rows: list[FieldDiff], note: str) -> None:
        self.run_id, self.rows = run_id, list(rows)
        self.records = group_records(self.rows)
        summary = sample_engine.summarize_diff(self.rows)
        loaded = {obj: sum(1 for r in recs if r.dest_id) for obj, recs in self.records.items()}
        self.records_card.show_value(
            f"{sum(loaded.values()):,}", " · ".join(f"{obj} {n:,}" for obj, n in loaded.items())
        )
        self.fields_card.show_value(f"{summary['fields']:,}", f"{summary['records']:,} records read back")
        verdicts = ", ".join(f"{v.replace('_', ' ')} {n:,}" for v, n in summary["verdicts"].items() if n)
        self.flagged_card.show_value(f"{summary['flagged']:,}", verdicts)
        colour = "#8a1c12" if summary["flagged"] else "#1c5e33"
        self.flagged_card.value.setStyleSheet(f"color:{colour}")
        self.step_label.setText(note)
        self.object_combo.blockSignals(True)
        self.object_combo.clear()
        self.object_combo.addItem("All objects", ALL)
        for obj in self.records:
            self.object_combo.addItem(obj, obj)
        self.object_combo.blockSignals(False)
        self._fill_fields_combo()
        self._refilter()
        kind = "warning" if summary["flagged"] else "success"
        text = (
            f"{summary['flagged']:,} flagged field(s): review them (Mismatches only) before signing off."
            if summary["flagged"]
            else "Nothing flagged: every sampled field arrived as the map expects."
        )
        set_banner(self.banner, text, kind)
        self._refresh_signoff()
        self._update_buttons()

    def _fill_fields_combo(self) -> None:
        obj = self.object_combo.currentData()
        rows = self.rows if obj in (None, ALL) else [r for rec in self.records.get(obj, []) for r in rec.rows]
        names = sorted({self._field_key(r) for r in rows if r.field})
        current = self.field_combo.currentData()
        self.field_combo.blockSignals(True)
        self.field_combo.clear()
        self.field_combo.addItem("All fields", ALL)
        for name in names:
            self.field_combo.addItem(name, name)
        at = self.field_combo.findData(current)
        self.field_combo.setCurrentIndex(max(at, 0))
        self.field_combo.blockSignals(False)

    @staticmethod
    def _field_key(row: FieldDiff) -> str:
        return f"{row.target_entity}.{row.field}"

    def _row_passes(self, row: FieldDiff) -> bool:
        if self.mismatches_only.isChecked() and not row.flagged:
            return False
        wanted = self.field_combo.currentData()
        return wanted in (None, ALL) or self._field_key(row) == wanted

    def visible_rows(self, record: SampledRecord) -> list[FieldDiff]:
        """The record's field rows that pass the filters (mismatches only, field)."""
        return [r for r in record.rows if self._row_passes(r)]

    def _object_combo_changed(self) -> None:
        self._fill_fields_combo()
        self._refilter()

    def _refilter(self) -> None:
        """Rebuild the object list from the filters, keeping the selected object when it still shows."""
        chosen = self.object_combo.currentData()
        current = self.objects_list.currentItem()
        keep = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.objects_list.blockSignals(True)
        self.objects_list.clear()
        for obj, recs in self.records.items():
            if chosen not in (None, ALL) and obj != chosen:
                continue
            shown = [rec for rec in recs if self.visible_rows(rec)]
            if not shown:
                continue
            flagged = sum(rec.flagged for rec in recs)
            item = QListWidgetItem(f"{obj}  ({flagged} flagged)" if flagged else f"{obj}  ✓")
            item.setData(Qt.ItemDataRole.UserRole, obj)
            if flagged:
                item.setForeground(Qt.GlobalColor.darkRed)
            self.objects_list.addItem(item)
        self.objects_list.blockSignals(False)
        objects = [self.objects_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.objects_list.count())]
        if objects:
            pick = keep if keep in objects else objects[0]
            self.objects_list.setCurrentRow(objects.index(pick))
            self._object_selected()
        else:
            self.records_model.set_records([])
            self.fields_model.set_rows([])
            self.record_label.setText("Nothing matches the filters.")

    def select_object(self, obj: str) -> None:
        for i in range(self.objects_list.count()):
            if self.objects_list.item(i).data(Qt.ItemDataRole.UserRole) == obj:
                self.objects_list.setCurrentRow(i)
                return
        raise KeyError(obj)

    def _object_selected(self, *_: Any) -> None:
        item = self.objects_list.currentItem()
        obj = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        records = [rec for rec in self.records.get(obj, []) if self.visible_rows(rec)]
        self.records_model.set_records(records)
        if records:
            self.records_view.selectRow(0)
            self._record_selected()
        else:
            self.fields_model.set_rows([])

    def _record_selected(self, *_: Any) -> None:
        row = self.records_view.currentIndex().row()
        if row < 0 or row >= self.records_model.rowCount():
            self.fields_model.set_rows([])
            return
        rec = self.records_model.record(row)
        self.fields_model.set_rows(self.visible_rows(rec))
        where = f"{rec.target_entity} {rec.dest_id}" if rec.dest_id else f"{rec.target_entity} (not loaded)"
        self.record_label.setText(
            f"<b>{html.escape(rec.source_object)} {html.escape(rec.source_id)}</b> → {html.escape(where)}: "
            f"{rec.flagged} flagged"
        )

    # ------------------------------------------------------------------ export
    def _ask_export(self) -> None:
        name = f"{self.state.project_path.stem if self.state.project_path else 'sample'}-sample-diff.xlsx"
        start = str((self.state.project_path.parent if self.state.project_path else Path.home()) / name)
        path, _ = QFileDialog.getSaveFileName(self, "Export the sample diff", start, "Excel workbook (*.xlsx)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """Write the diff workbook (all rows, not just the filtered ones) on the worker."""
        if self.runner.busy or not self.rows:
            return
        rows = list(self.rows)

        def operation(_project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> Path:
            return export_diff(rows, path)

        self.runner.start(
            self.state.project_path,
            operation,
            name="sample export",  # type: ignore[arg-type]
            on_finished=self._exported,
            on_failed=self._failed,
        )

    @Slot(object)
    def _exported(self, path: Path) -> None:
        self.exported = path
        set_banner(self.banner, f"Sample diff written to {path}.", "success")

    # ------------------------------------------------------------------ roll back
    def roll_back(self) -> None:
        """Undo the sample's records at the destination; a sign-off already given stays valid for the map."""
        if self.runner.busy or self.run_id is None:
            return
        run_id = self.run_id

        def operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> Any:
            return rollback(project, run_id=run_id, progress=progress, cancel=cancel)

        self.step_label.setText(f"Rolling back sample run {run_id}…")
        self.runner.start(
            self.state.project_path,
            operation,
            name="sample rollback",  # type: ignore[arg-type]
            on_progress=self._progress,
            on_finished=lambda _result: self._rolled_back(run_id),
            on_failed=self._failed,
        )

    def _rolled_back(self, run_id: int) -> None:
        self.run_id, self.rows, self.records = None, [], {}
        self.records_model.set_records([])
        self.fields_model.set_rows([])
        self.objects_list.clear()
        self.step_label.setText(f"Sample run {run_id} rolled back: none of its records remain at the destination.")
        set_banner(self.banner, f"Rolled back sample run {run_id}.", "success")
        self._update_buttons()

    # ------------------------------------------------------------------ sign-off
    def _ask_signoff(self) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Sign off the sample")
        dialog.setLabelText("Who signs off on this sample (the customer's name)?")
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setOkButtonText("Sign off")
        dialog.textValueSelected.connect(self.sign_off_as)
        dialog.finished.connect(dialog.deleteLater)
        dialog.finished.connect(lambda _r: setattr(self, "signoff_dialog", None))
        self.signoff_dialog = dialog
        dialog.open()

    def sign_off_as(self, name: str) -> bool:
        """Record the sign-off (one audit row); the reason shows inline when the engine refuses."""
        try:
            record = sample_engine.sign_off(self.project, name)
        except MigratorError as exc:
            set_banner(self.banner, f"Not signed off: {exc}", "error")
            self._refresh_signoff()
            return False
        set_banner(self.banner, f"Signed off by {record['by']} at {record['at']}.", "success")
        self._refresh_signoff()
        return True

    def _refresh_signoff(self) -> None:
        status = signoff_status(self.project) if self.state.project is not None else None
        if status is None:
            self.signoff_label.setText("")
        elif status["valid"]:
            last = status["signoff"]
            self.signoff_label.setText(
                "Sign-off: <span style='color:#1c5e33'><b>✔ Signed off by "
                f"{html.escape(last['actor'])} at {last['at']}</b></span>"
            )
        else:
            self.signoff_label.setText(
                f"Sign-off: <span style='color:#8a1c12'><b>not valid</b></span> — {html.escape(status['reason'])}."
            )
        self.completeChanged.emit()

    # ------------------------------------------------------------------ QWizardPage
    def isComplete(self) -> bool:
        if self.runner.busy or self.state.project is None:
            return False
        return bool(signoff_status(self.project)["valid"])
