"""A second source of labels (a prediction) shown next to the reviewed ones, and how much
the two disagree per frame. No Qt, no napari."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo_napari.metrics_plausibility import ShapeFeatures
from echo_napari.sequence import FrameProvenance
from echo_napari.uncertainty import count_unsure

__all__ = ["DISAGREEMENT_GRID_PX", "SecondSource", "label_disagreement"]


#: pixels: frames larger than this are compared on a subsampled grid for the disagreement.
DISAGREEMENT_GRID_PX = 256


def label_disagreement(
    a: np.ndarray,
    b: np.ndarray,
    classes: tuple[int, ...] = (1, 2, 3),
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frame disagreement 1 − mean Dice over the classes present in either array.

    Frames larger than :data:`DISAGREEMENT_GRID_PX` are compared on every k-th row and
    column (a suspicion score, not a measurement: 4× less work on 600 × 600 frames, where
    undoing a whole-sequence change spent ~0.5 s here on the GUI thread).

    Parameters
    ----------
    a, b : (N, H, W) uint8 label stacks
    frames : (M,) int, compare only these frames of ``a`` and ``b`` (gathered already
        subsampled: copying 150 whole frames of 600 × 800 first cost ~0.17 s); None: all

    Returns
    -------
    (N,) float64 in [0, 1] (or (M,) with ``frames``); 0 where neither has any of
    ``classes``.
    """
    step = max(1, max(a.shape[1:], default=1) // DISAGREEMENT_GRID_PX)
    rows = slice(None) if frames is None else np.asarray(frames, dtype=np.intp)
    a, b = a[rows, ::step, ::step], b[rows, ::step, ::step]
    n = a.shape[0]
    a, b = a.reshape(n, -1), b.reshape(n, -1)
    dice_sum = np.zeros(n)
    present = np.zeros(n)
    for c in classes:
        in_a, in_b = a == c, b == c
        total = in_a.sum(1) + in_b.sum(1)
        both = (in_a & in_b).sum(1)
        has = total > 0
        dice_sum[has] += 2.0 * both[has] / total[has]
        present += has
    out = np.zeros(n)
    ok = present > 0
    out[ok] = 1.0 - dice_sum[ok] / present[ok]
    return out


@dataclass
class SecondSource:
    """Labels from another source (a prediction) shown next to the reviewed labels.

    Attributes
    ----------
    labels : (T, H, W) uint8
    provenance : FrameProvenance recorded when frames are accepted from it
    areas : (T, 4) float64, mm² (px² without spacing)
    disagreement : (T,) float64, 1 − mean Dice against the reviewed labels
    shapes : ShapeFeatures of ``labels`` (computed by the job), or None
    uncertainty : (T,) float64, the network's LV-border uncertainty
        (:func:`echo_napari.uncertainty.lv_border_uncertainty`), or None
    """

    labels: np.ndarray
    provenance: FrameProvenance
    areas: np.ndarray
    disagreement: np.ndarray
    shapes: ShapeFeatures | None = None
    uncertainty: np.ndarray | None = None

    def n_unsure(self) -> int:
        """Frames the network was unsure of, among those it labelled."""
        return count_unsure(self.uncertainty, self.areas[:, 1] > 0)
