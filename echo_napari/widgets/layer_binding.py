"""Keep a napari Labels layer and a :class:`ReviewSession` in step
(and build the session's :class:`EchoSequence` from the layers: :func:`sequence_from_layers`).

The layer and the session share one (T, H, W) uint8 array, so painting needs no copy: on
each napari edit event we tell the session which frames changed and it recomputes the
areas of those frames only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from echo_napari.errors import EchoNapariError
from echo_napari.memory_pages import populate_in_background
from echo_napari.review_session import ReviewSession
from echo_napari.sequence import EchoSequence
from echo_napari.sequence_facts import provenance_from_facts
from echo_napari.widgets._notify import notify_error

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

#: Layer-metadata key of the EchoSequence facts (as written by the reader hook).
FACTS_KEY = "echo_sequence"


def sequence_from_layers(
    image_layer: Any, labels: np.ndarray, review_facts: dict[str, Any] | None = None
) -> EchoSequence:
    """An EchoSequence over an Image layer's (T, H, W) data and a labels array.

    Facts (spacing, ED/ES, keyframes, provenance, metadata) come from the layer metadata
    written by our reader; without them the spacing is taken from the layer's scale
    when that is not the unit scale. ``review_facts`` (the labels layer's metadata, where
    the dock mirrors its review state) override ED/ES, keyframes and provenance.
    """
    data = image_layer.data
    if getattr(image_layer, "rgb", False) or data.ndim != 3:
        raise EchoNapariError(
            f"layer '{image_layer.name}' must be a grey (T, H, W) sequence; "
            f"got shape {tuple(data.shape)}{' RGB' if image_layer.rgb else ''}"
        )
    facts = dict(image_layer.metadata.get(FACTS_KEY) or {})
    review = review_facts or {}
    if len(review.get("provenance") or []) == data.shape[0]:
        facts.update({k: review[k] for k in ("ed_index", "es_index", "keyframes", "provenance")})
    if "spacing" in facts:
        spacing = facts["spacing"]
        spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))
    else:
        dy, dx = (float(s) for s in image_layer.scale[-2:])
        spacing = None if (dy, dx) == (1.0, 1.0) else (dy, dx)
    n = int(data.shape[0])
    return EchoSequence(
        frames=data,
        spacing=spacing,
        frame_time_ms=facts.get("frame_time_ms"),
        view=facts.get("view", "unknown"),
        ed_index=facts.get("ed_index"),
        es_index=facts.get("es_index"),
        labels=labels,
        provenance=provenance_from_facts(facts, n),
        keyframes={int(k) for k in facts.get("keyframes", []) if 0 <= int(k) < n},
        metadata=dict(facts.get("metadata") or {}),
    )


def frames_in_history_item(item: Any) -> set[int]:
    """Frame (axis 0) indices touched by one napari Labels undo-history item.

    ``item`` is a list of atoms: ``_MaskedPaintAtom`` (``slice_key`` tuple of slices) or
    the legacy ``(indices, old_values, new_values)`` 3-tuple of index arrays.
    """
    frames: set[int] = set()
    for atom in item or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                start = 0 if first.start is None else int(first.start)
                stop = start + 1 if first.stop is None else int(first.stop)
                frames.update(range(start, stop))
            else:
                frames.add(int(first))
            continue
        indices = atom[0]
        first = np.asarray(indices[0]).ravel()
        frames.update(int(t) for t in np.unique(first))
    return frames


class LabelsLayerBinding:
    """Forward a Labels layer's edits to a session.

    Parameters
    ----------
    viewer : napari.Viewer
    labels_layer : napari.layers.Labels
        (T, H, W) uint8 whose ``data`` is the session's labels array.
    session : ReviewSession

    Notes
    -----
    * ``paint`` (a finished stroke, fill or programmatic ``paint``): the touched frames
      become MANUAL keyframes.
    * ``labels_update`` (each step of a stroke still in progress): the displayed frame's
      areas are refreshed so the curve follows the brush.
    * ``set_data`` (undo/redo, refresh): the displayed frame's areas are refreshed.
    * ``data`` (the array was replaced): the session re-points to the new array.
    """

    def __init__(
        self, viewer: napari.Viewer, labels_layer: napari.layers.Labels, session: ReviewSession
    ) -> None:
        self.viewer = viewer
        self.layer = labels_layer
        self.session = session
        ev = labels_layer.events
        ev.paint.connect(self._on_paint)
        ev.labels_update.connect(self._on_live_update)
        ev.set_data.connect(self._on_live_update)
        ev.data.connect(self._on_data_replaced)
        # the first write of a job's result would otherwise fault the pages in on the GUI
        # thread (:mod:`echo_napari.memory_pages`)
        populate_in_background(labels_layer.data)

    def disconnect(self) -> None:
        """Stop listening to the layer."""
        ev = self.layer.events
        ev.paint.disconnect(self._on_paint)
        ev.labels_update.disconnect(self._on_live_update)
        ev.set_data.disconnect(self._on_live_update)
        ev.data.disconnect(self._on_data_replaced)

    # -- time axis ----------------------------------------------------------------------
    def current_frame(self) -> int:
        """The frame of the layer under napari's time slider."""
        data_point = self.layer.world_to_data(self.viewer.dims.point[-self.layer.ndim :])
        n = self.layer.data.shape[0]
        return int(np.clip(np.round(data_point[0]), 0, n - 1))

    def go_to_frame(self, frame: int) -> None:
        """Move napari's time slider to ``frame`` of this layer."""
        world = self.layer.data_to_world([frame] + [0] * (self.layer.ndim - 1))
        axis = self.viewer.dims.ndim - self.layer.ndim
        self.viewer.dims.set_point(axis, float(world[0]))

    # -- events -------------------------------------------------------------------------
    def _on_paint(self, event: Any) -> None:
        frames = frames_in_history_item(getattr(event, "value", None))
        if not frames:
            frames = {self.current_frame()}
        self.session.labels_edited(sorted(frames))

    def _on_live_update(self, event: Any = None) -> None:
        if self.session.is_loaded and self.layer.data is self.session.labels:
            self.session.refresh_areas(self.current_frame())

    def _on_data_replaced(self, event: Any = None) -> None:
        data = self.layer.data
        if data is self.session.labels:
            return
        try:
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
                data = np.asarray(data).astype(np.uint8)
            self.session.replace_labels_array(data)
        except EchoNapariError as error:
            notify_error(f"labels layer '{self.layer.name}': {error}")
            return
        if data is not self.layer.data:
            self.layer.data = data
        populate_in_background(data)
