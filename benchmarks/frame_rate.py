"""Real echo at other frame rates: EF when the clip is not 50 frames/s.

    python benchmarks/frame_rate.py [--videos-npz FILE] [--threads 2] [--step 2 1.5]

Each shared EchoNet video (50 frames/s) is taken every ``step``-th frame (2: 25 /s,
exactly; 1.5: 33 /s, frames between two interpolated linearly) and segmented by the bundled
model with all post-processing, then its beat EF compared with the FileList EF:

* ``native``: the 50 /s video itself;
* ``ignored``: the slower clip, its frame time not given (the network and the beat rule
  read it as if it were 50 /s: before 2026-11-27);
* ``resampled``: its frame time given to ``predict_sequence`` and ``ef_by_beats``
  (:mod:`echo_napari.frame_rate`: the network sees it at 50 /s, the beat rule reads the
  volume curve at 50 /s).

Prints per video and MAE / bias per way for the 18 training and the 6 held-out videos.
Skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from echo_napari.frame_rate import sample_in_time
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_echo import (  # noqa: E402
    add_video_arguments,
    bundled_model_for_videos,
    echonet_videos,
    summary_by_split,
)

NATIVE_MS = 20.0


def slower(frames: np.ndarray, step: float) -> np.ndarray:
    """The clip taken every ``step`` frames (linear between frames for a fractional step)."""
    if float(step).is_integer():
        return frames[:: int(step)]
    return np.asarray(sample_in_time(frames, np.arange(0, len(frames) - 1 + 1e-9, step)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_video_arguments(parser)
    parser.add_argument("--step", type=float, nargs="+", default=[2.0])
    args = parser.parse_args()
    model = bundled_model_for_videos(args)
    if model is None:
        return 0
    errors: dict[str, list[tuple[bool, float]]] = {}
    for stem, frames, reference in echonet_videos(args.videos_npz):
        held = stem in HELD_OUT_VIDEOS
        native = ef_by_beats(predict_sequence(frames, model, frame_time_ms=NATIVE_MS)).ef
        errors.setdefault("native 50/s", []).append((held, native - reference))
        line = f"{stem[:10]}  FileList {reference:5.1f}  native {native:5.1f}"
        for step in args.step:
            clip = slower(frames, step)
            frame_time = NATIVE_MS * step
            ignored = ef_by_beats(predict_sequence(clip, model)).ef
            labels = predict_sequence(clip, model, frame_time_ms=frame_time)
            resampled = ef_by_beats(labels, frame_time_ms=frame_time).ef
            rate = f"{1000 / frame_time:.0f}/s"
            errors.setdefault(f"{rate} ignored", []).append((held, ignored - reference))
            errors.setdefault(f"{rate} resampled", []).append((held, resampled - reference))
            line += f"  {rate}: ignored {ignored:5.1f} resampled {resampled:5.1f}"
        print(line, flush=True)
    for way, rows in errors.items():
        print(f"{way:16s} {summary_by_split(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
