"""The imaging sector of a scanner's frames, and the EchoNet-like square cut around it.

Scanner output (a DICOM cine, a screen-recorded MP4) shows the ultrasound sector inside a
larger frame, with text, a logo, a grey-scale bar and an ECG trace around it. The bundled
models were trained on EchoNet-Dynamic's framing: a square whose side is about the
sector's radius, the sector's apex at the top centre (on the 24 shared EchoNet videos the
apex sits 7 of 112 pixels below the top, the sector spans 90° and reaches the bottom
edge). Fed a whole 800 × 600 screen, the network sees a heart a third of the size it knows,
squeezed sideways, among letters. :func:`find_field_of_view` finds the sector and
:class:`FieldOfView` cuts that square out (pixels outside the sector set to 0) and puts
labels drawn on it back into the whole frame.

Some sites display the apical views apex down (the probe at the bottom of the screen, the
atria at the top). The fan then widens upwards; :func:`find_field_of_view` sees that and
its square is cut upside down (``apex_down``), so the models see the apex at the top as
they were trained, and labels and fields go back the way the clip shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from echo_napari.errors import SequenceError

#: frames sampled (evenly over the clip) to find the sector
SAMPLE_FRAMES = 32
#: grey (0-1) standard deviation over time above which a pixel is live image, as a fraction
#: of the 99th percentile of the frame's standard deviations
LIVE_FRACTION = 0.05
#: grey level (0-1) above which a pixel of a single frame counts as image
STILL_LEVEL = 0.04
#: opening radius, as a fraction of the frame's shorter side: removes text strokes, the
#: ECG trace and tick marks, keeps the sector
OPENING_FRACTION = 0.015
#: the square's top lies this fraction of its side above the sector's top (EchoNet: 7/112)
TOP_MARGIN = 0.065
#: a square covering at least this share of the frame (and the frame itself) is the frame
WHOLE_FRAME_IOU = 0.85
#: a live region covering this share of the frame is no sector inside a screen (a fan
#: fills at most ~80 % of its bounding square): the frame is used as it is
WHOLE_FRAME_SECTOR = 0.9
#: a mask whose width grows by less than this many pixels per row of depth is no fan (a
#: 90° sector grows by 2, a linear probe's rectangle by 0)
FAN_SLOPE = 0.2


@dataclass(frozen=True)
class FieldOfView:
    """Where the sector is in a frame and the square cut around it.

    Attributes
    ----------
    sector : (H, W) bool, the imaging sector (convex)
    top, left : int, the square's corner in frame pixels (may lie outside the frame)
    side : int, the square's side, frame pixels
    apex_down : bool, the fan's apex is at the bottom of the screen: the square is cut
        upside down (:meth:`crop`) and put back the right way up (:meth:`place`)
    """

    sector: np.ndarray
    top: int
    left: int
    side: int
    apex_down: bool = False

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.sector.shape)

    @property
    def apex_point(self) -> tuple[float, float]:
        """(row, col) in frame pixels of the fan's apex, where the probe is:
        ``TOP_MARGIN`` of the side from the square's apex end (its bottom when
        :attr:`apex_down`), in its middle column."""
        depth = TOP_MARGIN * self.side
        row = self.top + self.side - 1 - depth if self.apex_down else self.top + depth
        return float(row), self.left + self.side / 2.0

    @property
    def is_whole(self) -> bool:
        """True when the frames are used as they are: the square is (nearly) the frame, or
        the live region fills the frame (:data:`WHOLE_FRAME_SECTOR`), and the apex is at
        the top. A whole frame shown apex down is only turned upside down (:meth:`crop`)."""
        return self.crops_whole_frame and not self.apex_down

    @property
    def crops_whole_frame(self) -> bool:
        """True when :meth:`crop` gives the whole frame (turned upside down when
        :attr:`apex_down`), no square cut out of it: the square is (nearly) the frame, or
        the live region fills it."""
        if self.sector.mean() >= WHOLE_FRAME_SECTOR:
            return True
        height, width = self.frame_shape
        rows = max(0, min(self.top + self.side, height) - max(self.top, 0))
        cols = max(0, min(self.left + self.side, width) - max(self.left, 0))
        overlap = rows * cols
        union = height * width + self.side**2 - overlap
        return overlap / union >= WHOLE_FRAME_IOU

    def _spans(self) -> tuple[slice, slice, tuple[tuple[int, int], tuple[int, int]]]:
        """The frame's part of the square and the padding around it, per axis."""
        height, width = self.frame_shape
        r0, c0 = max(self.top, 0), max(self.left, 0)
        r1, c1 = min(self.top + self.side, height), min(self.left + self.side, width)
        pad = (
            (r0 - self.top, self.top + self.side - r1),
            (c0 - self.left, self.left + self.side - c1),
        )
        return slice(r0, r1), slice(c0, c1), pad

    def crop(self, frames: Any) -> Any:
        """The square of every frame, outside the sector and the frame set to 0.

        Parameters
        ----------
        frames : (T, H, W) numpy or lazy (dask) array: frames, or labels

        Returns
        -------
        (T, side, side), of the same dtype and kind (lazy stays lazy); upside down when
        :attr:`apex_down`, so the apex is at the top (a frame that is the square already:
        the whole frame, (T, H, W), upside down)
        """
        if self.apex_down and self.crops_whole_frame:
            return _upside_down(frames)
        rows, cols, pad = self._spans()
        part = frames[:, rows, cols] * self.sector[rows, cols][None].astype(frames.dtype)
        if any(any(p) for p in pad):
            widths = ((0, 0), *pad)
            if isinstance(part, np.ndarray):
                part = np.pad(part, widths)
            else:
                import dask.array as da

                part = da.pad(part, widths)
        return _upside_down(part) if self.apex_down else part

    def place(self, square: np.ndarray) -> np.ndarray:
        """Any per-pixel array of the square, in the whole frame, 0 outside the square.

        Parameters
        ----------
        square : (..., side, side), or (..., H, W) for a whole frame shown apex down: as
            :meth:`crop` gives it (upside down when :attr:`apex_down`); a displacement
            field's row component must be negated by the caller when :attr:`apex_down`
            (only its place is turned here)

        Returns
        -------
        (..., H, W), same dtype
        """
        square = np.asarray(square)
        if self.apex_down and self.crops_whole_frame and square.shape[-2:] == self.frame_shape:
            return np.ascontiguousarray(square[..., ::-1, :])
        if square.shape[-2:] != (self.side, self.side):
            raise SequenceError(
                f"an array of {square.shape[-2:]} pixels does not fit the {self.side}-pixel square"
            )
        if self.apex_down:
            square = np.ascontiguousarray(square[..., ::-1, :])
        rows, cols, pad = self._spans()
        out = np.zeros((*square.shape[:-2], *self.frame_shape), dtype=square.dtype)
        out[..., rows, cols] = square[
            ..., pad[0][0] : self.side - pad[0][1], pad[1][0] : self.side - pad[1][1]
        ]
        return out

    def paste(self, labels: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """Labels drawn on the square, back in the whole frame.

        Parameters
        ----------
        labels : (T, side, side) uint8
        into : (T, H, W) uint8, optional: labels to write over (only the square's part of
            the frame changes); default zeros, and 0 outside the sector

        Returns
        -------
        (T, H, W) uint8
        """
        whole = self.place(labels)
        if self.apex_down and self.crops_whole_frame:
            return whole
        if into is None:
            return whole * self.sector[None].astype(whole.dtype)
        rows, cols, _ = self._spans()
        out = np.array(into, copy=True)
        out[:, rows, cols] = whole[:, rows, cols]
        return out


def square_apex_point(shape: tuple[int, int]) -> tuple[float, float]:
    """(row, col) pixels of the fan's apex in a frame of ``shape`` (H, W) that is the
    square around the sector, apex up (EchoNet's frames, :meth:`FieldOfView.crop`'s
    output), at any grid: as :attr:`FieldOfView.apex_point` of that square."""
    return TOP_MARGIN * shape[0], shape[1] / 2.0


def _upside_down(frames: Any) -> Any:
    """(T, H, W) frames flipped top to bottom; numpy copies stay contiguous (torch reads
    them without a copy), lazy arrays stay lazy."""
    if isinstance(frames, np.ndarray):
        return np.ascontiguousarray(frames[:, ::-1])
    return frames[:, ::-1]


def _sample(frames: Any) -> np.ndarray:
    n = int(frames.shape[0])
    index = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_FRAMES)).round().astype(int))
    return np.asarray(frames[index], dtype=np.float32)


def _largest_convex_piece(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import convex_hull_image, disk

    radius = max(1, int(round(OPENING_FRACTION * min(mask.shape))))
    opened = ndimage.binary_opening(mask, structure=disk(radius))
    pieces, n = ndimage.label(opened)
    if n == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(pieces.ravel())[1:]
    return convex_hull_image(pieces == 1 + int(np.argmax(sizes)))


def sector_mask(frames: Any) -> np.ndarray:
    """The imaging sector: the largest piece of the frame whose grey changes over the clip
    (text, logos, scale bars stay still), thin strokes (an ECG trace, a clock) removed, its
    convex hull. A single frame, or a clip that does not change, falls back to the largest
    piece brighter than :data:`STILL_LEVEL`.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1], numpy or lazy (dask) array

    Returns
    -------
    (H, W) bool; all True when no sector stands out (a blank clip)
    """
    sample = _sample(frames)
    mask = np.zeros(sample.shape[1:], bool)
    if sample.shape[0] > 1:
        spread = sample.std(axis=0)
        top = float(np.percentile(spread, 99))
        if top > 1e-3:
            mask = _largest_convex_piece(spread > LIVE_FRACTION * top)
    if not mask.any():
        mask = _largest_convex_piece(sample.max(axis=0) > STILL_LEVEL)
    if not mask.any():
        mask = np.ones(sample.shape[1:], bool)
    return mask


def sector_apex_row(sector: np.ndarray) -> float:
    """Row of a fan's apex: where its width, fitted as a straight line over the upper half
    of its rows (those not cut by the frame's sides), falls to zero. The top of the mask
    is a poor guide: the near field by the probe is often still or dark, so the live
    mask starts some rows below the apex. A mask that does not widen with depth (a
    linear probe's rectangle) has its top row.

    Parameters
    ----------
    sector : (H, W) bool, convex

    Returns
    -------
    apex row, pixels (may be above the frame: < 0), never below the mask's top row
    """
    rows = np.flatnonzero(sector.any(axis=1))
    upper = rows[: max(rows.size // 2, 2)]
    left = np.argmax(sector[upper], axis=1)
    right = sector.shape[1] - 1 - np.argmax(sector[upper, ::-1], axis=1)
    free = (left > 0) & (right < sector.shape[1] - 1)
    if free.sum() < 4:
        return float(rows[0])
    slope, intercept = np.polyfit(upper[free], (right - left + 1)[free], 1)
    if slope < FAN_SLOPE:  # not a fan
        return float(rows[0])
    return min(float(rows[0]), -intercept / slope)


def fan_points_up(sector: np.ndarray) -> bool:
    """True when a fan narrows downwards: its apex (the probe) is at the bottom of the
    screen, as some sites display the apical views. Judged from the straight sides only:
    the width's slope over the middle half of the mask's rows (the arcs at either end
    cut off), rows cut by the frame's sides left out, is below ``-FAN_SLOPE``.

    Parameters
    ----------
    sector : (H, W) bool, convex
    """
    rows = np.flatnonzero(sector.any(axis=1))
    middle = rows[rows.size // 4 : rows.size - rows.size // 4]
    left = np.argmax(sector[middle], axis=1)
    right = sector.shape[1] - 1 - np.argmax(sector[middle, ::-1], axis=1)
    free = (left > 0) & (right < sector.shape[1] - 1)
    if free.sum() < 4:
        return False
    slope = np.polyfit(middle[free], (right - left + 1)[free], 1)[0]
    return bool(slope <= -FAN_SLOPE)


def find_field_of_view(frames: Any) -> FieldOfView:
    """The sector of a clip and the EchoNet-like square around it.

    The square's side is the depth from the sector's apex (:func:`sector_apex_row`) to
    its lowest row divided by ``1 - TOP_MARGIN`` (a 90° sector cut off at the bottom, as
    EchoNet frames are, is about as deep as its radius), its top ``TOP_MARGIN`` of the
    side above the apex, centred on the sector's middle column. A fan with its apex at the
    bottom (:func:`fan_points_up`) is measured upside down and its square is cut upside
    down (``apex_down``).

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1], numpy or lazy (dask) array

    Returns
    -------
    FieldOfView
    """
    if len(getattr(frames, "shape", ())) != 3 or 0 in frames.shape:
        raise SequenceError(f"frames must be (T, H, W); got shape {getattr(frames, 'shape', ())}")
    sector = sector_mask(frames)
    apex_down = fan_points_up(sector)
    upright = sector[::-1] if apex_down else sector
    rows = np.flatnonzero(upright.any(axis=1))
    cols = np.flatnonzero(upright.any(axis=0))
    apex = sector_apex_row(upright)
    side = max(int(round((rows[-1] + 1 - apex) / (1.0 - TOP_MARGIN))), 1)
    top = int(round(apex - TOP_MARGIN * side))
    if apex_down:  # the square's top row, counted in the clip as it is shown
        top = sector.shape[0] - top - side
    left = int(round((cols[0] + cols[-1] + 1) / 2.0 - side / 2.0))
    return FieldOfView(sector=sector, top=top, left=left, side=side, apex_down=apex_down)


__all__ = ["FieldOfView", "fan_points_up", "find_field_of_view", "sector_apex_row", "sector_mask"]
