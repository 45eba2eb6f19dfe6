"""Reading a JPEG DICOM cine, as most echo scanners export them (JPEG Baseline,
YBR_FULL_422), against pydicom's whole-array decode with the luma taken from its RGB.

    python benchmarks/dicom_read.py [--frames 120] [--repeats 3]

Writes a simulated clip inside an 800 × 600 scanner screen as such a cine in a temporary
folder (the test suite's writer, ``tests/io_fixtures.py``), then times, best of
``--repeats``: (a) ``read_sequence`` (frame by frame with Pillow, the luma sample kept,
no RGB conversion; what File › Open and every CLI command do for a cine under 256 MB of
float32); (b) the reference, ``pydicom.pixels.pixel_array`` on the whole cine and the
BT.601 luma of its RGB (what the reader did before 2026-11-27); (c) ``read_sequence(...,
lazy=True)`` up to its first frame (what File › Open does for a longer cine: the rest is
decoded as napari shows the frames or a job reads them). Prints the times, the ratio of
(b) to (a) and how far the two greys differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def best_time(function, repeats: int) -> tuple[float, object]:
    best, value = np.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import pydicom
    from io_fixtures import make_dicom
    from pydicom.pixels import pixel_array

    from echo_napari.io import read_sequence
    from echo_napari.simulation import SimulationParams, simulate_sequence
    from echo_napari.simulation.screen import scanner_screen

    params = SimulationParams(frames_per_cycle=40, n_cycles=args.frames / 40)
    clip = np.asarray(simulate_sequence(3, params).sequence.frames, np.float32)[: args.frames]
    screen = scanner_screen(clip)[0]
    with tempfile.TemporaryDirectory() as folder:
        path = make_dicom(Path(folder) / "cine.dcm", screen, frame_time=16.7, compress="jpeg")
        size_mb = path.stat().st_size / 1e6
        ours_s, ours = best_time(lambda: np.asarray(read_sequence(path).frames), args.repeats)

        def reference() -> np.ndarray:
            rgb = pixel_array(pydicom.dcmread(path))
            return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255

        reference_s, grey = best_time(reference, args.repeats)
        lazy_s, _ = best_time(
            lambda: np.asarray(read_sequence(path, lazy=True).frames[0]), args.repeats
        )
    difference = np.abs(ours - grey)
    print(
        f"{args.frames} frames of 600 x 800, JPEG Baseline YBR_FULL_422, {size_mb:.1f} MB; "
        f"best of {args.repeats}"
    )
    print(f"read_sequence (frame by frame, luma sample): {ours_s:.3f} s")
    print(f"pydicom whole array, luma of RGB (reference): {reference_s:.3f} s")
    print(f"ratio reference / ours: {reference_s / ours_s:.1f}x")
    print(f"lazy open, up to the first frame: {lazy_s:.3f} s")
    print(
        f"grey difference: mean {difference.mean():.5f}, 99.9th percentile "
        f"{np.percentile(difference, 99.9):.4f}, max {difference.max():.4f} (0-1 range)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
