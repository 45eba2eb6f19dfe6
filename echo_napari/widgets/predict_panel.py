"""Predict the full cycle with the segmentation model, compare, and accept a frame range.

The prediction runs in a napari ``thread_worker`` (``predict_sequence`` with a progress
callback that also checks Cancel). It does not overwrite anything: it becomes the
session's second source (dashed curves, disagreement in the suspicion score) until the
user accepts it for a frame range, which writes it with PREDICTED provenance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from echo_napari.errors import EchoNapariError
from echo_napari.io.frame_source import read_frames
from echo_napari.metrics_plausibility import ShapeFeatures, shape_features
from echo_napari.sequence import MIRRORED_VIEW_KEY, FrameProvenance, ProvenanceKind
from echo_napari.widgets._jobs import (
    ProgressJobMixin,
    _Relay,
    stage_reporter,
    torch_threads_for_jobs,
)
from echo_napari.widgets._notify import notify_error, notify_info_after_result, notify_warning

if TYPE_CHECKING:
    from echo_napari.view_orientation import OrientationCheck
    from echo_napari.widgets.review_dock import ReviewDock

logger = logging.getLogger(__name__)


def prediction_available() -> bool:
    """True when the segmentation core (inference + model versions) is importable."""
    try:
        import echo_napari.segmentation.inference  # noqa: F401
        import echo_napari.segmentation.versions  # noqa: F401
    except ImportError as error:
        logger.info("prediction controls hidden: %s", error)
        return False
    return True


def default_model_factory(version: str, device: str) -> Any:
    """Load segmentation model ``version`` ("selected", "bundled", "seg_v2", ...)."""
    from echo_napari.segmentation.versions import load_model

    return load_model(version, device=device)


@dataclass
class PredictionOutput:
    """What a Predict job hands back to the GUI thread.

    Attributes
    ----------
    labels : (T, H, W) uint8 for every frame
    provenance : FrameProvenance recorded on the frames accepted from it
    moved : frames whose LV border the refinement moved (0 when it is off)
    shapes : the labels' shape features for the anatomical checks
    notes : how the clip was shown to the network
        (:func:`~echo_napari.segmentation.inference.framing_notes`)
    cleaned : what the post-processing changed
        (:func:`~echo_napari.segmentation.inference.postprocess_notes`)
    uncertainty : (T,) float64 the network's LV-border uncertainty
        (:mod:`echo_napari.uncertainty`), or None when it gave none
    orientation : which apical convention the clip looks like
        (:class:`~echo_napari.view_orientation.OrientationCheck`), or None when the
        check could not run
    probe_warning : the labels look upside down for an apical view
        (:func:`~echo_napari.probe_side.probe_side_warning`), or ""
    """

    labels: np.ndarray
    provenance: FrameProvenance
    moved: int
    shapes: ShapeFeatures
    notes: list[str]
    cleaned: list[str]
    uncertainty: np.ndarray | None = None
    orientation: OrientationCheck | None = None
    probe_warning: str = ""


def run_prediction(
    frames: Any,
    make_model: Callable[[], Any],
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    refine: bool = True,
    both_directions: bool = True,
    frame_time_ms: float | None = None,
    mirrored: bool = False,
    shape_prior: bool = True,
) -> PredictionOutput:
    """The job body: the prediction of every frame and what goes with it.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1] (numpy or dask; read here, off the GUI thread)
    make_model : builds the segmentation model
    progress : callable(stage, done, total)
    cancel : set it to stop after the current window or block of frames (raises
        :class:`JobCancelled`)
    refine : move the LV border to the image's blood/wall border
        (:mod:`echo_napari.segmentation.boundary`)
    both_directions : average the clip played forwards and backwards (the same network
        time as one direction: each pass's windows are staggered)
    frame_time_ms : ms between frames; a clip far from 50 frames/s is given to the
        network at 50 /s (:mod:`echo_napari.frame_rate`)
    mirrored : the clip shows the LV on the left (mirrored apical convention)
    shape_prior : last, redraw each frame as the bundled shape prior's plausible heart,
        the LV keeping its area (:mod:`echo_napari.segmentation.shape_prior`), then
        re-draw the frames on which the LV lost its apex from the frames either side
        (:mod:`echo_napari.registration.apex_restore`)
    """
    import torch

    from echo_napari.field_of_view import find_field_of_view
    from echo_napari.probe_side import probe_side_warning
    from echo_napari.segmentation.boundary import (
        moved_frames,
        refine_lv_boundary,
        refined_version,
    )
    from echo_napari.segmentation.inference import (
        framing_notes,
        postprocess_notes,
        predict_sequence,
    )
    from echo_napari.segmentation.plausible_shapes import draw_plausible_shapes
    from echo_napari.segmentation.shape_prior import shaped_version

    reporter = stage_reporter(progress, cancel)
    torch.set_num_threads(torch_threads_for_jobs())
    reporter("predicting")(0, 1)
    array = read_frames(frames)
    model = make_model()
    view = find_field_of_view(array)  # once, for the network, the border and the notes
    tally: dict[str, int] = {}
    uncertainty: list[float] = []
    labels = predict_sequence(
        array,
        model,
        progress=reporter("predicting"),
        refine=False,
        shape_prior=False,
        both_directions=both_directions,
        frame_time_ms=frame_time_ms,
        mirrored=mirrored,
        field_of_view=view,
        tally=tally,
        uncertainty=uncertainty,
    )
    moved = 0
    if refine:
        network = labels
        labels = refine_lv_boundary(
            array,
            network,
            progress=reporter("refining the LV border"),
            field_of_view=view,
        )
        moved = int(moved_frames(network, labels).sum())
    name = getattr(model, "name", "segmentation")
    version = getattr(model, "version", "")
    if refine:
        version = refined_version(version)
    # judged on the labels as drawn from the image: the prior must not hide it
    probe_warning = probe_side_warning(labels, view)
    if shape_prior:
        labels, restored = draw_plausible_shapes(
            array,
            labels,
            view,
            frame_time_ms,
            prior_progress=reporter("drawing plausible shapes"),
            apex_progress=reporter("restoring apex"),
        )
        version = shaped_version(version)
        tally["apex_restored"] = 0 if restored is None else int(restored.redrawn.size)
    provenance = FrameProvenance(ProvenanceKind.PREDICTED, name, version)
    labels = labels.astype(np.uint8)
    notes = framing_notes(array, frame_time_ms, mirrored, field_of_view=view)
    from echo_napari.view_orientation import check_orientation_or_none

    orientation = check_orientation_or_none(array, field_of_view=view)
    return PredictionOutput(
        labels,
        provenance,
        moved,
        shape_features(labels),  # here rather than on the GUI thread at Accept
        notes,
        postprocess_notes(tally),
        np.asarray(uncertainty, dtype=np.float64) if uncertainty else None,
        orientation,
        probe_warning,
    )


class PredictPanel(ProgressJobMixin, QGroupBox):
    """Predict full cycle (background), then Accept prediction for a frame range.

    Parameters
    ----------
    dock : ReviewDock
    """

    JOB_TITLE = "Prediction"

    def __init__(self, dock: ReviewDock) -> None:
        super().__init__("Predict full cycle (segmentation model)")
        from echo_napari.segmentation.versions import list_versions
        from echo_napari.segmentation.weights import resolve_device

        self.dock = dock
        self.session = dock.session
        self.model_factory: Callable[[str, str], Any] = default_model_factory
        self.worker: Any = None
        self._cancel = threading.Event()
        self._job_refine = True
        self._job_shape = True
        self._job_mirrored = False
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._last_progress = 0.0

        self.model_combo = QComboBox()
        self.model_combo.addItem("selected version", "selected")
        try:
            for version in list_versions():
                self.model_combo.addItem(version.label, version.id)
        except EchoNapariError as error:
            logger.info("no segmentation model versions listed: %s", error)
        self.device_combo = QComboBox()
        default = str(resolve_device(None))
        self.device_combo.addItems(["cpu"] + (["cuda"] if default.startswith("cuda") else []))
        self.device_combo.setCurrentText("cuda" if default.startswith("cuda") else "cpu")
        self.refine_check = QCheckBox("Refine LV border on the image")
        self.refine_check.setChecked(True)
        self.refine_check.setToolTip(
            "After the network, move each frame's LV cavity border to where the dark blood "
            "meets the bright wall, where the image shows that step more sharply "
            "(lowered the EF error on real echo videos), then smooth it without changing "
            "its area"
        )
        self.shape_check = QCheckBox("Plausible shapes")
        self.shape_check.setChecked(True)
        self.shape_check.setToolTip(
            "Last, redraw each frame with the bundled shape prior, a network that knows "
            "what a heart's outline looks like (not the image): a notch bitten out of the "
            "apex, a ventricle running into the atrium or an atrium drawn apart go. The "
            "LV keeps the area measured on the image; its length may change, and with it "
            "the EF, by 0-3 points on most real videos. Frames where the LV's tip jumps "
            "away from the probe and back (the apex lost in haze) are then re-drawn from "
            "the frames either side by registration"
        )
        self.directions_check = QCheckBox("Both directions")
        self.directions_check.setChecked(True)
        self.directions_check.setToolTip(
            "Run the network on the clip played forwards and backwards and average the two "
            "(each direction's windows staggered, so no slower than one direction; lowered "
            "the EF error on real echo videos)"
        )
        self.mirrored_check = QCheckBox("Mirrored view (LV on the left)")
        self.mirrored_check.setToolTip(
            "The clip uses the mirrored apical convention: LV on the left of the screen, RV "
            "on the right. The models know EchoNet's (LV on the right) and are given the "
            "clip mirrored back; the labels come back as the clip shows them"
        )
        self.predict_button = QPushButton("Predict")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.first_spin = QSpinBox()
        self.last_spin = QSpinBox()
        self.accept_button = QPushButton("Accept prediction")
        self.accept_button.setToolTip("Write the prediction into these frames (keyframes kept)")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        # offered when the view check disagrees with the Mirrored view setting
        self.view_button = QPushButton("")
        self.view_button.hide()

        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Device", self.device_combo)
        checks = QHBoxLayout()
        checks.addWidget(self.refine_check)
        checks.addWidget(self.shape_check)
        checks.addWidget(self.directions_check)
        checks.addWidget(self.mirrored_check)
        checks.addStretch(1)
        form.addRow(checks)
        run_row = QHBoxLayout()
        run_row.addWidget(self.predict_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.view_button)  # in the row: it adds no height when shown
        accept_row = QHBoxLayout()
        accept_row.addWidget(QLabel("frames"))
        accept_row.addWidget(self.first_spin)
        accept_row.addWidget(QLabel("to"))
        accept_row.addWidget(self.last_spin)
        accept_row.addWidget(self.accept_button, stretch=1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.progress_bar)
        layout.addLayout(accept_row)
        layout.addWidget(self.status_label)

        self.predict_button.clicked.connect(self.predict)
        self.cancel_button.clicked.connect(self.cancel)
        self.accept_button.clicked.connect(self.accept_range)
        self.view_button.clicked.connect(self.predict_other_view)
        self.session.events.sequence.connect(self._on_new_sequence)
        self._on_new_sequence()

    # -- state ----------------------------------------------------------------------------
    def _on_new_sequence(self) -> None:
        n = self.session.sequence.n_frames if self.session.is_loaded else 1
        for spin in (self.first_spin, self.last_spin):
            spin.setRange(0, n - 1)
        self.first_spin.setValue(0)
        self.last_spin.setValue(n - 1)
        self.view_button.hide()
        # a session remembers the view convention its frames were predicted in
        metadata = self.session.sequence.metadata if self.session.is_loaded else {}
        self.mirrored_check.setChecked(bool(metadata.get(MIRRORED_VIEW_KEY, False)))
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        ready = self.session.is_loaded
        self.predict_button.setEnabled(ready and not running)
        self.cancel_button.setEnabled(running)
        self.accept_button.setEnabled(
            ready and not running and self.session.second_source is not None
        )

    # -- actions ----------------------------------------------------------------------------
    def predict(self) -> None:
        """Segment every frame in the background; the result becomes the second source."""
        from napari.qt.threading import create_worker

        if self.worker is not None or not self.session.is_loaded:
            return
        version, device = self.model_combo.currentData(), self.device_combo.currentText()
        self._cancel = threading.Event()
        self._job_sequence = self.session.sequence
        self._job_refine = self.refine_check.isChecked()
        self._job_shape = self.shape_check.isChecked()
        self._job_mirrored = self.mirrored_check.isChecked()
        self.view_button.hide()
        # fine-tuning reads it, and a saved session keeps it
        self.session.sequence.metadata[MIRRORED_VIEW_KEY] = self.mirrored_check.isChecked()
        worker = create_worker(
            run_prediction,
            self.session.sequence.frames,
            lambda: self.model_factory(version, device),
            progress=self._relay.progress.emit,
            cancel=self._cancel,
            refine=self._job_refine,
            both_directions=self.directions_check.isChecked(),
            frame_time_ms=self.session.sequence.frame_time_ms,
            mirrored=self._job_mirrored,
            shape_prior=self._job_shape,
            _start_thread=False,
            _ignore_errors=True,
        )
        self._launch(worker, self._on_returned)

    def predict_other_view(self) -> None:
        """Flip the Mirrored view setting (as the view check suggests) and predict again."""
        self.mirrored_check.setChecked(not self._job_mirrored)
        self.predict()

    def cancel(self) -> None:
        """Stop the running prediction after its current window."""
        super().cancel()

    def accept_range(self) -> None:
        """Write the prediction into the chosen frames (keyframes keep their labels)."""
        first, last = self.first_spin.value(), self.last_spin.value()
        if first > last:
            notify_error(f"Accept prediction: first frame {first} is after last frame {last}.")
            return
        try:
            written = self.session.accept_second_source(first, last)
        except EchoNapariError as error:
            notify_error(str(error))
            return
        if self.dock.binding is not None:
            self.dock.binding.layer.refresh()
        message = f"Accepted the prediction on {written.size} frames."
        seq = self.session.sequence
        if written.size and (seq.ed_index is None or seq.es_index is None):
            # A video opened without phases: the accepted curve now shows them.
            self.dock.detect_phases()
            if seq.ed_index is not None and seq.es_index is not None:
                message += f" ED {seq.ed_index}, ES {seq.es_index} from the LV area curve."
        share = self.session.plausible_share() if written.size else None
        if share is not None and share < 1.0 and hasattr(self.dock, "propagate_panel"):
            message += (
                f" {100 * (1 - share):.1f} % of the labelled frames fail the anatomical checks:"
                " Propagate › Repair implausible re-draws them from the others."
            )
        self.status_label.setText(message)

    # -- worker callbacks (GUI thread) ------------------------------------------------------
    def _on_returned(self, output: PredictionOutput) -> None:
        labels, provenance = output.labels, output.provenance
        if not self.session.is_loaded or self.session.sequence is not self._job_sequence:
            self.status_label.setText("The layers changed while predicting; result discarded.")
            return
        try:
            self.session.set_second_source(
                labels, provenance, output.shapes, uncertainty=output.uncertainty
            )
        except EchoNapariError as error:
            notify_error(f"Prediction: {error}")
            return
        mean = float(np.mean(self.session.second_source.disagreement))
        refined = f"; LV border refined on {output.moved} frames" if self._job_refine else ""
        refined += "; shapes redrawn by the shape prior" if self._job_shape else ""
        shown = f" Shown to the network: {'; '.join(output.notes)}." if output.notes else ""
        shown += f" Post-processing: {'; '.join(output.cleaned)}." if output.cleaned else ""
        unsure = self.session.second_source.n_unsure()
        if unsure:
            shown += (
                f" The network was unsure of the LV border on {unsure} frame"
                f"{'' if unsure == 1 else 's'}: once accepted, Next suspicious visits them."
            )
        view = output.orientation.warning(self._job_mirrored) if output.orientation else ""
        if output.probe_warning:
            notify_warning(f"echo-napari: {output.probe_warning}")
        self.status_label.setText(
            (f"{output.probe_warning} " if output.probe_warning else "")
            + (f"{view} " if view else "")
            + f"Predicted {labels.shape[0]} frames ({provenance.model} {provenance.version}"
            f"{refined}); mean disagreement with the current labels {mean:.2f}.{shown} "
            "Dashed curves: prediction."
        )
        if view:
            state = "off" if self._job_mirrored else "on"
            self.view_button.setText(f"Predict with Mirrored view {state}")
            self.view_button.show()
            notify_warning(f"echo-napari: {view}")
            return
        if output.probe_warning:
            return
        notify_info_after_result(
            "echo-napari: prediction ready (dashed curves); accept it for a range"
        )
