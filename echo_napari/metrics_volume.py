"""LV long axis, volumes (area-length, Simpson mono/biplane), EF, ED/ES and smoothness.

Volumes are in mL when the spacing ``(dy, dx)`` (mm per pixel) is known. Without a spacing
(e.g. EchoNet AVIs) they are in pixel³ / 1000, which still gives a correct EF (a ratio).

Long axis: the principal axis of the mask's pixel centres in mm (eigenvector of their
covariance with the largest eigenvalue), oriented from the top of the image (apex in
apical views, as displayed by convention) towards the bottom (mitral annulus). Its length
``L`` is, by ``length="moments"``, the major axis of the ellipse with the same second
moments (4·√λ, as :func:`skimage.measure.regionprops` ``axis_major_length`` but in mm with
anisotropic spacing); by ``length="extent"``, the extent of the mask along the axis
(pixel footprints included). Both give ``2a`` for an ellipse of semi-axes ``a ≥ b``.

* Area-length (single plane): ``V = 8 A² / (3 π L)``; for an ellipse this is exactly the
  volume of the prolate ellipsoid ``4/3 π a b²``.
* Simpson monoplane (method of discs): the mask is cut into 20 discs of height ``L/20``
  perpendicular to the long axis (``L`` = extent); the disc diameter ``d_i`` is the length
  of the mask along the perpendicular line through the disc's middle (sampled at ¼ pixel,
  bilinear, so non-convex sections count their chords); ``V = Σ π/4 d_i² L/20``.
* Simpson biplane (4CH + 2CH of one patient): ``V = Σ π/4 a_i b_i L/20`` with ``L`` the
  longer of the two axes and disc ``i`` of each view counted from the apex.

Smoothness (MICCAI 2023 DIR paper, Eq. 2) of an area curve ``a(t)``: ``S = ∫ a''(t)² dt``,
discretised with central second differences ``(a[t+1] − 2a[t] + a[t−1]) / Δt²`` at the
T−2 interior frames and the sum multiplied by ``Δt``. With Δt in s and areas in mm² the
unit is mm⁴/s³; with ``frame_time_ms=None`` Δt = 1 frame (mm⁴/frame³). ``normalise=True``
divides the curve by its mean first (unit 1/s³), so hearts of different size compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics import checked_spacing
from echo_napari.sequence import LabelClass

N_DISCS = 20


@dataclass(frozen=True)
class LongAxis:
    """Principal (long) axis of a mask, in mm.

    Attributes
    ----------
    centre : (y, x) mm, centroid of the mask
    direction : (uy, ux) unit vector, pointing from apex (image top) to base
    start, end : float, positions along ``direction`` relative to ``centre`` (mm) where the
        mask begins and ends (pixel footprints included)
    length : float, mm, by the method asked for
    """

    centre: tuple[float, float]
    direction: tuple[float, float]
    start: float
    end: float
    length: float


def long_axis(
    mask: np.ndarray, spacing: tuple[float, float] | None, length: str = "moments"
) -> LongAxis:
    """Long axis of a 2-D mask.

    Parameters
    ----------
    mask : (H, W) bool, non-empty
    spacing : (dy, dx) mm, or None for pixels
    length : "moments" (4·√λ_max) or "extent" (extent along the axis)
    """
    dy, dx = checked_spacing(spacing)
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool))
    if rows.size == 0:
        raise SequenceError("long_axis of an empty mask")
    pts = np.stack([rows * dy, cols * dx], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    cov = np.cov((pts - centre).T, bias=True) if rows.size > 1 else np.zeros((2, 2))
    evals, evecs = np.linalg.eigh(cov)
    direction = evecs[:, -1]
    # Orient apex (top of image) -> base: positive y, or positive x for a horizontal axis.
    if direction[0] < -1e-12 or (abs(direction[0]) <= 1e-12 and direction[1] < 0):
        direction = -direction
    proj = (pts - centre) @ direction
    footprint = 0.5 * (abs(direction[0]) * dy + abs(direction[1]) * dx)
    start, end = float(proj.min() - footprint), float(proj.max() + footprint)
    if length == "moments":
        value = 4.0 * float(np.sqrt(max(evals[-1], 0.0)))
    elif length == "extent":
        value = end - start
    else:
        raise ValueError(f"length must be 'moments' or 'extent'; got {length!r}")
    return LongAxis(
        centre=(float(centre[0]), float(centre[1])),
        direction=(float(direction[0]), float(direction[1])),
        start=start,
        end=end,
        length=value,
    )


def volume_area_length(
    mask: np.ndarray, spacing: tuple[float, float] | None, length: str = "moments"
) -> float:
    """Single-plane area-length volume ``8 A² / (3 π L)``.

    Parameters
    ----------
    mask : (H, W) bool, LV cavity
    spacing : (dy, dx) mm, or None (then pixel³ / 1000)

    Returns
    -------
    float, mL (0 for an empty mask; NaN when the axis length is 0, e.g. one pixel)
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    dy, dx = checked_spacing(spacing)
    area = float(mask.sum()) * dy * dx
    axis_length = long_axis(mask, spacing, length).length
    if axis_length <= 0:
        return float("nan")
    return 8.0 * area**2 / (3.0 * np.pi * axis_length) / 1000.0


def disc_diameters(
    mask: np.ndarray, spacing: tuple[float, float] | None, n_discs: int = N_DISCS
) -> tuple[np.ndarray, float]:
    """Diameters of the method-of-discs slices, apex first.

    Parameters
    ----------
    mask : (H, W) bool, non-empty
    spacing : (dy, dx) mm, or None for pixels
    n_discs : number of discs (20 in the guidelines and EchoNet)

    Returns
    -------
    diameters : (n_discs,) float64, mm
    length : float, mm, long-axis extent ``L`` (each disc is ``L / n_discs`` high)
    """
    dy, dx = checked_spacing(spacing)
    mask = np.asarray(mask, dtype=bool)
    axis = long_axis(mask, spacing, length="extent")
    u = np.asarray(axis.direction)
    v = np.array([-u[1], u[0]])
    centre = np.asarray(axis.centre)
    height = axis.length / n_discs
    positions = axis.start + (np.arange(n_discs) + 0.5) * height
    # Sample each perpendicular line at 1/4 pixel across the mask's extent (plus a pixel).
    step = min(dy, dx) / 4.0
    rows, cols = np.nonzero(mask)
    across = (rows * dy - centre[0]) * v[0] + (cols * dx - centre[1]) * v[1]
    pad = np.hypot(dy, dx)
    offsets = np.arange(across.min() - pad, across.max() + pad + step, step)
    pts = (
        centre[None, None, :]
        + positions[:, None, None] * u[None, None, :]
        + offsets[None, :, None] * v[None, None, :]
    )
    coords = np.stack([pts[..., 0] / dy, pts[..., 1] / dx])
    values = ndimage.map_coordinates(
        mask.astype(np.float32), coords.reshape(2, -1), order=1, mode="constant", cval=0.0
    ).reshape(n_discs, offsets.size)
    return values.sum(axis=1) * step, axis.length


def volume_simpson(
    mask: np.ndarray, spacing: tuple[float, float] | None, n_discs: int = N_DISCS
) -> float:
    """Simpson monoplane volume ``Σ π/4 d_i² L/n`` (method of discs).

    Returns
    -------
    float, mL (0 for an empty mask)
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    diameters, length = disc_diameters(mask, spacing, n_discs)
    return float(np.sum(np.pi / 4.0 * diameters**2) * length / n_discs / 1000.0)


def volume_simpson_biplane(
    mask_4ch: np.ndarray,
    spacing_4ch: tuple[float, float] | None,
    mask_2ch: np.ndarray,
    spacing_2ch: tuple[float, float] | None,
    n_discs: int = N_DISCS,
) -> float:
    """Simpson biplane volume ``Σ π/4 a_i b_i L/n`` from orthogonal 4CH and 2CH masks.

    ``L`` is the longer of the two long axes; disc ``i`` is counted from the apex in both.

    Returns
    -------
    float, mL (0 when either mask is empty)
    """
    mask_4ch = np.asarray(mask_4ch, dtype=bool)
    mask_2ch = np.asarray(mask_2ch, dtype=bool)
    if not mask_4ch.any() or not mask_2ch.any():
        return 0.0
    a, length_a = disc_diameters(mask_4ch, spacing_4ch, n_discs)
    b, length_b = disc_diameters(mask_2ch, spacing_2ch, n_discs)
    length = max(length_a, length_b)
    return float(np.sum(np.pi / 4.0 * a * b) * length / n_discs / 1000.0)


VOLUME_METHODS = {"area_length": volume_area_length, "simpson": volume_simpson}


def lv_volume_curve(
    labels: np.ndarray,
    spacing: tuple[float, float] | None,
    method: str = "simpson",
    label: int = int(LabelClass.LV_CAVITY),
) -> np.ndarray:
    """LV volume of every frame.

    Parameters
    ----------
    labels : (T, H, W) uint8
    method : "simpson" or "area_length"

    Returns
    -------
    (T,) float64, mL (pixel³/1000 when spacing is None)
    """
    if method not in VOLUME_METHODS:
        raise ValueError(f"method must be one of {sorted(VOLUME_METHODS)}; got {method!r}")
    volume = VOLUME_METHODS[method]
    return np.array([volume(frame == label, spacing) for frame in np.asarray(labels)])


def ed_es_from_curve(curve: np.ndarray, sigma_frames: float = 0.0) -> tuple[int, int]:
    """End-diastole (maximum) and end-systole (minimum) frames of an area/volume curve.

    Parameters
    ----------
    curve : (T,) float, area or volume per frame
    sigma_frames : Gaussian smoothing (frames) before taking max/min; 0 = none

    Returns
    -------
    (ed_index, es_index)
        Global max and min; with several cycles this is the largest and smallest beat.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise SequenceError(f"curve must be a non-empty (T,) array; got shape {curve.shape}")
    if sigma_frames > 0:
        curve = ndimage.gaussian_filter1d(curve, sigma_frames, mode="nearest")
    return int(np.nanargmax(curve)), int(np.nanargmin(curve))


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in percent, ``100 (EDV − ESV) / EDV``; NaN when EDV ≤ 0."""
    if not edv > 0:
        return float("nan")
    return 100.0 * (edv - esv) / edv


@dataclass(frozen=True)
class VolumeResult:
    """EDV, ESV (mL, or pixel³/1000 without spacing), EF (%) and the frames used."""

    edv: float
    esv: float
    ef: float
    ed_index: int
    es_index: int
    method: str


def ef_from_labels(
    labels: np.ndarray,
    spacing: tuple[float, float] | None,
    method: str = "simpson",
    ed_index: int | None = None,
    es_index: int | None = None,
    sigma_frames: float = 0.0,
) -> VolumeResult:
    """EDV, ESV and EF of a label sequence.

    ED/ES are the given indices, else the max/min of the (optionally smoothed) LV volume
    curve (:func:`ed_es_from_curve`).

    Parameters
    ----------
    labels : (T, H, W) uint8
    spacing : (dy, dx) mm, or None
    method : "simpson" (monoplane, method of discs) or "area_length"
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise SequenceError(f"labels must be (T, H, W); got shape {labels.shape}")
    if ed_index is None or es_index is None:
        curve = lv_volume_curve(labels, spacing, method)
        ed_auto, es_auto = ed_es_from_curve(curve, sigma_frames)
        ed_index = ed_auto if ed_index is None else ed_index
        es_index = es_auto if es_index is None else es_index
    volume = VOLUME_METHODS[method]
    edv = volume(labels[ed_index] == LabelClass.LV_CAVITY, spacing)
    esv = volume(labels[es_index] == LabelClass.LV_CAVITY, spacing)
    return VolumeResult(edv, esv, ejection_fraction(edv, esv), ed_index, es_index, method)


def area_curve_smoothness(
    areas: np.ndarray, frame_time_ms: float | None = None, normalise: bool = False
) -> float:
    """Temporal smoothness ``∫ a''(t)² dt`` of an area curve (MICCAI 2023 DIR Eq. 2).

    Parameters
    ----------
    areas : (T,) float, mm² (or pixels)
    frame_time_ms : time between frames; None = 1 frame as the time unit
    normalise : divide the curve by its mean first (scale-free)

    Returns
    -------
    float
        mm⁴/s³ (areas in mm², Δt in s); 1/s³ when normalised; NaN for T < 3.
        Lower is smoother.
    """
    areas = np.asarray(areas, dtype=np.float64)
    if areas.ndim != 1:
        raise SequenceError(f"areas must be a (T,) curve; got shape {areas.shape}")
    if areas.size < 3:
        return float("nan")
    if normalise:
        mean = areas.mean()
        if mean == 0:
            return float("nan")
        areas = areas / mean
    dt = 1.0 if frame_time_ms is None else float(frame_time_ms) / 1000.0
    second = (areas[2:] - 2.0 * areas[1:-1] + areas[:-2]) / dt**2
    return float(np.sum(second**2) * dt)
