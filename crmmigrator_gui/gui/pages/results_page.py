"""Step 7, Reconcile & Rollback: the reconciliation report, the run ledger with rollback, the audit log and the
rebuild reference package.

Four tabs over one page-level worker: Reconciliation (counts per object, field totals and picklist
distributions read back from the destination, failures by source id, the delta runs), Runs & rollback (every run
and what it touched; roll back one or all; records changed in the destination since are refused and listed, and
can be forced after a confirmation), Audit (search, filters, a lazy table, CSV/XLSX export), and Rebuild reference
(what cannot migrate as data, previewed offline; "Rebuild package…" writes the JSON and the admin's inventory).

Building the report reads the destination back over HTTP, and writing the rebuild package may read the source's
definitions, so both run on the worker like the rollback and the exports (the PDF is printed by the engine's
child process, not on the GUI thread).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
)

from crmmigrator_gui.engine.errors import CancelledError, MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.audit import AuditFilter, export
from crmmigrator_gui.engine.report.files import write_report
from crmmigrator_gui.engine.report.rebuild import API_SOURCES, rebuild_package, write_rebuild_package
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.rollback import rollback
from crmmigrator_gui.engine.source.extract.definitions import read_definitions, stored_definitions
from crmmigrator_gui.gui.pages.audit_view import AuditView
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner
from crmmigrator_gui.gui.pages.results_rebuild import RebuildView
from crmmigrator_gui.gui.pages.results_reconcile import COUNT_COLUMNS, FAILURE_COLUMNS, ReconcileView
from crmmigrator_gui.gui.pages.results_runs import RollbackPanel, run_summaries
from crmmigrator_gui.gui.widgets import heading

__all__ = ["COUNT_COLUMNS", "FAILURE_COLUMNS", "REPORT_FORMATS", "ResultsPage"]

#: Export format → file-dialog filter.
REPORT_FORMATS = {
    "xlsx": "Excel workbook with charts (*.xlsx)",
    "html": "Web page (*.html)",
    "pdf": "PDF document (*.pdf)",
}


def _refresh_operation(project: Project, progress: ProgressCallback, _cancel: CancelToken) -> dict[str, Any]:
    progress(ProgressEvent("report", "read-back", 0, 2, message="Reading totals back from the destination…"))
    report = build_report(project)
    progress(ProgressEvent("report", "runs", 1, 2, message="Counting what each run touched…"))
    # The preview uses what the project already holds (offline); reading the source waits for "Rebuild package…".
    return {"report": report, "runs": run_summaries(project), "rebuild": rebuild_package(project)}


def _rollback_operation(
    run_id: int | None,
    all_runs: bool,
    force: bool,
    project: Project,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> dict[str, Any]:
    results = rollback(project, run_id=run_id, all_runs=all_runs, force=force, progress=progress, cancel=cancel)
    outcome = [
        {
            "run_id": r.run_id,
            "status": r.status,
            "objects": r.objects,
            "warnings": r.warnings,
            "failures": r.failures,  # all of them: the panel lists every refused record
            "requests": r.requests,
        }
        for r in results
    ]
    return {"results": outcome, "forced": force, **_refresh_operation(project, progress, cancel)}


def _export_report_operation(
    path: Path, report: dict[str, Any], _project: Project, _progress: ProgressCallback, _cancel: CancelToken
) -> Path:
    write_report(path, report)
    return path


def _rebuild_package_operation(
    folder: Path, project: Project, progress: ProgressCallback, cancel: CancelToken
) -> dict[str, Any]:
    """Write the rebuild reference package into ``folder``; returns both paths and the package as written.

    An API source whose definitions were never read is read first, here, with progress and cancel (the engine's
    writer would read them without either). If that read fails, the writer tries once more and records the reason
    in the package, so the package is still written and says why its inventory is empty.
    """
    if stored_definitions(project) is None and project.source in API_SOURCES:
        progress(ProgressEvent("definitions", "", 0, 0, message="Reading the source's definitions…"))
        try:
            read_definitions(project, progress, cancel)
        except CancelledError:
            raise
        except MigratorError:
            pass  # the writer's own attempt records why
    cancel.raise_if_cancelled()  # nothing written yet: a cancel here leaves any older package as it was
    progress(ProgressEvent("rebuild", "", 0, 0, message=f"Writing the rebuild package to {folder}…"))
    paths = write_rebuild_package(project, folder)
    package = json.loads(paths[0].read_text(encoding="utf-8"))
    return {"paths": paths, "package": package}


def _export_audit_operation(
    path: Path, flt: AuditFilter, project: Project, _progress: ProgressCallback, _cancel: CancelToken
) -> tuple[Path, int]:
    return path, export(project, path, flt)


class ResultsPage(BasePage):
    """Reconcile what arrived with what the source held; roll runs back; search the audit log."""

    def __init__(self) -> None:
        super().__init__(
            "Reconcile & Rollback",
            "What the destination now holds, read back and compared with the source. Roll back any run: what it "
            "created is deleted, what it updated gets its prior values back; changes made since are not overwritten.",
        )
        self.report: dict[str, Any] | None = None
        self.runs: list[dict[str, Any]] = []
        self.last_rollback: dict[str, Any] | None = None
        self.headline = heading("Building the reconciliation report…")
        self.subline = hint(QLabel(""))
        self.subline.setWordWrap(True)

        self.reconcile = ReconcileView()
        self.counts_model = self.reconcile.counts_model
        self.failures_model = self.reconcile.failures_model
        self.panel = RollbackPanel()
        self.rollback_button = self.panel.rollback_button
        self.audit = AuditView()
        self.rebuild = RebuildView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.reconcile, "Reconciliation")
        self.tabs.addTab(self.panel, "Runs && rollback")
        self.tabs.addTab(self.audit, "Audit log")
        self.tabs.addTab(self.rebuild, "Rebuild reference")

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Build the report again, reading the destination back")
        self.export_buttons = {fmt: QPushButton(f"Export {fmt.upper()}…") for fmt in REPORT_FORMATS}
        self.rebuild_button = QPushButton("Rebuild package…")
        self.rebuild_button.setToolTip(
            "Write rebuild_reference.json and REBUILD.md into a folder: what cannot migrate as data (workflows, "
            "automations, forms, report definitions), each with its recommended rebuild path"
        )
        actions = QHBoxLayout()
        actions.addWidget(self.refresh_button)
        actions.addWidget(self.progress, 1)
        actions.addWidget(self.cancel_button)
        actions.addStretch(0)
        actions.addWidget(hint(QLabel("Report:")))
        for button in self.export_buttons.values():
            actions.addWidget(button)
        actions.addSpacing(12)
        actions.addWidget(self.rebuild_button)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(self.headline)
        layout.addWidget(self.subline)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(actions)
        layout.addWidget(self.banner)

        self.refresh_button.clicked.connect(self.refresh_report)
        self.cancel_button.clicked.connect(self.runner.cancel)
        for fmt, button in self.export_buttons.items():
            button.clicked.connect(functools.partial(self.choose_report_file, fmt))
        self.rebuild_button.clicked.connect(self.choose_rebuild_folder)
        self.panel.rollback_requested.connect(self.start_rollback)
        self.panel.audit_requested.connect(self._show_run_in_audit)
        self.audit.export_requested.connect(self.choose_audit_file)
        self._update_actions()

    # ------------------------------------------------------------------ report
    def initializePage(self) -> None:
        self.audit.set_project(self.state.project)
        self.refresh_report()

    def refresh_report(self) -> None:
        if self.runner.busy:
            return
        self.headline.setText("Building the reconciliation report…")
        self._show_progress()
        self.runner.start(
            self.state.project_path,
            _refresh_operation,
            name="report",  # type: ignore[arg-type]
            on_progress=self._progress,
            on_finished=self._refreshed,
            on_failed=self._failed,
            on_cancelled=self._refresh_cancelled,
        )

    @Slot(object)
    def _refreshed(self, outcome: dict[str, Any]) -> None:
        self.progress.setVisible(False)
        self.show_report(outcome["report"])
        self.show_runs(outcome["runs"])
        self.show_rebuild(outcome["rebuild"])

    def show_runs(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        self.panel.set_runs(runs)
        self.audit.set_runs([int(r["id"]) for r in runs])
        self.audit.refresh()
        self.tabs.setTabText(1, f"Runs && rollback ({len(runs)})")

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        totals = report["totals"]
        run = report.get("run")
        self.headline.setText(
            f"{totals['source_records']:,} source records · {totals['loaded']:,} loaded · "
            f"{totals['failed']:,} failed · {totals['skipped']:,} skipped"
        )
        if run:
            self.subline.setText(
                f"{report['pair']} ({report['edition'].title()}) — load run {run['id']} "
                f"{run['status'].replace('_', ' ')}, {run['requests']:,} requests, started {run['started_at']}."
            )
        else:
            rolled = [str(r["id"]) for r in report.get("runs", []) if r["status"] == "rolled_back"]
            plural = "s" if len(rolled) > 1 else ""
            self.subline.setText(
                f"{report['pair']} ({report['edition'].title()}) — no live load run"
                + (f"; run{plural} {', '.join(rolled)} rolled back." if rolled else ".")
            )
        deltas = report.get("delta") or []
        applied = {d["run_id"]: d for d in deltas if d.get("run_id") and d["run_status"] != "rolled_back"}
        if applied:  # the counts per object include the deltas' writes (the load run overlaid): say so
            created = sum(d["totals"]["created"] for d in applied.values())
            updated = sum(d["totals"]["updated"] for d in applied.values())
            plural = "s" if len(applied) > 1 else ""
            self.subline.setText(
                f"{self.subline.text()} Since then, delta run{plural} {', '.join(map(str, applied))}: "
                f"{created:,} created, {updated:,} updated (included in the table above; see the Delta tab)."
            )
        self.reconcile.show_report(report)
        mismatches = sum(1 for t in report.get("field_totals") or [] if t.get("verdict") == "mismatch")
        self.tabs.setTabText(0, f"Reconciliation ({mismatches} mismatch)" if mismatches else "Reconciliation")
        error = (report.get("reconciliation") or {}).get("error")
        exceptions = report.get("exceptions") or []
        if error and run:
            set_banner(self.banner, f"Totals were not read back: {error}.", "warning")
        elif mismatches:
            set_banner(
                self.banner,
                f"{mismatches} field total(s) differ from what was loaded: the destination holds something else now "
                "(edited or deleted after the load). See Field totals.",
                "error",
            )
        elif exceptions:
            set_banner(
                self.banner,
                f"{len(exceptions)} payment exception(s) (refunds, partial or over-payments) to reconcile by hand; "
                "they are listed in the exported report.",
                "warning",
            )
        self._update_actions()

    def show_rebuild(self, package: dict[str, Any]) -> None:
        self.rebuild.show_package(package)
        items = len(package.get("inventory") or []) + len(package.get("rebuild") or [])
        self.tabs.setTabText(3, f"Rebuild reference ({items:,} items)")

    @Slot(object)
    def _progress(self, event: ProgressEvent) -> None:
        if event.step == "rollback":
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(event.done)
            self.progress.setFormat(f"Rolling back {event.obj}: {event.done:,} / {event.total:,}")
        elif event.step == "definitions" and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"Reading the source's definitions: {event.done} / {event.total}")
        else:
            self.progress.setRange(0, 0)  # the read-back has no record count to show
            self.progress.setFormat(event.message or "Working…")
            if event.step == "report":  # the headline shows the report, not an export's steps
                self.headline.setText(event.message or self.headline.text())

    def _show_progress(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.progress.setVisible(False)
        if self.report is None:
            self.headline.setText("The reconciliation report could not be built.")
        set_banner(self.banner, message, "error")

    @Slot()
    def _refresh_cancelled(self) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, "Report cancelled; press Refresh to build it again.", "warning")

    # ------------------------------------------------------------------ rollback
    @Slot(object, bool, bool)
    def start_rollback(self, run_id: int | None = None, all_runs: bool = False, force: bool = False) -> None:
        """Roll back ``run_id`` (the selected run when None), or every run newest first, on the worker."""
        if self.runner.busy:
            return
        if run_id is None and not all_runs:
            selected = self.panel.selected_run()
            run_id = int(selected["id"]) if selected else None
        set_banner(self.banner, "")
        self._show_progress()
        self.progress.setFormat("Starting the rollback…")
        self.runner.start(
            self.state.project_path,
            functools.partial(_rollback_operation, run_id, all_runs, force),  # type: ignore[arg-type]
            name="rollback",
            on_progress=self._progress,
            on_finished=self._rollback_finished,
            on_failed=self._failed,
            on_cancelled=self._rollback_cancelled,
        )

    @Slot(object)
    def _rollback_finished(self, outcome: dict[str, Any]) -> None:
        self.progress.setVisible(False)
        self.last_rollback = outcome
        self.show_report(outcome["report"])
        self.show_runs(outcome["runs"])
        self.show_rebuild(outcome["rebuild"])
        results = outcome["results"]
        self.panel.show_outcome(results)
        deleted = sum(o.get("deleted", 0) for r in results for o in r["objects"])
        refused = sum(1 for r in results for f in r["failures"] if f.get("action") == "refused")
        forced = sum(1 for r in results for f in r["failures"] if f.get("action") == "forced")
        problems = sum(len(r["warnings"]) for r in results) - (1 if refused else 0) - (1 if forced else 0)
        done = [str(r["run_id"]) for r in results if r["status"] == "rolled_back"]
        partial = [str(r["run_id"]) for r in results if r["status"] != "rolled_back"]
        runs = " and ".join(
            ([f"Rolled back run {', '.join(done)}"] if done else [])
            + ([f"{'part of ' if done else 'Rolled back part of '}run {', '.join(partial)}"] if partial else [])
        )
        text = (
            f"{runs}: deleted {deleted:,} destination record(s) created by the run{'s' if len(results) > 1 else ''} "
            "and restored the ones updated."
        )
        if forced:
            text += f" {forced:,} record(s) changed after the run were overwritten (forced; recorded in the audit log)."
        if refused:
            text += (
                f" {refused:,} record(s) changed in the destination after the run were left as they are: see the "
                "list below; roll back anyway to overwrite them."
            )
        if problems > 0:
            text += f" {problems} record(s) could not be rolled back; roll back again to retry."
        self.tabs.setCurrentWidget(self.panel)
        set_banner(self.banner, text, "warning" if refused or problems > 0 else "success")

    @Slot()
    def _rollback_cancelled(self) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, "Rollback cancelled; roll back again to finish the remaining records.", "warning")
        self.refresh_report()

    def _show_run_in_audit(self, run_id: int) -> None:
        self.audit.show_run(run_id)
        self.tabs.setCurrentWidget(self.audit)

    # ------------------------------------------------------------------ exports
    def _default_path(self, name: str) -> str:
        project_path = self.state.project_path
        return str(project_path.with_name(f"{project_path.stem}.{name}")) if project_path else name

    def choose_report_file(self, fmt: str) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export the reconciliation report", self._default_path(f"reconciliation.{fmt}"), REPORT_FORMATS[fmt]
        )
        if name:
            path = Path(name)
            self.save_report(path if path.suffix.lower() == f".{fmt}" else path.with_name(f"{path.name}.{fmt}"))

    def save_report(self, path: Path) -> None:
        """Write the report shown (.xlsx, .html, .pdf or .json) on the worker; the PDF prints in a child process."""
        if self.runner.busy or self.report is None:
            return
        self._show_progress()
        self.progress.setFormat(f"Writing {path.name}…")
        self.runner.start(
            self.state.project_path,
            functools.partial(_export_report_operation, path, copy.deepcopy(self.report)),  # type: ignore[arg-type]
            name="report export",
            on_finished=self._report_saved,
            on_failed=self._failed,
        )

    @Slot(object)
    def _report_saved(self, path: Path) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, f"Report saved to {path}.", "success")

    def choose_rebuild_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self,
            "Choose a folder for the rebuild reference package (rebuild_reference.json and REBUILD.md)",
            str(self.state.project_path.parent) if self.state.project_path else "",
        )
        if folder:
            self.save_rebuild_package(Path(folder))

    def save_rebuild_package(self, folder: Path) -> None:
        """Write the rebuild reference package into ``folder`` on the worker; the preview then shows what it holds."""
        if self.runner.busy:
            return
        set_banner(self.banner, "")
        self._show_progress()
        self.progress.setFormat("Writing the rebuild package…")
        self.runner.start(
            self.state.project_path,
            functools.partial(_rebuild_package_operation, folder),  # type: ignore[arg-type]
            name="rebuild package",
            on_progress=self._progress,
            on_finished=self._rebuild_saved,
            on_failed=self._failed,
            on_cancelled=self._rebuild_cancelled,
        )

    @Slot(object)
    def _rebuild_saved(self, outcome: dict[str, Any]) -> None:
        self.progress.setVisible(False)
        package = outcome["package"]
        self.show_rebuild(package)
        json_path, md_path = outcome["paths"]
        text = f"Rebuild reference package written: {json_path} (for tools) and {md_path} (for the admin)."
        definitions = package.get("definitions") or {}
        if definitions.get("status") == "not_read":
            text += f" The source's definitions were not read: {definitions.get('why')}."
        set_banner(self.banner, text, "warning" if definitions.get("status") == "not_read" else "success")

    @Slot()
    def _rebuild_cancelled(self) -> None:
        self.progress.setVisible(False)
        set_banner(self.banner, "Rebuild package cancelled; nothing was written.", "warning")

    def choose_audit_file(self, fmt: str, flt: AuditFilter) -> None:
        title = "Export the audit log" + (" (filtered)" if flt != AuditFilter() else "")
        name, _ = QFileDialog.getSaveFileName(
            self,
            title,
            self._default_path(f"audit.{fmt}"),
            "CSV (*.csv)" if fmt == "csv" else "Excel workbook (*.xlsx)",
        )
        if name:
            path = Path(name)
            self.export_audit(path if path.suffix.lower() == f".{fmt}" else path.with_name(f"{path.name}.{fmt}"), flt)

    def export_audit(self, path: Path, flt: AuditFilter) -> None:
        """Write the entries matching ``flt`` to .csv or .xlsx on the worker (streamed, never all in memory)."""
        if self.runner.busy:
            return
        self._show_progress()
        self.progress.setFormat(f"Writing {path.name}…")
        self.runner.start(
            self.state.project_path,
            functools.partial(_export_audit_operation, path, flt),  # type: ignore[arg-type]
            name="audit export",
            on_finished=self._audit_saved,
            on_failed=self._failed,
        )

    @Slot(object)
    def _audit_saved(self, outcome: tuple[Path, int]) -> None:
        self.progress.setVisible(False)
        path, count = outcome
        set_banner(self.banner, f"{count:,} audit entr{'y' if count == 1 else 'ies'} saved to {path}.", "success")

    # ------------------------------------------------------------------ state
    def busy_changed(self, busy: bool) -> None:
        if not busy:
            self.progress.setVisible(False)
        self._update_actions()

    def _update_actions(self) -> None:
        busy = self.runner.busy
        self.cancel_button.setEnabled(busy)
        self.refresh_button.setEnabled(not busy)
        for button in self.export_buttons.values():
            button.setEnabled(not busy and self.report is not None)
        self.rebuild_button.setEnabled(not busy)  # the package needs no report: only the project
        self.panel.set_busy(busy)
        self.audit.export_csv_button.setEnabled(not busy and self.audit.model.total > 0)
        self.audit.export_xlsx_button.setEnabled(not busy and self.audit.model.total > 0)

    def isComplete(self) -> bool:
        return not self.runner.busy

    def shutdown(self) -> None:
        super().shutdown()
        self.audit.set_project(None)  # the wizard closes the project next; drop the model's hold on it
