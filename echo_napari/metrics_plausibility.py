"""Anatomical plausibility of a label sequence, frame by frame, without any reference.

A full-cycle segmentation of a real echo can look smooth over time and still be wrong in
ways a cardiologist sees at a glance. Seven checks, each scored 0 (fine) … 1 (implausible)
per frame:

* **collapse** — the LV cavity is missing, or smaller than ``collapse_fraction`` of the
  sequence's typical end-diastolic area (95th percentile of the LV area curve). An EF of
  80 % leaves an end-systolic *area* near half the end-diastolic one, so a quarter is not
  a heart;
* **concavity** — the cavity is not convex enough: solidity (area / convex-hull area)
  below ``min_solidity`` (traced LV cavities are ≥ 0.9; a cavity with a wall or the
  septum cut into it is lower). The score rises linearly to 1 at ``min_solidity − 0.2``;
* **atrium side** — the LA lies on another side of the LV than in the rest of the
  sequence (angle of the LV→LA centroid direction more than 90° from its median over the
  frames). Orientation-free, so it holds for any probe orientation or image flip;
* **displaced** — the cavity lies away from where the LV is on the frames around it: less
  than ``MIN_IN_PLACE`` of it (on a coarse grid, ``PLACE_GRID`` cells a side) lies
  where at least half of the LV frames within ``PLACE_WINDOW_MS`` either side have LV
  (``PLACE_WINDOW`` frames at 50 frames/s or with no frame time; the LV drawn over the
  atrium or a neighbouring chamber, a fragment in fog). The score
  rises linearly from 0 at ``MIN_IN_PLACE + 0.2`` to 1 at ``MIN_IN_PLACE − 0.2``; frames
  with fewer than ``PLACE_MIN_NEIGHBOURS`` LV frames around them are not judged (a
  sparsely keyframed session; :mod:`echo_napari.metrics_place`);
* **atrium enclosed** — the LV wraps around the LA: more than :data:`MAX_LA_ENCLOSED` of
  the LA's border lies within :data:`ENCLOSED_REACH_PX` pixels of the LV cavity. The two
  chambers meet only along the mitral plane, so the LA's border touches the LV along a
  small part of it; an LV drawn over the atrium as well (an off-axis frame), or around
  it, touches it most of the way round. The score rises linearly from 0 at
  ``MAX_LA_ENCLOSED − 0.1`` to 1 at ``MAX_LA_ENCLOSED + 0.1``;
* **flip** — the LV and the LA trade pixels (an LV area jump of 35 % or more between
  frames, the LA changing the other way) and trade them back within 150 ms
  (:data:`~echo_napari.metrics_jumps.MAX_FLIP_MS`): the frames
  between are a segmentation flip, scored 1
  (:func:`echo_napari.metrics_jumps.flipped_frames`);
* **shortened** — the cavity is much shorter than the clip's LV: its long axis (the
  major axis of its pixels' second moments) under :data:`SHORTENED_FINE` of the clip's
  typical (95th-percentile) length, scored 1 at :data:`SHORTENED_IMPLAUSIBLE`. At
  end-systole the LV keeps 0.65–0.93 of that length (the median beats of 22 of the 24
  EchoNet videos); an LV drawn as a small circle at the base, the apical cavity taken for
  wall (a hazy apex), is half as long or less.

Separately, :func:`view_lost_frames` finds the frames of a prediction on which the model
found no heart at all (probe off the chest, a changed view); the prediction leaves them
unlabelled, so they are not judged (and :meth:`Plausibility.plausible_share` is over the
labelled frames).

A labelled frame with fewer than ``min_pixels`` LV pixels, in a sequence that has an LV
elsewhere, counts as collapsed; a frame with no label at all is not judged (not yet
segmented). Used by the review session's suspicious-frame ranking and by
``benchmarks/real_echo.py`` (share of plausible frames per video).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics_jumps import MAX_FLIP_MS, flipped_frames
from echo_napari.metrics_place import PLACE_GRID, coarse_grid, displaced_frames, place_window
from echo_napari.sequence import LabelClass

FLIP_MS = f"{MAX_FLIP_MS:.0f}"  # in the flip check's words

#: share of the typical end-diastolic LV area below which a cavity counts as collapsed
COLLAPSE_FRACTION = 0.25

#: share of a clip's typical heart area (LV + myocardium + LA) below which a predicted
#: frame shows no heart (:func:`view_lost_frames`). Chosen on the 18 training EchoNet
#: videos: every frame of the 16 with the heart in view keeps ≥ 0.41 of it (seg_v3), the
#: probe-off frames of 0X3981… and the changed view of 0X78A2… fall to 0.00–0.23.
VIEW_LOST_FRACTION = 0.3

#: share of the typical heart area below which the frames next to a lost view are lost
#: too (hysteresis, :func:`view_lost_frames`): while a view is changing the model draws
#: thin slivers of a heart (0X78A2… 126–141, 0.28–0.47 of the typical area) and fragments
#: in fog (0X3981…); frames with the heart in view, away from a lost stretch, keep ≥ 0.41
#: on the training videos, so the extension only acts next to a lost view. On the 18
#: training videos EF MAE 6.82 → 6.53 (seg_v3) and 6.07 → 6.37 (seg_v2 on 8-frame
#: windows); it changes only 0X3981… and 0X78A2…
VIEW_LOST_EXTEND_FRACTION = 0.5


#: share of the LA's border pixels within :data:`ENCLOSED_REACH_PX` of the LV cavity above
#: which the LV is taken to wrap around the atrium (**atrium enclosed**). On the 24 shared
#: EchoNet videos (seg_v3 as ``predict_sequence`` gives it, 112 × 112) the median frame of
#: every video is at 0.16–0.41 and 95 % of frames of 23 videos under 0.58; the frames above
#: 0.6 (62 of 0X64E2…'s off-axis frames, 1–4 on 8 others) have, looked at, the LV drawn
#: over or around the atrium with the LA inside or beside it.
MAX_LA_ENCLOSED = 0.6

#: pixels between an LA border pixel and the LV for the two to count as touching
ENCLOSED_REACH_PX = 2

#: LV long axis, as a share of the clip's 95th-percentile one, at and above which the
#: **shortened** check scores 0, and at and below which it scores 1. On the 24 shared
#: EchoNet videos (seg_v4 as ``predict_sequence`` gives it) every frame of 22 videos
#: keeps ≥ 0.54 of it, and their median beats' end-systoles 0.65–0.93; the frames under
#: 0.5 are 0X1059…'s end-systoles drawn as a small circle at the base (0.39–0.41) and
#: fragments in 0X3981…'s fog (down to 0.28).
SHORTENED_FINE = 0.55
SHORTENED_IMPLAUSIBLE = 0.45

#: frames longer than this (pixels) are measured on their labels shrunk to this length
#: (:func:`check_grid`): the checks' pixel thresholds (``min_pixels``,
#: :data:`ENCLOSED_REACH_PX`) were chosen on 112-pixel EchoNet frames, and at full size the
#: 150 frames of a 600 × 800 screen took 0.7 s, held on the GUI thread as the review dock
#: opened.
CHECK_SIDE_PX = 160


@dataclass(frozen=True)
class Plausibility:
    """Per-frame plausibility scores of a label sequence, each (T,) float64 in [0, 1].

    Attributes
    ----------
    collapse, concavity, atrium_side, displaced, atrium_enclosed, flipped, shortened :
        the seven checks (see the module docstring); ``displaced``, ``atrium_enclosed``,
        ``flipped`` or ``shortened`` None: not computed (all zeros)
    labelled : (T,) bool frames with any label (the judged ones), or None (all judged)
    """

    collapse: np.ndarray
    concavity: np.ndarray
    atrium_side: np.ndarray
    labelled: np.ndarray | None = None
    displaced: np.ndarray | None = None
    atrium_enclosed: np.ndarray | None = None
    flipped: np.ndarray | None = None
    shortened: np.ndarray | None = None

    @property
    def score(self) -> np.ndarray:
        """(T,) worst of the seven checks per frame."""
        worst = np.maximum(np.maximum(self.collapse, self.concavity), self.atrium_side)
        for optional in (self.displaced, self.atrium_enclosed, self.flipped, self.shortened):
            if optional is not None:
                worst = np.maximum(worst, optional)
        return worst

    def reasons(self, frame: int, threshold: float = 0.5) -> list[str]:
        """What is implausible on ``frame``, in words (empty when nothing is)."""
        checks = (
            (self.collapse, "LV cavity collapsed or missing"),
            (self.concavity, "LV cavity concave (a wall cut into it?)"),
            (self.atrium_side, "LA on another side of the LV than in the other frames"),
            (self.displaced, "LV away from where it is on the frames around it"),
            (self.atrium_enclosed, "LV drawn around the LA (over the atrium?)"),
            (self.flipped, f"LV and LA trade pixels and back within {FLIP_MS} ms (a flip)"),
            (self.shortened, "LV much shorter than on the other frames (apex taken for wall?)"),
        )
        return [
            text for values, text in checks if values is not None and values[frame] >= threshold
        ]

    def plausible_share(self, threshold: float = 0.5, among: np.ndarray | None = None) -> float:
        """Share (0–1) of frames whose :attr:`score` is below ``threshold``, over the
        labelled frames (a frame with no label is not judged: not yet segmented, or no
        heart in view, :func:`view_lost_frames`) or the ``among`` (T,) bool ones; NaN when
        there are none."""
        if among is None:
            among = self.labelled
        score = self.score if among is None else self.score[among]
        return float(np.mean(score < threshold)) if score.size else float("nan")


_CORNERS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def _centroid(mask: np.ndarray) -> np.ndarray:
    """(row, col) mean of the pixels of a non-empty (H, W) bool mask, from its row and
    column sums (no (N, 2) list of pixel coordinates: ~10× faster on 600 × 600 frames)."""
    rows = np.count_nonzero(mask, axis=1)
    cols = np.count_nonzero(mask, axis=0)
    total = float(rows.sum())
    return np.array([rows @ np.arange(rows.size) / total, cols @ np.arange(cols.size) / total])


def row_extremes(mask: np.ndarray) -> np.ndarray:
    """(2R, 2) float64 (row, col) of the first and last pixel of each of the R rows of
    ``mask`` that hold any: every other pixel lies between two of them on its row, so
    their squares span the same convex hull as all the pixels' squares."""
    rows = np.flatnonzero(mask.any(axis=1))
    band = mask[rows]
    first = np.argmax(band, axis=1)
    last = band.shape[1] - 1 - np.argmax(band[:, ::-1], axis=1)
    return np.concatenate(
        [np.stack([rows, first], axis=1), np.stack([rows, last], axis=1)]
    ).astype(np.float64)


def _solidity(mask: np.ndarray) -> float:
    """Pixel area / area of the convex hull of the pixel squares (1 for a filled convex
    region, up to discretisation)."""
    # Imported on first use: scipy.spatial takes ~50 ms to import, and the review dock
    # imports this module as it opens, on the GUI thread.
    from scipy.spatial import ConvexHull, QhullError

    points = row_extremes(mask)
    corners = (points[:, None, :] + _CORNERS[None]).reshape(-1, 2)
    try:
        hull_area = ConvexHull(corners).volume
    except QhullError:  # all pixels on one line: a degenerate, not a concave, region
        return 1.0
    return float(min(1.0, np.count_nonzero(mask) / hull_area))


@dataclass
class ShapeFeatures:
    """What the checks need from each frame, so an edit recomputes one frame only.

    Attributes
    ----------
    labelled : (T,) bool, any label on the frame
    lv_pixels : (T,) float64, LV cavity pixels
    solidity : (T,) float64, LV solidity (1 where there is no LV)
    la_direction : (T, 2) float64, unit LV→LA centroid direction (NaN without an LA)
    lv_grid : (T, PLACE_GRID, PLACE_GRID) bool, where the LV lies (:func:`coarse_grid`)
    la_enclosed : (T,) float64, share of the LA's border touching the LV
        (:func:`la_enclosed_share`; NaN without an LA or an LV)
    la_pixels : (T,) float64, LA pixels
    lv_length : (T,) float64, LV long axis in pixels (:func:`long_axis_px`; NaN without
        an LV)
    """

    labelled: np.ndarray
    lv_pixels: np.ndarray
    solidity: np.ndarray
    la_direction: np.ndarray
    lv_grid: np.ndarray
    la_enclosed: np.ndarray
    la_pixels: np.ndarray
    lv_length: np.ndarray

    @classmethod
    def blank(cls, n: int) -> ShapeFeatures:
        """Features of ``n`` frames with no label, no LV and no LA."""
        return cls(
            labelled=np.zeros(n, bool),
            lv_pixels=np.zeros(n),
            solidity=np.ones(n),
            la_direction=np.full((n, 2), np.nan),
            lv_grid=np.zeros((n, PLACE_GRID, PLACE_GRID), bool),
            la_enclosed=np.full(n, np.nan),
            la_pixels=np.zeros(n),
            lv_length=np.full(n, np.nan),
        )

    def update(self, frames: np.ndarray, other: ShapeFeatures) -> None:
        """Overwrite ``frames`` with the rows of ``other`` (features of those frames)."""
        for name in _FEATURES:
            getattr(self, name)[frames] = getattr(other, name)

    def take(self, frames: np.ndarray) -> ShapeFeatures:
        """The features of ``frames`` (a copy)."""
        return ShapeFeatures(*(getattr(self, name)[frames].copy() for name in _FEATURES))


_FEATURES = (
    "labelled",
    "lv_pixels",
    "solidity",
    "la_direction",
    "lv_grid",
    "la_enclosed",
    "la_pixels",
    "lv_length",
)


def long_axis_px(mask: np.ndarray) -> float:
    """Long axis of a non-empty (H, W) bool mask in pixels: 4·√(largest eigenvalue of its
    pixels' coordinate covariance), the major axis of the ellipse with the same second
    moments (an ellipse's own axis; a 40 × 100 rectangle gives 115)."""
    # moments from row and column counts and one matrix-vector product over the mask's
    # bounding box, not a list of pixel coordinates (a 600 × 800 frame: 1.0 → 0.4 ms)
    r = np.flatnonzero(np.count_nonzero(mask, axis=1))
    c = np.flatnonzero(np.count_nonzero(mask, axis=0))
    if r.size == 0:
        return 0.0
    box = mask[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    per_row = np.count_nonzero(box, axis=1).astype(np.float64)
    per_col = np.count_nonzero(box, axis=0).astype(np.float64)
    n = per_row.sum()
    if n < 2:
        return float(n)
    ys, xs = np.arange(box.shape[0], dtype=np.float64), np.arange(box.shape[1], dtype=np.float64)
    mean_y, mean_x = per_row @ ys / n, per_col @ xs / n
    var_y = per_row @ ys**2 / n - mean_y**2
    var_x = per_col @ xs**2 / n - mean_x**2
    cov_yx = ys @ (box @ xs) / n - mean_y * mean_x
    # sample covariance, as numpy's cov of the pixel coordinates
    covariance = np.array([[var_y, cov_yx], [cov_yx, var_x]]) * n / (n - 1)
    return float(4.0 * np.sqrt(max(np.linalg.eigvalsh(covariance)[-1], 0.0)))


def la_enclosed_share(lv: np.ndarray, la: np.ndarray, reach: int = ENCLOSED_REACH_PX) -> float:
    """Share (0–1) of the LA's border pixels within ``reach`` pixels of the LV cavity.

    Parameters
    ----------
    lv, la : (H, W) bool masks of one frame, both non-empty

    Returns
    -------
    float; ~0.15–0.4 where the two meet along the mitral plane only, towards 1 where the
    LV wraps around the LA
    """
    rows, cols = ndimage.find_objects(la.astype(np.uint8))[0]
    # the LA's bounding box, widened so the border and the reach around it fit
    pad = reach + 1
    r0, c0 = max(rows.start - pad, 0), max(cols.start - pad, 0)
    box = (slice(r0, rows.stop + pad), slice(c0, cols.stop + pad))
    atrium, cavity = la[box], lv[box]
    border = atrium & ~ndimage.binary_erosion(atrium, border_value=0)
    near = ndimage.binary_dilation(cavity, iterations=reach)
    return float(np.count_nonzero(border & near)) / max(1, int(np.count_nonzero(border)))


def check_grid(labels: np.ndarray) -> np.ndarray:
    """(T, H, W) labels as the checks measure them: frames longer than
    :data:`CHECK_SIDE_PX` on a side shrunk to that length (the label of the pixel under
    each grid pixel's centre), smaller frames as they are."""
    height, width = labels.shape[-2:]
    side = max(height, width)
    if side <= CHECK_SIDE_PX:
        return labels
    rows, cols = (
        ((np.arange(max(1, round(n * CHECK_SIDE_PX / side))) + 0.5) * side / CHECK_SIDE_PX)
        .astype(np.intp)
        .clip(0, n - 1)
        for n in (height, width)
    )
    return labels[:, rows[:, None], cols[None, :]]


def shape_features(labels: np.ndarray, min_pixels: int = 10) -> ShapeFeatures:
    """Per-frame shape features of a (T, H, W) uint8 label stack (pixel counts and
    lengths on :func:`check_grid`)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise SequenceError(f"labels must be (T, H, W); got shape {labels.shape}")
    labelled = labels.reshape(labels.shape[0], -1).any(axis=1)
    return grid_shape_features(check_grid(labels), labelled, min_pixels)


def grid_shape_features(
    grid: np.ndarray, labelled: np.ndarray, min_pixels: int = 10
) -> ShapeFeatures:
    """:func:`shape_features` from the labels already on :func:`check_grid` ((T, h, w)
    uint8) and whether each frame has any label at its own size ((T,) bool)."""
    n = grid.shape[0]
    if 0 < labelled.sum() < n:
        # Unlabelled frames have the blank features: a long clip with a few keyframes
        # (600 × 800 × 150 with 2) is then measured in ~30 ms instead of ~120 ms.
        features = ShapeFeatures.blank(n)
        index = np.flatnonzero(labelled)
        features.update(index, grid_shape_features(grid[index], labelled[index], min_pixels))
        return features
    lv = grid == int(LabelClass.LV_CAVITY)
    features = ShapeFeatures.blank(n)
    features.labelled[:] = labelled
    features.lv_pixels[:] = lv.sum(axis=(1, 2))
    if n:
        features.lv_grid[:] = coarse_grid(lv)
    for t in np.flatnonzero(features.lv_pixels >= min_pixels):
        features.solidity[t] = _solidity(lv[t])
        features.lv_length[t] = long_axis_px(lv[t])
    la = grid == int(LabelClass.LA)
    features.la_pixels[:] = la.sum(axis=(1, 2))
    features.la_direction[:], features.la_enclosed[:] = _atrium_from_masks(lv, la, min_pixels)
    return features


def atrium_features(labels: np.ndarray, min_pixels: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The LA's place relative to the LV on each frame of a (T, H, W) uint8 label stack.

    Returns
    -------
    la_direction : (T, 2) float64 unit LV → LA centroid direction (row, col)
    la_enclosed : (T,) float64 share of the LA's border touching the LV
        (:func:`la_enclosed_share`)
    both NaN on frames with fewer than ``min_pixels`` LV or LA pixels
    """
    lv = labels == int(LabelClass.LV_CAVITY)
    la = labels == int(LabelClass.LA)
    return _atrium_from_masks(lv, la, min_pixels)


def _atrium_from_masks(
    lv: np.ndarray, la: np.ndarray, min_pixels: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`atrium_features` from the (T, H, W) bool LV cavity and LA masks."""
    n = lv.shape[0]
    direction, enclosed = np.full((n, 2), np.nan), np.full(n, np.nan)
    both = (lv.sum(axis=(1, 2)) >= min_pixels) & (la.sum(axis=(1, 2)) >= min_pixels)
    for t in np.flatnonzero(both):
        offset = _centroid(la[t]) - _centroid(lv[t])
        length = float(np.hypot(*offset))
        if length > 0:
            direction[t] = offset / length
        enclosed[t] = la_enclosed_share(lv[t], la[t])
    return direction, enclosed


def collapsed_frames(
    lv_pixels: np.ndarray,
    labelled: np.ndarray,
    collapse_fraction: float = COLLAPSE_FRACTION,
    min_pixels: int = 10,
) -> np.ndarray:
    """(T,) bool: labelled frames whose LV cavity is missing or collapsed (the
    **collapse** check of the module docstring); all False when no frame has an LV.

    Parameters
    ----------
    lv_pixels : (T,) LV cavity area per frame, pixels
    labelled : (T,) bool, any label on the frame (unlabelled frames are not judged)
    """
    lv_pixels = np.asarray(lv_pixels, dtype=np.float64)
    present = lv_pixels >= min_pixels
    if not present.any():
        return np.zeros(lv_pixels.shape, bool)
    typical = float(np.percentile(lv_pixels[present], 95))
    return np.asarray(labelled, bool) & (lv_pixels < collapse_fraction * typical)


def view_lost_frames(
    labels: np.ndarray,
    fraction: float = VIEW_LOST_FRACTION,
    extend_fraction: float = VIEW_LOST_EXTEND_FRACTION,
) -> np.ndarray:
    """(T,) bool: frames of a predicted sequence on which the model found no heart.

    A frame whose labelled area (LV cavity, myocardium and LA together) is under
    ``fraction`` of the clip's typical one (95th percentile over the frames with any label)
    shows no heart to the model: the probe off the chest, or a view that changed. The
    frames on either side of such a frame are lost too while their area stays under
    ``extend_fraction`` of the typical one (hysteresis: the view is still arriving or
    leaving there). Meant for a model's prediction of every frame (an unlabelled frame
    counts as lost), not for a partly labelled session. All False when no frame has a
    label.

    Parameters
    ----------
    labels : (T, H, W) uint8, LabelClass values
    fraction : share of the typical heart area below which the view counts as lost
    extend_fraction : share below which the frames next to a lost one are lost too
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise SequenceError(f"labels must be (T, H, W); got shape {labels.shape}")
    heart = np.count_nonzero(labels.reshape(labels.shape[0], -1), axis=1)
    if not heart.any():
        return np.zeros(labels.shape[0], bool)
    typical = float(np.percentile(heart[heart > 0], 95))
    lost = heart < fraction * typical
    runs, _ = ndimage.label(heart < max(fraction, extend_fraction) * typical)
    touching = np.unique(runs[lost])
    return lost | np.isin(runs, touching[touching > 0])


def plausibility_from_features(
    features: ShapeFeatures,
    collapse_fraction: float = COLLAPSE_FRACTION,
    min_solidity: float = 0.8,
    min_pixels: int = 10,
    frame_time_ms: float | None = None,
) -> Plausibility:
    """The seven checks from per-frame features (see :func:`frame_plausibility`)."""
    n = features.lv_pixels.size
    atrium_side = np.zeros(n)
    present = features.lv_pixels >= min_pixels
    labelled = np.asarray(features.labelled, bool)
    if not present.any():
        return Plausibility(
            np.zeros(n), np.zeros(n), atrium_side, labelled, np.zeros(n), np.zeros(n)
        )
    collapse = collapsed_frames(
        features.lv_pixels, features.labelled, collapse_fraction, min_pixels
    ).astype(np.float64)
    concavity = np.where(present, np.clip((min_solidity - features.solidity) / 0.2, 0.0, 1.0), 0.0)
    directions = features.la_direction
    known = present & np.isfinite(directions[:, 0])
    if known.sum() >= 3:
        median = np.median(directions[known], axis=0)
        if np.hypot(*median) > 0:
            cosine = directions[known] @ (median / np.hypot(*median))
            atrium_side[known] = (cosine < 0.0).astype(np.float64)
    displaced = displaced_frames(features.lv_grid, present, window=place_window(frame_time_ms))
    lv_area = np.where(present, features.lv_pixels, 0.0)
    la_area = np.where(features.la_pixels >= min_pixels, features.la_pixels, 0.0)
    flipped = flipped_frames(lv_area, la_area, frame_time_ms).astype(np.float64)
    return Plausibility(
        collapse,
        concavity,
        atrium_side,
        labelled,
        displaced,
        atrium_enclosed_score(features.la_enclosed, present),
        flipped,
        shortened_score(features.lv_length, present),
    )


def shortened_score(lv_length: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(T,) float64 **shortened** score: 0 at :data:`SHORTENED_FINE` of the clip's
    95th-percentile LV long axis, 1 at :data:`SHORTENED_IMPLAUSIBLE`; 0 without an LV."""
    length = np.where(np.asarray(present, bool), np.asarray(lv_length, np.float64), np.nan)
    known = np.isfinite(length)
    if not known.any():
        return np.zeros(length.size)
    share = length / np.percentile(length[known], 95)
    score = (SHORTENED_FINE - share) / (SHORTENED_FINE - SHORTENED_IMPLAUSIBLE)
    return np.where(known, np.clip(score, 0.0, 1.0), 0.0)


def atrium_enclosed_score(
    la_enclosed: np.ndarray, present: np.ndarray, limit: float = MAX_LA_ENCLOSED
) -> np.ndarray:
    """(T,) float64 **atrium enclosed** score: 0 at ``limit − 0.1`` of the LA's border
    touching the LV, 1 at ``limit + 0.1``; 0 where there is no LA or no LV."""
    share = np.where(np.asarray(present, bool), np.asarray(la_enclosed, np.float64), np.nan)
    score = np.clip((share - (limit - 0.1)) / 0.2, 0.0, 1.0)
    return np.where(np.isfinite(share), score, 0.0)


def frame_plausibility(
    labels: np.ndarray,
    collapse_fraction: float = COLLAPSE_FRACTION,
    min_solidity: float = 0.8,
    min_pixels: int = 10,
    frame_time_ms: float | None = None,
) -> Plausibility:
    """Score every frame of a label sequence (see the module docstring).

    Parameters
    ----------
    labels : (T, H, W) uint8, LabelClass values
    collapse_fraction : LV area below this fraction of the 95th-percentile area collapses
    min_solidity : LV solidity below this starts to score as concave
    min_pixels : fewer LV pixels than this is no LV
    frame_time_ms : ms between frames: the **displaced** check looks ``PLACE_WINDOW_MS``
        either side (:func:`~echo_napari.metrics_place.place_window`); None: as at 50
        frames/s

    Returns
    -------
    Plausibility; all zeros for a sequence with no LV anywhere (nothing to judge)
    """
    return plausibility_from_features(
        shape_features(labels, min_pixels),
        collapse_fraction,
        min_solidity,
        min_pixels,
        frame_time_ms,
    )
