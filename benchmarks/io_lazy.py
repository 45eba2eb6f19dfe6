"""Lazy video reading: first-frame latency, scrubbing speed and peak memory.

Generates a 1,000-frame 800x600 AVI (MJPEG) in a temporary folder, then, each in a fresh
subprocess, (a) opens it with ``read_sequence`` (lazy), times the first frame as an
in-memory array, scrubs 50 random frames and reports peak RSS; (b) decodes every frame
into memory (the eager reference). Prints the numbers and lazy/eager ratios.

Usage: ``python benchmarks/io_lazy.py [--frames 1000] [--codec mjpeg|mpeg4]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
t0 = time.perf_counter()
from echo_napari.io import read_sequence
mode, path, n_scrub = sys.argv[1], sys.argv[2], int(sys.argv[3])
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
import dask.array  # one-off cost; napari has it loaded already, the CLI does not
t_dask = time.perf_counter() - t0
t0 = time.perf_counter()
if mode == "lazy":
    seq = read_sequence(path, lazy=True)
    first = np.asarray(seq.frames[0])
    t_first = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    picks = rng.integers(0, seq.n_frames, n_scrub)
    t1 = time.perf_counter()
    for t in picks:
        frame = np.asarray(seq.frames[int(t)])
        assert frame.shape == seq.frame_shape
    t_scrub = (time.perf_counter() - t1) / n_scrub
    total = time.perf_counter() - t0
else:
    seq = read_sequence(path, lazy=False)
    first = seq.frames[0]
    t_first = total = time.perf_counter() - t0
    t_scrub = 0.0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"mode": mode, "frames": seq.n_frames, "shape": list(seq.frame_shape),
                  "lazy": seq.is_lazy, "first_frame_s": t_first, "scrub_s_per_frame": t_scrub,
                  "total_s": total, "peak_rss_mb": rss_mb, "import_s": t_import,
                  "dask_import_s": t_dask}))
"""


def make_video(path: Path, n_frames: int, codec: str) -> None:
    """A moving-pattern grey video of ``n_frames`` 600x800 frames."""
    from echo_napari.io.video import write_video

    yy, xx = np.mgrid[:700, :800].astype(np.float32)
    r = np.hypot(yy - 350, xx - 400)
    rings = 0.5 + 0.4 * np.sin(r / 12) * np.exp(-r / 500)
    noise = np.random.default_rng(0).random((600, 800), dtype=np.float32) * 0.1

    class Frames:
        shape = (n_frames, 600, 800)

        def __getitem__(self, t: int) -> np.ndarray:
            shift = int(50 + 50 * np.sin(2 * np.pi * t / 50))  # rings move up and down
            return rings[shift : shift + 600] + noise

    write_video(Frames(), path, frame_time_ms=20.0, codec=codec)


def run_child(mode: str, path: Path, n_scrub: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(n_scrub)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--codec", default="mjpeg", choices=["mjpeg", "mpeg4"])
    parser.add_argument("--scrub", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suffix = ".avi"
        path = Path(tmp) / f"long{suffix}"
        t0 = time.perf_counter()
        make_video(path, args.frames, args.codec)
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {args.frames} frames 800x600 {args.codec}: {size_mb:.1f} MB "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        lazy = run_child("lazy", path, args.scrub)
        eager = run_child("eager", path, 0)
    print(
        f"lazy : first frame {lazy['first_frame_s']:.3f} s "
        f"(+ {lazy['dask_import_s']:.3f} s one-off import of dask.array), "
        f"scrub {1000 * lazy['scrub_s_per_frame']:.1f} ms/frame ({args.scrub} random), "
        f"peak RSS {lazy['peak_rss_mb']:.0f} MB"
    )
    print(
        f"eager: all {eager['frames']} frames in {eager['total_s']:.3f} s, "
        f"peak RSS {eager['peak_rss_mb']:.0f} MB"
    )
    print(
        f"ratio eager/lazy time-to-first-frame: "
        f"{eager['first_frame_s'] / lazy['first_frame_s']:.1f}x; "
        f"peak RSS lazy/eager: {lazy['peak_rss_mb'] / eager['peak_rss_mb']:.2f}"
    )
    first = lazy["first_frame_s"] + lazy["dask_import_s"]
    print(
        f"targets: first frame incl. dask import <= 2 s: {'OK' if first <= 2 else 'MISSED'}; "
        f"RSS < 1 GB: {'OK' if lazy['peak_rss_mb'] < 1024 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
