"""Propagation of large frames on a coarser grid, labels at the frames' own size.

A scanner's screen or DICOM cine is 600 × 800 pixels or more, while the registration
fields come from a network run on a ~128-pixel square: they are smooth at the frame's own
size. Registering the pairs there, composing the fields, correcting their drift and
carrying the keyframes' signed distances cost 28 s for 150 frames of 800 × 600 (one
thread) and held 1.1 GB of fields. On frames longer than :data:`WORK_SIDE_PX`,
:func:`~echo_napari.registration.propagation.pairwise_fields` registers the frames
resized to a grid that long (:func:`frames_on_grid`) and
:func:`~echo_napari.registration.propagation.propagate_from_keyframes` carries the
keyframes there (fields made at the frames' size are resized to it,
:func:`fields_on_grid`); the keyframes' signed distances are taken
there from the full-size labels, and each carried frame's are brought back to the frame
before its labels are read (bilinear: the border stays smooth, to a fraction of the
grid's pixel). Keyframes keep their labels exactly.

All resizing maps pixel ``y`` of ``H`` to ``y · (h − 1) / (H − 1)`` (corner-aligned, as
:func:`~echo_napari.registration.spatial.resize_field`), so fields, frames and distances
stay aligned.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.registration.fusion import ABSENT_SDF
from echo_napari.registration.spatial import resize_field, resize_frames

if TYPE_CHECKING:
    from echo_napari.registration.propagation import PairwiseFields

#: frames longer than this on a side are propagated on a grid this long (pixels): the
#: sector's square then keeps about twice the registration network's 128-pixel grid, so
#: nothing of its fields is lost.
WORK_SIDE_PX = 320

#: frames resized back at a time (bounds the memory of full-size distances)
_CHUNK = 16


def working_shape(frame_shape: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) of the coarser grid for frames of ``frame_shape``, or None when they are
    small enough to propagate as they are."""
    height, width = frame_shape
    side = max(height, width)
    if side <= WORK_SIDE_PX:
        return None
    return max(2, round(height * WORK_SIDE_PX / side)), max(2, round(width * WORK_SIDE_PX / side))


def grid_spacing(frame_shape: tuple[int, int], grid: tuple[int, int]) -> tuple[float, float]:
    """Frame pixels per grid pixel along (y, x): pixel ``j`` of the grid lies at frame pixel
    ``j`` times this (corner-aligned), so a layer on the grid overlays the frames with its
    scale multiplied by it."""
    return tuple(float(n - 1) / max(g - 1, 1) for n, g in zip(frame_shape, grid, strict=True))


def labels_on_grid(labels: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(..., H, W) labels → (..., h, w) on ``grid``: the nearest frame pixel of each grid
    pixel (corner-aligned as the frames), so classes stay classes."""
    rows, cols = (
        np.rint(np.arange(g) * spacing).astype(np.intp)
        for g, spacing in zip(grid, grid_spacing(labels.shape[-2:], grid), strict=True)
    )
    return np.asarray(labels)[..., rows[:, None], cols[None, :]]


def _resize(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) → (N, C, h, w), bilinear, corner-aligned."""
    return F.interpolate(images, size=shape, mode="bilinear", align_corners=True)


def _resize_frames(frames: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) grey frames → (N, h, w) float32, as :func:`_resize`."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    return _resize(tensor[:, None], shape)[:, 0].numpy()


def frames_on_grid(frames: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(T, H, W) grey frames → (T, h, w) float32 on ``grid`` (anti-aliased, so the
    speckle does not alias; corner-aligned as the fields), in chunks of frames."""
    out = np.empty((frames.shape[0], *grid), dtype=np.float32)
    with torch.no_grad():
        for lo in range(0, frames.shape[0], _CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[lo : lo + _CHUNK], np.float32))
            out[lo : lo + _CHUNK] = resize_frames(chunk[:, None], grid)[:, 0].numpy()
    return out


class _RegistrarOnGrid:
    """A registration backend for frames on the coarser grid: the frames are brought to
    the full size (where the backend found its sector square), registered there, and the
    fields resized to the grid."""

    def __init__(self, inner: Any, full: tuple[int, int], grid: tuple[int, int]) -> None:
        self.inner = inner
        self.full = full
        self.grid = grid

    def register_pairs(
        self, fixed: np.ndarray, moving: np.ndarray, progress: Any = None, **options: Any
    ) -> np.ndarray:
        fields = self.inner.register_pairs(
            _resize_frames(fixed, self.full),
            _resize_frames(moving, self.full),
            progress=progress,
            **options,
        )
        return resize_field(torch.from_numpy(np.asarray(fields, np.float32)), self.grid).numpy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def fields_on_grid(fields: PairwiseFields, grid: tuple[int, int]) -> PairwiseFields:
    """The same pair fields (and, for drift correction, frames and backend) on ``grid``."""
    with torch.no_grad():
        forward = resize_field(torch.from_numpy(fields.forward), grid).numpy()
        backward = resize_field(torch.from_numpy(fields.backward), grid).numpy()
        frames = registrar = None
        if fields.frames is not None:
            frames = _resize_frames(fields.frames, grid)
        if fields.registrar is not None:
            registrar = _RegistrarOnGrid(fields.registrar, fields.frame_shape, grid)
    return replace(fields, forward=forward, backward=backward, frames=frames, registrar=registrar)


def sdf_on_grid(sdf: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(C, H, W) signed distances (pixels of the frame) on ``grid``: (C, h, w) float32.
    A class absent from the keyframe stays exactly :data:`ABSENT_SDF` (fusion looks for it)."""
    small = _resize(torch.from_numpy(np.ascontiguousarray(sdf))[None], grid)[0].numpy()
    absent = (sdf == ABSENT_SDF).all(axis=(1, 2))
    small[absent] = ABSENT_SDF
    return small


def labels_on_frames(
    sdf: torch.Tensor, frame_shape: tuple[int, int], to_labels: Any
) -> np.ndarray:
    """(N, C, h, w) signed distances on the grid → (N, H, W) uint8 labels at the frames'
    size, ``to_labels`` ((n, C, H, W) tensor → (n, H, W) uint8) applied to each resized
    chunk of frames."""
    out = np.empty((sdf.shape[0], *frame_shape), dtype=np.uint8)
    with torch.no_grad():
        for lo in range(0, sdf.shape[0], _CHUNK):
            out[lo : lo + _CHUNK] = to_labels(_resize(sdf[lo : lo + _CHUNK], frame_shape))
    return out


__all__ = [
    "WORK_SIDE_PX",
    "fields_on_grid",
    "frames_on_grid",
    "grid_spacing",
    "labels_on_frames",
    "labels_on_grid",
    "sdf_on_grid",
    "working_shape",
]
