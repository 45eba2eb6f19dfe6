"""Background import of what the review dock's Propagate and Predict panels need.

torch and the registration / segmentation cores take ~1.3 s to import on a laptop CPU;
imported as the dock was built, that froze the viewer for as long. :class:`CoreLoader`
imports them in a thread, so the dock opens at once and those two tabs appear when it is
done (reading ``dock.propagate_panel`` earlier waits for the rest of the import).
"""

from __future__ import annotations

import importlib
import logging
import threading

from qtpy.QtCore import QObject, Signal

logger = logging.getLogger(__name__)

#: The core modules each optional panel needs (a panel is hidden when they do not import).
CORE_MODULES: dict[str, tuple[str, ...]] = {
    "propagate": ("echo_napari.registration.backends", "echo_napari.registration.propagation"),
    "predict": ("echo_napari.segmentation.inference", "echo_napari.segmentation.versions"),
}
#: Imported too, for the first use of a button (scipy.signal for Detect ED/ES: ~0.5 s).
EXTRA_MODULES: tuple[str, ...] = ("echo_napari.metrics_ef",)


class CoreLoader(QObject):
    """Imports :data:`CORE_MODULES` and :data:`EXTRA_MODULES` in a daemon thread
    (:meth:`start`).

    Signals
    -------
    loaded()
        Emitted (queued to the GUI thread) once every import was tried.

    Attributes
    ----------
    available : {panel name: bool}, filled by the thread before ``loaded``
    """

    loaded = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available: dict[str, bool] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start importing, once (connect to ``loaded`` first: with everything already
        imported the thread is done at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="echo-cores", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            for panel, modules in CORE_MODULES.items():
                try:
                    for name in modules:
                        importlib.import_module(name)
                except Exception as error:  # noqa: BLE001 - any failure hides the panel
                    logger.info("%s controls hidden: %s", panel, error)
                    self.available[panel] = False
                else:
                    self.available[panel] = True
            for name in EXTRA_MODULES:
                try:
                    importlib.import_module(name)
                except ImportError:  # an optional part not installed: its button says so
                    logger.debug("not prewarmed: %s", name)
        finally:
            self._done.set()
            try:
                self.loaded.emit()
            except RuntimeError:  # the dock was closed meanwhile
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every import was tried (starting them if not yet started); True
        unless ``timeout`` (s) ran out."""
        self.start()
        return self._done.wait(timeout)
