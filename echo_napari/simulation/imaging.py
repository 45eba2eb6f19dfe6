"""B-mode image formation: speckle on a polar (r, θ) grid, PSF, TGC, log compression and
scan conversion (SIM_TO_REAL.md §2–3, a COLE-like convolution model).

Per frame: the complex scatterer field (white, circular Gaussian, defined on the ED grid
and carried by the pull map, so it moves with the tissue) times the echogenicity, plus
valve leaflets, static near-field clutter and electronic noise, is blurred by a separable
Gaussian PSF (axial FWHM in mm, lateral FWHM constant in angle), enveloped, given a depth
gain ripple (TGC residual), log-compressed to the dynamic range and resampled to the
Cartesian image with ``scipy.ndimage.map_coordinates``. Outside the sector is black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echo_napari.simulation.anatomy import Anatomy
from echo_napari.simulation.interp import Bilinear
from echo_napari.simulation.params import SimulationParams

#: Gaussian low-pass (σ in output pixels) before scan conversion.
ANTIALIAS = 0.25
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class PolarGrid:
    """Beam samples: ``nr`` depths × ``nt`` beams, angle from vertical (right positive).

    Attributes
    ----------
    dr : mm between depth samples
    dtheta : radians between beams
    nr, nt : sizes
    half_angle : radians
    origin : (y, x) mm
    """

    dr: float
    dtheta: float
    nr: int
    nt: int
    half_angle: float
    origin: tuple[float, float]

    def cartesian(self) -> tuple[np.ndarray, np.ndarray]:
        """(nr, nt) frame mm coordinates of the samples."""
        r = self.dr * np.arange(self.nr)[:, None]
        theta = -self.half_angle + self.dtheta * np.arange(self.nt)[None, :]
        return self.origin[0] + r * np.cos(theta), self.origin[1] + r * np.sin(theta)

    def depth(self) -> np.ndarray:
        """(nr,) mm depth of each sample row."""
        return self.dr * np.arange(self.nr)

    def angles(self) -> np.ndarray:
        """(nt,) beam angles, radians."""
        return -self.half_angle + self.dtheta * np.arange(self.nt)


def make_polar_grid(anatomy: Anatomy, params: SimulationParams) -> PolarGrid:
    """Polar sampling fine enough for the PSF and for the output pixels."""
    # About two samples per PSF width and per output pixel: finer sampling changes
    # nothing visible after the anti-alias filter but costs time.
    dr = min(params.axial_psf_mm / 2.0, params.spacing_mm / 2.0)
    dtheta = np.deg2rad(params.lateral_psf_deg) / 2.5
    nr = int(np.ceil(anatomy.sector_radius / dr)) + 2
    nt = int(np.ceil(2 * anatomy.sector_half_angle / dtheta)) + 1
    return PolarGrid(
        dr=float(dr),
        dtheta=float(2 * anatomy.sector_half_angle / (nt - 1)),
        nr=nr,
        nt=nt,
        half_angle=anatomy.sector_half_angle,
        origin=anatomy.origin,
    )


def probe_gain(
    polar: PolarGrid, params: SimulationParams, anatomy: Anatomy, rng: np.random.Generator
) -> np.ndarray:
    """Static multiplicative gain of the tissue signal on the polar grid, (nr, nt):
    acoustic shadows, random lateral-wall gaps and beam apodization at the sector edges."""
    depth = polar.depth()[:, None]
    theta = polar.angles()[None, :]
    loss_db = np.zeros((polar.nr, polar.nt))
    for _ in range(params.n_shadows):
        centre = rng.uniform(-0.85, 0.85) * polar.half_angle
        width = np.deg2rad(rng.uniform(3.0, 9.0))
        start = rng.uniform(0.15, 0.6) * anatomy.sector_radius
        across = np.exp(-0.5 * ((theta - centre) / width) ** 4)
        along = 1.0 / (1.0 + np.exp(-(depth - start) / 4.0))
        loss_db += rng.uniform(8.0, 20.0) * across * along
    # Gaps in the lateral wall: beams on the LV side lose signal over the wall's depths.
    n_gaps = int(rng.poisson(2.5 * params.dropout))
    wall_depth = np.hypot(*(np.asarray(anatomy.apex) - anatomy.origin)) + 0.5 * anatomy.base
    for _ in range(n_gaps):
        centre = rng.uniform(0.2, 0.9) * polar.half_angle
        width = np.deg2rad(rng.uniform(2.0, 6.0))
        across = np.exp(-0.5 * ((theta - centre) / width) ** 2)
        along = np.exp(-0.5 * ((depth - wall_depth * rng.uniform(0.7, 1.3)) / 20.0) ** 2)
        loss_db += 20.0 * params.dropout * rng.uniform(0.5, 1.0) * across * along
    edge = np.clip((polar.half_angle - np.abs(theta)) / np.deg2rad(8.0), 0.0, 1.0)
    loss_db += 6.0 * (1.0 - edge)
    return (10.0 ** (-loss_db / 20.0)).astype(np.float32)


def tgc_gain(polar: PolarGrid, params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Residual depth gain after TGC, (nr, 1) float32 linear: a smooth random ripple of
    ±``tgc_db`` plus a small uncompensated attenuation slope."""
    depth = polar.depth() / max(polar.depth()[-1], 1e-9)
    ripple = np.zeros_like(depth)
    for k in (1, 2, 3):
        ripple += rng.normal() / k * np.cos(np.pi * k * depth + rng.uniform(0, 2 * np.pi))
    ripple *= params.tgc_db / max(np.abs(ripple).max(), 1e-9)
    slope = rng.uniform(-4.0, 2.0) * depth
    return (10.0 ** ((ripple + slope) / 20.0)).astype(np.float32)[:, None]


def haze_field(polar: PolarGrid, params: SimulationParams, rng: np.random.Generator):
    """Static near-field clutter, (nr, nt) complex64: speckle that does not move.

    A bright chest-wall layer over the first few mm, haze fading over ``haze_depth_mm``
    and a few reverberation arcs, each with a random brightness along the arc.
    """
    depth = polar.depth()[:, None]
    theta = polar.angles()[None, :]

    def along_arc(amplitude_db: float) -> np.ndarray:
        phases = rng.uniform(0, 2 * np.pi, 3)
        wiggle = sum(np.cos((k + 1) * 3.0 * theta + phases[k]) / (k + 1) for k in range(3))
        return 10.0 ** (amplitude_db * wiggle / 20.0)

    chest = rng.uniform(3.0, 8.0)
    profile = 0.8 / (1.0 + np.exp((depth - chest) / 1.0)) * along_arc(6.0)
    profile = profile + params.haze * np.exp(-depth / params.haze_depth_mm) * along_arc(4.0)
    for _ in range(3):
        band_depth = rng.uniform(chest, 2.0 * params.haze_depth_mm)
        band = np.exp(-0.5 * ((depth - band_depth) / 1.5) ** 2)
        profile = profile + 0.6 * params.haze * band * along_arc(8.0)
    noise = rng.standard_normal((polar.nr, polar.nt, 2)).astype(np.float32)
    field = (noise[..., 0] + 1j * noise[..., 1]) * np.float32(np.sqrt(0.5))
    return (field * profile).astype(np.complex64)


def psf_sigmas(polar: PolarGrid, params: SimulationParams) -> tuple[float, float]:
    """Gaussian PSF sigmas in polar samples (depth, beam)."""
    sigma_r = params.axial_psf_mm * _FWHM_TO_SIGMA / polar.dr
    sigma_t = np.deg2rad(params.lateral_psf_deg) * _FWHM_TO_SIGMA / polar.dtheta
    return float(sigma_r), float(sigma_t)


def envelope_db(
    signal: np.ndarray, polar: PolarGrid, params: SimulationParams, tgc: np.ndarray
) -> np.ndarray:
    """PSF, envelope and dB of a stack of polar RF (baseband) frames.

    Parameters
    ----------
    signal : (T, nr, nt) complex64, unit-variance scatterers times amplitude
    tgc : (nr, 1) linear gain

    Returns
    -------
    (T, nr, nt) float32, dB relative to the mean envelope of myocardium (amplitude 1)
    """
    sigma_r, sigma_t = psf_sigmas(polar, params)
    pairs = signal.view(np.float32).reshape(*signal.shape, 2)
    pairs = ndimage.gaussian_filter1d(pairs, sigma_r, axis=1, mode="constant", truncate=3.0)
    pairs = ndimage.gaussian_filter1d(pairs, sigma_t, axis=2, mode="nearest", truncate=3.0)
    power = pairs[..., 0] ** 2 + pairs[..., 1] ** 2
    # Unit-variance white scatterers blurred by the PSF have this mean power.
    unit_power = _gaussian_power(sigma_r) * _gaussian_power(sigma_t)
    return (10.0 * np.log10(power / unit_power + 1e-12) + 20.0 * np.log10(tgc)).astype(np.float32)


def _gaussian_power(sigma: float) -> float:
    radius = int(3.0 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-6)) ** 2)
    kernel /= kernel.sum()
    return float(np.sum(kernel**2))


def log_compress(db: np.ndarray, params: SimulationParams, headroom_db: float) -> np.ndarray:
    """dB → display grey in [0, 1]: ``headroom_db`` above myocardium maps to white, the
    dynamic range below that to black."""
    grey = (db + params.gain_db - headroom_db + params.dynamic_range_db) / (
        params.dynamic_range_db
    )
    return np.clip(grey, 0.0, 1.0, out=grey)


@dataclass(frozen=True)
class ScanConverter:
    """Precomputed bilinear plan from polar samples to output pixels, and the sector mask."""

    plan: Bilinear
    mask: np.ndarray  # (H, W) float32 in [0, 1]

    def __call__(self, polar_frames: np.ndarray) -> np.ndarray:
        """(T, nr, nt) → (T, H, W) float32, zero outside the sector."""
        out = self.plan(polar_frames).reshape(polar_frames.shape[0], *self.mask.shape)
        out *= self.mask
        return out.astype(np.float32, copy=False)


def make_scan_converter(polar: PolarGrid, params: SimulationParams) -> ScanConverter:
    """Map output pixel centres to polar sample coordinates; mask the sector."""
    s = params.spacing_mm
    rows, cols = np.mgrid[0 : params.height, 0 : params.width].astype(np.float64)
    dy, dx = rows * s - polar.origin[0], cols * s - polar.origin[1]
    r = np.hypot(dy, dx)
    theta = np.arctan2(dx, dy)
    plan = Bilinear.at(
        r / polar.dr, (theta + polar.half_angle) / polar.dtheta, (polar.nr, polar.nt)
    )
    radius = polar.dr * (polar.nr - 2)
    inside_r = np.clip((radius - r) / s + 0.5, 0.0, 1.0)
    inside_t = np.clip((polar.half_angle - np.abs(theta)) * np.maximum(r, s) / s + 0.5, 0, 1)
    mask = (inside_r * inside_t * (dy > 0)).astype(np.float32)
    return ScanConverter(plan=plan, mask=mask)


def antialias(polar_frames: np.ndarray, polar: PolarGrid, params: SimulationParams) -> None:
    """Low-pass the polar frames in place to the output pixel size before resampling
    (the display's scan converter and EchoNet's downsampling both average)."""
    sigma_r = ANTIALIAS * params.spacing_mm / polar.dr
    mid_depth = 0.6 * polar.dr * polar.nr
    sigma_t = ANTIALIAS * params.spacing_mm / (mid_depth * polar.dtheta)
    ndimage.gaussian_filter(
        polar_frames, (0.0, sigma_r, sigma_t), output=polar_frames, mode="nearest", truncate=2.5
    )
