"""Real echo in the mirrored apical convention (LV on the left of the screen).

    python benchmarks/mirrored_view.py [--videos-npz FILE] [--threads 2]

Each shared EchoNet video (LV on the right) is mirrored left-right and segmented by the
bundled model with all post-processing: read in EchoNet's convention (what a mirrored clip
got before 2026-11-27, and gets without *Mirrored view* / ``--mirrored``), and with
``predict_sequence(mirrored=True)``. Prints per video and MAE / bias of the beat EF against
FileList, and the share of anatomically plausible labelled frames, against the videos as
they are. Skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS

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
    args = parser.parse_args()
    model = bundled_model_for_videos(args)
    if model is None:
        return 0
    rows: dict[str, list[tuple[bool, float, float]]] = {way: [] for way in WAYS}
    for stem, frames, reference in echonet_videos(args.videos_npz):
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
