"""Session parts of the review dock: adopt the session a labels layer carries, open
session files, undo/redo, accept a frame, and stop autosaving when the dock goes away.

A mixin of :class:`~echo_napari.widgets.review_dock.ReviewDock` (kept apart to keep each
module short); it uses the dock's ``viewer``, ``session``, ``link``, ``binding``, combos
and ``current_frame``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QEvent

from echo_napari.errors import EchoNapariError
from echo_napari.widgets._jobs import file_error_message
from echo_napari.widgets._notify import notify_error


class SessionDockMixin:
    """Session store handling of the review dock (see the module docstring)."""

    viewer: Any
    session: Any
    link: Any
    binding: Any
    image_combo: Any
    labels_combo: Any
    current_frame: int
    #: napari worker reading a session file (``open_session(background=True)``), or None
    open_worker: Any = None
    opening_path: Any = None

    @staticmethod
    def _session_handle(layer: Any) -> Any | None:
        from echo_napari.napari_hooks import SESSION_KEY

        return layer.metadata.get(SESSION_KEY)

    def _adoptable_store(self, image: Any, labels_layer: Any) -> Any | None:
        """The session carried by the labels layer, when it is about these very arrays."""
        handle = self._session_handle(labels_layer)
        store = getattr(handle, "session", None)
        if store is None:
            return None
        seq = store.sequence
        if seq.labels is labels_layer.data and seq.frames is image.data:
            return store
        return None  # a copy (duplicated layer): it gets a session of its own

    def _choose_session_layers(self, labels_layer: Any) -> None:
        """Select the layers a session file was read into (opened or dropped)."""
        from napari.layers import Image

        frames = self._session_handle(labels_layer).session.sequence.frames
        images = [ly for ly in self.viewer.layers if isinstance(ly, Image) and ly.data is frames]
        if images:
            self.image_combo.setCurrentText(images[0].name)
        self.labels_combo.setCurrentText(labels_layer.name)

    def open_session(self, path: Any, background: bool = False) -> Any:
        """Open a session file into new image + labels layers and bind them.

        Returns the session, or None when it could not be opened (notified). With
        ``background`` the file is read in a worker (a 100-frame 600 × 600 session takes
        over a second to decompress) and the worker is returned; the layers are added when
        it is done (:attr:`open_worker` is set meanwhile). A newer autosave is asked about
        first, on the GUI thread.
        """
        from echo_napari.napari_hooks import ask_recovery_in_gui, open_session, recovery_choice

        if not background:
            try:
                store = open_session(path, ask=ask_recovery_in_gui)
            except EchoNapariError as error:
                notify_error(str(error))
                return None
            return self._add_session_layers(path, store)
        if self.open_worker is not None:
            notify_error("A session is still being opened: wait until it has finished.")
            return None
        try:
            choice = recovery_choice(path, ask=ask_recovery_in_gui)
        except EchoNapariError as error:
            notify_error(str(error))
            return None
        from napari.qt.threading import create_worker

        from echo_napari.napari_hooks import current_user
        from echo_napari.session import Session

        worker = create_worker(
            Session.open,
            path,
            recovery=choice,
            author=current_user(),
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(self._opened)
        worker.errored.connect(self._open_failed)
        worker.finished.connect(self._open_finished)
        self.open_worker = worker
        self.opening_path = path
        self.open_state_changed()
        worker.start()
        return worker

    def _opened(self, store: Any) -> None:
        self._add_session_layers(store.path, store)

    def _add_session_layers(self, path: Any, store: Any) -> Any:
        from echo_napari.napari_hooks import _layer_name, session_layer_data

        for data, kwargs, kind in session_layer_data(store, name=_layer_name(str(path))):
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        return store

    def _open_failed(self, error: BaseException) -> None:
        reason = file_error_message(error)
        notify_error(f"Open failed: {reason}")

    def _open_finished(self) -> None:
        self.open_worker = None
        self.opening_path = None
        self.open_state_changed()

    def open_state_changed(self) -> None:
        """Redraw the Session panel when an open starts or ends."""
        panel = getattr(self, "session_panel", None)
        if panel is not None:
            panel.refresh()

    def _on_store_changed(self) -> None:
        """Keep the bound labels layer carrying the current session (re-binding finds it)."""
        from echo_napari.napari_hooks import SESSION_KEY, SessionHandle

        store = self.link.store
        if self.binding is None or store is None:
            return
        handle = self.binding.layer.metadata.get(SESSION_KEY)
        if getattr(handle, "session", None) is not store:
            self.binding.layer.metadata[SESSION_KEY] = SessionHandle(store)

    def _on_restored(self, frames: np.ndarray) -> None:
        if self.binding is not None:
            self.binding.layer.refresh()

    def _on_layer_refreshed(self, event: Any = None) -> None:
        # napari's Ctrl-Z/Ctrl-Shift-Z repaint the layer without a paint event: commit what
        # they changed on the shown frame (a stroke in progress repaints with
        # ``labels_update`` instead, so it is never committed half done)
        # Deferred: napari repaints before it emits ``paint``, and the stroke's own commit
        # (with its MANUAL provenance) must come first to stay one undo step.
        if self.binding is not None:
            self._refresh_commit_timer.start()

    def _commit_refreshed_frame(self) -> None:
        if self.binding is not None:
            self.link.commit("brush", [self.current_frame])

    def undo(self, *_: Any) -> Any:
        """Undo the session's last change (see :class:`SessionLink`)."""
        return self.link.undo()

    def redo(self, *_: Any) -> Any:
        """Redo the session's last undone change."""
        return self.link.redo()

    def accept_frame_here(self, *_: Any) -> None:
        """Accept the current frame's labels: it becomes a MANUAL keyframe (one undo step)."""
        if self.session.is_loaded:
            self.link.operation = "accept"
            try:
                self.session.accept_frame(self.current_frame)
            finally:
                self.link.operation = None

    def event(self, event: QEvent) -> bool:
        # napari's remove_dock_widget only un-parents the widget: stop autosaving then
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.link.shutdown()
        return super().event(event)
