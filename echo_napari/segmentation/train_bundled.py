"""Train a segmentation model on simulated sequences (+ optional SSL on real videos).

This is how the bundled ``seg_v1`` weights were made, in stages (1 thread each)::

    # 1: 48 SSL steps on the 18 training videos + 444 dense steps (~28 min)
    python -m echo_napari.segmentation.train_bundled --ssl-steps 48 --steps 444 \
        --n-train 120 --clip-len 8 --lr 1.5e-3 --ef-range 0.6 0.6 --width-jitter 0 \
        --threads 1 --out /tmp/seg_stage1
    # 2: warm start, EF 15-80 % hearts, 60 % histogram-matched to the real training
    #    videos, sector-width jitter: 1205 dense steps (~19 min)
    python -m echo_napari.segmentation.train_bundled --init /tmp/seg_stage1.safetensors \
        --minutes 28 --hist-match 0.6 --clip-len 8 --lr 8e-4 --threads 1 \
        --out echo_napari/models/seg_v1

(Stage 1 ran before ``--ef-range``, ``--hist-match`` and ``--width-jitter`` existed; the
flags above reproduce its settings: EF-60 % hearts, no matching, no width jitter. A third
stage, recorded in the ``seg_v1`` card, continued on 240 seeds.) ``seg_v2`` is ``seg_v1``
warm-started on hearts of varied size and apex depth in the image (~27 min)::

    python -m echo_napari.segmentation.train_bundled --init echo_napari/models/seg_v1.safetensors \
        --minutes 35 --hist-match 0.6 --n-train 240 --clip-len 8 --lr 2e-4 --threads 1 \
        --seed 5 --depth-range 130 200 --apex-gap 8 30 --scale 0.8 1.25 --out /tmp/seg_v2

``seg_v3`` is ``seg_v2`` warm-started for 1,500 steps (~11 min) with a smooth gain field and
blur added to the augmentation; its card sets the inference window to 8 frames, the clip
length all three were trained on::

    python -m echo_napari.segmentation.train_bundled --init echo_napari/models/seg_v2.safetensors \
        --steps 1500 --hist-match 0.6 --n-train 240 --clip-len 8 --lr 2e-4 --threads 1 \
        --seed 7 --depth-range 130 200 --apex-gap 8 30 --scale 0.8 1.25 --gain-field 0.6 \
        --blur 0 1.2 --out /tmp/seg_v3

``seg_v4`` is ``seg_v3`` warm-started for 1,500 steps (~7.5 min) with synthetic systoles of
the real training videos added (:mod:`echo_napari.segmentation.real_warp`); LABELS.npz
holds ``seg_v3``'s labels of each training video (``predict_sequence``, every
post-processing), one ``(T, 112, 112)`` uint8 array per video stem, 0X64E2… left out::

    python -m echo_napari.segmentation.train_bundled --init echo_napari/models/seg_v3.safetensors \
        --steps 1500 --hist-match 0.6 --n-train 240 --clip-len 8 --lr 2e-4 --threads 1 \
        --seed 69 --depth-range 130 200 --apex-gap 8 30 --scale 0.8 1.25 --gain-field 0.6 \
        --blur 0 1.2 --warp-labels LABELS.npz --warp-per-frame 2 --warp-weight 0.5 \
        --warp-compaction 4 5 --out /tmp/seg_v4

It runs on the CPU with a wall-clock budget: a few probe steps measure the step time and
the number of steps is set to fit the budget (the learning-rate schedule needs it up
front). Simulated data are cached under ``--cache-dir`` (default ``/tmp``), never in the
repository.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import torch

from echo_napari.io.echonet import read_filelist_row
from echo_napari.io.video import iter_videos_npz
from echo_napari.segmentation.appearance import matcher, reference_values
from echo_napari.segmentation.augment import AugmentConfig
from echo_napari.segmentation.data import (
    HELD_OUT_VIDEOS,
    TRAINING_EF_RANGE,
    echonet_video_paths,
    fingerprint,
    load_videos,
    simulated_arrays,
    simulated_samples,
    simulator_seeds,
)
from echo_napari.segmentation.ef_supervision import (
    EFSupervisionConfig,
    EFVideo,
    ef_supervision_steps,
    find_beats,
)
from echo_napari.segmentation.evaluate import evaluate_arrays
from echo_napari.segmentation.inference import predict_sequence
from echo_napari.segmentation.model import BUNDLED_CONFIG, build_model, count_parameters
from echo_napari.segmentation.real_warp import (
    LONGITUDINAL_RANGE,
    RADIAL_RANGE,
    real_systole_clips,
)
from echo_napari.segmentation.self_training import SelfTrainConfig, self_train_steps
from echo_napari.segmentation.training import (
    TrainConfig,
    TrainingSample,
    resize_sequence,
    train_steps,
)
from echo_napari.segmentation.weights import (
    SegmentationModel,
    load_model_file,
    resolve_device,
    save_model,
)
from echo_napari.simulation.parallel import map_in_processes
from echo_napari.simulation.params import SimulationParams

logger = logging.getLogger("echo_napari.segmentation.train_bundled")

DEFAULT_ECHONET = Path(__file__).resolve().parents[3] / "shared" / "data" / "echonet-unlabeled"


def _run_steps(phase: str, network, samples, videos, config, extra, stop, device):
    """The training generator of ``phase``: "ef-supervision" (``videos`` are EFVideos,
    ``extra`` an EFSupervisionConfig), "self-training" (unlabelled videos,
    SelfTrainConfig) or "supervised" (``videos`` for the SSL steps of ``config``)."""
    if phase == "ef-supervision":
        return ef_supervision_steps(network, samples, videos, config, extra, stop, device)
    if phase == "self-training":
        return self_train_steps(network, samples, videos, config, extra, stop, device)
    return train_steps(network, samples, config, videos, stop, device)


def _probe_step_time(
    network, samples, config, videos, phase: str, device, extra=None, n: int = 3
) -> float:
    """Seconds per step of ``phase`` ("ssl" or one of :func:`_run_steps`) measured on a
    throw-away copy of the network."""
    size = {"batch_size": config.batch_size, "clip_len": config.clip_len}
    if phase == "ssl":
        phase, cfg = "supervised", TrainConfig(steps=0, ssl_steps=n + 1, **size)
    else:
        cfg = TrainConfig(steps=n + 1, **size)
        videos = None if phase == "supervised" else videos
    steps = _run_steps(phase, copy.deepcopy(network), samples, videos, cfg, extra, None, device)
    times = [r.elapsed for r in steps]
    return (times[-1] - times[0]) / max(1, len(times) - 1)


def _as_list(pair: tuple[float, float] | None) -> list[float] | None:
    """A (low, high) range as a JSON list; None stays None."""
    return list(pair) if pair else None


def _fill_cache(seeds, size: int, cache_dir: str, params, workers: int) -> None:
    """Simulate (and cache) ``seeds`` in ``workers`` processes before training starts."""
    work = partial(simulated_arrays, size=size, cache_dir=cache_dir, params=params)
    map_in_processes(work, seeds, workers)


def _load_training_videos(args, size: int) -> tuple[list[np.ndarray], list[Path]]:
    """The real *training* videos (never the held-out ones), from AVIs or a pre-decoded
    ``.npz`` (one ``(T, H, W)`` uint8 array per video stem, for machines without a video
    decoder)."""
    if args.videos_npz:
        pairs = list(iter_videos_npz(args.videos_npz, HELD_OUT_VIDEOS))
        videos = [resize_sequence(frames, None, size)[0] for _, frames in pairs]
        return videos, [Path(f"{stem}.avi") for stem, _ in pairs]
    paths = echonet_video_paths(args.echonet, held_out=False)
    return load_videos(paths, size), paths


def _warped_real_samples(
    args, videos: list[np.ndarray], paths: list[Path]
) -> tuple[list[TrainingSample], list[str]]:
    """Synthetic systoles (:mod:`echo_napari.segmentation.real_warp`) from the ED frames of
    the training videos that have labels in ``args.warp_labels``; returns them and the
    stems used."""
    with np.load(args.warp_labels) as data:
        labels = {stem: data[stem] for stem in data.files if stem not in HELD_OUT_VIDEOS}
    used = [(frames, p.stem) for frames, p in zip(videos, paths, strict=True) if p.stem in labels]
    clips = real_systole_clips(
        [f for f, _ in used],
        [labels[stem] for _, stem in used],
        args.warp_per_frame,
        seed=args.seed,
        radial=tuple(args.warp_radial),
        longitudinal=tuple(args.warp_longitudinal),
        compaction=tuple(args.warp_compaction),
    )
    samples = [
        TrainingSample(f, lab, np.full(len(f), args.warp_weight, np.float32)) for f, lab in clips
    ]
    return samples, [stem for _, stem in used]


def _ef_videos(
    videos: list[np.ndarray], paths: list[Path], filelist: Path, network
) -> list[EFVideo]:
    """Training videos with their reported EF and the beats the starting model sees."""
    model = SegmentationModel(network)
    out = []
    for frames, path in zip(videos, paths, strict=True):
        row = read_filelist_row(filelist, path.name)
        if row is None or row.get("EF") is None:
            logger.warning("%s: no EF in %s; not used for EF supervision", path.stem, filelist)
            continue
        beats = find_beats(predict_sequence(frames, model))
        logger.info("%s: EF %.1f, beats %s", path.stem, row["EF"], beats)
        out.append(EFVideo(frames, float(row["EF"]), beats, path.stem))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output stem (writes .safetensors/.json)")
    parser.add_argument("--mode", choices=("sparse", "dense"), default="dense")
    parser.add_argument("--pseudo-source", choices=("simulator", "dir"), default="simulator")
    parser.add_argument("--pseudo-weight", type=float, default=0.5)
    parser.add_argument("--minutes", type=float, default=30.0, help="supervised budget")
    parser.add_argument("--ssl-minutes", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=0, help="fixed supervised steps")
    parser.add_argument("--ssl-steps", type=int, default=0, help="fixed SSL steps")
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default="/tmp/echo_napari_seg_cache")
    parser.add_argument("--echonet", default=str(DEFAULT_ECHONET))
    parser.add_argument(
        "--hist-match",
        type=float,
        default=0.0,
        help="share (0-1) of simulated sequences histogram-matched to the training videos",
    )
    parser.add_argument(
        "--ef-range", type=float, nargs=2, default=list(TRAINING_EF_RANGE), metavar=("LO", "HI")
    )
    parser.add_argument(
        "--apex-motion", type=float, default=0.25, help="simulated apical wall motion (0-1.5)"
    )
    parser.add_argument("--width-jitter", type=float, default=0.1, help="sector-width jitter")
    parser.add_argument(
        "--gain-field", type=float, default=0.0, help="augmentation: smooth log-gain field, up to"
    )
    parser.add_argument(
        "--time-warp", type=float, default=0.0, help="share of clips with irregular frame timing"
    )
    ranges = (
        ("--depth-range", None, "simulated imaging depth drawn per seed, mm (default: 150 mm)"),
        ("--apex-gap", (8.0, 15.0), "simulated gap between the probe and the apical wall, mm"),
        ("--scale", (0.9, 1.1), "augmentation zoom range"),
        ("--dropout-range", None, "simulated wall dropout drawn per seed, 0-1 (default: 0.3)"),
        ("--trabeculae-range", None, "simulated trabecular band level drawn per seed, dB"),
        ("--blur", (0.0, 0.0), "augmentation blur sigma range, pixels"),
    )
    for flag, default, text in ranges:
        parser.add_argument(
            flag, type=float, nargs=2, metavar=("LO", "HI"), default=default, help=text
        )
    parser.add_argument("--init", default="", help="start from these weights (warm start)")
    parser.add_argument("--device", default=None, help="torch device (default: CUDA if any)")
    parser.add_argument("--sim-workers", type=int, default=1, help="processes simulating")
    parser.add_argument("--videos-npz", default="", help="pre-decoded real videos (.npz)")
    parser.add_argument(
        "--self-train",
        action="store_true",
        help="mean-teacher self-training on the real training videos (needs --init)",
    )
    parser.add_argument(
        "--ef-supervision",
        action="store_true",
        help="weak supervision of the real training videos by their FileList EF (needs --init)",
    )
    parser.add_argument("--ef-weight", type=float, default=1.0, help="EF loss weight")
    parser.add_argument("--ef-tolerance", type=float, default=3.0, help="EF points not pushed")
    parser.add_argument(
        "--ef-anchor", type=float, default=0.0, help="weight of the anchor to --init's labels"
    )
    parser.add_argument("--filelist", default="", help="FileList.csv (default: in --echonet)")
    parser.add_argument("--real-weight", type=float, default=1.0, help="pseudo-label loss")
    parser.add_argument("--real-batch", type=int, default=2)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument(
        "--warp-labels",
        default="",
        help="labels of the real training videos (.npz, one (T, S, S) uint8 array per stem): "
        "their ED frames are contracted into synthetic systoles (segmentation.real_warp)",
    )
    parser.add_argument("--warp-per-frame", type=int, default=2, help="systoles per ED frame")
    parser.add_argument("--warp-weight", type=float, default=0.5, help="their loss weight")
    parser.add_argument(
        "--warp-radial", type=float, nargs=2, default=RADIAL_RANGE, metavar=("LO", "HI")
    )
    parser.add_argument(
        "--warp-longitudinal",
        type=float,
        nargs=2,
        default=LONGITUDINAL_RANGE,
        metavar=("LO", "HI"),
    )
    parser.add_argument(
        "--warp-compaction",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("LO", "HI"),
        help="pixels of cavity border turned myocardium at end-systole",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    seeds = simulator_seeds
    if args.self_train and not args.init:
        parser.error("--self-train needs --init (a supervised model to start the teacher)")
    if args.ef_supervision and not args.init:
        parser.error("--ef-supervision needs --init (its area curves find the beats)")
    if args.ef_supervision and args.self_train:
        parser.error("choose one of --ef-supervision and --self-train")

    size = BUNDLED_CONFIG.size
    t0 = time.perf_counter()
    train_seeds = seeds("train", args.n_train)
    params = SimulationParams(
        ef_range=tuple(args.ef_range),
        apex_motion=args.apex_motion,
        apex_gap_mm=tuple(args.apex_gap),
        depth_range_mm=tuple(args.depth_range) if args.depth_range else None,
        dropout_range=tuple(args.dropout_range) if args.dropout_range else None,
        trabeculae_range_db=tuple(args.trabeculae_range) if args.trabeculae_range else None,
    )
    if args.sim_workers > 1:
        _fill_cache(train_seeds, size, args.cache_dir, params, args.sim_workers)
    device = resolve_device(args.device)
    videos, video_paths, appearance = [], [], None
    real_needed = args.self_train or args.ef_supervision or bool(args.warp_labels)
    if args.ssl_minutes > 0 or args.ssl_steps > 0 or args.hist_match > 0 or real_needed:
        # Training videos only: the held-out ones never shape the model or its data.
        videos, video_paths = _load_training_videos(args, size)
        logger.info("%d real training videos", len(videos))
    if args.hist_match > 0:
        appearance = matcher(reference_values(videos), args.hist_match)
    samples, sources = simulated_samples(
        train_seeds,
        size,
        args.mode,
        args.pseudo_weight,
        args.pseudo_source,
        args.cache_dir,
        params,
        appearance,
    )
    warp_stems: list[str] = []
    if args.warp_labels:
        warped, warp_stems = _warped_real_samples(args, videos, video_paths)
        samples += warped
        logger.info("%d synthetic systoles from %d real videos", len(warped), len(warp_stems))
    logger.info("%d training sequences ready in %.0f s", len(samples), time.perf_counter() - t0)
    real_videos = videos
    ssl_videos = videos if (args.ssl_minutes > 0 or args.ssl_steps > 0) else []
    if args.init:
        network = load_model_file(args.init, "cpu").network
    else:
        network = build_model(BUNDLED_CONFIG)
    augment = AugmentConfig(
        width=(1.0 - args.width_jitter, 1.0 + args.width_jitter),
        scale=tuple(args.scale),
        gain_field=args.gain_field,
        blur_px=tuple(args.blur),
    )
    base = TrainConfig(
        batch_size=args.batch_size,
        clip_len=args.clip_len,
        lr=args.lr,
        augment=augment,
        time_warp=args.time_warp,
    )
    self_config = SelfTrainConfig(
        real_batch=args.real_batch,
        real_weight=args.real_weight,
        confidence=args.confidence,
        ema=args.ema,
    )
    ef_config = EFSupervisionConfig(
        ef_weight=args.ef_weight, tolerance=args.ef_tolerance, anchor_weight=args.ef_anchor
    )
    ef_videos = []
    if args.ef_supervision:
        filelist = Path(args.filelist) if args.filelist else Path(args.echonet) / "FileList.csv"
        ef_videos = _ef_videos(real_videos, video_paths, filelist, network)
    ssl_steps, steps = args.ssl_steps, args.steps
    videos = ssl_videos
    if videos and not ssl_steps:
        per_step = _probe_step_time(network, samples, base, videos, "ssl", device)
        ssl_steps = max(1, int(args.ssl_minutes * 60 / per_step))
    if args.ef_supervision:
        phase, phase_videos, extra = "ef-supervision", ef_videos, ef_config
    elif args.self_train:
        phase, phase_videos, extra = "self-training", real_videos, self_config
    else:
        phase, phase_videos, extra = "supervised", videos, None
    if not steps:
        per_step = _probe_step_time(network, samples, base, phase_videos, phase, device, extra)
        steps = max(1, int(args.minutes * 60 / per_step))
    logger.info("%d SSL + %d supervised steps", ssl_steps, steps)
    config = TrainConfig(
        steps=steps,
        ssl_steps=ssl_steps,
        batch_size=args.batch_size,
        clip_len=args.clip_len,
        lr=args.lr,
        seed=args.seed,
        augment=augment,
    )
    deadline = time.perf_counter() + 1.25 * 60 * (args.minutes + args.ssl_minutes) + 60
    if args.steps:
        deadline = float("inf")
    history = []
    stop = lambda: time.perf_counter() > deadline  # noqa: E731
    records = _run_steps(phase, network, samples, phase_videos, config, extra, stop, device)
    for record in records:
        history.append(record)
        if record.step % 50 == 0 or record.step == record.total:
            logger.info(
                "%s step %d/%d loss %.4f %s (%.0f s)",
                record.phase,
                record.step,
                record.total,
                record.loss,
                {k: round(v, 4) for k, v in record.terms.items()},
                record.elapsed,
            )
    # Inference runs on windows of the trained clip length: the group normalisation takes
    # its statistics over the clip's frames, so a longer window shifts them.
    network.config = replace(network.config, clip_len=args.clip_len)
    model = SegmentationModel(network.cpu())
    test = [simulated_arrays(s, size, args.cache_dir)[:2] for s in seeds("test", args.n_test)]
    metrics = evaluate_arrays(model, test)
    logger.info("held-out simulated test Dice: %s", metrics)
    supervised = [
        r for r in history if r.phase in ("supervised", "self-training", "ef-supervision")
    ]
    data = [
        {
            "source": "echo_napari.simulate (synthetic A4C sequences, labels on every frame)",
            "seeds": f"seeds('train', {args.n_train})",
            "mode": args.mode,
            "pseudo_labels": sorted(sources),
            "ef_range": list(args.ef_range),
            "histogram_matched_share": args.hist_match,
            "apex_motion": args.apex_motion,
            "apex_gap_mm": list(params.apex_gap_mm),
            "depth_range_mm": _as_list(params.depth_range_mm),
            "dropout_range": _as_list(params.dropout_range),
            "trabeculae_range_db": _as_list(params.trabeculae_range_db),
        }
    ]

    uses = [
        use
        for use, on in (
            ("temporal-masking SSL", bool(videos)),
            ("grey-level reference for histogram matching", args.hist_match > 0),
            ("mean-teacher self-training (pseudo-labels, no tracings)", args.self_train),
            ("weak supervision by the FileList EF (no tracings)", args.ef_supervision),
        )
        if on
    ]
    if video_paths:
        data.append(
            {
                "source": "EchoNet-Dynamic research-use videos (Stanford research-use "
                "agreement; unlabelled): " + ", ".join(uses),
                "videos": [p.stem for p in video_paths],
                "fingerprint": fingerprint(video_paths),
                "held_out_never_trained": list(HELD_OUT_VIDEOS),
            }
        )
    if warp_stems:
        data.append(
            {
                "source": "synthetic systoles: ED frames of these training videos and their "
                "labels, contracted by a known deformation (segmentation.real_warp)",
                "labels": Path(args.warp_labels).name,
                "videos": warp_stems,
                "per_ed_frame": args.warp_per_frame,
                "radial": list(args.warp_radial),
                "longitudinal": list(args.warp_longitudinal),
                "compaction_px": list(args.warp_compaction),
                "weight": args.warp_weight,
            }
        )
    model.card = {
        "name": "seg",
        "version": Path(args.out).name,
        "parent": Path(args.init).stem if args.init else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": "2D+time U-Net (SimLVSeg-style) for LV cavity, myocardium and LA",
        "classes": {"0": "background", "1": "LV cavity", "2": "LV myocardium", "3": "LA"},
        "data": data,
        "training": {
            "mode": args.mode
            + (" + temporal-masking SSL" if videos else "")
            + (" + mean-teacher self-training on real videos" if args.self_train else "")
            + (" + EF weak supervision on real videos" if args.ef_supervision else ""),
            "self_training": self_config.to_dict() if args.self_train else None,
            "ef_supervision": ef_config.to_dict() if args.ef_supervision else None,
            "pseudo_weight": args.pseudo_weight if args.mode == "dense" else None,
            "ssl_steps": sum(r.phase == "ssl" for r in history),
            "supervised_steps": len(supervised),
            "epochs": round(len(supervised) * args.batch_size / max(1, len(samples)), 2),
            "config": {**config.to_dict(), "augment": config.augment.to_dict()},
            "optimizer": "AdamW, warm-up + cosine decay",
            "wall_time_s": round(history[-1].elapsed if history else 0.0, 1),
            "device": str(device)
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "threads": args.threads,
            "final_loss": float(np.mean([r.loss for r in supervised[-20:]]))
            if supervised
            else None,
        },
        "held_out_metrics": {
            "simulated_test": {
                "seeds": f"seeds('test', {args.n_test})",
                "dice": metrics,
                "inference": f"clip {model.config.clip_len}, both directions on staggered "
                "windows, Hann blending, post-processed",
            }
        },
        "parameters": count_parameters(network),
    }
    path = save_model(model, args.out)
    logger.info("wrote %s (%.2f MB)", path, path.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
