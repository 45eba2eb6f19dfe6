"""Echo-specific augmentations applied to whole clips (one transform for every frame).

Geometric: rotation ±15°, scale 0.9–1.1, translation ±10 %, sector-width jitter (an extra
horizontal stretch, off by default; 0.9–1.1 for the bundled model) (SIM_TO_REAL §3.4; no
horizontal flip, which would swap the left and right heart). Intensity: gamma 0.4–1.2,
gain, offset, speckle-like multiplicative noise and additive noise; optionally a smooth
spatial gain field (regional dropout and uneven gain, as on real lateral walls) and a
blur (scanners and down-sampling differ in resolution), both off by default. Temporal stride and
direction are handled by the clip sampler in :mod:`echo_napari.segmentation.training`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from echo_napari.registration.spatial import gaussian_blur as gaussian_blur_frames


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random clip transforms (all sampled uniformly per clip)."""

    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    translation: float = 0.1
    width: tuple[float, float] = (1.0, 1.0)
    gamma: tuple[float, float] = (0.4, 1.2)
    gain: tuple[float, float] = (0.7, 1.4)
    offset: float = 0.05
    noise_std: float = 0.03
    multiplicative_noise: float = 0.15
    gain_field: float = 0.0
    blur_px: tuple[float, float] = (0.0, 0.0)
    probability: float = 0.9

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def random_affine(
    clips: torch.Tensor,
    labels: torch.Tensor | None,
    config: AugmentConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotate, scale and translate every clip of a batch (same transform over time).

    Parameters
    ----------
    clips : (B, 1, T, S, S) float32
    labels : (B, T, S, S) int64 or None

    Returns
    -------
    The transformed clips (bilinear, zero outside) and labels (nearest, background outside).
    """
    b, _, t, s, _ = clips.shape
    angle = _uniform(b, -config.rotation_deg, config.rotation_deg, gen) * math.pi / 180
    scale = _uniform(b, *config.scale, gen)
    # Extra horizontal stretch: jitters the sector width relative to its depth.
    # (not drawn when off, so other users' random streams stay as they were)
    width = _uniform(b, *config.width, gen) if config.width != (1.0, 1.0) else torch.ones(b)
    shift = _uniform(2 * b, -config.translation, config.translation, gen).view(b, 2) * 2
    keep = torch.rand(b, generator=gen) > config.probability
    angle[keep], scale[keep], width[keep], shift[keep] = 0.0, 1.0, 1.0, 0.0
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output to input coordinates (x first): dividing the x row by the
    # width factor stretches the image horizontally by it.
    theta = torch.stack(
        [
            torch.stack([cos / width, -sin / width, shift[:, 0]], 1),
            torch.stack([sin, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, (b, t, s, s), align_corners=False)
    warped = F.grid_sample(clips[:, 0], grid, mode="bilinear", align_corners=False)[:, None]
    if labels is None:
        return warped, None
    warped_labels = F.grid_sample(labels.float(), grid, mode="nearest", align_corners=False)
    return warped, warped_labels.long()


def random_intensity(
    clips: torch.Tensor, config: AugmentConfig, gen: torch.Generator
) -> torch.Tensor:
    """Gamma, gain, offset and noise on ``(B, 1, T, S, S)`` clips in [0, 1]; stays in [0, 1]."""
    b = clips.shape[0]
    view = (b, 1, 1, 1, 1)
    gamma = _uniform(b, *config.gamma, gen).view(view)
    gain = _uniform(b, *config.gain, gen).view(view)
    offset = _uniform(b, -config.offset, config.offset, gen).view(view)
    out = clips.clamp(0.0, 1.0) ** gamma * gain + offset
    if config.multiplicative_noise > 0:
        level = _uniform(b, 0.0, config.multiplicative_noise, gen).view(view)
        out = out * (1.0 + level * torch.randn(clips.shape, generator=gen))
    if config.noise_std > 0:
        level = _uniform(b, 0.0, config.noise_std, gen).view(view)
        out = out + level * torch.randn(clips.shape, generator=gen)
    # The optional transforms draw nothing when off, so other users' streams stay as they were.
    if config.gain_field > 0:
        out = out * smooth_gain_field(clips.shape, config.gain_field, gen)
    if max(config.blur_px) > 0:
        out = gaussian_blur(out, _uniform(b, *config.blur_px, gen))
    keep = (torch.rand(b, generator=gen) > config.probability).view(view)
    return torch.where(keep, clips, out.clamp(0.0, 1.0))


def smooth_gain_field(
    shape: tuple[int, ...], amplitude: float, gen: torch.Generator, cells: int = 4
) -> torch.Tensor:
    """Multiplicative gain ``exp(a · n)``, ``n`` a smooth unit-variance field over the image
    (bicubic from a ``cells × cells`` grid), the same on every frame of a clip; ``a`` drawn
    per clip from [0, ``amplitude``].

    Returns
    -------
    (B, 1, 1, S, S) float32, broadcastable to ``shape`` = (B, 1, T, S, S)
    """
    b, s = shape[0], shape[-1]
    coarse = torch.randn((b, 1, cells, cells), generator=gen)
    field = F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=True)
    level = _uniform(b, 0.0, amplitude, gen).view(b, 1, 1, 1)
    return torch.exp(level * field)[:, :, None]


def gaussian_blur(clips: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """Blur every frame of clip ``i`` with a Gaussian of σ = ``sigma_px[i]`` pixels
    (σ < 0.3 leaves the clip as it is).

    Parameters
    ----------
    clips : (B, 1, T, S, S) float32
    sigma_px : (B,) float32, pixels
    """
    out = clips.clone()
    for i, sigma in enumerate(sigma_px.tolist()):
        if sigma >= 0.3:
            out[i, 0] = gaussian_blur_frames(clips[i, 0][:, None], sigma)[:, 0]
    return out


def augment_batch(
    clips: torch.Tensor,
    labels: torch.Tensor | None,
    config: AugmentConfig | None,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply :func:`random_affine` then :func:`random_intensity` (no-op when config is None)."""
    if config is None:
        return clips, labels
    clips, labels = random_affine(clips, labels, config, gen)
    return random_intensity(clips, config, gen), labels
