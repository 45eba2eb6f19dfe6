"""The LV's tip jumping away from the probe and back: a segmentation that lost the apex.

In an apical view the probe sits on the apex, and the apex hardly moves through the
cycle: the ventricle shortens from its base. A segmentation whose LV tip leaves the
probe by a tenth of the ventricle's length between two frames, its area falling by a
third (:data:`~echo_napari.metrics_jumps.MAX_LV_STEP`), and comes back as abruptly a few
frames later has lost the apex on the frames between: the apical cavity, hazy at
end-systole, taken for wall or for tissue outside the heart. On the 24 shared EchoNet
videos (``seg_v4`` with the shape prior) it finds 0X1059…'s four end-systoles (4–8
frames each, a small cavity at the base where the ventricle reaches the apex on the
frames either side) and one frame of 0X78A2…, nothing on the other 22 (0X1059…'s tip
steps are 12–20 % of the ventricle's length, its area falling by 36–43 %); the nearest
misses are tip steps of 9–13 % with the area falling by under a quarter (0XA6BD…,
0X3C1E…) and a step of 9.6 % with the area halving (one frame of 0X78A2…).

:func:`echo_napari.registration.apex_restore.restore_collapsed_apex` re-draws those
frames from the frames either side.
"""

from __future__ import annotations

import numpy as np

from echo_napari.frame_rate import REFERENCE_FRAME_TIME_MS
from echo_napari.metrics_jumps import MAX_LV_STEP
from echo_napari.metrics_plausibility import long_axis_px
from echo_napari.sequence import LabelClass

#: a step of the LV tip away from (or back to) the probe between two frames, as a share
#: of the clip's 95th-percentile LV long axis, from which it is no heart's
APEX_JUMP_SHARE = 0.1

#: ms: a tip that jumped away comes back within this for the frames between to be a
#: lost apex (a heart's systole lasts longer; 0X1059…'s stretches last 80–160 ms)
MAX_COLLAPSE_MS = 300.0


def apex_depth(lv: np.ndarray, probe: tuple[float, float]) -> np.ndarray:
    """(T,) float64 pixels from the probe to the nearest LV pixel of each frame; NaN on
    frames without an LV.

    Parameters
    ----------
    lv : (T, H, W) bool, the LV cavity
    probe : (row, col) in pixels of the fan's apex (where the probe is)
    """
    _, height, width = lv.shape
    rows = (np.arange(height, dtype=np.float64) - probe[0]) ** 2
    cols = (np.arange(width, dtype=np.float64) - probe[1]) ** 2
    distance = np.sqrt(rows[:, None] + cols[None, :])
    out = np.full(lv.shape[0], np.nan)
    for t, mask in enumerate(lv):
        if mask.any():
            out[t] = float(distance[mask].min())
    return out


def apex_collapses(
    labels: np.ndarray, probe: tuple[float, float], frame_time_ms: float | None = None
) -> list[tuple[int, int]]:
    """Stretches of frames on which the LV lost its apex (see the module docstring).

    Parameters
    ----------
    labels : (T, H, W) uint8, LabelClass values
    probe : (row, col) pixels of the fan's apex in ``labels``' frame
        (:attr:`echo_napari.field_of_view.FieldOfView.apex_point`)
    frame_time_ms : ms between frames; None reads as 20 (50 frames/s). The steps are
        not scaled with it: a segmentation jumps within one frame at any rate.

    Returns
    -------
    [(before, after), ...] : the last frame before each stretch and the first after it
        (both with the apex); the frames strictly between lost it
    """
    lv = np.asarray(labels) == LabelClass.LV_CAVITY
    area = np.count_nonzero(lv, axis=(1, 2)).astype(np.float64)
    present = area > 0
    if np.count_nonzero(present) < 3:
        return []
    length = np.percentile([long_axis_px(lv[t]) for t in np.flatnonzero(present)], 95)
    depth = apex_depth(lv, probe)
    with np.errstate(invalid="ignore", divide="ignore"):
        tip_step = np.diff(depth)
        area_step = np.diff(np.log(area))
    jump, limit = APEX_JUMP_SHARE * length, float(np.log(MAX_LV_STEP))
    away = np.flatnonzero((tip_step >= jump) & (area_step <= -limit))
    back = np.flatnonzero((tip_step <= -jump) & (area_step >= limit))
    longest = MAX_COLLAPSE_MS / (frame_time_ms or REFERENCE_FRAME_TIME_MS)
    out: list[tuple[int, int]] = []
    for start in away:
        if out and start < out[-1][1]:
            continue
        later = back[(back > start) & (back - start <= longest)]
        if later.size:
            out.append((int(start), int(later[0]) + 1))
    return out


def collapsed_frames(stretches: list[tuple[int, int]], n_frames: int) -> np.ndarray:
    """(T,) bool: the frames strictly inside the ``stretches`` of :func:`apex_collapses`."""
    out = np.zeros(n_frames, dtype=bool)
    for before, after in stretches:
        out[before + 1 : after] = True
    return out
