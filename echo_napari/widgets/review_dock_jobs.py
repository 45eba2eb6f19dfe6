"""Job tabs of the review dock: Session now, Propagate / Predict once their cores load.

A mixin of :class:`~echo_napari.widgets.review_dock.ReviewDock` (kept apart to keep each
module short); it uses the dock's ``jobs_layout``. torch and the registration /
segmentation cores are imported in the background (:mod:`echo_napari.widgets.job_cores`);
reading ``propagate_panel`` / ``predict_panel`` before they arrive waits for them.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QSizePolicy, QTabWidget


class JobPanelsMixin:
    """The dock's job tabs (see the module docstring)."""

    jobs_layout: Any

    def _add_job_panels(self) -> None:
        """The Session tab now; the Propagate / Predict tabs once their cores are imported
        in the background (:mod:`echo_napari.widgets.job_cores`), when installed."""
        from echo_napari.widgets.job_cores import CORE_MODULES, EXTRA_MODULES, CoreLoader
        from echo_napari.widgets.session_panel import SessionPanel

        # One panel at a time: tabs keep the area curve tall.
        self.jobs_tabs = QTabWidget()
        self.session_panel = SessionPanel(self)
        self._add_job_tab(self.session_panel, "Session")
        self._loading_tab = QLabel("Loading the registration and segmentation models…")
        index = self.jobs_tabs.addTab(self._loading_tab, "Propagate · Predict")
        self.jobs_tabs.setTabEnabled(index, False)
        self.jobs_tabs.setTabToolTip(index, self._loading_tab.text())
        self.jobs_tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.jobs_layout.addWidget(self.jobs_tabs)
        self._job_panels_built = False
        self._cores = CoreLoader(CORE_MODULES, EXTRA_MODULES, parent=self)
        self._cores.loaded.connect(self._build_job_panels)
        # Started from the event loop, so after the dock is built and bound: the import
        # thread would otherwise share the GIL with them (the GUI thread held 0.65 s, not
        # 0.16 s). Two turns later, after the summary and the suspicion strip the binding
        # leaves for the next turn (their anatomical checks sharing the GIL with the import
        # stalled the event loop 345–377 ms).
        QTimer.singleShot(0, self._start_cores_next_turn)

    def _start_cores_next_turn(self) -> None:
        QTimer.singleShot(0, self._cores.start)

    def _add_job_tab(self, panel: Any, name: str) -> None:
        index = self.jobs_tabs.addTab(panel, name)
        self.jobs_tabs.setTabToolTip(index, panel.title())
        panel.setTitle("")  # the tab names it
        panel.setFlat(True)

    def _build_job_panels(self) -> None:
        """Add the Propagate / Predict panels whose cores imported (once; waits for the
        background import when called before it finished)."""
        if self._job_panels_built:
            return
        self._job_panels_built = True
        self._cores.wait()
        self.jobs_tabs.removeTab(self.jobs_tabs.indexOf(self._loading_tab))
        self._loading_tab.deleteLater()
        if self._cores.available.get("propagate"):
            from echo_napari.widgets.auto_repropagate import AutoRepropagate
            from echo_napari.widgets.propagate_panel import PropagatePanel

            self._propagate_panel = PropagatePanel(self)
            self._auto_repropagate = AutoRepropagate(self, self._propagate_panel)
            self._add_job_tab(self._propagate_panel, "Propagate")
        if self._cores.available.get("predict"):
            from echo_napari.widgets.predict_panel import PredictPanel

            self._predict_panel = PredictPanel(self)
            self._add_job_tab(self._predict_panel, "Predict")

    def _job_panel(self, name: str, what: str) -> Any:
        self._build_job_panels()
        panel = self.__dict__.get(name)
        if panel is None:
            raise AttributeError(f"{name[1:]}: {what} is not installed")
        return panel

    @property
    def propagate_panel(self) -> Any:
        """The Propagate panel (AttributeError when the registration core is missing)."""
        return self._job_panel("_propagate_panel", "the registration core")

    @property
    def auto_repropagate(self) -> Any:
        """Auto re-propagation after each correction (with the Propagate panel)."""
        return self._job_panel("_auto_repropagate", "the registration core")

    @property
    def predict_panel(self) -> Any:
        """The Predict panel (AttributeError when the segmentation core is missing)."""
        return self._job_panel("_predict_panel", "the segmentation core")
