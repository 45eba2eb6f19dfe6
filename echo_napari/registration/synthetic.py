"""A small beating phantom with known motion, for registration training and tests.

Used when :mod:`echo_napari.simulate` (the project's echo simulator) is not importable,
and in fast tests. Frame 0 is end-diastole; frame t is frame 0 pulled through a known
field ``u_t`` (radial contraction of a cavity + a random smooth B-spline perturbation),
plus fresh speckle-like noise per frame. Labels of frame t are the frame-0 labels warped
by ``u_t`` through signed distances, so they are exact up to interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from echo_napari.registration.spatial import control_points_to_field, gaussian_blur, warp


@dataclass(frozen=True)
class PhantomSequence:
    """A phantom sequence.

    Attributes
    ----------
    frames : (T, H, W) float32 in [0, 1]
    labels : (T, H, W) uint8 (1 LV cavity, 2 myocardium)
    displacement : (T, 2, H, W) float32, pixels; ``u_t`` for fixed = t, moving = 0
    """

    frames: np.ndarray
    labels: np.ndarray
    displacement: np.ndarray


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))[None, None]
    out = gaussian_blur(noise, sigma)[0, 0]
    return out / (out.std() + 1e-6)


def phantom_sequence(
    seed: int, n_frames: int = 24, size: int = 112, max_contraction: float | None = None
) -> PhantomSequence:
    """Generate a phantom sequence (one cycle, ED at frame 0, ES near T/2).

    Parameters
    ----------
    seed : int
        Random seed (the sequence is a pure function of its arguments).
    n_frames : int
        Number of frames T ≥ 2.
    size : int
        Frame side H = W in pixels (multiple of 8).
    max_contraction : float or None
        Fractional radial contraction of the cavity at ES (random 0.15–0.3 when None).
    """
    from echo_napari.registration.fusion import labels_from_sdf, labels_to_sdf

    rng = np.random.default_rng(seed)
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = h * rng.uniform(0.45, 0.55)
    cx = w * rng.uniform(0.42, 0.58)
    ry = h * rng.uniform(0.22, 0.3)
    rx = w * rng.uniform(0.12, 0.17)
    thickness = rng.uniform(0.25, 0.4)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    labels0 = np.zeros((h, w), np.uint8)
    labels0[r < 1 + thickness] = 2
    labels0[r < 1] = 1

    tissue = 0.55 + 0.12 * _smooth_noise(rng, (h, w), 6.0).numpy()
    image = np.where(labels0 == 1, 0.08, np.where(labels0 == 2, 0.8, tissue)).astype(np.float32)
    image = gaussian_blur(torch.from_numpy(image)[None, None], 1.0)[0, 0]
    texture = 1.0 + 0.35 * _smooth_noise(rng, (h, w), 0.8)

    contraction = rng.uniform(0.15, 0.3) if max_contraction is None else max_contraction
    es = n_frames // 2
    phase = np.arange(n_frames) / max(es, 1)
    amount = np.where(phase <= 1, np.sin(0.5 * np.pi * phase), np.cos(0.5 * np.pi * (phase - 1)))
    amount = contraction * np.clip(amount, 0, 1) ** 2

    dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    falloff = np.exp(-(np.clip(dist - 1.0 - thickness, 0, None) ** 2) / 0.5).astype(np.float32)
    radial = np.stack([(yy - cy) * falloff, (xx - cx) * falloff])
    grid = (h // 8 + 3, w // 8 + 3)
    wobble_params = torch.from_numpy(rng.standard_normal((1, 2, *grid)).astype(np.float32))
    wobble = control_points_to_field(wobble_params, 8, (h, w))[0].numpy() * 1.5
    # Contraction in the pull convention: frame t at x shows frame 0 at a point further out.
    fields = np.stack(
        [a * radial / (1 - a) + (a / max(contraction, 1e-6)) * wobble for a in amount]
    ).astype(np.float32)

    base = torch.from_numpy((image * texture).clamp(0, 1).numpy())[None, None]
    u = torch.from_numpy(fields)
    frames = warp(base.expand(n_frames, -1, -1, -1), u)[:, 0]
    frames = frames * (1 + 0.1 * torch.from_numpy(rng.standard_normal(frames.shape)).float())
    frames = frames.clamp(0, 1).numpy().astype(np.float32)
    sdf0 = torch.from_numpy(labels_to_sdf(labels0, (1, 2)))[None]
    sdf = warp(sdf0.expand(n_frames, -1, -1, -1), u).numpy()
    labels = np.stack([labels_from_sdf(s, (1, 2)) for s in sdf])
    return PhantomSequence(frames=frames, labels=labels, displacement=fields)
