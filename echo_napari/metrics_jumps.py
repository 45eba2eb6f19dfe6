"""LV area jumps between consecutive frames: faster than a heart moves.

At 50 frames/s the LV cavity area of a traced clip changes by a few per cent per frame: on
the 24 shared EchoNet videos, predicted by the bundled model, the median step is 3 % and
the largest on the videos without segmentation jumps (0X255B…, 0X2D2E…, 0X309E…,
0X3C1E…, 0X3DF5…, 0X45C3…, 0X5FDC…, 0X6F1E…) 15–23 %. A step of 35 % or more is a
change of the segmentation, not of the heart; where the LA changes the other way by at
least half as much, the two chambers have traded pixels (the LV drawn over the atrium on
some frames and not on others, as on 0X64E2…, 0X7D52… or 0X515B…). The review dock says so
on those frames, beside the anatomical checks of :mod:`echo_napari.metrics_plausibility`.
"""

from __future__ import annotations

import numpy as np

from echo_napari.frame_rate import REFERENCE_FRAME_TIME_MS

#: ratio of the LV areas of two frames 20 ms apart above which the step is no heart's
MAX_LV_STEP = 1.35

#: the LA's change, against the LV's, from which a jump is a trade between the chambers
SWAP_SHARE = 0.5


def lv_area_jump(
    lv_area: np.ndarray,
    la_area: np.ndarray,
    frame: int,
    frame_time_ms: float | None = None,
) -> str | None:
    """Why ``frame``'s LV area is implausible against a neighbouring frame, or None.

    Parameters
    ----------
    lv_area, la_area : (T,) float, LV cavity and LA area per frame (any one unit; 0 where
        the class is not labelled)
    frame : index into them
    frame_time_ms : ms between frames; None reads as 20 (50 frames/s). The limit grows
        with the time between frames (``MAX_LV_STEP`` per 20 ms, compounded).

    Returns
    -------
    The larger of the jumps to the frame before and after, in words ("LV area +82 %
    against frame 15 while the LA shrinks …"), or None when neither reaches the limit.
    """
    lv = np.asarray(lv_area, dtype=np.float64)
    la = np.asarray(la_area, dtype=np.float64)
    if not 0 <= frame < lv.size or lv[frame] <= 0:
        return None
    frame_ms = frame_time_ms or REFERENCE_FRAME_TIME_MS
    limit = np.log(MAX_LV_STEP) * max(1.0, frame_ms / REFERENCE_FRAME_TIME_MS)
    best, other = 0.0, None
    for neighbour in (frame - 1, frame + 1):
        if 0 <= neighbour < lv.size and lv[neighbour] > 0:
            step = abs(float(np.log(lv[frame] / lv[neighbour])))
            if step >= limit and step > best:
                best, other = step, neighbour
    if other is None:
        return None
    d_lv, d_la = lv[frame] - lv[other], la[frame] - la[other]
    # no-break spaces: a wrapping label never parts a value from its unit
    text = f"LV area {100 * (lv[frame] / lv[other] - 1):+.0f}\u00a0% against frame\u00a0{other}"
    if d_lv * d_la < 0 and abs(d_la) >= SWAP_SHARE * abs(d_lv):
        way = "shrinks" if d_la < 0 else "grows"
        return f"{text} while the LA {way} (LV drawn over the atrium, or the LA into the LV?)"
    return f"{text} (faster than a heart moves: a segmentation jump?)"
