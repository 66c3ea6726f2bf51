"""Step 7, Load: run the full load on a worker, watch it per object, pause, resume or cancel it, see failures live.

The Load button stays disabled until the map is confirmed and a sample is signed off for it (the engine
enforces the same gates). Pause waits between batches, after the crosswalk is committed, so a paused or
cancelled run resumes exactly where it stopped; pressing Load again resumes it without duplicates, and after a
finished run retries only the failures and the records not yet loaded.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import maps
from crmmigrator_gui.engine.mapping.playbook import load_playbook
from crmmigrator_gui.engine.mapping.signoff import signoff_status
from crmmigrator_gui.engine.plan.order import load_order
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.run.load import BATCH_SIZE, load
from crmmigrator_gui.engine.run.results import RunResult
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.gui.pages.base import BasePage, set_banner
from crmmigrator_gui.gui.pages.run_progress import RunProgressPanel
from crmmigrator_gui.gui.widgets import format_duration, heading

STATUS_TEXT = {
    "completed": "Load completed",
    "completed_with_failures": "Load completed with failures",
    "cancelled": "Load cancelled",
    "interrupted": "Load interrupted",
}
OK = "<span style='color:#1c5e33'><b>{}</b></span>"
NOT_OK = "<span style='color:#8a1c12'><b>{}</b></span>"


def destination_text(project: Project) -> str:
    """Where the records go, in words, for either destination (the embedded emulators or a real org)."""
    conn = connection.settings(project)
    if project.target == "salesforce":
        where = (
            "the <b>embedded sandbox</b> (local Salesforce emulator)"
            if conn.kind == "embedded"
            else f"the Salesforce org <b>{html.escape(conn.url or '')}</b>"
        )
        return f"Destination: {where}."
    where = (
        "the <b>embedded sandbox</b> (local Dataverse emulator)"
        if conn.kind == "embedded"
        else f"the Dynamics 365 org <b>{html.escape(conn.url or '')}</b>"
    )
    return f"Destination: {where}, Dynamics 365 Sales {project.edition.title()} edition."


def when(iso: str) -> str:
    """A stored timestamp as a person reads it, its time zone kept explicit."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    offset = moment.utcoffset()
    zone = "UTC" if offset is not None and not offset else moment.strftime("UTC%z") if offset is not None else ""
    return f"{moment.day} {moment.strftime('%b %Y, %H:%M')} {zone}".strip()


def progress_rows(project: Project, names: list[str]) -> list[tuple[str, str, str, int]]:
    """(part, title, entity, expected records) in load order; a part counts every record of its object."""
    try:
        parts = load_order(load_playbook(project.source, project.target, project.edition), names)
    except MigratorError:
        return []
    counts = {name: project.staged_count(name) for name in names}
    return [
        (
            part.qualified,
            part.obj if part.name in ("main", part.obj) else f"{part.obj} ({part.name})",
            part.entity,
            counts.get(part.obj, 0),
        )
        for part in parts
    ]


class LoadPage(BasePage):
    """Start, watch, pause, resume and cancel the full load."""

    #: Records per batch (the engine's default); tests lower it to get many batches from a small export.
    batch_size = BATCH_SIZE

    def __init__(self) -> None:
        super().__init__(
            "Load",
            "Load every object in dependency order (parents before children). Each record is upserted by its "
            "source id, so a paused, cancelled or interrupted run resumes without duplicates.",
        )
        self.destination = QLabel()
        self.gate = QLabel()
        self.volume = QLabel()
        summary = QGroupBox("Before you start")
        summary_layout = QVBoxLayout(summary)
        summary_layout.setSpacing(2)
        for label in (self.destination, self.gate, self.volume):
            label.setWordWrap(True)
            summary_layout.addWidget(label)

        self.panel = RunProgressPanel(verb="Loading")
        self.load_button = QPushButton("Load")
        self.load_button.setMinimumWidth(120)
        self.pause_button = self.panel.pause_button
        self.cancel_button = self.panel.cancel_button
        self.outcome = heading("")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addSpacing(12)
        buttons.addWidget(self.outcome, 1)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(summary)
        layout.addLayout(buttons)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.banner)

        self.result: RunResult | None = None
        self.load_button.clicked.connect(self.start_load)

    @property
    def rows(self) -> dict[str, Any]:
        return self.panel.rows

    @property
    def failures_model(self) -> Any:
        return self.panel.failures_model

    # ------------------------------------------------------------------ setup
    def initializePage(self) -> None:
        project = self.project
        self.destination.setText(destination_text(project))
        names = project.source_object_names()
        records = sum(project.staged_count(n) for n in names)
        self.volume.setText(f"{records:,} staged records in {len(names)} object(s).")
        if not self.runner.busy:
            self.panel.set_rows(progress_rows(project, names))
            self.panel.step_label.setText("Press Load to start; each object's progress shows below.")
        self._refresh_gate()
        previous = project.query("SELECT id, status FROM runs WHERE kind = 'load' ORDER BY id DESC LIMIT 1")
        if previous and self.result is None and previous[0]["status"] in ("cancelled", "interrupted", "running"):
            set_banner(
                self.banner,
                f"Run {previous[0]['id']} was {previous[0]['status']}; press Load to resume it where it stopped.",
                "warning",
            )

    def _refresh_gate(self) -> None:
        project = self.project
        confirmed = maps.is_confirmed(project)
        status = signoff_status(project)
        map_text = (
            "Map: " + OK.format("confirmed ✔")
            if confirmed
            else "Map: " + NOT_OK.format("not confirmed") + " — go back to the Map step and confirm it; "
            "no record moves before that."
        )
        if status["valid"]:
            last = status["signoff"]
            sign_text = (
                "Sample: "
                + OK.format(f"signed off by {html.escape(str(last['actor']))}")
                + f" on {html.escape(when(str(last['at'])))} ✔"
            )
        else:
            sign_text = (
                "Sample: "
                + NOT_OK.format("no valid sign-off")
                + f" — {html.escape(status['reason'])}; go back to the Sample step."
            )
        self.gate.setText(f"{map_text}<br>{sign_text}")
        self.load_button.setEnabled(confirmed and bool(status["valid"]) and not self.runner.busy)

    # ------------------------------------------------------------------ running
    def start_load(self) -> None:
        if self.runner.busy or not maps.is_confirmed(self.project) or not signoff_status(self.project)["valid"]:
            return
        self.result = None
        self.outcome.setText("")
        set_banner(self.banner, "")
        monitor = self.panel.prepare()
        batch_size = self.batch_size

        def operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> RunResult:
            return load(project, progress=monitor.wrap(progress), cancel=cancel, batch_size=batch_size)

        worker = self.runner.start(
            self.state.project_path,
            operation,
            name="load",
            on_progress=self._progress,
            on_finished=self._finished,
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )
        self.panel.started(worker.token)

    def pause(self) -> None:
        """Pause (or resume) between batches: the same as the Pause/Resume button."""
        self.panel.toggle_pause()

    def cancel(self) -> None:
        self.panel.cancel()

    def busy_changed(self, busy: bool) -> None:
        self._refresh_gate()

    @Slot(object)
    def _progress(self, event: ProgressEvent) -> None:
        if event.step == "schema":
            self.panel.step_label.setText(
                f"Preparing the destination: {event.message or event.obj} ({event.done}/{event.total})"
            )
            return
        self.panel.handle(event)

    @Slot(object)
    def _finished(self, result: RunResult) -> None:
        self.result = result
        totals = self.panel.finished(result)
        self.outcome.setText(f"{STATUS_TEXT.get(result.status, result.status)} in {format_duration(result.seconds)}")
        self.panel.step_label.setText(f"Run {result.run_id} finished.")
        text = "Continue to the Delta step (optional) or to the results to reconcile."
        if result.warnings:
            text = "\n".join(result.warnings[:3]) + "\n" + text
        kind = "warning" if totals["failed"] or result.warnings else "success"
        set_banner(self.banner, text, kind)
        self.panel.after_hint.setText(
            "Fix the cause of a failure (a value map, a transform) and press Load again: it retries only the "
            "failures and the records not yet loaded; everything already loaded is left alone."
        )
        self.panel.after_hint.setVisible(True)
        self.completeChanged.emit()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.panel.ended()
        self.outcome.setText("Load stopped")
        self.panel.step_label.setText("")
        set_banner(self.banner, message + "\nPress Load again to resume once the cause is fixed.", "error")

    @Slot()
    def _cancelled(self) -> None:
        self.panel.ended()
        self.outcome.setText("Load cancelled")
        self.panel.step_label.setText("")
        set_banner(
            self.banner,
            "Cancelled between batches. Press Load to resume; records already loaded are not duplicated.",
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
