"""The *Plausible shapes* step of a prediction: the shape prior, then the lost apex.

One place for what :func:`~echo_napari.segmentation.inference.predict_sequence`, the
Predict panel's job and ``echo-napari predict`` do last: every labelled frame redrawn by
the bundled shape prior
(:func:`~echo_napari.segmentation.inference.redraw_with_shape_prior`), then the frames
on which the LV lost its apex re-drawn from the frames either side by registration
(:func:`~echo_napari.registration.apex_restore.restore_collapsed_apex`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from echo_napari.field_of_view import FieldOfView, square_apex_point
from echo_napari.registration.apex_restore import ApexRestore, restore_collapsed_apex
from echo_napari.segmentation.inference import redraw_with_shape_prior

Progress = Callable[[int, int], None]


def draw_plausible_shapes(
    frames: Any,
    labels: np.ndarray,
    field_of_view: FieldOfView | None = None,
    frame_time_ms: float | None = None,
    backend: Any = "dirnet",
    prior_progress: Progress | None = None,
    apex_progress: Progress | None = None,
) -> tuple[np.ndarray, ApexRestore | None]:
    """The labels redrawn by the shape prior, then their lost apices re-drawn.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1] (numpy or dask), at the labels' size or larger
    labels : (T, h, w) uint8, LabelClass values
    field_of_view : FieldOfView of the frames, or None when they are the EchoNet-like
        square around the sector already (the probe at its top centre)
    frame_time_ms : ms between frames; None reads as 20 (50 frames/s)
    backend : registration backend, its name, or a function that makes one (made only
        when a stretch is found)
    prior_progress, apex_progress : callable(done, total) for each of the two steps

    Returns
    -------
    labels : (T, h, w) uint8
    restored : what the apex step did; None for a single frame (no stretch to find)
    """
    labels = redraw_with_shape_prior(labels, field_of_view, prior_progress)
    if len(labels) < 2:
        return labels, None
    probe = (
        field_of_view.apex_point
        if field_of_view is not None
        else square_apex_point(labels.shape[1:])
    )
    restored = restore_collapsed_apex(
        frames, labels, probe, frame_time_ms, backend, progress=apex_progress
    )
    return restored.labels, restored


__all__ = ["draw_plausible_shapes"]
