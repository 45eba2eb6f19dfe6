"""A scanner's screen around echo frames: what a DICOM cine or a screen recording looks like.

Real scanner exports are not EchoNet's tidy squares: the sector sits somewhere in an
800 × 600 screen among patient text, a logo, a grey-scale bar, depth ticks, a clock and a
sweeping ECG trace. :func:`scanner_screen` puts any (T, h, w) clip into such a screen, so
that :mod:`echo_napari.field_of_view` can be tested and benchmarked on real echo frames
(`benchmarks/scanner_screen.py`) without shipping scanner files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from skimage.transform import resize

from echo_napari.errors import SequenceError


@dataclass(frozen=True)
class Placement:
    """Where the clip went: frame pixel (y, x) = ``top + y_clip * scale``, ``left + ...``."""

    top: int
    left: int
    scale: float
    shape: tuple[int, int]


def _text_layer(shape: tuple[int, int], lines: list[tuple[int, int, str]]) -> np.ndarray:
    image = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(image)
    for y, x, text in lines:
        draw.text((x, y), text, fill=230)
    return np.asarray(image, dtype=np.float32) / 255.0


def _ecg(n: int, beat: float, phase: float) -> np.ndarray:
    """A crude ECG (P, QRS, T bumps), ``n`` samples, ``beat`` samples per beat."""
    t = ((np.arange(n) + phase) % beat) / beat
    bump = lambda c, w, h: h * np.exp(-0.5 * ((t - c) / w) ** 2)  # noqa: E731
    return (
        bump(0.1, 0.025, 0.15)
        + bump(0.25, 0.008, 1.0)
        - bump(0.28, 0.01, 0.3)
        + bump(0.5, 0.05, 0.3)
    )


def scanner_screen(
    frames: np.ndarray,
    shape: tuple[int, int] = (600, 800),
    scale: float = 4.0,
    top: int = 70,
    left: int | None = None,
    beat_frames: float = 45.0,
) -> tuple[np.ndarray, Placement]:
    """Put a clip into a scanner-like screen.

    Parameters
    ----------
    frames : (T, h, w) float32 in [0, 1], e.g. an EchoNet video
    shape : (H, W) of the screen, pixels
    scale : the clip is enlarged by this factor (bilinear)
    top, left : where its corner goes; ``left`` default: centred
    beat_frames : frames per beat of the drawn ECG

    Returns
    -------
    screen : (T, H, W) float32 in [0, 1]: black, static text top left and right, a logo, a
        grey-scale bar and depth ticks beside the clip, a clock that changes every 25 frames
        and an ECG trace swept along the bottom with a moving gap, all outside the clip
    placement : where the clip is
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise SequenceError(f"frames must be (T, h, w); got shape {frames.shape}")
    n, h, w = frames.shape
    size = (int(round(h * scale)), int(round(w * scale)))
    if left is None:
        left = (shape[1] - size[1]) // 2
    if top < 0 or left < 0 or top + size[0] > shape[0] - 60 or left + size[1] > shape[1] - 40:
        raise SequenceError(f"a {size} clip at ({top}, {left}) does not fit a {shape} screen")
    screen = np.zeros((n, *shape), dtype=np.float32)
    for t in range(n):
        screen[t, top : top + size[0], left : left + size[1]] = resize(
            frames[t], size, order=1, preserve_range=True, anti_aliasing=False
        )
    still = _text_layer(
        shape,
        [
            (6, 8, "ECHO LAB   ADULT ECHO   S5-1"),
            (22, 8, "PATIENT 0000   27/11/2026"),
            (6, shape[1] - 150, "MI 1.2  TIS 0.4"),
            (22, shape[1] - 150, "52 Hz  16 cm"),
            (top + 20, 8, "2D"),
            (top + 36, 8, "Gn 54"),
            (top + 52, 8, "C 50 / P Med"),
            (top + 68, 8, "HGen"),
        ],
    )
    bar = np.linspace(1.0, 0.0, size[0] // 2, dtype=np.float32)[:, None]
    still[top : top + bar.shape[0], shape[1] - 22 : shape[1] - 12] = bar
    for depth in range(top, top + size[0], max(size[0] // 8, 1)):
        still[depth : depth + 2, left + size[1] + 6 : left + size[1] + 12] = 0.9
    screen = np.maximum(screen, still[None])
    ecg_top, ecg_height = shape[0] - 55, 40
    columns = np.arange(30, shape[1] - 30)
    trace = _ecg(columns.size, beat_frames * 8.0, 0.0)
    rows = (ecg_top + ecg_height * (1.0 - (trace - trace.min()) / np.ptp(trace))).astype(int)
    for t in range(n):
        sweep = (t * 8) % columns.size  # the trace is redrawn left to right, 8 px per frame
        shown = np.abs(np.arange(columns.size) - sweep) > 6
        screen[t, rows[shown], columns[shown]] = 0.75
        clock = _text_layer((16, 80), [(0, 0, f"0:0{t // 25 % 10}:{t % 25 * 2:02d}")])
        screen[t, 40:56, shape[1] - 110 : shape[1] - 30] = np.maximum(
            screen[t, 40:56, shape[1] - 110 : shape[1] - 30], clock
        )
    return screen, Placement(top=top, left=left, scale=scale, shape=size)


__all__ = ["Placement", "scanner_screen"]
