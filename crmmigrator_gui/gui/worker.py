"""Background operations: one QObject worker per run, moved to its own QThread.

The engine reports through a plain callback and a ``CancelToken``; :class:`Worker` adapts them
to Qt signals. It opens its *own* :class:`Project` from the path (SQLite connections are never
shared across threads) and closes it when done. :class:`TaskRunner` owns the thread: it connects
every signal before starting, and :meth:`TaskRunner.shutdown` cancels, quits and waits, because a
QThread destroyed while running aborts the whole process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from crmmigrator_gui.engine.errors import CancelledError, MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project

log = logging.getLogger(__name__)

#: ``operation(project, progress, cancel) -> result``; runs on the worker thread.
Operation = Callable[[Project, ProgressCallback, CancelToken], Any]

PROGRESS_INTERVAL = 0.1  # seconds: about ten progress signals a second, never one per record


class Worker(QObject):
    """Runs one engine operation against its own connection to the project file.

    Never touched from the GUI thread once started (except :meth:`cancel`, which only sets a
    thread-safe flag), and never touches a widget.

    Signals:
        progress(ProgressEvent): throttled engine progress (the last event of an object always passes).
        finished(object): the operation's return value.
        failed(str): a user-facing, one-line reason.
        cancelled(): the user cancelled; the engine left a resumable state.
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, project_path: Path, operation: Operation, *, name: str = "operation") -> None:
        super().__init__()
        self.project_path = Path(project_path)
        self.operation = operation
        self.name = name
        self.token = CancelToken()
        self._last_emit = 0.0
        self._last_obj: str | None = None
        self.done = False  # set (on the worker thread) just before the terminal signal

    def cancel(self) -> None:
        """Ask the engine to stop after the current batch (thread-safe)."""
        self.token.cancel()

    def _on_progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        boundary = event.obj != self._last_obj or (event.total and event.done >= event.total)
        if boundary or now - self._last_emit >= PROGRESS_INTERVAL:
            self._last_emit = now
            self._last_obj = event.obj
            self.progress.emit(event)

    @Slot()
    def run(self) -> None:
        project: Project | None = None
        try:
            project = Project.open(self.project_path)
            result = self.operation(project, self._on_progress, self.token)
        except CancelledError:
            self._close(project)
            self.cancelled.emit()
        except MigratorError as exc:
            self._close(project)
            self.failed.emit(str(exc))
        except Exception as exc:
            # Unexpected: keep the traceback in the log, show the user one line.
            log.exception("%s failed", self.name)
            self._close(project)
            self.failed.emit(f"Unexpected error during {self.name}: {type(exc).__name__}: {exc}")
        else:
            self._close(project)
            if self.token.cancelled and _looks_cancelled(result):
                self.cancelled.emit()
            else:
                self.finished.emit(result)

    def _close(self, project: Project | None) -> None:
        # Closed before the terminal signal, so a GUI handler may start the next worker at once.
        if project is not None:
            project.close()
        self.done = True


def _looks_cancelled(result: Any) -> bool:
    """``load`` returns a result with status ``cancelled`` instead of raising."""
    status = getattr(result, "status", None)
    return status == "cancelled"


class TaskRunner(QObject):
    """Owns at most one running :class:`Worker` and its QThread for a page.

    The thread starts from the event loop (a zero-delay timer), after :meth:`start` has returned,
    so a caller can still attach to :attr:`worker`'s signals before any of them can fire.

    Its signals repeat the current worker's on the GUI thread, after the page's callbacks. Wait on
    these (``qtbot.waitSignal``) rather than on the worker's: PySide6 runs a plain Python callable
    connected to a worker signal on the worker thread.

    Signals:
        busy_changed(bool): a worker started, or its thread ended and its results were delivered.
        progress(ProgressEvent): the current worker's throttled progress (GUI thread).
        finished(object): the current worker finished (GUI thread).
        failed(str): the current worker failed (GUI thread).
        cancelled(): the current worker was cancelled (GUI thread).
    """

    busy_changed = Signal(bool)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker: Worker | None = None
        self.thread: QThread | None = None
        self._active = False
        self._callbacks: dict[str, Callable[..., None] | None] = {}

    @property
    def busy(self) -> bool:
        """True while a worker is queued or running and has not yet reported its end."""
        return self._active and self.worker is not None and not self.worker.done

    @property
    def idle(self) -> bool:
        """True once the last thread has ended and every signal it sent has been handled."""
        return not self._active

    def start(
        self,
        project_path: Path,
        operation: Operation,
        *,
        name: str,
        on_progress: Callable[[Any], None] | None = None,
        on_finished: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Worker:
        """Queue ``operation`` on a new thread; the callbacks run on the GUI thread.

        Callbacks only ever hear from the current worker: signals from a replaced worker, or any
        arriving after :meth:`shutdown`, are dropped. A worker that has already reported its end
        (the caller is in its ``on_finished``) does not count as busy, so work can be chained.
        """
        if self.busy:
            raise RuntimeError("an operation is already running on this page")
        self._release()
        worker = Worker(project_path, operation, name=name)
        thread = QThread()
        thread.setObjectName(f"crmmigrator-{name}")
        worker.moveToThread(thread)
        self._callbacks = {
            "progress": on_progress,
            "finished": on_finished,
            "failed": on_failed,
            "cancelled": on_cancelled,
        }
        # Every connection is made before the thread starts. The worker's signals reach this
        # GUI-thread object through queued connections.
        thread.started.connect(worker.run)
        worker.progress.connect(self._relay_progress)
        worker.finished.connect(self._relay_finished)
        worker.failed.connect(self._relay_failed)
        worker.cancelled.connect(self._relay_cancelled)
        for signal in (worker.finished, worker.failed, worker.cancelled):
            # Direct: QThread.quit is thread-safe, and the thread must stop even if the GUI loop is busy.
            signal.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._on_thread_finished)
        self.worker, self.thread = worker, thread
        self._active = True
        QTimer.singleShot(0, self._start_thread)
        self.busy_changed.emit(True)
        return worker

    @Slot()
    def _start_thread(self) -> None:
        thread = self.thread
        if thread is not None and self._active and not thread.isRunning() and not thread.isFinished():
            thread.start()

    def _from_current_worker(self) -> bool:
        return self.worker is not None and self.sender() is self.worker

    def _call(self, kind: str, *args: Any) -> None:
        callback = self._callbacks.get(kind)
        if callback is not None:
            callback(*args)

    @Slot(object)
    def _relay_progress(self, event: Any) -> None:
        if self._from_current_worker():
            self._call("progress", event)
            self.progress.emit(event)

    @Slot(object)
    def _relay_finished(self, result: Any) -> None:
        if self._from_current_worker():
            self._call("finished", result)
            self.finished.emit(result)

    @Slot(str)
    def _relay_failed(self, message: str) -> None:
        if self._from_current_worker():
            self._call("failed", message)
            self.failed.emit(message)

    @Slot()
    def _relay_cancelled(self) -> None:
        if self._from_current_worker():
            self._call("cancelled")
            self.cancelled.emit()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    @Slot()
    def _on_thread_finished(self) -> None:
        if self.thread is None or self.sender() is not self.thread:  # stale: replaced or shut down
            return
        self._active = False
        self.busy_changed.emit(False)

    def _release(self) -> None:
        """Join and drop the previous thread and worker (plain Python-owned objects)."""
        if self.thread is not None and self.thread.isRunning():
            self.thread.wait()
        self.worker = None
        self.thread = None

    def shutdown(self) -> None:
        """Cancel, quit and wait: called when the page or the wizard closes."""
        if self.thread is None:
            return
        self.cancel()
        self._active = False  # a queued start will not happen now
        self.thread.quit()
        self.thread.wait()
        self._release()
