"""The napari layers of one debugger run (one backend): Jacobian determinant, folding
overlay, displacement vectors, deformed grid, warped − fixed difference, propagated class.

Arrays are allocated for the whole sequence when the run starts and filled chunk by chunk
(:meth:`DebugLayers.update`), so the user sees each chunk as it arrives; the layers are
redrawn only when a chunk holds the frame on the time slider. The layers are added one
per event-loop turn (:meth:`DebugLayers.add_next_layer`): napari takes ~60 ms to add
each, and the five or six at once held the GUI thread ~0.35 s at Compute. The vectors
and the deformed grid are drawn for the frame on the time slider only
(:meth:`DebugLayers.show_frame`): a Vectors layer holding every frame's vectors was
re-sent whole with each chunk, and on a 150-frame 600 × 800 clip (2 million vectors)
that held the GUI thread for seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from echo_napari.registration.diagnostics import (
    DiagnosticsChunk,
    deformed_grid_lines,
    displacement_vectors,
)

#: det J colours: blue (contraction) – white (det = 1) – orange (expansion); folding is red.
DET_COLORS = [[0.15, 0.35, 0.95, 1.0], [1.0, 1.0, 1.0, 1.0], [0.95, 0.6, 0.1, 1.0]]

#: Half-width of the det J display range around 1 (linear) or 0 (log).
DET_RANGE = 1.0
LOG_RANGE = 1.0

#: Determinants at or below 0 have no log; they are drawn at the lowest log value.
LOG_FLOOR = -LOG_RANGE


def det_display(det: np.ndarray, log_scale: bool) -> np.ndarray:
    """What the det J layer shows: det, or log det (det ≤ 0 → :data:`LOG_FLOOR`)."""
    if not log_scale:
        return det.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(det > 0, np.log(np.where(det > 0, det, 1.0)), LOG_FLOOR)
    return np.maximum(out, LOG_FLOOR).astype(np.float32)


class DebugLayers:
    """Creates and fills the layers of one run, named ``"<prefix> …"``.

    Parameters
    ----------
    viewer : napari.Viewer
    prefix : e.g. "dbg A dirnet v1"
    shape : (T, H, W) of the frames
    scale : layer scale (t, dy, dx), so everything overlays the image layer (the image's
        own, or larger where the run is on a coarser grid than the frames)
    units : the image layer's units (napari renders mixed units without them)
    translate : the image layer's translate (t, y, x), None for none
    previous : the last run of this slot, all its layers added and with a propagated-class
        layer exactly when this run has one: its layers are taken over (renamed, given
        this run's arrays, scale and display range) instead of new ones added, so the
        user's visibility, opacity and layer order stay and napari adds nothing
    log_scale : show log det J
    vector_step, grid_step : pixels between vectors / grid lines
    class_name : name of the propagated class, None for no class layer
    """

    def __init__(
        self,
        viewer: Any,
        prefix: str,
        shape: tuple[int, int, int],
        scale: tuple[float, ...],
        log_scale: bool = False,
        vector_step: int = 6,
        grid_step: int = 6,
        class_name: str | None = None,
        units: tuple[str, ...] | None = None,
        translate: tuple[float, ...] | None = None,
        previous: DebugLayers | None = None,
    ) -> None:
        self.viewer = viewer
        self.prefix = prefix
        self.log_scale = log_scale
        self.vector_step = vector_step
        self.grid_step = grid_step
        self.class_name = class_name
        t = shape[0]
        self.fields = np.zeros((t, 2, *shape[1:]), np.float32)
        self.done = np.zeros(t, bool)
        self._common: dict[str, Any] = {"scale": scale}
        if units is not None:
            self._common["units"] = units
        if translate is not None:
            self._common["translate"] = translate
        # The layers' arrays exist from the start (chunks are written into them); the layers
        # are added one by one (add_next_layer), each ~60 ms of napari's on the GUI thread.
        self.det_data = np.full(shape, 0.0 if log_scale else 1.0, np.float32)
        self.difference_data = np.zeros(shape, np.float32)
        self.folding_data = np.zeros(shape, np.uint8)
        self.propagated_data = np.zeros(shape, np.uint8) if class_name is not None else None
        self.det: Any = None
        self.difference: Any = None
        self.folding: Any = None
        self.vectors: Any = None
        self.grid: Any = None
        self.propagated: Any = None
        if previous is not None:
            self._to_add: list = []
            self._take_layers(previous)
            return
        self._to_add = [
            self._add_det,
            self._add_difference,
            self._add_folding,
            self._add_vectors,
            self._add_grid,
        ] + ([self._add_propagated] if class_name is not None else [])
        for name in self.names():
            if name in viewer.layers:
                viewer.layers.remove(name)

    def _take_layers(self, previous: DebugLayers) -> None:
        """Use ``previous``'s layers for this run (see ``previous`` in the class docstring)."""
        if not previous.fits(self.class_name):
            raise ValueError("the previous run's layers do not fit this run")
        self.det, self.difference = previous.det, previous.difference
        self.folding, self.vectors = previous.folding, previous.vectors
        self.grid, self.propagated = previous.grid, previous.propagated
        p = self.prefix
        self.vectors.data = np.zeros((0, 2, 3), np.float32)
        self.grid.data = []
        for layer, name, data in (
            (self.det, f"{p} log det J" if self.log_scale else f"{p} det J", self.det_data),
            (self.difference, f"{p} warped − fixed", self.difference_data),
            (self.folding, f"{p} folding", self.folding_data),
            (self.vectors, f"{p} displacement", None),
            (self.grid, f"{p} deformed grid", None),
            (self.propagated, f"{p} {self.class_name} (propagated)", self.propagated_data),
        ):
            if layer is None:
                continue
            # each change redraws the layer (~7 ms): only what differs from the last run
            for key, value in self._common.items():
                if tuple(map(str, getattr(layer, key))) != tuple(map(str, value)):
                    setattr(layer, key, value)
            if data is not None:
                layer.data = data
            if layer.name != name:
                layer.name = name
        self.det.contrast_limits = (
            (-LOG_RANGE, LOG_RANGE) if self.log_scale else (1 - DET_RANGE, 1 + DET_RANGE)
        )

    def fits(self, class_name: str | None) -> bool:
        """Whether a next run propagating ``class_name`` (None: none) can take over this
        run's layers (``previous``): all added, and a class layer exactly when it has one."""
        return self.complete and (self.propagated is None) == (class_name is None)

    # -- adding the layers -----------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True once every layer of the run is in the viewer."""
        return not self._to_add

    def add_next_layer(self) -> bool:
        """Add the next layer of the run to the viewer; True while more are left."""
        if self._to_add:
            self._to_add.pop(0)()
        return bool(self._to_add)

    def add_all_layers(self) -> None:
        """Add every layer not added yet."""
        while self.add_next_layer():
            pass

    def layers(self) -> list[Any]:
        """The run's layers added so far."""
        candidates = (self.det, self.difference, self.folding, self.vectors, self.grid)
        return [ly for ly in (*candidates, self.propagated) if ly is not None]

    def _add_det(self) -> None:
        from napari.utils import Colormap

        limits = (-LOG_RANGE, LOG_RANGE) if self.log_scale else (1 - DET_RANGE, 1 + DET_RANGE)
        self.det = self.viewer.add_image(
            self.det_data,
            name=f"{self.prefix} log det J" if self.log_scale else f"{self.prefix} det J",
            colormap=Colormap(DET_COLORS, name="echo det J"),
            contrast_limits=limits,
            **self._common,
        )

    def _add_difference(self) -> None:
        from napari.utils import Colormap

        self.difference = self.viewer.add_image(
            self.difference_data,
            name=f"{self.prefix} warped − fixed",
            colormap=Colormap(DET_COLORS, name="echo difference"),
            contrast_limits=(-0.5, 0.5),
            visible=False,
            **self._common,
        )

    def _add_folding(self) -> None:
        self.folding = self.viewer.add_image(
            self.folding_data,
            name=f"{self.prefix} folding",
            colormap="red",
            contrast_limits=(0, 1),
            blending="additive",
            **self._common,
        )

    def _add_vectors(self) -> None:
        self.vectors = self.viewer.add_vectors(
            np.zeros((0, 2, 3), np.float32),
            name=f"{self.prefix} displacement",
            edge_color="yellow",
            edge_width=0.4,
            length=1.0,
            vector_style="arrow",
            **self._common,
        )

    def _add_grid(self) -> None:
        self.grid = self.viewer.add_shapes(
            ndim=3,
            name=f"{self.prefix} deformed grid",
            edge_color="cyan",
            edge_width=0.3,
            **self._common,
        )

    def _add_propagated(self) -> None:
        self.propagated = self.viewer.add_labels(
            self.propagated_data,
            name=f"{self.prefix} {self.class_name} (propagated)",
            **self._common,
        )
        self.propagated.contour = 1

    def names(self) -> list[str]:
        """Names of the layers this run may own (existing ones are replaced)."""
        p = self.prefix
        return [
            f"{p} det J",
            f"{p} log det J",
            f"{p} warped − fixed",
            f"{p} folding",
            f"{p} displacement",
            f"{p} deformed grid",
        ] + [
            ly.name
            for ly in self.viewer.layers
            if ly.name.startswith(f"{p} ") and "(propagated)" in ly.name
        ]

    def update(self, chunk: DiagnosticsChunk, masks: np.ndarray | None = None) -> None:
        """Write one chunk's frames into the layers (those added so far are redrawn)."""
        ts = chunk.frames
        self.fields[ts] = chunk.fields
        self.done[ts] = True
        self.det_data[ts] = det_display(chunk.det, self.log_scale)
        self.folding_data[ts] = (chunk.det <= 0).astype(np.uint8)
        self.difference_data[ts] = chunk.difference
        if masks is not None and self.propagated_data is not None:
            self.propagated_data[ts] = masks.astype(np.uint8)
        # napari re-slices the arrays when the slider moves: a refresh is needed only when
        # the shown frame changed (each one also redraws the layer list's thumbnails, and
        # refreshing every chunk held the GUI thread for 0.1-0.7 s at a time)
        if int(self.viewer.dims.current_step[0]) not in set(ts.tolist()):
            return
        for layer in (self.det, self.folding, self.difference, self.propagated):
            if layer is not None:
                layer.refresh()

    def show_frame(self, frame: int) -> None:
        """Draw the displacement vectors and the deformed grid of ``frame`` (only computed
        frames have them; other frames show none)."""
        if self.vectors is None or self.grid is None:
            return
        if not 0 <= frame < self.done.size or not self.done[frame]:
            self.vectors.data = np.zeros((0, 2, 3), np.float32)
            self.grid.data = []
            return
        self.vectors.data = displacement_vectors(
            self.fields[frame], self.vector_step, frame_index=[frame]
        )
        lines = deformed_grid_lines(self.fields[frame], self.grid_step)
        paths = [np.column_stack([np.full(len(line), frame), line]) for line in lines]
        self.grid.data = []
        self.grid.add_paths(paths, edge_color="cyan", edge_width=0.3)
