"""Segmentation metrics in physical units: areas, Dice, Hausdorff (HD, HD95), MAD.

Sibling modules: :mod:`echo_napari.metrics_volume` (long axis, area-length and Simpson
volumes, EF, ED/ES, smoothness Eq. 2), :mod:`echo_napari.metrics_stats` (correlation,
bias, MAE, bootstrap CIs, Jacobian statistics) and :mod:`echo_napari.metrics_sequence`
(one predicted sequence against its reference, as ``echo-napari evaluate`` reports it).

All distances are in mm when a spacing ``(dy, dx)`` in mm per pixel is given, and in pixels
when ``spacing`` is ``None`` (the unit is never guessed: the tables carry a
``distance_unit`` column).

Surfaces are the 4-connected contours of the masks: the mask pixels that have at least one
background neighbour among their 4 neighbours (pixels on the image border count as contour).
Distances are Euclidean between pixel centres, measured with
:func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing``.

* HD   = max(max d(A→B), max d(B→A)) over contour pixels.
* HD95 = max(95th percentile of d(A→B), 95th percentile of d(B→A)) (the MONAI convention).
* MAD  = (mean d(A→B) + mean d(B→A)) / 2, the mean absolute (symmetric) surface distance.

Empty masks, per class and frame (documented choice; tests hold it):

* class absent in both prediction and reference: Dice, HD, HD95, MAD are NaN ("not
  applicable") and the frame is left out of every average;
* class present in only one of them: Dice 0 and HD = HD95 = MAD = +inf (the distance from
  a point set to the empty set is infinite). Averages per sequence
  (:func:`sequence_means`) average Dice over all applicable frames (so a miss counts as 0)
  and distances over the frames where both masks exist, and report the misses in
  ``missed``, so one missing frame neither hides nor turns a whole video into inf.

Per-frame values averaged per video, then per dataset, follow the MICCAI 2023 DIR paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.sequence import LabelClass

N_CLASSES = len(LabelClass)

#: Short column-name keys per class, used in CSV files and reports.
CLASS_KEYS: dict[int, str] = {
    LabelClass.LV_CAVITY: "lv",
    LabelClass.MYOCARDIUM: "myo",
    LabelClass.LA: "la",
}
FOREGROUND_CLASSES: tuple[int, ...] = (
    int(LabelClass.LV_CAVITY),
    int(LabelClass.MYOCARDIUM),
    int(LabelClass.LA),
)
_CROSS = ndimage.generate_binary_structure(2, 1)


def class_areas_mm2(labels: np.ndarray, spacing: tuple[float, float] | None) -> np.ndarray:
    """Area of every class in every frame.

    Parameters
    ----------
    labels : (T, H, W) or (H, W) uint8
        Label maps with :class:`LabelClass` values.
    spacing : (dy, dx) mm, or None for pixel units (then areas are in pixels).

    Returns
    -------
    (T, 4) float64 (or (4,) for one frame)
        Area per class in mm² (column = class value; column 0 is background).
    """
    labels = np.asarray(labels)
    single = labels.ndim == 2
    flat = labels.reshape(1 if single else labels.shape[0], -1)
    # One vectorised count per class and frame: 5× faster than a bincount per frame on
    # 600 × 600 frames (it widens every pixel to int64 first); values ≥ N_CLASSES count nowhere.
    counts = np.array(
        [[np.count_nonzero(row == c) for c in range(N_CLASSES)] for row in flat],
        dtype=np.int64,
    ).reshape(flat.shape[0], N_CLASSES)
    pixel_area = 1.0 if spacing is None else float(spacing[0]) * float(spacing[1])
    areas = counts.astype(np.float64) * pixel_area
    return areas[0] if single else areas


def checked_spacing(spacing: tuple[float, float] | None) -> tuple[float, float]:
    """``(dy, dx)`` as floats, ``(1, 1)`` (pixel units) for None; raise on bad values."""
    if spacing is None:
        return 1.0, 1.0
    dy, dx = (float(s) for s in spacing)
    if not (np.isfinite(dy) and np.isfinite(dx) and dy > 0 and dx > 0):
        raise SequenceError(f"spacing must be two positive mm values (dy, dx); got {spacing}")
    return dy, dx


def distance_unit(spacing: tuple[float, float] | None) -> str:
    """``"mm"`` when a spacing is known, else ``"px"``."""
    return "px" if spacing is None else "mm"


def contour(mask: np.ndarray) -> np.ndarray:
    """4-connected inner contour of a mask.

    Parameters
    ----------
    mask : (H, W) bool

    Returns
    -------
    (H, W) bool
        Mask pixels with a 4-neighbour outside the mask (image border = outside).
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def dice_coefficient(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap 2|A∩B| / (|A| + |B|) of two masks; NaN when both are empty.

    Parameters
    ----------
    pred, ref : (..., H, W) bool
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise SequenceError(f"masks differ in shape: {pred.shape} vs {ref.shape}")
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return float("nan")
    return 2.0 * float(np.logical_and(pred, ref).sum()) / total


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed contour-to-contour distances of two non-empty masks.

    Parameters
    ----------
    pred, ref : (H, W) bool, both non-empty
    spacing : (dy, dx) mm, or None for pixels

    Returns
    -------
    pred_to_ref, ref_to_pred : 1-D float64
        For each contour pixel of ``pred`` the distance to the nearest contour pixel of
        ``ref`` (mm, or pixels), and the reverse.
    """
    sampling = checked_spacing(spacing)
    pred_c = contour(pred)
    ref_c = contour(ref)
    if not pred_c.any() or not ref_c.any():
        raise SequenceError("surface_distances needs two non-empty masks")
    # Distances between contour pixels never leave the bounding box of both contours, so
    # the transforms run on that box only (much cheaper on large frames).
    rows, cols = np.nonzero(pred_c | ref_c)
    box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    pred_c, ref_c = pred_c[box], ref_c[box]
    to_ref = ndimage.distance_transform_edt(~ref_c, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_c, sampling=sampling)
    return to_ref[pred_c], to_pred[ref_c]


@dataclass(frozen=True)
class MaskMetrics:
    """Overlap and surface distances of one class in one frame.

    Distances in mm (or pixels when the spacing is unknown); see the module docstring for
    the empty-mask conventions (NaN = not applicable, inf = class missed by one side).
    """

    dice: float
    hd: float
    hd95: float
    mad: float


def mask_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float] | None
) -> MaskMetrics:
    """Dice, HD, HD95 and MAD of two binary masks.

    Parameters
    ----------
    pred, ref : (H, W) bool
    spacing : (dy, dx) mm, or None for pixels
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    dice = dice_coefficient(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        nan = float("nan")
        return MaskMetrics(nan, nan, nan, nan)
    if has_pred != has_ref:
        inf = float("inf")
        return MaskMetrics(0.0, inf, inf, inf)
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    return MaskMetrics(
        dice=dice,
        hd=float(max(d_pr.max(), d_rp.max())),
        hd95=float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))),
        mad=float((d_pr.mean() + d_rp.mean()) / 2.0),
    )


def _check_labels(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.ndim == 2:
        pred = pred[None]
    if ref.ndim == 2:
        ref = ref[None]
    if pred.shape != ref.shape or pred.ndim != 3:
        raise SequenceError(
            f"predicted labels {pred.shape} and reference labels {ref.shape} must both be "
            "(T, H, W) with the same shape"
        )
    return pred, ref


def frame_metrics(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing: tuple[float, float] | None,
    classes: tuple[int, ...] = FOREGROUND_CLASSES,
    frames: list[int] | None = None,
) -> pd.DataFrame:
    """Per-frame, per-class metrics of a predicted label sequence against a reference.

    Parameters
    ----------
    pred_labels, ref_labels : (T, H, W) uint8 with :class:`LabelClass` values
    spacing : (dy, dx) mm, or None for pixels
    classes : label values to score
    frames : frame indices to score (default all; e.g. only the annotated ED/ES frames)

    Returns
    -------
    DataFrame, one row per (frame, class)
        Columns ``frame, label, class, dice, hd, hd95, mad, pred_area, ref_area,
        distance_unit``; areas in mm² (pixels when spacing is None).
    """
    pred, ref = _check_labels(pred_labels, ref_labels)
    pixel_area = float(np.prod(checked_spacing(spacing)))
    unit = distance_unit(spacing)
    if frames is None:
        frames = list(range(pred.shape[0]))
    rows = []
    for t in frames:
        for label in classes:
            p = pred[t] == label
            r = ref[t] == label
            m = mask_metrics(p, r, spacing)
            rows.append(
                {
                    "frame": int(t),
                    "label": int(label),
                    "class": CLASS_KEYS.get(label, str(label)),
                    "dice": m.dice,
                    "hd": m.hd,
                    "hd95": m.hd95,
                    "mad": m.mad,
                    "pred_area": float(p.sum()) * pixel_area,
                    "ref_area": float(r.sum()) * pixel_area,
                    "distance_unit": unit,
                }
            )
    return pd.DataFrame(rows)


def sequence_means(table: pd.DataFrame) -> pd.DataFrame:
    """Average a :func:`frame_metrics` table over frames, per class.

    Dice is averaged over the frames where the class is present in the prediction or the
    reference (a missed frame counts as 0); HD, HD95 and MAD over the frames where both
    exist. ``missed`` counts the frames where only one side has the class.

    Returns
    -------
    DataFrame indexed by class key
        Columns ``dice, hd, hd95, mad, frames, missed``.
    """
    out = {}
    for key, group in table.groupby("class", sort=False):
        applicable = group[np.isfinite(group["dice"])]
        finite = applicable[np.isfinite(applicable["hd"])]
        out[key] = {
            "dice": applicable["dice"].mean() if len(applicable) else float("nan"),
            "hd": finite["hd"].mean() if len(finite) else float("nan"),
            "hd95": finite["hd95"].mean() if len(finite) else float("nan"),
            "mad": finite["mad"].mean() if len(finite) else float("nan"),
            "frames": len(applicable),
            "missed": len(applicable) - len(finite),
        }
    return pd.DataFrame.from_dict(out, orient="index")
