"""An image layer's frames for a dock, cached, a lazily opened clip decoded in a worker.

A lazy (dask) cine decoded on the GUI thread froze napari for as long as the decode took
(~0.5 s for a 150-frame JPEG cine); :class:`LayerFrames` hands it to a worker and runs the
action that asked for the frames again once they are there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def unit_range_frames(data: Any) -> np.ndarray:
    """(T, H, W) float32 frames of a numpy or lazy layer, divided by their maximum when it
    is over 1 (8-bit layers)."""
    from echo_napari.io.frame_source import read_frames

    frames = read_frames(data)
    top = float(frames.max()) if frames.size else 1.0
    return frames / top if top > 1.0 else frames


class LayerFrames:
    """The frames of whichever layer is asked for, cached by the identity of its data.

    Parameters
    ----------
    current_data : callable returning the selected layer's data now (None: no layer), to
        drop a decode that finished after another layer was chosen
    on_error : callable(message) for a decode that failed
    """

    def __init__(self, current_data: Callable[[], Any], on_error: Callable[[str], None]) -> None:
        self._current_data = current_data
        self._on_error = on_error
        self._cache: tuple[int, np.ndarray] | None = None
        #: id of the lazy data being decoded, its worker (kept referenced while it runs)
        #: and what to run when it is done
        self._decoding: int | None = None
        self._worker = None
        self._then: Callable[[], None] | None = None

    def clear(self) -> None:
        """Forget the cached frames (the layer choice changed)."""
        self._cache = None

    def get(self, data: Any, then: Callable[[], None]) -> np.ndarray | None:
        """The frames of ``data`` in [0, 1]; None while a lazy clip is decoded in a worker,
        after which ``then`` is called (on the GUI thread)."""
        key = id(data)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if isinstance(data, np.ndarray):
            self._cache = (key, unit_range_frames(data))
            return self._cache[1]
        self._then = then
        if self._decoding != key:
            from napari.qt.threading import create_worker

            self._decoding = key
            worker = create_worker(unit_range_frames, data)
            worker.returned.connect(lambda frames, key=key: self._on_decoded(key, frames))
            worker.errored.connect(lambda exc: self._on_failed(key, exc))
            self._worker = worker
            worker.start()
        return None

    def _on_decoded(self, key: int, frames: np.ndarray) -> None:
        self._decoding = None
        if id(self._current_data()) != key:
            return  # another layer was chosen meanwhile
        self._cache = (key, frames)
        then, self._then = self._then, None
        if then is not None:
            then()

    def _on_failed(self, key: int, exc: BaseException) -> None:
        if self._decoding == key:
            self._decoding = None
        self._then = None
        self._on_error(f"the clip could not be decoded: {exc}")


__all__ = ["LayerFrames", "unit_range_frames"]
