"""Weak supervision from reported ejection fractions (video-level labels, no tracings).

Many sites have an EF for every clip (the clinical report, EchoNet-Dynamic's
``FileList.csv``) but no traced contours. Each step here mixes a supervised batch of
simulated clips with real beats whose only label is that EF:

1. the beats (end-diastole, end-systole frame pairs) of every real video are found once,
   before training, from the area curve of the starting model (:func:`find_beats`);
2. a step takes one beat, cuts a clip of ``clip_len`` frames centred on its ED frame and
   one centred on its ES frame, moves both with the *same* random geometric and intensity
   transform (a ratio of volumes does not change under it) and segments them;
3. the soft LV area ``A`` (sum of the cavity probability) of the two centre frames gives
   area-length volumes ``A² / L`` — the long-axis length ``L`` is read from the hard mask
   and held constant, so the gradient reaches the network through the area only — and an
   EF; the loss is a Huber penalty on its distance to the reported EF beyond a tolerance.

The simulated batch keeps the masks anatomical (a cavity, a wall, an atrium); the EF term
only says how much the cavity must shrink from ED to ES on real images. Only training
videos are ever given to this loop; the held-out ones stay out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.errors import SequenceError
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_volume import long_axis
from echo_napari.segmentation.augment import AugmentConfig, random_affine, random_intensity
from echo_napari.segmentation.model import UNet2DTime
from echo_napari.segmentation.self_training import pseudo_labels
from echo_napari.segmentation.training import (
    ShouldStop,
    TrainConfig,
    TrainingSample,
    TrainProgress,
    _normalise,
    frozen_copy,
    masked_cross_entropy,
    optimisation_step,
    segmentation_optimiser,
    set_learning_rate,
    supervised_batch_loss,
)

#: pixels: a hard cavity mask smaller than this has no meaningful long axis.
_MIN_MASK_PX = 20


@dataclass(frozen=True)
class EFVideo:
    """A real training video with its reported EF and its beats.

    Attributes
    ----------
    frames : (T, S, S) float32 in [0, 1], at the network's resolution
    ef : reported ejection fraction, %
    beats : (ED index, ES index) pairs
    name : identifier for logs
    """

    frames: np.ndarray
    ef: float
    beats: tuple[tuple[int, int], ...]
    name: str = ""


@dataclass(frozen=True)
class EFSupervisionConfig:
    """Settings of the EF branch.

    Parameters
    ----------
    real_batch : beats per step
    ef_weight : weight of the EF loss next to the simulated loss
    tolerance : EF points within which the reported EF is not pushed on (reports are
        rounded and measured on other views: ±3 points is their own noise)
    scale : EF points that make one unit of the Huber loss
    anchor_weight : weight of the anchor term: cross-entropy to the *starting* model's
        labels on the same real clips, on the pixels it is sure of (probability ≥
        ``anchor_confidence``). Without it the EF term alone can reach the reported EF
        with implausible shapes (an end-systolic cavity cut square, an atrium drawn over
        it); with it, only the pixels the starting model was unsure of move freely.
    """

    real_batch: int = 1
    ef_weight: float = 1.0
    tolerance: float = 3.0
    scale: float = 10.0
    anchor_weight: float = 0.0
    anchor_confidence: float = 0.9

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)


def find_beats(labels: np.ndarray) -> tuple[tuple[int, int], ...]:
    """(ED, ES) pairs of a predicted label sequence, implausible beats included (a beat
    whose ES cavity was lost is exactly one this training should fix).

    Parameters
    ----------
    labels : (T, H, W) uint8 label sequence
    """
    result = ef_by_beats(labels)
    pairs = [(ed, es) for ed, es, _ in result.beats + result.rejected if es > ed]
    return tuple(sorted(pairs))


def _centred_index(n_frames: int, centre: int, clip_len: int) -> np.ndarray:
    """Frame indices of a clip with ``centre`` at position ``clip_len // 2`` (edges
    reflected)."""
    index = centre - clip_len // 2 + np.arange(clip_len)
    index = np.abs(index)
    return np.where(index >= n_frames, 2 * (n_frames - 1) - index, index).clip(0, n_frames - 1)


def beat_clips(
    videos: Sequence[EFVideo], batch: int, clip_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random beats as clips: frames (B, 2·L, S, S) (ED clip then ES clip) and the
    reported EF (B,) in %."""
    clips, efs = [], []
    for _ in range(batch):
        video = videos[int(rng.integers(len(videos)))]
        ed, es = video.beats[int(rng.integers(len(video.beats)))]
        n = video.frames.shape[0]
        index = np.concatenate([_centred_index(n, ed, clip_len), _centred_index(n, es, clip_len)])
        clips.append(video.frames[index])
        efs.append(video.ef)
    return np.stack(clips), np.asarray(efs, dtype=np.float32)


def _axis_length(mask: np.ndarray, fallback: float) -> float:
    if mask.sum() < _MIN_MASK_PX:
        return fallback
    return max(long_axis(mask, None).length, 1.0)


def predicted_ef(logits: torch.Tensor, clip_len: int) -> torch.Tensor:
    """Differentiable EF (%) of beats from the logits of their ED and ES clips.

    Parameters
    ----------
    logits : (2·B, C, L, S, S), ED clips at even rows, ES clips at odd rows
    clip_len : L

    Returns
    -------
    (B,) float EF, % (area-length, the long axis of the hard mask held constant)
    """
    centre = clip_len // 2
    probs = torch.softmax(logits[:, :, centre], dim=1)[:, 1]  # (2B, S, S)
    area = probs.sum(dim=(1, 2)).clamp_min(1.0)
    hard = (logits[:, :, centre].argmax(dim=1) == 1).cpu().numpy()
    lengths = []
    for ed_mask, es_mask in zip(hard[0::2], hard[1::2], strict=True):
        ed_length = _axis_length(ed_mask, float(np.sqrt(max(ed_mask.sum(), 1)) * 1.5))
        lengths += [ed_length, _axis_length(es_mask, ed_length)]
    length = torch.tensor(lengths, dtype=area.dtype, device=area.device)
    volume = area * area / length
    return 100.0 * (1.0 - volume[1::2] / volume[0::2])


def ef_loss(
    predicted: torch.Tensor, reported: torch.Tensor, config: EFSupervisionConfig
) -> torch.Tensor:
    """Huber penalty on the EF error beyond ``config.tolerance`` points, mean over beats."""
    excess = F.relu((predicted - reported).abs() - config.tolerance) / config.scale
    return F.smooth_l1_loss(excess, torch.zeros_like(excess), beta=1.0)


def ef_supervision_steps(
    network: UNet2DTime,
    samples: Sequence[TrainingSample],
    videos: Sequence[EFVideo],
    config: TrainConfig,
    ef_config: EFSupervisionConfig | None = None,
    should_stop: ShouldStop | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[TrainProgress]:
    """Train ``network`` in place on simulated labels + reported EFs, yielding progress.

    Parameters
    ----------
    network : UNet2DTime, usually warm-started from a supervised model
    samples : labelled (simulated) data at the network's resolution
    videos : real training videos with their EF and beats (:class:`EFVideo`)
    config : optimisation settings; ``config.steps`` steps are run
    ef_config : EFSupervisionConfig
    """
    ef_config = ef_config or EFSupervisionConfig()
    videos = [v for v in videos if v.beats]
    if not samples or not videos:
        raise SequenceError("EF supervision needs labelled samples and videos with beats")
    size = network.config.size
    for video in videos:
        if video.frames.ndim != 3 or video.frames.shape[1:] != (size, size):
            raise SequenceError(
                f"video {video.name}: expected (T, {size}, {size}); got {video.frames.shape}"
            )
    device = torch.device(device)
    network.to(device).train()
    anchor = frozen_copy(network) if ef_config.anchor_weight > 0 else None
    params, optimiser = segmentation_optimiser(network, config)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    augment = replace(config.augment or AugmentConfig(), probability=0.9)
    clip_len = config.clip_len
    start = time.perf_counter()
    for step in range(config.steps):
        if should_stop is not None and should_stop():
            break
        lr = set_learning_rate(optimiser, step, config.steps, config)
        sim_loss, terms = supervised_batch_loss(network, samples, config, rng, gen, device)
        frames, reported = beat_clips(videos, ef_config.real_batch, clip_len, rng)
        # One transform per beat: ED and ES travel together as one 2·L-frame clip.
        clips = torch.from_numpy(frames)[:, None]
        clips, _ = random_affine(clips, None, augment, gen)
        clips = random_intensity(clips, augment, gen)
        b = clips.shape[0]
        pairs = clips.reshape(b, 1, 2, clip_len, size, size).transpose(1, 2)
        pairs = pairs.reshape(2 * b, 1, clip_len, size, size)
        inputs = _normalise(pairs, network).to(device)
        logits = network(inputs)
        predicted = predicted_ef(logits, clip_len)
        real_loss = ef_loss(predicted, torch.from_numpy(reported).to(device), ef_config)
        loss = sim_loss + ef_config.ef_weight * real_loss
        if anchor is not None:
            hard, sure = pseudo_labels(anchor, inputs, ef_config.anchor_confidence)
            anchor_loss = masked_cross_entropy(logits, hard, sure)
            loss = loss + ef_config.anchor_weight * anchor_loss
            terms = {**terms, "anchor_ce": float(anchor_loss.detach())}
        optimisation_step(loss, params, optimiser, f"EF supervision at step {step}")
        error = (predicted.detach().cpu() - torch.from_numpy(reported)).abs().mean()
        yield TrainProgress(
            step=step + 1,
            total=config.steps,
            phase="ef-supervision",
            loss=float(loss.detach()),
            terms={**terms, "ef_loss": float(real_loss.detach()), "ef_abs_err": float(error)},
            elapsed=time.perf_counter() - start,
            lr=lr,
        )
    network.eval()
