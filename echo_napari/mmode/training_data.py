"""Training M-modes cut from simulated sequences along random lines through the LV.

The simulator's labels are exact in every frame, so the band sampled along the same line
is exact ground truth. Appearance follows the simulator's per-seed randomisation plus
random SNR, dropout, heart rate and frame rate (which ``simulate_sequence`` keeps fixed).
Only ``train`` seeds are used for training (see :mod:`echo_napari.simulate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.mmode.sampling import MModeLine, _clip_segment, lv_axis, sample_mmode
from echo_napari.sequence import EchoSequence, LabelClass
from echo_napari.simulate import SimulationParams, simulate_sequence

#: Training strips need the band in at least this fraction of their columns.
MIN_BAND_COLUMNS = 0.25


@dataclass(frozen=True)
class StripSample:
    """One training strip.

    Attributes
    ----------
    image : (D, N) float32 in [0, 1]
    band : (D, N) uint8, exact LV band
    depth_step_mm : float
    """

    image: np.ndarray
    band: np.ndarray
    depth_step_mm: float


def random_params(
    rng: np.random.Generator, base: SimulationParams | None = None
) -> SimulationParams:
    """Simulation parameters with random SNR, dropout, heart rate, EF and frame time
    (14–26 ms, around EchoNet's 20 ms) for 1.5 beats."""
    base = base or SimulationParams()
    heart_rate = float(rng.uniform(50.0, 110.0))
    frame_time = float(rng.uniform(14.0, 26.0))
    per_cycle = int(np.clip(round(60000.0 / heart_rate / frame_time), 20, 80))
    return replace(
        base,
        heart_rate_bpm=heart_rate,
        frames_per_cycle=per_cycle,
        n_cycles=1.5,
        snr_db=float(rng.uniform(8.0, 30.0)),
        dropout=float(rng.uniform(0.0, 0.7)),
        jitter_px=float(rng.uniform(0.0, 1.0)),
        ef_range=(0.2, 0.75),
    )


def random_line(
    cavity: np.ndarray, rng: np.random.Generator, max_angle_deg: float = 35.0
) -> MModeLine:
    """A random line across the LV cavity: roughly perpendicular to its long axis, between
    15 % and 70 % of its length from the base, long enough to include both walls."""
    centroid, axis, length = lv_axis(cavity)
    coords = np.argwhere(cavity) - centroid
    along = coords @ axis
    ends = [centroid + along.min() * axis, centroid + along.max() * axis]
    base, apex = sorted(ends, key=lambda p: -float(p[0]))
    centre = base + rng.uniform(0.15, 0.7) * (apex - base)
    angle = math.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    normal = np.array([-axis[1], axis[0]])
    direction = math.cos(angle) * normal + math.sin(angle) * axis
    centre = centre + rng.uniform(-3.0, 3.0) * axis
    h, w = cavity.shape
    half_a = rng.uniform(0.35, 0.8) * max(h, w)
    half_b = rng.uniform(0.35, 0.8) * max(h, w)
    p0, p1 = _clip_segment(centre - half_a * direction, centre + half_b * direction, h, w)
    if rng.uniform() < 0.5:
        p0, p1 = p1, p0
    return MModeLine(float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1]))


def strips_from_sequence(
    sequence: EchoSequence, rng: np.random.Generator, n_lines: int
) -> list[StripSample]:
    """``n_lines`` random M-modes (with exact bands) from one labelled sequence."""
    if sequence.labels is None or sequence.spacing is None:
        raise SequenceError("training strips need a labelled sequence with a pixel spacing")
    frames = sequence.frames_array()
    ed = sequence.ed_index or 0
    cavity = sequence.labels[ed] == LabelClass.LV_CAVITY
    out = []
    for _ in range(n_lines):
        line = random_line(cavity, rng)
        step = float(rng.uniform(0.8, 1.5))
        try:
            strip = sample_mmode(
                frames, line, sequence.spacing, sequence.frame_time_ms, sequence.labels, step=step
            )
        except SequenceError:
            continue
        # Lines that leave the cavity during part of the cycle (near the base or apex)
        # stay in: the network must learn columns with no band, as users draw such lines.
        if strip.band is not None and strip.band.any(axis=0).mean() >= MIN_BAND_COLUMNS:
            out.append(StripSample(strip.image, strip.band, step))
    return out


def simulated_strips(seed: int, n_lines: int = 12) -> list[StripSample]:
    """Simulate one sequence (seed sets everything) and cut ``n_lines`` strips from it."""
    rng = np.random.default_rng([seed, 7])
    params = random_params(rng)
    simulated = simulate_sequence(seed, params)
    return strips_from_sequence(simulated.sequence, rng, n_lines)


def random_window(
    sample: StripSample, window: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random (depth, time) crop of ``window`` size; strips shorter than the window are
    padded with zeros (image) and background (band) at random offsets."""
    wd, wt = window
    image, band = sample.image, sample.band
    d, t = image.shape
    out_image = np.zeros(window, dtype=np.float32)
    out_band = np.zeros(window, dtype=np.uint8)
    src_d = int(rng.integers(0, d - wd + 1)) if d > wd else 0
    dst_d = int(rng.integers(0, wd - d + 1)) if d < wd else 0
    src_t = int(rng.integers(0, t - wt + 1)) if t > wt else 0
    dst_t = int(rng.integers(0, wt - t + 1)) if t < wt else 0
    nd, nt = min(d, wd), min(t, wt)
    out_image[dst_d : dst_d + nd, dst_t : dst_t + nt] = image[
        src_d : src_d + nd, src_t : src_t + nt
    ]
    out_band[dst_d : dst_d + nd, dst_t : dst_t + nt] = band[src_d : src_d + nd, src_t : src_t + nt]
    return out_image, out_band
