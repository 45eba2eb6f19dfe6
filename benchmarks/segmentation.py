"""Segmentation benchmark: held-out simulated accuracy, smoothness, CPU speed, real-video EF.

    python benchmarks/segmentation.py                       # bundled model
    python benchmarks/segmentation.py --variant sparse=/tmp/a.safetensors \
        --variant dense=/tmp/b.safetensors                  # compare trained variants

Prints, per model: Dice / HD / HD95 (mm) per class over every frame of ``seeds("test", n)``
simulated sequences, the smoothness of the predicted LV area curve (MICCAI 2023 Eq. 2,
normalised by the mean area, ratio to the ground truth's), and the time to predict 128
frames at 112×112 on the CPU (2 threads). With the shared EchoNet videos present, also EF
from the predicted LV masks (area-length; ED/ES = max/min of the smoothed area curve)
against FileList EF, separately for the videos used in SSL and the held-out ones, and a
montage of predicted contours (written outside the repository by default: the videos are
research-use only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from echo_napari.metrics import frame_metrics, sequence_means
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_volume import area_curve_smoothness, volume_area_length
from echo_napari.segmentation import load_model, predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS, _simulator
from echo_napari.sequence import LabelClass

ROOT = Path(__file__).resolve().parents[1]
ECHONET = ROOT.parent / "shared" / "data" / "echonet-unlabeled"


def simulated_scores(model, sequences) -> dict[str, float]:
    """Mean Dice/HD/HD95 per class and area-curve smoothness ratio over sequences."""
    tables, smooth_pred, smooth_ref = [], [], []
    for seq in sequences:
        pred = predict_sequence(seq.frames_array(), model)
        table = sequence_means(frame_metrics(pred, seq.labels, seq.spacing))
        tables.append(table)
        pixel = seq.spacing[0] * seq.spacing[1]
        area_pred = (pred == LabelClass.LV_CAVITY).sum((1, 2)) * pixel
        area_ref = (seq.labels == LabelClass.LV_CAVITY).sum((1, 2)) * pixel
        smooth_pred.append(area_curve_smoothness(area_pred, seq.frame_time_ms, normalise=True))
        smooth_ref.append(area_curve_smoothness(area_ref, seq.frame_time_ms, normalise=True))
    table = pd.concat(tables).groupby(level=0)[["dice", "hd", "hd95"]].mean()
    out = {}
    for cls, row in table.iterrows():
        for key in ("dice", "hd", "hd95"):
            out[f"{cls}_{key}"] = float(row[key])
    out["smooth_pred"] = float(np.mean(smooth_pred))
    out["smooth_ratio"] = float(np.mean(smooth_pred) / np.mean(smooth_ref))
    return out


def time_128(model, repeats: int = 5) -> tuple[float, float, float]:
    """Best and median wall time and CPU time (s, best run) for 128 frames at 112×112."""
    frames = np.random.default_rng(0).random((128, 112, 112), dtype=np.float32)
    predict_sequence(frames[:32], model)
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        predict_sequence(frames, model)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    best = int(np.argmin(walls))
    return walls[best], float(np.median(walls)), cpus[best]


def ef_from_prediction(labels: np.ndarray, sigma: float = 2.0) -> float:
    """EF (%) by area-length; ED/ES = max/min of the Gaussian-smoothed LV area curve."""
    lv = labels == LabelClass.LV_CAVITY
    area = ndimage.gaussian_filter1d(lv.sum((1, 2)).astype(float), sigma, mode="nearest")
    ed, es = int(np.argmax(area)), int(np.argmin(area))
    edv = volume_area_length(lv[ed], None)
    esv = volume_area_length(lv[es], None)
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def real_videos(model, montage: Path | None) -> pd.DataFrame:
    """EF from predicted masks on every shared EchoNet video vs FileList EF."""
    from echo_napari.io.echonet import read_echonet_video

    rows, tiles = [], []
    for path in sorted((ECHONET / "Videos").glob("*.avi")):
        seq = read_echonet_video(path, lazy=False)
        frames = seq.frames_array()
        pred = predict_sequence(frames, model)
        ef = ef_by_beats(pred).ef
        reference = float(seq.metadata.get("reference", {}).get("EF", np.nan))
        held = path.stem in HELD_OUT_VIDEOS
        rows.append(
            {
                "video": path.stem,
                "held_out": held,
                "ef_pred": ef,
                "ef_global": ef_from_prediction(pred),
                "ef_ref": reference,
            }
        )
        if montage is not None and held:
            lv = (pred == LabelClass.LV_CAVITY).sum((1, 2))
            tiles.append(
                [_overlay(frames[t], pred[t]) for t in (int(lv.argmax()), int(lv.argmin()))]
            )
    if montage is not None and tiles:
        from skimage import io

        grid = np.concatenate([np.concatenate(pair, axis=1) for pair in tiles], axis=0)
        montage.parent.mkdir(parents=True, exist_ok=True)
        io.imsave(montage, (grid * 255).astype(np.uint8), check_contrast=False)
        print(f"montage (held-out videos; ED | ES by predicted area) -> {montage}")
    return pd.DataFrame(rows)


def _overlay(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB frame with the class contours drawn (LV red, myocardium blue, LA yellow)."""
    from skimage.segmentation import find_boundaries

    rgb = np.repeat(frame[..., None], 3, axis=-1)
    colours = {1: (1.0, 0.2, 0.2), 2: (0.3, 0.6, 1.0), 3: (1.0, 0.9, 0.2)}
    for cls, colour in colours.items():
        rgb[find_boundaries(labels == cls, mode="inner")] = colour
    return rgb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--variant", action="append", default=[], help="name=path")
    parser.add_argument("--n-test", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--montage", default=str(ROOT / "bench_out" / "seg_real.png"))
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    simulate_sequence, seeds = _simulator()
    sequences = [simulate_sequence(s).sequence for s in seeds("test", args.n_test)]
    models = {"bundled": load_model(args.model, "cpu")}
    for item in args.variant:
        name, _, path = item.partition("=")
        models[name] = load_model(path, "cpu")
    print(f"== held-out simulated sequences: seeds('test', {args.n_test}), every frame")
    rows = {}
    for name, model in models.items():
        rows[name] = simulated_scores(model, sequences)
        rows[name]["mode"] = model.card.get("training", {}).get("mode", "?")
        rows[name]["steps"] = model.card.get("training", {}).get("supervised_steps", "?")
    table = pd.DataFrame(rows).T
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("HD/HD95 in mm; smooth_ratio = Eq. 2 smoothness of the predicted LV area curve / GT's")
    lv_dice = rows["bundled"]["lv_dice"]
    print(f"bundled LV Dice {lv_dice:.3f} (target >= 0.93): ratio {lv_dice / 0.93:.3f}")
    best, median, cpu = time_128(models["bundled"])
    load = os.getloadavg()[0]
    print(
        f"== 128 frames at 112x112, CPU, {args.threads} threads: best {best:.2f} s, median "
        f"{median:.2f} s, CPU time {cpu:.2f} s (load average {load:.1f} on {os.cpu_count()} "
        f"cores); target 2 s: ratio {best / 2.0:.2f}"
    )
    if not args.no_real and (ECHONET / "Videos").is_dir():
        montage = Path(args.montage) if args.montage else None
        df = real_videos(models["bundled"], montage)
        df["error"] = df["ef_pred"] - df["ef_ref"]
        print("== real EchoNet videos: EF from predicted LV masks (beat median) vs FileList")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        for label, part in (("SSL-seen", df[~df.held_out]), ("held-out", df[df.held_out])):
            print(
                f"{label:9s} n={len(part):2d}: EF MAE {part.error.abs().mean():.1f}, "
                f"bias {part.error.mean():+.1f} points"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
