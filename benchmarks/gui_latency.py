"""GUI latency: brush stroke → area curve, and event-loop latency during a background job.

1. For 64- and 256-frame sequences (112×112 and 256×256 pixels), paint a brush stroke on
   one frame the way napari's mouse binding does (``block_history`` around ``paint``
   calls) and time from the end of the stroke until the curve holds the new area and Qt
   has processed the repaint. Compared with recomputing every frame's areas (what a
   naive implementation would do on each edit). Target ≤ 50 ms at 256 frames.
2. Run a Propagate job (DIRNet, untrained weights of the bundled architecture: the same
   cost as trained ones) in the dock's ``thread_worker`` and probe the Qt event loop with
   a 10 ms QTimer until 0.3 s after the job ends (the result is written back on the GUI
   thread); report how late the probes fire and how long the write-back took. The same
   for a Predict job (the bundled segmentation model), then around accepting its result
   for every frame, and undoing and redoing that. Target ≤ 100 ms.
3. Save as… of a 100-frame 600×600 session (a first save embeds every frame), Export
   HDF5 of it and Open… of the saved file: the same probe while the Session panel's
   buttons write (read) in the background, against the time the same work blocks the GUI
   thread in the foreground (how the buttons worked before 2026-11-26). Before that, Undo
   and Redo of a change to every frame of that sequence.

4. A Predict job on a 150-frame 600 × 800 JPEG DICOM cine (a simulated clip in a
   scanner screen), opened lazily as File › Open does for a cine over 256 MB of float32:
   the job decodes its frames. The same probe with the frames decoded by Pillow (as
   now) and by pylibjpeg (pydicom's own choice, before 2026-11-27), each in a fresh
   interpreter (in one that has run a job already the two do not differ), twice.

5. The review, Training, Registration debugger and M-mode docks each opened first in a
   fresh viewer (one fresh interpreter per dock, so torch is not imported yet): how long
   the GUI thread is held by the click, the largest event-loop lateness until the dock is
   usable (its background import shares the GIL with the GUI thread; the review dock is
   usable once its Propagate / Predict tabs are built), and the time until then.
   Target ≤ 200 ms held. ``--docks`` runs only this part.

Run under a display (``xvfb-run -a python benchmarks/gui_latency.py [--docks]``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numpy as np


def make_labels(n_frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) float32 frames and uint8 labels of a beating disc."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n_frames, size, size), np.uint8)
    for t in range(n_frames):
        radius = size * (0.22 - 0.06 * np.sin(np.pi * t / n_frames) ** 2)
        dist = np.hypot(yy - size * 0.4, xx - size / 2)
        labels[t][dist <= radius + 3] = 2
        labels[t][dist <= radius] = 1
    rng = np.random.default_rng(0)
    frames = (0.2 + 0.5 * (labels == 2) + 0.1 * rng.random(labels.shape)).astype(np.float32)
    return frames, labels


def build(viewer, n_frames: int, size: int):
    from echo_napari.napari_hooks import sequence_layer_data
    from echo_napari.sequence import EchoSequence

    frames, labels = make_labels(n_frames, size)
    seq = EchoSequence(
        frames=frames,
        spacing=(0.3, 0.3),
        labels=labels,
        ed_index=0,
        es_index=n_frames // 3,
        keyframes={0, n_frames // 3},
    )
    viewer.layers.clear()
    for data, kwargs, kind in sequence_layer_data(seq, name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer.layers["echo labels"]


def open_dock(viewer, app):
    """Open the review dock (first time in this process: torch not imported yet) and print
    how long the GUI thread was held and when its Propagate / Predict tabs arrived."""
    begin = time.perf_counter()
    _, dock = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    held = time.perf_counter() - begin
    while not dock._job_panels_built and time.perf_counter() - begin < 60:
        app.processEvents()
        time.sleep(0.005)
    print(
        f"review dock opened: GUI thread held {held * 1e3:.0f} ms; Propagate / Predict tabs "
        f"{(time.perf_counter() - begin) * 1e3:.0f} ms after the click (cores imported in "
        "the background)"
    )
    return dock


def stroke_latency(viewer, dock, app, layer, trials: int = 15) -> dict[str, float]:
    from echo_napari.metrics import class_areas_mm2

    n, size = layer.data.shape[0], layer.data.shape[1]
    rng = np.random.default_rng(1)
    layer.brush_size = max(4, size // 16)
    handler, curve_paint, window, full = [], [], [], []
    plot = dock.curve.plot_widget
    for _ in range(trials):
        t = int(rng.integers(n))
        viewer.dims.set_current_step(0, t)
        app.processEvents()
        before = dock.curve.curve_data(3)[t]
        y0, x0 = rng.integers(size // 8, size // 3, size=2)
        with layer.block_history():  # one brush stroke, as napari's draw() does
            for k in range(8):
                layer.paint((t, y0 + k, x0 + 2 * k), 3)
            start = time.perf_counter()
        # leaving block_history emitted `paint`: the session and curve data are updated
        handler.append(time.perf_counter() - start)
        plot.grab()  # paint the curve widget (offscreen: its own drawing cost)
        curve_paint.append(time.perf_counter() - start)
        app.processEvents()  # everything else, napari's canvas included
        window.append(time.perf_counter() - start)
        assert dock.curve.curve_data(3)[t] > before, "curve did not change"
        np.testing.assert_allclose(dock.curve.curve_data(3), dock.session.areas[:, 3])
        start = time.perf_counter()
        areas = class_areas_mm2(layer.data, (0.3, 0.3))
        for cls, curve in dock.curve.curves.items():
            curve.setData(np.arange(n), areas[:, cls])
        full.append(time.perf_counter() - start)
        layer.undo()
        app.processEvents()
    return {
        "handler_ms": 1e3 * statistics.median(handler),
        "curve_ms": 1e3 * statistics.median(curve_paint),
        "curve_max_ms": 1e3 * max(curve_paint),
        "window_ms": 1e3 * statistics.median(window),
        "full_ms": 1e3 * statistics.median(full),
    }


def idle_repaint_cost(dock, app, trials: int = 15) -> float:
    """Median ms to show a one-word label change: the window composition floor here."""
    times = []
    for i in range(trials):
        start = time.perf_counter()
        dock.keyframes_label.setText(f"probe {i}")
        app.processEvents()
        times.append(time.perf_counter() - start)
    dock.session.events.keyframes.emit()
    return 1e3 * statistics.median(times)


def _lateness_while(app, start, busy, probe_ms: int = 10) -> tuple[float, list[float]]:
    """Run ``start()``, then process events while ``busy()``; seconds taken and the sorted
    lateness (ms) of a ``probe_ms`` QTimer meanwhile."""
    from qtpy.QtCore import QTimer

    lateness: list[float] = []
    last = [time.perf_counter()]

    def probe() -> None:
        now = time.perf_counter()
        lateness.append(max(0.0, now - last[0] - probe_ms / 1e3))
        last[0] = now

    timer = QTimer()
    timer.setInterval(probe_ms)
    timer.timeout.connect(probe)
    # The probe runs from before ``start()``, so what ``start()`` does on the GUI thread
    # (a click's own work) is lateness of the first probe.
    timer.start()
    begin = last[0] = time.perf_counter()
    start()
    while busy():
        app.processEvents()
        time.sleep(0.001)
    seconds = time.perf_counter() - begin
    timer.stop()
    return seconds, sorted(1e3 * x for x in lateness) or [0.0]


def busy_until_done(owner, settle_s: float = 0.3):
    """A ``busy()`` for :func:`_lateness_while`: True while ``owner.worker`` runs and
    ``settle_s`` after it ended; returns it and the list the end time is appended to."""
    ended: list[float] = []

    def busy() -> bool:
        if owner.worker is not None:
            return True
        if not ended:
            ended.append(time.perf_counter())
        return time.perf_counter() < ended[0] + settle_s

    return busy, ended


def event_loop_latency(viewer, dock, app, job: str = "propagate", probe_ms: int = 10):
    """Lateness of a 10 ms QTimer while the dock's ``job`` ("propagate" or "predict") runs
    in its worker and until 0.3 s after it ends, and the time its result handler takes."""
    import torch

    from echo_napari.registration.backends import DirnetBackend
    from echo_napari.registration.dirnet import DirNet
    from echo_napari.widgets.propagate_panel import torch_threads_for_jobs

    if job == "propagate":
        panel = dock.propagate_panel
        torch.manual_seed(0)
        panel.backend_factory = lambda name, device: DirnetBackend(
            model=DirNet(), device="cpu", threads=torch_threads_for_jobs(), chunk=8
        )
        start_job = panel.propagate
    else:
        panel = dock.predict_panel
        start_job = panel.predict
    # The result is written back on the GUI thread: time that handler on its own, and
    # keep probing after the job ends so its stall is always among the probes.
    handler_ms: list[float] = []
    on_returned = panel._on_returned

    def timed_on_returned(output) -> None:
        begin = time.perf_counter()
        on_returned(output)
        handler_ms.append(1e3 * (time.perf_counter() - begin))

    panel._on_returned = timed_on_returned
    busy, ended = busy_until_done(panel)
    start = time.perf_counter()
    _, lateness_ms = _lateness_while(app, start_job, busy, probe_ms)
    job_s = ended[0] - start
    del panel._on_returned
    return {
        "job_s": job_s,
        "probes": len(lateness_ms),
        "p50_ms": lateness_ms[len(lateness_ms) // 2],
        "p99_ms": lateness_ms[int(0.99 * (len(lateness_ms) - 1))],
        "max_ms": lateness_ms[-1],
        "handler_ms": handler_ms[0] if handler_ms else float("nan"),
        "ok": ("propagation" in dock.session.results)
        if job == "propagate"
        else dock.session.second_source is not None,
    }


def action_latency(app, action, settle_s: float = 0.3) -> float:
    """Largest event-loop lateness (ms) from a click's ``action`` on the GUI thread until
    ``settle_s`` after it (what it queued: session commit, curves, canvas repaint)."""
    until: list[float] = []

    def start() -> None:
        action()
        until.append(time.perf_counter() + settle_s)

    _, lateness_ms = _lateness_while(app, start, lambda: time.perf_counter() < until[0])
    return lateness_ms[-1]


def accept_latency(dock, app) -> dict[str, float]:
    """Largest lateness (ms) around *Accept* of the whole prediction, then around Undo
    and Redo of it (Alt-Z / Alt-Shift-Z)."""
    panel = dock.predict_panel
    panel.first_spin.setValue(0)
    panel.last_spin.setValue(dock.session.sequence.n_frames - 1)
    return {
        "accept_ms": action_latency(app, panel.accept_range),
        "undo_ms": action_latency(app, dock.link.undo),
        "redo_ms": action_latency(app, dock.link.redo),
    }


def large_undo_latency(dock, app, runs: int = 3) -> list[tuple[float, float]]:
    """Largest lateness (ms) around Undo and Redo of a change to every frame of the bound
    sequence (each LV cavity turned into myocardium, or back), ``runs`` times."""
    link, labels = dock.link, dock.session.labels
    out = []
    for run in range(runs):
        labels[labels == (1 if run % 2 == 0 else 2)] = 2 if run % 2 == 0 else 1
        dock.session.refresh_areas(range(labels.shape[0]))
        link.commit("edit", list(range(labels.shape[0])))
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)
        out.append((action_latency(app, link.undo), action_latency(app, link.redo)))
    return out


def file_io_latency(dock, app, tmp: str) -> dict[str, dict[str, float]]:
    """Event-loop lateness during a background *Save as…* (a first save: frames embedded),
    a background *Export HDF5* and a background *Open…* of the saved file, and the seconds
    each takes in the foreground (the freeze it would be)."""
    from pathlib import Path

    from echo_napari.session_export import export_hdf5

    panel, link = dock.session_panel, dock.link
    tmp = Path(tmp)
    jobs = {
        "Save as…": (
            lambda: panel.save_as(tmp / "background.h5", background=True),
            lambda: link.saving,
            lambda: link.store.save(tmp / "foreground.h5"),  # what the button used to do
        ),
        "Export HDF5": (
            lambda: panel.export_hdf5(tmp / "export_bg.h5", background=True),
            lambda: panel.export_worker is not None,
            lambda: export_hdf5(link.store, tmp / "export_fg.h5"),
        ),
        # Reading the file moves to a worker; napari adds the two layers on the GUI thread.
        "Open…": (
            lambda: panel.open_session(tmp / "background.h5", background=True),
            # until the layers are there (napari adds them after the worker returns)
            lambda: (
                dock.open_worker is not None
                or (
                    "background labels" not in dock.viewer.layers and time.perf_counter() < give_up
                )
            ),
            lambda: dock.open_session(tmp / "background.h5"),  # what the button used to do
        ),
    }
    out = {}
    give_up = time.perf_counter() + 120.0
    for name, (start, busy, foreground) in jobs.items():
        seconds, lateness_ms = _lateness_while(app, start, busy)
        begin = time.perf_counter()
        foreground()
        out[name] = {
            "background_s": seconds,
            "foreground_s": time.perf_counter() - begin,
            "probes": len(lateness_ms),
            "p99_ms": lateness_ms[int(0.99 * (len(lateness_ms) - 1))],
            "max_ms": lateness_ms[-1],
        }
    return out


#: Docks measured by :func:`dock_first_latency`: display name in the manifest.
FIRST_DOCKS = ("Echo review", "Training", "Registration debugger", "M-mode")


def _dock_ready(dock) -> bool:
    # The review dock is usable once its Propagate / Predict tabs are built; a dock without
    # a background import (as these were before) is usable once added.
    if hasattr(dock, "_job_panels_built"):
        return bool(dock._job_panels_built)
    return bool(getattr(dock, "ready", True))


def open_dock_first(name: str) -> dict[str, float | bool]:
    """In this (fresh) interpreter: a viewer with a 64-frame sequence, then open dock
    ``name`` and probe the event loop until 0.3 s after the dock is usable."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    app = QApplication.instance()
    build(viewer, 64, 112)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.005)
    torch_before = "torch" in sys.modules
    out: dict = {}  # what the click measured, and the dock
    ready_at: list[float] = []

    def start() -> None:
        begin = time.perf_counter()
        _, dock = viewer.window.add_plugin_dock_widget("echo-napari", name)
        out["held_ms"] = 1e3 * (time.perf_counter() - begin)
        out["torch_after_click"] = "torch" in sys.modules
        out["begin"] = begin
        out["dock"] = dock

    def busy() -> bool:
        if not ready_at:
            if not _dock_ready(out["dock"]):
                return time.perf_counter() - out["begin"] < 60
            ready_at.append(time.perf_counter())
        return time.perf_counter() < ready_at[0] + 0.3

    _, lateness_ms = _lateness_while(app, start, busy)
    result = {
        "held_ms": out["held_ms"],
        "usable_ms": 1e3 * (ready_at[0] - out["begin"]) if ready_at else float("nan"),
        "max_lateness_ms": lateness_ms[-1],
        "torch_before": torch_before,
        "torch_after_click": out["torch_after_click"],
    }
    viewer.close()
    return result


def dock_first_latency(runs: int = 3) -> None:
    """Print :func:`open_dock_first` of each of :data:`FIRST_DOCKS`, ``runs`` fresh
    interpreters each (median, and the range)."""
    print(
        "dock opened first in a fresh viewer (torch not yet imported), median of "
        f"{runs} fresh interpreters [min–max]:"
    )
    for name in FIRST_DOCKS:
        results = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, __file__, "--open-first", name],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        torch_on_click = any(r["torch_after_click"] for r in results)
        print(
            f"  {name}: GUI thread held {_spread(results, 'held_ms')}; max event-loop "
            f"lateness until usable {_spread(results, 'max_lateness_ms')}; usable after "
            f"{_spread(results, 'usable_ms')}; torch imported by the click: {torch_on_click}"
        )


def _spread(results: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in results]
    return f"{statistics.median(values):.0f} ms [{min(values):.0f}–{max(values):.0f}]"


def lazy_cine_predict(decoder: str) -> dict[str, float | bool]:
    """Part 4, in this (fresh) interpreter: a viewer and the review dock, a 150-frame
    600 × 800 JPEG cine opened lazily, then Predict and the probe. ``decoder``: "Pillow"
    (as now) or "pylibjpeg" (pydicom's own choice, before 2026-11-27)."""
    import tempfile
    from pathlib import Path

    import napari
    from qtpy.QtWidgets import QApplication

    import echo_napari.io.dicom as dicom
    from echo_napari.io import read_sequence
    from echo_napari.napari_hooks import sequence_layer_data
    from echo_napari.simulation import SimulationParams, simulate_sequence
    from echo_napari.simulation.screen import scanner_screen

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from io_fixtures import make_dicom

    if decoder == "pylibjpeg":
        dicom._preferred_plugin = lambda ds: ""
    params = SimulationParams(frames_per_cycle=50, n_cycles=3.0)
    clip = np.asarray(simulate_sequence(3, params).sequence.frames, np.float32)[:150]
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    app = QApplication.instance()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_dicom(Path(tmp) / "cine.dcm", scanner_screen(clip)[0], compress="jpeg")
        sequence = read_sequence(path, lazy=True)
        for data, kwargs, kind in sequence_layer_data(sequence, name="cine"):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        dock = open_dock(viewer, app)
        while dock.session.sequence is None or dock.session.sequence.n_frames != 150:
            app.processEvents()
            time.sleep(0.01)
        r = event_loop_latency(viewer, dock, app, "predict")
    viewer.close()
    return {key: r[key] for key in ("job_s", "probes", "p99_ms", "max_ms", "ok")}


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    if "--open-first" in sys.argv:
        print(json.dumps(open_dock_first(sys.argv[sys.argv.index("--open-first") + 1])))
        return
    if "--lazy-cine" in sys.argv:
        print(json.dumps(lazy_cine_predict(sys.argv[sys.argv.index("--lazy-cine") + 1])))
        return
    dock_first_latency()
    if "--docks" in sys.argv:
        return

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    app = QApplication.instance()
    dock = None
    print("brush stroke → area curve (ms, median of 15; end of stroke until ...)")
    print(
        f"{'frames':>6} {'size':>5} {'data':>7} {'curve':>7} {'max':>7} {'window':>7}"
        f" {'full recompute':>15}"
    )
    for n_frames, size in ((64, 112), (256, 112), (256, 256)):
        layer = build(viewer, n_frames, size)
        if dock is None:
            dock = open_dock(viewer, app)
        for _ in range(5):
            app.processEvents()
        assert dock.labels_layer == layer and dock.session.sequence.n_frames == n_frames
        r = stroke_latency(viewer, dock, app, layer)
        print(
            f"{n_frames:>6} {size:>5} {r['handler_ms']:>7.2f} {r['curve_ms']:>7.2f} "
            f"{r['curve_max_ms']:>7.2f} {r['window_ms']:>7.1f} {r['full_ms']:>8.2f} "
            f"({r['full_ms'] / r['handler_ms']:.0f}x data)"
        )
    print(
        "data: session areas + curve data updated; curve: + the curve widget painted;"
        " window: + all pending Qt events (napari canvas, window composition)"
    )
    print(
        f"window composition floor (a QLabel change + processEvents, idle): "
        f"{idle_repaint_cost(dock, app):.1f} ms"
    )
    if hasattr(dock, "propagate_panel"):
        jobs = ["propagate"] * 5 + (["predict"] * 3 if hasattr(dock, "predict_panel") else [])
        for run, job in enumerate(jobs):
            build(viewer, 128, 112)
            for _ in range(5):
                app.processEvents()
            r = event_loop_latency(viewer, dock, app, job)
            if job == "predict":
                for _ in range(40):  # the deferred "done" toast, then Accept
                    app.processEvents()
                    time.sleep(0.01)
                r.update(accept_latency(dock, app))
            print(
                f"event loop during {job.capitalize()}, run {run + 1} (128 frames 112×112, "
                f"{r['job_s']:.1f} s job, {r['probes']} probes): lateness p50 "
                f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
                f"writing the result back {r['handler_ms']:.0f} ms; result written: {r['ok']}"
                + (
                    f"; then max lateness around Accept of all frames {r['accept_ms']:.0f} ms,"
                    f" its Undo {r['undo_ms']:.0f} ms, Redo {r['redo_ms']:.0f} ms"
                    if "accept_ms" in r
                    else ""
                )
            )
    else:
        print("event loop during a job: skipped (registration core not installed)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        build(viewer, 100, 600)
        for _ in range(5):
            app.processEvents()
        for run, (undo_ms, redo_ms) in enumerate(large_undo_latency(dock, app)):
            print(
                f"Undo / Redo of a change to every frame (100 frames 600×600), run {run + 1}: "
                f"max lateness {undo_ms:.0f} / {redo_ms:.0f} ms"
            )
        for name, r in file_io_latency(dock, app, tmp).items():
            print(
                f"event loop during {name} (100 frames 600×600, frames in the file): background "
                f"{r['background_s']:.1f} s, {r['probes']} probes: lateness p99 "
                f"{r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; the same in the foreground "
                f"blocks the GUI for {r['foreground_s'] * 1e3:.0f} ms"
            )
    viewer.close()
    for run in range(2):
        for decoder in ("Pillow", "pylibjpeg"):
            child = subprocess.run(
                [sys.executable, __file__, "--lazy-cine", decoder],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"event loop during Predict on a lazily opened 150-frame 600×800 JPEG cine, "
                f"fresh interpreter, run {run + 1}, frames decoded by {decoder} "
                f"({r['job_s']:.1f} s job, {r['probes']} probes): lateness p99 "
                f"{r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; result written: {r['ok']}"
            )


if __name__ == "__main__":
    main()
