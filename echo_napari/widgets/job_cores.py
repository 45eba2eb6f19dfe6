"""Background import of the modules behind a dock's model-driven controls.

torch and the registration / segmentation / M-mode cores take 1.2-1.5 s to import on a
laptop CPU; imported as a dock was built, that froze the viewer for as long.
:class:`CoreLoader` imports a dock's list of modules in a thread, so the dock opens at once.
The review dock adds its Propagate / Predict tabs when it is done (reading
``dock.propagate_panel`` earlier waits for the rest of the import); the Training,
Registration debugger and M-mode docks keep the controls that need the cores disabled behind
a :class:`CoreGate` ("Loading …") until then, and offer ``wait_until_ready``
(:class:`WaitsForCores`).
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import QApplication, QLabel, QWidget

from echo_napari.widgets.library_preload import preload_torch_libraries

logger = logging.getLogger(__name__)

#: The core modules each optional panel of the review dock needs (a panel is hidden when
#: they do not import).
CORE_MODULES: dict[str, tuple[str, ...]] = {
    "propagate": ("echo_napari.registration.backends", "echo_napari.registration.propagation"),
    "predict": ("echo_napari.segmentation.inference", "echo_napari.segmentation.versions"),
}
#: Imported too, for the first use of a button (scipy.signal for Detect ED/ES: ~0.5 s).
EXTRA_MODULES: tuple[str, ...] = ("echo_napari.metrics_ef",)


class CoreLoader(QObject):
    """Imports groups of modules, then optional extra ones, in a daemon thread
    (:meth:`start`).

    Parameters
    ----------
    groups : {group name: module names}; a group is available when all its modules import
    extra : modules imported last for a faster first use; a failure is only logged
    parent : Qt parent (the dock)

    Signals
    -------
    loaded()
        Emitted (queued to the GUI thread) once every import was tried.

    Attributes
    ----------
    available : {group name: bool}, filled by the thread before ``loaded``
    errors : {group name: message} of the groups that did not import
    """

    loaded = Signal()

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        extra: Sequence[str] = (),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.groups = groups
        self.extra = tuple(extra)
        self.available: dict[str, bool] = {}
        self.errors: dict[str, str] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start importing, once (connect to ``loaded`` first: with everything already
        imported the thread is done at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="echo-cores", daemon=True)
            self._thread.start()

    def start_after_paint(self, widget: QWidget, fallback_ms: int = 1000) -> None:
        """:meth:`start` once ``widget`` was first painted (or after ``fallback_ms`` when it
        is not shown): started earlier, the import thread shares the GIL with the dock's
        first layout and paint, and the event loop stalled 0.34-0.5 s instead of ~0.2 s."""
        widget.installEventFilter(self)
        QTimer.singleShot(fallback_ms, self.start)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's
        """Start on the watched widget's first paint, from the event loop (after it)."""
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.start)
        return False

    def _load(self) -> None:
        # napari's own objects are left out of the collections the import triggers (they
        # walked them all, ~0.3 s of the import), and torch's libraries are loaded
        # without the GIL (:mod:`.library_preload`: the import held it ~160 ms).
        gc.freeze()
        preload_torch_libraries()
        try:
            for group, modules in self.groups.items():
                try:
                    for name in modules:
                        importlib.import_module(name)
                except Exception as error:  # noqa: BLE001 - any failure disables the group
                    logger.info("%s controls unavailable: %s", group, error)
                    self.available[group] = False
                    self.errors[group] = f"{type(error).__name__}: {error}"
                else:
                    self.available[group] = True
            for name in self.extra:
                try:
                    importlib.import_module(name)
                except ImportError:  # an optional part not installed: its button says so
                    logger.debug("not prewarmed: %s", name)
            # napari, torch and the cores leave ~460 k long-lived objects that every full
            # garbage collection walks, holding the GIL for 200-280 ms: one landing while
            # a job ran stalled the event loop that long (Predict on a lazily opened
            # cine, ``benchmarks/gui_latency.py``). Frozen, they are left out of the
            # collections; modules and classes live as long as the process anyway.
            gc.freeze()
        finally:
            try:
                self.loaded.emit()
            except RuntimeError:  # the dock was closed meanwhile
                pass
            # Set after emitting: a GUI thread woken from wait() may delete the dock (and
            # this object) at once, which crashed an emit still under way.
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every import was tried (starting them if not yet started); True
        unless ``timeout`` (s) ran out."""
        self.start()
        return self._done.wait(timeout)


class CoreGate(QObject):
    """Keeps a dock's ``controls`` disabled, with "Loading ``what``…" in ``hint``, until
    ``modules`` are imported in the background; then runs ``on_ready`` and enables them.

    The import starts once the dock was first painted (:meth:`CoreLoader.start_after_paint`):
    the thread would otherwise share the GIL with the dock's build and first paint. When the
    modules fail to import the controls stay disabled and ``hint`` says why.

    Parameters
    ----------
    what : e.g. "the registration models", for the hint
    modules : module names the controls need
    controls : widgets disabled until then (containers keep their children's own state)
    hint : label showing the loading state; its text is restored after (hidden if empty)
    on_ready : the dock's set-up that needs the modules, run once on the GUI thread
    parent : the dock
    """

    def __init__(
        self,
        what: str,
        modules: Sequence[str],
        controls: Sequence[QWidget],
        hint: QLabel,
        on_ready: Callable[[], None],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.what = what
        self.controls = list(controls)
        self.hint = hint
        self.on_ready = on_ready
        self.ready = False
        self._finished = False
        self._hint_text = hint.text()
        self._loading_text = f"Loading {what}…"
        hint.setText(self._loading_text)
        hint.show()
        self._tooltips = [widget.toolTip() for widget in self.controls]
        for widget in self.controls:
            widget.setEnabled(False)
            widget.setToolTip(self._loading_text)
        self.loader = CoreLoader({what: tuple(modules)}, parent=self)
        self.loader.loaded.connect(self._finish)
        self.loader.start_after_paint(parent)

    def _finish(self) -> None:
        """Set the dock up once the import was tried (once; waits for it when early)."""
        if self._finished:
            return
        self._finished = True
        self.loader.wait()
        if not self.loader.available.get(self.what):
            error = self.loader.errors.get(self.what, "")
            self.hint.setText(f"Could not load {self.what} ({error}): reinstall echo-napari.")
            return
        self.on_ready()
        for widget, tooltip in zip(self.controls, self._tooltips, strict=True):
            widget.setToolTip(tooltip)
            widget.setEnabled(True)
            _forget_size_hints(widget)
        self.ready = True
        if self.hint.text() == self._loading_text:  # not overwritten by the dock meanwhile
            self.hint.setText(self._hint_text)
            self.hint.setVisible(bool(self._hint_text))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the import finished and the dock is set up; True when its
        controls are usable (False when ``timeout`` (s) ran out or the import failed)."""
        if not self.loader.wait(timeout):
            return False
        self._finish()
        return self.ready


def _forget_size_hints(widget: QWidget) -> None:
    """Make ``widget`` and its children recompute their size hints.

    napari's style sheet gives disabled combo boxes and buttons a 1 px border, and Qt keeps
    the size hint they had when first shown: built disabled, they stayed 2 px taller once
    enabled. A style change event makes them measure again.
    """
    for child in (widget, *widget.findChildren(QWidget)):
        QApplication.sendEvent(child, QEvent(QEvent.Type.StyleChange))


class WaitsForCores:
    """``ready`` and ``wait_until_ready`` of a dock whose ``cores_gate`` is a
    :class:`CoreGate` (mixed into the dock's QWidget class)."""

    cores_gate: CoreGate

    @property
    def ready(self) -> bool:
        """True once the cores are imported and the controls that need them enabled."""
        return self.cores_gate.ready

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until the cores are imported and the dock set up (on this thread, when
        the event loop did not get there first); True when its controls are usable."""
        return self.cores_gate.wait(timeout)
