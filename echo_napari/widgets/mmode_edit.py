"""Editable endocardial traces: the strip as a napari Image layer and the upper / lower
traces as two paths in a Shapes layer on top of it.

The Shapes layer shares the strip layer's scale and translate, so its data coordinates are
the strip's (row, column) samples and the conversions of :mod:`echo_napari.mmode.traces`
apply unchanged. Every edit of the paths calls ``on_edit(upper, lower)``; the dock turns
that into a band, a diameter curve and measurements with the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from echo_napari.errors import EchoNapariError
from echo_napari.mmode.traces import paths_to_traces, traces_to_paths

if TYPE_CHECKING:
    import napari

    from echo_napari.mmode.sampling import MModeImage

STRIP_LAYER = "M-mode strip"
TRACES_LAYER = "M-mode traces"
#: Douglas–Peucker tolerance (rows) when turning per-column traces into draggable paths.
PATH_TOLERANCE_ROWS = 0.5
TRACE_COLORS = ("#50dcff", "#ff50c8")


class TraceEditor:
    """Puts a strip and its two traces into the viewer and reports edits.

    Parameters
    ----------
    viewer : the napari viewer
    on_edit : called with (upper, lower) (N,) float64 row traces after every edit
    on_error : called with a message when the edited shapes are not two usable paths
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        on_edit: Callable[[np.ndarray, np.ndarray], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.viewer = viewer
        self.on_edit = on_edit
        self.on_error = on_error
        self.n_columns = 0
        self._hidden: list[Any] = []

    @property
    def active(self) -> bool:
        """True while a traces layer is in the viewer."""
        return TRACES_LAYER in self.viewer.layers

    @property
    def layer(self):
        """The traces Shapes layer (None when not editing)."""
        return self.viewer.layers[TRACES_LAYER] if self.active else None

    def start(
        self, strip: MModeImage, upper: np.ndarray, lower: np.ndarray, host: Any = None
    ) -> Any:
        """Show ``strip`` (or use ``host``, a real M-mode Image layer) with editable traces.

        Parameters
        ----------
        strip : the M-mode shown
        upper, lower : (N,) float64 row traces to start from
        host : the Image layer that already shows ``strip``; None adds/updates the
            "M-mode strip" layer. Other layers are hidden until :meth:`stop`.

        Returns
        -------
        The Shapes layer.
        """
        self.n_columns = strip.image.shape[1]
        paths = [p for p in traces_to_paths(upper, lower, PATH_TOLERANCE_ROWS) if len(p) >= 2]
        if len(paths) != 2:
            raise EchoNapariError(
                "no band to edit: the strip needs a band in at least two columns (add labels "
                "or press Segment band first)"
            )
        if host is None:
            # Imported here: the M-mode dock is built before scipy / the readers load.
            from echo_napari.mmode.layers import mmode_layer_data

            data, kwargs, _ = mmode_layer_data(strip, STRIP_LAYER)[0]
            self._remove(STRIP_LAYER)
            host = self.viewer.add_image(data, **kwargs)
        self._remove(TRACES_LAYER)
        self._hide_others(host)
        layer = self.viewer.add_shapes(
            paths,
            shape_type="path",
            name=TRACES_LAYER,
            ndim=2,
            scale=tuple(host.scale),
            translate=tuple(host.translate),
            units=tuple(host.units),
            edge_color=list(TRACE_COLORS),
            edge_width=0.6,
        )
        layer.events.data.connect(self._on_data)
        layer.mode = "direct"
        self.viewer.layers.selection.active = layer
        self._frame(host)
        return layer

    def _frame(self, host: Any) -> None:
        # reset_view would also fit the hidden B-mode layers, and napari 0.9's
        # fit_to_view(layers=[host]) fails for a 2D layer in a 3D world: fit by hand.
        (y0, x0), (y1, x1) = np.asarray(host.extent.world)[:, -2:]
        # napari 0.9 moved the camera to viewer.scene (viewer.camera is deprecated there)
        scene = getattr(self.viewer, "scene", None)
        camera = scene.camera if scene is not None else self.viewer.camera
        camera.center = (0.5 * (y0 + y1), 0.5 * (x0 + x1))
        try:
            canvas = np.asarray(self.viewer.canvas.viewbox_size(self.viewer.layers), float)
        except (AttributeError, TypeError, ValueError):
            return
        if y1 > y0 and x1 > x0 and canvas.size == 2:
            camera.zoom = 0.95 * float(np.min(canvas / [y1 - y0, x1 - x0]))

    def traces(self) -> tuple[np.ndarray, np.ndarray]:
        """(upper, lower) (N,) float64 row traces from the current paths."""
        layer = self.layer
        if layer is None:
            raise EchoNapariError("not editing traces: press Edit traces first")
        paths = [np.asarray(p)[:, -2:] for p in layer.data]
        return paths_to_traces(paths, self.n_columns)

    def set_paths(self, paths: list[np.ndarray]) -> None:
        """Replace the two paths (as an edit would), e.g. from a script or a test."""
        layer = self.layer
        if layer is None:
            raise EchoNapariError("not editing traces: press Edit traces first")
        layer.data = [np.asarray(p, dtype=np.float64) for p in paths]
        layer.shape_type = ["path"] * len(paths)

    def _on_data(self, event: Any = None) -> None:
        # napari emits "changing" while a vertex is dragged and "changed" at the end;
        # recomputing on both keeps the curve live (one strip's traces are cheap).
        try:
            upper, lower = self.traces()
        except EchoNapariError as exc:
            self.on_error(f"traces not usable: {exc}")
            return
        self.on_edit(upper, lower)

    def stop(self) -> None:
        """Remove the traces (and added strip) layers and show the hidden layers again."""
        for name in (TRACES_LAYER, STRIP_LAYER):
            self._remove(name)
        for layer in self._hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        self._hidden = []
        if len(self.viewer.layers):
            self.viewer.reset_view()

    def _hide_others(self, host: Any) -> None:
        # The strip's (mm, cs) world would sit on top of the B-mode's (mm, mm) one.
        for layer in self.viewer.layers:
            if layer is not host and layer.visible and layer not in self._hidden:
                layer.visible = False
                self._hidden.append(layer)
        host.visible = True

    def _remove(self, name: str) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(self.viewer.layers[name])
