"""The whole clip's beat-by-beat EF for the review dock's summary, off the GUI thread.

The dock's "EF … (labels, Simpson)" comes from the ED/ES pair the user set. The command
line (``predict``, ``compute``) and the real-video benchmark report the mean EF over every
beat of the clip (:func:`echo_napari.metrics_ef.ef_by_beats`); the dock shows that
too, so both read the same number. It needs an area-length volume per frame (~25 ms for
128 frames of 112 × 112, ~0.3 s for 100 frames of 600 × 600), so it runs in a worker on a
copy of the labels, once edits pause, and a request made meanwhile runs after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QObject, Signal

logger = logging.getLogger(__name__)

#: Fewer frames than this hold no two shortest beats (2 × 12): no beat EF is shown.
MIN_FRAMES = 24

#: (labels (T, H, W) uint8, spacing (dy, dx) mm or None, ms between frames or None) of a
#: clip to measure
Clip = tuple[np.ndarray, tuple[float, float] | None, float | None]
Source = Callable[[], Clip | None]


def beat_ef_text(
    labels: np.ndarray,
    spacing: tuple[float, float] | None,
    frame_time_ms: float | None = None,
) -> str:
    """Summary text of the clip's beat EF and the range of its beats' EFs ("" when no beat
    is found).

    Parameters
    ----------
    labels : (T, H, W) uint8 LabelClass values
    spacing : (dy, dx) mm or None
    frame_time_ms : ms between frames or None (read as 50 frames/s)
    """
    # Imported here, in the worker: it brings scipy.signal (~0.5 s the first time), which
    # would otherwise load on the GUI thread as the dock opens.
    from echo_napari.metrics_ef import ef_by_beats

    result = ef_by_beats(labels, spacing, frame_time_ms=frame_time_ms)
    n = len(result.beats)
    if n == 0:
        lost = bool(result.rejected) and bool(np.any(result.curve > 0))
        return "beats: no EF (no plausible beat: LV lost at end-systole?)" if lost else ""
    if n == 1:
        over = "1 beat"
    else:
        # the spread tells whether the beats agree (arrhythmia, or a beat badly segmented)
        values = [ef for _, _, ef in result.beats]
        over = f"mean of {n} beats, {min(values):.0f}–{max(values):.0f}"
    return f"beats: EF {result.ef:.1f} % ({over}, area-length)"


class BeatEFJob(QObject):
    """Computes :func:`beat_ef_text` in a napari worker; at most one runs at a time.

    Parameters
    ----------
    source : callable returning (labels, spacing) of the clip now, or None when it has
        no beats to measure (too short, or the LV not labelled on most frames)

    Signals
    -------
    ready(str)
        New text (possibly ""), emitted on the GUI thread.
    """

    ready = Signal(str)

    def __init__(self, source: Source, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._worker = None
        self._pending = False
        self._generation = 0
        self._running_generation = 0
        self.text = ""

    @property
    def running(self) -> bool:
        """True while a computation runs."""
        return self._worker is not None

    def reset(self) -> None:
        """Forget the shown text and any running result (a new clip was loaded)."""
        self._generation += 1
        self.text = ""

    def request(self) -> None:
        """Compute for the current labels (after the running computation, if any)."""
        if self._worker is not None:
            self._pending = True
            return
        clip = self._source()
        self._generation += 1
        if clip is None:
            self._show(self._generation, "")
            return
        from napari.qt.threading import create_worker

        labels, spacing, frame_time_ms = clip
        self._running_generation = self._generation
        worker = create_worker(
            beat_ef_text,
            labels.copy(),
            spacing,
            frame_time_ms,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(self._returned)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self._worker = worker
        worker.start()

    def _returned(self, text: str) -> None:
        self._show(self._running_generation, text)

    def _show(self, generation: int, text: str) -> None:
        if generation == self._generation and text != self.text:
            self.text = text
            self.ready.emit(text)

    def _failed(self, error: BaseException) -> None:
        # A summary extra: log it, never interrupt the user with it.
        logger.warning("beat EF not computed: %r", error)
        self._show(self._generation, "")

    def _finished(self) -> None:
        self._worker = None
        if self._pending:
            self._pending = False
            self.request()


def clip_for_beats(
    labels: np.ndarray | None,
    spacing: tuple[float, float] | None,
    lv_areas: np.ndarray,
    frame_time_ms: float | None = None,
) -> Clip | None:
    """(labels, spacing, frame_time_ms) when the clip can have beats measured: at least
    :data:`MIN_FRAMES` frames and an LV on at least half of them; else None.

    Parameters
    ----------
    lv_areas : (T,) LV cavity area per frame (any unit)
    """
    if labels is None or labels.shape[0] < MIN_FRAMES:
        return None
    if np.count_nonzero(lv_areas) < 0.5 * labels.shape[0]:
        return None
    return labels, spacing, frame_time_ms
