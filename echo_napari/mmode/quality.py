"""Acquisition quality per time window of an M-mode strip (a principled heuristic).

The band is measurable when both endocardial borders are visible: each wall must be
brighter than the blood pool, well above the speckle/noise. The score of a window is the
contrast-to-noise ratio of the *weaker* wall::

    CNR_side = (median wall intensity − median blood intensity) / (blood std + wall std)
    score    = min(CNR_upper, CNR_lower) × (fraction of columns with a band)

computed in a slab of ``wall_mm`` just outside each trace. Low SNR raises the std, a
dropout or missing wall removes one side's contrast, a lost band lowers the coverage; all
lower the score. The threshold between good and poor is calibrated on simulated
degradations (:func:`calibrate_threshold`) and stored in the model card
(``quality_threshold``); ``benchmarks/mmode.py`` reports how well it separates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echo_napari.mmode.traces import band_to_traces

#: Window length in seconds (64 columns at the network's 20 ms).
WINDOW_S = 1.28
DEGRADATIONS = ("low_snr", "dropout", "missing_wall")


@dataclass(frozen=True)
class WindowQuality:
    """Quality of one time window: columns [start, stop), score, and whether it is poor."""

    start: int
    stop: int
    score: float
    poor: bool


def _window_columns(n_columns: int, time_step_s: float | None) -> int:
    if not time_step_s:
        return min(n_columns, 64)
    return int(np.clip(round(WINDOW_S / time_step_s), 8, n_columns))


def window_score(image: np.ndarray, band: np.ndarray, wall_rows: int) -> float:
    """Weaker-wall CNR × band coverage of one window (see the module docstring).

    Parameters
    ----------
    image : (D, n) float32 in [0, 1]
    band : (D, n) uint8
    wall_rows : thickness of the wall slab in rows
    """
    upper, lower = band_to_traces(band)
    cols = np.flatnonzero(np.isfinite(upper))
    coverage = cols.size / max(band.shape[1], 1)
    if cols.size == 0:
        return 0.0
    d = image.shape[0]
    blood, wall_up, wall_down = [], [], []
    for c in cols:
        top, bottom = int(np.ceil(upper[c])), int(np.floor(lower[c]))
        blood.append(image[top : bottom + 1, c])
        wall_up.append(image[max(0, top - wall_rows) : max(0, top - 1), c])
        wall_down.append(image[min(d, bottom + 2) : min(d, bottom + 2 + wall_rows), c])
    blood_v = np.concatenate(blood)
    scores = []
    for wall in (wall_up, wall_down):
        values = np.concatenate(wall) if wall else np.array([])
        if values.size < 4 or blood_v.size < 4:
            return 0.0
        spread = float(np.std(values) + np.std(blood_v)) + 1e-3
        scores.append((float(np.median(values)) - float(np.median(blood_v))) / spread)
    return max(0.0, min(scores)) * coverage


def window_quality(
    image: np.ndarray,
    band: np.ndarray,
    depth_step_mm: float | None,
    time_step_s: float | None,
    threshold: float,
    wall_mm: float = 6.0,
) -> list[WindowQuality]:
    """Score consecutive time windows of a strip; windows below ``threshold`` are poor.

    Parameters
    ----------
    image : (D, N) float32 in [0, 1]
    band : (D, N) uint8, the (predicted) LV band
    depth_step_mm, time_step_s : calibration (None: 1 pixel ≈ 1.3 mm and 64-column windows)
    threshold : score below which a window is poor (the model card's ``quality_threshold``)
    """
    n = image.shape[1]
    width = _window_columns(n, time_step_s)
    wall_rows = max(2, int(round(wall_mm / (depth_step_mm or 1.3))))
    out = []
    starts = list(range(0, max(n - width, 0) + 1, width))
    if starts[-1] + width < n:
        starts.append(n - width)
    for start in starts:
        stop = min(start + width, n)
        score = window_score(image[:, start:stop], band[:, start:stop], wall_rows)
        out.append(WindowQuality(start, stop, score, score < threshold))
    return out


def poor_columns(windows: Sequence[WindowQuality], n_columns: int) -> np.ndarray:
    """(N,) bool: columns covered by a poor window (left out of measurements)."""
    mask = np.zeros(n_columns, dtype=bool)
    for w in windows:
        if w.poor:
            mask[w.start : w.stop] = True
    return mask


def degrade(
    image: np.ndarray, band: np.ndarray, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """A simulated acquisition failure of a strip (for calibration and benchmarks).

    kind : "low_snr" (strong additive + multiplicative noise), "dropout" (random bursts of
    columns with the signal lost) or "missing_wall" (the tissue beyond one trace replaced by
    blood-like echoes, as when the beam misses a wall).

    Returns
    -------
    (D, N) float32 in [0, 1]
    """
    out = image.astype(np.float32).copy()
    d, n = out.shape
    if kind == "low_snr":
        level = rng.uniform(0.25, 0.4)
        out = out * (1 + 0.5 * rng.standard_normal(out.shape)) + level * rng.standard_normal(
            out.shape
        )
    elif kind == "dropout":
        keep = np.ones(n, dtype=bool)
        while keep.mean() > 0.4:
            start = int(rng.integers(0, n))
            keep[start : start + int(rng.integers(3, max(4, n // 4)))] = False
        out[:, ~keep] *= rng.uniform(0.0, 0.15)
        out[:, ~keep] += 0.03 * rng.standard_normal((d, int((~keep).sum())))
    elif kind == "missing_wall":
        upper, lower = band_to_traces(band)
        blood = out[band.astype(bool)]
        mean, std = (float(blood.mean()), float(blood.std())) if blood.size else (0.05, 0.02)
        rows = np.arange(d)[:, None]
        if rng.uniform() < 0.5:
            lost = rows > np.nan_to_num(lower, nan=d)[None, :]
        else:
            lost = rows < np.nan_to_num(upper, nan=-1)[None, :]
        out[lost] = mean + std * rng.standard_normal(int(lost.sum()))
    else:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def calibrate_threshold(good: Sequence[float], poor: Sequence[float]) -> tuple[float, float]:
    """Threshold maximising Youden's J (sensitivity + specificity − 1) and the ROC AUC.

    Returns
    -------
    threshold, auc
    """
    good_a, poor_a = np.asarray(good, float), np.asarray(poor, float)
    candidates = np.unique(np.concatenate([good_a, poor_a]))
    best, best_j = float(candidates[0]), -1.0
    for c in candidates:
        j = float((good_a >= c).mean() + (poor_a < c).mean() - 1.0)
        if j > best_j:
            best, best_j = float(c), j
    auc = float(
        (good_a[:, None] > poor_a[None, :]).mean()
        + 0.5 * (good_a[:, None] == poor_a[None, :]).mean()
    )
    return best, auc
