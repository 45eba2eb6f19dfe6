"""Train the view-orientation network (:mod:`echo_napari.view_orientation`).

Every training window is shown as it is (label 0) or mirrored left-right (label 1): the
simulator's sequences (histogram-matched in part to the real videos, as the segmentation
model's) and the training EchoNet videos, which all use EchoNet's convention. The held-out
videos are never trained on; they are scored at the end, both ways, for the card. With
``--folds 3`` the 18 training videos are first cross-validated (each third left out of one
run) and the left-out scores go into the card too; they are what :data:`MARGIN` was
chosen on.

The bundled ``orient_v1`` was made by::

    python -m echo_napari.view_orientation_train --videos-npz VIDEOS.npz --folds 3 \\
        --out echo_napari/models/orient_v1
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from echo_napari.io.video import iter_videos_npz
from echo_napari.segmentation.appearance import matcher, reference_values
from echo_napari.segmentation.data import HELD_OUT_VIDEOS, simulated_arrays
from echo_napari.segmentation.training import resize_sequence
from echo_napari.simulation.params import SimulationParams, seeds
from echo_napari.view_orientation import (
    FRAME_SIZE,
    MARGIN,
    WINDOW,
    OrientationCheck,
    OrientationNet,
    check_orientation,
    clip_features,
    save_orientation_model,
    symmetric_sector,
)

logger = logging.getLogger(__name__)

#: The segmentation model's simulated training set (seg_v3's recipe).
SIM_PARAMS = SimulationParams(
    ef_range=(0.15, 0.8), apex_motion=0.25, apex_gap_mm=(8.0, 30.0), depth_range_mm=(130.0, 200.0)
)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotation ±20°, zoom 0.8–1.25, shift ±15 %, sector width 0.85–1.15, gamma, gain,
    noise, on ``(B, 2, F, F)`` features (the same transform for both channels)."""
    b = x.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    angle = (rand(b) - 0.5) * 2 * np.pi * 20 / 180
    scale = 0.8 + 0.45 * rand(b)
    shift = (rand(b, 2) - 0.5) * 0.3
    width = 0.85 + 0.3 * rand(b)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos / width, -sin / width, shift[:, 0]], 1),
            torch.stack([sin, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    gamma = 0.4 + 0.8 * rand(b, 1, 1, 1)
    x = x.clamp_min(0) ** gamma * (0.7 + 0.7 * rand(b, 1, 1, 1))
    return x + 0.03 * torch.randn(x.shape, generator=gen)


class _Pool:
    """Sequences to draw windows from, with their sector masks computed once."""

    def __init__(self, sequences: list[np.ndarray]) -> None:
        self.sequences = sequences
        self.sectors = [symmetric_sector(s) for s in sequences]

    def window(self, rng: np.random.Generator, flip: bool) -> torch.Tensor:
        i = int(rng.integers(len(self.sequences)))
        seq, sector = self.sequences[i], self.sectors[i]
        stride = int(rng.integers(1, 3))
        start = int(rng.integers(0, max(1, len(seq) - stride * WINDOW)))
        clip = seq[start : start + stride * WINDOW : stride]
        if flip:
            clip, sector = clip[:, :, ::-1], sector[:, ::-1]
        return clip_features(np.ascontiguousarray(clip), np.ascontiguousarray(sector))


def train_network(
    sim: _Pool,
    real: _Pool | None,
    steps: int = 1000,
    batch: int = 32,
    real_share: float = 0.5,
    lr: float = 2e-3,
    seed: int = 0,
) -> OrientationNet:
    """AdamW with a cosine schedule on a balanced binary task (as is / mirrored)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    network = OrientationNet()
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-3)
    network.train()
    t0 = time.perf_counter()
    for step in range(steps):
        flips = rng.random(batch) < 0.5
        pools = [real if real is not None and rng.random() < real_share else sim for _ in flips]
        x = torch.stack([pool.window(rng, bool(f)) for pool, f in zip(pools, flips, strict=True)])
        loss = F.binary_cross_entropy_with_logits(
            network(_augment(x, gen)), torch.from_numpy(flips.astype(np.float32))
        )
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 200 == 0 or step == steps - 1:
            logger.info(
                "step %d/%d loss %.4f (%.0f s)",
                step + 1,
                steps,
                loss.item(),
                time.perf_counter() - t0,
            )
    return network.eval()


def score_both_ways(network: OrientationNet, frames: np.ndarray) -> tuple[float, float]:
    """Scores of a ``(T, S, S)`` video (at :data:`FRAME_SIZE`) as it is and mirrored."""
    mirrored = np.ascontiguousarray(frames[:, :, ::-1])
    return check_orientation(frames, network).score, check_orientation(mirrored, network).score


def _summary(scores: dict[str, tuple[float, float]]) -> dict:
    """Right / unsure / wrong verdicts over videos shown both ways."""
    counts = Counter()
    for as_is, mirrored in scores.values():
        counts[OrientationCheck(as_is, 1).judged("standard")] += 1
        counts[OrientationCheck(mirrored, 1).judged("mirrored")] += 1
    return {
        "shown": sum(counts.values()),
        **{outcome: counts[outcome] for outcome in ("right", "wrong", "unsure")},
        "closest_to_zero": round(min(min(abs(a), abs(m)) for a, m in scores.values()), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-npz", required=True, help="EchoNet videos (one array per stem)")
    parser.add_argument("--out", required=True, help="output stem (writes .safetensors + .json)")
    parser.add_argument("--folds", type=int, default=0, help="cross-validate first (0: no)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--n-sim", type=int, default=240)
    parser.add_argument("--cache-dir", default="/tmp/echo_napari_seg_cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    videos = {
        stem: resize_sequence(frames, None, FRAME_SIZE)[0]
        for stem, frames in iter_videos_npz(args.videos_npz)
    }
    train_stems = sorted(s for s in videos if s not in HELD_OUT_VIDEOS)
    held_stems = sorted(s for s in videos if s in HELD_OUT_VIDEOS)
    appearance = matcher(reference_values([videos[s] for s in train_stems]), 0.6)
    sim_seeds = seeds("train", args.n_sim)
    sim = _Pool(
        [
            appearance(seed, simulated_arrays(seed, FRAME_SIZE, args.cache_dir, SIM_PARAMS)[0])
            for seed in sim_seeds
        ]
    )
    logger.info("%d simulated, %d training videos", len(sim.sequences), len(train_stems))
    card: dict = {
        "version": "orient_v1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": "view-orientation check: scores whether an apical four-chamber clip "
        "is mirrored (LV on the left) from its mean frame and temporal spread inside the "
        "sector; antisymmetric (a clip and its mirror image get opposite scores)",
        "data": {
            "simulated": f"seeds('train', {args.n_sim}), seg_v3's simulator settings, 60 % "
            "histogram-matched to the training videos",
            "real": "EchoNet-Dynamic research-use videos (Stanford research-use agreement), "
            "each shown as it is and mirrored",
            "training_videos": train_stems,
            "held_out_never_trained": held_stems,
        },
        "training": {
            "steps": args.steps,
            "batch": 32,
            "real_share": 0.5,
            "seed": args.seed,
            "command": "python -m echo_napari.view_orientation_train --videos-npz <videos> "
            f"--folds {args.folds} --steps {args.steps} --seed {args.seed} --out <stem>",
        },
        "margin": MARGIN,
    }
    if args.folds:
        left_out_scores: dict[str, tuple[float, float]] = {}
        for fold in range(args.folds):
            left_out = train_stems[fold :: args.folds]
            kept = [s for s in train_stems if s not in left_out]
            network = train_network(
                sim, _Pool([videos[s] for s in kept]), args.steps, seed=args.seed + 1 + fold
            )
            for stem in left_out:
                left_out_scores[stem] = score_both_ways(network, videos[stem])
                logger.info(
                    "fold %d %s: as is %+.2f, mirrored %+.2f", fold, stem, *left_out_scores[stem]
                )
        card["cross_validation"] = {
            "folds": args.folds,
            "scores_as_is_mirrored": {
                s: [round(a, 2), round(m, 2)] for s, (a, m) in left_out_scores.items()
            },
            "summary": _summary(left_out_scores),
        }
    network = train_network(
        sim, _Pool([videos[s] for s in train_stems]), args.steps, seed=args.seed
    )
    held = {stem: score_both_ways(network, videos[stem]) for stem in held_stems}
    card["held_out"] = {
        "scores_as_is_mirrored": {s: [round(a, 2), round(m, 2)] for s, (a, m) in held.items()},
        "summary": _summary(held),
    }
    card["training"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    path = save_orientation_model(network, args.out, card)
    logger.info(
        "wrote %s; cross-validation %s; held out %s",
        path,
        card.get("cross_validation", {}).get("summary"),
        card["held_out"]["summary"],
    )


if __name__ == "__main__":
    main()
