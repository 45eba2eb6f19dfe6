"""Match the grey levels of simulated frames to real echo (SIM_TO_REAL.md §3.3).

Real EchoNet frames have black blood pools and brighter tissue than the simulator's
default look. A share of the simulated training sequences is histogram-matched, inside the
sector, to the pooled in-sector histogram of the *training* real videos (never the
held-out ones); the rest keep their native look, so the model sees both (the random gamma
of :mod:`echo_napari.segmentation.augment` widens it further).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from skimage.exposure import match_histograms

from echo_napari.simulation.realism import sector_mask


def reference_values(
    videos: Sequence[np.ndarray], n_values: int = 200_000, seed: int = 0
) -> np.ndarray:
    """Pooled in-sector grey levels of real videos, a random subsample.

    Parameters
    ----------
    videos : sequence of (T, H, W) float32 in [0, 1]

    Returns
    -------
    (n,) float32 in [0, 1], n ≤ ``n_values``, equal shares from every video
    """
    rng = np.random.default_rng(seed)
    per_video = max(1, n_values // max(1, len(videos)))
    values = []
    for video in videos:
        inside = np.asarray(video, dtype=np.float32)[:, sector_mask(video)]
        flat = inside.ravel()
        values.append(rng.choice(flat, size=min(per_video, flat.size), replace=False))
    return np.concatenate(values).astype(np.float32)


def match_to_reference(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Histogram-match the in-sector pixels of a clip to ``reference`` grey levels.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1]
    reference : (n,) float32 in [0, 1], e.g. from :func:`reference_values`

    Returns
    -------
    (T, H, W) float32 in [0, 1]; pixels outside the sector are unchanged
    """
    frames = np.asarray(frames, dtype=np.float32)
    mask = sector_mask(frames, erode_px=0)
    out = frames.copy()
    inside = frames[:, mask]
    matched = match_histograms(inside.ravel(), np.asarray(reference).ravel())
    out[:, mask] = matched.reshape(inside.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def matcher(reference: np.ndarray, share: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """``appearance(seed, frames)`` for :func:`~echo_napari.segmentation.data.simulated_samples`:
    matches the frames of a deterministic ``share`` (0–1) of the seeds, returns the others
    unchanged."""

    def appearance(seed: int, frames: np.ndarray) -> np.ndarray:
        draw = int(hashlib.sha1(f"histmatch{seed}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return match_to_reference(frames, reference) if draw < share else frames

    return appearance
