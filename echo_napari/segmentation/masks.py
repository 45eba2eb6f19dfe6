"""Per-frame operations on (T, H, W) bool mask stacks, each from one labelling of the
whole stack (4-connected within a frame, never across frames)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from echo_napari.metrics_plausibility import row_extremes


def _frame_structure() -> np.ndarray:
    """4-connectivity within a frame, none across frames."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return structure


def _occupied(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Rows and columns of a (T, H, W) stack inside which every frame's set pixels lie,
    widened by ``margin``; None when no pixel is set. Labelling only that box gives the
    same components (the heart fills a fraction of a scanner's frame)."""
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    height, width = mask.shape[1:]
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _in_box(mask: np.ndarray, box: tuple[slice, slice], inner: np.ndarray) -> np.ndarray:
    """A (T, H, W) bool stack, False outside ``box``, ``inner`` inside it."""
    if inner.shape == mask.shape:
        return inner
    out = np.zeros(mask.shape, dtype=bool)
    out[:, box[0], box[1]] = inner
    return out


def label_per_frame(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 2D components of every frame of a (T, H, W) bool mask at once: (T, H, W)
    int32 labels, unique over the stack (a component never spans frames), and their count.

    Only the box around the set pixels is labelled: raster order within it is the
    stack's, so the labels are those of the whole stack."""
    box = _occupied(mask)
    labels = np.zeros(mask.shape, dtype=np.int32)
    if box is None:
        return labels, 0
    labels[:, box[0], box[1]], n = ndimage.label(
        mask[:, box[0], box[1]], structure=_frame_structure()
    )
    return labels, n


def largest_component_per_frame(mask: np.ndarray) -> np.ndarray:
    """Keep, in every frame of a (T, H, W) bool mask, only its largest 2D component."""
    box = _occupied(mask)
    if box is None:
        return mask
    inner = mask[:, box[0], box[1]]
    components, n = ndimage.label(inner, structure=_frame_structure())
    if n <= 1:
        return mask
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    frame_of = np.zeros(n + 1, dtype=np.int64)
    frame_of[1:] = [found[0].start for found in ndimage.find_objects(components)]
    # For each frame, the component with the largest size (ties: the lower label).
    order = np.lexsort((-np.arange(n + 1), sizes, frame_of))
    best = np.zeros(n + 1, dtype=bool)
    last_of_frame = np.r_[frame_of[order][1:] != frame_of[order][:-1], True]
    best[order[last_of_frame]] = True
    best[0] = False
    return _in_box(mask, box, best[components])


def fill_holes_per_frame(mask: np.ndarray) -> np.ndarray:
    """Fill, in every frame of a (T, H, W) bool mask, the background regions that do not
    reach that frame's edge (4-connected in the frame, never across frames).

    The same as ``binary_fill_holes`` frame by frame, from one labelling of the whole
    stack instead of its iterated dilations (3-4x faster on 128 frames).
    """
    box = _occupied(mask)
    if box is None:
        return mask.copy()
    # Outside the box every pixel is background joined to the frame's edge, so a region
    # reaching the box's edge reaches the frame's.
    inner = mask[:, box[0], box[1]]
    background, n = ndimage.label(~inner, structure=_frame_structure())
    reaches_edge = np.zeros(n + 1, dtype=bool)
    for edge in (background[:, 0], background[:, -1], background[:, :, 0], background[:, :, -1]):
        reaches_edge[np.unique(edge)] = True
    reaches_edge[0] = True  # label 0: the mask itself
    return _in_box(mask, box, inner | ~reaches_edge[background])


def components_near_per_frame(mask: np.ndarray, anchor: np.ndarray, reach_px: int) -> np.ndarray:
    """Keep, in every frame of a (T, H, W) bool mask, the 2D components that come within
    ``reach_px`` pixels (4-connected steps) of that frame's ``anchor`` (T, H, W) bool."""
    # An anchor pixel outside the mask's box widened by reach_px is more than reach_px
    # 4-connected steps from every mask pixel (reach_px 0 dilates without end: whole box).
    box = _occupied(mask, margin=reach_px if reach_px > 0 else max(mask.shape[1:]))
    if box is None:
        return mask.copy()
    inner = mask[:, box[0], box[1]]
    near = ndimage.binary_dilation(
        anchor[:, box[0], box[1]], structure=_frame_structure(), iterations=reach_px
    )
    components, n = ndimage.label(inner, structure=_frame_structure())
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(components[near & inner])] = True
    keep[0] = False
    return _in_box(mask, box, keep[components])


#: midpoints of a pixel square's sides: the hull of these over the pixels is
#: skimage's ``convex_hull_image`` polygon
_SIDE_MIDPOINTS = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])


def _convex_rows(corners: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows a convex polygon covers and each row's first and last column (float), from
    its (N, 2) (row, col) corners: every edge's column at each row it crosses."""
    lo, hi = int(np.ceil(corners[:, 0].min())), int(np.floor(corners[:, 0].max()))
    rows = np.arange(max(lo, 0), min(hi, n_rows - 1) + 1)
    left = np.full(rows.size, np.inf)
    right = np.full(rows.size, -np.inf)
    for (r0, c0), (r1, c1) in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        a, b = min(r0, r1), max(r0, r1)
        crossed = (rows >= a) & (rows <= b)
        if not crossed.any():
            continue
        if b == a:  # a horizontal edge spans its row between its two ends
            first, last = min(c0, c1), max(c0, c1)
        else:
            first = last = c0 + (rows[crossed] - r0) * (c1 - c0) / (r1 - r0)
        left[crossed] = np.minimum(left[crossed], first)
        right[crossed] = np.maximum(right[crossed], last)
    return rows, left, right


def convex_hull_per_frame(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: each frame's mask with its convex hull filled (all its pixels,
    whatever their components; empty frames stay empty) — the pixels whose centres lie
    in the hull of the midpoints of the pixels' sides, as
    :func:`skimage.morphology.convex_hull_image` frame by frame.

    The hull is taken over the first and last pixel of each row (every other pixel lies
    between two of them) and filled row by row: ~15x faster than skimage's on 600 × 600
    frames.
    """
    from scipy.spatial import ConvexHull, QhullError

    hull = np.array(mask, dtype=bool, copy=True)
    columns = np.arange(mask.shape[2])
    for t in np.flatnonzero(mask.any(axis=(1, 2))):
        points = (row_extremes(mask[t])[:, None, :] + _SIDE_MIDPOINTS[None]).reshape(-1, 2)
        try:
            corners = points[ConvexHull(points).vertices]
        except QhullError:  # all on one line: the mask is its own hull
            continue
        rows, left, right = _convex_rows(corners, mask.shape[1])
        inside = (columns >= np.ceil(left - 1e-9)[:, None]) & (
            columns <= np.floor(right + 1e-9)[:, None]
        )
        hull[t, rows] |= inside
    return hull


def smooth_at_constant_area(
    mask: np.ndarray, sigma_px: float, kept_out: np.ndarray | None = None
) -> np.ndarray:
    """One (H, W) bool mask with its border smoothed and its pixel count kept.

    The mask is blurred (Gaussian, ``sigma_px`` pixels) and as many of the highest pixels
    kept as it had: spikes and notches narrower than about ``2 * sigma_px`` go, while the
    area (and so an EF from it) stays as it was, unlike a blur thresholded at one half,
    which shrinks every convex shape.

    Parameters
    ----------
    mask : (H, W) bool
    sigma_px : float
        Gaussian sigma, pixels; 0 returns ``mask``.
    kept_out : (H, W) bool, optional
        Pixels never in the result (nor counted in its area), but blurred as if they were
        in the mask, so that the border the mask shares with them (the LV's mitral plane
        with the atrium) stays where it is.

    Returns
    -------
    (H, W) bool, as many pixels as ``mask`` has outside ``kept_out``.
    """
    if kept_out is not None:
        mask = mask & ~kept_out
    n = int(np.count_nonzero(mask))
    if sigma_px <= 0 or n == 0:
        return mask
    solid = mask if kept_out is None else mask | kept_out
    blurred = ndimage.gaussian_filter(solid.astype(np.float32), sigma_px)
    if kept_out is not None:
        blurred[kept_out] = -1.0  # below every other pixel: never among the n kept
    top = np.argpartition(blurred.ravel(), blurred.size - n)[blurred.size - n :]
    out = np.zeros(mask.size, dtype=bool)
    out[top] = True
    return out.reshape(mask.shape)


__all__ = [
    "components_near_per_frame",
    "convex_hull_per_frame",
    "fill_holes_per_frame",
    "label_per_frame",
    "largest_component_per_frame",
    "smooth_at_constant_area",
]
