"""GPU vs CPU timings of the bundled models, measured in one run on the same machine.

    python benchmarks/gpu.py            # prints a notice and exits when there is no CUDA GPU

128-frame 112×112 simulated sequence: DIRNet registration of the 254 consecutive pairs +
propagation and fusion from 4 keyframes (with drift correction), and segmentation of every
frame; CUDA against the CPU with 2 torch threads (the laptop setting). Best of 3 after a
warm-up.
"""

from __future__ import annotations

import sys
import time

import torch
from propagation import time_long_sequence

from echo_napari.registration import DirnetBackend
from echo_napari.segmentation import load_model, predict_sequence
from echo_napari.simulation import SimulationParams, seeds, simulate_sequence


def segmentation_seconds(frames, device: str, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to segment ``frames`` on ``device``."""
    model = load_model("bundled", device)
    predict_sequence(frames[:32], model)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        predict_sequence(frames, model)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to compare (this benchmark runs where a GPU is present)")
        return 0
    torch.set_num_threads(2)
    print(f"GPU: {torch.cuda.get_device_name(0)}; CPU: 2 torch threads")
    for device in ("cuda", "cpu"):
        backend = DirnetBackend(device=device, threads=2)
        time_long_sequence(backend, repeats=1)
        t = time_long_sequence(backend, repeats=3)
        print(
            f"DIRNet {device}: 128 frames: register {t['register']:.3f} s + propagate "
            f"{t['propagate']:.3f} s = {t['total']:.3f} s"
        )
    params = SimulationParams(frames_per_cycle=64, n_cycles=2.0)
    frames = simulate_sequence(seeds("test", 1)[0], params).sequence.frames_array()
    for device in ("cuda", "cpu"):
        seconds = segmentation_seconds(frames, device)
        print(f"segmentation {device}: {frames.shape[0]} frames {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
