"""Segmentation and motion metrics (areas first; the rest grows here)."""

from __future__ import annotations

import numpy as np

from echo_napari.sequence import LabelClass

N_CLASSES = len(LabelClass)


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
    counts = np.stack([np.bincount(row, minlength=N_CLASSES)[:N_CLASSES] for row in flat])
    pixel_area = 1.0 if spacing is None else float(spacing[0]) * float(spacing[1])
    areas = counts.astype(np.float64) * pixel_area
    return areas[0] if single else areas
