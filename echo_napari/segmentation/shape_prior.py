"""A learned shape prior: predicted label maps redrawn as plausible heart shapes.

The segmentation network, trained on simulated echo, draws on real frames shapes no
heart has: a notch bitten out of the apex where a bright trabecula crosses it, a
ventricle running through the mitral valve into the atrium, an atrium drawn apart from
the ventricle. Rule-based repairs (closing, convex hulls, cuts at a waist) fixed one
video and broke others. This is a denoising auto-encoder of label maps (Larrazabal et
al., "Post-DAE", IEEE TMI 2020): a small U-Net that sees only the labels, never the
image, trained to turn corrupted simulated label maps
(:mod:`echo_napari.segmentation.shape_corruptions`) back into the clean ones. As it never
sees an image, the simulated-to-real gap of the images does not reach it.

The LV cavity keeps the pixel count the network drew on each frame (the prior's most
LV-like pixels are taken): it decides the cavity's shape, not its size, so the areas
(and EF) stay those measured from the image. Frames with no label stay empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from echo_napari.field_of_view import FieldOfView
from echo_napari.models.files import load_cached_network, save_network_files
from echo_napari.sequence import LabelClass

MODEL_NAME = "shape"
#: Side of the square grid the prior works on (pixels): the segmentation network's. (On
#: half of it, 56, the prior took a quarter of the time but rounded the apices more: EF
#: MAE 8.2 instead of 8.0 on the 24 shared EchoNet videos.)
GRID = 112
N_CLASSES = 4
#: Frames per forward pass (with channels-last tensors, 16 frames a pass took a third
#: of the time per frame of 64 in the default layout on 2 CPU threads).
BATCH = 16
#: Added to the provenance version of labels the prior redrew (``seg_v4+refined+shape``).
SHAPED_SUFFIX = "+shape"


@dataclass(frozen=True)
class ShapePriorConfig:
    """Architecture of a :class:`ShapePriorNet` (stored in its card)."""

    channels: tuple[int, ...] = (16, 32, 48, 64, 96)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapePriorConfig:
        """Inverse of :func:`dataclasses.asdict`."""
        return cls(channels=tuple(int(c) for c in data.get("channels", cls.channels)))


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.ReLU(inplace=True),
    )


class ShapePriorNet(nn.Module):
    """``(B, 4, S, S)`` one-hot labels → ``(B, 4, S, S)`` class logits.

    A U-Net whose deepest level (S/16: 7 px at 112) sees the whole heart, so it can
    judge a shape as a whole (where the atrium ends, whether the apex is round).
    """

    def __init__(self, config: ShapePriorConfig | None = None) -> None:
        super().__init__()
        self.config = config or ShapePriorConfig()
        channels = self.config.channels
        self.down = nn.ModuleList()
        c_in = N_CLASSES
        for c_out in channels:
            self.down.append(_double_conv(c_in, c_out))
            c_in = c_out
        self.lift = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for c_out in reversed(channels[:-1]):
            self.lift.append(nn.Conv2d(c_in, c_out, 1))
            self.fuse.append(_double_conv(2 * c_out, c_out))
            c_in = c_out
        self.head = nn.Conv2d(c_in, N_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for lift, fuse in zip(self.lift, self.fuse, strict=True):
            skip = skips.pop()
            x = F.interpolate(lift(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, skip], 1))
        return self.head(x)


def one_hot(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` class labels → ``(B, 4, H, W)`` float32 one-hot."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).clamp(0, N_CLASSES - 1)
    return F.one_hot(labels, N_CLASSES).permute(0, 3, 1, 2).float()


def n_batches(n_frames: int) -> int:
    """Forward passes (progress steps) the prior takes over ``n_frames`` frames."""
    return -(-int(n_frames) // BATCH)


def to_grid(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` class labels → ``(B, 4, GRID, GRID)`` one-hot (nearest)."""
    x = one_hot(labels)
    if x.shape[-2:] != (GRID, GRID):
        x = F.interpolate(x, size=(GRID, GRID), mode="nearest")
    return x


def grid_probabilities(labels: np.ndarray, network: ShapePriorNet) -> torch.Tensor:
    """The prior's class probabilities on its grid.

    Parameters
    ----------
    labels : (B, H, W) uint8
        Any H, W: resized (nearest) to :data:`GRID`.

    Returns
    -------
    (B, 4, GRID, GRID) float32 tensor
    """
    x = to_grid(labels).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return network(x).softmax(1)


def _redraw(labels: np.ndarray, probs: torch.Tensor) -> np.ndarray:
    """One (H, W) frame redrawn from the prior's (4, GRID, GRID) probabilities (taken to
    H, W bilinearly): the cavity as many pixels as ``labels`` had, the most LV-like."""
    if probs.shape[-2:] != labels.shape:
        probs = F.interpolate(
            probs[None], size=labels.shape, mode="bilinear", align_corners=False
        )[0]
    probs = probs.numpy()  # a fresh tensor, or this frame's own row of the batch's
    count = int(np.count_nonzero(labels == LabelClass.LV_CAVITY))
    lv = probs[LabelClass.LV_CAVITY].reshape(-1).copy()
    probs[LabelClass.LV_CAVITY] = -1.0  # the others compete for what is not cavity
    out = probs.argmax(axis=0).astype(np.uint8)
    if count:
        out.reshape(-1)[np.argpartition(-lv, count - 1)[:count]] = LabelClass.LV_CAVITY
    return out


def apply_shape_prior(
    labels: np.ndarray,
    network: ShapePriorNet | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Redraw every labelled frame as the prior's plausible shape, each frame's LV cavity
    keeping its pixel count.

    Parameters
    ----------
    labels : (T, H, W) uint8
        :class:`~echo_napari.sequence.LabelClass` values; any H, W (the prior sees them
        resized to :data:`GRID`), the heart drawn as on an EchoNet-like square around
        the sector, apex up (:func:`apply_shape_prior_in_view` for other frames).
    network : ShapePriorNet, optional
        Default: the bundled prior (:func:`load_shape_prior`).
    progress : callable(done, total), optional
        Called after each batch; ``total`` is :func:`n_batches` of all the frames.

    Returns
    -------
    (T, H, W) uint8
        Frames without any label are left empty; on the others the LV cavity is as
        many pixels as it had, those the prior finds most LV-like, and every other pixel
        the likeliest of background, myocardium and LA.
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.uint8)
    labelled = np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))
    total = n_batches(len(labels))
    if labelled.size:
        network = network if network is not None else load_shape_prior()
    done = 0
    for start in range(0, labelled.size, BATCH):
        rows = labelled[start : start + BATCH]
        for row, probs in zip(rows, grid_probabilities(labels[rows], network), strict=True):
            out[row] = _redraw(labels[row], probs)
        done += 1
        if progress is not None:
            progress(done, total)
    if progress is not None and done < total:  # unlabelled frames need no pass
        progress(total, total)
    return out


def apply_shape_prior_in_view(
    labels: np.ndarray,
    field_of_view: FieldOfView | None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """:func:`apply_shape_prior` on labels of whole frames: on the square around the
    sector that the segmentation network saw (apex up), put back in the frame.

    Parameters
    ----------
    labels : (T, H, W) uint8
    field_of_view : FieldOfView or None
        :func:`~echo_napari.field_of_view.find_field_of_view` of the frames; None: the
        frames are that square already (EchoNet's).
    progress : callable(done, total), optional

    Returns
    -------
    (T, H, W) uint8
    """
    if field_of_view is None or field_of_view.is_whole:
        return apply_shape_prior(labels, progress=progress)
    square = apply_shape_prior(field_of_view.crop(np.asarray(labels)), progress=progress)
    return field_of_view.paste(square)


def shaped_version(version: str) -> str:
    """The provenance version of a prediction the prior redrew: ``seg_v4`` →
    ``seg_v4+shape`` (so a saved session says which pipeline drew its labels)."""
    return version + SHAPED_SUFFIX


def save_shape_prior(network: ShapePriorNet, stem: str | Path, card: dict) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (config + ``card``); returns the
    weights path."""
    full = {"name": MODEL_NAME, "config": asdict(network.config), **card}
    return save_network_files(network, stem, full)


_CACHE: dict[str, ShapePriorNet] = {}


def load_shape_prior(path: str | Path | None = None) -> ShapePriorNet:
    """The shape prior (the newest bundled one when ``path`` is None), in channels-last
    layout.

    Raises
    ------
    ModelError
        When the weights or card are missing, corrupt or do not fit the architecture.
    """

    def build(config: dict[str, Any]) -> ShapePriorNet:
        network = ShapePriorNet(ShapePriorConfig.from_dict(config))
        return network.to(memory_format=torch.channels_last)

    return load_cached_network(path, MODEL_NAME, "shape prior", build, _CACHE)
