"""The evented state of one review: sequence, labels, provenance, keyframes, ED/ES, areas.

One :class:`ReviewSession` per viewer (created by the review dock, never a module-level
singleton). It holds no Qt and no napari objects: docks call its methods when the user
edits something and subscribe to ``session.events`` to redraw.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from echo_napari.errors import EchoNapariError, SequenceError
from echo_napari.metrics import class_areas_mm2
from echo_napari.metrics_plausibility import (
    Plausibility,
    ShapeFeatures,
    plausibility_from_features,
)
from echo_napari.second_source import SecondSource, label_disagreement
from echo_napari.sequence import MANUAL, EchoSequence, FrameProvenance, ProvenanceKind
from echo_napari.shape_memo import ShapeMemo
from echo_napari.uncertainty import (
    store_uncertainty,
    stored_uncertainty,
    unsure_reason,
    unsure_score,
)

__all__ = ["ReviewEvents", "ReviewSession"]


class ReviewEvents(SignalGroup):
    """Signals of a :class:`ReviewSession`.

    ``areas`` and ``provenance`` carry the (N,) int array of frames that changed, so a
    listener redraws only those frames; ``results`` carries the key of a cached result.
    """

    sequence = Signal()
    areas = Signal(object)
    provenance = Signal(object)
    keyframes = Signal()
    phases = Signal()
    results = Signal(str)


def _as_frames(frames: int | Iterable[int]) -> np.ndarray:
    if isinstance(frames, (int, np.integer)):
        return np.array([int(frames)], dtype=np.int64)
    return np.unique(np.fromiter((int(t) for t in frames), dtype=np.int64))


class ReviewSession:
    """Evented review state for one sequence.

    Parameters
    ----------
    sequence : EchoSequence, optional
        Loaded with :meth:`load`. Its ``labels`` array is shared, not copied, so a napari
        Labels layer can paint into the same memory.

    Attributes
    ----------
    events : ReviewEvents
        ``sequence``, ``areas(frames)``, ``provenance(frames)``, ``keyframes``, ``phases``.
    areas : (T, 4) float64
        Area per class per frame, mm² (pixels² when the spacing is unknown).
    results : dict
        Cached results of long jobs (e.g. registration fields), cleared on :meth:`load`.
    plausibility : Plausibility or None
        Per-frame anatomical checks of the last :meth:`suspicion_scores`.
    """

    def __init__(self, sequence: EchoSequence | None = None) -> None:
        self.events = ReviewEvents()
        self._sequence: EchoSequence | None = None
        self.areas = np.zeros((0, 4), dtype=np.float64)
        self.results: dict[str, Any] = {}
        self.second_source: SecondSource | None = None
        self.plausibility: Plausibility | None = None
        # Shape features per frame for the anatomical checks; frames whose areas are
        # recomputed are marked stale, so a brush stroke costs one frame, not T.
        self._shapes: ShapeFeatures | None = None
        self._stale_shapes = np.zeros(0, dtype=bool)
        self._shape_memo = ShapeMemo()
        if sequence is not None:
            self.load(sequence)

    # -- state ------------------------------------------------------------------------
    @property
    def sequence(self) -> EchoSequence:
        """The loaded sequence; raises :class:`SequenceError` before :meth:`load`."""
        if self._sequence is None:
            raise SequenceError("no sequence loaded: choose an echo image layer first")
        return self._sequence

    @property
    def is_loaded(self) -> bool:
        """True once a sequence is loaded."""
        return self._sequence is not None

    @property
    def labels(self) -> np.ndarray:
        """(T, H, W) uint8 labels, shared with the labels layer."""
        return self.sequence.ensure_labels()

    @property
    def area_unit(self) -> str:
        """ "mm²", or "px²" when the spacing is unknown."""
        return "px²" if self.sequence.spacing is None else "mm²"

    def load(self, sequence: EchoSequence) -> None:
        """Replace the whole state with ``sequence`` and compute every frame's areas."""
        sequence.ensure_labels()
        sequence.validate()
        self._sequence = sequence
        self.results = {}
        self.second_source = None
        self.plausibility = None
        self._shapes = None
        self.areas = class_areas_mm2(sequence.labels, sequence.spacing)
        self.events.sequence.emit()

    def replace_labels_array(self, labels: np.ndarray) -> None:
        """Point the session at a new (T, H, W) uint8 array (the layer's data was swapped)."""
        seq = self.sequence
        if tuple(labels.shape) != tuple(seq.frames.shape) or labels.dtype != np.uint8:
            raise SequenceError(
                f"labels must be uint8 of shape {tuple(seq.frames.shape)}; "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )
        seq.labels = labels
        self._shapes = None
        self.areas = class_areas_mm2(labels, seq.spacing)
        self.events.areas.emit(np.arange(seq.n_frames))

    # -- label edits ------------------------------------------------------------------
    def refresh_areas(self, frames: int | Iterable[int]) -> np.ndarray:
        """Recompute the areas of ``frames`` only; emit ``areas`` for those that changed.

        Returns
        -------
        (N,) int64
            The frames whose areas changed.
        """
        idx = self._valid(frames)
        if idx.size == 0:
            return idx
        changed = self._recompute_areas(idx)
        if changed.any():
            self._refresh_disagreement(idx[changed])
            self.events.areas.emit(idx[changed])
        return idx[changed]

    def labels_edited(self, frames: int | Iterable[int]) -> np.ndarray:
        """A human painted ``frames``: recompute their areas, mark them MANUAL keyframes.

        Returns
        -------
        (N,) int64
            The edited frames (valid indices only).
        """
        idx = self._valid(frames)
        if idx.size == 0:
            return idx
        seq = self.sequence
        self._recompute_areas(idx)
        for t in idx:
            seq.provenance[int(t)] = MANUAL
        added = not set(idx.tolist()) <= seq.keyframes
        seq.keyframes.update(int(t) for t in idx)
        self._refresh_disagreement(idx)
        self.events.areas.emit(idx)
        self.events.provenance.emit(idx)
        if added:
            self.events.keyframes.emit()
        return idx

    def write_labels(
        self,
        frames: Iterable[int],
        labels: np.ndarray,
        provenance: FrameProvenance,
        shapes: ShapeFeatures | None = None,
        areas: np.ndarray | None = None,
        from_second_source: bool = False,
    ) -> np.ndarray:
        """Write computed labels (propagation, prediction) into ``frames`` in place.

        Parameters
        ----------
        frames : iterable of int, length N
        labels : (N, H, W) uint8
        provenance : FrameProvenance
            Recorded for every written frame.
        shapes : ShapeFeatures of ``labels`` (N frames), optional
            Computed by the job that made them (off the GUI thread); otherwise the
            anatomical checks recompute them when next asked.
        areas : (N, 4) float64 class areas of ``labels`` (mm², px² without spacing), optional
            Already known (a prediction's); otherwise computed here.
        from_second_source : the labels are the second source's own for these frames (so
            their disagreement with it is 0, not recomputed)

        Returns
        -------
        (N,) int64 the frames written.
        """
        idx = np.fromiter((int(t) for t in frames), dtype=np.int64)
        if labels.shape != (idx.size, *self.sequence.frame_shape):
            raise SequenceError(
                f"labels for {idx.size} frames must be "
                f"{(idx.size, *self.sequence.frame_shape)}; got {labels.shape}"
            )
        self.labels[idx] = labels
        for t in idx:
            self.sequence.provenance[int(t)] = provenance
        if areas is not None and areas.shape != (idx.size, 4):
            raise SequenceError(f"areas for {idx.size} frames must be ({idx.size}, 4)")
        self._recompute_areas(idx, known=areas)
        if shapes is not None and self._shapes is not None:
            if shapes.lv_pixels.size != idx.size:
                raise SequenceError(
                    f"shape features for {shapes.lv_pixels.size} frames; {idx.size} written"
                )
            self._shapes.update(idx, shapes)
            self._stale_shapes[idx] = False
        if from_second_source and self.second_source is not None:
            self.second_source.disagreement[idx] = 0.0
        else:
            self._refresh_disagreement(idx)
        self.events.areas.emit(idx)
        self.events.provenance.emit(idx)
        return idx

    def set_result(self, key: str, value: Any) -> None:
        """Cache a job's result (e.g. ``"disagreement"``: (T,) float) and emit ``results``."""
        self.results[key] = value
        self.events.results.emit(key)

    # -- a second source (prediction) ---------------------------------------------------------
    def set_second_source(
        self,
        labels: np.ndarray,
        provenance: FrameProvenance,
        shapes: ShapeFeatures | None = None,
        uncertainty: np.ndarray | None = None,
    ) -> None:
        """Show ``labels`` (T, H, W) uint8 from another source next to the reviewed ones.

        ``shapes``: their ShapeFeatures, computed by the job (then accepting frames does
        not recompute the anatomical checks on the GUI thread); ``uncertainty``: (T,) the
        network's LV-border uncertainty, kept for the frames accepted from it. Emits
        ``results("second_source")``; its disagreement joins the suspicion score.
        """
        seq = self.sequence
        if labels.shape != tuple(seq.frames.shape) or labels.dtype != np.uint8:
            raise SequenceError(
                f"second-source labels must be uint8 {tuple(seq.frames.shape)}; "
                f"got {labels.dtype} {labels.shape}"
            )
        self.second_source = SecondSource(
            labels=labels,
            provenance=provenance,
            areas=class_areas_mm2(labels, seq.spacing),
            disagreement=label_disagreement(self.labels, labels),
            shapes=shapes,
            uncertainty=None if uncertainty is None else np.asarray(uncertainty, float),
        )
        self.events.results.emit("second_source")

    def accept_second_source(self, first: int, last: int) -> np.ndarray:
        """Copy the second source into frames ``first..last`` (inclusive), keyframes kept.

        Returns
        -------
        (N,) int64 the frames written (with the second source's provenance).
        """
        if self.second_source is None:
            raise SequenceError("no second source to accept: run Predict first")
        n = self.sequence.n_frames
        lo, hi = max(0, int(first)), min(n - 1, int(last))
        keys = self.sequence.keyframes
        frames = [t for t in range(lo, hi + 1) if t not in keys]
        if not frames:
            return np.zeros(0, dtype=np.int64)
        source = self.second_source
        shapes = source.shapes.take(np.asarray(frames)) if source.shapes is not None else None
        written = self.write_labels(
            frames,
            source.labels[frames],
            source.provenance,
            shapes=shapes,
            areas=source.areas[frames],
            from_second_source=True,
        )
        if source.uncertainty is not None and written.size:
            store_uncertainty(self.sequence.metadata, written, source.uncertainty[written], n)
        return written

    def _refresh_disagreement(self, idx: np.ndarray) -> None:
        if self.second_source is not None and idx.size:
            self.second_source.disagreement[idx] = label_disagreement(
                self.labels, self.second_source.labels, frames=idx
            )

    # -- keyframes and phases -----------------------------------------------------------
    def set_keyframe(self, frame: int, is_keyframe: bool = True) -> None:
        """Mark (or unmark) ``frame`` as a keyframe."""
        valid = self._valid(frame)
        if valid.size == 0:
            raise SequenceError(f"frame {frame} outside 0..{self.sequence.n_frames - 1}")
        frame = int(valid[0])
        keys = self.sequence.keyframes
        if is_keyframe == (frame in keys):
            return
        (keys.add if is_keyframe else keys.discard)(frame)
        self.events.keyframes.emit()

    def accept_frame(self, frame: int) -> bool:
        """A human accepted ``frame``'s labels as they are: make it a MANUAL keyframe.

        Returns
        -------
        bool
            False when it already was a manual keyframe (nothing emitted).
        """
        valid = self._valid(frame)
        if valid.size == 0:
            raise SequenceError(f"frame {frame} outside 0..{self.sequence.n_frames - 1}")
        t = int(valid[0])
        seq = self.sequence
        if t in seq.keyframes and seq.provenance[t] == MANUAL:
            return False
        seq.provenance[t] = MANUAL
        seq.keyframes.add(t)
        # provenance first: its listeners (the session store) see the keyframe already
        # and record both as one change
        self.events.provenance.emit(valid[:1])
        self.events.keyframes.emit()
        return True

    def restored(self, frames: Iterable[int]) -> None:
        """Labels, provenance, keyframes or ED/ES were restored from outside (undo/redo):
        recompute the areas of ``frames`` and tell every listener to redraw."""
        idx = self._valid(frames)
        if idx.size:
            self._recompute_areas(idx)
            self._refresh_disagreement(idx)
            self.events.areas.emit(idx)
            self.events.provenance.emit(idx)
        self.events.keyframes.emit()
        self.events.phases.emit()

    def toggle_keyframe(self, frame: int) -> bool:
        """Flip ``frame``'s keyframe mark; return whether it is now a keyframe."""
        now = int(frame) not in self.sequence.keyframes
        self.set_keyframe(frame, now)
        return now

    def sorted_keyframes(self) -> list[int]:
        """Keyframes in frame order."""
        return sorted(self.sequence.keyframes)

    def next_keyframe(self, frame: int) -> int | None:
        """First keyframe after ``frame``, or None."""
        later = [k for k in self.sorted_keyframes() if k > frame]
        return later[0] if later else None

    def previous_keyframe(self, frame: int) -> int | None:
        """Last keyframe before ``frame``, or None."""
        earlier = [k for k in self.sorted_keyframes() if k < frame]
        return earlier[-1] if earlier else None

    def set_phase(self, phase: str, frame: int | None) -> None:
        """Override ED or ES (``phase`` in {"ed", "es"}) with ``frame`` (None clears it)."""
        if phase not in ("ed", "es"):
            raise ValueError(f"phase must be 'ed' or 'es'; got {phase!r}")
        if frame is not None and self._valid(frame).size == 0:
            raise SequenceError(f"{phase.upper()} frame {frame} outside the sequence")
        setattr(self.sequence, f"{phase}_index", None if frame is None else int(frame))
        self.events.phases.emit()

    def reference_ef(self) -> float | None:
        """Reference ejection fraction (%) from the file (``metadata["reference"]["EF"]``)."""
        reference = self.sequence.metadata.get("reference") or {}
        value = reference.get("EF") if isinstance(reference, dict) else None
        try:
            ef = float(value) if value is not None else None
        except (TypeError, ValueError):
            return None
        return ef if ef is not None and np.isfinite(ef) else None

    # -- review aids ------------------------------------------------------------------------
    def ejection_fraction(self) -> float | None:
        """EF (%) of the current labels at ED/ES (monoplane Simpson), None when unknown.

        Needs ED and ES set and an LV cavity on both frames; calls
        :func:`echo_napari.metrics_volume.ef_from_labels`.
        """
        from echo_napari.metrics_volume import ef_from_labels
        from echo_napari.sequence import LabelClass

        seq = self.sequence
        ed, es = seq.ed_index, seq.es_index
        if ed is None or es is None or ed == es:
            return None
        lv = int(LabelClass.LV_CAVITY)
        if self.areas[ed, lv] == 0 or self.areas[es, lv] == 0:
            return None
        try:
            result = ef_from_labels(self.labels[[ed, es]], seq.spacing, ed_index=0, es_index=1)
        except (EchoNapariError, ValueError):
            return None
        return float(result.ef) if np.isfinite(result.ef) else None

    def lv_smoothness(self) -> float | None:
        """Temporal smoothness (MICCAI 2023 DIR Eq. 2) of the mean-normalised LV area curve,
        1/s³ (1/frame³ without a frame time); lower is smoother. None for T < 3."""
        from echo_napari.metrics_volume import area_curve_smoothness
        from echo_napari.sequence import LabelClass

        curve = self.areas[:, int(LabelClass.LV_CAVITY)]
        if curve.size < 3 or not curve.any():
            return None
        value = area_curve_smoothness(curve, self.sequence.frame_time_ms, normalise=True)
        return float(value) if np.isfinite(value) else None

    def detect_phases(self) -> tuple[int, int]:
        """Set ED and ES from the LV cavity area curve.

        ED/ES are one beat's filling peak and trough (the beat of median area change: a
        representative one; a "beat" shorter than a systole beside longer ones, a glitch of
        the curve, is not one: :func:`~echo_napari.metrics_ef.long_enough`), so that a clip
        of several beats does not pair the largest and smallest frames of different beats.
        Beats are searched within the stretches of labelled frames with an LV
        (:func:`~echo_napari.metrics_ef.beats_where_present`: frames where the LV is lost or
        not yet labelled are no beat); with no clear beat, ED/ES are the largest and
        smallest labelled frames.

        Returns
        -------
        (ed_index, es_index)
        """
        from echo_napari.frame_rate import REFERENCE_FRAME_TIME_MS
        from echo_napari.metrics_ef import MIN_SYSTOLE_MS, beats_where_present, long_enough
        from echo_napari.metrics_plausibility import collapsed_frames
        from echo_napari.metrics_volume import ed_es_from_curve
        from echo_napari.sequence import LabelClass

        curve = self.areas[:, int(LabelClass.LV_CAVITY)]
        if not curve.any():
            raise SequenceError("no LV cavity labelled on any frame: ED/ES cannot be detected")
        labelled = curve > 0
        masked = np.where(labelled, curve, np.nan)
        ed, es = ed_es_from_curve(masked, sigma_frames=0.0)
        present = labelled & ~collapsed_frames(curve, labelled)
        if present.sum() >= 3:
            smooth, found = beats_where_present(curve, present, 1.0)
            beats = [(d, s) for d, s in found if d < s and present[d] and present[s]]
            # an unknown frame time reads as 50 frames/s, as everywhere
            frame_ms = self.sequence.frame_time_ms or REFERENCE_FRAME_TIME_MS
            systoles = long_enough(beats, MIN_SYSTOLE_MS / frame_ms)
            beats = [b for b, ok in zip(beats, systoles, strict=True) if ok]
            if beats:
                change = [1.0 - smooth[s] / smooth[d] for d, s in beats]
                ed, es = beats[int(np.argsort(change)[(len(beats) - 1) // 2])]
                # Smoothing can shift an extreme by a frame: snap to the frame itself.
                ed = max(0, ed - 2) + int(np.argmax(curve[max(0, ed - 2) : ed + 3]))
                es = max(0, es - 2) + int(np.argmin(curve[max(0, es - 2) : es + 3]))
        self.sequence.ed_index, self.sequence.es_index = int(ed), int(es)
        self.events.phases.emit()
        return int(ed), int(es)

    def suspicion_scores(self) -> np.ndarray:
        """Temporal implausibility of each frame, (T,) float ≥ 0 (0 at keyframes).

        The larger of (a) the area-curve curvature ``|a(t-1) − 2a(t) + a(t+1)|`` per
        class relative to that class's median area (a one-frame spike scores highest on
        its own frame), (b) the forward/backward propagation disagreement (1 − Dice)
        cached in ``results["disagreement"]`` after a propagation, (c) the disagreement
        with the second source (prediction), when there is one, (d) :meth:`unsure_scores`
        and (e) the anatomical
        implausibility of the frame's labels (collapsed, concave or shortened LV cavity, LA
        on the wrong side, …: :func:`echo_napari.metrics_plausibility.frame_plausibility`).
        """
        n = self.sequence.n_frames
        scores = np.zeros(n, dtype=np.float64)
        if n >= 3:
            areas = self.areas[:, 1:]
            present = areas > 0
            scale = np.array(
                [
                    np.median(col[ok]) if ok.any() else np.inf
                    for col, ok in zip(areas.T, present.T, strict=True)
                ]
            )
            curvature = np.abs(areas[:-2] - 2.0 * areas[1:-1] + areas[2:]) / scale
            scores[1:-1] = curvature.max(axis=1)
        disagreement = self.results.get("disagreement")
        if disagreement is not None and len(disagreement) == n:
            scores = np.maximum(scores, np.nan_to_num(np.asarray(disagreement, float)))
        if self.second_source is not None:
            scores = np.maximum(scores, self.second_source.disagreement)
        scores = np.maximum(scores, self.unsure_scores())
        if self.sequence.labels is not None:
            self.plausibility = plausibility_from_features(
                self._current_shapes(), frame_time_ms=self.sequence.frame_time_ms
            )
            scores = np.maximum(scores, self.plausibility.score)
        scores[sorted(self.sequence.keyframes)] = 0.0
        return scores

    def _recompute_areas(self, idx: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        """Recompute the areas of frames ``idx`` (or take ``known`` (N, 4) ones) and mark
        their shape features stale; returns (N,) bool, which of them changed area."""
        new = class_areas_mm2(self.labels[idx], self.sequence.spacing) if known is None else known
        changed = np.any(new != self.areas[idx], axis=1)
        self.areas[idx] = new
        if self._shapes is not None:
            self._stale_shapes[idx] = True
        return changed

    def _current_shapes(self) -> ShapeFeatures:
        """Shape features of every frame, recomputing only the stale ones (frames seen
        before, as after an undo, are looked up in :attr:`_shape_memo`)."""
        labels = self.sequence.labels
        if self._shapes is None or self._shapes.lv_pixels.size != labels.shape[0]:
            self._shapes, _ = self._shape_memo.features(labels)
            self._stale_shapes = np.zeros(labels.shape[0], dtype=bool)
        stale = np.flatnonzero(self._stale_shapes)
        if stale.size:
            self._shapes.update(stale, self._shape_memo.features(labels[stale])[0])
            self._stale_shapes[stale] = False
        return self._shapes

    def plausible_share(self) -> float | None:
        """Share (0–1) of the labelled frames whose labels pass the anatomical checks;
        None when no frame is labelled."""
        shapes = self._current_shapes()
        if not shapes.labelled.any():
            return None
        self.plausibility = plausibility_from_features(
            shapes, frame_time_ms=self.sequence.frame_time_ms
        )
        return self.plausibility.plausible_share(among=shapes.labelled)

    def implausibility_reasons(self, frame: int) -> list[str]:
        """Why ``frame`` is implausible: the anatomical checks, as of the last
        :meth:`suspicion_scores`, then an LV area jump against a neighbouring frame
        (:func:`echo_napari.metrics_jumps.lv_area_jump`), then the network's uncertainty
        on labels accepted from it; empty when there is none."""
        from echo_napari.metrics_jumps import lv_area_jump

        reasons = []
        if self.plausibility is not None and 0 <= frame < self.plausibility.score.size:
            reasons = self.plausibility.reasons(frame)
        jump = lv_area_jump(self.areas[:, 1], self.areas[:, 3], frame, self.sequence.frame_time_ms)
        seq, unsure = self.sequence, ""
        if 0 <= frame < seq.n_frames and self._network_lv()[frame]:
            # below the flag the reason is empty
            unsure = unsure_reason(stored_uncertainty(seq.metadata, seq.n_frames)[frame])
        return reasons + [text for text in (jump, unsure) if text]

    def _network_lv(self) -> np.ndarray:
        """(T,) bool: frames whose labels are still the network's (predicted provenance)
        and hold an LV."""
        predicted = [p.kind is ProvenanceKind.PREDICTED for p in self.sequence.provenance]
        return np.array(predicted, dtype=bool) & (self.areas[:, 1] > 0)

    def unsure_scores(self) -> np.ndarray:
        """(T,) float64 suspicion of the frames whose labels are still the network's
        (predicted provenance, an LV drawn) and whose LV border it was unsure of, as kept
        in the sequence's metadata when the prediction was accepted
        (:mod:`echo_napari.uncertainty`); 0 elsewhere."""
        stored = stored_uncertainty(self.sequence.metadata, self.sequence.n_frames)
        return np.where(self._network_lv(), unsure_score(stored), 0.0)

    def suspicious_frames(self, min_score: float = 0.05) -> list[int]:
        """Frames scoring ≥ ``min_score`` in :meth:`suspicion_scores`, most suspicious first."""
        scores = self.suspicion_scores()
        order = np.argsort(-scores, kind="stable")
        return [int(t) for t in order if scores[t] >= min_score]

    # -- helpers ------------------------------------------------------------------------
    def _valid(self, frames: int | Iterable[int]) -> np.ndarray:
        idx = _as_frames(frames)
        n = self.sequence.n_frames
        return idx[(idx >= 0) & (idx < n)]
