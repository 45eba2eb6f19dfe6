"""Real echo displayed apex down (the probe at the bottom of the screen, as some sites show
the apical views).

    python benchmarks/apex_down_view.py [--videos-npz FILE] [--threads 2] [--geometry-only]

1. **Finding the apex** (seconds): :func:`echo_napari.field_of_view.find_field_of_view`
   on every shared EchoNet video as it is, turned upside down, inside an 800 × 600 scanner
   screen (:func:`echo_napari.simulation.screen.scanner_screen`) and that screen upside
   down; and on the two real scanner DICOM files of ``../shared/data/dicom-us`` (a linear
   probe's rectangle, which has no apex either way up, and a curvilinear fan), both
   ways. Prints the cases whose ``apex_down`` is wrong.
2. **Segmenting** (minutes; not with ``--geometry-only``): each video upside down,
   segmented by the bundled model with all post-processing, read as it is shown (what an
   apex-down clip got before 2026-11-27: ``crop_to_sector=False``, the frame given to the
   network as it is) and as it is now (turned apex up and back). EF MAE / bias against
   FileList, plausible frames, and the LV Dice of the labels turned back against the
   labels of the video as it is.
3. **View check** (:mod:`echo_napari.view_orientation`): the score upside down against
   the score as it is.
4. **Probe side** (:mod:`echo_napari.probe_side`): per way, the share of frames whose LA
   lies nearer the probe than the LV (0 for labels the right way up), its range over the
   training and the held-out videos, and the videos past ``UPSIDE_DOWN_SHARE``.

Skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from echo_napari.field_of_view import find_field_of_view
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.probe_side import UPSIDE_DOWN_SHARE, atrium_nearer_probe_share
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.data import HELD_OUT_VIDEOS
from echo_napari.sequence import LabelClass
from echo_napari.simulation.screen import scanner_screen
from echo_napari.view_orientation import check_orientation, load_orientation_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_echo import (  # noqa: E402
    add_video_arguments,
    bundled_model_for_videos,
    echonet_videos,
    summary_by_split,
)

DICOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom-us"
#: the probes of the DICOM files (their screens say so): a linear probe's rectangle has no
#: apex, so upside down it is still not apex down
FAN_PROBE = {"OBXXXX1A_2frame.dcm": True, "US1_UNCR.dcm": False}
WAYS = ("as it is", "upside down, read as shown", "upside down, turned apex up")


def upside_down(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames[:, ::-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_video_arguments(parser)
    parser.add_argument("--geometry-only", action="store_true", help="only part 1")
    args = parser.parse_args()
    model = bundled_model_for_videos(args)
    if model is None:
        return 0
    find_apexes(args.videos_npz)
    if not args.geometry_only:
        segment_upside_down(model, args.videos_npz)
    return 0


def find_apexes(videos_npz: str) -> None:
    """How often ``apex_down`` is right, per framing."""
    cases: list[tuple[str, np.ndarray, bool]] = []
    for stem, frames, _ in echonet_videos(videos_npz):
        screen = scanner_screen(frames[:64])[0]
        for name, clip, down in (
            ("as it is", frames, False),
            ("upside down", upside_down(frames), True),
            ("in a screen", screen, False),
            ("in a screen, upside down", upside_down(screen), True),
        ):
            cases.append((f"{stem[:10]} {name}", clip, down))
    if DICOM.is_dir():
        from echo_napari.io import read_sequence

        for path in sorted(DICOM.glob("*.dcm")):
            frames = np.asarray(read_sequence(path).frames, dtype=np.float32)
            cases.append((f"{path.name} as it is", frames, False))
            fan = FAN_PROBE.get(path.name, True)
            cases.append((f"{path.name} upside down", upside_down(frames), fan))
    wrong = [name for name, clip, down in cases if find_field_of_view(clip).apex_down != down]
    for name in wrong:
        print(f"wrong: {name}")
    print(f"apex found: {len(cases)} clips, right {len(cases) - len(wrong)}, wrong {len(wrong)}")


def segment_upside_down(model, videos_npz: str) -> None:
    """EF, plausibility and agreement of each video segmented upside down, both ways."""
    network = load_orientation_model()
    rows: dict[str, list[tuple[bool, float, float]]] = {way: [] for way in WAYS}
    dice: dict[str, list[float]] = {way: [] for way in WAYS[1:]}
    score_change = []
    nearer: dict[str, list[tuple[bool, float]]] = {way: [] for way in WAYS}
    for stem, frames, reference in echonet_videos(videos_npz):
        probe = find_field_of_view(frames).apex_point  # the labels below are upright
        down = upside_down(frames)
        upright = predict_sequence(frames, model)
        results = (
            upright,
            predict_sequence(down, model, crop_to_sector=False)[:, ::-1],
            predict_sequence(down, model)[:, ::-1],
        )
        line = f"{stem[:10]}  FileList {reference:5.1f}"
        for way, labels in zip(WAYS, results, strict=True):
            ef = ef_by_beats(labels).ef
            plausible = frame_plausibility(labels).plausible_share()
            rows[way].append((stem in HELD_OUT_VIDEOS, ef - reference, plausible))
            line += f"  {way}: EF {ef:5.1f} plausible {100 * plausible:5.1f} %"
            if way in dice:
                dice[way].append(lv_dice(labels, upright))
                line += f" LV Dice {dice[way][-1]:.3f}"
            share = atrium_nearer_probe_share(labels, probe)[0]
            nearer[way].append((stem in HELD_OUT_VIDEOS, share))
            line += f" LA nearer the probe {share:.2f}"
        as_is = check_orientation(frames, network).score
        score_change.append(abs(check_orientation(down, network).score - as_is))
        print(line, flush=True)
    for way, values in rows.items():
        extra = f" | LV Dice vs as it is {np.mean(dice[way]):.3f}" if way in dice else ""
        print(f"{way:28s} {summary_by_split(values, plausible=True)}{extra}")
    print(f"view score upside down vs as it is: largest change {max(score_change):.2e}")
    for way, values in nearer.items():
        parts = []
        for name, held in (("training", False), ("held-out", True)):
            shares = [share for h, share in values if h == held]
            past = sum(share > UPSIDE_DOWN_SHARE for share in shares)
            parts.append(
                f"{name} {min(shares):.2f}–{max(shares):.2f} ({past} of {len(shares)} past "
                f"{UPSIDE_DOWN_SHARE})"
            )
        print(f"{way:28s} frames with the LA nearer the probe: {' | '.join(parts)}")


def lv_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a == LabelClass.LV_CAVITY, b == LabelClass.LV_CAVITY
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


if __name__ == "__main__":
    raise SystemExit(main())
