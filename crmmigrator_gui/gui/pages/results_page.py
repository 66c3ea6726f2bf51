"""Step 6, Results: the reconciliation report per object, the failures, and one-click rollback.

The report is built on a worker (it reads the whole crosswalk), and so is the rollback, which
deletes what the run created and restores what it updated, with progress and Cancel.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
)

from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.files import write_report
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.results import RunResult, explain
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.gui.models import Column, RecordsModel
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.widgets import configure_table, heading

COUNT_COLUMNS = [
    Column("source_object", "Object"),
    Column("target_entity", "Destination table"),
    Column("source_records", "Source records", numeric=True),
    Column("loaded", "Loaded", numeric=True),
    Column("created", "Created", numeric=True),
    Column("updated", "Updated", numeric=True),
    Column("unchanged", "Unchanged", numeric=True),
    Column("failed", "Failed", numeric=True, alert=True),
    Column("skipped", "Skipped", numeric=True),
]
FAILURE_COLUMNS = [
    Column("source_object", "Object"),
    Column("source_id", "Source id"),
    Column("action", "Outcome"),
    Column("reason", "Reason"),
]


def _report_operation(project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> dict[str, Any]:
    return build_report(project)


def _rollback_operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
    results: list[RunResult] = rollback(project, progress=progress, cancel=cancel)
    return {"runs": [r.to_json() for r in results], "report": build_report(project)}


def _save_operation(path: Path, project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> Path:
    write_report(path, build_report(project))
    return path


class ResultsPage(BasePage):
    """Reconcile what arrived with what the source held; roll back if needed."""

    def __init__(self) -> None:
        super().__init__(
            "Results",
            "Reconcile the destination with the source, object by object. Every failure is listed with its "
            "reason and source id. Rollback removes what the last run created and restores what it updated.",
        )
        self.report: dict[str, Any] | None = None
        self.headline = heading("Building the reconciliation report…")
        self.subline = hint(QLabel(""))
        self.subline.setWordWrap(True)

        self.counts_model = RecordsModel(COUNT_COLUMNS, self)
        self.counts_view = QTableView()
        configure_table(self.counts_view)
        self.counts_view.setModel(self.counts_model)
        self.counts_view.verticalHeader().hide()
        self.counts_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.counts_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        counts_box = QGroupBox("Counts per object")
        QVBoxLayout(counts_box).addWidget(self.counts_view)

        self.failures_model = RecordsModel(FAILURE_COLUMNS, self)
        self.failures_view = QTableView()
        configure_table(self.failures_view)
        self.failures_view.setModel(self.failures_model)
        self.failures_view.verticalHeader().hide()
        fheader = self.failures_view.horizontalHeader()
        fheader.resizeSection(0, 130)
        fheader.resizeSection(1, 160)
        fheader.resizeSection(2, 90)
        fheader.setStretchLastSection(True)
        self.no_failures = QLabel("No failures: every source record reached the destination.")
        self.no_failures.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_failures.setStyleSheet("color:#1c5e33;")
        self.failures_stack = QStackedWidget()
        self.failures_stack.addWidget(self.failures_view)
        self.failures_stack.addWidget(self.no_failures)
        self.failures_box = QGroupBox("Failures")
        QVBoxLayout(self.failures_box).addWidget(self.failures_stack)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(counts_box)
        splitter.addWidget(self.failures_box)
        splitter.setSizes([300, 160])
        splitter.setChildrenCollapsible(False)

        self.rollback_button = QPushButton("Roll back the last run")
        self.save_button = QPushButton("Save report…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        actions = QHBoxLayout()
        actions.addWidget(self.rollback_button)
        actions.addWidget(self.progress, 1)
        actions.addWidget(self.cancel_button)
        actions.addStretch(0)
        actions.addWidget(self.save_button)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(self.headline)
        layout.addWidget(self.subline)
        layout.addWidget(splitter, 1)
        layout.addLayout(actions)
        layout.addWidget(self.banner)

        self.rollback_button.clicked.connect(self.start_rollback)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.save_button.clicked.connect(self.choose_report_file)

    # ------------------------------------------------------------------ report
    def initializePage(self) -> None:
        self.refresh_report()

    def refresh_report(self) -> None:
        if self.runner.busy:
            return
        self.headline.setText("Building the reconciliation report…")
        self.runner.start(
            self.state.project_path,
            _report_operation,
            name="report",  # type: ignore[arg-type]
            on_finished=self._report_ready,
            on_failed=self._failed,
        )

    @Slot(object)
    def _report_ready(self, report: dict[str, Any]) -> None:
        self.show_report(report)

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        totals = report["totals"]
        objects = report["objects"]
        total_row = {
            "source_object": "Total",
            "target_entity": "",
            **{c.key: sum(o.get(c.key, 0) for o in objects) for c in COUNT_COLUMNS if c.numeric},
        }
        self.counts_model.set_rows(objects, total=total_row)
        run = report.get("run")
        self.headline.setText(
            f"{totals['source_records']:,} source records · {totals['loaded']:,} loaded · "
            f"{totals['failed']:,} failed · {totals['skipped']:,} skipped"
        )
        if run:
            self.subline.setText(
                f"{report['pair']} ({report['edition'].title()}) — run {run['id']} "
                f"{run['status'].replace('_', ' ')}, {run['requests']:,} requests, "
                f"started {run['started_at']}."
            )
        else:
            rolled = [r for r in report.get("runs", []) if r["status"] == "rolled_back"]
            self.subline.setText(
                f"{report['pair']} ({report['edition'].title()}) — no live load run"
                + (f"; run {rolled[-1]['id']} was rolled back." if rolled else ".")
            )
        failures = [{**f, "reason": explain(f.get("code"), f.get("message") or "")} for f in report["failures"]]
        self.failures_model.set_rows(failures)
        self.failures_stack.setCurrentWidget(self.failures_view if failures else self.no_failures)
        if not failures and not run:
            self.no_failures.setText("Nothing is loaded at the destination from this project.")
        elif not failures:
            self.no_failures.setText("No failures: every source record reached the destination.")
        shown = f" (first {len(failures)})" if len(failures) >= 500 else ""
        self.failures_box.setTitle(f"Failures: {totals['failed']:,} failed, {totals['skipped']:,} skipped{shown}")
        exceptions = report.get("exceptions") or []
        if exceptions:
            set_banner(
                self.banner,
                f"{len(exceptions)} payment exception(s) (refunds, partial or over-payments) "
                "to reconcile by hand; they are listed in the saved report.",
                "warning",
            )
        self.rollback_button.setEnabled(run is not None and not self.runner.busy)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, message, "error")

    # ------------------------------------------------------------------ rollback
    def start_rollback(self) -> None:
        if self.runner.busy:
            return
        set_banner(self.banner, "")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.runner.start(
            self.state.project_path,
            _rollback_operation,
            name="rollback",  # type: ignore[arg-type]
            on_progress=self._rollback_progress,
            on_finished=self._rollback_finished,
            on_failed=self._failed,
            on_cancelled=self._rollback_cancelled,
        )

    @Slot(object)
    def _rollback_progress(self, event: ProgressEvent) -> None:
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        self.progress.setFormat(f"Rolling back {event.obj}: {event.done:,} / {event.total:,}")

    @Slot(object)
    def _rollback_finished(self, outcome: dict[str, Any]) -> None:
        self.progress.setVisible(False)
        self.show_report(outcome["report"])
        deleted = sum(o.get("deleted", 0) for run in outcome["runs"] for o in run["objects"])
        problems = [w for run in outcome["runs"] for w in run.get("warnings", [])]
        ids = ", ".join(str(run["run_id"]) for run in outcome["runs"])
        text = (
            f"Rolled back run {ids}: deleted the {deleted:,} destination record(s) it created and restored "
            "the ones it updated."
        )
        if problems:
            text += f" {len(problems)} record(s) could not be rolled back; run Rollback again to retry."
        set_banner(self.banner, text, "warning" if problems else "success")

    @Slot()
    def _rollback_cancelled(self) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, "Rollback cancelled; press it again to finish the remaining records.", "warning")
        self.refresh_report()

    # ------------------------------------------------------------------ saving
    def choose_report_file(self) -> None:
        project_path = self.state.project_path
        start = str(project_path.with_suffix(".report.xlsx")) if project_path else ""
        name, _ = QFileDialog.getSaveFileName(
            self,
            "Save the reconciliation report",
            start,
            "Excel workbook (*.xlsx);;Web page (*.html);;JSON (*.json)",
        )
        if name:
            self.save_report(Path(name))

    def save_report(self, path: Path) -> None:
        if self.runner.busy:
            return
        self.runner.start(
            self.state.project_path,
            functools.partial(_save_operation, path),  # type: ignore[arg-type]
            name="report export",
            on_finished=self._saved,
            on_failed=self._failed,
        )

    @Slot(object)
    def _saved(self, path: Path) -> None:
        set_banner(self.banner, f"Report saved to {path}.", "success")

    def busy_changed(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.save_button.setEnabled(not busy)
        self.rollback_button.setEnabled(not busy and bool(self.report and self.report.get("run")))

    def isComplete(self) -> bool:
        return not self.runner.busy
