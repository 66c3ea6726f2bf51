"""Progress reporting and cancellation without any UI dependency.

The engine calls ``progress(ProgressEvent)``; the GUI adapts it to a Qt signal, the CLI to
stderr lines. A ``CancelToken`` is checked between batches so that a cancel always leaves a
resumable state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from crmmigrator_gui.engine.errors import CancelledError


@dataclass(frozen=True)
class Failure:
    """One record the destination refused, reported live while the run goes on."""

    source_object: str
    source_id: str
    code: str
    message: str


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report for one object (or one step when ``obj`` is empty)."""

    step: str
    obj: str
    done: int
    total: int
    rate: float = 0.0  # records per second
    eta_seconds: float | None = None
    message: str = ""
    failures: tuple[Failure, ...] = ()  # records that failed in the batch just committed
    paused: bool = False  # the run is waiting between batches for resume (or cancel)


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """Default callback: ignore progress."""


class CancelToken:
    """Thread-safe cancel and pause flags shared between a UI and a worker.

    Pausing never interrupts a batch: the worker calls :meth:`checkpoint` between batches (after the
    crosswalk is committed), so a pause, like a cancel, always leaves a state that resumes exactly.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wake = threading.Condition()

    def cancel(self) -> None:
        self._event.set()
        with self._wake:
            self._wake.notify_all()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        with self._wake:
            self._wake.notify_all()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self, on_pause: Callable[[bool], None] | None = None) -> None:
        """Between batches: wait while paused (calling ``on_pause(True)`` once, ``on_pause(False)`` on resume),
        then raise ``CancelledError`` if cancelled — a cancel while paused ends the wait at once."""
        if self.paused and not self.cancelled:
            if on_pause:
                on_pause(True)
            with self._wake:
                while self.paused and not self.cancelled:
                    self._wake.wait(0.5)
            if on_pause and not self.cancelled:
                on_pause(False)
        self.raise_if_cancelled()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("Cancelled by the user; run `load` again to resume.")
