"""Propagation benchmark: DIRNet vs DIRNet + refinement vs SimpleITK B-spline, one run.

On held-out simulated sequences (``seeds("test", n)``) every backend registers all
consecutive pairs both ways (then symmetrised: each direction replaced by the
inverse-consistent average of both, for every backend); ED and ES ground truth seed the
propagation; per-frame LV Dice of the forward, backward and fused results is compared with
the ground truth (Eq. 1 between ED and ES; after ES, the average of the carries from ES
and from ED). DIRNet is run with drift correction (the library default: one more batched
pass that registers every third frame both ways against the keyframe warped by its
composed field) and without; the refined and SimpleITK rows without (it would cost them
a second, slow registration pass).
Then: time of a full bidirectional propagation + fusion of a 128-frame 112×112 sequence,
and, on the held-out real EchoNet videos (no labels), local NCC of consecutive frames
before/after warping and folding.

Run: ``python benchmarks/propagation.py [--sequences 3] [--threads 2]``. Targets (DESIGN.md):
DIRNet ≥ 100× faster per pair than SimpleITK with fused LV Dice ≥ SimpleITK's and ≥ 0.95;
128-frame propagation ≤ 1 s on 2 CPU cores; folding < 0.1 % of pixels.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from echo_napari.registration import (
    DirnetBackend,
    available_backends,
    pairwise_fields,
    propagate_from_keyframes,
)
from echo_napari.registration.evaluation import evaluate_propagation, evaluate_unlabelled
from echo_napari.registration.training_data import HELD_OUT_ECHONET, read_video_frames
from echo_napari.simulation import SimulationParams, seeds, simulate_sequence

REPO = Path(__file__).resolve().parents[1]
ECHONET = REPO.parent / "shared" / "data" / "echonet-unlabeled" / "Videos"


def run_backends(backends: dict, n_sequences: int) -> dict[str, list]:
    """Scores of every backend on the first ``n_sequences`` test seeds.

    ``backends`` maps a row name to (backend, drift_correction).
    """
    results: dict[str, list] = {name: [] for name in backends}
    for seed in seeds("test", n_sequences):
        seq = simulate_sequence(seed).sequence
        frames, labels = seq.frames_array(), seq.labels
        keys = (seq.ed_index, seq.es_index)
        for name, (backend, drift) in backends.items():
            scores = evaluate_propagation(backend, frames, labels, keys, drift_correction=drift)
            results[name].append(scores)
            logging.info(
                "seed %d %-22s fused LV Dice %.4f  %.4f s/pair  propagation %.2f s",
                seed,
                name,
                scores.mean_fused,
                scores.seconds_per_pair,
                scores.seconds_propagation,
            )
    return results


def summary_table(results: dict[str, list]) -> tuple[str, dict[str, float]]:
    """Text table of the per-backend means; also returns s/pair by backend.

    "fwd"/"bwd" average the frames each direction reaches; "fused ED-ES" the frames
    between the two keyframes (Eq. 1, the paper's setting); "all" every non-keyframe frame,
    including those after ES that only the forward pass from ES reaches. "prop s" is the
    propagation time per sequence (with the drift-correction pass where it is on).
    """
    lines = [
        f"{'backend':<24}{'fwd':>7}{'bwd':>7}{'fused ED-ES':>12}{'all':>7}{'min':>7}"
        f"{'folding %':>10}{'s / pair':>10}{'prop s':>8}",
    ]
    per_pair = {}
    for name, scores in results.items():
        fwd = np.nanmean(np.concatenate([s.forward for s in scores]))
        bwd = np.nanmean(np.concatenate([s.backward for s in scores]))
        fused = np.concatenate([s.fused for s in scores])
        both = np.concatenate([~np.isnan(s.forward) & ~np.isnan(s.backward) for s in scores])
        per_pair[name] = float(np.mean([s.seconds_per_pair for s in scores]))
        folding = 100 * float(np.mean([s.folding for s in scores]))
        prop = float(np.mean([s.seconds_propagation for s in scores]))
        lines.append(
            f"{name:<24}{fwd:>7.4f}{bwd:>7.4f}{np.mean(fused[both]):>12.4f}"
            f"{np.nanmean(fused):>7.4f}{np.nanmin(fused):>7.4f}"
            f"{folding:>10.4f}{per_pair[name]:>10.4f}{prop:>8.2f}"
        )
    return "\n".join(lines), per_pair


def per_frame_table(results: dict[str, list], step: int = 4) -> str:
    """Per-frame LV Dice (fwd / bwd / fused) of the first sequence, every ``step`` frames."""
    first = next(iter(results.values()))[0]
    frames = range(0, first.fused.shape[0], step)
    lines = [f"{'frame':<34}" + "".join(f"{t:>6}" for t in frames)]
    for name, scores in results.items():
        for kind in ("forward", "backward", "fused"):
            values = getattr(scores[0], kind)
            cells = "".join(
                "   key"
                if np.isnan(values[t]) and np.isnan(scores[0].fused[t])
                else ("     -" if np.isnan(values[t]) else f"{values[t]:>6.3f}")
                for t in frames
            )
            lines.append(f"{name + ' ' + kind:<34}{cells}")
    return "\n".join(lines)


def time_long_sequence(
    backend: DirnetBackend, repeats: int = 3, drift_correction: bool = True
) -> dict[str, float]:
    """Seconds for registration (254 pairs) and propagation + fusion of 128 frames."""
    params = SimulationParams(frames_per_cycle=64, n_cycles=2.0)
    seq = simulate_sequence(seeds("test", 1)[0], params).sequence
    frames = seq.frames_array()
    keyframes = {k: seq.labels[k] for k in (seq.ed_index, seq.es_index, 64, seq.es_index + 64)}
    register_s, propagate_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fields = pairwise_fields(frames, backend)
        register_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        propagate_from_keyframes(fields, keyframes, drift_correction=drift_correction)
        propagate_s.append(time.perf_counter() - start)
    return {
        "frames": frames.shape[0],
        "register": min(register_s),
        "propagate": min(propagate_s),
        "total": min(r + p for r, p in zip(register_s, propagate_s, strict=True)),
    }


def real_videos(backend: DirnetBackend, max_pairs: int) -> str:
    """Table of NCC before/after and folding on the held-out real videos."""
    lines = [f"{'held-out video':<26}{'NCC before':>11}{'NCC after':>10}{'folding %':>10}"]
    for name in HELD_OUT_ECHONET:
        path = ECHONET / name
        if not path.exists():
            continue
        scores = evaluate_unlabelled(backend, read_video_frames(path), max_pairs)
        lines.append(
            f"{name:<26}{scores.ncc_before:>11.4f}{scores.ncc_after:>10.4f}"
            f"{100 * scores.folding:>10.4f}"
        )
    return "\n".join(lines) if len(lines) > 1 else "(real videos not found: section skipped)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--refine-steps", type=int, default=10)
    parser.add_argument("--real-pairs", type=int, default=None)
    parser.add_argument("--skip-simpleitk", action="store_true")
    parser.add_argument("--skip-refine", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    dirnet = DirnetBackend(device="cpu")
    # Drift correction (the default) for DIRNet; the refined and SimpleITK rows are run
    # without it, as before (with it, each would cost a second full registration pass).
    backends = {
        "dirnet": (dirnet, True),
        "dirnet, no drift corr.": (dirnet, False),
        f"dirnet+refine({args.refine_steps}), no dc": (
            DirnetBackend(device="cpu", refine_steps=args.refine_steps),
            False,
        ),
    }
    if args.skip_refine:
        del backends[f"dirnet+refine({args.refine_steps}), no dc"]
    if args.skip_simpleitk:
        pass
    elif "simpleitk" in available_backends():
        backends["simpleitk, no dc"] = (
            available_backends()["simpleitk"](threads=args.threads),
            False,
        )
    else:
        logging.warning(
            "SimpleITK plugin not installed: pip install -e plugins/echo-napari-simpleitk"
        )

    results = run_backends(backends, args.sequences)
    table, per_pair = summary_table(results)
    timing = time_long_sequence(dirnet)
    plain = time_long_sequence(dirnet, drift_correction=False)
    real = real_videos(dirnet, args.real_pairs)

    print(
        f"\n## Propagation on {args.sequences} held-out simulated sequences "
        f"(LV cavity Dice vs ground truth, keyframes ED+ES; torch threads {args.threads})"
    )
    print(table)
    print("\nPer-frame LV Dice, first sequence (key = keyframe, - = direction absent):")
    print(per_frame_table(results))
    if "simpleitk, no dc" in per_pair:
        ratio = per_pair["simpleitk, no dc"] / per_pair["dirnet"]
        print(f"\nSimpleITK / DIRNet time per pair: {ratio:.0f}x (target >= 100x)")
    print(
        f"\n128-frame 112x112 sequence, 4 keyframes: registration of "
        f"{2 * (timing['frames'] - 1)} pairs {timing['register']:.3f} s + propagation and fusion "
        f"{timing['propagate']:.3f} s (with drift correction) = {timing['total']:.3f} s "
        f"(target <= 1 s); without drift correction: propagation {plain['propagate']:.3f} s, "
        f"total {plain['total']:.3f} s; load average {os.getloadavg()[0]:.2f} "
        f"(1 min, {os.cpu_count()} CPUs)"
    )
    print("\n## Held-out real EchoNet videos (consecutive pairs, no labels)")
    print(real)


if __name__ == "__main__":
    main()
