"""Clips at other frame rates seen at the rate the models and the beat rule were made for.

The segmentation network reads the heart's motion from 8-frame windows and every temporal
rule after it (beat search, smoothing, the frames-either-side checks) was chosen on
EchoNet-Dynamic, whose videos are all 50 frames/s. A 25 frames/s screen recording shows it
twice the motion per frame: on the 24 shared EchoNet videos taken every other frame, the
beat EF's error grew from 7.2 to 12.1 points (bias −8.9). So the network is given the clip
resampled in time to :data:`REFERENCE_FRAME_TIME_MS` (linear interpolation between
neighbouring frames) and its class probabilities are taken back at the clip's own frames,
and the beat rule reads the volume curve resampled the same way
(``benchmarks/frame_rate.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ms between frames the network and the beat rule were made for (EchoNet-Dynamic: 50 /s)
REFERENCE_FRAME_TIME_MS = 20.0
#: clips within this relative distance of the reference rate (15-25 ms, 40-67 frames/s)
#: are used as they are: the network learnt motion from our simulator's 17.9 ms frames and
#: EchoNet's 20 ms ones, and the demo samples are 16.7 ms
TOLERANCE = 0.25


def needs_resampling(frame_time_ms: float | None) -> bool:
    """True when a clip's frame time is known and differs from the reference by more than
    :data:`TOLERANCE`."""
    if frame_time_ms is None or not np.isfinite(frame_time_ms) or frame_time_ms <= 0:
        return False
    return abs(frame_time_ms / REFERENCE_FRAME_TIME_MS - 1.0) > TOLERANCE


def reference_positions(n_frames: int, frame_time_ms: float) -> np.ndarray:
    """Where the reference-rate samples of a clip fall, in the clip's frame units.

    Returns
    -------
    (M,) float64, from 0 to at most ``n_frames - 1`` every
    ``REFERENCE_FRAME_TIME_MS / frame_time_ms`` frames
    """
    step = REFERENCE_FRAME_TIME_MS / float(frame_time_ms)
    return np.arange(0.0, n_frames - 1 + 1e-9, step)


def clip_positions(n_frames: int, frame_time_ms: float) -> np.ndarray:
    """Where a clip's own frames fall among its reference-rate samples (the inverse of
    :func:`reference_positions`), (n_frames,) float64 in sample units."""
    return np.arange(n_frames) * (float(frame_time_ms) / REFERENCE_FRAME_TIME_MS)


def sample_in_time(values: Any, positions: np.ndarray) -> Any:
    """Linear interpolation along the first axis at fractional ``positions``.

    Parameters
    ----------
    values : (T, ...) numpy or lazy (dask) array (frames, class probabilities)
    positions : (M,) float, in [0, T - 1]

    Returns
    -------
    (M, ...) float32, of the same kind
    """
    n = int(values.shape[0])
    positions = np.clip(np.asarray(positions, dtype=np.float64), 0, n - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, n - 1)
    weight = (positions - low).astype(np.float32).reshape(-1, *([1] * (len(values.shape) - 1)))
    return values[low] * (np.float32(1.0) - weight) + values[high] * weight


__all__ = [
    "REFERENCE_FRAME_TIME_MS",
    "clip_positions",
    "needs_resampling",
    "reference_positions",
    "sample_in_time",
]
