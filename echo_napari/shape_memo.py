"""Anatomical-check features of label frames seen before, found again by their pixels.

Undo and redo put back label frames the review has already scored; recomputing their
:class:`~echo_napari.metrics_plausibility.ShapeFeatures` costs ~1 ms a frame at 600 × 600
(100 ms for a whole-sequence undo of a 100-frame cine, on the GUI thread). Looking them
up by a SHA-1 digest costs less. The digest is taken over what the features are computed
from: the frame's labels as the checks measure them
(:func:`~echo_napari.metrics_plausibility.check_grid`, 160 pixels long for larger frames)
and whether the frame has any label, with the frame's shape, so frames of other sizes
never collide (150 frames of 600 × 800: ~0.25 ms a frame over every pixel, ~0.1 ms
over the grid).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from echo_napari.metrics_place import PLACE_GRID
from echo_napari.metrics_plausibility import ShapeFeatures, check_grid, grid_shape_features

#: Frames remembered (least recently used dropped first): ~200 bytes of features each
#: (the coarse LV grid packed to bits).
DEFAULT_CAPACITY = 8192


def frame_digests(labels: np.ndarray) -> list[bytes]:
    """SHA-1 of each frame's shape, whether it has any label and its labels on the checks'
    grid (all its features depend on); ``labels`` (N, H, W) uint8."""
    labels = np.asarray(labels)
    return _digests(labels.shape[1:], *_measured(labels))


def _measured(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the features of (N, H, W) ``labels`` are computed from: whether each frame has
    any label ((N,) bool) and the labels on the checks' grid ((N, h, w) uint8)."""
    labelled = labels.reshape(labels.shape[0], -1).any(axis=1)
    return labelled, np.ascontiguousarray(check_grid(labels))


def _digests(shape: tuple[int, ...], labelled: np.ndarray, grid: np.ndarray) -> list[bytes]:
    prefix = repr(tuple(shape)).encode()
    return [
        hashlib.sha1(prefix + (b"1" if flag else b"0") + memoryview(frame).cast("B")).digest()
        for flag, frame in zip(labelled, grid, strict=True)
    ]


class ShapeMemo:
    """Least-recently-used store of per-frame shape features keyed by frame digest.

    Parameters
    ----------
    capacity : frames remembered at most
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = int(capacity)
        self._rows: OrderedDict[bytes, tuple] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def features(self, labels: np.ndarray) -> tuple[ShapeFeatures, int]:
        """Shape features of ``labels`` (N, H, W) uint8: remembered frames looked up, the
        others computed (from the checks' grid made for the digests) and remembered.

        Returns
        -------
        (features of the N frames, how many were found in the memo)
        """
        labels = np.asarray(labels)
        labelled, grid = _measured(labels)
        keys = _digests(labels.shape[1:], labelled, grid)
        out = ShapeFeatures.blank(len(keys))
        missing = []
        for i, key in enumerate(keys):
            row = self._rows.get(key)
            if row is None:
                missing.append(i)
                continue
            self._rows.move_to_end(key)
            out.labelled[i], out.lv_pixels[i], out.solidity[i] = row[0], row[1], row[2]
            out.la_direction[i] = row[3:5]
            out.lv_grid[i] = np.unpackbits(row[5], count=PLACE_GRID**2).reshape(
                PLACE_GRID, PLACE_GRID
            )
            out.la_enclosed[i] = row[6]
            out.la_pixels[i] = row[7]
            out.lv_length[i] = row[8]
        if missing:
            index = np.array(missing)
            # from the grid already made for the digests, not the frames again
            computed = grid_shape_features(grid[index], labelled[index])
            out.update(index, computed)
            for j, i in enumerate(missing):
                self._rows[keys[i]] = (
                    bool(computed.labelled[j]),
                    float(computed.lv_pixels[j]),
                    float(computed.solidity[j]),
                    *(float(v) for v in computed.la_direction[j]),
                    np.packbits(computed.lv_grid[j]),
                    float(computed.la_enclosed[j]),
                    float(computed.la_pixels[j]),
                    float(computed.lv_length[j]),
                )
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)
        return out, len(keys) - len(missing)
