"""Find the pieces of a prediction that lie where the LV is not, or is, on the frames
around them: an LV piece drawn over the atrium, an atrium piece drawn inside the LV.

Post-processing keeps the largest LV piece of each frame. On a foreshortened real view the
network can split the end-systolic ventricle from a larger "LV" drawn over the atrium
(EchoNet 0X1059…: a 340–450 px cavity at the apex and a 600–1,400 px piece below the
mitral valve on about a quarter of the frames); the largest-piece rule then takes the
atrium, and the LV jumps between the two chambers every beat.

Here each piece is scored by how often its pixels are LV on the frames around it
(``window`` frames either side): Σ (2·f − 1) over its pixels, f the share of those frames
labelling the pixel LV — positive for a piece mostly where the LV usually is, negative for
one mostly where it seldom is. A frame's pieces but the best placed one are dropped only
when its largest piece scores ≤ 0 while the best placed one scores > 0 and is not so small
that the anatomical collapse check would reject it. So a frame with one piece, or whose
largest piece lies where the LV usually is, is left alone: a ventricle that moves (a probe
or view change) keeps its one piece, and a speck left where it was is not taken for it.

On the 24 shared EchoNet videos with ``seg_v3`` this changes 42 frames of 0X1059… (the LV
no longer jumps onto the atrium at end-systole) and 2 of 0X64E2…, no others (28 and 1 with
the probabilities of both directions averaged, ``predict_sequence``'s default). A frame
whose only LV piece lies over the atrium (0X1059…: 14 such frames) is beyond it: the
**displaced** check (:func:`echo_napari.metrics_place.displaced_lv_frames`) finds
it, and the prediction leaves it unlabelled.

The converse, an "atrium" blob the network draws inside the ventricle near the closing
mitral valve, is found the same way (:func:`atrium_pieces_in_lv_place`) and given back to
the LV.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echo_napari.metrics_place import PLACE_WINDOW, running_counts, usual_place
from echo_napari.metrics_plausibility import COLLAPSE_FRACTION
from echo_napari.segmentation.masks import label_per_frame
from echo_napari.sequence import LabelClass

#: frames either side that define where the LV "usually" is: the **displaced** check's
#: (25 at EchoNet's 50 fps; ``predict_sequence`` passes the same 0.5 s at the clip's own
#: rate, :func:`echo_napari.metrics_place.place_window`).
WINDOW_FRAMES = PLACE_WINDOW

#: pixels the score grid has along its longer side (the score is a share, so a coarse grid
#: ranks the pieces as the full one does, at a fraction of the memory).
_GRID = 128


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """The 2D pieces of a (T, H, W) bool mask: (T, H, W) labels, their count, (n + 1,)
    frame of each label (label 0 unused) and the frames holding two pieces or more."""
    pieces, n = label_per_frame(mask)
    frame_of = np.zeros(n + 1, dtype=np.int64)
    frame_of[1:] = [s[0].start for s in ndimage.find_objects(pieces)]
    several = np.flatnonzero(np.bincount(frame_of[1:], minlength=mask.shape[0]) >= 2)
    return pieces, n, frame_of, several


def _grid_step(shape: tuple[int, ...]) -> int:
    """Pixel step of the score grid over frames of ``shape`` (..., H, W)."""
    return max(1, -(-max(shape[-2:]) // _GRID))


def misplaced_lv_pieces(labels: np.ndarray, window: int = WINDOW_FRAMES) -> np.ndarray:
    """LV pieces to drop: on each frame whose largest LV piece lies outside the LV's usual
    place while another piece lies inside it, every piece but the best placed one.

    Parameters
    ----------
    labels : (T, H, W) uint8, :class:`~echo_napari.sequence.LabelClass` values
    window : frames either side used to find where the LV usually is

    Returns
    -------
    (T, H, W) bool
        Pixels of the dropped pieces (all False on frames left alone).
    """
    lv = np.asarray(labels) == LabelClass.LV_CAVITY
    dropped = np.zeros(lv.shape, dtype=bool)
    if lv.shape[0] < 2:
        return dropped
    pieces, n, frame_of, several = _pieces(lv)
    if several.size == 0:
        return dropped
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    largest_per_frame = np.zeros(lv.shape[0], dtype=np.int64)
    np.maximum.at(largest_per_frame, frame_of[1:], sizes[1:])
    # A piece the collapse check would reject is a speck, not the ventricle.
    min_size = COLLAPSE_FRACTION * np.percentile(largest_per_frame[largest_per_frame > 0], 95)
    step = _grid_step(lv.shape)
    grid = lv[:, ::step, ::step]
    counts, _ = running_counts(grid)
    for t in several:
        lo, hi = max(0, t - window), min(lv.shape[0], t + window + 1)
        share = (counts[hi] - counts[lo]) / float(hi - lo)
        on_grid = pieces[t, ::step, ::step]
        score = np.bincount(on_grid.ravel(), weights=(2.0 * share - 1.0).ravel(), minlength=n + 1)
        ids = np.flatnonzero(frame_of == t)
        ids = ids[ids > 0]
        largest = ids[np.argmax(sizes[ids])]
        best = ids[np.argmax(score[ids])]
        if score[largest] <= 0 < score[best] and sizes[best] >= min_size:
            dropped[t] = lv[t] & (pieces[t] != best)
    return dropped


def atrium_pieces_in_lv_place(labels: np.ndarray, window: int = WINDOW_FRAMES) -> np.ndarray:
    """LA pieces lying where the LV is on most of the frames around them, on frames that
    keep another LA piece elsewhere: pixels to relabel as LV cavity.

    On real echo the network sometimes draws a blob of "atrium" inside the ventricle near
    the closing mitral valve (EchoNet 0X255B…, 0X3C1E…, 0X7D52…: a few frames of each
    beat), while the true atrium below the valve is a smaller piece that the
    largest-component rule then drops. A piece counts as lying in the LV's place when at
    least half of its pixels are LV on at least half of the other LV frames within
    ``window`` frames either side; it is relabelled only when the frame has another LA
    piece that does not, so a frame's only atrium is never taken away (a ventricle drawn
    over the atrium for long stretches would otherwise swallow it).

    Parameters
    ----------
    labels : (T, H, W) uint8, :class:`~echo_napari.sequence.LabelClass` values
    window : frames either side that define where the LV usually is

    Returns
    -------
    (T, H, W) bool
    """
    labels = np.asarray(labels)
    la = labels == LabelClass.LA
    moved = np.zeros(la.shape, dtype=bool)
    if la.shape[0] < 2 or not la.any():
        return moved
    pieces, n, frame_of, several = _pieces(la)
    if several.size == 0:
        return moved
    step = _grid_step(la.shape)
    grid = (labels == LabelClass.LV_CAVITY)[:, ::step, ::step]
    counts, present = running_counts(grid)
    sizes = np.bincount(pieces[:, ::step, ::step].ravel(), minlength=n + 1)
    for t in several:
        usual = usual_place(counts, present, grid, int(t), window)
        if usual is None or not grid[t].any():
            continue
        on_grid = pieces[t, ::step, ::step]
        inside = np.bincount(on_grid.ravel(), weights=usual.ravel(), minlength=n + 1)
        ids = np.flatnonzero(frame_of == t)
        ids = ids[(ids > 0) & (sizes[ids] > 0)]
        in_place = ids[2 * inside[ids] >= sizes[ids]]
        if 0 < in_place.size < ids.size:
            moved[t] = np.isin(pieces[t], in_place)
    return moved


__all__ = ["WINDOW_FRAMES", "atrium_pieces_in_lv_place", "misplaced_lv_pieces"]
