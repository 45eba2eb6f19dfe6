"""2D+time U-Net in the spirit of SimLVSeg: clips ``(B, 1, T, H, W)`` → class logits.

The network is fully convolutional in time, so it runs on clips of any length that is a
multiple of :meth:`UNetConfig.time_divisor`. The first levels pool only in space (a
heartbeat at 50 fps changes little between neighbouring frames, while the LV border needs
full spatial resolution) and the deeper levels also pool in time. Normalisation layers are
instance or group norms, whose statistics come from the clip itself, which keeps the model
robust to gain and contrast changes between scanners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from echo_napari.errors import ModelError

#: SimLVSeg's EchoNet-Dynamic grey-level normalisation (first channel of their RGB values).
ECHONET_MEAN = 0.1274
ECHONET_STD = 0.1956


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet2DTime`; stored in every model card to rebuild it.

    Parameters
    ----------
    channels : tuple of int
        Feature channels per level, finest first (SimLVSeg: 16/32/64/128/256).
    temporal_pool : tuple of bool
        For each of the ``len(channels) - 1`` downsampling steps, whether time is halved too.
    temporal_kernel : tuple of int
        Convolution kernel size in time per level (1 = purely spatial, 3 = 2D+time).
    n_classes : int
        Output classes (4: background, LV cavity, myocardium, LA).
    clip_len : int
        Frames per clip at inference.
    size : int
        Internal square resolution in pixels; frames are resized to ``size × size``.
    norm : str
        ``"instance"`` or ``"group"``.
    mean, std : float
        Input normalisation applied to frames in [0, 1].
    """

    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    temporal_pool: tuple[bool, ...] = (False, False, True, True)
    temporal_kernel: tuple[int, ...] = (1, 1, 3, 3, 3)
    n_classes: int = 4
    clip_len: int = 32
    size: int = 112
    norm: str = "group"
    mean: float = ECHONET_MEAN
    std: float = ECHONET_STD

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n < 2:
            raise ModelError(f"UNetConfig needs at least 2 levels; got channels={self.channels}")
        if len(self.temporal_pool) != n - 1 or len(self.temporal_kernel) != n:
            raise ModelError(
                f"UNetConfig: temporal_pool needs {n - 1} entries and temporal_kernel {n} "
                f"for channels={self.channels}; got {self.temporal_pool}, {self.temporal_kernel}"
            )
        if self.norm not in ("instance", "group"):
            raise ModelError(f"UNetConfig.norm must be 'instance' or 'group'; got {self.norm!r}")
        if self.size % (2 ** (n - 1)):
            raise ModelError(f"UNetConfig.size={self.size} must be divisible by {2 ** (n - 1)}")
        if self.clip_len % self.time_divisor:
            raise ModelError(
                f"UNetConfig.clip_len={self.clip_len} must be divisible by {self.time_divisor}"
            )

    @property
    def time_divisor(self) -> int:
        """Clip lengths must be multiples of this (2 per temporal pooling step)."""
        return 2 ** sum(bool(p) for p in self.temporal_pool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (lists instead of tuples)."""
        data = asdict(self)
        for key in ("channels", "temporal_pool", "temporal_kernel"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; raises :class:`ModelError` on unknown or bad keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"model card architecture has unknown keys {sorted(unknown)}")
        try:
            values = dict(data)
            for key in ("channels", "temporal_pool", "temporal_kernel"):
                if key in values:
                    values[key] = tuple(values[key])
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model card architecture is invalid: {exc}") from exc


#: Size used for the bundled CPU model.
BUNDLED_CONFIG = UNetConfig()

#: SimLVSeg's size (~19 M parameters in their residual version), for GPU users.
PAPER_CONFIG = UNetConfig(
    channels=(16, 32, 64, 128, 256),
    temporal_pool=(True, True, True, True),
    temporal_kernel=(3, 3, 3, 3, 3),
    norm="instance",
)


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    return nn.GroupNorm(min(8, channels), channels)


class _Block(nn.Module):
    """Two convolutions with norm and PReLU, plus a residual 1×1 projection.

    ``dims=2`` blocks run on frames folded into the batch, ``(B·T, C, H, W)``: for purely
    spatial levels this is the same maths as a (1, 3, 3) 3D convolution, but oneDNN's 2D
    kernels are several times faster, above all in the backward pass; their norms then
    use per-frame statistics.
    """

    def __init__(self, c_in: int, c_out: int, k_time: int, norm: str, dims: int = 3) -> None:
        super().__init__()
        if dims == 2:
            conv, kernel, pad, mode = nn.Conv2d, 3, 1, "zeros"
        else:
            conv, kernel, pad = nn.Conv3d, (k_time, 3, 3), (k_time // 2, 1, 1)
            # Replicate padding: beyond a clip's ends the heart is taken as still (the edge
            # frame repeated) rather than black, so a time-constant input gives a
            # time-constant output and frames near a window's ends are not pulled towards
            # "no heart".
            mode = "replicate" if k_time > 1 else "zeros"
        self.body = nn.Sequential(
            conv(c_in, c_out, kernel, padding=pad, bias=False, padding_mode=mode),
            _norm(norm, c_out, dims),
            nn.PReLU(c_out),
            conv(c_out, c_out, kernel, padding=pad, bias=False, padding_mode=mode),
            _norm(norm, c_out, dims),
        )
        self.skip = conv(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class UNet2DTime(nn.Module):
    """U-Net over ``(B, 1, T, H, W)`` clips.

    ``forward`` returns class logits ``(B, n_classes, T, H, W)``;
    ``reconstruct`` returns the self-supervised frame reconstruction ``(B, 1, T, H, W)``
    from the same features (a separate 1×1×1 head, used only for pretraining).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.n_2d = _n_spatial_levels(config)
        dims = [2 if level < self.n_2d else 3 for level in range(len(ch))]
        self.encoders = nn.ModuleList()
        c_prev = 1
        for level, c in enumerate(ch):
            k_time = config.temporal_kernel[level]
            self.encoders.append(_Block(c_prev, c, k_time, config.norm, dims[level]))
            c_prev = c
        self.pools = nn.ModuleList(
            nn.MaxPool2d(2) if dims[level] == 2 else nn.MaxPool3d((2 if tp else 1, 2, 2))
            for level, tp in enumerate(config.temporal_pool)
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(len(ch) - 2, -1, -1):
            # 1×1 projection at the coarse level, then nearest upsampling: unlike a strided
            # transposed convolution this has no even/odd-frame checkerboard in time.
            coarse_conv = nn.Conv2d if dims[level + 1] == 2 else nn.Conv3d
            scale = (2 if config.temporal_pool[level] else 1, 2, 2)
            self.ups.append(
                nn.Sequential(
                    coarse_conv(ch[level + 1], ch[level], 1),
                    nn.Upsample(scale_factor=scale[1:] if dims[level + 1] == 2 else scale),
                )
            )
            k_time = config.temporal_kernel[level]
            block = _Block(2 * ch[level], ch[level], k_time, config.norm, dims[level])
            self.decoders.append(block)
        head_conv = nn.Conv2d if dims[0] == 2 else nn.Conv3d
        self.seg_head = head_conv(ch[0], config.n_classes, 1)
        self.recon_head = head_conv(ch[0], 1, 1)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Finest-level decoder features, in the finest level's layout."""
        b, _, t, h, w = x.shape
        skips = []
        if self.n_2d:
            x = _fold(x)
        for level, encoder in enumerate(self.encoders):
            if level == self.n_2d and level > 0:
                x = _unfold(x, b)
            x = encoder(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for i, (up, decoder) in enumerate(zip(self.ups, self.decoders, strict=True)):
            x = up(x)
            level = len(self.decoders) - 1 - i
            if level == self.n_2d - 1:
                x = _fold(x)
            x = decoder(torch.cat([x, skips.pop()], dim=1))
        return x

    def _head(self, head: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
        out = head(self._features(x))
        return _unfold(out, batch) if self.n_2d else out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Finest-level decoder features ``(B, channels[0], T, H, W)``."""
        out = self._features(x)
        return _unfold(out, x.shape[0]) if self.n_2d else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._head(self.seg_head, x, x.shape[0])

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the (normalised) input clip, for temporal-masking SSL."""
        return self._head(self.recon_head, x, x.shape[0])


def _n_spatial_levels(config: UNetConfig) -> int:
    """Leading levels that never mix frames (temporal kernel 1, no temporal pooling before)."""
    n = 0
    for level, k_time in enumerate(config.temporal_kernel):
        if k_time != 1 or (level > 0 and config.temporal_pool[level - 1]):
            break
        n += 1
    return n


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) → (B·T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _unfold(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B·T, C, H, W) → (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


def build_model(config: UNetConfig | None = None) -> UNet2DTime:
    """A freshly initialised network for ``config`` (default: the bundled CPU size)."""
    return UNet2DTime(config or BUNDLED_CONFIG)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def use_fast_cpu_layout(network: nn.Module) -> nn.Module:
    """Put 3D convolution weights in channels-last layout (faster oneDNN kernels on CPU)."""
    for module in network.modules():
        if isinstance(module, nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
    return network
