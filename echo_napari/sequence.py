"""The one in-memory representation of an echo sequence: :class:`EchoSequence`.

Every reader returns one, every writer, model and widget consumes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum
from typing import Any

import numpy as np

from echo_napari.errors import SequenceError

#: ``EchoSequence.metadata`` key: True when the clip shows the mirrored apical view (LV on
#: the left of the screen); set by the Predict panel and ``predict --mirrored``, read by
#: fine-tuning (:func:`echo_napari.segmentation.inference.predict_sequence`, ``mirrored``)
MIRRORED_VIEW_KEY = "mirrored_view"


class LabelClass(IntEnum):
    """Label values used in every labels array (CAMUS convention)."""

    BACKGROUND = 0
    LV_CAVITY = 1
    MYOCARDIUM = 2
    LA = 3


CLASS_NAMES: dict[int, str] = {
    LabelClass.BACKGROUND: "background",
    LabelClass.LV_CAVITY: "LV cavity",
    LabelClass.MYOCARDIUM: "LV myocardium",
    LabelClass.LA: "left atrium",
}

#: RGBA colours for the labels layer, one per class (background transparent).
CLASS_COLORS: dict[int, tuple[float, float, float, float]] = {
    LabelClass.BACKGROUND: (0.0, 0.0, 0.0, 0.0),
    LabelClass.LV_CAVITY: (1.0, 0.25, 0.25, 1.0),
    LabelClass.MYOCARDIUM: (0.25, 0.6, 1.0, 1.0),
    LabelClass.LA: (1.0, 0.85, 0.2, 1.0),
}


class ProvenanceKind(str, Enum):
    """Where a frame's labels came from."""

    NONE = "none"
    MANUAL = "manual"
    PROPAGATED = "propagated"
    PREDICTED = "predicted"


@dataclass(frozen=True)
class FrameProvenance:
    """Origin of one frame's labels.

    Parameters
    ----------
    kind : ProvenanceKind
        none / manual / propagated / predicted.
    model : str
        Name of the model or backend that produced the labels ("" for manual/none).
    version : str
        Version of that model ("" when not applicable).
    """

    kind: ProvenanceKind = ProvenanceKind.NONE
    model: str = ""
    version: str = ""


NO_PROVENANCE = FrameProvenance()
MANUAL = FrameProvenance(ProvenanceKind.MANUAL)


@dataclass
class EchoSequence:
    """A 2D+time echocardiography sequence with optional labels.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1]
        numpy array or lazy dask array (long videos are decoded on demand).
    spacing : (dy, dx) mm per pixel, or None when the file does not say
        (never silently assumed; use :attr:`spacing_or_unit` for a display scale).
    frame_time_ms : float or None
        Time between frames in ms.
    view : str
        "A4C", "A2C", ... or "unknown".
    ed_index, es_index : int or None
        0-based end-diastole / end-systole frame indices.
    labels : (T, H, W) uint8 or None
        Class table :class:`LabelClass`; frames without labels are all 0.
    provenance : list of FrameProvenance, length T
        Origin of each frame's labels.
    keyframes : set of int
        Frames whose labels a human set or accepted.
    metadata : dict
        Free-form facts (source path, EF/EDV/ESV reference, patient info).
    """

    frames: Any
    spacing: tuple[float, float] | None = None
    frame_time_ms: float | None = None
    view: str = "unknown"
    ed_index: int | None = None
    es_index: int | None = None
    labels: np.ndarray | None = None
    provenance: list[FrameProvenance] = field(default_factory=list)
    keyframes: set[int] = field(default_factory=set)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.provenance:
            self.provenance = [NO_PROVENANCE] * self.n_frames
        self.validate()

    # -- shape facts -------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def spacing_or_unit(self) -> tuple[float, float]:
        """(dy, dx) in mm, or (1, 1) pixel units when the spacing is unknown."""
        return self.spacing if self.spacing is not None else (1.0, 1.0)

    @property
    def is_lazy(self) -> bool:
        """True when frames are a lazy (dask) array."""
        return not isinstance(self.frames, np.ndarray)

    @property
    def fps(self) -> float | None:
        """Frames per second, from :attr:`frame_time_ms`."""
        return 1000.0 / self.frame_time_ms if self.frame_time_ms else None

    def labelled_frames(self) -> list[int]:
        """Indices of frames with any non-background label."""
        if self.labels is None:
            return []
        return [int(t) for t in np.flatnonzero(self.labels.reshape(self.n_frames, -1).any(1))]

    # -- checks and edits ---------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`SequenceError` when the fields contradict each other."""
        shape = tuple(self.frames.shape)
        if len(shape) != 3:
            raise SequenceError(f"frames must be (T, H, W); got shape {shape}")
        if shape[0] < 1 or shape[1] < 2 or shape[2] < 2:
            raise SequenceError(f"frames must hold at least one 2x2 frame; got shape {shape}")
        if self.labels is not None:
            if tuple(self.labels.shape) != shape:
                raise SequenceError(
                    f"labels shape {tuple(self.labels.shape)} does not match frames {shape}"
                )
            if self.labels.dtype != np.uint8:
                raise SequenceError(f"labels must be uint8; got {self.labels.dtype}")
        if self.spacing is not None:
            dy, dx = self.spacing
            if not (np.isfinite(dy) and np.isfinite(dx) and dy > 0 and dx > 0):
                raise SequenceError(f"spacing must be positive mm values; got {self.spacing}")
        for name in ("ed_index", "es_index"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < shape[0]:
                raise SequenceError(f"{name}={value} outside 0..{shape[0] - 1}")
        if len(self.provenance) != shape[0]:
            raise SequenceError(
                f"provenance has {len(self.provenance)} entries for {shape[0]} frames"
            )
        bad = [k for k in self.keyframes if not 0 <= k < shape[0]]
        if bad:
            raise SequenceError(f"keyframes {sorted(bad)} outside 0..{shape[0] - 1}")

    def ensure_labels(self) -> np.ndarray:
        """Return the labels array, creating an all-background one if missing."""
        if self.labels is None:
            self.labels = np.zeros(tuple(self.frames.shape), dtype=np.uint8)
        return self.labels

    def frames_array(self) -> np.ndarray:
        """All frames as an in-memory (T, H, W) float32 numpy array."""
        return np.asarray(self.frames, dtype=np.float32)

    def copy(self, **changes: Any) -> EchoSequence:
        """A shallow copy with some fields replaced (labels copied when present)."""
        if "labels" not in changes and self.labels is not None:
            changes["labels"] = self.labels.copy()
        changes.setdefault("provenance", list(self.provenance))
        changes.setdefault("keyframes", set(self.keyframes))
        changes.setdefault("metadata", dict(self.metadata))
        return replace(self, **changes)
