"""Propagate / Re-propagate keyframe labels through the sequence in a background thread.

The panel gathers the keyframe masks from the session, runs the registration core
(``pairwise_fields`` → ``propagate_from_keyframes`` / ``update_after_keyframe_change``)
in a napari ``thread_worker`` and writes the result back through the session, with
PROPAGATED provenance, on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from echo_napari.errors import EchoNapariError
from echo_napari.io.frame_source import read_frames
from echo_napari.metrics_plausibility import ShapeFeatures, shape_features
from echo_napari.sequence import FrameProvenance, ProvenanceKind
from echo_napari.widgets._jobs import (
    ProgressJobMixin,
    _Relay,
    stage_reporter,
    torch_threads_for_jobs,
)
from echo_napari.widgets._notify import notify_error, notify_info_after_result

if TYPE_CHECKING:
    from echo_napari.widgets.review_dock import ReviewDock

logger = logging.getLogger(__name__)

#: Pairs per backend call: bounds how long a Cancel waits during registration.
CHUNK_PAIRS = 8


def propagation_available() -> bool:
    """True when the registration core (backends + propagation) is importable."""
    try:
        import echo_napari.registration.backends  # noqa: F401
        import echo_napari.registration.propagation  # noqa: F401
    except ImportError as error:
        logger.info("propagation controls hidden: %s", error)
        return False
    return True


@dataclass(frozen=True)
class PropagationOutput:
    """What a propagation or repair job hands back to the GUI thread (``result``: a
    PropagationResult or a :class:`~echo_napari.registration.repair.Repair`)."""

    fields: Any
    result: Any
    frames: tuple[int, ...]
    provenance: FrameProvenance
    #: shape features of the written frames, computed in the worker so that writing the
    #: result back does not run the anatomical checks on the GUI thread
    shapes: ShapeFeatures | None = None
    #: (N, 4) float64 pixels of each class in the written frames, counted in the worker
    #: (counting 150 frames of 800 × 600 held the GUI thread ~150 ms)
    pixel_areas: np.ndarray | None = None
    #: (N, H, W) uint8 labels of the written frames, gathered in the worker (one copy of
    #: the frames fewer on the GUI thread: 70 MB for 148 frames of 800 × 600)
    written_labels: np.ndarray | None = None

    def areas(self, spacing: tuple[float, float] | None) -> np.ndarray | None:
        """(N, 4) class areas of the written frames in mm² (pixels without spacing), as
        :func:`echo_napari.metrics.class_areas_mm2` gives them."""
        if self.pixel_areas is None:
            return None
        pixel_area = 1.0 if spacing is None else float(spacing[0]) * float(spacing[1])
        return self.pixel_areas * pixel_area


def _written(labels: np.ndarray, written: list[int]) -> dict[str, Any]:
    """Shape features and pixel counts of the written frames (worker thread)."""
    if not written:
        return {}
    from echo_napari.metrics import class_areas_mm2

    stack = labels[written]
    return {
        "shapes": shape_features(stack),
        "pixel_areas": class_areas_mm2(stack, None),
        "written_labels": stack,
    }


def default_backend_factory(name: str, device: str) -> Any:
    """Instantiate registration backend ``name`` on ``device`` with capped threads."""
    from echo_napari.registration.backends import get_backend

    kwargs: dict[str, Any] = {"threads": torch_threads_for_jobs()}
    if name == "dirnet":
        kwargs["chunk"] = CHUNK_PAIRS
    return get_backend(name, device=device, **kwargs)


def run_repair(
    frames: Any,
    labels: np.ndarray,
    keyframes: set[int],
    make_backend: Callable[[], Any],
    backend_name: str,
    fields: Any = None,
    fields_provenance: FrameProvenance | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    frame_time_ms: float | None = None,
) -> PropagationOutput:
    """The Repair job body (worker thread): re-draw the frames that fail the anatomical
    checks from the passing frames and the keyframes, by registration
    (:func:`echo_napari.registration.repair.repair_implausible_frames`).

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1] (numpy or dask)
    labels : (T, H, W) uint8, a copy of the session's labels
    keyframes : frames never re-drawn (the reviewer's)
    make_backend : builds the registration backend (only when ``fields`` is None)
    fields, fields_provenance : cached PairwiseFields of these frames and who made them
    frame_time_ms : ms between frames (the anatomical checks' window), or None
    """
    from echo_napari.registration.backends import propagated_provenance
    from echo_napari.registration.propagation import pairwise_fields
    from echo_napari.registration.repair import repair_implausible_frames

    reporter = stage_reporter(progress, cancel)
    provenance = fields_provenance or FrameProvenance(ProvenanceKind.PROPAGATED, backend_name)
    array = read_frames(frames)
    if fields is None:
        reporter("reading frames")(0, 1)
        backend = make_backend()
        provenance = propagated_provenance(backend, backend_name)
        fields = pairwise_fields(array, backend, progress=reporter("registering frame pairs"))
    reporter("re-drawing implausible frames")(0, 1)
    fix = repair_implausible_frames(
        array, labels, fields=fields, protected=keyframes, frame_time_ms=frame_time_ms
    )
    written = fix.repaired.tolist()
    return PropagationOutput(
        fields, fix, tuple(written), provenance, **_written(fix.labels, written)
    )


def run_propagation(
    frames: Any,
    keyframe_labels: dict[int, np.ndarray],
    make_backend: Callable[[], Any],
    backend_name: str,
    fields: Any = None,
    previous: Any = None,
    changed: tuple[int, ...] = (),
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> PropagationOutput:
    """The job body (runs in a worker thread; also callable directly in tests).

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1] (numpy or dask; read here, off the GUI thread)
    keyframe_labels : {frame: (H, W) uint8}
    make_backend : builds the registration backend (only when ``fields`` is None)
    fields : cached PairwiseFields (Re-propagate), or None to register all pairs
    previous : (PropagationResult, FrameProvenance) of the last run, for Re-propagate
    changed : frames whose keyframe labels changed since ``previous``
    progress : callable(stage, done, total)
    cancel : set it to stop at the next progress report (raises :class:`JobCancelled`)
    """
    from echo_napari.registration.backends import propagated_provenance
    from echo_napari.registration.propagation import (
        pairwise_fields,
        propagate_from_keyframes,
        update_after_keyframe_change,
    )

    reporter = stage_reporter(progress, cancel)
    provenance = FrameProvenance(ProvenanceKind.PROPAGATED, backend_name)
    if fields is None:
        array = read_frames(frames)
        reporter("reading frames")(0, 1)
        backend = make_backend()
        provenance = propagated_provenance(backend, backend_name)
        fields = pairwise_fields(array, backend, progress=reporter("registering frame pairs"))
    elif previous is not None:
        provenance = previous[1]
    n = fields.n_frames
    keys = set(keyframe_labels)
    if previous is None or not changed:
        result = propagate_from_keyframes(
            fields, keyframe_labels, progress=reporter("propagating")
        )
        written = [t for t in range(n) if t not in keys]
    else:
        result, written_set = previous[0], set()
        for frame in sorted(changed):
            result = update_after_keyframe_change(
                result, fields, keyframe_labels, int(frame), progress=reporter("re-propagating")
            )
            earlier = [k for k in keys if k < frame]
            later = [k for k in keys if k > frame]
            lo, hi = (max(earlier) if earlier else 0), (min(later) if later else n - 1)
            written_set.update(range(lo, hi + 1))
        written = sorted(written_set - keys)
    return PropagationOutput(
        fields, result, tuple(written), provenance, **_written(result.labels, written)
    )


class PropagatePanel(ProgressJobMixin, QGroupBox):
    """Propagate / Re-propagate controls with progress and Cancel.

    Parameters
    ----------
    dock : ReviewDock
        Provides the session and the bound labels layer.
    """

    JOB_TITLE = "Propagation"

    def __init__(self, dock: ReviewDock) -> None:
        super().__init__("Propagate keyframes (DIR)")
        from echo_napari.registration.backends import available_backends, default_device

        self.dock = dock
        self.session = dock.session
        self.backend_factory: Callable[[str, str], Any] = default_backend_factory
        self.worker: Any = None
        self._cancel = threading.Event()
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._propagated_keys: set[int] = set()
        self._pending: set[int] = set()
        self._last_progress = 0.0

        self.backend_combo = QComboBox()
        self.backend_combo.addItems(sorted(available_backends()))
        self.device_combo = QComboBox()
        self.device_combo.addItems(["cpu"] + (["cuda"] if default_device() == "cuda" else []))
        self.device_combo.setCurrentText(default_device())
        self.propagate_button = QPushButton("Propagate")
        self.propagate_button.setToolTip("Carry every keyframe's labels to all other frames")
        self.repropagate_button = QPushButton("Re-propagate")
        self.repropagate_button.setToolTip(
            "Update only the frames between the keyframes next to your corrections"
        )
        self.repair_button = QPushButton("Repair implausible")
        self.repair_button.setToolTip(
            "Re-draw the frames that fail the anatomical checks (collapsed, concave or "
            "shortened LV, LA on the wrong side) from the frames that pass, by registration; "
            "keyframes are kept"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Backend", self.backend_combo)
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        for b in (
            self.propagate_button,
            self.repropagate_button,
            self.repair_button,
            self.cancel_button,
        ):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)

        self.propagate_button.clicked.connect(self.propagate)
        self.repropagate_button.clicked.connect(self.repropagate)
        self.repair_button.clicked.connect(self.repair)
        self.cancel_button.clicked.connect(self.cancel)
        self.session.events.sequence.connect(self._on_new_sequence)
        self.session.events.provenance.connect(self._on_provenance)
        self.session.events.keyframes.connect(self._on_keyframes)
        self._update_buttons()

    # -- state ----------------------------------------------------------------------------
    @property
    def pending_changes(self) -> set[int]:
        """Frames corrected or (un)marked as keyframes since the last propagation."""
        return set(self._pending)

    def _on_new_sequence(self) -> None:
        self._pending.clear()
        self._propagated_keys = set()
        self._update_buttons()

    def _on_provenance(self, frames: np.ndarray) -> None:
        seq = self.session.sequence
        manual = {int(t) for t in frames if seq.provenance[int(t)].kind is ProvenanceKind.MANUAL}
        if manual and "propagation" in self.session.results:
            self._pending.update(manual)
            self._update_buttons()

    def _on_keyframes(self) -> None:
        if "propagation" in self.session.results:
            keys = set(self.session.sequence.keyframes)
            self._pending.update(keys ^ self._propagated_keys)
            self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        ready = self.session.is_loaded
        self.propagate_button.setEnabled(ready and not running)
        self.repair_button.setEnabled(ready and not running)
        self.repropagate_button.setEnabled(
            ready and not running and bool(self._pending) and "propagation" in self.session.results
        )
        self.cancel_button.setEnabled(running)

    def _keyframe_labels(self) -> dict[int, np.ndarray]:
        seq = self.session.sequence
        labels = self.session.labels
        keys = sorted(seq.keyframes)
        if not keys:
            keys = [k for k in (seq.ed_index, seq.es_index) if k is not None]
        usable = {k: labels[k].copy() for k in keys if labels[k].any()}
        if not usable:
            raise EchoNapariError(
                "no labelled keyframe: paint the LV on at least one frame (e.g. ED) first"
            )
        return usable

    # -- actions ----------------------------------------------------------------------------
    def propagate(self) -> None:
        """Register all frame pairs and propagate from every labelled keyframe."""
        self._start(full=True)

    def repair(self) -> None:
        """Re-draw the frames failing the anatomical checks from the passing ones."""
        from napari.qt.threading import create_worker

        if self.worker is not None or not self.session.is_loaded:
            return
        if not self.session.labels.any():
            notify_error("Repair: no labels yet (Predict, Propagate or paint first)")
            return
        name, device = self.backend_combo.currentText(), self.device_combo.currentText()
        cached = self.session.results
        previous = cached.get("propagation")
        self._cancel = threading.Event()
        worker = create_worker(
            run_repair,
            self.session.sequence.frames,
            self.session.labels.copy(),
            set(self.session.sequence.keyframes),
            lambda: self.backend_factory(name, device),
            name,
            fields=cached.get("fields"),
            fields_provenance=previous[1] if previous is not None else None,
            progress=self._relay.progress.emit,
            cancel=self._cancel,
            frame_time_ms=self.session.sequence.frame_time_ms,
            _start_thread=False,
            _ignore_errors=True,
        )
        self._job_sequence = self.session.sequence
        self._launch(worker, self._on_repaired)

    def repropagate(self) -> None:
        """Update only the frames between the keyframes next to the pending corrections."""
        if "propagation" not in self.session.results:
            notify_error("Nothing to update yet: press Propagate first.")
            return
        self._start(full=False)

    def _start(self, full: bool) -> None:
        from napari.qt.threading import create_worker

        if self.worker is not None or not self.session.is_loaded:
            return
        try:
            keyframe_labels = self._keyframe_labels()
        except EchoNapariError as error:
            notify_error(str(error))
            return
        name, device = self.backend_combo.currentText(), self.device_combo.currentText()
        cached = self.session.results
        self._cancel = threading.Event()
        worker = create_worker(
            run_propagation,
            self.session.sequence.frames,
            keyframe_labels,
            lambda: self.backend_factory(name, device),
            name,
            fields=None if full else cached.get("fields"),
            previous=None if full else cached.get("propagation"),
            changed=() if full else tuple(sorted(self._pending)),
            progress=self._relay.progress.emit,
            cancel=self._cancel,
            _start_thread=False,
            _ignore_errors=True,
        )
        self._job_sequence = self.session.sequence
        self._submitted_keys = set(keyframe_labels)
        self._submitted_pending = set(self._pending)
        self._launch(worker, self._on_returned)

    # -- worker callbacks (GUI thread) ------------------------------------------------------
    def _on_repaired(self, output: PropagationOutput) -> None:
        if not self.session.is_loaded or self.session.sequence is not self._job_sequence:
            self.status_label.setText("The layers changed while repairing; result discarded.")
            return
        self.session.set_result("fields", output.fields)
        fix, frames = output.result, list(output.frames)
        if not frames:
            text = (
                "Every frame passes the anatomical checks: nothing to repair."
                if fix.unrepaired.size == 0
                else "No frame passes the anatomical checks: nothing to carry from."
            )
            self.status_label.setText(text)
            return
        self._write(output)
        if self.dock.binding is not None:
            self.dock.binding.layer.refresh()
        self.status_label.setText(
            f"Repaired {len(frames)} frames: frames passing the anatomical checks "
            f"{100 * fix.plausible_before:.1f} % → {100 * fix.plausible_after:.1f} %. "
            "Check them (Next suspicious)."
        )
        notify_info_after_result(f"echo-napari: {len(frames)} implausible frames re-drawn")

    def _write(self, output: PropagationOutput) -> None:
        self.session.write_labels(
            output.frames,
            output.written_labels,
            output.provenance,
            shapes=output.shapes,
            areas=output.areas(self.session.sequence.spacing),
        )

    def _on_returned(self, output: PropagationOutput) -> None:
        if not self.session.is_loaded or self.session.sequence is not self._job_sequence:
            self.status_label.setText("The layers changed while propagating; result discarded.")
            return
        result = output.result
        frames = list(output.frames)
        if frames:
            self._write(output)
        self.session.set_result("fields", output.fields)
        self.session.set_result("propagation", (result, output.provenance))
        self.session.set_result("disagreement", np.asarray(result.disagreement, dtype=float))
        self._propagated_keys = set(self._submitted_keys)
        self._pending -= self._submitted_pending
        if self.dock.binding is not None:
            self.dock.binding.layer.refresh()
        self.status_label.setText(
            f"Propagated to {len(frames)} frames ({output.provenance.model})."
        )
        notify_info_after_result(f"echo-napari: labels propagated to {len(frames)} frames")
