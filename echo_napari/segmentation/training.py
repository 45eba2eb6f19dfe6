"""Training the 2D+time U-Net: sparse, dense (pseudo-labels) and temporal-masking SSL.

Every frame of a :class:`TrainingSample` carries a loss weight: 1 for manual labels
(e.g. ED and ES tracings), a value below 1 for pseudo-labels (DIR-propagated masks), 0 for
unlabelled frames. *Sparse* training (SimLVSeg's weak supervision) is the case where only
ED/ES have a weight; *dense pseudo-label* training gives every frame a weight. The loss is
soft Dice plus cross-entropy, each weighted per frame, so unlabelled frames never
contribute. Self-supervised pretraining (SimLVSeg) blanks 60 % of a clip's frames and
reconstructs them (MSE on the blanked frames) through a separate 1×1×1 head.

:func:`train_steps` is a generator yielding :class:`TrainProgress` after each step (the
GUI's thread worker, the CLI's progress bar and the tests all drive the same generator);
:func:`train` runs it to the end and returns the history.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.errors import ModelError, SequenceError
from echo_napari.field_of_view import FieldOfView, find_field_of_view
from echo_napari.segmentation.augment import AugmentConfig, augment_batch
from echo_napari.segmentation.model import UNet2DTime

logger = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class TrainingSample:
    """One sequence prepared at the model's resolution.

    Parameters
    ----------
    frames : (T, S, S) float32 in [0, 1]
    labels : (T, S, S) uint8
    weights : (T,) float32
        Per-frame loss weight (0 = unlabelled).
    """

    frames: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        if self.frames.ndim != 3 or self.labels.shape != self.frames.shape:
            raise SequenceError(
                f"training sample: frames {self.frames.shape} and labels {self.labels.shape} "
                "must both be (T, S, S)"
            )
        if self.weights.shape != (self.frames.shape[0],):
            raise SequenceError(
                f"training sample: weights must be ({self.frames.shape[0]},); "
                f"got {self.weights.shape}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (SimLVSeg: AdamW, lr 3e-4; SSL mask ratio 0.6)."""

    steps: int = 1000
    batch_size: int = 2
    clip_len: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    ssl_steps: int = 0
    ssl_mask_ratio: float = 0.6
    max_temporal_stride: int = 2
    time_warp: float = 0.0
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class TrainProgress:
    """One optimisation step: ``phase`` is ``"ssl"`` or ``"supervised"``."""

    step: int
    total: int
    phase: str
    loss: float
    terms: dict[str, float]
    elapsed: float
    lr: float


def resize_sequence(
    frames: np.ndarray,
    labels: np.ndarray | None,
    size: int,
    crop_to_sector: bool = True,
    field_of_view: FieldOfView | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize ``(T, H, W)`` frames (bilinear, antialiased) and labels (nearest) to ``size``².

    With ``crop_to_sector``, a scanner's screen is first cut to the square around its
    imaging sector (:mod:`echo_napari.field_of_view`), as ``predict_sequence`` does, so
    that a model fine-tuned on such a clip learns the framing it will be shown;
    ``field_of_view`` is that square when the caller found it already.
    """
    if crop_to_sector:
        view = field_of_view if field_of_view is not None else find_field_of_view(frames)
        if not view.is_whole:
            frames = np.asarray(view.crop(np.asarray(frames, dtype=np.float32)))
            labels = None if labels is None else view.crop(np.asarray(labels, dtype=np.uint8))
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    out_frames = x[:, 0].clamp(0, 1).numpy()
    if labels is None:
        return out_frames, None
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.uint8))[:, None].float()
    if y.shape[-2:] != (size, size):
        y = F.interpolate(y, size=(size, size), mode="nearest")
    return out_frames, y[:, 0].to(torch.uint8).numpy()


def make_sample(
    frames: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    size: int,
) -> TrainingSample:
    """A :class:`TrainingSample` from full-size arrays (resized to ``size``)."""
    small_frames, small_labels = resize_sequence(frames, labels, size)
    return TrainingSample(small_frames, small_labels, np.asarray(weights, dtype=np.float32))


def frame_weights(
    n_frames: int,
    manual: Sequence[int],
    pseudo: Sequence[int] = (),
    manual_weight: float = 1.0,
    pseudo_weight: float = 0.3,
) -> np.ndarray:
    """``(T,)`` float32 loss weights: ``manual_weight`` on manual frames, ``pseudo_weight``
    on pseudo-labelled frames (manual wins where both), 0 elsewhere."""
    weights = np.zeros(n_frames, dtype=np.float32)
    weights[list(pseudo)] = pseudo_weight
    weights[list(manual)] = manual_weight
    return weights


# -- losses ------------------------------------------------------------------------------
def weighted_segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-frame weighted soft Dice (foreground classes) + cross-entropy.

    Parameters
    ----------
    logits : (B, C, T, S, S) float32
    target : (B, T, S, S) int64
    weights : (B, T) float32, 0 for unlabelled frames
    """
    n_classes = logits.shape[1]
    w_sum = weights.sum().clamp_min(1e-6)
    ce = F.cross_entropy(logits, target, reduction="none").mean(dim=(-2, -1))
    ce = (ce * weights).sum() / w_sum
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, n_classes).permute(0, 4, 1, 2, 3).to(probs.dtype)
    w = weights[:, None, :, None, None]
    dims = (0, 2, 3, 4)
    inter = (w * probs * onehot).sum(dims)
    denom = (w * (probs + onehot)).sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    dice_loss = 1.0 - dice[1:].mean()
    loss = dice_weight * dice_loss + ce_weight * ce
    return loss, {"dice_loss": float(dice_loss.detach()), "ce": float(ce.detach())}


# -- clip sampling -----------------------------------------------------------------------
def _clip_index(
    n_frames: int,
    clip_len: int,
    stride: int,
    must_include: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Frame indices of a clip (reflect-padded when the sequence is shorter)."""
    span = (clip_len - 1) * stride + 1
    index = np.arange(n_frames)
    if n_frames < span:
        index = np.pad(index, (0, span - n_frames), mode="reflect")
    n = len(index)
    if must_include is None:
        start = int(rng.integers(0, n - span + 1))
    else:
        positions = np.arange(clip_len) * stride
        starts = must_include - positions
        starts = starts[(starts >= 0) & (starts <= n - span)]
        start = int(rng.choice(starts)) if len(starts) else int(rng.integers(0, n - span + 1))
    return index[start : start + span : stride]


def sample_batch(
    samples: Sequence[TrainingSample],
    batch_size: int,
    clip_len: int,
    max_stride: int,
    rng: np.random.Generator,
    time_warp: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random clips: frames (B, L, S, S), labels (B, L, S, S), weights (B, L).

    A clip always contains at least one weighted frame, so sparse samples train too.
    Temporal stride (1..max_stride) and direction are random. With probability
    ``time_warp`` a clip's frames are redrawn in order with repeats and skips (an irregular
    motion speed), so the network cannot lean on the simulator's smooth motion.
    """
    frames, labels, weights = [], [], []
    for _ in range(batch_size):
        sample = samples[int(rng.integers(len(samples)))]
        n = sample.frames.shape[0]
        stride = int(rng.integers(1, max_stride + 1))
        while stride > 1 and (clip_len - 1) * stride + 1 > n:
            stride -= 1
        labelled = np.flatnonzero(sample.weights > 0)
        include = int(rng.choice(labelled)) if len(labelled) else None
        index = _clip_index(n, clip_len, stride, include, rng)
        if rng.random() < 0.5:
            index = index[::-1]
        # Drawn only when on, so other users' random streams stay as they were.
        if time_warp > 0 and rng.random() < time_warp:
            index = index[np.sort(rng.integers(0, len(index), len(index)))]
        frames.append(sample.frames[index])
        labels.append(sample.labels[index])
        weights.append(sample.weights[index])
    return np.stack(frames), np.stack(labels), np.stack(weights)


def sample_ssl_batch(
    videos: Sequence[np.ndarray], batch_size: int, clip_len: int, max_stride: int, rng
) -> np.ndarray:
    """Random unlabelled clips (B, L, S, S) from ``(T, S, S)`` videos."""
    clips = []
    for _ in range(batch_size):
        video = videos[int(rng.integers(len(videos)))]
        stride = int(rng.integers(1, max_stride + 1))
        clips.append(video[_clip_index(video.shape[0], clip_len, stride, None, rng)])
    return np.stack(clips)


def _lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 5 % of the base rate."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _normalise(clips: torch.Tensor, network: UNet2DTime) -> torch.Tensor:
    return (clips - network.config.mean) / network.config.std


def supervised_batch_loss(
    network: UNet2DTime,
    samples: Sequence[TrainingSample],
    config: TrainConfig,
    rng: np.random.Generator,
    gen: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one random labelled batch: clips sampled (:func:`sample_batch`), augmented
    and scored with :func:`weighted_segmentation_loss`."""
    frames, labels, weights = sample_batch(
        samples,
        config.batch_size,
        config.clip_len,
        config.max_temporal_stride,
        rng,
        config.time_warp,
    )
    clips = torch.from_numpy(frames)[:, None]
    target = torch.from_numpy(labels.astype(np.int64))
    clips, target = augment_batch(clips, target, config.augment, gen)
    logits = network(_normalise(clips, network).to(device))
    return weighted_segmentation_loss(
        logits,
        target.to(device),
        torch.from_numpy(weights).to(device),
        config.dice_weight,
        config.ce_weight,
    )


def frozen_copy(network: UNet2DTime) -> UNet2DTime:
    """An evaluation-mode copy of ``network`` whose parameters take no gradient (a teacher
    or an anchor)."""
    copy_ = copy.deepcopy(network).eval()
    for param in copy_.parameters():
        param.requires_grad_(False)
    return copy_


def segmentation_optimiser(
    network: UNet2DTime, config: TrainConfig
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    """AdamW over every parameter but the SSL reconstruction head."""
    params = [p for name, p in network.named_parameters() if not name.startswith("recon_head")]
    return params, torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def set_learning_rate(
    optimiser: torch.optim.Optimizer, step: int, total: int, config: TrainConfig
) -> float:
    """Apply the warm-up + cosine schedule (:func:`_lr_at`) for ``step``; returns the rate."""
    lr = _lr_at(step, total, config)
    for group in optimiser.param_groups:
        group["lr"] = lr
    return lr


def optimisation_step(
    loss: torch.Tensor,
    params: Sequence[torch.nn.Parameter],
    optimiser: torch.optim.Optimizer,
    what: str,
) -> None:
    """Backward, clip the gradient norm at 5 and step; a non-finite loss raises
    :class:`ModelError` naming ``what`` (e.g. "self-training at step 12")."""
    if not torch.isfinite(loss):
        raise ModelError(f"{what} diverged (loss {float(loss)}); lower the learning rate")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    optimiser.step()


def masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over the pixels where ``mask`` is 1 (0 when none is)."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    return (ce * mask).sum() / mask.sum().clamp_min(1.0)


# -- the training generator --------------------------------------------------------------
def train_steps(
    network: UNet2DTime,
    samples: Sequence[TrainingSample],
    config: TrainConfig | None = None,
    ssl_videos: Sequence[np.ndarray] | None = None,
    should_stop: ShouldStop | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[TrainProgress]:
    """Train ``network`` in place, yielding a :class:`TrainProgress` after every step.

    Parameters
    ----------
    network : UNet2DTime
    samples : sequence of TrainingSample
        Supervised data at the network's resolution (may be empty when only SSL runs).
    config : TrainConfig
    ssl_videos : sequence of (T, S, S) float32 in [0, 1], optional
        Unlabelled videos for ``config.ssl_steps`` of temporal-masking pretraining.
    should_stop : callable, optional
        Checked before every step; training ends early when it returns True.
    device : str
        Torch device.
    """
    config = config or TrainConfig()
    size = network.config.size
    if config.clip_len % network.config.time_divisor:
        raise ModelError(
            f"TrainConfig.clip_len={config.clip_len} must be a multiple of "
            f"{network.config.time_divisor} for this architecture"
        )
    for i, sample in enumerate(samples):
        if sample.frames.shape[1:] != (size, size):
            raise SequenceError(
                f"training sample {i}: frames are {sample.frames.shape[1:]}, expected "
                f"({size}, {size}); use make_sample() to resize"
            )
        if not (sample.weights > 0).any():
            raise SequenceError(f"training sample {i} has no labelled (weighted) frame")
    if config.steps > 0 and not samples:
        raise SequenceError("supervised training needs at least one labelled sample")
    ssl_steps = config.ssl_steps if ssl_videos else 0
    if config.ssl_steps and not ssl_videos:
        logger.warning("ssl_steps=%d requested without videos; skipping SSL", config.ssl_steps)
    device = torch.device(device)
    network.to(device).train()
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    total = ssl_steps + config.steps
    start_time = time.perf_counter()
    phases = [("ssl", ssl_steps), ("supervised", config.steps)]
    step = 0
    for phase, n_steps in phases:
        if n_steps == 0:
            continue
        params = [
            p
            for name, p in network.named_parameters()
            if not name.startswith("recon_head" if phase == "supervised" else "seg_head")
        ]
        optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        for phase_step in range(n_steps):
            if should_stop is not None and should_stop():
                network.eval()
                return
            lr = _lr_at(phase_step, n_steps, config)
            for group in optimiser.param_groups:
                group["lr"] = lr
            if phase == "ssl":
                clips = torch.from_numpy(
                    sample_ssl_batch(
                        ssl_videos,
                        config.batch_size,
                        config.clip_len,
                        config.max_temporal_stride,
                        rng,
                    )
                )[:, None]
                clips, _ = augment_batch(clips, None, config.augment, gen)
                target = _normalise(clips, network).to(device)
                n_masked = int(round(config.ssl_mask_ratio * config.clip_len))
                mask = torch.zeros(clips.shape[0], config.clip_len, dtype=torch.bool)
                for b in range(clips.shape[0]):
                    mask[b, torch.randperm(config.clip_len, generator=gen)[:n_masked]] = True
                mask = mask.to(device)[:, None, :, None, None]
                # A blanked frame is black (0 in [0, 1]) as in SimLVSeg's temporal masking.
                blank = torch.full_like(target, -network.config.mean / network.config.std)
                inputs = torch.where(mask, blank, target)
                recon = network.reconstruct(inputs)
                mask_full = mask.expand_as(target)
                loss = F.mse_loss(recon[mask_full], target[mask_full])
                terms = {"mse": float(loss.detach())}
            else:
                loss, terms = supervised_batch_loss(network, samples, config, rng, gen, device)
            if not torch.isfinite(loss):
                raise ModelError(
                    f"training diverged at step {step} ({phase}: loss {float(loss)}); "
                    "lower the learning rate"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimiser.step()
            step += 1
            yield TrainProgress(
                step=step,
                total=total,
                phase=phase,
                loss=float(loss.detach()),
                terms=terms,
                elapsed=time.perf_counter() - start_time,
                lr=lr,
            )
    network.eval()


def train(
    network: UNet2DTime,
    samples: Sequence[TrainingSample],
    config: TrainConfig | None = None,
    ssl_videos: Sequence[np.ndarray] | None = None,
    should_stop: ShouldStop | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[TrainProgress]:
    """Run :func:`train_steps` to the end; returns the list of progress records."""
    history = []
    for record in train_steps(network, samples, config, ssl_videos, should_stop, device):
        history.append(record)
        if progress is not None:
            progress(record.step, record.total)
    return history
