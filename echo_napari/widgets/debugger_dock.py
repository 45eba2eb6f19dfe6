"""Registration debugger dock: register a sequence (t−1→t or keyframe→t) with one or two
backends / model versions and show Jacobian, folding, displacement, deformed grid,
difference and propagated-class layers plus per-frame plots linked to the time slider.

Computation runs in a napari ``thread_worker`` that yields one chunk of frames at a time
(:func:`echo_napari.registration.diagnostics.diagnostics_chunks`); each chunk is shown as
it arrives and Cancel stops at the next chunk. Frames longer than
:data:`~echo_napari.registration.working_grid.WORK_SIDE_PX` are registered and shown on a
grid that long, as Propagate registers them (the fields come from a network run on a
~128-pixel square, so nothing is lost): on a 150-frame 600 × 800 scanner clip the
process then peaks at 1.5 GB instead of 3.5 GB, and Compute takes ~2 s instead of ~5 s
(``benchmarks/large_clip_gui.py``). The registration core imports torch
(~1.2 s), so the dock opens without it and imports it in the background
(:class:`~echo_napari.widgets.job_cores.CoreGate`): the backends and Compute are enabled
then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from echo_napari.sequence import CLASS_NAMES, LabelClass
from echo_napari.widgets._jobs import (
    connect_worker,
    error_message,
    show_job_failure,
    start_counted_job,
)
from echo_napari.widgets._notify import notify_error
from echo_napari.widgets.debug_plots import DebugPlots
from echo_napari.widgets.job_cores import CoreGate, WaitsForCores

if TYPE_CHECKING:
    import napari

    from echo_napari.registration.diagnostics import DiagnosticsChunk
    from echo_napari.widgets.debug_layers import DebugLayers

logger = logging.getLogger(__name__)

#: Pairs per backend call: bounds the delay before a chunk appears and before Cancel acts.
CHUNK_PAIRS = 4

NONE_BACKEND = "— none —"
MODES = {"t−1 → t (consecutive)": "consecutive", "keyframe → t": "keyframe"}
SCOPES = ("whole sequence", "current frame")
#: What the backends and Compute need (torch, the registration core and its diagnostics).
REGISTRATION_MODULES = (
    "echo_napari.registration",
    "echo_napari.registration.diagnostics",
    "echo_napari.widgets.debug_layers",
)


def backend_choices() -> list[tuple[str, tuple[str, Any]]]:
    """(label, key) per choosable backend: every DIRNet version, then other backends."""
    from echo_napari.models.registry import list_models
    from echo_napari.registration import available_backends

    choices = [(v.label, ("dirnet", v.path)) for v in list_models("dirnet")]
    choices += [(name, (name, None)) for name in available_backends() if name != "dirnet"]
    return choices


def default_backend_factory(key: tuple[str, Any]) -> Any:
    """A backend instance for a :func:`backend_choices` key (CUDA when present)."""
    from echo_napari.registration import get_backend
    from echo_napari.registration.backends import DirnetBackend
    from echo_napari.widgets._jobs import torch_threads_for_jobs

    name, path = key
    if name == "dirnet":
        return DirnetBackend(weights=path, threads=torch_threads_for_jobs(), chunk=CHUNK_PAIRS)
    return get_backend(name)


def run_diagnostics(
    frames: Any,
    runs: list[tuple[str, Callable[[], Any]]],
    mode: str,
    keyframe: int,
    only: list[int] | None,
    keyframe_labels: np.ndarray | None,
    label_class: int,
    cancel: threading.Event,
    grid: tuple[int, int] | None = None,
) -> Iterator[tuple[str, DiagnosticsChunk, np.ndarray | None]]:
    """Worker body: yields (tag, chunk, propagated class masks or None) per chunk.

    ``frames`` is the image layer's data, numpy or lazy (dask), read here off the GUI
    thread (divided by 255 when it holds 8-bit values); with ``grid`` (h, w) they are
    registered resized to it (``keyframe_labels`` already on it)."""
    from echo_napari.io.frame_source import unit_grey_frames
    from echo_napari.registration.diagnostics import diagnostics_chunks, propagated_class_masks
    from echo_napari.registration.working_grid import frames_on_grid

    frames = unit_grey_frames(frames)
    if grid is not None:
        frames = frames_on_grid(frames, grid)

    for tag, make_backend in runs:
        backend = make_backend()
        for chunk in diagnostics_chunks(frames, backend, mode, keyframe, CHUNK_PAIRS, only):
            if cancel.is_set():
                return
            masks = None
            if keyframe_labels is not None:
                masks = propagated_class_masks(keyframe_labels, chunk.fields, label_class)
            yield tag, chunk, masks


class DebuggerDock(WaitsForCores, QWidget):
    """Dock widget of the registration debugger (one per viewer); Compute is usable once
    the registration core is imported (``ready``, ``wait_until_ready``)."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        viewer = self.viewer = napari_viewer
        self.backend_factory: Callable[[tuple[str, Any]], Any] = default_backend_factory
        self.worker: Any = None
        self.runs: dict[str, DebugLayers] = {}
        self._cancel = threading.Event()
        self._frames_total = 0
        self._frames_done = 0
        self._grid: tuple[int, int] | None = None  # (h, w) of the last run's grid, if any
        # adds the runs' layers one per event-loop turn (:meth:`DebugLayers.add_next_layer`)
        self._layers_timer = QTimer(self)
        self._layers_timer.setInterval(0)
        self._layers_timer.timeout.connect(self._add_next_layer)

        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODES))
        self.keyframe_spin = QSpinBox()
        self.keyframe_spin.setRange(0, 0)
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(list(SCOPES))
        self.backend_a = QComboBox()
        self.backend_b = QComboBox()
        self.class_combo = QComboBox()
        self.class_combo.addItem("none", 0)
        for cls in (LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM, LabelClass.LA):
            self.class_combo.addItem(CLASS_NAMES[cls], int(cls))
        self.log_check = QCheckBox("log det J")
        self.vector_step = QSpinBox()
        self.vector_step.setRange(1, 64)
        self.vector_step.setValue(6)
        self.grid_step = QSpinBox()
        self.grid_step.setRange(2, 64)
        self.grid_step.setValue(6)

        form = QFormLayout()
        form.addRow("Frames", self.image_combo)
        form.addRow("Labels (keyframe)", self.labels_combo)
        form.addRow("Pairs", self.mode_combo)
        form.addRow("Keyframe", self.keyframe_spin)
        form.addRow("Scope", self.scope_combo)
        form.addRow("Backend A", self.backend_a)
        form.addRow("Backend B", self.backend_b)
        form.addRow("Propagate class", self.class_combo)
        steps = QHBoxLayout()
        steps.addWidget(QLabel("vectors every"))
        steps.addWidget(self.vector_step)
        steps.addWidget(QLabel("grid every"))
        steps.addWidget(self.grid_step)
        form.addRow("Pixels", steps)
        for spin in (self.vector_step, self.grid_step):
            spin.setToolTip(
                "Pixels of the frames; frames longer than 320 pixels are registered and "
                "shown on a 320-pixel grid, whose pixels these are then"
            )
        form.addRow("", self.log_check)

        self.compute_button = QPushButton("Compute")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.cancel_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("Pick frames and a backend, then Compute.")
        self.status_label.setWordWrap(True)
        self.plots = DebugPlots()
        self.plots.frame_requested.connect(self._go_to_frame)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plots, 1)

        self.cores_gate = CoreGate(
            "the registration models",
            REGISTRATION_MODULES,
            [self.backend_a, self.backend_b, self.compute_button],
            self.status_label,
            self._refresh_backends,
            self,
        )
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.dims.events.current_step.connect(self._on_step)
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self._refresh_layers()

    # -- choices ---------------------------------------------------------------------------
    def _refresh_backends(self) -> None:
        self.backend_a.clear()
        self.backend_b.clear()
        self.backend_b.addItem(NONE_BACKEND, None)
        for label, key in backend_choices():
            self.backend_a.addItem(label, key)
            self.backend_b.addItem(label, key)
        from echo_napari.models.registry import bundled_model

        # A starts at what propagation uses by default: the newest bundled DIRNet.
        self.backend_a.setCurrentText(bundled_model("dirnet").label)

    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Image, Labels

        owned = {ly.name for run in self.runs.values() for ly in run.layers()}
        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            if combo is self.labels_combo:
                combo.addItem("")
            names = [
                ly.name
                for ly in self.viewer.layers
                if isinstance(ly, kind)
                and ly.data.ndim == 3
                and ly.name not in owned
                and not ly.name.startswith("dbg ")
            ]
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._on_image_changed()

    def _on_image_changed(self, *args: Any) -> None:
        layer = self._image_layer()
        self.keyframe_spin.setRange(0, max(0, layer.data.shape[0] - 1) if layer else 0)

    def _image_layer(self) -> Any:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def current_frame(self) -> int:
        """The frame on napari's time slider (axis 0)."""
        return int(self.viewer.dims.current_step[0])

    # -- compute ---------------------------------------------------------------------------
    def compute(self) -> None:
        """Start the worker for the chosen pairs and backends."""
        from napari.qt.threading import create_worker

        from echo_napari.registration.working_grid import (
            grid_spacing,
            labels_on_grid,
            working_shape,
        )
        from echo_napari.widgets.debug_layers import DebugLayers

        if self.worker is not None:
            return
        layer = self._image_layer()
        if layer is None or layer.data.ndim != 3 or layer.data.shape[0] < 2:
            notify_error("Pick a (T, H, W) image layer with at least 2 frames")
            return
        frames = layer.data  # read in the worker: a lazy cine would decode here
        t = frames.shape[0]
        grid = working_shape(tuple(frames.shape[1:]))
        shape, scale = (t, *frames.shape[1:]), tuple(layer.scale)
        if grid is not None:
            spacing = grid_spacing(tuple(frames.shape[1:]), grid)
            shape, scale = (t, *grid), (scale[0], scale[1] * spacing[0], scale[2] * spacing[1])
        mode = MODES[self.mode_combo.currentText()]
        keyframe = self.keyframe_spin.value()
        only = [self.current_frame()] if self.scope_combo.currentText() == SCOPES[1] else None
        label_class = int(self.class_combo.currentData())
        keyframe_labels = None
        class_name = None
        if label_class and mode == "keyframe" and self.labels_combo.currentText():
            labels_layer = self.viewer.layers[self.labels_combo.currentText()]
            if tuple(labels_layer.data.shape[1:]) != tuple(frames.shape[1:]):
                notify_error(
                    f"Labels layer '{labels_layer.name}' has frames of "
                    f"{tuple(labels_layer.data.shape[1:])} pixels, the echo layer "
                    f"{tuple(frames.shape[1:])}: pick labels drawn on these frames"
                )
                return
            keyframe_labels = np.asarray(labels_layer.data[keyframe], np.uint8)
            class_name = CLASS_NAMES[LabelClass(label_class)]
            if not (keyframe_labels == label_class).any():
                notify_error(f"Keyframe {keyframe} has no {class_name} pixels to propagate")
                return
            if grid is not None:
                keyframe_labels = labels_on_grid(keyframe_labels, grid)
        chosen = [("A", self.backend_a), ("B", self.backend_b)]
        runs = [(tag, combo.currentText(), combo.currentData()) for tag, combo in chosen]
        runs = [r for r in runs if r[2] is not None]
        if not runs:
            notify_error("Pick a backend")
            return
        # Computing again with the same slots (and a propagated class or not as before)
        # re-uses the layers: the user's choices on them stay, and nothing is removed and
        # added again (see below). Otherwise the last run's layers go.
        previous = dict(self.runs)
        reuse = set(previous) == {tag for tag, _, _ in runs} and all(
            run.fits(class_name) for run in previous.values()
        )
        if reuse:
            self._layers_timer.stop()
            self.runs.clear()
        else:
            self._clear_runs()
        self.plots.clear()
        for tag, label, _ in runs:
            prefix = f"dbg {tag} {label}"
            self.runs[tag] = DebugLayers(
                self.viewer,
                prefix,
                shape,
                scale,
                log_scale=self.log_check.isChecked(),
                vector_step=self.vector_step.value(),
                grid_step=self.grid_step.value(),
                class_name=class_name,
                units=tuple(str(u) for u in layer.units),
                translate=tuple(layer.translate),
                previous=previous[tag] if reuse else None,
            )
            self.plots.start_series(tag, label, t)
        # The first layer is added in this same call as the removal of the last run's: on
        # Mesa's software OpenGL (Xvfb; napari 0.6 and 0.9 alike) removing two layers,
        # letting the canvas paint and then adding one crashed the process (a segfault in
        # glDrawArrays); an add before that first paint does not.
        self._add_next_layer()
        self.viewer.layers.selection.active = layer
        self._layers_timer.start()
        factory = self.backend_factory
        jobs = [(tag, (lambda key=key: factory(key))) for tag, _, key in runs]
        self._cancel = threading.Event()
        self._grid = grid
        self._frames_total = len(runs) * (t if only is None else 1)
        self._frames_done = 0
        self.worker = create_worker(
            run_diagnostics,
            frames,
            jobs,
            mode,
            keyframe,
            only,
            keyframe_labels,
            label_class,
            self._cancel,
            grid,
            _start_thread=False,
            _ignore_errors=True,
        )
        connect_worker(
            self.worker,
            yielded=self._on_chunk,
            errored=self._on_errored,
            finished=self._on_finished,
        )
        start_counted_job(
            self.worker,
            progress_bar=self.progress_bar,
            total=self._frames_total,
            status_label=self.status_label,
            text="Registering…"
            if grid is None
            else f"Registering on a {grid[1]} × {grid[0]} grid…",
            start_button=self.compute_button,
            cancel_button=self.cancel_button,
        )

    def cancel(self) -> None:
        """Stop after the current chunk; what was shown stays."""
        if self.worker is not None:
            self._cancel.set()
            self.status_label.setText("Cancelling…")

    def _clear_runs(self) -> None:
        self._layers_timer.stop()
        for run in self.runs.values():
            for ly in run.layers():
                if ly in self.viewer.layers:
                    self.viewer.layers.remove(ly)
        self.runs.clear()

    # -- worker callbacks (GUI thread) ------------------------------------------------------
    def _on_chunk(self, item: tuple[str, DiagnosticsChunk, np.ndarray | None]) -> None:
        tag, chunk, masks = item
        run = self.runs.get(tag)
        if run is None:
            return
        run.update(chunk, masks)
        series = self.plots.series[tag]
        ts = chunk.frames
        series.folding[ts] = chunk.folding_percent
        series.logjsd[ts] = chunk.log_jac_sd
        series.ncc_before[ts] = chunk.ncc_before
        series.ncc_after[ts] = chunk.ncc_after
        series.box[ts] = chunk.box
        self.plots.redraw(tag)
        if self.current_frame() in set(ts.tolist()):
            run.show_frame(self.current_frame())
        self._frames_done += ts.size
        self.progress_bar.setValue(self._frames_done)
        self.status_label.setText(f"{self._frames_done}/{self._frames_total} frames")

    def _add_next_layer(self) -> None:
        """Add one more layer of the runs; once all are in, draw the current frame's
        vectors and grid, and stop."""
        for run in self.runs.values():
            if not run.complete:
                run.add_next_layer()
                if run.complete:
                    run.show_frame(self.current_frame())
                return
        self._layers_timer.stop()

    def _add_all_layers(self) -> None:
        self._layers_timer.stop()
        for run in self.runs.values():
            if not run.complete:
                run.add_all_layers()
                run.show_frame(self.current_frame())

    def _on_errored(self, error: BaseException) -> None:
        message = error_message(error)
        logger.error("registration debugger failed: %s", message)
        show_job_failure(self.status_label, "Registration debugger", message)

    def _on_finished(self) -> None:
        self._add_all_layers()  # a quick run (one frame) may end before they were added
        self.worker = None
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._cancel.is_set():
            self.status_label.setText(
                f"Cancelled after {self._frames_done}/{self._frames_total} frames."
            )
        elif not self.status_label.text().startswith("Failed"):
            summary = []
            for tag, series in self.plots.series.items():
                summary.append(
                    f"{tag}: folding {np.nanmean(series.folding):.3f} %, "
                    f"NCC {np.nanmean(series.ncc_before):.3f} → {np.nanmean(series.ncc_after):.3f}"
                )
            where = "" if self._grid is None else f" (on a {self._grid[1]} × {self._grid[0]} grid)"
            self.status_label.setText(f"Done{where}. " + "; ".join(summary))

    # -- time slider link ------------------------------------------------------------------
    def _on_step(self, event: Any = None) -> None:
        frame = self.current_frame()
        self.plots.set_frame(frame)
        for run in self.runs.values():
            run.show_frame(frame)

    def _go_to_frame(self, frame: int) -> None:
        layer = self._image_layer()
        if layer is None:
            return
        frame = int(np.clip(frame, 0, layer.data.shape[0] - 1))
        self.viewer.dims.set_current_step(0, frame)
