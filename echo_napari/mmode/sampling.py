"""Anatomical M-mode: intensities (and labels) along one line, sampled in every frame.

The strip is laid out like a scanner's M-mode: rows are depth along the line (from its
first end point to its second), columns are time (one column per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import regionprops

from echo_napari.errors import SequenceError
from echo_napari.sequence import LabelClass

#: Fraction of the LV length, from the base, where the default line crosses the long axis.
DEFAULT_LINE_FRACTION = 1.0 / 3.0


@dataclass(frozen=True)
class MModeLine:
    """A line segment in frame pixels: from (y0, x0) to (y1, x1) (rows, columns)."""

    y0: float
    x0: float
    y1: float
    x1: float

    @classmethod
    def parse(cls, text: str) -> MModeLine:
        """Parse ``"Y0,X0,Y1,X1"`` (pixels)."""
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise SequenceError(
                f"line {text!r}: expected four numbers Y0,X0,Y1,X1 in pixels"
            ) from exc
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise SequenceError(f"line {text!r}: expected four finite numbers Y0,X0,Y1,X1")
        return cls(*values)

    @property
    def points(self) -> np.ndarray:
        """(2, 2) float64: the end points as (row, column) pixels."""
        return np.array([[self.y0, self.x0], [self.y1, self.x1]], dtype=np.float64)

    def length_mm(self, spacing: tuple[float, float] | None) -> float:
        """Length in mm (in pixels when ``spacing`` is None)."""
        dy, dx = spacing if spacing is not None else (1.0, 1.0)
        return float(math.hypot((self.y1 - self.y0) * dy, (self.x1 - self.x0) * dx))


@dataclass
class MModeImage:
    """A depth × time M-mode strip with its calibration.

    Attributes
    ----------
    image : (D, N) float32 in [0, 1]
        Rows = depth along the line, columns = time.
    depth_step_mm : float or None
        mm between rows; None when uncalibrated (rows are then frame pixels).
    time_step_s : float or None
        Seconds between columns; None when unknown.
    band : (D, N) uint8 or None
        1 inside the LV cavity band (between septal and posterior endocardium), else 0.
    band_probability : (D, N) float32 or None
        The soft band (label 1 one-hot, sampled linearly) behind ``band``: its 0.5
        crossings give sub-row edges.
    line : MModeLine or None
        The line it was sampled along (None for a real M-mode image).
    metadata : dict
        Source, calibration notes.
    """

    image: np.ndarray
    depth_step_mm: float | None = None
    time_step_s: float | None = None
    band: np.ndarray | None = None
    band_probability: np.ndarray | None = None
    line: MModeLine | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 2 or min(self.image.shape) < 2:
            raise SequenceError(
                f"an M-mode image must be (depth, time) with at least 2x2 samples; got "
                f"shape {self.image.shape}"
            )
        if self.band is not None and self.band.shape != self.image.shape:
            raise SequenceError(
                f"band shape {self.band.shape} does not match the image {self.image.shape}"
            )

    @property
    def calibrated(self) -> bool:
        """True when depth is in mm (measurements in mm are possible)."""
        return self.depth_step_mm is not None

    @property
    def times_s(self) -> np.ndarray:
        """(N,) float64 seconds of each column (column index when time is unknown)."""
        step = self.time_step_s if self.time_step_s else 1.0
        return np.arange(self.image.shape[1], dtype=np.float64) * step


def _line_coordinates(
    line: MModeLine,
    frame_shape: tuple[int, int],
    spacing: tuple[float, float] | None,
    step: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample positions (rows, cols) along the line, and the step between them in mm
    (pixels when uncalibrated)."""
    h, w = frame_shape
    pts = line.points
    if not np.isfinite(pts).all():
        raise SequenceError(f"M-mode line {line} has non-finite end points")
    outside = (pts[:, 0] < 0) | (pts[:, 0] > h - 1) | (pts[:, 1] < 0) | (pts[:, 1] > w - 1)
    if outside.any():
        raise SequenceError(
            f"M-mode line {[round(float(v), 1) for v in pts.ravel()]} (y0, x0, y1, x1 pixels) "
            "leaves "
            f"the {h}x{w} frame; keep both end points within rows 0..{h - 1} and columns "
            f"0..{w - 1}"
        )
    dy, dx = spacing if spacing is not None else (1.0, 1.0)
    length = line.length_mm(spacing)
    step = float(min(dy, dx)) if step is None else float(step)
    if not step > 0:
        raise SequenceError(f"M-mode depth step must be positive; got {step}")
    if length < 2 * step:
        raise SequenceError(
            f"M-mode line {[round(float(v), 1) for v in pts.ravel()]} is too short ({length:.2f} "
            f"{'mm' if spacing else 'pixels'}); draw a line across the ventricle"
        )
    n = int(math.floor(length / step)) + 1
    fraction = np.arange(n, dtype=np.float64) * (step / length)
    rows = line.y0 + fraction * (line.y1 - line.y0)
    cols = line.x0 + fraction * (line.x1 - line.x0)
    return rows, cols, step


def sample_along_line(
    volume: np.ndarray,
    line: MModeLine,
    spacing: tuple[float, float] | None,
    order: int = 1,
    step: float | None = None,
) -> tuple[np.ndarray, float]:
    """Sample a (T, H, W) array along ``line`` in every frame (vectorised over frames).

    Parameters
    ----------
    volume : (T, H, W) array
        Frames or any per-frame map (float).
    line : end points in pixels.
    spacing : (dy, dx) mm or None (then the step is one pixel).
    order : spline order for :func:`scipy.ndimage.map_coordinates` (1 = linear).
    step : depth step in mm (pixels when uncalibrated); default the finer pixel spacing.

    Returns
    -------
    strip : (D, T) float32, depth × time
    step : float, mm between rows (pixels when ``spacing`` is None)
    """
    if volume.ndim != 3:
        raise SequenceError(f"expected a (T, H, W) sequence; got shape {volume.shape}")
    t = volume.shape[0]
    rows, cols, step = _line_coordinates(line, volume.shape[1:], spacing, step)
    d = rows.size
    # Interpolating each frame in 2D (not 3D) keeps frames from mixing; one call for all.
    tt = np.broadcast_to(np.arange(t, dtype=np.float64)[None, :], (d, t))
    coords = np.stack(
        [tt, np.broadcast_to(rows[:, None], (d, t)), np.broadcast_to(cols[:, None], (d, t))]
    )
    strip = ndimage.map_coordinates(
        np.asarray(volume, dtype=np.float32), coords, order=order, mode="nearest", prefilter=False
    )
    return strip.astype(np.float32, copy=False), step


def sample_mmode(
    frames: np.ndarray,
    line: MModeLine,
    spacing: tuple[float, float] | None,
    frame_time_ms: float | None = None,
    labels: np.ndarray | None = None,
    step: float | None = None,
) -> MModeImage:
    """Anatomical M-mode of a B-mode sequence along ``line``.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1], T ≥ 2
    line : MModeLine, pixels of the frame
    spacing : (dy, dx) mm or None (then depth is in pixels and the strip is uncalibrated)
    frame_time_ms : time between frames, or None
    labels : (T, H, W) uint8 or None; the LV cavity (label 1) is sampled the same way
        (one-hot, linear, thresholded at 0.5) to give the band.
    step : depth step in mm (pixels when uncalibrated); default the finer pixel spacing.

    Returns
    -------
    MModeImage
        image (D, T) float32, band (D, T) uint8 or None.
    """
    if frames.ndim != 3:
        raise SequenceError(f"expected (T, H, W) frames; got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise SequenceError(
            f"an M-mode needs a sequence of at least 2 frames; this one has {frames.shape[0]}"
        )
    image, step = sample_along_line(frames, line, spacing, step=step)
    band = soft = None
    if labels is not None:
        if labels.shape != frames.shape:
            raise SequenceError(
                f"labels shape {labels.shape} does not match frames {frames.shape}"
            )
        cavity = (np.asarray(labels) == LabelClass.LV_CAVITY).astype(np.float32)
        soft, _ = sample_along_line(cavity, line, spacing, step=step)
        band = (soft >= 0.5).astype(np.uint8)
    return MModeImage(
        image=np.clip(image, 0.0, 1.0),
        depth_step_mm=step if spacing is not None else None,
        time_step_s=frame_time_ms / 1000.0 if frame_time_ms else None,
        band=band,
        band_probability=soft,
        line=line,
        metadata={"source": "anatomical", "spacing": spacing},
    )


def lv_axis(cavity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centroid, unit long-axis direction and length of an LV cavity mask.

    Parameters
    ----------
    cavity : (H, W) bool

    Returns
    -------
    centroid : (2,) float64 pixels (row, col)
    axis : (2,) float64 unit vector along the major axis
    length : float, extent of the mask along the axis (pixels)
    """
    mask = np.asarray(cavity, dtype=bool)
    labelled, n = ndimage.label(mask)
    if n == 0:
        raise SequenceError("no LV cavity (label 1) in the frame: cannot derive a default line")
    sizes = ndimage.sum(mask, labelled, index=np.arange(1, n + 1))
    largest = labelled == (int(np.argmax(sizes)) + 1)
    props = regionprops(largest.astype(np.uint8))[0]
    if props.area < 10:
        raise SequenceError(f"the LV cavity has only {props.area} pixels: too small for a line")
    centroid = np.asarray(props.centroid, dtype=np.float64)
    coords = np.argwhere(largest) - centroid
    # Principal axis from the second moments (regionprops' inertia tensor), in (row, col).
    _, vectors = np.linalg.eigh(props.inertia_tensor)
    axis = vectors[:, 0]  # smallest moment of inertia = the long axis
    along = coords @ axis
    return centroid, axis, float(along.max() - along.min())


def default_line(
    cavity: np.ndarray,
    base_point: tuple[float, float] | None = None,
    fraction: float = DEFAULT_LINE_FRACTION,
    margin: float = 0.6,
) -> MModeLine:
    """Default M-mode line: perpendicular to the LV long axis at ``fraction`` of its length
    from the base.

    Parameters
    ----------
    cavity : (H, W) bool, LV cavity of the ED frame
    base_point : (row, col) pixels of the mitral plane centre, optional; without it the base
        is the end of the long axis farther from the top of the image (apical views put the
        apex near the probe, at the top).
    fraction : position along the axis from the base (0 = base, 1 = apex)
    margin : the line extends this fraction of the local cavity width (and at least 15 %
        of the frame size) beyond each border, so the septum and posterior wall are in the
        strip; it is clipped to the frame.

    Returns
    -------
    MModeLine
    """
    mask = np.asarray(cavity, dtype=bool)
    centroid, axis, length = lv_axis(mask)
    coords = np.argwhere(mask) - centroid
    along = coords @ axis
    ends = [centroid + along.min() * axis, centroid + along.max() * axis]
    if base_point is not None:
        base = min(ends, key=lambda p: float(np.hypot(*(p - np.asarray(base_point)))))
    else:
        base = max(ends, key=lambda p: float(p[0]))
    apex = ends[1] if base is ends[0] else ends[0]
    centre = base + fraction * (apex - base)
    normal = np.array([-axis[1], axis[0]])
    across = (coords - (centre - centroid)) @ normal
    near = np.abs((coords - (centre - centroid)) @ axis) <= 1.0
    width = float(across[near].max() - across[near].min()) if near.any() else length / 2
    h, w = mask.shape
    # At least 15 % of the frame beyond each border: an undersegmented cavity must not
    # give a line too short to show the walls.
    half = max(0.5 * width * (1.0 + 2.0 * margin), 0.5 * width + 0.15 * max(h, w))
    p0, p1 = _clip_segment(centre - half * normal, centre + half * normal, h, w)
    # Rows grow downwards: start at the end nearer the top so depth increases along rows.
    if p0[0] > p1[0]:
        p0, p1 = p1, p0
    return MModeLine(float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1]))


def _clip_segment(p0: np.ndarray, p1: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Shorten the segment (Liang-Barsky) so that both ends lie in the frame."""
    lo = np.array([0.0, 0.0])
    hi = np.array([h - 1.0, w - 1.0])
    direction = p1 - p0
    t0, t1 = 0.0, 1.0
    for k in range(2):
        if abs(direction[k]) < 1e-12:
            continue
        a = (lo[k] - p0[k]) / direction[k]
        b = (hi[k] - p0[k]) / direction[k]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t1 <= t0:
        raise SequenceError("the default M-mode line falls outside the frame")
    # Clip away rounding residue (e.g. -1e-15) so the ends pass the in-frame check.
    return np.clip(p0 + t0 * direction, lo, hi), np.clip(p0 + t1 * direction, lo, hi)
