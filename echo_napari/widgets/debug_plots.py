"""Per-frame registration diagnostics plots (pyqtgraph) linked to the time slider:
folding %, SD of log J, NCC before/after, and a Jacobian-determinant boxplot per frame.

Draws arrays it is given (up to two series, "A" and "B", for side-by-side comparison);
no maths beyond laying out the boxes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QVBoxLayout, QWidget

from echo_napari.widgets.area_curve import _FrameViewBox

#: Series colours (RGB) for the compared backends.
SERIES_COLORS = {"A": (90, 180, 255), "B": (255, 170, 60)}

#: (key, axis label) of the line plots.
LINE_PLOTS = (("folding", "folding %"), ("logjsd", "SD log J"), ("ncc", "NCC"))

AXIS_WIDTH = 52


class SeriesData:
    """Per-frame numbers of one backend's run, NaN where not computed yet.

    Attributes: folding, logjsd, ncc_before, ncc_after (T,) float; box (T, 5) float.
    """

    def __init__(self, n_frames: int) -> None:
        self.folding = np.full(n_frames, np.nan)
        self.logjsd = np.full(n_frames, np.nan)
        self.ncc_before = np.full(n_frames, np.nan)
        self.ncc_after = np.full(n_frames, np.nan)
        self.box = np.full((n_frames, 5), np.nan)


class DebugPlots(QWidget):
    """Four stacked plots sharing the frame axis, with a frame cursor in each.

    Signals
    -------
    frame_requested(int)
        The user clicked or dragged on a plot to frame ``t``.
    """

    frame_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, SeriesData] = {}
        self.items: dict[str, dict[str, pg.GraphicsObject]] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        self.widgets: list[pg.PlotWidget] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for key, label in (*LINE_PLOTS, ("box", "det J")):
            widget = pg.PlotWidget(viewBox=_FrameViewBox(self._request))
            widget.setMinimumHeight(80)
            plot = widget.getPlotItem()
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
            plot.setMenuEnabled(False)
            plot.getViewBox().setMouseEnabled(x=False, y=False)
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.getAxis("left").enableAutoSIPrefix(False)
            if self.plots:
                plot.setXLink(next(iter(self.plots.values())))
            cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("w", width=1))
            cursor.setZValue(20)
            plot.addItem(cursor)
            self.cursors.append(cursor)
            self.plots[key] = plot
            self.widgets.append(widget)
            layout.addWidget(widget)
        self.plots["box"].setLabel("bottom", "frame")
        self.plots["box"].addLine(y=1.0, pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DotLine))
        self.plots["ncc"].addLegend(offset=(-5, 5), labelTextSize="7pt")

    def _request(self, x: float) -> None:
        self.frame_requested.emit(int(round(x)))

    def set_frame(self, frame: int) -> None:
        """Move the cursors to ``frame``."""
        for cursor in self.cursors:
            cursor.setValue(frame)

    def clear(self) -> None:
        """Remove every series."""
        for items in self.items.values():
            for key, item in items.items():
                self.plots[key.split(":")[0]].removeItem(item)
        self.items.clear()
        self.series.clear()

    def start_series(self, tag: str, name: str, n_frames: int) -> SeriesData:
        """Add an empty series ``tag`` ("A"/"B") labelled ``name`` for ``n_frames`` frames."""
        color = SERIES_COLORS.get(tag, (200, 200, 200))
        solid = pg.mkPen(color, width=2)
        dashed = pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine)
        items: dict[str, pg.GraphicsObject] = {
            "folding": self.plots["folding"].plot([], [], pen=solid, symbol="o", symbolSize=4),
            "logjsd": self.plots["logjsd"].plot([], [], pen=solid),
            "ncc:after": self.plots["ncc"].plot([], [], pen=solid, name=f"{name} after"),
            "ncc:before": self.plots["ncc"].plot([], [], pen=dashed, name="before"),
            "box:whiskers": pg.PlotDataItem([], [], pen=pg.mkPen(color, width=1), connect="pairs"),
            "box:medians": pg.PlotDataItem([], [], pen=pg.mkPen("w", width=2), connect="pairs"),
            "box:boxes": pg.BarGraphItem(
                x=[], y0=[], height=[], width=0.35, brush=pg.mkBrush(*color, 110), pen=solid
            ),
        }
        for key in ("box:boxes", "box:whiskers", "box:medians"):
            self.plots["box"].addItem(items[key])
        self.items[tag] = items
        self.series[tag] = SeriesData(n_frames)
        for plot in self.plots.values():
            plot.setXRange(-0.5, n_frames - 0.5, padding=0)
        return self.series[tag]

    def redraw(self, tag: str) -> None:
        """Redraw series ``tag`` from its :class:`SeriesData`."""
        data, items = self.series[tag], self.items[tag]
        x = np.arange(data.folding.size, dtype=float)
        items["folding"].setData(x, data.folding, connect="finite")
        items["logjsd"].setData(x, data.logjsd, connect="finite")
        items["ncc:after"].setData(x, data.ncc_after, connect="finite")
        items["ncc:before"].setData(x, data.ncc_before, connect="finite")
        offset = -0.2 if tag == "A" else 0.2
        done = np.isfinite(data.box).all(1)
        xs, box = x[done] + (offset if len(self.series) > 1 else 0.0), data.box[done]
        items["box:boxes"].setOpts(x=xs, y0=box[:, 1], height=box[:, 3] - box[:, 1])
        # whiskers: low→Q1 and Q3→high as separate segments (connect="pairs")
        wx = np.repeat(xs, 4)
        wy = np.stack([box[:, 0], box[:, 1], box[:, 3], box[:, 4]], 1).ravel()
        items["box:whiskers"].setData(wx, wy)
        mx = np.stack([xs - 0.17, xs + 0.17], 1).ravel()
        my = np.repeat(box[:, 2], 2)
        items["box:medians"].setData(mx, my)

    def curve_data(self, tag: str, key: str) -> np.ndarray:
        """The y values drawn for ``key`` (folding, logjsd, ncc:after, ncc:before)."""
        return np.asarray(self.items[tag][key].yData, dtype=float)
