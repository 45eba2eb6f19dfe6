"""The napari layers of one debugger run (one backend): Jacobian determinant, folding
overlay, displacement vectors, deformed grid, warped − fixed difference, propagated class.

Arrays are allocated for the whole sequence when the run starts and filled chunk by chunk
(:meth:`DebugLayers.update`), so the user sees each chunk as it arrives.
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
    scale : layer scale (t, dy, dx) of the image layer, so everything overlays it
    units : the image layer's units (napari renders mixed units without them)
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
    ) -> None:
        from napari.utils import Colormap

        self.viewer = viewer
        self.prefix = prefix
        self.log_scale = log_scale
        self.vector_step = vector_step
        self.grid_step = grid_step
        t, h, w = shape
        self.fields = np.zeros((t, 2, h, w), np.float32)
        self.done = np.zeros(t, bool)
        self._vectors: dict[int, np.ndarray] = {}
        common: dict[str, Any] = {"scale": scale}
        if units is not None:
            common["units"] = units
        for name in self.names():
            if name in viewer.layers:
                viewer.layers.remove(name)
        limits = (-LOG_RANGE, LOG_RANGE) if log_scale else (1 - DET_RANGE, 1 + DET_RANGE)
        self.det = viewer.add_image(
            np.full(shape, 0.0 if log_scale else 1.0, np.float32),
            name=f"{prefix} log det J" if log_scale else f"{prefix} det J",
            colormap=Colormap(DET_COLORS, name="echo det J"),
            contrast_limits=limits,
            **common,
        )
        self.difference = viewer.add_image(
            np.zeros(shape, np.float32),
            name=f"{prefix} warped − fixed",
            colormap=Colormap(DET_COLORS, name="echo difference"),
            contrast_limits=(-0.5, 0.5),
            visible=False,
            **common,
        )
        self.folding = viewer.add_image(
            np.zeros(shape, np.uint8),
            name=f"{prefix} folding",
            colormap="red",
            contrast_limits=(0, 1),
            blending="additive",
            **common,
        )
        self.vectors = viewer.add_vectors(
            np.zeros((0, 2, 3), np.float32),
            name=f"{prefix} displacement",
            edge_color="yellow",
            edge_width=0.4,
            length=1.0,
            vector_style="arrow",
            **common,
        )
        self.grid = viewer.add_shapes(
            ndim=3, name=f"{prefix} deformed grid", edge_color="cyan", edge_width=0.3, **common
        )
        self.propagated = None
        if class_name is not None:
            self.propagated = viewer.add_labels(
                np.zeros(shape, np.uint8), name=f"{prefix} {class_name} (propagated)", **common
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
        """Write one chunk's frames into the layers."""
        ts = chunk.frames
        self.fields[ts] = chunk.fields
        self.done[ts] = True
        self.det.data[ts] = det_display(chunk.det, self.log_scale)
        self.folding.data[ts] = (chunk.det <= 0).astype(np.uint8)
        self.difference.data[ts] = chunk.difference
        if masks is not None and self.propagated is not None:
            self.propagated.data[ts] = masks.astype(np.uint8)
            self.propagated.refresh()
        for i, t in enumerate(ts):
            self._vectors[int(t)] = displacement_vectors(
                chunk.fields[i], self.vector_step, frame_index=[int(t)]
            )
        self.vectors.data = np.concatenate([self._vectors[t] for t in sorted(self._vectors)])
        for layer in (self.det, self.folding, self.difference):
            layer.refresh()

    def show_grid(self, frame: int) -> None:
        """Draw the deformed grid of ``frame`` (only computed frames have one)."""
        if not 0 <= frame < self.done.size or not self.done[frame]:
            self.grid.data = []
            return
        lines = deformed_grid_lines(self.fields[frame], self.grid_step)
        paths = [np.column_stack([np.full(len(line), frame), line]) for line in lines]
        self.grid.data = []
        self.grid.add_paths(paths, edge_color="cyan", edge_width=0.3)
