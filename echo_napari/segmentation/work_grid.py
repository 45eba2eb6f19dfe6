"""Post-processing of large frames on the network's grid, labels at the frames' size.

The segmentation network sees every frame resized to its grid (112 × 112), and the
post-processing steps after it (the mitral plane, the LV's place over time, the border
refinement) count their distances in pixels of that grid: they were chosen on
EchoNet-Dynamic's 112-pixel frames. On a scanner's screen or a DICOM cine the sector's
square is ~450 pixels a side, and those steps ran there: 16× the pixels, and distances
a quarter as long as they were chosen for. Frames larger than the network's grid are now
post-processed on it (:func:`work_shape`, :func:`frames_on_grid`: resized as the network
sees them), and the finished labels brought to the frames' size
(:func:`labels_to_shape`: each class's indicator resized bilinearly, the likeliest class
kept, so borders run smoothly between the grid's pixels instead of in steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.sequence import LabelClass

#: frames resized at a time (bounds the memory of the full-size class maps)
CHUNK = 16


def work_shape(
    frame_shape: tuple[int, int], grid_shape: tuple[int, int]
) -> tuple[int, int] | None:
    """The network's ``grid_shape`` when frames of ``frame_shape`` are larger than it
    (either side), else None (post-processed at their own size)."""
    if frame_shape[0] <= grid_shape[0] and frame_shape[1] <= grid_shape[1]:
        return None
    return int(grid_shape[0]), int(grid_shape[1])


def frames_on_grid(frames: Any, shape: tuple[int, int]) -> np.ndarray:
    """(T, H, W) frames (numpy or lazy) → (T, h, w) float32, resized as the network's input
    is (bilinear, pixel areas aligned, anti-aliased), ``CHUNK`` frames at a time."""
    out = np.empty((int(frames.shape[0]), *shape), dtype=np.float32)
    for lo in range(0, out.shape[0], CHUNK):
        chunk = frames[lo : lo + CHUNK]
        compute = getattr(chunk, "compute", None)
        if compute is not None:  # a lazy clip: decoded here, on the calling thread
            chunk = compute(scheduler="synchronous")
        tensor = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))[:, None]
        out[lo : lo + CHUNK] = F.interpolate(
            tensor, size=shape, mode="bilinear", align_corners=False, antialias=True
        )[:, 0].numpy()
    return out


def labels_to_shape(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(T, h, w) uint8 labels → (T, H, W) uint8: each class's indicator resized bilinearly
    (pixel areas aligned, as the network's probabilities are), the largest one kept."""
    out = np.empty((labels.shape[0], *shape), dtype=np.uint8)
    classes = torch.arange(len(LabelClass), dtype=torch.uint8)[None, :, None, None]
    with torch.no_grad():
        for lo in range(0, labels.shape[0], CHUNK):
            small = torch.from_numpy(np.ascontiguousarray(labels[lo : lo + CHUNK]))[:, None]
            indicator = (small == classes).to(torch.float32)
            large = F.interpolate(indicator, size=shape, mode="bilinear", align_corners=False)
            out[lo : lo + CHUNK] = large.max(dim=1).indices.to(torch.uint8).numpy()
    return out


__all__ = ["CHUNK", "frames_on_grid", "labels_to_shape", "work_shape"]
