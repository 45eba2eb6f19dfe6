"""Label-free DIR quality on the 24 real EchoNet videos (issue #11).

    python benchmarks/real_echo_dir.py [--skip-simpleitk] [--threads 2]

No tracings: per video, one beat is taken from the bundled segmentation model's LV
volume curve (:func:`echo_napari.metrics_ef.ef_by_beats`: the first beat, ED → ES).
Every consecutive pair of the beat is registered both ways (:func:`pairwise_fields`,
symmetrised), then

* ``cycle``: the model's ED LV mask is carried to ES by the composed field and back to
  ED by the composed backward field; Dice of the round trip with the start (1 = the two
  trips are exact inverses; it does not need the masks to be right);
* ``ES``: Dice of the carried mask at ES with the model's own ES mask (two independent
  methods agreeing);
* ``FAC`` / ``FACm``: fractional area change 1 − area(ES) / area(ED) of the carried mask
  and of the model's masks (does the carried mask contract with the ventricle?);
* ``fused``: Eq. 1 propagation from the model's ED and ES masks; mean / min LV Dice with
  the model's masks on the frames between (again agreement, not accuracy);
* ``NCC0/NCC1``: local NCC (9 px window) of each consecutive pair before / after warping;
  ``ncc0/ncc1``: of the ES frame with the ED frame before / after warping ED by the
  composed ED → ES field (does the carried motion explain the ES image?);
* ``fold %``: pixels with det J ≤ 0 in the pair fields and the two composed fields.

Rows: DIRNet with drift correction (the default), DIRNet without, SimpleITK B-spline (the
plugin; no drift correction, as in ``benchmarks/propagation.py``). Videos held out of the
DIR training (``HELD_OUT_ECHONET``) are summarised apart from the 18 it trained on (no
labels were used: unsupervised NCC training on the frames). The videos are research-use
only and stay outside the repository; the benchmark skips when ``../shared/data`` is
absent.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echo_napari.registration import (
    DirnetBackend,
    available_backends,
    folding_fraction,
    pairwise_fields,
    propagate_from_keyframes,
    warp_image,
)
from echo_napari.registration.consistency import cycle_consistency
from echo_napari.registration.drift import composed_field
from echo_napari.registration.evaluation import dice
from echo_napari.registration.losses import local_ncc
from echo_napari.registration.training_data import HELD_OUT_ECHONET
from echo_napari.sequence import LabelClass

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "echonet-unlabeled" / "Videos"
LV = int(LabelClass.LV_CAVITY)


def first_beat(labels: np.ndarray) -> tuple[int, int]:
    """(ED, ES) of the first beat of a predicted label sequence (T, H, W) uint8."""
    from echo_napari.metrics_ef import ef_by_beats

    result = ef_by_beats(labels)
    # A video whose every beat lost the ventricle still has its (rejected) beats.
    ed, es, _ = (result.beats or result.rejected)[0]
    if es <= ed:
        raise ValueError(f"no beat with ED before ES (got ED {ed}, ES {es})")
    return int(ed), int(es)


def mean_ncc(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Mean local NCC of (N, H, W) pairs."""
    with torch.inference_mode():
        f = torch.from_numpy(np.ascontiguousarray(fixed))[:, None]
        m = torch.from_numpy(np.ascontiguousarray(moving))[:, None]
        return float(local_ncc(f, m).mean())


def score_beat(
    backend, frames: np.ndarray, labels: np.ndarray, drift_correction: bool
) -> dict[str, float]:
    """All measures of one backend on one beat (frames/labels cut to ED..ES)."""
    start = time.perf_counter()
    fields = pairwise_fields(frames, backend)
    seconds = time.perf_counter() - start
    last = frames.shape[0] - 1
    ed_mask, es_mask = labels[0] == LV, labels[last] == LV
    there = composed_field(fields, 0, last, drift_correction)
    back = composed_field(fields, last, 0, drift_correction)
    cycle = cycle_consistency(there, back, ed_mask)
    fused = propagate_from_keyframes(
        fields,
        {
            0: np.where(ed_mask, LV, 0).astype(np.uint8),
            last: np.where(es_mask, LV, 0).astype(np.uint8),
        },
        classes=(LV,),
        drift_correction=drift_correction,
    )
    agreement = [dice(fused.labels[t] == LV, labels[t] == LV) for t in range(1, last)]
    warped = warp_image(frames[:-1], fields.forward)
    folding = np.concatenate(
        [
            np.atleast_1d(folding_fraction(fields.forward)),
            np.atleast_1d(folding_fraction(fields.backward)),
            np.atleast_1d(folding_fraction(np.stack([there, back]))),
        ]
    )
    warped_ed = warp_image(frames[0], there)
    return {
        "cycle": cycle.dice,
        "es_dice": dice(cycle.carried, es_mask),
        "copy_es": dice(ed_mask, es_mask),
        "fac_dir": 1.0 - cycle.carried.sum() / max(ed_mask.sum(), 1),
        "fac_model": 1.0 - es_mask.sum() / max(ed_mask.sum(), 1),
        "fused_mean": float(np.mean(agreement)) if agreement else np.nan,
        "fused_min": float(np.min(agreement)) if agreement else np.nan,
        "ncc_before": mean_ncc(frames[1:], frames[:-1]),
        "ncc_after": mean_ncc(frames[1:], warped),
        "ncc_ed_es_before": mean_ncc(frames[last:], frames[:1]),
        "ncc_ed_es_after": mean_ncc(frames[last:], warped_ed[None]),
        "folding_pct": 100 * float(np.mean(folding)),
        "s_per_pair": seconds / (2 * last),
    }


def run(backends: dict, videos: list[Path], segmenter) -> pd.DataFrame:
    """One row per (video, backend)."""
    from echo_napari.io.echonet import read_echonet_video
    from echo_napari.segmentation import predict_sequence

    rows = []
    for path in videos:
        frames = read_echonet_video(path, lazy=False).frames_array()
        labels = predict_sequence(frames, segmenter)
        try:
            ed, es = first_beat(labels)
        except (ValueError, IndexError) as error:
            logging.warning("%s: no beat found (%s); skipped", path.name, error)
            continue
        beat = slice(ed, es + 1)
        for name, (backend, drift) in backends.items():
            scores = score_beat(backend, frames[beat], labels[beat], drift)
            rows.append(
                {
                    "video": path.stem,
                    "held_out": path.name in HELD_OUT_ECHONET,
                    "backend": name,
                    "ed_frame": ed,
                    "es_frame": es,
                    **scores,
                }
            )
            logging.info(
                "%s %-20s ED %d ES %d cycle %.3f ES %.3f",
                path.stem,
                name,
                ed,
                es,
                scores["cycle"],
                scores["es_dice"],
            )
    return pd.DataFrame(rows)


COLUMNS = {
    "cycle": "cycle",
    "es_dice": "ES",
    "copy_es": "copy",
    "fac_dir": "FAC",
    "fac_model": "FACm",
    "fused_mean": "fused",
    "fused_min": "f.min",
    "ncc_before": "NCC0",
    "ncc_after": "NCC1",
    "ncc_ed_es_before": "ncc0",
    "ncc_ed_es_after": "ncc1",
    "folding_pct": "fold%",
    "s_per_pair": "s/pair",
}


def per_video_table(table: pd.DataFrame) -> str:
    """One line per video and backend."""
    head = f"{'video':<20}{'DIR':>5}{'ED':>4}{'ES':>4} {'backend':<18}" + "".join(
        f"{label:>7}" for label in COLUMNS.values()
    )
    lines = [head]
    for _, row in table.iterrows():
        cells = "".join(
            f"{row[key]:>7.4f}" if key in ("s_per_pair", "folding_pct") else f"{row[key]:>7.3f}"
            for key in COLUMNS
        )
        split = "held" if row["held_out"] else "train"
        lines.append(
            f"{row['video']:<20}{split:>5}{row['ed_frame']:>4}{row['es_frame']:>4} "
            f"{row['backend']:<18}{cells}"
        )
    return "\n".join(lines)


def summary_table(table: pd.DataFrame) -> str:
    """Means per backend, held-out and training videos apart; count of cycle ≥ 0.9."""
    lines = [
        f"{'videos':<10}{'backend':<20}{'n':>3}{'cycle':>7}{'min':>7}{'≥0.9':>6}{'ES':>7}"
        f"{'copy':>7}{'FAC':>7}{'FACm':>7}{'fused':>7}{'NCC0':>7}{'NCC1':>7}{'ncc0':>7}{'ncc1':>7}{'fold%':>8}"
        f"{'s/pair':>8}"
    ]
    for held, group in table.groupby("held_out", sort=False):
        for name, rows in group.groupby("backend", sort=False):
            lines.append(
                f"{'held-out' if held else 'training':<10}{name:<20}{len(rows):>3}"
                f"{rows.cycle.mean():>7.3f}{rows.cycle.min():>7.3f}"
                f"{int((rows.cycle >= 0.9).sum()):>6}{rows.es_dice.mean():>7.3f}"
                f"{rows.copy_es.mean():>7.3f}{rows.fac_dir.mean():>7.3f}"
                f"{rows.fac_model.mean():>7.3f}{rows.fused_mean.mean():>7.3f}"
                f"{rows.ncc_before.mean():>7.3f}{rows.ncc_after.mean():>7.3f}"
                f"{rows.ncc_ed_es_before.mean():>7.3f}{rows.ncc_ed_es_after.mean():>7.3f}"
                f"{rows.folding_pct.mean():>8.4f}{rows.s_per_pair.mean():>8.4f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-simpleitk", action="store_true")
    parser.add_argument("--videos", type=int, default=None, help="only the first N videos")
    parser.add_argument("--csv", default=None, help="also write the per-video rows here")
    parser.add_argument("--weights", default=None, help="DIRNet weights (default: bundled)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    if not VIDEOS.is_dir():
        print(f"real videos not found at {VIDEOS}: benchmark skipped")
        return
    from echo_napari.segmentation import load_model

    videos = sorted(VIDEOS.glob("*.avi"))[: args.videos]
    dirnet = DirnetBackend(args.weights, device="cpu")
    backends = {"dirnet": (dirnet, True), "dirnet, no drift c.": (dirnet, False)}
    if not args.skip_simpleitk and "simpleitk" in available_backends():
        backends["simpleitk, no dc"] = (
            available_backends()["simpleitk"](threads=args.threads),
            False,
        )
    elif not args.skip_simpleitk:
        logging.warning(
            "SimpleITK plugin not installed: pip install -e plugins/echo-napari-simpleitk"
        )
    table = run(backends, videos, load_model(device="cpu"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(
        f"\n## DIR on {table.video.nunique()} real EchoNet videos, first beat ED→ES from the "
        f"bundled segmentation (no tracings); weights {dirnet.card.get('version', '?')}, "
        f"torch threads {args.threads}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        "cycle: Dice(ED mask, ED→ES→ED round trip); ES: Dice(carried ED mask, model ES mask);\n"
        "copy: Dice(ED mask, model ES mask) (no motion); FAC / FACm: 1 − area ES / area ED of\n"
        "the carried mask / of the model's masks; fused / f.min: Eq. 1 from model\n"
        "ED+ES vs model masks between (mean / min); NCC0/NCC1: consecutive pairs before/after\n"
        "warping; ncc0/ncc1: ES vs ED before/after warping ED by the composed field;\n"
        "fold%: det J ≤ 0 (pair and composed fields)"
    )
    print(per_video_table(table))
    print()
    print(summary_table(table))


if __name__ == "__main__":
    main()
