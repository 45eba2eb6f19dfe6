"""The echo review dock: choose layers, watch the live area curve, mark keyframes, ED/ES.

Thin: it validates the user's choices, builds an :class:`EchoSequence` from the layers,
hands it to a :class:`ReviewSession` and redraws on the session's events. Every bound pair
of layers has a session store (:class:`~echo_napari.widgets.session_link.SessionLink`):
untitled until saved, or the one a session file was opened with; the Session tab
(:mod:`echo_napari.widgets.session_panel`) saves, opens, undoes and exports it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from echo_napari.errors import EchoNapariError
from echo_napari.review_session import ReviewSession
from echo_napari.widgets._notify import notify_error, notify_warning
from echo_napari.widgets.area_curve import AreaCurveWidget
from echo_napari.widgets.layer_binding import FACTS_KEY, LabelsLayerBinding, sequence_from_layers
from echo_napari.widgets.review_dock_jobs import JobPanelsMixin
from echo_napari.widgets.review_dock_session import SessionDockMixin
from echo_napari.widgets.session_link import SessionLink

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

NONE_CHOICE = "—"

#: Viewer key bindings installed while the dock lives: key -> (method name, help).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "Shift-Right": ("go_to_next_keyframe", "next keyframe"),
    "Shift-Left": ("go_to_previous_keyframe", "previous keyframe"),
    "K": ("toggle_keyframe_here", "mark/unmark keyframe"),
    "S": ("go_to_next_suspicious", "next suspicious frame"),
    "A": ("accept_frame_here", "accept frame (manual keyframe)"),
    # napari keeps Ctrl-Z / Ctrl-Shift-Z for brush strokes in the Labels layer and Ctrl-Y
    # for 2D/3D: the session's undo/redo (all our operations) goes on Alt.
    "Alt-Z": ("undo", "undo (session)"),
    "Alt-Shift-Z": ("redo", "redo (session)"),
}


class ReviewDock(JobPanelsMixin, SessionDockMixin, QWidget):
    """Dock widget: layer choice, live area curve, provenance strip, keyframes, ED/ES.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Injected by napari when the dock is opened from the Plugins menu.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = ReviewSession()
        self.link = SessionLink(self.session, self)
        self.link.restored.connect(self._on_restored)
        self.link.changed.connect(self._on_store_changed)
        self.binding: LabelsLayerBinding | None = None
        # the frame Next suspicious last went to: pressed again there, it goes on down the
        # ranking; pressed anywhere else, it starts from the most suspicious frame
        self._last_suspicious: int | None = None
        self._refresh_commit_timer = QTimer(self)
        self._refresh_commit_timer.setSingleShot(True)
        self._refresh_commit_timer.setInterval(0)
        self._refresh_commit_timer.timeout.connect(self._commit_refreshed_frame)
        self._updating_combos = False
        self._ensure_labels_timer = QTimer(self)
        self._ensure_labels_timer.setSingleShot(True)
        self._ensure_labels_timer.setInterval(0)
        self._ensure_labels_timer.timeout.connect(self._ensure_labels)
        # EF needs two Simpson volumes (~10 ms): recompute once edits pause, not per stroke.
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(150)
        self._summary_timer.timeout.connect(self._update_info)
        self._info_timer = QTimer(self)
        self._info_timer.setSingleShot(True)
        self._info_timer.setInterval(0)
        self._info_timer.timeout.connect(self._update_info)
        # The clip's beat-by-beat EF (what the command line reports), in a worker.
        from echo_napari.widgets.beat_ef import BeatEFJob

        self.beat_ef = BeatEFJob(self._clip_for_beats, self)
        self.beat_ef.ready.connect(self._render_info)
        # Started only after a longer pause: its per-frame Python holds the GIL for ~25 ms
        # (128 frames of 112 × 112), which would make an undo's repaint 10-20 ms later.
        self._beats_timer = QTimer(self)
        self._beats_timer.setSingleShot(True)
        self._beats_timer.setInterval(500)
        self._beats_timer.timeout.connect(self.beat_ef.request)
        self._info_parts: tuple[list[str], list[str]] = ([], [])
        self._beats_stale = True

        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.new_labels_button = QPushButton("New labels layer")
        self.new_labels_button.setToolTip("Add an empty labels layer over the echo layer")
        form = QFormLayout()
        form.addRow("Echo layer", self.image_combo)
        row = QHBoxLayout()
        row.addWidget(self.labels_combo, stretch=1)
        row.addWidget(self.new_labels_button)
        form.addRow("Labels layer", row)

        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.frame_label = QLabel()
        self.frame_label.setWordWrap(True)  # the implausibility reasons can be long
        self.curve = AreaCurveWidget()
        self.curve.set_session(self.session)

        self.prev_key_button = QPushButton("◀ keyframe")
        self.toggle_key_button = QPushButton("Mark keyframe")
        self.next_key_button = QPushButton("keyframe ▶")
        self.set_ed_button = QPushButton("Set ED here")
        self.set_es_button = QPushButton("Set ES here")
        self.detect_phases_button = QPushButton("Detect ED/ES")
        self.detect_phases_button.setToolTip("ED = largest, ES = smallest LV cavity area")
        self.suspicious_button = QPushButton("Next suspicious ▶")
        self.suspicious_button.setToolTip(
            "Jump to the next most implausible frame (area-curve spikes, propagation "
            "disagreement, collapsed, concave or shortened LV cavity, LA on the wrong side, an "
            "accepted prediction the network was unsure of), most suspicious first; "
            "pressed again where it went, the next one down"
        )
        keys = QHBoxLayout()
        for b in (self.prev_key_button, self.toggle_key_button, self.next_key_button):
            keys.addWidget(b)
        phases = QHBoxLayout()
        phases.addWidget(self.set_ed_button)
        phases.addWidget(self.set_es_button)
        phases.addWidget(self.detect_phases_button)
        phases.addWidget(self.suspicious_button)
        self.keyframes_label = QLabel()
        self.keyframes_label.setWordWrap(True)
        shortcuts = ", ".join(f"{k}: {h}" for k, (_, h) in SHORTCUTS.items())
        self.keyframes_label.setToolTip(f"Shortcuts: {shortcuts}")

        review_box = QGroupBox("Keyframes and phases")
        review_layout = QVBoxLayout(review_box)
        review_layout.addLayout(keys)
        review_layout.addLayout(phases)
        review_layout.addWidget(self.keyframes_label)

        self.jobs_layout = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info_label)
        layout.addWidget(self.frame_label)
        layout.addWidget(self.curve, stretch=1)
        layout.addWidget(review_box)
        layout.addLayout(self.jobs_layout)
        self._add_job_panels()

        self.image_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.labels_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.new_labels_button.clicked.connect(self._on_new_labels)
        self.prev_key_button.clicked.connect(self.go_to_previous_keyframe)
        self.next_key_button.clicked.connect(self.go_to_next_keyframe)
        self.toggle_key_button.clicked.connect(self.toggle_keyframe_here)
        self.set_ed_button.clicked.connect(lambda: self._set_phase_here("ed"))
        self.set_es_button.clicked.connect(lambda: self._set_phase_here("es"))
        self.detect_phases_button.clicked.connect(self.detect_phases)
        self.suspicious_button.clicked.connect(self.go_to_next_suspicious)
        self.curve.frame_requested.connect(self.go_to_frame)

        ev = self.session.events
        ev.sequence.connect(self._on_sequence)
        ev.keyframes.connect(self._on_keyframes)
        ev.phases.connect(self._on_phases)
        ev.provenance.connect(self._on_provenance)
        ev.areas.connect(self._on_areas)

        layers_ev = self.viewer.layers.events
        layers_ev.inserted.connect(self._refresh_layer_choices)
        layers_ev.removed.connect(self._refresh_layer_choices)
        layers_ev.reordered.connect(self._refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(self._on_step)
        for key, (method, _) in SHORTCUTS.items():
            self.viewer.bind_key(key, self._shortcut(method), overwrite=True)
        self.destroyed.connect(self._teardown)
        # napari's close and dock removal may leave this Python object alive: stop the
        # autosave thread from callbacks that do not need it
        link = self.link
        self.destroyed.connect(lambda *_: link.shutdown())

        self._refresh_layer_choices()

    # -- layers ---------------------------------------------------------------------------
    @property
    def image_layer(self) -> Any | None:
        """The chosen echo (Image) layer, or None."""
        return self._layer_named(self.image_combo.currentText(), "image")

    @property
    def labels_layer(self) -> Any | None:
        """The chosen Labels layer, or None."""
        return self._layer_named(self.labels_combo.currentText(), "labels")

    def _layer_named(self, name: str, kind: str) -> Any | None:
        from napari.layers import Image, Labels

        cls = Image if kind == "image" else Labels
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], cls):
            return self.viewer.layers[name]
        return None

    def _refresh_layer_choices(self, event: Any = None) -> None:
        from napari.layers import Image, Labels

        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim == 3]
        labels = [ly.name for ly in self.viewer.layers if isinstance(ly, Labels)]
        self._updating_combos = True
        try:
            for combo, names in ((self.image_combo, images), (self.labels_combo, labels)):
                current = combo.currentText()
                combo.clear()
                combo.addItems(names or [NONE_CHOICE])
                if current in names:
                    combo.setCurrentText(current)
            image, chosen = self.image_layer, self.labels_layer
            if image is not None and (chosen is None or chosen.data.shape != image.data.shape):
                matching = [
                    n for n in labels if self.viewer.layers[n].data.shape == image.data.shape
                ]
                if matching:
                    self.labels_combo.setCurrentText(matching[0])
            inserted = getattr(event, "value", None)
            if isinstance(inserted, Labels) and self._session_handle(inserted) is not None:
                self._choose_session_layers(inserted)
        finally:
            self._updating_combos = False
        self._on_choice_changed()

    def _on_new_labels(self) -> None:
        image = self.image_layer
        if image is None:
            notify_error("Open an echo sequence first (File > Open, or File > Open Sample).")
            return
        self._add_empty_labels(image)

    def _ensure_labels(self) -> None:
        image = self.image_layer
        if image is not None and self.labels_layer is None:
            self._add_empty_labels(image)

    def _add_empty_labels(self, image: Any) -> Any:
        from echo_napari.napari_hooks import LABEL_COLORMAP

        layer = self.viewer.add_labels(
            np.zeros(tuple(image.data.shape), dtype=np.uint8),
            name=f"{image.name} labels",
            scale=image.scale,
            translate=image.translate,
            colormap=LABEL_COLORMAP,
            opacity=0.5,
            metadata={FACTS_KEY: dict(image.metadata.get(FACTS_KEY) or {})},
        )
        self.labels_combo.setCurrentText(layer.name)
        return layer

    def _on_choice_changed(self, *_: Any) -> None:
        if self._updating_combos:
            return
        image = self.image_layer
        labels_layer = self.labels_layer
        if (
            self.binding is not None
            and self.binding.layer == labels_layer
            and self.session.is_loaded
            and self.session.sequence.frames is getattr(image, "data", None)
        ):
            return
        self._unbind()
        if image is None:
            self.info_label.setText(
                "Open an echo sequence (File > Open, or File > Open Sample > echo-napari)."
            )
            return
        if labels_layer is None:
            # A reader adds its layers one by one: wait for the event loop before deciding
            # that the sequence came without labels.
            self._ensure_labels_timer.start()
            return
        try:
            self._bind(image, labels_layer)
        except EchoNapariError as err:
            notify_error(str(err))
            self.info_label.setText(str(err))

    def _bind(self, image: Any, labels_layer: Any) -> None:
        if tuple(labels_layer.data.shape) != tuple(image.data.shape):
            raise EchoNapariError(
                f"labels layer '{labels_layer.name}' has shape {tuple(labels_layer.data.shape)}"
                f" but echo layer '{image.name}' has {tuple(image.data.shape)}; choose a "
                "matching labels layer or press 'New labels layer'"
            )
        data = labels_layer.data
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            values = np.asarray(data)
            if values.size and (values.min() < 0 or values.max() > 255):
                raise EchoNapariError(
                    f"labels layer '{labels_layer.name}' holds values "
                    f"{values.min()}..{values.max()}; expected classes 0..3"
                )
            notify_warning(f"labels layer '{labels_layer.name}' converted to uint8 classes")
            labels_layer.data = values.astype(np.uint8)
        store = self._adoptable_store(image, labels_layer)
        if store is not None:
            self.session.load(store.sequence)
            self.link.attach(store, untitled=False)
        else:
            sequence = sequence_from_layers(
                image, labels_layer.data, labels_layer.metadata.get(FACTS_KEY)
            )
            self.session.load(sequence)
            self.link.attach_untitled()
        self.binding = LabelsLayerBinding(self.viewer, labels_layer, self.session)
        labels_layer.events.set_data.connect(self._on_layer_refreshed)
        self._on_store_changed()
        self._on_step()

    def _unbind(self) -> None:
        if self.binding is not None:
            self._summary_timer.stop()
            self._store_facts()
            self.binding.disconnect()
            self.binding.layer.events.set_data.disconnect(self._on_layer_refreshed)
            self.binding = None
        self.link.detach()

    # -- frame navigation ----------------------------------------------------------------
    @property
    def current_frame(self) -> int:
        """The frame under napari's time slider (0 when nothing is bound)."""
        return self.binding.current_frame() if self.binding is not None else 0

    def go_to_frame(self, frame: int) -> None:
        """Move napari's time slider (and so the curve cursor) to ``frame``."""
        if self.binding is not None:
            self.binding.go_to_frame(int(frame))

    def go_to_next_keyframe(self, *_: Any) -> None:
        """Jump to the next keyframe after the current frame."""
        self._jump(self.session.next_keyframe, "after")

    def go_to_previous_keyframe(self, *_: Any) -> None:
        """Jump to the previous keyframe before the current frame."""
        self._jump(self.session.previous_keyframe, "before")

    def _jump(self, finder: Any, where: str) -> None:
        if not self.session.is_loaded:
            return
        target = finder(self.current_frame)
        if target is None:
            self.frame_label.setText(f"No keyframe {where} frame {self.current_frame}.")
            return
        self.go_to_frame(target)

    def toggle_keyframe_here(self, *_: Any) -> None:
        """Mark or unmark the current frame as a keyframe."""
        if self.session.is_loaded:
            self.session.toggle_keyframe(self.current_frame)

    def go_to_next_suspicious(self, *_: Any) -> None:
        """Jump to the most suspicious frame; pressed again on the frame it went to, to
        the next one down the ranking."""
        if not self.session.is_loaded:
            return
        ranking = self.session.suspicious_frames()
        if not ranking:
            self.frame_label.setText(
                "No suspicious frame: the curves are smooth and the shapes plausible."
            )
            return
        current = self.current_frame
        going_on = current == self._last_suspicious and current in ranking
        position = ranking.index(current) + 1 if going_on else 0
        self._last_suspicious = ranking[position % len(ranking)]
        self.go_to_frame(self._last_suspicious)
        self._update_frame_label()

    def detect_phases(self, *_: Any) -> None:
        """Set ED/ES from the LV cavity area curve (the user may override them after)."""
        if not self.session.is_loaded:
            return
        try:
            self.session.detect_phases()
        except EchoNapariError as error:
            notify_error(str(error))

    def _set_phase_here(self, phase: str) -> None:
        if self.session.is_loaded:
            self.session.set_phase(phase, self.current_frame)

    def _shortcut(self, method: str) -> Any:
        def handler(viewer: Any) -> None:
            getattr(self, method)()

        handler.__doc__ = dict(SHORTCUTS.values())[method]
        return handler

    # -- display ---------------------------------------------------------------------------
    def _on_step(self, event: Any = None) -> None:
        if self.binding is None:
            return
        frame = self.current_frame
        self.curve.set_current_frame(frame)
        self._update_frame_label()

    # Edits arrive per brush stroke: update the cheap labels now and leave EF (two Simpson
    # volumes) and the metadata mirror to the debounce timer, off the stroke's path.
    def _on_areas(self, frames: np.ndarray) -> None:
        self._beats_stale = True
        self._summary_timer.start()

    def _on_sequence(self) -> None:
        self.beat_ef.reset()
        self._beats_stale = True
        # On the next event-loop turn, as the suspicion strip: the summary runs the
        # anatomical checks of every frame, which would otherwise add to the dock's opening.
        self._info_timer.start()

    def _clip_for_beats(self) -> Any:
        from echo_napari.sequence import LabelClass
        from echo_napari.widgets.beat_ef import clip_for_beats

        if not self.session.is_loaded:
            return None
        seq = self.session.sequence
        lv = self.session.areas[:, int(LabelClass.LV_CAVITY)]
        return clip_for_beats(seq.labels, seq.spacing, lv, seq.frame_time_ms)

    def _on_phases(self) -> None:
        # An undo/redo restores the phases with every frame: its summary (plausibility of
        # all frames, EF: ~45 ms at 600²) waits for the timer, after the canvas repaint.
        if self.link.restoring:
            self._summary_timer.start()
        else:
            self._update_info()

    def _on_provenance(self, frames: np.ndarray) -> None:
        self._update_frame_label()
        self._summary_timer.start()

    def _on_keyframes(self) -> None:
        self._update_keyframes_label()
        self._update_frame_label()
        self._summary_timer.start()

    def _update_keyframes_label(self) -> None:
        keys = self.session.sorted_keyframes()
        self.keyframes_label.setText(
            "Keyframes: " + (", ".join(map(str, keys)) if keys else "none (paint a frame)")
        )

    def _update_frame_label(self) -> None:
        if not self.session.is_loaded:
            self.frame_label.setText("")
            return
        frame = self.current_frame
        seq = self.session.sequence
        areas = self.session.areas[frame]
        unit = self.session.area_unit
        kind = seq.provenance[frame].kind.value
        key = " · keyframe" if frame in seq.keyframes else ""
        nbsp = "\u00a0"  # the label wraps: a value never parts from its unit
        reasons = "".join(f" · {r}" for r in self.session.implausibility_reasons(frame))
        if kind == "predicted" and not areas[1:].any():
            # predict_sequence leaves a frame empty when the model found no heart on it, or
            # an LV only away from where it is on the frames around it
            reasons += (
                " · no heart found here, or none where the LV is on the frames around it"
                " (probe off the chest, or the view changed?)"
            )
        self.frame_label.setText(
            f"Frame {frame}/{seq.n_frames - 1} ({kind}{key}): LV {areas[1]:.1f}{nbsp}{unit}, "
            f"myocardium {areas[2]:.1f}{nbsp}{unit}, LA {areas[3]:.1f}{nbsp}{unit}{reasons}"
        )
        self.toggle_key_button.setText("Unmark keyframe" if key else "Mark keyframe")

    def _update_info(self, *_: Any) -> None:
        if not self.session.is_loaded:
            return
        seq = self.session.sequence
        spacing = (
            "spacing unknown (pixels)"
            if seq.spacing is None
            else f"{seq.spacing[0]:.3g}×{seq.spacing[1]:.3g} mm/px"
        )
        ef = self.session.reference_ef()
        parts = [
            f"{seq.n_frames} frames, {spacing}",
            f"ED {seq.ed_index if seq.ed_index is not None else '?'}",
            f"ES {seq.es_index if seq.es_index is not None else '?'}",
        ]
        if seq.frame_time_ms:
            parts.append(f"{seq.fps:.0f} fps")
        ours = self.session.ejection_fraction()
        if ours is not None:
            parts.append(f"EF {ours:.1f} % (labels, Simpson)")
        before_beats, parts = parts, []
        if ef is not None:
            parts.append(f"reference EF {ef:.1f} %")
        share = self.session.plausible_share()
        if share is not None and share < 1.0:
            # one decimal, never shown as 100 % while a frame still fails
            shown = min(100.0 * share, 99.9)
            parts.append(f"shapes plausible on {shown:.1f} % of labelled frames")
        smooth = self.session.lv_smoothness()
        if smooth is not None:
            unit = "1/s³" if seq.frame_time_ms else "1/frame³"
            parts.append(f"LV smoothness {smooth:.3g} {unit}")
        self._info_parts = (before_beats, parts)
        self._render_info()
        self._update_keyframes_label()
        self._update_frame_label()
        self._store_facts()
        if self._beats_stale:
            self._beats_stale = False
            self._beats_timer.start()

    def _render_info(self, *_: Any) -> None:
        # The beat EF arrives from its worker later: only the text is redrawn then.
        before, after = self._info_parts
        beats = [self.beat_ef.text] if self.beat_ef.text else []
        self.info_label.setText(" · ".join(before + beats + after))

    def _store_facts(self) -> None:
        """Mirror keyframes, ED/ES and provenance into the labels layer's metadata."""
        if self.binding is None:
            return
        from echo_napari.sequence_facts import sequence_facts

        self.binding.layer.metadata[FACTS_KEY] = sequence_facts(self.session.sequence)

    def _teardown(self, *_: Any) -> None:
        self._unbind()
        for key in SHORTCUTS:
            try:
                self.viewer.bind_key(key, None, overwrite=True)
            except (KeyError, ValueError, TypeError):
                logger.debug("could not unbind %s", key)
