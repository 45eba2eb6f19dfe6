"""Live area curve (pyqtgraph): class areas over time, the current frame, ED/ES, keyframes
and a per-frame provenance strip. Draws what a :class:`ReviewSession` holds; no maths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from echo_napari.sequence import CLASS_COLORS, CLASS_NAMES, LabelClass, ProvenanceKind

if TYPE_CHECKING:  # only named in annotations: the Registration debugger's plots import
    # this module, and the session's import chain (scipy.spatial) cost it ~70 ms
    from echo_napari.review_session import ReviewSession

#: Curves drawn, in legend order.
CURVE_CLASSES = (LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM, LabelClass.LA)

AXIS_WIDTH = 52

#: Provenance strip colours (RGB 0..255).
PROVENANCE_COLORS: dict[ProvenanceKind, tuple[int, int, int]] = {
    ProvenanceKind.NONE: (60, 60, 60),
    ProvenanceKind.MANUAL: (40, 200, 90),
    ProvenanceKind.PROPAGATED: (170, 110, 240),
    ProvenanceKind.PREDICTED: (240, 150, 40),
}


def _rgb255(rgba: tuple[float, float, float, float]) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in rgba[:3])  # type: ignore[return-value]


class _FrameViewBox(pg.ViewBox):
    """A ViewBox where a left click or left drag picks a frame instead of panning."""

    def __init__(self, on_frame, **kwargs) -> None:
        super().__init__(**kwargs)
        self._on_frame = on_frame

    def _pick(self, ev) -> None:
        self._on_frame(self.mapSceneToView(ev.scenePos()).x())

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._pick(ev)
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._pick(ev)
        else:
            super().mouseDragEvent(ev, axis)


class AreaCurveWidget(QWidget):
    """Area per class over time with a frame cursor linked to napari's time slider.

    Signals
    -------
    frame_requested(int)
        The user clicked or dragged on the plot (or dragged the cursor) to frame ``t``.
    """

    frame_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session: ReviewSession | None = None
        self._frame = 0
        self._last_requested: int | None = None

        pg.setConfigOptions(antialias=False)
        self.plot_widget = pg.PlotWidget(viewBox=_FrameViewBox(self._request_frame))
        self.plot = self.plot_widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "frame")
        self.plot.setLabel("left", "area", units="")
        self.plot.setMenuEnabled(False)
        self.plot.getViewBox().setMouseEnabled(x=False, y=False)
        # Two columns: four entries stacked would not fit the plot's ~100 px height (the
        # first was cut off at the top).
        self.legend = self.plot.addLegend(
            offset=(-5, 2),
            labelTextSize="8pt",
            brush=pg.mkBrush(0, 0, 0, 170),
            colCount=2,
            verSpacing=-6,
        )
        self.curves: dict[int, pg.PlotDataItem] = {}
        for cls in CURVE_CLASSES:
            self.curves[int(cls)] = self.plot.plot(
                [], [], pen=pg.mkPen(_rgb255(CLASS_COLORS[cls]), width=2), name=CLASS_NAMES[cls]
            )

        # The second source (a prediction), dashed, drawn once it exists.
        self.second_curves: dict[int, pg.PlotDataItem] = {}
        for cls in CURVE_CLASSES:
            pen = pg.mkPen(_rgb255(CLASS_COLORS[cls]), width=1, style=Qt.PenStyle.DashLine)
            self.second_curves[int(cls)] = pg.PlotDataItem([], [], pen=pen)
            self.plot.addItem(self.second_curves[int(cls)])

        self.cursor = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen("w", width=2))
        self.cursor.setZValue(20)
        self.cursor.sigPositionChanged.connect(self._on_cursor_dragged)
        self.plot.addItem(self.cursor)
        phase_pen = pg.mkPen((220, 220, 220), width=1, style=Qt.PenStyle.DashLine)
        label_opts = {"position": 0.95, "color": (230, 230, 230)}
        self.ed_line = pg.InfiniteLine(angle=90, pen=phase_pen, label="ED", labelOpts=label_opts)
        self.es_line = pg.InfiniteLine(angle=90, pen=phase_pen, label="ES", labelOpts=label_opts)
        for line in (self.ed_line, self.es_line):
            line.setVisible(False)
            self.plot.addItem(line)

        # Provenance strip and keyframe markers, x-linked to the curve.
        self.strip_widget = pg.PlotWidget(viewBox=_FrameViewBox(self._request_frame))
        self.strip_widget.setFixedHeight(46)
        self.strip = self.strip_widget.getPlotItem()
        self.strip.hideAxis("bottom")
        # Same left-axis width in both plots so frame x lines up in the strip and the curve.
        strip_axis = self.strip.getAxis("left")
        strip_axis.setTicks([[(0.5, "")]])
        strip_axis.setStyle(showValues=False)
        for axis in (strip_axis, self.plot.getAxis("left")):
            axis.setWidth(AXIS_WIDTH)
        self.strip.setMenuEnabled(False)
        self.strip.getViewBox().setMouseEnabled(x=False, y=False)
        self.strip.setXLink(self.plot)
        self.strip.setYRange(0, 1, padding=0)
        self.strip_image = pg.ImageItem(axisOrder="row-major")
        self.strip.addItem(self.strip_image)
        self.keyframe_markers = pg.ScatterPlotItem(
            symbol="t", size=11, pen=pg.mkPen("k"), brush=pg.mkBrush(255, 255, 255)
        )
        self.keyframe_markers.setZValue(10)
        self.strip.addItem(self.keyframe_markers)
        self.strip_cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("w", width=2))
        self.strip.addItem(self.strip_cursor)

        # Suspicion score (curvature spikes, propagation disagreement), x-linked too.
        self.suspicion_widget = pg.PlotWidget(viewBox=_FrameViewBox(self._request_frame))
        self.suspicion_widget.setFixedHeight(56)
        self.suspicion = self.suspicion_widget.getPlotItem()
        self.suspicion.hideAxis("bottom")
        self.suspicion.setMenuEnabled(False)
        self.suspicion.getViewBox().setMouseEnabled(x=False, y=False)
        self.suspicion.setXLink(self.plot)
        suspicion_axis = self.suspicion.getAxis("left")
        suspicion_axis.setWidth(AXIS_WIDTH)
        suspicion_axis.setTicks([[(0.0, "")]])
        suspicion_axis.setStyle(showValues=False)
        self.suspicion_curve = self.suspicion.plot(
            [],
            [],
            pen=pg.mkPen((230, 230, 230), width=1),
            fillLevel=0,
            brush=pg.mkBrush(230, 230, 230, 60),
        )
        self._suspicion_timer = QTimer(self)
        self._suspicion_timer.setSingleShot(True)
        self._suspicion_timer.setInterval(0)
        self._suspicion_timer.timeout.connect(self._draw_suspicion_now)
        self.suspicion_cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("w", width=2))
        self.suspicion.addItem(self.suspicion_cursor)

        legend = " ".join(
            f'<span style="color:rgb{c}">&#9632;</span>&nbsp;{k.value}'
            for k, c in PROVENANCE_COLORS.items()
        )
        self.strip_legend = QLabel(
            f"{legend} &nbsp; &#9660; keyframe<br>grey: suspicion (area spikes, "
            "disagreement, implausible shapes, network unsure) · S jumps to the next "
            "suspicious frame"
        )
        self.strip_legend.setTextFormat(Qt.TextFormat.RichText)
        self.strip_legend.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.plot_widget, stretch=1)
        layout.addWidget(self.strip_widget)
        layout.addWidget(self.suspicion_widget)
        layout.addWidget(self.strip_legend)
        self.setMinimumHeight(260)

    # -- session ----------------------------------------------------------------------
    def set_session(self, session: ReviewSession | None) -> None:
        """Draw ``session`` and follow its events (disconnecting from the previous one)."""
        if self._session is not None:
            ev = self._session.events
            ev.sequence.disconnect(self.redraw)
            ev.areas.disconnect(self._on_areas)
            ev.provenance.disconnect(self._on_provenance)
            ev.keyframes.disconnect(self._draw_keyframes)
            ev.keyframes.disconnect(self._draw_suspicion)
            ev.results.disconnect(self._on_results)
            ev.phases.disconnect(self._draw_phases)
        self._session = session
        if session is not None:
            ev = session.events
            ev.sequence.connect(self.redraw)
            ev.areas.connect(self._on_areas)
            ev.provenance.connect(self._on_provenance)
            ev.keyframes.connect(self._draw_keyframes)
            ev.keyframes.connect(self._draw_suspicion)
            ev.results.connect(self._on_results)
            ev.phases.connect(self._draw_phases)
        self.redraw()

    def redraw(self) -> None:
        """Redraw everything from the session (new sequence)."""
        session = self._session
        if session is None or not session.is_loaded:
            for curve in self.curves.values():
                curve.setData([], [])
            self.strip_image.clear()
            self.keyframe_markers.setData([], [])
            self.suspicion_curve.setData([], [])
            self._draw_second_source()
            return
        n = session.sequence.n_frames
        self.plot.setLabel("left", f"area ({session.area_unit})")
        self.plot.setXRange(-0.5, n - 0.5, padding=0.01)
        self.cursor.setBounds((0, n - 1))
        self._draw_curves()
        self._draw_provenance()
        self._draw_keyframes()
        self._draw_phases()
        # On the next event-loop turn: the anatomical checks of every frame (the first time
        # also scipy.spatial's import, ~50 ms) would otherwise add to the dock's opening.
        self._draw_suspicion()
        self._draw_second_source()

    # -- drawing ----------------------------------------------------------------------
    def curve_data(self, label_class: int) -> np.ndarray:
        """The y values currently drawn for ``label_class`` (for tests and benchmarks)."""
        _, y = self.curves[int(label_class)].getData()
        return np.asarray(y if y is not None else [], dtype=np.float64)

    def _draw_curves(self) -> None:
        areas = self._session.areas
        x = np.arange(areas.shape[0])
        for cls, curve in self.curves.items():
            curve.setData(x, areas[:, cls].copy())
        self._fit_y()

    def _fit_y(self) -> None:
        """The y range spans the labels' curves and the second source's dashed ones (a
        prediction on a clip with no labels yet would otherwise be drawn off the axis)."""
        areas = self._session.areas
        top = float(areas[:, 1:].max()) if areas.size else 0.0
        source = self._session.second_source if self._session.is_loaded else None
        if source is not None and source.areas.size:
            top = max(top, float(source.areas[:, 1:].max()))
        self.plot.setYRange(0, (top if top > 0 else 1.0) * 1.08, padding=0)

    def _on_areas(self, frames: np.ndarray) -> None:
        # Areas of the changed frames were recomputed in the session; redrawing the three
        # 1-D curves costs microseconds, so we hand pyqtgraph the whole column.
        self._draw_curves()
        self._draw_suspicion()

    def _on_results(self, key: str) -> None:
        if key == "second_source":
            self._draw_second_source()
        self._draw_suspicion()

    def _draw_second_source(self) -> None:
        session = self._session
        source = session.second_source if session is not None and session.is_loaded else None
        for cls, curve in self.second_curves.items():
            if source is None:
                curve.setData([], [])
            else:
                curve.setData(np.arange(source.areas.shape[0]), source.areas[:, cls])
        if session is not None and session.is_loaded:
            self._fit_y()
        if source is not None:
            model = source.provenance.model or source.provenance.kind.value
            self.legend.removeItem(self.second_curves[1])
            self.legend.addItem(self.second_curves[1], f"{model} (dashed)")

    def _draw_suspicion(self, *_: object) -> None:
        # Once per action, after the curves are drawn: one action emits several events
        # (areas, provenance, results), and the anatomical checks of many frames at once
        # (an accepted prediction, an undo) should not add to the curves' own stall.
        self._suspicion_timer.start()

    def _draw_suspicion_now(self) -> None:
        if self._session is None or not self._session.is_loaded:
            return
        scores = self._session.suspicion_scores()
        self.suspicion_curve.setData(np.arange(scores.size), scores)
        self.suspicion.setYRange(0, max(0.2, float(scores.max(initial=0.0))), padding=0.05)

    def _draw_provenance(self) -> None:
        seq = self._session.sequence
        rgb = np.array([PROVENANCE_COLORS[p.kind] for p in seq.provenance], dtype=np.ubyte)
        self.strip_image.setImage(rgb[np.newaxis], autoLevels=False, levels=(0, 255))
        self.strip_image.setRect(-0.5, 0.0, seq.n_frames, 1.0)

    def _on_provenance(self, frames: np.ndarray) -> None:
        self._draw_provenance()

    def _draw_keyframes(self) -> None:
        keys = self._session.sorted_keyframes()
        self.keyframe_markers.setData(keys, [0.5] * len(keys))

    def _draw_phases(self) -> None:
        seq = self._session.sequence
        for line, index in ((self.ed_line, seq.ed_index), (self.es_line, seq.es_index)):
            line.setVisible(index is not None)
            if index is not None:
                line.setValue(index)

    # -- cursor <-> slider ------------------------------------------------------------
    @property
    def current_frame(self) -> int:
        """The frame the cursor shows."""
        return self._frame

    def set_current_frame(self, frame: int) -> None:
        """Move the cursor to ``frame`` without emitting :attr:`frame_requested`."""
        self._frame = int(frame)
        self.cursor.blockSignals(True)
        try:
            self.cursor.setValue(self._frame)
        finally:
            self.cursor.blockSignals(False)
        self.strip_cursor.setValue(self._frame)
        self.suspicion_cursor.setValue(self._frame)

    def _on_cursor_dragged(self) -> None:
        self._request_frame(self.cursor.value())

    def _request_frame(self, x: float) -> None:
        if self._session is None or not self._session.is_loaded:
            return
        n = self._session.sequence.n_frames
        frame = int(np.clip(np.round(x), 0, n - 1))
        self.set_current_frame(frame)
        self.frame_requested.emit(frame)
