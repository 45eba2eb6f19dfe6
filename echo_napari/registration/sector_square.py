"""Registration of the square around the imaging sector only (a scanner's screen).

On a DICOM cine or a screen recording the sector is a part of the frame; a backend that
resizes the whole frame to its grid (DIRNet: 128 × 128) would spend most of its grid on
text and black and squeeze the heart sideways. :class:`SectorSquareBackend` gives the
backend the EchoNet-like square around the sector (:mod:`echo_napari.field_of_view`) at
the frame's own pixel size (turned apex up when the clip shows it apex down) and puts the
fields back in the whole frame (no displacement outside the square), so that propagation,
drift correction and *Repair implausible* on a screen see what they see on an EchoNet
video.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from echo_napari.field_of_view import FieldOfView, find_field_of_view


class SectorSquareBackend:
    """A registration backend restricted to a field of view's square.

    Parameters
    ----------
    inner : RegistrationBackend
    view : FieldOfView of the frames it will be given
    """

    def __init__(self, inner: Any, view: FieldOfView) -> None:
        self.inner = inner
        self.view = view
        self.name = getattr(inner, "name", "")

    def register_pairs(
        self, fixed: np.ndarray, moving: np.ndarray, progress: Any = None, **options: Any
    ) -> np.ndarray:
        """(N, 2, H, W) float32 pull fields in pixels (see ``RegistrationBackend``); zero
        outside the square."""
        fields = self.inner.register_pairs(
            np.asarray(self.view.crop(np.asarray(fixed, dtype=np.float32))),
            np.asarray(self.view.crop(np.asarray(moving, dtype=np.float32))),
            progress=progress,
            **options,
        )
        fields = np.array(fields, dtype=np.float32)
        if self.view.apex_down:  # registered upside down: a move down there is one up here
            fields[:, 0] *= -1.0
        return self.view.place(fields)

    def __getattr__(self, name: str) -> Any:
        # device, size, card…: what callers read from the backend they chose
        return getattr(self.inner, name)


def on_sector_square(backend: Any, frames: Any) -> Any:
    """``backend`` restricted to the square around the sector of ``frames`` when that
    square is not (nearly) the whole frame, else ``backend`` itself.

    Parameters
    ----------
    backend : RegistrationBackend
    frames : (T, H, W) float32 in [0, 1], the clip the backend will be given pairs of
    """
    if isinstance(backend, SectorSquareBackend):
        return backend
    view = find_field_of_view(frames)
    return backend if view.is_whole else SectorSquareBackend(backend, view)


__all__ = ["SectorSquareBackend", "on_sector_square"]
