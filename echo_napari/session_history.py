"""Undo/redo history of a session as sparse frame diffs, with a memory cap.

A :class:`Change` holds, per changed frame, only the pixels that changed (flat indices,
old and new values) and the frame's old and new provenance records, plus the keyframe set
and ED/ES before and after when those changed. Memory is ~9 bytes per changed pixel,
so a brush stroke costs kilobytes, not a copy of the sequence. :class:`History` drops the
oldest changes once the total exceeds its cap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from echo_napari.sequence import FrameProvenance


@dataclass(frozen=True)
class FrameRecord:
    """Who and what last set one frame's labels.

    ``time`` unix seconds (NaN = never changed); ``author`` free text.
    """

    provenance: FrameProvenance
    time: float
    author: str


@dataclass(frozen=True)
class FrameDiff:
    """The pixels of one frame that a change altered.

    ``index`` (N,) int32 flat pixel indices into the (H, W) frame; ``old``, ``new`` (N,)
    uint8 label values before and after.
    """

    frame: int
    index: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, bytes."""
        return int(self.index.nbytes + self.old.nbytes + self.new.nbytes)


@dataclass(frozen=True)
class Change:
    """One undoable operation.

    Parameters
    ----------
    operation : "brush", "propagate", "predict", "accept", "keyframes", "phase", …
    revision : the session revision this change produced
    diffs : label changes, one per frame whose pixels changed
    records : {frame: (old, new)} provenance records of frames whose record changed
    keyframes : (old, new) keyframe sets, or None when unchanged
    phases : ((old ED, old ES), (new ED, new ES)), or None when unchanged
    """

    operation: str
    revision: int
    diffs: tuple[FrameDiff, ...]
    records: dict[int, tuple[FrameRecord, FrameRecord]]
    keyframes: tuple[frozenset[int], frozenset[int]] | None
    phases: tuple[tuple[int | None, int | None], tuple[int | None, int | None]] | None

    @property
    def frames(self) -> np.ndarray:
        """(N,) int64 sorted frames whose labels or provenance changed."""
        touched = {d.frame for d in self.diffs} | set(self.records)
        return np.array(sorted(touched), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Approximate memory held, bytes (pixel diffs + 200 bytes per record)."""
        keys = 0
        if self.keyframes is not None:
            keys = 8 * (len(self.keyframes[0]) + len(self.keyframes[1]))
        return sum(d.nbytes for d in self.diffs) + 200 * len(self.records) + keys + 200


def diff_frame(frame: int, old: np.ndarray, new: np.ndarray) -> FrameDiff | None:
    """Sparse difference of two (H, W) uint8 frames, None when equal."""
    flat_old, flat_new = old.reshape(-1), new.reshape(-1)
    index = np.flatnonzero(flat_old != flat_new)
    if index.size == 0:
        return None
    return FrameDiff(
        int(frame), index.astype(np.int32), flat_old[index].copy(), flat_new[index].copy()
    )


class History:
    """Bounded undo and redo stacks of :class:`Change`.

    Parameters
    ----------
    max_bytes : memory cap over both stacks; the oldest undo steps are dropped first
        (the newest change is kept even when alone it exceeds the cap).
    """

    def __init__(self, max_bytes: int = 64 * 1024**2) -> None:
        self.max_bytes = int(max_bytes)
        self._undo: deque[Change] = deque()
        self._redo: list[Change] = []
        self._bytes = 0
        self.dropped = 0

    @property
    def nbytes(self) -> int:
        """Memory held by both stacks, bytes."""
        return self._bytes

    @property
    def can_undo(self) -> bool:
        """True when there is a change to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone change to redo."""
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)

    def push(self, change: Change) -> None:
        """Record a new change; clears the redo stack and enforces the cap."""
        self._bytes -= sum(c.nbytes for c in self._redo)
        self._redo.clear()
        self._undo.append(change)
        self._bytes += change.nbytes
        self._trim()

    def pop_undo(self) -> Change | None:
        """The change to undo (moved onto the redo stack), or None."""
        if not self._undo:
            return None
        change = self._undo.pop()
        self._redo.append(change)
        return change

    def pop_redo(self) -> Change | None:
        """The change to redo (moved back onto the undo stack), or None."""
        if not self._redo:
            return None
        change = self._redo.pop()
        self._undo.append(change)
        return change

    def clear(self) -> None:
        """Forget everything."""
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0

    def _trim(self) -> None:
        while self._bytes > self.max_bytes and len(self._undo) > 1:
            self._bytes -= self._undo.popleft().nbytes
            self.dropped += 1
