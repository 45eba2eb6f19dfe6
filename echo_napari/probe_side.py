"""Are the labels the right way up for an apical view? The LV lies between the probe and the LA.

In an apical view the probe sits at the apex: the LV is nearer to it than the LA on every
frame. The anatomical checks (:mod:`echo_napari.metrics_plausibility`) read labels only,
so they cannot see labels drawn the wrong way up: on the 24 shared EchoNet videos turned
upside down and segmented as shown (before the fan's apex was looked for, 2026-11-27),
the LV Dice with the upright labels was 0.30, yet 90 % of the frames passed them. With
the probe's place from the imaging sector (:mod:`echo_napari.field_of_view`), the share
of frames whose LA centroid is nearer the probe than their LV centroid tells:

* upright predictions (bundled model, all post-processing): 0.00 on every one of the 24
  videos, and on all 24 shown upside down and turned apex up;
* the same videos upside down, segmented as shown: 0.38–1.00 on the 18 training videos
  (0X1059…: 0.38, the others ≥ 0.71), 0.88–1.00 on the 6 held out
  (``benchmarks/apex_down_view.py``).

:data:`UPSIDE_DOWN_SHARE` lies in the training videos' gap. A clip past it gets a warning
(Predict panel, ``predict``): the fan's apex was not found where the probe is, or the clip
is not an apical view.
"""

from __future__ import annotations

import numpy as np

from echo_napari.field_of_view import FieldOfView
from echo_napari.sequence import LabelClass

#: share of judged frames with the LA nearer the probe above which a clip's labels look
#: upside down (training videos: 0.00 upright, ≥ 0.38 upside down)
UPSIDE_DOWN_SHARE = 0.25
#: pixels a chamber needs on a frame for the frame to be judged
MIN_PIXELS = 10


def atrium_nearer_probe_share(labels: np.ndarray, probe: tuple[float, float]) -> tuple[float, int]:
    """Share of frames whose LA centroid is nearer ``probe`` than their LV centroid.

    Parameters
    ----------
    labels : (T, H, W) uint8 :class:`~echo_napari.sequence.LabelClass` values
    probe : (row, col) pixels (:attr:`~echo_napari.field_of_view.FieldOfView.apex_point`)

    Returns
    -------
    share in [0, 1] (0 when no frame is judged), number of frames judged (both chambers
    with at least :data:`MIN_PIXELS` pixels)
    """
    labels = np.asarray(labels)
    distances = []
    counts = []
    for kind in (LabelClass.LV_CAVITY, LabelClass.LA):
        mask = labels == kind
        rows = np.count_nonzero(mask, axis=2).astype(np.float64)  # (T, H) per-row pixels
        cols = np.count_nonzero(mask, axis=1).astype(np.float64)  # (T, W)
        count = rows.sum(axis=1)
        safe = np.maximum(count, 1.0)
        centre_row = rows @ np.arange(rows.shape[1]) / safe
        centre_col = cols @ np.arange(cols.shape[1]) / safe
        distances.append(np.hypot(centre_row - probe[0], centre_col - probe[1]))
        counts.append(count)
    judged = (counts[0] >= MIN_PIXELS) & (counts[1] >= MIN_PIXELS)
    n = int(np.count_nonzero(judged))
    if n == 0:
        return 0.0, 0
    return float(np.count_nonzero((distances[1] < distances[0]) & judged) / n), n


def probe_side_warning(labels: np.ndarray, view: FieldOfView) -> str:
    """A sentence for the user when the labels look upside down for an apical view
    (:data:`UPSIDE_DOWN_SHARE`), else ``""``.

    Parameters
    ----------
    labels : (T, H, W) uint8, in the clip's frame (as :func:`predict_sequence` gives them)
    view : the clip's :class:`~echo_napari.field_of_view.FieldOfView`
    """
    share, judged = atrium_nearer_probe_share(labels, view.apex_point)
    if not judged or share <= UPSIDE_DOWN_SHARE:
        return ""
    where = "bottom" if view.apex_down else "top"
    return (
        f"On {100 * share:.0f} % of the frames the LA lies nearer the probe (the fan's apex, "
        f"at the {where} of the screen) than the LV: in an apical view the LV lies between "
        "them. The labels look upside down: check that the clip is an apical view and "
        "where its probe is."
    )


__all__ = [
    "MIN_PIXELS",
    "UPSIDE_DOWN_SHARE",
    "atrium_nearer_probe_share",
    "probe_side_warning",
]
