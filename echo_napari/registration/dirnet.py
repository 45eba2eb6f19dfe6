"""DIRNet (de Vos et al. 2019): a small CNN that predicts cubic B-spline control points.

Layout (after TorchIR's DIRNet, re-implemented): the (fixed, moving) pair enters as two
channels, padded by 1.5 grid spacings so that ``log2(spacing)`` blocks of
conv + ELU + 2×2 average pooling land exactly on the control-point grid of
:mod:`~echo_napari.registration.spatial`; two 1×1 conv + ELU layers follow and a
zero-initialised 1×1 conv gives 2 channels (untrained network = identity). The control
points are turned into a dense field by the fixed cubic B-spline upsampling.

The network works at a fixed internal resolution (``config.size``); callers resize frames
in and fields out (:class:`~echo_napari.registration.backends.DirnetBackend`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from echo_napari.registration.spatial import control_points_to_field, warp


@dataclass(frozen=True)
class DirNetConfig:
    """Architecture of a DIRNet; stored in every model card so weights rebuild their model.

    Parameters
    ----------
    size : int
        Internal square resolution in pixels (frames are resized to size×size).
    grid_spacing : int
        Control-point spacing in internal pixels; a power of two ≥ 2 dividing ``size``.
    kernels : tuple of int
        Feature channels of the conv layer of each pooling block (one per block,
        ``log2(grid_spacing)`` of them); the 1×1 layers use the last value. The paper uses
        32 everywhere; 16 in the full-resolution block halves CPU inference time.
    kernel_size : int
        Side of the conv kernels of the pooling blocks (odd).
    output_scale : float
        Network outputs are multiplied by this (internal pixels), so raw outputs are O(1).
    head_kernel_size : int
        Side of the kernels of the two layers on the control-point grid (1 in the paper;
        3 lets neighbouring control points see each other's features).
    normalize_input : bool
        Standardise each frame (zero mean, unit SD over the frame) before the network;
        echo frames are mostly dark, and centred inputs train faster.
    """

    size: int = 112
    grid_spacing: int = 8
    kernels: tuple[int, ...] = (16, 32, 32)
    kernel_size: int = 3
    output_scale: float = 4.0
    normalize_input: bool = False
    head_kernel_size: int = 1

    def __post_init__(self) -> None:
        s = self.grid_spacing
        if s < 2 or s & (s - 1):
            raise ValueError(f"grid_spacing must be a power of two ≥ 2; got {s}")
        if self.size % s:
            raise ValueError(f"size {self.size} must be a multiple of grid_spacing {s}")
        object.__setattr__(self, "kernels", tuple(int(k) for k in self.kernels))
        if len(self.kernels) != int(math.log2(s)):
            raise ValueError(
                f"kernels needs one entry per pooling block (log2({s}) = {int(math.log2(s))}); "
                f"got {self.kernels}"
            )
        if self.kernel_size % 2 == 0 or self.head_kernel_size % 2 == 0:
            raise ValueError(
                f"kernel sizes must be odd; got {self.kernel_size} and {self.head_kernel_size}"
            )

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        data = asdict(self)
        data["kernels"] = list(self.kernels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DirNetConfig:
        """Rebuild from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class DirNet(nn.Module):
    """DIRNet with a cubic B-spline transformer.

    ``forward(fixed, moving)`` takes (N, 1, S, S) tensors at the internal resolution
    ``S = config.size`` (intensities in [0, 1]) and returns the dense displacement
    (N, 2, S, S) in internal pixels, pull convention.
    """

    def __init__(self, config: DirNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DirNetConfig()
        c = self.config
        layers: list[nn.Module] = []
        in_ch = 2
        for k in c.kernels:
            layers += [
                nn.Conv2d(in_ch, k, c.kernel_size, padding=c.kernel_size // 2),
                nn.ELU(),
                nn.AvgPool2d(2),
            ]
            in_ch = k
        k, h = c.kernels[-1], c.head_kernel_size
        layers += [
            nn.Conv2d(k, k, h, padding=h // 2),
            nn.ELU(),
            nn.Conv2d(k, k, h, padding=h // 2),
            nn.ELU(),
        ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(k, 2, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def with_head_kernel(self, size: int) -> DirNet:
        """A copy whose two grid layers have ``size``×``size`` kernels and that computes the
        same field: the current kernels sit at the centre, the new taps start at zero."""
        config = DirNetConfig.from_dict({**self.config.to_dict(), "head_kernel_size": size})
        wider = DirNet(config)
        state = self.state_dict()
        for name, value in wider.state_dict().items():
            old = state[name]
            if old.shape == value.shape:
                value.copy_(old)
            else:
                value.zero_()
                lo, hi = (size - old.shape[-1]) // 2, (size + old.shape[-1]) // 2
                value[..., lo:hi, lo:hi] = old
        return wider

    def control_points(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """Control-point displacements (N, 2, S/s + 3, S/s + 3), internal pixels."""
        size = self.config.size
        if fixed.shape != moving.shape or tuple(fixed.shape[-2:]) != (size, size):
            raise ValueError(
                f"fixed and moving must be (N, 1, {size}, {size}); "
                f"got {tuple(fixed.shape)} and {tuple(moving.shape)}"
            )
        pad = 3 * self.config.grid_spacing // 2
        x = torch.cat([fixed, moving], dim=1)
        if self.config.normalize_input:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)
            x = (x - mean) / std
        x = F.pad(x, (pad, pad, pad, pad))
        return self.head(self.features(x)) * self.config.output_scale

    def field_from_control_points(self, params: torch.Tensor) -> torch.Tensor:
        """Dense (N, 2, S, S) field from control points (internal pixels)."""
        size = self.config.size
        return control_points_to_field(params, self.config.grid_spacing, (size, size))

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """Dense displacement (N, 2, S, S), internal pixels, ``moving(x+u) ≈ fixed(x)``."""
        return self.field_from_control_points(self.control_points(fixed, moving))

    def register_and_warp(
        self, fixed: torch.Tensor, moving: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(field, warped moving) — the pair used by the training loss."""
        u = self(fixed, moving)
        return u, warp(moving, u)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
