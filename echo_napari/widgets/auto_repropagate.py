"""Optional automatic Re-propagate after each correction (debounced, in the job's worker).

A checkbox added to the Propagate panel. When on, each finished brush stroke (a frame
becoming a MANUAL keyframe) restarts a short timer; when strokes pause, the panel's
Re-propagate runs in its background worker and updates only the frames between the
keyframes next to the corrections. Undo/redo never trigger it (that would clear the redo
history). Each run is its own undo step ("propagate") after the stroke's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QCheckBox

from echo_napari.sequence import ProvenanceKind

if TYPE_CHECKING:
    from echo_napari.widgets.propagate_panel import PropagatePanel
    from echo_napari.widgets.review_dock import ReviewDock

#: Pause after the last stroke before re-propagating (ms).
DEFAULT_DELAY_MS = 800


class AutoRepropagate(QObject):
    """Re-propagate the gaps around corrections once the user pauses.

    Parameters
    ----------
    dock : ReviewDock
        Its ``propagate_panel`` runs the job; its ``link`` says when undo/redo redraw.
    panel : PropagatePanel
        Receives the checkbox in its layout.
    delay_ms : debounce after the last stroke
    """

    def __init__(
        self, dock: ReviewDock, panel: PropagatePanel, delay_ms: int = DEFAULT_DELAY_MS
    ) -> None:
        super().__init__(panel)
        self.dock = dock
        self.panel = panel
        self.runs = 0
        self.checkbox = QCheckBox("Auto re-propagate after each correction")
        self.checkbox.setToolTip(
            "After a brush stroke, update the frames between the neighbouring keyframes "
            "in the background (needs one Propagate first)"
        )
        panel.layout().addWidget(self.checkbox)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(int(delay_ms))
        self.timer.timeout.connect(self._fire)
        dock.session.events.provenance.connect(self._on_provenance)
        self.checkbox.toggled.connect(self._on_toggled)

    @property
    def enabled(self) -> bool:
        """Whether the checkbox is ticked."""
        return self.checkbox.isChecked()

    def _on_toggled(self, on: bool) -> None:
        if not on:
            self.timer.stop()

    def _on_provenance(self, frames: np.ndarray) -> None:
        if not self.enabled or self.dock.link.restoring or not self.dock.session.is_loaded:
            return
        provenance = self.dock.session.sequence.provenance
        if any(provenance[int(t)].kind is ProvenanceKind.MANUAL for t in frames):
            self.timer.start()

    def _fire(self) -> None:
        panel = self.panel
        if not self.enabled or not panel.pending_changes:
            return
        if "propagation" not in self.dock.session.results:
            panel.status_label.setText("Auto re-propagate waits for a first Propagate.")
            return
        if panel.worker is not None:  # a job runs: try again when the user pauses next
            self.timer.start()
            return
        self.runs += 1
        panel.repropagate()
