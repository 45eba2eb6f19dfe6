"""M-mode dock: a line (Shapes layer) on the B-mode sequence → depth × time strip with its
endocardial traces, the LV internal diameter curve and a frame cursor linked both ways to
napari's time slider. A 2D image layer (a real M-mode) is shown as the strip itself, with
no line sampling. "Edit traces" puts the traces as two editable paths into the viewer
(:mod:`echo_napari.widgets.mmode_edit`); edits update the band, curve, measurements and
CSV; "Fine-tune on edited traces" (:mod:`echo_napari.widgets.mmode_finetune`) trains a new
user version of the band network on them and re-segments with it. Numerics live in
:mod:`echo_napari.mmode`; this module only draws. They import torch and scipy.signal
(~1.4 s), so the dock opens without them and imports them in the background
(:class:`~echo_napari.widgets.job_cores.CoreGate`): its buttons are enabled then.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from echo_napari.errors import EchoNapariError
from echo_napari.mmode.quality import poor_columns
from echo_napari.mmode.traces import subsample_traces, traces_to_band
from echo_napari.sequence import EchoSequence
from echo_napari.widgets._notify import notify_error, notify_info
from echo_napari.widgets.job_cores import CoreGate, WaitsForCores
from echo_napari.widgets.layer_frames import LayerFrames
from echo_napari.widgets.mmode_edit import STRIP_LAYER, TraceEditor
from echo_napari.widgets.mmode_finetune import FineTuneControls, FineTuneOutcome, analyse_with
from echo_napari.widgets.mmode_summary import summary_text

if TYPE_CHECKING:
    import napari

    from echo_napari.mmode.analysis import MModeResult
    from echo_napari.mmode.measure import MModeMeasurements
    from echo_napari.mmode.sampling import MModeImage, MModeLine

LINE_LAYER = "M-mode line"
LABEL_PEN = pg.mkPen((255, 80, 80), width=2)
NETWORK_PEN = pg.mkPen((80, 220, 255), width=2)
EDITED_PEN = pg.mkPen((120, 255, 120), width=2)
CURSOR_PEN = pg.mkPen((255, 220, 0), width=2)
#: What the buttons need: torch (band network), scipy.signal (beats), scipy.ndimage and
#: the readers; imported in the background as the dock opens.
MMODE_MODULES = (
    "echo_napari.mmode.analysis",
    "echo_napari.mmode.layers",
    "echo_napari.mmode.measure",
    "echo_napari.mmode.sampling",
)


class MModeDock(WaitsForCores, QWidget):
    """Anatomical M-mode of the selected image layer along the "M-mode line" shape; its
    buttons are usable once the M-mode core is imported (``ready``, ``wait_until_ready``)."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.strip: MModeImage | None = None
        self.result: MModeResult | None = None
        self.measurements: MModeMeasurements | None = None
        self.frames = LayerFrames(
            lambda: getattr(self._image_layer(), "data", None),
            lambda message: notify_error(f"M-mode: {message}"),
        )
        self._worker = None
        # line layers whose data events reach this dock (a layer attribute would be private
        # attribute access on a napari object, deprecated for plugins since napari 0.9)
        self._connected_lines: weakref.WeakSet = weakref.WeakSet()
        #: (upper, lower) (N,) row traces after editing; the band they enclose
        self.edited: tuple[np.ndarray, np.ndarray] | None = None
        self.edited_band: np.ndarray | None = None
        self.editor = TraceEditor(viewer, self._on_traces_edited, self._show_error)
        #: band network weights in use (None: the newest version); set by fine-tuning
        self.model_path: Path | None = None
        self.finetune_note = ""
        self.finetune = FineTuneControls(self._finetune_job, self._on_finetuned)
        #: a line or layer changed before the core was imported: resample when it is
        self._update_when_ready = False

        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.default_button = QPushButton("Default line")
        self.segment_button = QPushButton("Segment band")
        self.export_button = QPushButton("Export CSV…")
        self.edit_button = QPushButton("Edit traces")
        self.edit_button.setCheckable(True)
        self.edit_button.setToolTip(
            "Show the strip in the viewer with the upper and lower traces as editable paths"
        )
        self.open_button = QPushButton("Open M-mode…")
        self.summary = QLabel("Draw a line in the 'M-mode line' layer, or press Default line.")
        self.summary.setWordWrap(True)

        self.strip_plot = pg.PlotWidget()
        self.strip_plot.invertY(True)
        self.strip_plot.setLabel("left", "depth", units="mm")
        # millimetres stay millimetres (pyqtgraph's SI prefixes made an empty strip's axis
        # read "mmm")
        self.strip_plot.getAxis("left").enableAutoSIPrefix(False)
        self.strip_plot.setLabel("bottom", "time", units="s")
        self.strip_image = pg.ImageItem()
        self.strip_plot.addItem(self.strip_image)
        self.label_traces = [self.strip_plot.plot(pen=LABEL_PEN) for _ in range(2)]
        self.network_traces = [self.strip_plot.plot(pen=NETWORK_PEN) for _ in range(2)]
        self.edited_traces = [self.strip_plot.plot(pen=EDITED_PEN) for _ in range(2)]
        self.poor_regions: list[pg.LinearRegionItem] = []

        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setLabel("left", "LVID", units="mm")
        self.curve_plot.getAxis("left").enableAutoSIPrefix(False)
        self.curve_plot.setLabel("bottom", "time", units="s")
        self.curve_plot.addLegend(offset=(5, 5))
        self.label_curve = self.curve_plot.plot(pen=LABEL_PEN, name="labels")
        self.network_curve = self.curve_plot.plot(pen=NETWORK_PEN, name="network")
        self.edited_curve = self.curve_plot.plot(pen=EDITED_PEN, name="edited")
        self.cursors = [pg.InfiniteLine(0, movable=True, pen=CURSOR_PEN) for _ in range(2)]
        self.strip_plot.addItem(self.cursors[0])
        self.curve_plot.addItem(self.cursors[1])

        layout = QVBoxLayout(self)
        # at the top, where the greyed buttons are: "Loading the M-mode models…" (hidden after)
        self.loading_label = QLabel("")
        self.loading_label.setWordWrap(True)
        layout.addWidget(self.loading_label)
        for text, combo in (("image", self.image_combo), ("labels", self.labels_combo)):
            row = QHBoxLayout()
            row.addWidget(QLabel(text))
            row.addWidget(combo, 1)
            layout.addLayout(row)
        # One container, disabled while the core loads (the buttons keep their own state).
        self.buttons = QWidget()
        buttons_layout = QVBoxLayout(self.buttons)
        buttons_layout.setContentsMargins(0, 0, 0, 0)
        for row_buttons in (
            (self.default_button, self.segment_button, self.edit_button),
            (self.open_button, self.export_button),
        ):
            buttons = QHBoxLayout()
            for button in row_buttons:
                buttons.addWidget(button)
            buttons_layout.addLayout(buttons)
        buttons_layout.addWidget(self.finetune)
        layout.addWidget(self.buttons)
        layout.addWidget(self.strip_plot, 3)
        layout.addWidget(self.curve_plot, 2)
        layout.addWidget(self.summary)
        self.cores_gate = CoreGate(
            "the M-mode models",
            MMODE_MODULES,
            [self.buttons],
            self.loading_label,
            self._on_loaded,
            self,
        )

        self.default_button.clicked.connect(self.use_default_line)
        self.segment_button.clicked.connect(self.segment)
        self.export_button.clicked.connect(self._export_dialog)
        self.edit_button.toggled.connect(self._on_edit_toggled)
        self.open_button.clicked.connect(self._open_dialog)
        for cursor in self.cursors:
            cursor.sigDragged.connect(self._on_cursor_dragged)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.dims.events.current_step.connect(self._on_dims)
        self.image_combo.currentIndexChanged.connect(self._on_inputs_changed)
        self.labels_combo.currentIndexChanged.connect(self._on_inputs_changed)
        self._refresh_layers()

    def _on_loaded(self) -> None:
        if self._update_when_ready and (self.strip_mode() or self.current_line() is not None):
            self.update_strip()

    # -- layers ----------------------------------------------------------------
    def _layers(self, kind: str) -> list:
        # Image: (T, H, W) sequences and 2D real M-mode strips; Labels: (T, H, W) only.
        dims = (2, 3) if kind == "Image" else (3,)
        return [
            layer
            for layer in self.viewer.layers
            if type(layer).__name__ == kind and layer.ndim in dims and layer.name != STRIP_LAYER
        ]

    def strip_mode(self) -> bool:
        """True when the selected image layer is a 2D M-mode strip (no line sampling)."""
        image = self._image_layer()
        return image is not None and image.ndim == 2

    def _refresh_layers(self, *_: object) -> None:
        for combo, kind, optional in (
            (self.image_combo, "Image", False),
            (self.labels_combo, "Labels", True),
        ):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            names = ([""] if optional else []) + [layer.name for layer in self._layers(kind)]
            combo.addItems(names)
            if current and current in names:
                combo.setCurrentText(current)
            elif optional and len(names) > 1:
                combo.setCurrentIndex(1)
            combo.blockSignals(False)
        line_layer = self._line_layer(create=False)
        if line_layer is not None and line_layer not in self._connected_lines:
            line_layer.events.data.connect(self._on_line_changed)
            self._connected_lines.add(line_layer)

    def _image_layer(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _labels_data(self) -> np.ndarray | None:
        name = self.labels_combo.currentText()
        if not name or name not in self.viewer.layers:
            return None
        return np.asarray(self.viewer.layers[name].data).astype(np.uint8, copy=False)

    def _line_layer(self, create: bool = True):
        if LINE_LAYER in self.viewer.layers:
            return self.viewer.layers[LINE_LAYER]
        if not create:
            return None
        image = self._image_layer()
        scale = tuple(image.scale[-2:]) if image is not None else (1.0, 1.0)
        layer = self.viewer.add_shapes(
            name=LINE_LAYER, ndim=2, scale=scale, edge_color="yellow", edge_width=1.5
        )
        layer.events.data.connect(self._on_line_changed)
        self._connected_lines.add(layer)
        return layer

    def sequence(self, then: Callable[[], None] = lambda: None) -> EchoSequence | None:
        """The selected image (and labels) layer as an :class:`EchoSequence`; None while
        a lazily opened clip is decoded in the background (:class:`.LayerFrames`), after
        which ``then`` runs."""
        image = self._image_layer()
        if image is None:
            raise EchoNapariError("no (T, H, W) image layer: open a sequence first")
        frames = self.frames.get(image.data, then)
        if frames is None:
            self.summary.setText(f"M-mode: decoding the clip's {image.data.shape[0]} frames…")
            return None
        from echo_napari.napari_hooks import FACTS_KEY, spacing_from_layer_meta

        meta = {"scale": image.scale, "units": image.units, "metadata": image.metadata}
        facts = image.metadata.get(FACTS_KEY) or {}
        return EchoSequence(
            frames=frames,
            spacing=spacing_from_layer_meta(meta),
            frame_time_ms=facts.get("frame_time_ms"),
            labels=self._labels_data(),
            ed_index=facts.get("ed_index"),
        )

    # -- actions ----------------------------------------------------------------
    def current_line(self) -> MModeLine | None:
        """The last line shape of the line layer, in frame pixels (None when absent)."""
        from echo_napari.mmode.sampling import MModeLine

        layer = self._line_layer(create=False)
        if layer is None or not len(layer.data):
            return None
        points = np.asarray(layer.data[-1])[:, -2:]
        (y0, x0), (y1, x1) = points[0], points[-1]
        return MModeLine(float(y0), float(x0), float(y1), float(x1))

    def use_default_line(self) -> None:
        """Put the default line (from the ED labels) into the line layer."""
        from echo_napari.mmode.analysis import sequence_line

        try:
            seq = self.sequence(then=self.use_default_line)
            if seq is None:
                return
            line = sequence_line(seq)
        except EchoNapariError as exc:
            notify_error(str(exc))
            return
        layer = self._line_layer()
        layer.data = [line.points]
        layer.shape_type = ["line"]
        self.update_strip()

    def _on_line_changed(self, *_: object) -> None:
        if not self.ready:  # resampling would import the core on the GUI thread
            self._update_when_ready = True
            return
        self.update_strip()

    def _on_inputs_changed(self, *_: object) -> None:
        self.frames.clear()
        self.default_button.setEnabled(not self.strip_mode())
        if not self.ready:
            self._update_when_ready = True
            return
        if self.strip_mode() or self.current_line() is not None:
            self.update_strip()

    def update_strip(self) -> None:
        """Resample the strip along the current line (or take the selected 2D M-mode
        layer as it is) and redraw (fast: no network)."""
        from echo_napari.mmode.layers import strip_from_layer
        from echo_napari.mmode.measure import measure_band
        from echo_napari.mmode.sampling import sample_mmode

        try:
            if self.strip_mode():
                image = self._image_layer()
                self.strip = strip_from_layer(image.data, image.metadata, image.rgb)
            else:
                line = self.current_line()
                if line is None:
                    return
                seq = self.sequence(then=self.update_strip)
                if seq is None:
                    return
                self.strip = sample_mmode(
                    seq.frames, line, seq.spacing, seq.frame_time_ms, seq.labels
                )
        except EchoNapariError as exc:
            self.summary.setText(f"M-mode: {exc}")
            return
        self.result = None
        self.finetune_note = ""
        self._clear_edits()
        strip = self.strip
        self.measurements = (
            measure_band(
                strip.band,
                strip.depth_step_mm,
                strip.time_step_s,
                probability=strip.band_probability,
            )
            if strip.band is not None
            else None
        )
        self._draw()

    def segment(self) -> None:
        """Run the band network and quality scoring in a background worker."""
        if self.strip is None:
            notify_error("M-mode: draw a line first")
            return
        from napari.qt.threading import create_worker

        self.segment_button.setEnabled(False)
        worker = create_worker(analyse_with, self.strip, self.model_path)
        worker.returned.connect(self._on_segmented)
        worker.errored.connect(lambda exc: notify_error(f"M-mode segmentation failed: {exc}"))
        worker.finished.connect(lambda: self.segment_button.setEnabled(True))
        self._worker = worker
        worker.start()

    def _on_segmented(self, result: MModeResult) -> None:
        if result.strip is not self.strip:
            return
        self.result = result
        self._clear_edits()
        self.measurements = result.measurements
        self._draw()

    # -- trace editing ------------------------------------------------------------
    def start_editing(self) -> None:
        """Put the network's (else the labels') traces as editable paths in the viewer."""
        if self.strip is None:
            raise EchoNapariError("no M-mode yet: draw a line or select an M-mode layer")
        if self.edited is not None:
            upper, lower = self.edited
        elif self.result is not None:
            upper, lower = subsample_traces(self.result.probability, self.result.band)
        elif self.strip.band is not None:
            prob = self.strip.band_probability
            upper, lower = subsample_traces(
                prob if prob is not None else self.strip.band, self.strip.band
            )
        else:
            raise EchoNapariError("no band to edit: add a labels layer or press Segment band")
        host = self._image_layer() if self.strip_mode() else None
        self.editor.start(self.strip, upper, lower, host)
        self._on_traces_edited(upper, lower)

    def stop_editing(self) -> None:
        """Leave editing (the edited traces stay in effect until the strip changes)."""
        self.editor.stop()

    def _on_edit_toggled(self, checked: bool) -> None:
        if not checked:
            self.stop_editing()
            return
        try:
            self.start_editing()
        except EchoNapariError as exc:
            notify_error(str(exc))
            self.edit_button.blockSignals(True)
            self.edit_button.setChecked(False)
            self.edit_button.blockSignals(False)

    def _on_traces_edited(self, upper: np.ndarray, lower: np.ndarray) -> None:
        from echo_napari.mmode.measure import measure_traces

        strip = self.strip
        if strip is None or upper.shape != (strip.image.shape[1],):
            return
        self.edited = (upper, lower)
        self.edited_band = traces_to_band(upper, lower, strip.image.shape[0])
        self.finetune.set_has_edits(True)
        poor = (
            poor_columns(self.result.windows, strip.image.shape[1])
            if self.result is not None
            else None
        )
        self.measurements = measure_traces(
            upper, lower, strip.depth_step_mm, strip.time_step_s, poor
        )
        self._draw()

    def _clear_edits(self) -> None:
        self.edited = None
        self.edited_band = None
        self.finetune.set_has_edits(False)
        if self.edit_button.isChecked():
            self.edit_button.setChecked(False)
        elif self.editor.active:
            self.editor.stop()

    def _finetune_job(self) -> tuple[MModeImage, np.ndarray, Path | None]:
        if self.strip is None or self.edited_band is None:
            raise EchoNapariError("no edited traces: press Edit traces and correct them first")
        return self.strip, self.edited_band, self.model_path

    def _on_finetuned(self, outcome: FineTuneOutcome) -> None:
        notify_info(f"M-mode: {outcome.message()}")
        if outcome.path is None:  # not kept: the dock goes on with the network it had
            self.finetune_note = outcome.message()
            if self.strip is not None:
                self._set_summary()
            return
        # The new version is what this dock segments with from now on.
        self.model_path = outcome.path
        if self.strip is not None:
            self.segment()
            self.finetune_note = outcome.message()
            self._set_summary()

    def _show_error(self, message: str) -> None:
        self.summary.setText(f"M-mode: {message}")

    def open_mmode(self, path: str | Path):
        """Read a real M-mode file (PNG/TIFF strip or DICOM) into a 2D Image layer and
        select it."""
        from echo_napari.mmode.layers import read_mmode_layers

        data, kwargs, _ = read_mmode_layers(str(path))[0]
        layer = self.viewer.add_image(data, **kwargs)
        self.image_combo.setCurrentText(layer.name)
        return layer

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open M-mode", "", "M-mode (*.png *.tif *.tiff *.dcm);;All files (*)"
        )
        if path:
            try:
                self.open_mmode(path)
            except EchoNapariError as exc:
                notify_error(str(exc))

    def export_csv(self, path: str | Path) -> Path:
        """Write ``time_s,lvid_mm`` of the current measurements."""
        from echo_napari.mmode.measure import write_diameter_csv

        if self.measurements is None:
            raise EchoNapariError("no M-mode measurements yet: draw a line (and segment)")
        return write_diameter_csv(path, self.measurements)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export LVID", "mmode.csv", "CSV (*.csv)")
        if path:
            try:
                notify_info(f"wrote {self.export_csv(path)}")
            except EchoNapariError as exc:
                notify_error(str(exc))

    # -- drawing ----------------------------------------------------------------
    def _axes(self) -> tuple[float, float, str]:
        strip = self.strip
        depth = strip.depth_step_mm or 1.0
        time = strip.time_step_s or 1.0
        return depth, time, "mm" if strip.depth_step_mm else "px"

    def _draw(self) -> None:
        strip = self.strip
        depth, time, units = self._axes()
        d, n = strip.image.shape
        self.strip_image.setImage(strip.image.T, levels=(0.0, 1.0))
        self.strip_image.setRect(pg.QtCore.QRectF(-0.5 * time, -0.5 * depth, n * time, d * depth))
        self.strip_plot.setLabel("left", "depth", units=units)
        self.curve_plot.setLabel("left", "LVID", units=units)
        time_units = "s" if strip.time_step_s else "column"
        for plot in (self.strip_plot, self.curve_plot):
            plot.setLabel("bottom", "time", units=time_units)
        sources = [(strip.band, strip.band_probability, self.label_traces, self.label_curve)]
        network_band = None if self.result is None else self.result.band
        network_prob = None if self.result is None else self.result.probability
        sources.append((network_band, network_prob, self.network_traces, self.network_curve))
        for band, prob, traces, curve in sources:
            if band is None:
                for item in (*traces, curve):
                    item.setData([], [])
                continue
            upper, lower = subsample_traces(prob if prob is not None else band, band)
            self._plot_traces(traces, curve, upper, lower)
        if self.edited is None:
            for item in (*self.edited_traces, self.edited_curve):
                item.setData([], [])
        else:
            self._plot_traces(self.edited_traces, self.edited_curve, *self.edited)
        for region in self.poor_regions:
            self.strip_plot.removeItem(region)
        self.poor_regions = []
        if self.result is not None:
            for window in self.result.windows:
                if window.poor:
                    region = pg.LinearRegionItem(
                        (window.start * time, window.stop * time),
                        movable=False,
                        brush=(255, 0, 0, 50),
                    )
                    self.strip_plot.addItem(region)
                    self.poor_regions.append(region)
        self._set_summary()
        self._on_dims()

    def _plot_traces(self, items: list, curve, upper: np.ndarray, lower: np.ndarray) -> None:
        depth, _, _ = self._axes()
        times = self.strip.times_s
        for item, trace in zip(items, (upper, lower), strict=True):
            item.setData(times, trace * depth, connect="finite")
        with np.errstate(invalid="ignore"):
            diameter = np.where(lower > upper, lower - upper, np.nan) * depth
        curve.setData(times, diameter, connect="finite")

    def _set_summary(self) -> None:
        if self.edited is not None:
            source = "edited traces"
        else:
            source = "network" if self.result is not None else "labels"
        windows = None if self.result is None else self.result.windows
        text = summary_text(self.strip, self.measurements, source, windows)
        self.summary.setText(f"{text}\n{self.finetune_note}" if self.finetune_note else text)

    def current_frame(self) -> int:
        """The viewer's current frame (time axis 0)."""
        return int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim >= 3 else 0

    def _on_dims(self, *_: object) -> None:
        # A real M-mode has no frames: its cursor is not tied to napari's slider.
        if self.strip is None or self.strip.line is None:
            return
        x = self.current_frame() * self._axes()[1]
        for cursor in self.cursors:
            cursor.blockSignals(True)
            cursor.setValue(x)
            cursor.blockSignals(False)

    def _on_cursor_dragged(self, cursor: pg.InfiniteLine) -> None:
        if self.strip is None or self.strip.line is None:
            return
        frame = int(round(cursor.value() / self._axes()[1]))
        frame = int(np.clip(frame, 0, self.strip.image.shape[1] - 1))
        self.viewer.dims.set_current_step(0, frame)
