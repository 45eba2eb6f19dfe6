"""Where the windows in time of a sliding-window prediction start, and how they blend.

The network sees windows of ``clip_len`` frames; their class probabilities are blended
with Hann weights (sin²), so a frame near a window's edge counts less than one in its
middle. Played one way, windows overlap by half (:data:`ONE_WAY_OVERLAP`): every frame is
blended from two. Played both ways, each direction's windows do not overlap
(:data:`STAGGERED_OVERLAP`) and the backward ones are centred where the forward ones meet
(:func:`backward_offset`): every frame is still blended from two windows, one per
direction, whose weights add up to one, in the network time of one direction.
"""

from __future__ import annotations

import numpy as np

from echo_napari.errors import ModelError

#: Floor of the blending weight, so frames seen only near a window's edge still count.
_MIN_WEIGHT = 1e-3

#: window overlap of a one-way prediction: every frame blended from two windows
ONE_WAY_OVERLAP = 0.5

#: window overlap of each direction when both are averaged: the backward windows are
#: centred where the forward ones meet, so every frame is still blended from two windows
#: (one per direction) at half the network time of two passes of ``ONE_WAY_OVERLAP``.
STAGGERED_OVERLAP = 0.0


def window_stride(clip_len: int, overlap: float) -> int:
    """Frames between the starts of two windows of ``clip_len`` sharing ``overlap``."""
    if not 0.0 <= overlap < 1.0:
        raise ModelError(f"overlap must be in [0, 1); got {overlap}")
    return max(1, int(round(clip_len * (1.0 - overlap))))


def window_starts(n_frames: int, clip_len: int, overlap: float, offset: int = 0) -> list[int]:
    """Start indices of windows of ``clip_len`` covering ``n_frames`` (≥ clip_len) frames.

    ``offset`` shifts the regular starts by that many frames (a window at 0 is kept, so
    the first frames stay covered)."""
    stride = window_stride(clip_len, overlap)
    last = n_frames - clip_len
    starts = [0] + [s for s in range(offset % stride, last + 1, stride) if s > 0]
    if starts[-1] != last:
        starts.append(last)
    return starts


def backward_offset(n_frames: int, clip_len: int, overlap: float) -> int:
    """The ``offset`` of the backward pass's windows (on the reversed clip) that centres
    them where the forward windows meet: each frame's two Hann weights then add up to
    one, as two overlapping windows' do."""
    stride = window_stride(clip_len, overlap)
    return (max(n_frames, clip_len) - clip_len - stride // 2) % stride


def n_windows(n_frames: int, clip_len: int, overlap: float, offset: int = 0) -> int:
    """Number of windows one pass over ``n_frames`` frames evaluates."""
    return len(window_starts(max(n_frames, clip_len), clip_len, overlap, offset))


def blend_weights(clip_len: int) -> np.ndarray:
    """``(clip_len,)`` float32 Hann weights (sin²), floored at a small positive value."""
    pos = (np.arange(clip_len, dtype=np.float64) + 0.5) / clip_len
    return np.maximum(np.sin(np.pi * pos) ** 2, _MIN_WEIGHT).astype(np.float32)


__all__ = [
    "ONE_WAY_OVERLAP",
    "STAGGERED_OVERLAP",
    "backward_offset",
    "blend_weights",
    "n_windows",
    "window_starts",
    "window_stride",
]
