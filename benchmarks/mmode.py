"""M-mode benchmark: band Dice, LVID and FS error on held-out simulated M-modes, quality
flagging of simulated degradations, and Teichholz EF on the shared EchoNet videos.

    python benchmarks/mmode.py                 # evaluate the bundled model (test seeds)
    python benchmarks/mmode.py --calibrate     # first set the quality threshold (val seeds)

Simulated strips: random lines through the LV (as in training) and the default line, cut
from ``seeds("test", n)`` sequences (never used for training); ground truth = the exact
labels sampled along the same line. LVID error: mean |network − GT| per column (mm); FS
error: |FS_network − FS_GT| per strip with a complete beat. Quality: the window score on
good strips versus the same strips degraded (low SNR, dropout, missing wall): ROC AUC and
the fraction flagged poor at the calibrated threshold.

Real videos (``../shared/data/echonet-unlabeled``, skipped when absent): the default line
needs an LV segmentation; it comes from ``echo_napari.segmentation``'s bundled model when
there is one (otherwise the section says so). EchoNet AVIs carry no spacing: the scale is
assumed to be the simulator's 150 mm / 112 px (stated in the output); EF by Teichholz is
compared with FileList EF (MAE).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from echo_napari.mmode.analysis import anatomical_mmode, quality_threshold
from echo_napari.mmode.inference import clean_band, predict_band_probability
from echo_napari.mmode.measure import diameter_per_column, measure_band
from echo_napari.mmode.model import load_mmode_model
from echo_napari.mmode.quality import DEGRADATIONS, calibrate_threshold, degrade, window_quality
from echo_napari.mmode.sampling import default_line, sample_mmode
from echo_napari.mmode.training_data import random_line, random_params
from echo_napari.simulate import seeds, simulate_sequence

ROOT = Path(__file__).resolve().parents[1]
ECHONET = ROOT.parent / "shared" / "data" / "echonet-unlabeled"
ASSUMED_SPACING = (150.0 / 112, 150.0 / 112)


def simulated_strips(split: str, n_sequences: int, lines_per_sequence: int):
    """(strip, kind) pairs: the default line and random lines of held-out sequences."""
    out = []
    for seed in seeds(split, n_sequences):
        rng = np.random.default_rng([seed, 11])
        seq = simulate_sequence(seed, random_params(rng)).sequence
        cavity = seq.labels[seq.ed_index] == 1
        lines = [("default", default_line(cavity))]
        lines += [("random", random_line(cavity, rng)) for _ in range(lines_per_sequence)]
        for kind, line in lines:
            strip = sample_mmode(seq.frames, line, seq.spacing, seq.frame_time_ms, seq.labels)
            out.append((strip, kind))
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def evaluate_simulated(network, strips, threshold: float, flips: bool = True) -> dict:
    rows = []
    good_scores, bad_scores = [], {k: [] for k in DEGRADATIONS}
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for strip, kind in strips:
        prob = predict_band_probability(strip, network, flips=flips)
        band = clean_band(prob >= 0.5)
        step = strip.depth_step_mm
        lvid_pred = diameter_per_column(band, step, prob)
        lvid_gt = diameter_per_column(strip.band, step, strip.band_probability)
        both = np.isfinite(lvid_pred) & np.isfinite(lvid_gt)
        fs_pred = measure_band(band, step, strip.time_step_s, probability=prob).summary()[
            "fs_percent"
        ]
        fs_gt = measure_band(
            strip.band, step, strip.time_step_s, probability=strip.band_probability
        ).summary()["fs_percent"]
        rows.append(
            {
                "kind": kind,
                "dice": dice(band, strip.band),
                "lvid_err_mm": float(np.mean(np.abs(lvid_pred[both] - lvid_gt[both])))
                if both.any()
                else np.nan,
                "missed_columns": float(1 - both.mean()),
                "fs_err": abs(fs_pred - fs_gt)
                if fs_pred is not None and fs_gt is not None
                else np.nan,
                "lvid_err_px": float(np.mean(np.abs(lvid_pred[both] - lvid_gt[both]))) / step
                if both.any()
                else np.nan,
            }
        )
        windows = window_quality(strip.image, band, step, strip.time_step_s, threshold)
        good_scores += [w.score for w in windows]
        for degradation in DEGRADATIONS:
            image = degrade(strip.image, strip.band, degradation, rng)
            degraded = type(strip)(image=image, depth_step_mm=step, time_step_s=strip.time_step_s)
            pb = predict_band_probability(degraded, network, flips=flips)
            bb = clean_band(pb >= 0.5)
            bad_scores[degradation] += [
                w.score for w in window_quality(image, bb, step, strip.time_step_s, threshold)
            ]
    elapsed = time.perf_counter() - start
    return {"rows": rows, "good": good_scores, "bad": bad_scores, "seconds": elapsed}


def print_simulated(result: dict, threshold: float, split: str = "test") -> None:
    rows = result["rows"]
    print(f"\nHeld-out simulated M-modes ({len(rows)} strips, {split} seeds)")
    print(
        f"{'lines':<10}{'n':>4}{'Dice':>9}{'LVID err mm':>13}{'(px)':>7}{'FS err pts':>12}"
        f"{'no band cols':>14}"
    )
    for kind in ("default", "random", "all"):
        sel = [r for r in rows if kind in ("all", r["kind"])]
        mean = {k: np.nanmean([r[k] for r in sel]) for k in sel[0] if k != "kind"} if sel else {}
        if not sel:
            continue
        med = np.nanmedian([r["dice"] for r in sel])
        print(
            f"{kind:<10}{len(sel):>4}{mean['dice']:>9.3f}{mean['lvid_err_mm']:>13.2f}"
            f"{mean['lvid_err_px']:>7.2f}{mean['fs_err']:>12.2f}{mean['missed_columns']:>14.3f}"
            f"   (median Dice {med:.3f}, median LVID err "
            f"{np.nanmedian([r['lvid_err_mm'] for r in sel]):.2f} mm)"
        )
    good = np.asarray(result["good"])
    print(
        f"\nQuality score (threshold {threshold:.3f}; good windows flagged poor: "
        f"{(good < threshold).mean():.1%})"
    )
    print(f"{'degradation':<14}{'AUC':>7}{'flagged poor':>14}")
    for name, scores in result["bad"].items():
        _, auc = calibrate_threshold(good, scores)
        print(f"{name:<14}{auc:>7.3f}{(np.asarray(scores) < threshold).mean():>14.1%}")
    print(f"(network + quality on {len(rows) * 4} strips: {result['seconds']:.1f} s)")


def calibrate(network, n_sequences: int, model_path: Path | None) -> float:
    strips = simulated_strips("val", n_sequences, 3)
    result = evaluate_simulated(network, strips, 0.0)
    bad = np.concatenate([np.asarray(v) for v in result["bad"].values()])
    threshold, auc = calibrate_threshold(result["good"], bad)
    from echo_napari.models.registry import find_model

    card_path = (model_path or find_model("mmode").path).with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["quality_threshold"] = threshold
    card["quality_calibration"] = (
        f"Youden-optimal threshold of the weaker-wall CNR score on seeds('val', {n_sequences}) "
        f"strips, good vs low_snr/dropout/missing_wall degraded windows; val AUC {auc:.3f}"
    )
    card_path.write_text(json.dumps(card, indent=2))
    print(f"quality threshold {threshold:.3f} (val AUC {auc:.3f}) written to {card_path.name}")
    return threshold


def real_videos(network, threshold: float, limit: int | None) -> None:
    print("\nReal EchoNet videos (Teichholz EF from the default line vs FileList EF)")
    if not ECHONET.is_dir():
        print(f"skipped: {ECHONET} is absent")
        return
    from echo_napari.errors import EchoNapariError, ModelError
    from echo_napari.io import read_sequence

    try:
        from echo_napari.segmentation import load_model, predict_sequence

        seg_model = load_model()
    except (ModelError, ImportError) as exc:
        print(f"not computed: the default line needs an LV segmentation and {exc}")
        return
    import pandas as pd

    from echo_napari.mmode.analysis import analyse_strip

    table = pd.read_csv(ECHONET / "FileList.csv")
    print(f"assumed spacing {ASSUMED_SPACING[0]:.3f} mm (EchoNet AVIs carry none)")
    errors, errors_all, flagged, total = [], [], 0, 0
    for name, ef_ref in list(zip(table.FileName, table.EF, strict=True))[:limit]:
        path = ECHONET / "Videos" / name
        try:
            seq = read_sequence(path)
            frames = seq.frames_array()
            seq = seq.copy(spacing=ASSUMED_SPACING, labels=predict_sequence(frames, seg_model))
            strip = anatomical_mmode(seq)
            result = analyse_strip(strip, network, threshold)
        except EchoNapariError as exc:
            print(f"{name}: failed ({exc})")
            continue
        poor = sum(w.poor for w in result.windows)
        flagged += poor
        total += len(result.windows)
        ef = result.measurements.summary()["ef_percent"]
        everything = measure_band(
            result.band, strip.depth_step_mm, strip.time_step_s, probability=result.probability
        ).summary()["ef_percent"]
        pairs = (("q", ef), ("a", everything))
        text = {k: "  —  " if v is None else f"{v:5.1f}" for k, v in pairs}
        print(
            f"{name}: EF ref {ef_ref:5.1f}  Teichholz {text['q']} (poor windows left out, "
            f"{poor}/{len(result.windows)} poor)  {text['a']} (all windows)"
        )
        if ef is not None:
            errors.append(abs(ef - ef_ref))
        if everything is not None:
            errors_all.append(abs(everything - ef_ref))
    print(
        f"EF MAE {np.mean(errors) if errors else float('nan'):.1f} points over {len(errors)} "
        f"videos with a measurable beat in good windows; windows flagged poor {flagged}/{total}"
    )
    print(
        f"EF MAE ignoring quality {np.mean(errors_all) if errors_all else float('nan'):.1f} "
        f"points over {len(errors_all)} videos"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequences", type=int, default=12, help="test sequences")
    parser.add_argument("--lines", type=int, default=3, help="random lines per sequence")
    parser.add_argument("--calibrate", action="store_true", help="set the quality threshold first")
    parser.add_argument("--videos", type=int, default=None, help="limit the real videos")
    parser.add_argument("--model", type=Path, default=None, help=".safetensors (default bundled)")
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="simulated seeds to score (val: for choosing among checkpoints)",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real videos")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--no-flips", action="store_true", help="one network pass (no test-time flips)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = load_mmode_model(args.model)
    if args.calibrate:
        threshold = calibrate(network, 8, args.model)
    else:
        threshold = quality_threshold(args.model)
    strips = simulated_strips(args.split, args.sequences, args.lines)
    result = evaluate_simulated(network, strips, threshold, flips=not args.no_flips)
    print(f"test-time flips: {'off' if args.no_flips else 'depth x time (4 passes)'}")
    print_simulated(result, threshold, args.split)
    if not args.no_real:
        real_videos(network, threshold, args.videos)


if __name__ == "__main__":
    main()
