"""Pause, resume and cancel between batches: a paused worker waits, a cancel while paused ends the wait."""

import threading
import time

import pytest

from crmmigrator_gui.engine.errors import CancelledError
from crmmigrator_gui.engine.progress import CancelToken


def test_paused_checkpoint_waits_until_resume_and_reports_both_edges():
    token, seen = CancelToken(), []
    token.pause()
    worker = threading.Thread(target=lambda: token.checkpoint(seen.append))
    worker.start()
    time.sleep(0.2)
    assert worker.is_alive()
    assert token.paused
    assert seen == [True]
    token.resume()
    worker.join(2)
    assert not worker.is_alive()
    assert seen == [True, False]


def test_cancel_while_paused_raises_at_once():
    token, errors = CancelToken(), []
    token.pause()

    def run():
        try:
            token.checkpoint()
        except CancelledError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.1)
    token.cancel()
    worker.join(2)
    assert not worker.is_alive()
    assert len(errors) == 1


def test_running_checkpoint_passes_and_cancelled_one_raises():
    token = CancelToken()
    token.checkpoint()  # not paused, not cancelled: returns
    token.cancel()
    with pytest.raises(CancelledError):
        token.checkpoint()
