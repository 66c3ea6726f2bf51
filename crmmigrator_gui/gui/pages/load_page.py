"""Step 5, Load: run the full load on a worker with a progress bar per object, throughput and ETA.

The Load button stays disabled until the map is confirmed (the engine enforces the same gate).
Cancel stops after the current batch; pressing Load again resumes the run without duplicates.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.run.results import RunResult
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.widgets import format_duration, heading

STATUS_TEXT = {
    "completed": "Load completed",
    "completed_with_failures": "Load completed with failures",
    "cancelled": "Load cancelled",
    "interrupted": "Load interrupted",
}


def _load_operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> RunResult:
    return load(project, progress=progress, cancel=cancel)


class ObjectProgress:
    """One row of the progress grid: what is loading, how far, how fast."""

    def __init__(self, grid: QGridLayout, row: int, title: str, entity: str) -> None:
        self.label = QLabel(f"<b>{title}</b> → {entity}")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("waiting")
        self.bar.setMinimumWidth(320)
        self.stats = hint(QLabel(""))
        self.stats.setWordWrap(False)
        self.stats.setMinimumWidth(240)
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.bar, row, 1)
        grid.addWidget(self.stats, row, 2)

    def update(self, event: ProgressEvent) -> None:
        total = max(event.total, 1)
        self.bar.setRange(0, total)
        self.bar.setValue(min(event.done, total))
        self.bar.setFormat(f"{event.done:,} / {event.total:,}")
        if event.done >= event.total:
            self.stats.setText(f"done · {event.rate:,.0f} records/s")
        else:
            self.stats.setText(f"{event.rate:,.0f} records/s · ETA {format_duration(event.eta_seconds)}")

    def finish(self) -> None:
        if self.bar.maximum() <= 1 and self.bar.value() == 0:
            self.bar.setFormat("nothing to load")
        self.bar.setValue(self.bar.maximum())


class LoadPage(BasePage):
    """Start, watch and cancel the full load."""

    def __init__(self) -> None:
        super().__init__(
            "Load",
            "Load every object in dependency order (parents before children). Each record is upserted by its "
            "source id, so a cancelled or interrupted run resumes without duplicates.",
        )
        self.destination = QLabel()
        self.gate = QLabel()
        self.volume = QLabel()
        summary = QGroupBox("Before you start")
        summary_layout = QVBoxLayout(summary)
        for label in (self.destination, self.gate, self.volume):
            label.setWordWrap(True)
            summary_layout.addWidget(label)

        self.load_button = QPushButton("Load")
        self.load_button.setMinimumWidth(120)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.outcome = heading("")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.cancel_button)
        buttons.addSpacing(12)
        buttons.addWidget(self.outcome, 1)

        self.step_label = hint(QLabel("Press Load to start; each object's progress shows below."))
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setHorizontalSpacing(16)
        self.grid.setVerticalSpacing(8)
        self.grid.setColumnStretch(1, 1)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.grid_host)
        progress_box = QGroupBox("Progress by object")
        progress_layout = QVBoxLayout(progress_box)
        progress_layout.addWidget(self.step_label)
        progress_layout.addWidget(scroll, 1)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(summary)
        layout.addLayout(buttons)
        layout.addWidget(progress_box, 1)
        layout.addWidget(self.banner)

        self.rows: dict[str, ObjectProgress] = {}
        self.result: RunResult | None = None
        self.load_button.clicked.connect(self.start_load)
        self.cancel_button.clicked.connect(self.cancel)

    # ------------------------------------------------------------------ setup
    def initializePage(self) -> None:
        project = self.project
        conn = connection.settings(project)
        where = (
            "the <b>embedded sandbox</b> (local Dataverse emulator)"
            if conn.kind == "embedded"
            else f"the Dynamics 365 org <b>{conn.url}</b>"
        )
        self.destination.setText(f"Destination: {where}, {project.edition.title()} edition.")
        names = project.source_object_names()
        records = sum(project.staged_count(n) for n in names)
        self.volume.setText(f"{records:,} staged records in {len(names)} object(s).")
        self._build_rows(project, names)
        self._refresh_gate()
        previous = project.query("SELECT id, status FROM runs WHERE kind = 'load' ORDER BY id DESC LIMIT 1")
        if previous and self.result is None and previous[0]["status"] in ("cancelled", "interrupted", "running"):
            set_banner(
                self.banner,
                f"Run {previous[0]['id']} was {previous[0]['status']}; press Load to resume it where it stopped.",
                "warning",
            )

    def _build_rows(self, project: Project, names: list[str]) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        self.rows.clear()
        try:
            parts = load_order(load_playbook(project.source, project.target, project.edition), names)
        except MigratorError:
            parts = []
        for row, part in enumerate(parts):
            title = part.obj if part.name in ("main", part.obj) else f"{part.obj} ({part.name})"
            self.rows[part.qualified] = ObjectProgress(self.grid, row, title, part.entity)

    def _refresh_gate(self) -> None:
        confirmed = maps.is_confirmed(self.project)
        self.gate.setText(
            "Map: <span style='color:#1c5e33'><b>confirmed ✔</b></span>"
            if confirmed
            else "Map: <span style='color:#8a1c12'><b>not confirmed</b></span> — go back to the Map "
            "step and confirm it; no record moves before that."
        )
        self.load_button.setEnabled(confirmed and not self.runner.busy)

    # ------------------------------------------------------------------ running
    def start_load(self) -> None:
        if self.runner.busy or not maps.is_confirmed(self.project):
            return
        self.result = None
        self.outcome.setText("")
        set_banner(self.banner, "")
        self.step_label.setText("Starting…")
        self.runner.start(
            self.state.project_path,
            _load_operation,
            name="load",  # type: ignore[arg-type]
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
        self._refresh_gate()

    @Slot(object)
    def _progress(self, event: ProgressEvent) -> None:
        if event.step == "schema":
            self.step_label.setText(
                f"Preparing the destination: {event.message or event.obj} ({event.done}/{event.total})"
            )
            return
        row = self.rows.get(event.obj)
        if row is None:  # a part the pre-computed order did not know: add it
            obj, _, part = event.obj.partition(".")
            row = ObjectProgress(self.grid, len(self.rows), obj, part)
            self.rows[event.obj] = row
        row.update(event)
        self.step_label.setText(f"Loading {event.obj}…")

    @Slot(object)
    def _finished(self, result: RunResult) -> None:
        self.result = result
        for row in self.rows.values():
            row.finish()
        totals = {
            k: sum(o[k] for o in result.objects) for k in ("created", "updated", "unchanged", "failed", "skipped")
        }
        self.outcome.setText(f"{STATUS_TEXT.get(result.status, result.status)} in {format_duration(result.seconds)}")
        self.step_label.setText(f"Run {result.run_id}: {result.requests:,} requests to the destination.")
        text = (
            f"{totals['created']:,} created, {totals['updated']:,} updated, {totals['unchanged']:,} "
            f"unchanged, {totals['failed']:,} failed, {totals['skipped']:,} skipped."
        )
        if result.warnings:
            text += "\n" + "\n".join(result.warnings[:3])
        kind = "warning" if totals["failed"] or result.warnings else "success"
        set_banner(self.banner, text + " Continue to the results to reconcile.", kind)
        self.completeChanged.emit()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.outcome.setText("Load stopped")
        self.step_label.setText("")
        set_banner(self.banner, message + "\nPress Load again to resume once the cause is fixed.", "error")

    @Slot()
    def _cancelled(self) -> None:
        self.outcome.setText("Load cancelled")
        self.step_label.setText("")
        set_banner(
            self.banner,
            "Cancelled after the current batch. Press Load to resume; records already loaded are not duplicated.",
            "warning",
        )

    # ------------------------------------------------------------------ QWizardPage
    def isComplete(self) -> bool:
        if self.runner.busy or self.state.project is None:
            return False
        if self.result is not None:
            return True
        rows: list[dict[str, Any]] = self.project.query(
            "SELECT status FROM runs WHERE kind = 'load' ORDER BY id DESC LIMIT 1"
        )
        return bool(rows) and rows[0]["status"] not in ("running", "cancelled", "interrupted")
