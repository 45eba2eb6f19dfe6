"""A small QuickNAT-style encoder-decoder for the LV band in M-mode strips.

QuickNAT (Roy et al. 2019): dense blocks (BN-PReLU-conv, inputs concatenated), max-pool
indices passed to max-unpooling in the decoder, skip connections concatenated, a 1x1
classifier. Ours uses 3x3 kernels and few filters so that it trains on a CPU in minutes.
Input: ``(B, 1, D, N)`` float32 windows in [0, 1] (depth × time); output: ``(B, 2, D, N)``
logits (0 outside, 1 inside the LV band). D and N must be multiples of ``2**levels``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from echo_napari.errors import ModelError
from echo_napari.models.files import load_state, read_network_files, save_network_files

MODEL_NAME = "mmode"


@dataclass(frozen=True)
class MModeNetConfig:
    """Architecture of :class:`MModeNet` (saved in the model card).

    Attributes
    ----------
    filters : channels of every dense-block convolution
    levels : number of pooling levels (window sides must be multiples of 2**levels)
    window : (depth, time) samples of one inference window
    depth_step_mm : depth sampling the network was trained at (mm per row)
    time_step_s : time sampling the network was trained at (s per column)
    """

    filters: int = 16
    levels: int = 3
    window: tuple[int, int] = (128, 64)
    depth_step_mm: float = 1.0
    time_step_s: float = 0.02

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MModeNetConfig:
        """Rebuild from a model card's ``config`` entry."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "window" in known:
            known["window"] = tuple(int(v) for v in known["window"])
        return cls(**known)


class _DenseBlock(nn.Module):
    """Two BN-PReLU-conv3x3 layers with dense concatenation, then a 1x1 bottleneck."""

    def __init__(self, c_in: int, filters: int) -> None:
        super().__init__()

        def unit(c: int, k: int) -> nn.Sequential:
            return nn.Sequential(
                nn.BatchNorm2d(c), nn.PReLU(), nn.Conv2d(c, filters, k, padding=k // 2)
            )

        self.conv1 = unit(c_in, 3)
        self.conv2 = unit(c_in + filters, 3)
        self.bottleneck = unit(c_in + 2 * filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.conv2(torch.cat([x, a], 1))
        return self.bottleneck(torch.cat([x, a, b], 1))


class MModeNet(nn.Module):
    """QuickNAT-style 2D network: ``(B, 1, D, N)`` → ``(B, 2, D, N)`` logits."""

    def __init__(self, config: MModeNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or MModeNetConfig()
        f, levels = self.config.filters, self.config.levels
        self.encoders = nn.ModuleList([_DenseBlock(1 if i == 0 else f, f) for i in range(levels)])
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.bottleneck = _DenseBlock(f, f)
        self.decoders = nn.ModuleList([_DenseBlock(2 * f, f) for _ in range(levels)])
        self.classifier = nn.Conv2d(f, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        divisor = 2**self.config.levels
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % divisor or x.shape[3] % divisor:
            raise ModelError(
                f"MModeNet expects (B, 1, D, N) with D and N multiples of {divisor}; got "
                f"{tuple(x.shape)}"
            )
        skips, indices = [], []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x, index = self.pool(x)
            indices.append(index)
        x = self.bottleneck(x)
        for decoder, skip, index in zip(
            self.decoders, reversed(skips), reversed(indices), strict=True
        ):
            x = self.unpool(x, index, output_size=skip.shape[-2:])
            x = decoder(torch.cat([x, skip], 1))
        return self.classifier(x)


def save_mmode_model(
    network: MModeNet, stem: str | Path, card: dict[str, Any] | None = None
) -> Path:
    """Write ``<stem>.safetensors`` (weights) and ``<stem>.json`` (config + card).

    Returns
    -------
    Path of the .safetensors file.
    """
    full = {"name": MODEL_NAME, "config": asdict(network.config), **(card or {})}
    return save_network_files(network, stem, full)


def load_mmode_model(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> MModeNet:
    """Load a band-segmentation network (the newest bundled one when ``path`` is None).

    Raises
    ------
    ModelError
        When the weights or card are missing, corrupt or do not fit the architecture.
    """
    if path is None:
        from echo_napari.models.registry import find_model

        path = find_model(MODEL_NAME).path
    card, state = read_network_files(path, "M-mode model")
    try:
        config = MModeNetConfig.from_dict(card.get("config", {}))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the M-mode model ({exc})") from exc
    return load_state(MModeNet(config), state, path).to(device)
