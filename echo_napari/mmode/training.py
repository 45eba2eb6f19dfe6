"""Training of the M-mode band network on simulated strips (and fine-tuning on corrected ones).

``train_steps`` is a generator yielding :class:`MModeTrainProgress` (GUI worker, CLI bar and
tests share it); ``train`` runs it to the end. Intensity augmentation reuses
:func:`echo_napari.segmentation.augment.random_intensity` (the 2D+time model's).

Bundled weights: ``python -m echo_napari.mmode.training --minutes 18`` writes
``echo_napari/models/mmode_v1.safetensors`` + ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.mmode.model import MModeNet, MModeNetConfig, save_mmode_model
from echo_napari.mmode.training_data import StripSample, random_window, simulated_strips
from echo_napari.segmentation.augment import AugmentConfig, random_intensity
from echo_napari.simulate import seeds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MModeTrainConfig:
    """Optimisation settings."""

    steps: int = 1000
    batch: int = 8
    lr: float = 2e-3
    minutes: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class MModeTrainProgress:
    """One optimisation step: step number, loss, samples in the pool, elapsed seconds."""

    step: int
    total: int
    loss: float
    n_strips: int
    elapsed_s: float


def band_loss(logits: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice of the band class.

    Parameters
    ----------
    logits : (B, 2, D, N) float32
    band : (B, D, N) int64 in {0, 1}
    """
    ce = F.cross_entropy(logits, band)
    prob = torch.softmax(logits, 1)[:, 1]
    target = band.float()
    inter = (prob * target).sum((1, 2))
    dice = (2 * inter + 1.0) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1.0)
    return ce + (1.0 - dice).mean()


def _batch(
    pool: Sequence[StripSample],
    window: tuple[int, int],
    size: int,
    rng: np.random.Generator,
    gen: torch.Generator,
    augment: AugmentConfig | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [random_window(pool[int(rng.integers(len(pool)))], window, rng) for _ in range(size)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    bands = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
    if augment is not None:
        images = random_intensity(images[:, :, None], augment, gen)[:, :, 0]
    return images, bands


def train_steps(
    network: MModeNet,
    pool: list[StripSample],
    config: MModeTrainConfig,
    more_strips: Callable[[], list[StripSample]] | None = None,
    grow_every: int = 20,
    augment: AugmentConfig | None = None,
) -> Iterator[MModeTrainProgress]:
    """Optimise ``network`` on random windows of ``pool``; yield after every step.

    Parameters
    ----------
    network : the model, trained in place
    pool : training strips (grown by ``more_strips()`` every ``grow_every`` steps)
    config : steps (or minutes), batch, learning rate
    augment : intensity augmentation (the 2D+time model's ranges by default)
    """
    if not pool:
        raise ValueError("train_steps needs at least one training strip")
    augment = augment or AugmentConfig()
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=1e-4)
    window = network.config.window
    start = time.perf_counter()
    total = config.steps
    network.train()
    for step in range(1, total + 1):
        elapsed = time.perf_counter() - start
        if config.minutes is not None:
            fraction = min(elapsed / (60.0 * config.minutes), 1.0)
            if fraction >= 1.0:
                break
        else:
            fraction = step / total
        for group in optimiser.param_groups:
            group["lr"] = config.lr * 0.5 * (1.0 + np.cos(np.pi * fraction))
        if more_strips is not None and step % grow_every == 0:
            pool.extend(more_strips())
        images, bands = _batch(pool, window, config.batch, rng, gen, augment)
        loss = band_loss(network(images), bands)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        yield MModeTrainProgress(
            step, total, float(loss.detach()), len(pool), time.perf_counter() - start
        )
    network.eval()


def train(
    network: MModeNet,
    pool: list[StripSample],
    config: MModeTrainConfig,
    progress: Callable[[int, int], None] | None = None,
    **kwargs,
) -> list[MModeTrainProgress]:
    """Run :func:`train_steps` to the end; return the history."""
    history = []
    for record in train_steps(network, pool, config, **kwargs):
        history.append(record)
        if progress is not None:
            progress(record.step, record.total)
    return history


def fine_tune_steps(
    network: MModeNet,
    images: Sequence[np.ndarray],
    bands: Sequence[np.ndarray],
    depth_step_mm: float,
    steps: int = 50,
) -> Iterator[MModeTrainProgress]:
    """Fine-tune on corrected strips in place, yielding after every step (a GUI worker
    stops it between steps by not asking for the next one).

    Parameters
    ----------
    images, bands : (D, N) float32 in [0, 1] / uint8, already at the network's sampling
    """
    pool = [
        StripSample(i.astype(np.float32), b.astype(np.uint8), depth_step_mm)
        for i, b in zip(images, bands, strict=True)
    ]
    return train_steps(network, pool, MModeTrainConfig(steps=steps, batch=4, lr=2e-4))


def fine_tune(
    network: MModeNet,
    images: Sequence[np.ndarray],
    bands: Sequence[np.ndarray],
    depth_step_mm: float,
    steps: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> list[MModeTrainProgress]:
    """Fine-tune on corrected strips (e.g. bands from edited traces), in place.

    Parameters
    ----------
    images, bands : (D, N) float32 in [0, 1] / uint8, already at the network's sampling
    """
    history = []
    for record in fine_tune_steps(network, images, bands, depth_step_mm, steps):
        history.append(record)
        if progress is not None:
            progress(record.step, record.total)
    return history


def save_user_version(network: MModeNet, base_card: dict | None = None) -> Path:
    """Save a fine-tuned network as a new user version (``mmode_v<N>``; never overwrites).

    Returns
    -------
    Path of the new .safetensors file (the newest user version is what
    :func:`~echo_napari.mmode.model.load_mmode_model` loads by default).
    """
    from echo_napari.models.registry import next_user_model_path

    path = next_user_model_path("mmode")
    card = {k: v for k, v in (base_card or {}).items() if k not in ("name", "config")}
    card["version"] = int(path.stem.rsplit("_v", 1)[1])
    card["fine_tuned"] = True
    return save_mmode_model(network, path.with_suffix(""), card)


def main(argv: list[str] | None = None) -> int:
    """Train the bundled network on simulated ``train`` seeds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=18.0)
    parser.add_argument("--filters", type=int, default=12)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "models" / "mmode_v1")
    )
    parser.add_argument("--initial", type=int, default=12, help="sequences simulated first")
    parser.add_argument("--init", help="continue from these weights (.safetensors)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed-offset", type=int, default=0, help="use seeds[offset::997]")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also keep <out>_step<N> snapshots every N steps (for choosing on val seeds)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train_seeds = iter(seeds("train", 900_000)[args.seed_offset :: 997])
    pool: list[StripSample] = []
    used: list[int] = []
    for _ in range(args.initial):
        seed = next(train_seeds)
        used.append(seed)
        pool.extend(simulated_strips(seed))

    def more() -> list[StripSample]:
        seed = next(train_seeds)
        used.append(seed)
        return simulated_strips(seed)

    if args.init:
        from echo_napari.mmode.model import load_mmode_model

        network = load_mmode_model(args.init)
        previous = json.loads(Path(args.init).with_suffix(".json").read_text())
    else:
        network = MModeNet(MModeNetConfig(filters=args.filters))
        previous = None
    config = MModeTrainConfig(steps=100_000, minutes=args.minutes, lr=args.lr)
    last = None
    for record in train_steps(network, pool, config, more_strips=more, grow_every=15):
        last = record
        if record.step % 50 == 0:
            logger.info(
                "step %d loss %.4f strips %d %.0fs",
                record.step,
                record.loss,
                record.n_strips,
                record.elapsed_s,
            )
            save_mmode_model(network, args.out, {"status": "checkpoint"})
        if args.snapshot_every and record.step % args.snapshot_every == 0:
            save_mmode_model(network, f"{args.out}_step{record.step}", {"status": "snapshot"})
    card = {
        "version": 1,
        "task": "LV cavity band (between septal and posterior endocardium) in M-mode strips",
        "architecture": "QuickNAT-style dense-block encoder-decoder with max-unpooling",
        "training": {
            **asdict(config),
            "steps_done": last.step if last else 0,
            "final_loss": last.loss if last else None,
            "n_sequences": len(used),
            "n_strips": len(pool),
            "seeds": f"simulate seeds('train', 900000)[{args.seed_offset}::997], first "
            "n_sequences",
            "continued_from": None if previous is None else previous.get("training"),
            "data": "random lines through the LV of simulated A4C sequences (exact GT), "
            "depth step 0.8-1.5 mm, frame time 14-26 ms, SNR 8-30 dB, dropout 0-0.7",
            "augmentation": AugmentConfig().to_dict(),
        },
    }
    save_mmode_model(network, args.out, card)
    logger.info("saved %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
