"""Real echo in the mirrored apical convention (LV on the left of the screen).

    python benchmarks/mirrored_view.py [--videos-npz FILE] [--threads 2]

Each shared EchoNet video (LV on the right) is mirrored left-right and segmented by the
bundled model with all post-processing: read in EchoNet's convention (what a mirrored clip
got before 2026-11-27, and gets without *Mirrored view* / ``--mirrored``), and with
``predict_sequence(mirrored=True)``. Prints per video and MAE / bias of the beat EF against
FileList, and the share of anatomically plausible labelled frames, against the videos as
they are. Then the view-orientation check (:mod:`echo_napari.view_orientation`) on every
video as it is and mirrored: its verdict should be "standard" and "mirrored" (the 18
training videos were trained on, so their figures are in-sample: the card's
cross-validation is the honest figure for them; the 6 held out never were).
``--view-only`` runs the check alone (seconds). Skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS
from echo_napari.view_orientation import MARGIN, check_orientation, load_orientation_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_echo import (  # noqa: E402
    add_video_arguments,
    bundled_model_for_videos,
    echonet_videos,
    summary_by_split,
)

WAYS = ("as they are", "mirrored, read as EchoNet's", "mirrored, mirrored=True")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_video_arguments(parser)
    parser.add_argument("--view-only", action="store_true", help="only the view check")
    args = parser.parse_args()
    model = bundled_model_for_videos(args)
    if model is None:
        return 0
    if not args.view_only:
        segment_both_ways(model, args.videos_npz)
    check_views(args.videos_npz)
    return 0


def segment_both_ways(model, videos_npz) -> None:
    """EF and plausibility of the videos as they are and mirrored (read both ways)."""
    rows: dict[str, list[tuple[bool, float, float]]] = {way: [] for way in WAYS}
    for stem, frames, reference in echonet_videos(videos_npz):
        mirror = np.ascontiguousarray(frames[:, :, ::-1])
        line = f"{stem[:10]}  FileList {reference:5.1f}"
        flags = (False, False, True)
        for way, clip, flag in zip(WAYS, (frames, mirror, mirror), flags, strict=True):
            labels = predict_sequence(clip, model, mirrored=flag)
            ef = ef_by_beats(labels).ef
            plausible = frame_plausibility(labels).plausible_share()
            rows[way].append((stem in HELD_OUT_VIDEOS, ef - reference, plausible))
            line += f"  {way}: EF {ef:5.1f} plausible {100 * plausible:5.1f} %"
        print(line, flush=True)
    for way, values in rows.items():
        print(f"{way:28s} {summary_by_split(values, plausible=True)}")


def check_views(videos_npz) -> None:
    """The view-orientation verdicts on every video as it is and mirrored."""
    network = load_orientation_model()
    tally = {True: Counter(), False: Counter()}
    for stem, frames, _ in echonet_videos(videos_npz):
        held = stem in HELD_OUT_VIDEOS
        as_is = check_orientation(frames, network)
        mirrored = check_orientation(np.ascontiguousarray(frames[:, :, ::-1]), network)
        tally[held][as_is.judged("standard")] += 1
        tally[held][mirrored.judged("mirrored")] += 1
        print(
            f"{stem[:10]} {'held-out' if held else 'training'}  view score as it is "
            f"{as_is.score:+6.2f} ({as_is.verdict}), mirrored {mirrored.score:+6.2f} "
            f"({mirrored.verdict})"
        )
    for held, counts in tally.items():
        print(
            f"view check, {'held-out-6' if held else 'train-18 (in-sample)'}: shown "
            f"{sum(counts.values())}, right {counts['right']}, unsure {counts['unsure']}, "
            f"wrong {counts['wrong']} (margin {MARGIN})"
        )


if __name__ == "__main__":
    raise SystemExit(main())
