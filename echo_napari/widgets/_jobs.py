"""Shared plumbing of the panels that run a job in a napari ``thread_worker``.

Progress relay (worker thread → GUI thread), Cancel, throttled progress-bar updates and
the error/finish callbacks that the Propagate and Predict panels have in common.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Signal

from echo_napari.errors import EchoNapariError
from echo_napari.widgets._notify import notify_error

#: Least time between two progress-bar repaints (seconds).
PROGRESS_INTERVAL_S = 0.25


def torch_threads_for_jobs() -> int:
    """CPU threads a background job may use: all but one core, so the GUI keeps one."""
    return max(1, (os.cpu_count() or 2) - 1)


class JobCancelled(EchoNapariError):
    """Raised inside a job's progress callback when the user pressed Cancel."""


def stage_reporter(
    progress: Callable[[str, int, int], None] | None, cancel: threading.Event | None
) -> Callable[[str], Callable[[int, int], None]]:
    """``reporter(stage)`` gives a callable(done, total) that relays progress and raises
    :class:`JobCancelled` once ``cancel`` is set."""

    def reporter(stage: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if cancel is not None and cancel.is_set():
                raise JobCancelled("cancelled by the user")
            if progress is not None:
                progress(stage, done, total)

        return report

    return reporter


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(str, int, int)


def error_message(error: BaseException) -> str:
    """The user-facing text of a job's error (the repr of unexpected exceptions)."""
    return str(error) if isinstance(error, EchoNapariError) else repr(error)


def file_error_message(error: BaseException) -> str:
    """The user-facing text of a file job's error (open, save, export): OS errors (disk
    full, no permission) read as they are, like our own."""
    return str(error) if isinstance(error, OSError) else error_message(error)


def show_job_failure(status_label: Any, what: str, message: str) -> None:
    """Put "Failed: ..." in the panel's status line and notify "<what> failed: ..."."""
    status_label.setText(f"Failed: {message}")
    notify_error(f"{what} failed: {message}")


def connect_worker(worker: Any, **callbacks: Any) -> None:
    """Connect ``worker.<signal>`` to each callback given as ``signal=callback``."""
    for signal, callback in callbacks.items():
        getattr(worker, signal).connect(callback)


class ProgressJobMixin:
    """Cancel and the worker callbacks of a panel with a progress bar and a status label.

    The panel provides ``worker``, ``_cancel`` (threading.Event), ``_last_progress``,
    ``progress_bar``, ``status_label``, ``_update_buttons()`` and ``JOB_TITLE`` (the
    "<title> failed: ..." notification).
    """

    JOB_TITLE = "Job"
    worker: Any
    progress_bar: Any
    status_label: Any

    def cancel(self) -> None:
        """Stop the running job at its next progress report."""
        self._cancel.set()
        if self.worker is not None:
            self.worker.quit()
        self.status_label.setText("Cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        # Each repaint of the window costs the GUI thread a composition pass; a few
        # progress updates per second are enough for a person to read.
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.status_label.setText(f"{stage}: {done}/{total}")

    def _on_errored(self, error: BaseException) -> None:
        if isinstance(error, JobCancelled):
            self.status_label.setText("Cancelled; labels unchanged.")
            return
        show_job_failure(self.status_label, self.JOB_TITLE, error_message(error))

    def _on_finished(self) -> None:
        self.worker = None
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0 if self._cancel.is_set() else 1)
        self._update_buttons()

    def _launch(self, worker: Any, on_returned: Any) -> None:
        """Wire ``worker`` to the callbacks, show "Starting…" and start it."""
        self.worker = worker
        connect_worker(
            worker, returned=on_returned, errored=self._on_errored, finished=self._on_finished
        )
        self.status_label.setText("Starting…")
        self.progress_bar.setRange(0, 0)
        self._update_buttons()
        worker.start()


def start_counted_job(
    worker: Any,
    *,
    progress_bar: Any,
    total: int,
    status_label: Any,
    text: str,
    start_button: Any,
    cancel_button: Any,
) -> None:
    """Reset the progress bar to ``0/total``, show ``text``, swap the Start/Cancel
    buttons and start ``worker`` (whose signals are already connected)."""
    progress_bar.setRange(0, total)
    progress_bar.setValue(0)
    status_label.setText(text)
    start_button.setEnabled(False)
    cancel_button.setEnabled(True)
    worker.start()
