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
class ProgressEvent:
    """One progress report for one object (or one step when ``obj`` is empty)."""

    step: str
    obj: str
    done: int
    total: int
    rate: float = 0.0  # records per second
    eta_seconds: float | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """Default callback: ignore progress."""


class CancelToken:
    """Thread-safe cancel flag shared between a UI and a worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("Cancelled by the user; run `load` again to resume.")
