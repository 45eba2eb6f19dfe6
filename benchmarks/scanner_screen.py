"""Real echo shown as a scanner's screen: does the prediction survive the layout?

    python benchmarks/scanner_screen.py [--videos-npz FILE] [--threads 2] [--scale 4]

Scanner exports (DICOM cines, screen recordings) show the sector inside a larger frame
with text, bars, a clock and an ECG trace. Each shared EchoNet video is put into such an
800 × 600 screen (:func:`echo_napari.simulation.screen.scanner_screen`, the clip enlarged
``--scale`` times, off centre), then segmented three ways with the bundled model:

* ``clip``: the EchoNet video itself (what ``benchmarks/real_echo.py`` measures);
* ``screen``: the screen, the sector's square found and cut out
  (:mod:`echo_napari.field_of_view`, the default of ``predict_sequence``);
* ``screen_whole``: the screen as it is (``crop_to_sector=False``: before 2026-11-27).

Prints per video the EF (beat mean) of each against the FileList EF, the LV Dice of the
two screen predictions (taken back to the clip's pixels) with the clip's own, the labels
drawn outside the clip, the square's offset from the clip's, and the seconds each took;
then MAE per way, for the 18 training and the 6 held-out videos. Skips when
``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from echo_napari.field_of_view import find_field_of_view
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS
from echo_napari.sequence import LabelClass
from echo_napari.simulation.screen import scanner_screen

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from real_echo import add_video_arguments, bundled_model_for_videos, echonet_videos  # noqa: E402


def lv_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a == LabelClass.LV_CAVITY, b == LabelClass.LV_CAVITY
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_video_arguments(parser)
    parser.add_argument("--scale", type=float, default=4.0, help="clip enlargement")
    parser.add_argument("--limit", type=int, default=0, help="first N videos only")
    args = parser.parse_args()
    model = bundled_model_for_videos(args)
    if model is None:
        return 0
    rows = []
    for i, (stem, frames, reference) in enumerate(echonet_videos(args.videos_npz)):
        if args.limit and i >= args.limit:
            break
        screen, placed = scanner_screen(frames, scale=args.scale, top=60, left=150)
        step = args.scale
        back = (
            slice(placed.top + int(step // 2), placed.top + placed.shape[0], int(step)),
            slice(placed.left + int(step // 2), placed.left + placed.shape[1], int(step)),
        )
        row = {"video": stem[:10], "held_out": stem in HELD_OUT_VIDEOS, "filelist": reference}
        labels = {}
        for way, source, crop in (
            ("clip", frames, True),
            ("screen", screen, True),
            ("screen_whole", screen, False),
        ):
            start = time.perf_counter()
            labels[way] = predict_sequence(source, model, crop_to_sector=crop)
            row[f"{way}_s"] = time.perf_counter() - start
            row[f"{way}_ef"] = ef_by_beats(labels[way]).ef
        for way in ("screen", "screen_whole"):
            inside = np.zeros(screen.shape[1:], bool)
            inside[placed.top : placed.top + placed.shape[0], placed.left :][
                :, : placed.shape[1]
            ] = True
            row[f"{way}_dice"] = lv_dice(labels[way][(slice(None), *back)], labels["clip"])
            row[f"{way}_outside_px"] = int((labels[way][:, ~inside] > 0).sum())
        view = find_field_of_view(screen)
        offsets = (view.top - placed.top, view.left - placed.left, view.side - placed.shape[0])
        row["square_offset_pct"] = 100.0 * max(map(abs, offsets)) / placed.shape[0]
        rows.append(row)
        print(
            f"{stem[:10]}  EF clip {row['clip_ef']:5.1f}  screen {row['screen_ef']:5.1f}  "
            f"whole {row['screen_whole_ef']:5.1f}  FileList {reference:5.1f}  "
            f"Dice {row['screen_dice']:.3f} / {row['screen_whole_dice']:.3f}  "
            f"square off {row['square_offset_pct']:.1f} %",
            flush=True,
        )
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    everything = np.ones(len(table), bool)
    for name, part in (
        ("training", ~table.held_out),
        ("held-out", table.held_out),
        ("all", everything),
    ):
        if part.any():
            sub = table[part]
            mae = {
                way: np.nanmean(np.abs(sub[f"{way}_ef"] - sub.filelist))
                for way in ("clip", "screen", "screen_whole")
            }
            print(
                f"{name} ({int(part.sum())}): EF MAE clip {mae['clip']:.1f}  screen "
                f"{mae['screen']:.1f}  screen_whole {mae['screen_whole']:.1f} (no EF on "
                f"{int(sub.screen_whole_ef.isna().sum())})"
            )
    print(
        f"all ({len(table)}): LV Dice with the clip's prediction, screen "
        f"{table.screen_dice.mean():.3f} (min {table.screen_dice.min():.3f}), screen_whole "
        f"{table.screen_whole_dice.mean():.3f} (min {table.screen_whole_dice.min():.3f}); "
        f"labelled pixels outside the clip, screen {int(table.screen_outside_px.sum())}, "
        f"screen_whole {int(table.screen_whole_outside_px.sum())}; square off by "
        f"{table.square_offset_pct.mean():.1f} % (max {table.square_offset_pct.max():.1f} %); "
        f"seconds per video clip {table.clip_s.mean():.1f}, screen {table.screen_s.mean():.1f}, "
        f"screen_whole {table.screen_whole_s.mean():.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
