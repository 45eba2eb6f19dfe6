"""Mean-teacher self-training on unlabelled real videos (SIM_TO_REAL §3.6).

Each step mixes a supervised batch of simulated clips with a batch of real, unlabelled
clips. The *teacher* is an exponential moving average (EMA) of the student's weights. It
sees a real clip after a random geometric transform only (weak view) and its confident
pixels (max class probability ≥ ``confidence``) become pseudo-labels; the *student* sees
the same clip after strong intensity changes and is trained to agree with those labels
(cross-entropy on the confident pixels). The student thus learns real-echo texture
without labels, while the simulated batch keeps it anchored to anatomy. Only training
videos are ever given to this loop; the held-out ones stay out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from echo_napari.errors import SequenceError
from echo_napari.segmentation.augment import (
    AugmentConfig,
    random_affine,
    random_intensity,
)
from echo_napari.segmentation.model import UNet2DTime
from echo_napari.segmentation.training import (
    ShouldStop,
    TrainConfig,
    TrainingSample,
    TrainProgress,
    _normalise,
    frozen_copy,
    masked_cross_entropy,
    optimisation_step,
    sample_ssl_batch,
    segmentation_optimiser,
    set_learning_rate,
    supervised_batch_loss,
)


@dataclass(frozen=True)
class SelfTrainConfig:
    """Settings of the real-video branch.

    Parameters
    ----------
    real_batch : clips of real video per step
    real_weight : weight of the pseudo-label loss next to the simulated loss
    confidence : teacher probability a pixel needs to become a pseudo-label
    ema : teacher update rate (teacher ← ema·teacher + (1 − ema)·student)
    strong_gamma : gamma range of the student's strong intensity view
    """

    real_batch: int = 2
    real_weight: float = 1.0
    confidence: float = 0.9
    ema: float = 0.999
    strong_gamma: tuple[float, float] = (0.5, 1.6)

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)


def strong_view(config: AugmentConfig, self_config: SelfTrainConfig) -> AugmentConfig:
    """Intensity-only augmentation, stronger than the supervised one, always applied."""
    return replace(
        config,
        gamma=self_config.strong_gamma,
        gain=(0.6, 1.5),
        noise_std=0.05,
        multiplicative_noise=0.3,
        probability=1.0,
    )


@torch.no_grad()
def update_teacher(teacher: UNet2DTime, student: UNet2DTime, ema: float) -> None:
    """teacher ← ema·teacher + (1 − ema)·student, parameter by parameter."""
    for t_param, s_param in zip(teacher.parameters(), student.parameters(), strict=True):
        t_param.mul_(ema).add_(s_param.detach(), alpha=1.0 - ema)


@torch.no_grad()
def pseudo_labels(
    teacher: UNet2DTime, clips: torch.Tensor, confidence: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher labels and confidence mask for ``(B, 1, L, S, S)`` clips (normalised).

    Returns
    -------
    labels : (B, L, S, S) int64
    mask : (B, L, S, S) float32, 1 where the teacher's probability ≥ ``confidence``
    """
    probs = torch.softmax(teacher(clips), dim=1)
    best, labels = probs.max(dim=1)
    return labels, (best >= confidence).float()


def self_train_steps(
    network: UNet2DTime,
    samples: Sequence[TrainingSample],
    videos: Sequence[np.ndarray],
    config: TrainConfig,
    self_config: SelfTrainConfig | None = None,
    should_stop: ShouldStop | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[TrainProgress]:
    """Train ``network`` in place (simulated labels + real pseudo-labels), yielding progress.

    Parameters
    ----------
    network : UNet2DTime
        Student, usually warm-started from a supervised model (the teacher starts as a copy).
    samples : sequence of TrainingSample
        Labelled (simulated) data at the network's resolution.
    videos : sequence of (T, S, S) float32 in [0, 1]
        Unlabelled real training videos at the network's resolution.
    config : TrainConfig
        Optimisation settings; ``config.steps`` steps are run.
    self_config : SelfTrainConfig
    """
    self_config = self_config or SelfTrainConfig()
    if not samples or not videos:
        raise SequenceError("self-training needs labelled samples and unlabelled videos")
    size = network.config.size
    for i, video in enumerate(videos):
        if video.ndim != 3 or video.shape[1:] != (size, size):
            raise SequenceError(f"video {i}: expected (T, {size}, {size}); got {video.shape}")
    device = torch.device(device)
    network.to(device).train()
    teacher = frozen_copy(network)
    params, optimiser = segmentation_optimiser(network, config)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    geometric = replace(config.augment or AugmentConfig(), probability=0.9)
    strong = strong_view(config.augment or AugmentConfig(), self_config)
    start = time.perf_counter()
    for step in range(config.steps):
        if should_stop is not None and should_stop():
            break
        lr = set_learning_rate(optimiser, step, config.steps, config)
        sim_loss, terms = supervised_batch_loss(network, samples, config, rng, gen, device)
        real = torch.from_numpy(
            sample_ssl_batch(
                videos, self_config.real_batch, config.clip_len, config.max_temporal_stride, rng
            )
        )[:, None]
        weak, _ = random_affine(real, None, geometric, gen)
        hard, mask = pseudo_labels(
            teacher, _normalise(weak, network).to(device), self_config.confidence
        )
        strong_clips = random_intensity(weak, strong, gen)
        logits = network(_normalise(strong_clips, network).to(device))
        real_loss = masked_cross_entropy(logits, hard, mask)
        loss = sim_loss + self_config.real_weight * real_loss
        optimisation_step(loss, params, optimiser, f"self-training at step {step}")
        update_teacher(teacher, network, self_config.ema)
        terms = {
            **terms,
            "real_ce": float(real_loss.detach()),
            "confident": float(mask.mean()),
        }
        yield TrainProgress(
            step=step + 1,
            total=config.steps,
            phase="self-training",
            loss=float(loss.detach()),
            terms=terms,
            elapsed=time.perf_counter() - start,
            lr=lr,
        )
    # The EMA teacher is the smoother of the two and the one kept (mean-teacher practice).
    network.load_state_dict(teacher.state_dict())
    network.eval()
