"""Bilinear sampling with precomputable weights (faster than repeated
``scipy.ndimage.map_coordinates`` calls when many channels or frames share the points)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bilinear:
    """Indices and weights of bilinear samples at fractional (row, col) positions of an
    ``(H, W)`` grid; positions outside are clamped to the border (``mode="nearest"``)."""

    index: np.ndarray  # (4, N) intp flat indices
    weight: np.ndarray  # (4, N) float32

    @classmethod
    def at(cls, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Bilinear:
        """Sampling plan for fractional pixel positions (any shape, flattened)."""
        h, w = shape
        r = np.clip(np.asarray(rows, dtype=np.float32).ravel(), 0, h - 1)
        c = np.clip(np.asarray(cols, dtype=np.float32).ravel(), 0, w - 1)
        r0 = np.minimum(r.astype(np.int64), h - 2)
        c0 = np.minimum(c.astype(np.int64), w - 2)
        fr, fc = r - r0, c - c0
        base = r0 * w + c0
        index = np.stack([base, base + 1, base + w, base + w + 1])
        weight = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
        return cls(index=index, weight=weight.astype(np.float32))

    def __call__(self, stack: np.ndarray) -> np.ndarray:
        """Sample ``(..., H, W)`` → ``(..., N)``."""
        lead = stack.shape[:-2]
        flat = np.ascontiguousarray(stack).reshape(-1, stack.shape[-2] * stack.shape[-1])
        out = np.empty(
            (flat.shape[0], self.index.shape[1]), dtype=np.result_type(stack, np.float32)
        )
        for k, channel in enumerate(flat):
            # np.take on a 1-D array is several times faster than fancy indexing.
            out[k] = (np.take(channel, self.index) * self.weight).sum(axis=0)
        return out.reshape(*lead, self.index.shape[1])
