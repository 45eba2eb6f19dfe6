"""Signed distance maps and the forward/backward fusion of Eq. 1.

Masks travel as signed distance maps (SDF, positive inside), which interpolate linearly
without the blocky steps of nearest-neighbour label warping; a warped SDF is thresholded
at 0 to give the mask back.

Resolving classes: the classes are mutually exclusive, so each pixel takes the class with
the **highest SDF among the classes whose SDF is positive** there, else background. For an
SDF this means "the class whose boundary is furthest away", which keeps thin structures
(myocardium) from being swallowed by a neighbour that only just reaches a pixel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echo_napari.errors import RegistrationError

#: SDF value (pixels) used for a class that is absent from a mask: "far outside".
ABSENT_SDF = -1.0e4


def signed_distance(mask: np.ndarray, spacing: tuple[float, float] | None = None) -> np.ndarray:
    """Signed Euclidean distance to the mask boundary, positive inside.

    The boundary lies half a pixel outside the outermost mask pixels, so
    ``signed_distance(m) > 0`` reproduces ``m`` exactly.

    Parameters
    ----------
    mask : (H, W) bool
        Non-empty and not full.
    spacing : (dy, dx) mm per pixel or None
        With a spacing the distances are in mm, otherwise in pixels.

    Returns
    -------
    (H, W) float32, pixels (or mm).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RegistrationError(f"mask must be (H, W); got shape {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise RegistrationError("mask is empty; a signed distance needs at least one pixel")
    if mask.all():
        raise RegistrationError("mask covers the whole frame; it has no boundary")
    if spacing is not None:
        dy, dx = (float(v) for v in spacing)
        if not (dy > 0 and dx > 0 and np.isfinite(dy) and np.isfinite(dx)):
            raise RegistrationError(f"spacing must be positive (dy, dx) mm; got {spacing}")
        sampling = (dy, dx)
        half = 0.5 * min(dy, dx)
    else:
        sampling = None
        half = 0.5
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return np.where(mask, inside - half, half - outside).astype(np.float32)


def labels_to_sdf(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Per-class SDFs (C, H, W) float32 of an (H, W) label map, in pixels.

    A class absent from ``labels`` gets :data:`ABSENT_SDF` everywhere; a class filling the
    whole frame gets ``+|ABSENT_SDF|``.
    """
    out = np.empty((len(classes), *labels.shape), dtype=np.float32)
    for i, c in enumerate(classes):
        mask = labels == c
        if not mask.any():
            out[i] = ABSENT_SDF
        elif mask.all():
            out[i] = -ABSENT_SDF
        else:
            out[i] = signed_distance(mask)
    return out


def labels_from_sdf(sdf: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Resolve per-class SDFs (C, H, W) into one (H, W) uint8 label map.

    Each pixel takes the class with the highest positive SDF, else 0 (background).
    """
    if sdf.shape[0] != len(classes):
        raise RegistrationError(f"sdf has {sdf.shape[0]} channels for {len(classes)} classes")
    best = np.argmax(sdf, axis=0)
    values = np.asarray(classes, dtype=np.uint8)[best]
    return np.where(np.max(sdf, axis=0) > 0, values, 0).astype(np.uint8)


def fusion_weights(t: int | np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1 weights (cos²(πt/2N), sin²(πt/2N)) for the forward and backward results."""
    if n <= 0:
        raise RegistrationError(f"keyframe gap N must be ≥ 1; got {n}")
    angle = np.pi * np.asarray(t, dtype=np.float64) / (2.0 * n)
    return np.cos(angle) ** 2, np.sin(angle) ** 2


def fuse_signed_distances(
    sdf_forward: np.ndarray, sdf_backward: np.ndarray, t: int, n: int
) -> np.ndarray:
    """Eq. 1 of the DIR pseudo-label paper, per class.

    ``fused = sdf_forward·cos²(πt/2N) + sdf_backward·sin²(πt/2N)``; ``fused > 0`` is inside.

    Parameters
    ----------
    sdf_forward : (..., H, W) float
        SDF carried forward from the earlier keyframe k0.
    sdf_backward : (..., H, W) float
        SDF carried backward from the later keyframe k1 (same shape).
    t : int
        Frame offset from k0, 0 ≤ t ≤ N.
    n : int
        Keyframe gap N = k1 − k0 ≥ 1.

    Returns
    -------
    float32 array of the input shape.
    """
    sdf_forward = np.asarray(sdf_forward, dtype=np.float32)
    sdf_backward = np.asarray(sdf_backward, dtype=np.float32)
    if sdf_forward.shape != sdf_backward.shape:
        raise RegistrationError(
            f"forward and backward SDFs differ in shape: {sdf_forward.shape} vs "
            f"{sdf_backward.shape}"
        )
    if not 0 <= t <= n:
        raise RegistrationError(f"frame offset t={t} outside 0..N={n}")
    w_forward, w_backward = fusion_weights(t, n)
    return (sdf_forward * w_forward + sdf_backward * w_backward).astype(np.float32)
