"""Train the shape prior (:mod:`echo_napari.segmentation.shape_prior`) on simulated labels.

The bundled ``shape_v1`` was made with (~15 min on 2 threads; the simulated sequences are
those ``seg_v2``…``seg_v4`` trained on, cached under ``--cache-dir``)::

    python -m echo_napari.segmentation.train_shape_prior --steps 3200 --threads 2 \
        --out echo_napari/models/shape_v1

Only simulated label maps are used, no real video and no image: the prior learns what
a heart's shape is from the simulator's anatomy, and what errors look like from
:mod:`echo_napari.segmentation.shape_corruptions`.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from echo_napari.segmentation.data import simulated_arrays, simulator_seeds, training_params
from echo_napari.segmentation.shape_corruptions import corrupt
from echo_napari.segmentation.shape_prior import (
    ShapePriorConfig,
    ShapePriorNet,
    save_shape_prior,
    to_grid,
)

logger = logging.getLogger(__name__)

#: Simulator settings of the sequences ``seg_v2``…``seg_v4`` were trained on (hearts of
#: varied size, EF and apex depth).
DEPTH_RANGE_MM = (130.0, 200.0)
APEX_GAP_MM = (8.0, 30.0)
#: Side of the simulated label maps (pixels): the segmentation network's grid, on which
#: the corruptions' sizes are set.
POOL_SIZE = 112


def simulated_label_maps(
    n_sequences: int, every: int = 3, cache_dir: str | None = None
) -> np.ndarray:
    """Every ``every``-th frame's labels of the first ``n_sequences`` training seeds:
    (N, POOL_SIZE, POOL_SIZE) uint8."""
    params = replace(training_params(), depth_range_mm=DEPTH_RANGE_MM, apex_gap_mm=APEX_GAP_MM)
    maps = [
        simulated_arrays(seed, POOL_SIZE, cache_dir, params)[1][::every]
        for seed in simulator_seeds("train", n_sequences)
    ]
    return np.concatenate(maps)


def augment(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A label map mirrored (half the time), rotated ±15°, zoomed 0.85–1.15× and shifted
    ±6 px: (H, W) uint8."""
    if rng.random() < 0.5:
        labels = labels[:, ::-1]
    angle = np.deg2rad(rng.uniform(-15, 15))
    zoom = rng.uniform(0.85, 1.15)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    centre = (np.array(labels.shape) - 1) / 2
    offset = centre - matrix @ centre + rng.uniform(-6, 6, 2)
    return ndimage.affine_transform(labels, matrix, offset, order=0, mode="constant").astype(
        np.uint8
    )


def training_batch(
    pool: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` corrupted one-hot maps ``(B, 4, GRID, GRID)`` and their clean labels
    ``(B, GRID, GRID)``: augmented and corrupted on the pool's grid (the corruptions'
    sizes are in its pixels), then taken to the prior's."""
    clean = [augment(pool[rng.integers(len(pool))], rng) for _ in range(size)]
    noisy = [corrupt(labels, rng) for labels in clean]
    return to_grid(np.stack(noisy)), to_grid(np.stack(clean)).argmax(1)


def train(
    pool: np.ndarray,
    steps: int,
    batch: int = 24,
    lr: float = 2e-3,
    seed: int = 0,
    config: ShapePriorConfig | None = None,
    show_progress: bool = False,
) -> tuple[ShapePriorNet, list[float]]:
    """Train a prior on label maps ``pool`` (N, S, S) uint8: AdamW, cosine-decayed
    learning rate. Returns the network (evaluation mode) and the loss of each step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = ShapePriorNet(config)
    optimiser = torch.optim.AdamW(network.parameters(), lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    losses = []
    network.train()
    for _ in tqdm(range(steps), disable=not show_progress, desc="shape prior"):
        x, y = training_batch(pool, batch, rng)
        loss = F.cross_entropy(network(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return network.eval(), losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3200)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=240, help="simulated sequences")
    parser.add_argument("--channels", type=int, nargs="+", default=list(ShapePriorConfig.channels))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="/tmp/echo_napari_seg_cache")
    parser.add_argument("--out", required=True, help="output stem (no suffix)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pool = simulated_label_maps(args.n_train, cache_dir=args.cache_dir)
    logger.info("%d simulated label maps", len(pool))
    config = ShapePriorConfig(tuple(args.channels))
    network, losses = train(
        pool, args.steps, args.batch, args.lr, args.seed, config, show_progress=True
    )
    card = {
        "version": args.out.rstrip("/").split("/")[-1],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": "shape prior: redraws predicted label maps as plausible hearts "
        "(denoising auto-encoder of label maps; sees no image)",
        "data": {
            "simulated": f"seeds('train', {args.n_train}), every third frame's labels, "
            f"depth {DEPTH_RANGE_MM} mm, apex gap {APEX_GAP_MM} mm",
            "real": "none",
        },
        "training": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "final_loss_mean_of_last_100": float(np.mean(losses[-100:])),
            "minutes": round((time.perf_counter() - t0) / 60, 1),
            "command": "python -m echo_napari.segmentation.train_shape_prior "
            f"--steps {args.steps} --channels {' '.join(map(str, args.channels))} "
            f"--threads {args.threads} --out {args.out}",
        },
    }
    logger.info("wrote %s", save_shape_prior(network, args.out, card))


if __name__ == "__main__":
    main()
