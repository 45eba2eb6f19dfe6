"""Image statistics to compare simulated and real echo (SIM_TO_REAL.md §3, step 3).

All functions take frames ``(T, H, W) float32 in [0, 1]`` and a sector mask ``(H, W)``
bool; they are used by ``benchmarks/simulate.py --compare-real`` and the tests.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def sector_mask(frames: np.ndarray, threshold: float = 0.03, erode_px: int = 3) -> np.ndarray:
    """The sector: pixels whose maximum over the clip exceeds ``threshold``.

    Returns
    -------
    (H, W) bool, eroded by ``erode_px`` so edges and annotations do not count
    """
    lit = np.asarray(frames).max(axis=0) > threshold
    lit = ndimage.binary_fill_holes(ndimage.binary_opening(lit, iterations=1))
    return ndimage.binary_erosion(lit, iterations=erode_px) if erode_px else lit


def intensity_percentiles(
    frames: np.ndarray, mask: np.ndarray, q: tuple[float, ...] = (5, 25, 50, 75, 95)
) -> np.ndarray:
    """Grey-level percentiles inside the sector over all frames, (len(q),) float64."""
    return np.percentile(np.asarray(frames)[:, mask], q)


def _highpass(frames: np.ndarray, sigma_px: float = 3.0) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    return frames - ndimage.gaussian_filter(frames, (0, sigma_px, sigma_px))


def speckle_fwhm(frames: np.ndarray, mask: np.ndarray, every: int = 8) -> tuple[float, float]:
    """Full width at half maximum (pixels) of the speckle autocorrelation, (rows, cols).

    The frames are high-passed (minus a σ = 3 px Gaussian mean) and the autocorrelation
    is normalised by the mask's own, so the sector edge does not widen it.
    """
    mask_f = mask.astype(np.float64)
    size = tuple(2 * n for n in mask.shape)
    mask_ac = np.fft.ifft2(np.abs(np.fft.fft2(mask_f, s=size)) ** 2).real
    widths = []
    for frame in _highpass(frames[::every]):
        values = np.where(mask, frame, 0.0)
        values = values - mask_f * values[mask].mean()
        ac = np.fft.ifft2(np.abs(np.fft.fft2(values, s=size)) ** 2).real
        ac = ac / np.maximum(mask_ac, 1.0)
        ac /= ac[0, 0]
        widths.append((_fwhm(ac[:12, 0]), _fwhm(ac[0, :12])))
    return tuple(np.mean(widths, axis=0))


def _fwhm(profile: np.ndarray) -> float:
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return float(2 * len(profile))
    i = int(below[0])
    return float(2 * (i - 1 + (profile[i - 1] - 0.5) / (profile[i - 1] - profile[i])))


def temporal_correlation(
    frames: np.ndarray, mask: np.ndarray, lags: tuple[int, ...] = (1, 2, 4, 8), every: int = 5
) -> np.ndarray:
    """Mean correlation of the high-passed texture between frames ``lag`` apart, (len,)."""
    hp = _highpass(frames)
    out = []
    for lag in lags:
        starts = range(0, hp.shape[0] - lag, every)
        out.append(np.mean([np.corrcoef(hp[t][mask], hp[t + lag][mask])[0, 1] for t in starts]))
    return np.asarray(out)


def cavity_and_wall_grey(frames: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean grey (0–1) of the LV cavity and of the LV myocardium."""
    frames = np.asarray(frames)
    return float(frames[labels == 1].mean()), float(frames[labels == 2].mean())
