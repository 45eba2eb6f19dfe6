"""Real-echo benchmark of the segmentation model: EF on EchoNet videos vs FileList EF.

    python benchmarks/real_echo.py                              # bundled model
    python benchmarks/real_echo.py --variant new=/tmp/seg.safetensors

No tracings are needed: EF comes from our own full-cycle LV segmentation (area-length on
the predicted cavity; beats found on the smoothed volume curve, EF = mean over beats,
:func:`echo_napari.metrics_ef.ef_by_beats`) and is compared with the FileList EF.
Prints, per model, one row per video (ours — beat mean, ours — global max/min of the
smoothed area curve as before, the network's own masks before the LV border refinement on
the image (:mod:`echo_napari.segmentation.boundary`, part of ``predict_sequence``), the
refined masks before the shape prior redraws them (``ef_unshaped``,
:mod:`echo_napari.segmentation.shape_prior`), the shape prior's before the frames that
lost the LV's apex are re-drawn by registration (``ef_shaped``; ``apex_restored`` counts
them: :mod:`echo_napari.registration.apex_restore`, the last step of ``predict_sequence``),
FileList, number of beats, frames left unlabelled because the model found no heart there
(``no_view``: :func:`echo_napari.metrics_plausibility.view_lost_frames`), labelled frames
whose LV border the network was unsure of (``unsure``:
:mod:`echo_napari.uncertainty`), share of
anatomically plausible frames among the labelled ones (and, ``plausible_all_pct``, among
all frames, counting those left unlabelled as failing):
:mod:`echo_napari.metrics_plausibility`, also for the network's own masks; EF and that
share after the frames failing those checks are re-drawn from the passing ones by DIRNet,
:func:`echo_napari.registration.repair.repair_implausible_frames`), then MAE / bias /
Pearson r for the training videos (18: used for SSL and the grey-level reference) and the
held-out ones (6: never trained or tuned on), and LV Dice on held-out simulated test seeds.

Screenshots (ED | ES of the median beat, contours: LV red, myocardium blue, LA yellow) of
every video go to ``bench_out/`` (``--every-beat``: also ED | ES of every beat, a PNG per
video) (gitignored: the videos are research-use only and never
enter the repository). Skips the real part when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, stats

from echo_napari.field_of_view import square_apex_point
from echo_napari.io.video import iter_videos_npz
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.metrics_volume import volume_area_length
from echo_napari.registration import DirnetBackend
from echo_napari.registration.apex_restore import restore_collapsed_apex
from echo_napari.registration.repair import repair_implausible_frames
from echo_napari.segmentation import load_model, predict_sequence
from echo_napari.segmentation.boundary import refine_lv_boundary
from echo_napari.segmentation.data import HELD_OUT_VIDEOS, _simulator
from echo_napari.segmentation.evaluate import evaluate_arrays
from echo_napari.segmentation.inference import redraw_with_shape_prior
from echo_napari.sequence import LabelClass
from echo_napari.uncertainty import count_unsure

ROOT = Path(__file__).resolve().parents[1]
ECHONET = ROOT.parent / "shared" / "data" / "echonet-unlabeled"


def ef_global(labels: np.ndarray, sigma: float = 2.0) -> float:
    """EF (%) the old way: area-length at the global max/min of the smoothed area curve."""
    lv = labels == LabelClass.LV_CAVITY
    area = ndimage.gaussian_filter1d(lv.sum((1, 2)).astype(float), sigma, mode="nearest")
    ed, es = int(np.argmax(area)), int(np.argmin(area))
    edv, esv = volume_area_length(lv[ed], None), volume_area_length(lv[es], None)
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def overlay(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB frame with class contours (LV red, myocardium blue, LA yellow)."""
    from skimage.segmentation import find_boundaries

    rgb = np.repeat(frame[..., None], 3, axis=-1)
    colours = {1: (1.0, 0.2, 0.2), 2: (0.3, 0.6, 1.0), 3: (1.0, 0.9, 0.2)}
    for cls, colour in colours.items():
        rgb[find_boundaries(labels == cls, mode="inner")] = colour
    return rgb


def echonet_videos(npz: str = ""):
    """(stem, (T, H, W) float32 frames in [0, 1], FileList EF) per shared EchoNet video,
    decoded from the AVIs or read from a pre-decoded ``.npz`` (one uint8 array per stem,
    FileList.csv beside it: for machines without a video decoder)."""
    if npz:
        table = pd.read_csv(Path(npz).with_name("FileList.csv"))
        reference = dict(zip(table.FileName.str[:-4], table.EF.astype(float), strict=True))
        for stem, frames in iter_videos_npz(npz):
            yield stem, frames, reference[stem]
        return
    from echo_napari.io.echonet import read_echonet_video

    for path in sorted((ECHONET / "Videos").glob("*.avi")):
        seq = read_echonet_video(path, lazy=False)
        reference = float(seq.metadata.get("reference", {}).get("EF", np.nan))
        yield path.stem, seq.frames_array(), reference


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """``--videos-npz`` and ``--threads``, as the benchmarks on the shared videos take."""
    parser.add_argument("--videos-npz", default="", help="pre-decoded videos (.npz)")
    parser.add_argument("--threads", type=int, default=1)


def bundled_model_for_videos(args: argparse.Namespace):
    """The bundled segmentation model on ``args.threads`` threads, or None (and a line
    saying so) when neither ``--videos-npz`` nor the shared videos are there."""
    if not args.videos_npz and not ECHONET.is_dir():
        print(f"skipped: {ECHONET} not found")
        return None
    torch.set_num_threads(args.threads)
    return load_model("bundled")


def summary_by_split(rows: list[tuple], plausible: bool = False) -> str:
    """One line of EF MAE, bias and videos without an EF (with ``plausible``, also the mean
    share of plausible frames) for the training, held-out and all videos.

    Parameters
    ----------
    rows : (held_out, EF error %[, plausible share]) per video
    """
    table = np.array(rows, dtype=float)
    parts = []
    for name, part in (
        ("training", table[:, 0] == 0),
        ("held-out", table[:, 0] == 1),
        ("all", np.ones(len(table), bool)),
    ):
        if part.any():
            e = table[part, 1]
            last = f"no EF {int(np.isnan(e).sum())}"
            if plausible:
                last += f" plausible {100 * table[part, 2].mean():.1f} %"
            parts.append(
                f"{name} ({int(part.sum())}) EF MAE {np.nanmean(np.abs(e)):.1f} bias "
                f"{np.nanmean(e):+.1f} {last}"
            )
    return " | ".join(parts)


def real_table(
    model,
    tiles: list | None,
    npz: str = "",
    repair=None,
    clip_len: int | None = None,
    beat_dir: Path | None = None,
) -> pd.DataFrame:
    """One row per shared EchoNet video: EF ours (beats, global) vs FileList; with a
    registration backend ``repair``, also after the implausible frames are re-drawn; with
    ``beat_dir``, a PNG per video there with ED | ES of every beat found (kept, then
    rejected), to look at every beat by eye."""
    rows = []
    for stem, frames, reference in echonet_videos(npz):
        uncertainty: list[float] = []
        network = predict_sequence(
            frames, model, clip_len, refine=False, shape_prior=False, uncertainty=uncertainty
        )
        unshaped = refine_lv_boundary(frames, network)
        shaped = redraw_with_shape_prior(unshaped)
        restored = restore_collapsed_apex(frames, shaped, square_apex_point(frames.shape[1:]))
        pred = restored.labels  # = predict_sequence(frames, model)
        result = ef_by_beats(pred)
        checks = frame_plausibility(pred)
        # frames left unlabelled because the model found no heart there (view lost)
        n_lost = int(np.count_nonzero(~checks.labelled))
        lv_drawn = (pred == LabelClass.LV_CAVITY).any(axis=(1, 2))  # as the dock counts
        extra = {}
        if repair is not None:
            fixed = repair_implausible_frames(frames, pred, repair).labels
            extra = {
                "ef_repaired": ef_by_beats(fixed).ef,
                "plausible_repaired_pct": 100.0 * frame_plausibility(fixed).plausible_share(),
            }
        rows.append(
            {
                "video": stem,
                "held_out": stem in HELD_OUT_VIDEOS,
                "ef_ours": result.ef,
                "ef_beat_median": result.ef_median,
                "ef_global": ef_global(pred),
                "ef_network": ef_by_beats(network).ef,
                "ef_unshaped": ef_by_beats(unshaped).ef,
                "ef_shaped": ef_by_beats(shaped).ef,
                "apex_restored": int(restored.redrawn.size),
                "ef_filelist": reference,
                "beats": len(result.beats),
                "rejected": len(result.rejected),
                "no_view": int(n_lost),
                "unsure": count_unsure(uncertainty, lv_drawn),
                "plausible_pct": 100.0 * checks.plausible_share(),
                "plausible_all_pct": 100.0 * checks.plausible_share() * (1 - n_lost / len(pred)),
                "plausible_network_pct": 100.0 * frame_plausibility(network).plausible_share(),
                "plausible_unshaped_pct": 100.0 * frame_plausibility(unshaped).plausible_share(),
                **extra,
            }
        )
        found = result.beats + result.rejected
        if beat_dir is not None and found:
            beat_tiles = [
                np.concatenate([overlay(frames[t], pred[t]) for t in (ed, es)], 1)
                for ed, es, _ in found
            ]
            save_montage(beat_tiles, beat_dir / f"{stem}.png")
        if tiles is not None:
            shown = result.beats or result.rejected
            if shown:
                ed, es, _ = sorted(shown, key=lambda b: b[2])[len(shown) // 2]
            else:  # no beat found: the largest and smallest cavity
                area = (pred == LabelClass.LV_CAVITY).sum(axis=(1, 2))
                ed, es = int(np.argmax(area)), int(np.argmin(np.where(area > 0, area, area.max())))
            tiles.append(np.concatenate([overlay(frames[t], pred[t]) for t in (ed, es)], 1))
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, column: str) -> dict[str, float]:
    """MAE, bias and Pearson r of ``column`` against FileList EF, over the videos that got
    an EF; ``no_ef`` counts those that did not (every beat implausible: LV lost)."""
    scored = df[np.isfinite(df[column])]
    error = scored[column] - scored["ef_filelist"]
    r = (
        stats.pearsonr(scored[column], scored["ef_filelist"])[0]
        if len(scored) > 2
        else float("nan")
    )
    return {
        "n": len(scored),
        "no_ef": len(df) - len(scored),
        "mae": error.abs().mean(),
        "bias": error.mean(),
        "r": r,
    }


def save_montage(tiles: list[np.ndarray], path: Path, columns: int = 4) -> None:
    """Grid of (H, 2W, 3) tiles as a PNG."""
    from skimage import io

    blank = np.zeros_like(tiles[0])
    rows = [
        np.concatenate((tiles[i : i + columns] + [blank] * columns)[:columns], axis=1)
        for i in range(0, len(tiles), columns)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    io.imsave(path, (np.concatenate(rows, 0) * 255).astype(np.uint8), check_contrast=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--variant", action="append", default=[], help="name=path")
    parser.add_argument("--n-test", type=int, default=6, help="simulated test seeds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench_out"))
    parser.add_argument("--device", default="cpu", help="torch device for inference")
    parser.add_argument("--videos-npz", default="", help="pre-decoded videos (.npz)")
    parser.add_argument(
        "--clip-len", type=int, default=None, help="frames per window (default: the model's)"
    )
    parser.add_argument("--no-bundled", action="store_true", help="only the --variant models")
    parser.add_argument(
        "--every-beat",
        action="store_true",
        help="also write ED | ES of every beat of every video (OUT/real_echo_MODEL_beats/)",
    )
    parser.add_argument(
        "--no-repair",
        action="store_true",
        help="skip the repaired rows (implausible frames re-drawn by DIRNet)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {} if args.no_bundled else {"bundled": load_model(args.model, args.device)}
    for item in args.variant:
        name, _, path = item.partition("=")
        models[name] = load_model(path, args.device)
    simulate_sequence, seeds = _simulator()
    test = []
    for seed in seeds("test", args.n_test):
        seq = simulate_sequence(seed).sequence
        test.append((seq.frames_array(), seq.labels))
    has_real = bool(args.videos_npz) or (ECHONET / "Videos").is_dir()
    fmt = {"float_format": lambda v: f"{v:.1f}"}
    for name, model in models.items():
        print(f"===== model {name}: {model.version}")
        dice = evaluate_arrays(model, test)
        print(
            f"held-out simulated seeds('test', {args.n_test}), every frame: LV Dice "
            f"{dice['lv']:.3f}, myocardium {dice['myocardium']:.3f}, LA {dice['la']:.3f}"
        )
        if not has_real:
            print(f"{ECHONET} absent: real-video EF skipped")
            continue
        tiles: list[np.ndarray] = []
        repair = None
        if not args.no_repair:
            repair = DirnetBackend(device=args.device, threads=args.threads)
        beat_dir = Path(args.out) / f"real_echo_{name}_beats" if args.every_beat else None
        df = real_table(model, tiles, args.videos_npz, repair, args.clip_len, beat_dir)
        with pd.option_context("display.width", 200):
            print(df.to_string(index=False, **fmt))
        columns = (
            "ef_ours",
            "ef_network",
            "ef_unshaped",
            "ef_shaped",
            "ef_beat_median",
            "ef_global",
        )
        for column in columns + (("ef_repaired",) if repair is not None else ()):
            parts = (
                ("train-18", df[~df.held_out]),
                ("held-out-6", df[df.held_out]),
                ("all-24", df),
            )
            for label, part in parts:
                s = summary(part, column)
                print(
                    f"{column:12s} {label:10s} n={s['n']:2d}: MAE {s['mae']:5.1f}  "
                    f"bias {s['bias']:+5.1f}  r {s['r']:+.2f}  no EF (LV lost): {s['no_ef']}"
                )
        shares = (
            "plausible_pct",
            "plausible_all_pct",
            "plausible_network_pct",
            "plausible_unshaped_pct",
        )
        if repair is not None:
            shares += ("plausible_repaired_pct",)
        titles = {
            "plausible_pct": "plausible",
            "plausible_all_pct": "  (of all)",
            "plausible_network_pct": "network  ",
            "plausible_unshaped_pct": "no prior ",
            "plausible_repaired_pct": "repaired ",
        }
        lost = df[df.no_view > 0]
        pairs = zip(lost.video, lost.no_view, strict=True)
        listed = ", ".join(f"{video[:6]} {n}" for video, n in pairs)
        print(f"no heart in view (frames left unlabelled): {listed or 'none'}")
        unsure = df[df.unsure > 0]
        pairs = zip(unsure.video, unsure.unsure, strict=True)
        listed = ", ".join(f"{video[:6]} {n}" for video, n in pairs)
        print(f"labelled frames the network was unsure of: {listed or 'none'}")
        for column in shares:
            for label, part in (("train-18", df[~df.held_out]), ("held-out-6", df[df.held_out])):
                share = part[column]
                print(
                    f"{titles[column]} frames "
                    f"{label:10s}: mean {share.mean():.1f} %, min {share.min():.1f} %, "
                    f"videos >= 90 %: {int((share >= 90).sum())}/{len(part)}"
                )
        montage = Path(args.out) / f"real_echo_{name}.png"
        save_montage(tiles, montage)
        print(f"screenshots (ED | ES of the median beat, 24 videos, name order) -> {montage}")
        if beat_dir is not None:
            print(f"every beat's ED | ES, one PNG per video -> {beat_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
