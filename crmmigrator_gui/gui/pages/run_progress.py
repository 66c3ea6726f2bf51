"""The run view the Load and Delta pages share: per-object bars, an overall line, live failures, outcome cards.

Why a module of its own: a delta is a load in the same ledger, so the consultant should watch it the same way
(pause, resume, cancel, failures as they happen) — one widget, not two copies drifting apart.

Why a :class:`RunMonitor` next to the worker's signals: the worker throttles progress to ~10 signals a second
and drops the events in between, but every batch's failures and the engine's "paused" notice must reach the
screen. The monitor sits in the engine's callback on the worker thread, keeps those under a lock, and the GUI
drains it on a timer (never per record).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.progress import CancelToken, Failure, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.run.results import COUNT_KEYS, RunResult
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table, format_duration, heading

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()

#: Rows the failures table keeps on screen; the rest are counted and live in the report.
FAILURE_DISPLAY_CAP = 500
DRAIN_INTERVAL_MS = 100  # about ten screen updates a second, however fast batches commit


def is_pause_notice(event: ProgressEvent) -> bool:
    """The engine's "paused"/"resumed" events repeat the last batch's figures; they are not a new batch."""
    return event.paused or event.message in ("paused", "resumed")


class RunMonitor:
    """What the GUI must not miss from a run, collected on the worker thread and drained on the GUI thread.

    Thread-safe: :meth:`wrap` returns the callback the engine calls (worker thread); :meth:`drain` is called
    from the GUI thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[Failure] = []
        self._paused: bool | None = None  # None: no change since the last drain
        self.batches = 0  # batch commits seen (progress events of a part that are not pause notices)

    def wrap(self, progress: ProgressCallback) -> ProgressCallback:
        def record(event: ProgressEvent) -> None:
            with self._lock:
                if event.failures:
                    self._failures.extend(event.failures)
                if event.paused:
                    self._paused = True
                elif event.message == "resumed":
                    self._paused = False
                elif event.obj and event.step == "load":
                    self.batches += 1
            progress(event)

        return record

    def drain(self) -> tuple[list[Failure], bool | None, int]:
        """(failures since the last drain, the paused flag if it changed, batches so far)."""
        with self._lock:
            failures, self._failures = self._failures, []
            paused, self._paused = self._paused, None
            return failures, paused, self.batches


class FailuresModel(QAbstractTableModel):
    """Failed records, newest first; only the newest :data:`FAILURE_DISPLAY_CAP` are kept for display."""

    HEADERS = ("Object", "Source id", "Code", "What went wrong")

    def __init__(self, parent: Any = None, *, cap: int = FAILURE_DISPLAY_CAP) -> None:
        super().__init__(parent)
        self.cap = cap
        self._rows: list[Failure] = []
        self._keys: set[tuple[str, str]] = set()
        self.total = 0  # every failed record seen, shown or not

    def clear(self) -> None:
        self.beginResetModel()
        self._rows, self._keys, self.total = [], set(), 0
        self.endResetModel()

    def add(self, failures: Iterable[Failure]) -> None:
        """Put a batch's failures on top (newest first), trimming the oldest beyond the cap.

        A record split into several destination rows (a customer into an account and a contact) is listed once:
        the table counts failed source records, as the run's totals do.
        """
        new = []
        for failure in failures:
            key = (failure.source_object, failure.source_id)
            if key not in self._keys:
                self._keys.add(key)
                new.append(failure)
        if not new:
            return
        self.total += len(new)
        new.reverse()
        shown = new[: self.cap]
        self.beginInsertRows(_ROOT, 0, len(shown) - 1)
        self._rows[0:0] = shown
        self.endInsertRows()
        if len(self._rows) > self.cap:
            self.beginRemoveRows(_ROOT, self.cap, len(self._rows) - 1)
            del self._rows[self.cap :]
            self.endRemoveRows()

    def replace(self, failures: list[Failure]) -> None:
        """All of a run's failures in the order they happened (the finished run's own account)."""
        self.clear()
        self.add(failures)

    @property
    def hidden(self) -> int:
        return self.total - len(self._rows)

    def failure(self, row: int) -> Failure:
        return self._rows[row]

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        failure = self._rows[index.row()]
        value = (failure.source_object, failure.source_id, failure.code, failure.message)[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return value
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            return value
        return None


def failures_of(result: RunResult) -> list[Failure]:
    """The run's failed records (not the skipped ones) as :class:`Failure` rows, in load order."""
    return [
        Failure(f["source_object"], str(f["source_id"]), str(f.get("code") or ""), str(f.get("message") or ""))
        for f in result.failures
        if f.get("action", "failed") == "failed"
    ]


class ObjectProgress:
    """One row of the progress grid: what is loading, how far, how fast."""

    def __init__(self, grid: QGridLayout, row: int, title: str, entity: str, expected: int = 0) -> None:
        self.label = QLabel(f"<b>{title}</b> → {entity}")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("waiting")
        self.bar.setMinimumWidth(180)
        self.stats = hint(QLabel(""))
        self.stats.setWordWrap(False)
        self.stats.setMinimumWidth(190)
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.bar, row, 1)
        grid.addWidget(self.stats, row, 2)
        self.done = 0
        self.total = expected  # what the row expects until the engine says otherwise
        self.rate = 0.0
        self.started = False
        self._text = ""

    def update(self, event: ProgressEvent) -> None:
        self.started = True
        self.done, self.total = event.done, event.total
        if not is_pause_notice(event):
            self.rate = event.rate
        total = max(event.total, 1)
        self.bar.setRange(0, total)
        self.bar.setValue(min(event.done, total))
        self.bar.setFormat(f"{event.done:,} / {event.total:,}")
        if event.done >= event.total:
            self._text = f"done · {self.rate:,.0f} records/s"
        else:
            self._text = f"{self.rate:,.0f} records/s · ETA {format_duration(event.eta_seconds)}"
        self.stats.setText(self._text)

    def set_paused(self, paused: bool) -> None:
        """Every row still to do says "paused" while the run waits; the figures come back on resume."""
        if self.started and self.done >= self.total:
            return
        self.stats.setText("paused" if paused else self._text)
        if not self.started:
            self.bar.setFormat("paused" if paused else "waiting")
            return
        self.bar.setFormat(f"{self.done:,} / {self.total:,}" + (" · paused" if paused else ""))

    def finish(self) -> None:
        if not self.started or self.total == 0:
            self.bar.setFormat("nothing to load")
            self.stats.setText("")
        self.bar.setValue(self.bar.maximum())


class OutcomeCards(QWidget):
    """The finished run's totals, one card per outcome, so the failed figure is read at a glance."""

    def __init__(self) -> None:
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.values: dict[str, QLabel] = {}
        for key in COUNT_KEYS:
            card = QFrame()
            card.setFrameShape(QFrame.Shape.StyledPanel)
            inner = QVBoxLayout(card)
            inner.setContentsMargins(10, 4, 10, 4)
            inner.setSpacing(0)
            inner.addWidget(hint(QLabel(key.capitalize())))
            value = heading("—")
            inner.addWidget(value)
            self.values[key] = value
            layout.addWidget(card, 1)

    def show_totals(self, totals: dict[str, int]) -> None:
        for key, label in self.values.items():
            number = int(totals.get(key, 0))
            label.setText(f"{number:,}")
            alert = key == "failed" and number > 0
            label.setStyleSheet("color:#8a1c12" if alert else "")


def run_totals(result: RunResult) -> dict[str, int]:
    return {k: sum(int(o.get(k, 0)) for o in result.objects) for k in COUNT_KEYS}


class RunProgressPanel(QWidget):
    """Pause/Resume and Cancel, the overall line, per-object bars, live failures and the outcome cards.

    The page owns the worker; the panel is told about it (:meth:`started`, :meth:`handle`, :meth:`finished`)
    and asks it to pause, resume or cancel through the worker's :class:`CancelToken`.
    """

    def __init__(self, *, verb: str = "Loading", progress_title: str = "Progress by object") -> None:
        super().__init__()
        self.verb = verb
        self.pause_button = QPushButton("Pause")
        self.pause_button.setMinimumWidth(100)
        self.pause_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.overall = QLabel("")
        self.overall.setWordWrap(True)
        self.overall.setVisible(False)

        self.step_label = hint(QLabel(""))
        self.step_label.setWordWrap(True)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(4, 4, 4, 4)
        self.grid.setHorizontalSpacing(16)
        self.grid.setVerticalSpacing(6)
        self.grid.setColumnStretch(1, 1)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.grid_host)
        progress_box = QGroupBox(progress_title)
        progress_layout = QVBoxLayout(progress_box)
        progress_layout.addWidget(self.step_label)
        progress_layout.addWidget(scroll, 1)

        self.failures_model = FailuresModel(self)
        self.failures_view = QTableView()
        self.failures_view.setModel(self.failures_model)
        configure_table(self.failures_view)
        header = self.failures_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((130, 180, 110)):
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        self.failures_view.verticalHeader().setVisible(False)
        self.failures_more = hint(QLabel(""))
        self.failures_box = QGroupBox("Failed records (0)")
        failures_layout = QVBoxLayout(self.failures_box)
        failures_layout.addWidget(self.failures_view, 1)
        failures_layout.addWidget(self.failures_more)
        self.failures_more.setVisible(False)
        self.failures_box.setVisible(False)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(progress_box)
        self.splitter.addWidget(self.failures_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        self.cards = OutcomeCards()
        self.cards.setVisible(False)
        self.after_hint = hint(QLabel(""))
        self.after_hint.setWordWrap(True)
        self.after_hint.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.overall)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.cards)
        layout.addWidget(self.after_hint)

        self.rows: dict[str, ObjectProgress] = {}
        self.titles: dict[str, tuple[str, str, int]] = {}
        self.lazy = False
        self.token: CancelToken | None = None
        self.monitor = RunMonitor()
        self.paused = False  # the engine confirmed it is waiting between batches
        self.pause_requested = False
        self.batches = 0
        self._started_at = 0.0
        self._paused_at: float | None = None
        self._paused_seconds = 0.0
        self._running = False
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_INTERVAL_MS)
        self.timer.timeout.connect(self.drain)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)

    # ------------------------------------------------------------------ rows
    def set_rows(self, parts: Iterable[tuple[str, str, str, int]], *, lazy: bool = False) -> None:
        """(qualified part, title, destination entity, expected records) per row, in load order.

        ``lazy``: show only the rows that expect records; the others appear when their part first reports
        records (a delta touches a few objects, and a wall of "nothing to load" rows would hide them).
        """
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        self.rows.clear()
        self.titles = {qualified: (title, entity, expected) for qualified, title, entity, expected in parts}
        self.lazy = lazy
        for qualified, (_title, _entity, expected) in self.titles.items():
            if not lazy or expected > 0:
                self.row_for(qualified)

    def row_for(self, qualified: str) -> ObjectProgress:
        row = self.rows.get(qualified)
        if row is None:  # lazily, or a part the pre-computed order did not know
            obj, _, part = qualified.partition(".")
            title, entity, expected = self.titles.get(qualified, (obj, part or obj, 0))
            row = ObjectProgress(self.grid, len(self.rows), title, entity, expected)
            self.rows[qualified] = row
        return row

    # ------------------------------------------------------------------ a run
    def monitored(self, progress: ProgressCallback) -> ProgressCallback:
        """The engine callback for the next run (call on the worker thread, from the page's operation)."""
        return self.monitor.wrap(progress)

    def prepare(self) -> RunMonitor:
        """Reset for a new run; returns the monitor the operation must wrap its progress with."""
        self.monitor = RunMonitor()
        self.failures_model.clear()
        self._update_failures_title()
        self.cards.setVisible(False)
        self.after_hint.setVisible(False)
        self.overall.setText("")
        self.paused = self.pause_requested = False
        self.batches = 0
        self.pause_button.setText("Pause")
        return self.monitor

    def started(self, token: CancelToken) -> None:
        self.token = token
        self._running = True
        self._started_at = time.monotonic()
        self._paused_at = None
        self._paused_seconds = 0.0
        self.pause_button.setEnabled(True)
        self.cancel_button.setEnabled(True)
        self.step_label.setText("Starting…")
        self.timer.start()

    def handle(self, event: ProgressEvent) -> None:
        """A (throttled) progress signal from the worker."""
        if event.obj and event.step == "load":
            if self.lazy and event.obj not in self.rows and not event.total:
                return
            row = self.row_for(event.obj)
            row.update(event)
            self.scroll.ensureWidgetVisible(row.label, 0, 4)  # keep the part being written in view
            if not self.paused and not self.pause_requested:
                self.step_label.setText(f"{self.verb} {event.obj}…")
        elif event.step == "delta" and event.obj == "deletions":
            self.step_label.setText(
                f"Deleting at the destination what the source deleted ({event.done:,} / {event.total:,})"
            )
        elif event.message or event.obj:
            done = f" ({event.done:,} / {event.total:,})" if event.total else ""
            self.step_label.setText(f"{event.message or event.obj}{done}")
        self.drain()

    def drain(self) -> None:
        failures, paused, batches = self.monitor.drain()
        self.batches = batches
        if failures:
            self.failures_model.add(failures)
            self._update_failures_title()
        if paused is not None and paused != self.paused:
            self._set_paused(paused)
        self._update_overall()

    def toggle_pause(self) -> None:
        if self.token is None or not self._running:
            return
        if self.pause_requested:
            self.token.resume()
            self.pause_requested = False
            self.pause_button.setText("Pause")
            if not self.paused:
                self.step_label.setText("Resuming…")
        else:
            self.token.pause()
            self.pause_requested = True
            self.pause_button.setText("Resume")
            self.step_label.setText("Pausing after the current batch…")
        self._update_overall()

    def cancel(self) -> None:
        if self.token is None or not self._running:
            return
        self.token.cancel()
        self.cancel_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.step_label.setText("Cancelling…" if self.paused else "Cancelling after the current batch…")

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        now = time.monotonic()
        if paused:
            self._paused_at = now
        elif self._paused_at is not None:
            self._paused_seconds += now - self._paused_at
            self._paused_at = None
        for row in self.rows.values():
            row.set_paused(paused)
        if paused:
            self.step_label.setText("Paused between batches: nothing is being written.")
        elif not self.pause_requested:
            self.step_label.setText("Resumed.")

    def ended(self) -> None:
        """The worker reported its end (finished, failed or cancelled)."""
        self.drain()
        if self.paused:
            self._set_paused(False)
        self._running = False
        self.timer.stop()
        self.token = None
        self.pause_requested = False
        self.pause_button.setText("Pause")
        self.pause_button.setEnabled(False)
        self.cancel_button.setEnabled(False)

    def finished(self, result: RunResult) -> dict[str, int]:
        """Show the finished run's outcome; returns its totals."""
        self.ended()
        for row in self.rows.values():
            row.finish()
        self.scroll.verticalScrollBar().setValue(0)  # the whole run from its first object
        failed = failures_of(result)
        # The live table misses failures of batches done before a resume: then show the run's own account.
        if len({(f.source_object, f.source_id) for f in failed}) != self.failures_model.total:
            self.failures_model.replace(failed)
            self._update_failures_title()
        totals = run_totals(result)
        self.cards.show_totals(totals)
        self.cards.setVisible(True)
        self._update_overall(result)
        return totals

    # ------------------------------------------------------------------ text
    def active_seconds(self) -> float:
        if not self._started_at:
            return 0.0
        paused = self._paused_seconds + (time.monotonic() - self._paused_at if self._paused_at else 0.0)
        return max(0.0, time.monotonic() - self._started_at - paused)

    def _update_failures_title(self) -> None:
        model = self.failures_model
        self.failures_box.setTitle(f"Failed records ({model.total:,})")
        self.failures_box.setVisible(model.total > 0)  # no empty grey table before anything failed
        self.failures_more.setVisible(model.hidden > 0)
        self.failures_more.setText(
            f"Showing the newest {model.rowCount():,}; {model.hidden:,} more in the report." if model.hidden else ""
        )

    def _update_overall(self, result: RunResult | None = None) -> None:
        """Records (source records, as the totals count them: a customer loaded as an account and a contact is
        done when both are), throughput, ETA, elapsed, and requests once the run is over."""
        by_object: dict[str, list[ObjectProgress]] = {}
        for qualified, row in self.rows.items():
            by_object.setdefault(qualified.partition(".")[0], []).append(row)
        total = sum(max(r.total for r in rows) for rows in by_object.values())
        done = sum(min(r.done if r.started else 0 for r in rows) for rows in by_object.values())
        started = [r for r in self.rows.values() if r.started]
        timed = [r for r in started if r.rate > 0 and r.done > 0]
        spent = sum(r.done / r.rate for r in timed)  # per-part active time, as the engine measured it
        rate = sum(r.done for r in timed) / spent if spent > 0 else 0.0
        remaining = sum(max(r.total - (r.done if r.started else 0), 0) for r in self.rows.values())
        parts = [f"<b>{done:,} / {total:,}</b> records"]
        if rate:
            parts.append(f"{rate:,.0f} records/s")
        if self._running and rate and remaining and not self.paused:
            parts.append(f"ETA {format_duration(remaining / rate)}")
        seconds = result.seconds if result is not None else self.active_seconds()
        parts.append(f"elapsed {format_duration(seconds)}")
        if result is not None:
            parts.append(f"{result.requests:,} requests to the destination")
        line = " · ".join(parts)
        if self.paused:
            line += (
                f"<br><b>Paused after batch {self.batches:,}</b> — Resume to continue, Cancel to stop; "
                "the run resumes exactly where it stopped."
            )
        shown = self._running or result is not None or bool(started)
        self.overall.setText(line if shown else "")
        self.overall.setVisible(shown)
