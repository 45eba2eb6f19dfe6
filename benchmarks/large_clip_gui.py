"""GUI thread on a large clip: a 150-frame 600 × 800 scanner screen (simulated heart).

    xvfb-run -a python benchmarks/large_clip_gui.py

Each part runs in a fresh interpreter (nothing imported or cached before it), with the
sequence's labels on every frame (the simulator's truth drawn into the screen):

1. **open**: the review dock opened over the clip; how long the click holds the GUI thread
   and the longest event-loop stall until its Propagate / Predict tabs are built. Again
   with the anatomical checks measured at the frames' full size (``CHECK_SIDE_PX`` set
   out of reach), as before 2026-11-27.
2. **accept**: Predict, then the longest stall around *Accept prediction* of every frame,
   its Undo and its Redo (``gui_latency.action_latency``).
3. **debugger**: the Registration debugger's Compute (DIRNet, consecutive pairs, every
   frame), twice: job seconds, longest stall, peak resident memory of the process and the
   layers' shape. Again with the frames registered at their full size
   (``WORK_SIDE_PX`` out of reach).

Target: ≤ 100 ms for every stall (napari's own adding of layers is part of them).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_FRAMES = 150


def screen_clip():
    """(frames (T, 600, 800) float32, labels (T, 600, 800) uint8) of a simulated heart in a
    scanner's screen, labels on every frame."""
    from skimage.transform import resize

    from echo_napari.simulation import SimulationParams, simulate_sequence
    from echo_napari.simulation.screen import scanner_screen

    sim = simulate_sequence(3, SimulationParams(frames_per_cycle=50, n_cycles=3.0)).sequence
    clip = np.asarray(sim.frames, np.float32)[:N_FRAMES]
    screen, placed = scanner_screen(clip)
    labels = np.zeros(screen.shape, np.uint8)
    for t, frame_labels in enumerate(np.asarray(sim.labels)[:N_FRAMES]):
        size = (
            round(frame_labels.shape[0] * placed.scale),
            round(frame_labels.shape[1] * placed.scale),
        )
        big = resize(frame_labels, size, order=0, preserve_range=True, anti_aliasing=False)
        h = min(big.shape[0], screen.shape[1] - placed.top)
        w = min(big.shape[1], screen.shape[2] - placed.left)
        labels[t, placed.top : placed.top + h, placed.left : placed.left + w] = big[:h, :w]
    return np.asarray(screen, np.float32), labels


def viewer_with_clip():
    """A shown viewer holding the clip and its labels, and the QApplication."""
    import napari
    from qtpy.QtWidgets import QApplication

    from echo_napari.napari_hooks import sequence_layer_data
    from echo_napari.sequence import EchoSequence

    frames, labels = screen_clip()
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    sequence = EchoSequence(frames=frames, spacing=(0.3, 0.3), labels=labels)
    for data, kwargs, kind in sequence_layer_data(sequence, name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    app = QApplication.instance()
    settle(app)
    return viewer, app


def settle(app, seconds: float = 0.3) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def open_review_dock(viewer, app) -> tuple[object, dict[str, float]]:
    """Open the review dock; the click's hold and the longest stall until usable."""
    from gui_latency import _lateness_while

    out: dict = {}
    ready: list[float] = []

    def start() -> None:
        begin = time.perf_counter()
        _, out["dock"] = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
        out["held_ms"] = 1e3 * (time.perf_counter() - begin)

    def busy() -> bool:
        if not ready:
            if not out["dock"]._job_panels_built:
                return True
            ready.append(time.perf_counter())
        return time.perf_counter() < ready[0] + 0.3

    _, lateness = _lateness_while(app, start, busy)
    return out["dock"], {"held_ms": out["held_ms"], "max_ms": lateness[-1]}


def part_open(full_size_checks: bool) -> dict:
    if full_size_checks:
        import echo_napari.metrics_plausibility as checks

        checks.CHECK_SIDE_PX = 10**6
    viewer, app = viewer_with_clip()
    _, result = open_review_dock(viewer, app)
    viewer.close()
    return result


def part_accept() -> dict:
    from gui_latency import action_latency

    viewer, app = viewer_with_clip()
    dock, _ = open_review_dock(viewer, app)
    panel = dock.predict_panel
    panel.predict_button.click()
    while panel.worker is not None:
        app.processEvents()
        time.sleep(0.01)
    settle(app, 0.5)
    result = {"accept_ms": action_latency(app, panel.accept_button.click)}
    settle(app)
    result["undo_ms"] = action_latency(app, dock.session_panel.undo)
    settle(app)
    result["redo_ms"] = action_latency(app, dock.session_panel.redo)
    result["status"] = panel.status_label.text()[:60]
    viewer.close()
    return result


def compute_once(dock, app) -> dict[str, float]:
    """The debugger's Compute: job seconds and the longest stall until 0.3 s after it."""
    from gui_latency import _lateness_while, busy_until_done

    busy, ended = busy_until_done(dock)
    begin = time.perf_counter()
    _, lateness = _lateness_while(app, dock.compute, busy)
    settle(app)
    return {"job_s": ended[0] - begin, "max_ms": lateness[-1]}


def part_debugger(full_size_registration: bool) -> dict:
    if full_size_registration:
        import echo_napari.registration.working_grid as working_grid

        working_grid.WORK_SIDE_PX = 10**6
    viewer, app = viewer_with_clip()
    _, dock = viewer.window.add_plugin_dock_widget("echo-napari", "Registration debugger")
    dock.wait_until_ready(120)
    settle(app)
    runs = [compute_once(dock, app) for _ in range(2)]
    run = dock.runs["A"]
    result = {
        "runs": runs,
        "layers": list(run.det.data.shape),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    viewer.close()
    return result


def fresh(part: str, *flags: str) -> dict:
    """Run ``part`` in a fresh interpreter; its JSON result."""
    done = subprocess.run(
        [sys.executable, __file__, "--part", part, *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--part" in sys.argv:
        part = sys.argv[sys.argv.index("--part") + 1]
        if part == "open":
            result = part_open("--full-size" in sys.argv)
        elif part == "accept":
            result = part_accept()
        else:
            result = part_debugger("--full-size" in sys.argv)
        print(json.dumps(result))
        return
    print(f"{N_FRAMES}-frame 600 × 800 scanner screen, labels on every frame (Xvfb)")
    for label, flags in (
        ("checks on the 160-px grid", ()),
        ("checks at full size", ("--full-size",)),
    ):
        r = fresh("open", *flags)
        print(
            f"review dock opened ({label}): GUI thread held {r['held_ms']:.0f} ms, longest "
            f"stall until usable {r['max_ms']:.0f} ms"
        )
    r = fresh("accept")
    print(
        f"Accept prediction of every frame: longest stall {r['accept_ms']:.0f} ms; its Undo "
        f"{r['undo_ms']:.0f} ms, Redo {r['redo_ms']:.0f} ms ({r['status']})"
    )
    for label, flags in (("on the 320-px grid", ()), ("at full size", ("--full-size",))):
        r = fresh("debugger", *flags)
        first, second = r["runs"]
        print(
            f"Registration debugger, DIRNet, every frame ({label}): layers {r['layers']}; "
            f"job {first['job_s']:.1f} s / {second['job_s']:.1f} s (first / second Compute), "
            f"longest stall {first['max_ms']:.0f} / {second['max_ms']:.0f} ms, "
            f"peak memory {r['peak_gb']:.2f} GB"
        )


if __name__ == "__main__":
    main()
