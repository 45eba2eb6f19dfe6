"""Frames decoded on demand: the array-like that backs a lazy (dask) sequence.

A long video or DICOM cine is opened in milliseconds and decoded frame by frame as napari
shows it or a job reads it, instead of all at once on File › Open (a 150-frame 800 × 600
cine is 290 MB of float32). Each reader subclasses :class:`FrameSource` with its own
one-frame decoder; :func:`lazy_frames` wraps it in a dask array of one chunk per frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Sequences whose decoded float32 frames exceed this many bytes are read lazily by default.
LAZY_THRESHOLD_BYTES = 256 * 1024**2


class FrameSource:
    """Random access to the grey frames of a file, one decoded frame at a time.

    Subclasses set ``path`` and ``shape`` ((T, H, W)) and implement :meth:`frame`.
    Indexing with ``source[t0:t1, y0:y1, x0:x1]`` returns float32 in [0, 1], so the object
    can back a :func:`dask.array.from_array`.
    """

    dtype = np.dtype(np.float32)
    ndim = 3
    path: Any
    shape: tuple[int, int, int]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W) float32 in [0, 1]."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = key[0], key[1:]
        single = isinstance(first, (int, np.integer))
        frames = [int(range(self.shape[0])[first])] if single else range(self.shape[0])[first]
        h, w = self.shape[1:]
        out = np.empty((len(frames), h, w), dtype=np.float32)
        for i, t in enumerate(frames):
            out[i] = self.frame(t)
        result = out[0] if single else out
        return result[rest] if rest else result


def lazy_frames(source: FrameSource) -> Any:
    """A dask array over ``source`` with one chunk per frame."""
    import dask.array as da

    return da.from_array(
        source,
        chunks=(1, *source.shape[1:]),
        name=f"frames-{source.path}-{id(source)}",
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0, 0, 0), dtype=np.float32),
    )


def read_frames(frames: Any) -> np.ndarray:
    """All of a numpy or lazy (dask) frame array, as (T, H, W) float32, decoded on the
    calling thread.

    dask's default scheduler would decode the chunks on a pool of threads; from a job's
    worker thread those threads contend with napari's GUI thread for the GIL, and Predict
    on a lazily opened 150-frame JPEG cine stalled the event loop for ~240 ms in about one
    run of four (``benchmarks/gui_latency.py`` part 4). One thread decodes a frame every
    few ms, so the whole clip still takes well under a second.
    """
    compute = getattr(frames, "compute", None)
    if compute is not None:
        frames = compute(scheduler="synchronous")
    return np.asarray(frames, dtype=np.float32)


def unit_grey_frames(frames: Any) -> np.ndarray:
    """:func:`read_frames`, divided by 255 when the values exceed 1 (an 8-bit image layer)."""
    array = read_frames(frames)
    if array.size and float(array.max()) > 1.0:
        array = array / np.float32(255.0)
    return array


__all__ = ["LAZY_THRESHOLD_BYTES", "FrameSource", "lazy_frames", "read_frames", "unit_grey_frames"]
