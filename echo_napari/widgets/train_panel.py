"""A training-job panel: Start / Cancel, progress bar, ETA and a live loss curve (pyqtgraph).

The panel runs a generator function in a napari ``thread_worker``. The generator yields
records with ``step`` and ``loss`` (``total`` optional), or notices with a ``message``
for the user (shown above the curve and as a napari warning while the job goes on), and
returns the job's result;
Cancel sets an event the generator checks as ``should_stop`` before every step, so it
returns at the next step boundary (within a second) and writes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from echo_napari.errors import EchoNapariError
from echo_napari.widgets._jobs import (
    connect_worker,
    error_message,
    show_job_failure,
    start_counted_job,
)
from echo_napari.widgets._notify import notify_error, notify_warning

logger = logging.getLogger(__name__)

#: Least time between two repaints of the loss curve (seconds).
REDRAW_INTERVAL_S = 0.2


def format_eta(seconds: float) -> str:
    """ "1 min 05 s" style remaining time."""
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class TrainJobPanel(QGroupBox):
    """Start/Cancel, progress, ETA and loss curve of one kind of training job.

    Parameters
    ----------
    title : group box title
    start_text : label of the start button
    job_factory : called on Start; returns ``(generator_function, total_steps)`` or
        raises :class:`EchoNapariError` (shown to the user). The generator function takes
        ``should_stop`` as its only argument.

    Signals
    -------
    succeeded(object)
        The generator's return value when the job finished and returned non-None.
    """

    succeeded = Signal(object)

    def __init__(
        self,
        title: str,
        start_text: str,
        job_factory: Callable[[], tuple[Callable[..., Any], int]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(title, parent)
        self.job_factory = job_factory
        self.worker: Any = None
        self._cancel = threading.Event()
        self._losses: list[float] = []
        self._steps: list[int] = []
        self._total = 0
        self._started = 0.0
        self._last_draw = 0.0
        self.result: Any = None

        self.start_button = QPushButton(start_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.eta_label = QLabel("")
        self.status_label = QLabel("Idle.")
        self.status_label.setWordWrap(True)
        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet("color: #ffb347;")
        self.notice_label.hide()
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumHeight(110)
        self.plot_widget.setMaximumHeight(150)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.curve = self.plot.plot([], [], pen=pg.mkPen((90, 180, 255, 120), width=1))
        # An exponential moving average: single steps of small random batches are noisy.
        self.smooth_curve = self.plot.plot([], [], pen=pg.mkPen((255, 255, 255), width=2))

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        self.controls = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addLayout(self.controls)
        layout.addLayout(buttons)
        row = QHBoxLayout()
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.eta_label)
        layout.addLayout(row)
        layout.addWidget(self.notice_label)
        layout.addWidget(self.plot_widget)
        layout.addWidget(self.status_label)

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def loss_history(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, losses) received so far from the current or last job."""
        return np.asarray(self._steps), np.asarray(self._losses)

    def start(self) -> None:
        """Build the job and run it in a worker thread."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return
        try:
            function, total = self.job_factory()
        except EchoNapariError as error:
            notify_error(str(error))
            self.status_label.setText(f"Cannot start: {error}")
            return
        self._cancel = threading.Event()
        self._losses, self._steps = [], []
        self._total = max(1, int(total))
        self._started = time.monotonic()
        self.result = None
        self.curve.setData([], [])
        self.smooth_curve.setData([], [])
        self.notice_label.clear()
        self.notice_label.hide()
        self.worker = create_worker(
            function, self._cancel.is_set, _start_thread=False, _ignore_errors=True
        )
        connect_worker(
            self.worker,
            yielded=self._on_yielded,
            returned=self._on_returned,
            errored=self._on_errored,
            finished=self._on_finished,
        )
        self.eta_label.setText("")
        start_counted_job(
            self.worker,
            progress_bar=self.progress_bar,
            total=self._total,
            status_label=self.status_label,
            text="Starting…",
            start_button=self.start_button,
            cancel_button=self.cancel_button,
        )

    def cancel(self) -> None:
        """Ask the job to stop at its next step; nothing is written."""
        if self.worker is not None:
            self._cancel.set()
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _on_yielded(self, record: Any) -> None:
        message = getattr(record, "message", None)
        if message is not None:
            self.notice_label.setText(message)
            self.notice_label.show()
            notify_warning(f"echo-napari: {message}")
            return
        step = int(record.step)
        self._total = int(getattr(record, "total", self._total) or self._total)
        self._steps.append(step)
        self._losses.append(float(record.loss))
        elapsed = time.monotonic() - self._started
        now = time.monotonic()
        if step < self._total and now - self._last_draw < REDRAW_INTERVAL_S:
            return
        self._last_draw = now
        self._draw()
        self.progress_bar.setRange(0, self._total)
        self.progress_bar.setValue(step)
        eta = elapsed / max(step, 1) * (self._total - step)
        self.eta_label.setText(f"ETA {format_eta(eta)}")
        self.status_label.setText(f"step {step}/{self._total}, loss {record.loss:.4f}")

    def smoothed_losses(self, weight: float = 0.9) -> np.ndarray:
        """Exponential moving average of the losses (bias-corrected), one per step."""
        out = np.empty(len(self._losses))
        average = 0.0
        for i, loss in enumerate(self._losses):
            average = weight * average + (1 - weight) * loss
            out[i] = average / (1 - weight ** (i + 1))
        return out

    def _draw(self) -> None:
        self.curve.setData(self._steps, self._losses)
        self.smooth_curve.setData(self._steps, self.smoothed_losses())

    def _on_returned(self, result: Any) -> None:
        self.result = result
        if result is None:
            self.status_label.setText("Cancelled; no version written.")
            return
        self.status_label.setText(f"Done: {getattr(result, 'label', result)}")
        self.succeeded.emit(result)

    def _on_errored(self, error: BaseException) -> None:
        message = error_message(error)
        logger.exception("training job failed", exc_info=error)
        show_job_failure(self.status_label, "Training", message)

    def _on_finished(self) -> None:
        self.worker = None
        if self._steps:
            self._draw()
        self.eta_label.setText("")
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
