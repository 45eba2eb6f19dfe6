"""Command-line DIRNet training: sources, time budget, validation and the model card.

Used by ``scripts/train_dir.py``; :func:`train_and_save` is the reusable entry.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from echo_napari.registration.backends import DirnetBackend
from echo_napari.registration.dirnet import DirNetConfig
from echo_napari.registration.evaluation import evaluate_propagation, evaluate_unlabelled
from echo_napari.registration.modelio import load_dirnet, save_dirnet
from echo_napari.registration.training import TrainConfig, new_model, train_steps
from echo_napari.registration.training_data import (
    HELD_OUT_ECHONET,
    PairSource,
    echonet_npz_source,
    echonet_source,
    labelled_sequences,
    load_simulator,
    read_video_frames,
    simulated_source,
)

log = logging.getLogger(__name__)


def validate(backend: DirnetBackend, n_val: int, echonet_dir: Path | None, size: int) -> dict:
    """Validation Dice on simulated 'val' sequences and held-out real-video NCC/folding."""
    scores = []
    for frames, labels, (ed, es), name in labelled_sequences("val", n_val, size):
        s = evaluate_propagation(backend, frames, labels, (ed, es))
        scores.append(
            {
                "sequence": name,
                "lv_dice_fused": s.mean_fused,
                "lv_dice_forward": float(np.nanmean(s.forward)),
                "folding_percent": 100 * s.folding,
            }
        )
    out: dict = {
        "simulated_val": scores,
        "lv_dice_fused_mean": float(np.mean([s["lv_dice_fused"] for s in scores])),
        "folding_percent_mean": float(np.mean([s["folding_percent"] for s in scores])),
    }
    if echonet_dir is not None:
        real = []
        for name in HELD_OUT_ECHONET:
            path = echonet_dir / name
            if path.exists():
                r = evaluate_unlabelled(backend, read_video_frames(path, 64))
                real.append({"video": name, **asdict(r)})
        out["echonet_held_out"] = real
    return out


def train_and_save(args: argparse.Namespace) -> Path:
    """Build sources, train (within ``args.minutes``), validate and write weights + card."""
    torch.set_num_threads(args.threads)
    levels = int(np.log2(args.grid_spacing))
    arch = DirNetConfig(
        size=args.size,
        grid_spacing=args.grid_spacing,
        kernels=tuple([16] + [32] * (levels - 1)),
        normalize_input=args.normalize_input,
        head_kernel_size=args.head_kernel_size,
    )
    sources: list[PairSource] = []
    weights: list[float] = []
    data_used = []
    echonet_dir = Path(args.echonet_dir) if args.echonet_dir else None
    if args.videos_npz:
        real = echonet_npz_source(args.videos_npz, args.size)
        echonet_dir = Path(args.videos_npz)
    elif echonet_dir is not None and echonet_dir.is_dir():
        real = echonet_source(echonet_dir, args.size)
    else:
        real = None
    if real is not None:
        real.gap_exponent = args.gap_exponent
        sources.append(real)
        weights.append(args.real_weight)
        data_used.append(
            {
                "name": "EchoNet-Dynamic research-use videos (unlabelled)",
                "videos": real.files,
                "held_out": list(HELD_OUT_ECHONET),
            }
        )
    else:
        echonet_dir = None
    simulator = load_simulator()
    if simulator is not None:
        sim_seeds = simulator[1]("train", args.sim_sequences)
    else:
        sim_seeds = list(range(args.sim_sequences))
    sim = simulated_source(sim_seeds, args.size, args.sim_workers)
    sim.gap_exponent = args.gap_exponent
    sources.append(sim)
    weights.append(1.0 - args.real_weight if echonet_dir is not None else 1.0)
    data_used.append({"name": sim.name, "seeds": [int(s) for s in sim_seeds]})

    config = TrainConfig(
        iterations=args.iterations,
        batch=args.batch,
        lr=args.lr,
        alpha=args.alpha,
        window=args.window,
        source_weights=tuple(weights),
        checkpoint_every=args.checkpoint_every,
        threads=args.threads,
    )
    if args.init:
        model = load_dirnet(args.init)
        if model.config.head_kernel_size != args.head_kernel_size:
            # Function-preserving widening: training starts from exactly the init's fields.
            model = model.with_head_kernel(args.head_kernel_size)
        if model.config != arch:
            log.info("architecture taken from %s (%s)", args.init, model.config)
    else:
        model = new_model(arch)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    deadline = time.monotonic() + 60 * args.minutes
    last = None
    for record in train_steps(model, sources, config, args.checkpoint_dir, device):
        last = record
        if record.step % 50 == 0:
            log.info(
                "step %d loss %.4f ncc %.4f bending %.2e (%s) %.0fs",
                record.step,
                record.loss,
                record.ncc,
                record.bending,
                record.source[:12],
                record.elapsed,
            )
        if time.monotonic() > deadline:
            log.info("time budget of %.1f min reached at step %d", args.minutes, record.step)
            break
    model.cpu().eval()
    backend = DirnetBackend(model=model, device="cpu")
    backend.alpha, backend.window = config.alpha, config.window
    validation = validate(backend, args.val_sequences, echonet_dir, args.size)
    history = [] if last is None else [last]
    card = {
        "version": args.version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "description": "DIRNet (de Vos 2019) cubic B-spline DIR, unsupervised on frame pairs",
        "convention": "pull; (N, 2, H, W) pixels; channel 0 = dy, 1 = dx",
        "training": {
            **asdict(config),
            "iterations_done": 0 if last is None else last.step,
            "final_loss": None if last is None else last.loss,
            "final_ncc": None if last is None else last.ncc,
            "final_bending": None if last is None else last.bending,
            "seconds": None if last is None else last.elapsed,
            "loss": "-(local NCC, per pair) + alpha * bending energy (pixel units)",
            "optimizer": "AMSGrad",
            "pair_sampling": (
                f"intra-sequence, gap d with P(d) ~ d^-{args.gap_exponent:g}, d <= 32, both orders"
            ),
            "device": str(device)
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "init": Path(args.init).name if args.init else None,
        },
        "data": data_used,
        "validation": validation,
        "last_record": [asdict(r) for r in history],
    }
    if args.out:
        out = Path(args.out)
    else:
        from echo_napari.models.registry import next_user_model_path

        out = next_user_model_path("dirnet")
    save_dirnet(model, out, card)
    log.info("wrote %s (val fused LV Dice %.4f)", out, validation["lv_dice_fused_mean"])
    return out


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``scripts/train_dir.py``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", help="weights path (.safetensors); default: next user version")
    p.add_argument("--version", default="1")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--echonet-dir", default=None, help="folder of unlabelled .avi videos")
    p.add_argument("--sim-sequences", type=int, default=60)
    p.add_argument("--val-sequences", type=int, default=6)
    p.add_argument("--real-weight", type=float, default=0.5)
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--minutes", type=float, default=40.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--window", type=int, default=9)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--grid-spacing", type=int, default=8)
    p.add_argument("--normalize-input", action="store_true")
    p.add_argument("--head-kernel-size", type=int, default=1, help="grid layers' kernel")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None, help="torch device (default: CUDA if any)")
    p.add_argument("--init", default="", help="warm start from these DIRNet weights")
    p.add_argument("--videos-npz", default="", help="pre-decoded real videos (.npz)")
    p.add_argument("--sim-workers", type=int, default=1, help="processes simulating")
    p.add_argument(
        "--gap-exponent",
        type=float,
        default=1.0,
        help="pair gap sampling P(d) ~ d^-x (1: near pairs; smaller: more long-range)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    train_and_save(build_parser().parse_args(argv))
    return 0
