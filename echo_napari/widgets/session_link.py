"""Tie a :class:`ReviewSession` (what the dock shows) to a session store (what gets saved).

The store (:class:`~echo_napari.session.Session`) wraps the review's very
:class:`EchoSequence`, so both see the same labels array, provenance list and keyframe
set. The review emits an event for every change the user or a job makes; the link turns
each into one committed, undoable change of the store, runs the background
:class:`~echo_napari.session.Autosaver`, and relays its errors to the GUI thread.

No file dialogs here (see :mod:`echo_napari.widgets.session_panel`), so tests drive it
with plain paths.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from echo_napari.errors import EchoNapariError
from echo_napari.review_session import ReviewSession
from echo_napari.sequence import ProvenanceKind
from echo_napari.widgets._jobs import file_error_message
from echo_napari.widgets._notify import notify_error

logger = logging.getLogger(__name__)

#: Operation names recorded in the history, by the provenance a change left behind.
OPERATION_BY_KIND = {
    ProvenanceKind.MANUAL: "brush",
    ProvenanceKind.PROPAGATED: "propagate",
    ProvenanceKind.PREDICTED: "accept prediction",
    ProvenanceKind.NONE: "edit",
}

#: Default autosave policy: every 30 s while there are changes, or after 20 changes.
AUTOSAVE_INTERVAL_S = 30.0
AUTOSAVE_EVERY_N_EDITS = 20


def untitled_dir() -> Path:
    """Folder of the autosaves of untitled sessions: ``untitled/`` in the user data folder
    (:func:`echo_napari.models.registry.user_data_dir`)."""
    from echo_napari.models.registry import user_data_dir

    return user_data_dir() / "untitled"


def untitled_path(source: str | Path | None = None) -> Path:
    """The (never written) file name of an untitled session; its autosave goes beside it.

    One name per source file (its resolved path hashed), so that opening the same video
    again finds the unsaved work of a session that ended in a crash; a sequence with no
    source file gets a fresh name.
    """
    if source:
        resolved = str(Path(source).expanduser().resolve())
        digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(resolved).stem)[:60] or "sequence"
        name = f"{stem}-{digest}.h5"
    else:
        name = f"unsaved-{uuid.uuid4().hex}.h5"
    return untitled_dir() / name


class SessionLink(QObject):
    """Commits, undo/redo, saving and autosave of the session behind one review.

    Parameters
    ----------
    review : ReviewSession
        The dock's evented state; its sequence must be the store's sequence.

    Signals
    -------
    changed()
        The store changed (a commit, undo, redo, save, another store).
    restored(frames)
        Undo/redo wrote into the labels of ``frames`` ((N,) int64): repaint the layer.
    autosave_failed(str)
        Emitted from the autosave thread; delivered to the GUI thread (queued).
    save_finished(object)
        A background save ended: its SaveReport, or None when it failed (notified).
    """

    changed = Signal()
    restored = Signal(object)
    autosave_failed = Signal(str)
    save_finished = Signal(object)

    def __init__(self, review: ReviewSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.review = review
        self.store: Any = None
        self.autosaver: Any = None
        self.untitled = True
        self.interval_s = AUTOSAVE_INTERVAL_S
        self.every_n_edits = AUTOSAVE_EVERY_N_EDITS
        self.operation: str | None = None
        self.last_step = ""
        self._restoring = False
        self.save_worker: Any = None
        self.saving_to: Path | None = None
        self._save_done: threading.Event | None = None
        # Review events are committed once control returns to the event loop: napari
        # emits ``paint`` before it writes a stroke's last pixels, and one user action
        # may emit several events (provenance, keyframes) that belong to one undo step.
        self._pending_op: str | None = None
        self._pending_frames: set[int] = set()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self.flush)
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.timeout.connect(self._start_autosaver)
        ev = review.events
        ev.sequence.connect(self._on_sequence)
        ev.provenance.connect(self._on_provenance)
        ev.keyframes.connect(self._on_keyframes)
        ev.phases.connect(self._on_phases)
        self.autosave_failed.connect(self._on_autosave_failed)

    # -- which store ----------------------------------------------------------------------
    def attach(self, store: Any, untitled: bool = False) -> None:
        """Make ``store`` the session of the review (its sequence must be the review's)."""
        if store is self.store:
            return
        self.detach()
        if store.sequence is not self.review.sequence:
            raise EchoNapariError("the session's sequence is not the one under review")
        self.store, self.untitled, self.last_step = store, untitled, ""
        self._start_autosaver()
        self.changed.emit()

    def attach_untitled(self) -> None:
        """A fresh session over the review's sequence that has no file yet: undo works at
        once, autosave writes to :func:`untitled_dir` (so a crash loses nothing), and Save
        asks for a file name. Unsaved work autosaved for the same source file is offered
        back first."""
        from echo_napari.napari_hooks import current_user
        from echo_napari.session import Session

        source = self.review.sequence.metadata.get("source")
        try:
            path = untitled_path(source)
            path.parent.mkdir(parents=True, exist_ok=True)
            restored = bool(source) and self._offer_untitled_recovery(path, str(source))
            store = Session(self.review.sequence, path, author=current_user())
        except (EchoNapariError, OSError) as error:
            self.detach()
            notify_error(f"No undo history or session for these labels: {error}")
            return
        self.attach(store, untitled=True)
        if restored:
            self.last_step = "restored unsaved work"
            self.changed.emit()

    def _offer_untitled_recovery(self, path: Path, source: str) -> bool:
        """Ask whether to restore the autosave of an untitled session of ``source``; one
        not restored is kept aside as a ``.bak`` file (never deleted). True if restored."""
        from echo_napari.session import discard_recovery, find_recovery
        from echo_napari.session_read import read_session_file
        from echo_napari.widgets import session_panel

        info = find_recovery(path)
        if info is None:
            return False
        choice = session_panel.ask_recovery(info, untitled_source=source)
        if choice == "use":
            state, _ = read_session_file(info.autosave_path)
            seq = self.review.sequence
            if state.labels.shape != seq.labels.shape:
                discard_recovery(path)
                notify_error(
                    f"The autosave of {Path(source).name} has labels of shape "
                    f"{state.labels.shape}, the sequence {seq.labels.shape}: not restored "
                    f"(kept aside in {path.parent})."
                )
                return False
            seq.labels[...] = state.labels
            seq.provenance[:] = state.provenance
            seq.keyframes.clear()
            seq.keyframes.update(state.keyframes)
            seq.ed_index, seq.es_index = state.ed_index, state.es_index
            self.review.restored(range(seq.n_frames))
            return True
        discard_recovery(path)
        return False

    def detach(self) -> None:
        """Stop the autosaver (one final autosave, so a crash later loses nothing) and
        forget the store; its autosave is deleted only when the file is up to date."""
        if self.store is None:
            return
        self.commit("brush")
        self.wait_for_save()  # its file must be complete before the final autosave / close
        store, self.store = self.store, None
        # An untitled session keeps its edits in its autosave until it is saved under a
        # name (offered back when the same file is opened again).
        keep = store.revision > 0 if self.untitled else store.is_modified
        self._stop_autosaver(final_save=keep)
        if not self.untitled:
            try:
                store.close()
            except (EchoNapariError, OSError) as error:
                logger.warning("closing %s: %s", store.path, error)
        self.changed.emit()

    # -- commits --------------------------------------------------------------------------
    def _on_sequence(self) -> None:
        if self.store is not None and self.store.sequence is not self.review.sequence:
            self.detach()

    def _on_provenance(self, frames: np.ndarray) -> None:
        self._queue(self.operation or self._operation_for(frames), frames)

    def _on_keyframes(self) -> None:
        self._queue(self.operation or "keyframes", [])

    def _on_phases(self) -> None:
        self._queue(self.operation or "phase", [])

    def _queue(self, operation: str, frames: Iterable[int]) -> None:
        if self.store is None or self._restoring:
            return
        if self._pending_op is None:
            self._pending_op = operation
        self._pending_frames.update(int(t) for t in frames)
        self._flush_timer.start()

    def flush(self) -> Any:
        """Commit the changes queued from review events now (one undo step)."""
        self._flush_timer.stop()
        operation, frames = self._pending_op, sorted(self._pending_frames)
        self._pending_op, self._pending_frames = None, set()
        if operation is None:
            return None
        return self._commit_now(operation, frames)

    def _operation_for(self, frames: np.ndarray) -> str:
        provenance = self.review.sequence.provenance
        kinds = {provenance[int(t)].kind for t in frames}
        return OPERATION_BY_KIND[kinds.pop()] if len(kinds) == 1 else "edit"

    def commit(self, operation: str, frames: Iterable[int] | None = None) -> Any:
        """Record what changed in ``frames`` (None: every frame) as one undo step, after
        the queued changes (their own step)."""
        self.flush()
        return self._commit_now(operation, frames)

    def _commit_now(self, operation: str, frames: Iterable[int] | None) -> Any:
        if self.store is None:
            return None
        try:
            change = self.store.commit(operation, frames)
        except EchoNapariError as error:
            notify_error(f"Change not recorded (undo, saving): {error}")
            return None
        if change is not None:
            self.last_step = change.operation
            self.changed.emit()
        return change

    # -- undo / redo ------------------------------------------------------------------------
    def undo(self) -> Any:
        """Undo the last change; returns it (or None when there is nothing to undo)."""
        return self._step(forward=False)

    def redo(self) -> Any:
        """Redo the last undone change; returns it (or None)."""
        return self._step(forward=True)

    def _step(self, forward: bool) -> Any:
        if self.store is None:
            return None
        # napari's own Ctrl-Z changes pixels without an event we commit on
        self.commit("brush")
        change = self.store.redo() if forward else self.store.undo()
        if change is None:
            return None
        self._restoring = True
        try:
            self.review.restored(change.frames)
        finally:
            self._restoring = False
        self.last_step = f"{'redid' if forward else 'undid'} {change.operation}"
        self.restored.emit(change.frames)
        self.changed.emit()
        return change

    @property
    def restoring(self) -> bool:
        """True while undo/redo redraws (its events are not new changes)."""
        return self._restoring

    @property
    def can_undo(self) -> bool:
        """True when there is a change to undo."""
        return self.store is not None and self.store.history.can_undo

    @property
    def can_redo(self) -> bool:
        """True when there is an undone change to redo."""
        return self.store is not None and self.store.history.can_redo

    # -- saving ---------------------------------------------------------------------------------
    @property
    def saving(self) -> bool:
        """True while a background save runs."""
        return self.save_worker is not None

    def save(
        self, path: str | Path | None = None, overwrite: bool = False, background: bool = False
    ) -> Any:
        """Save the session (under ``path`` when given: "save as"); errors are notified.

        Parameters
        ----------
        path : save under a new name ("save as")
        overwrite : allow replacing an existing file this session did not come from
        background : write in a worker thread, so the viewer stays responsive (the first
            save of a sequence embeds its frames: seconds for a 100-frame 800 × 600 cine)

        Returns
        -------
        In the foreground, the :class:`~echo_napari.session.SaveReport`, or None when nothing
        was written (the work stays in memory and, once named, in the autosave). In the
        background, the worker (None when no save started); :attr:`save_finished` then
        carries the report. Edits made while it writes are kept for the next save.
        """
        if self.saving:
            notify_error("A save is still running: wait until it has finished.")
            return None
        if self.store is None:
            notify_error("No session to save: bind an echo layer first.")
            return None
        if path is None and self.untitled:
            notify_error("This session has no file yet: use Save as.")
            return None
        self.commit("brush")
        store = self.store
        untitled_autosave = store._auto.path if self.untitled else None
        if not background:
            try:
                report = store.save(path, overwrite=overwrite)
            except (EchoNapariError, OSError) as error:
                self._save_failed(error)
                return None
            self._saved(store, untitled_autosave)
            return report
        from napari.qt.threading import create_worker

        done = threading.Event()

        def write() -> Any:
            try:
                return store.save(path, overwrite=overwrite)
            finally:
                done.set()

        worker = create_worker(write, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda report: self._saved(store, untitled_autosave, report))
        worker.errored.connect(self._save_failed)
        self.save_worker, self._save_done = worker, done
        self.saving_to = Path(path) if path is not None else store.path
        self.changed.emit()
        worker.start()
        return worker

    def wait_for_save(self, timeout_s: float = 120.0) -> None:
        """Block until a background save has written its file (closing, detaching)."""
        if self._save_done is not None:
            self._save_done.wait(timeout_s)

    def _saved(self, store: Any, untitled_autosave: Path | None, report: Any = None) -> None:
        self.save_worker = None
        if store is self.store and self.untitled:
            self.untitled = False
            self._stop_autosaver(final_save=False)
            # The work now lives in the named file: the untitled autosave is not needed.
            if untitled_autosave is not None:
                untitled_autosave.unlink(missing_ok=True)
            self._start_autosaver()
        self.changed.emit()
        if report is not None:
            self.save_finished.emit(report)

    def _save_failed(self, error: BaseException) -> None:
        background = self.save_worker is not None
        self.save_worker = None
        reason = file_error_message(error)
        notify_error(
            f"Session not saved: {reason}. Nothing is lost: the work stays open here"
            + ("" if self.untitled else " and in its autosave")
            + "; save it under another name."
        )
        self.changed.emit()
        if background:
            self.save_finished.emit(None)

    def new(self, path: str | Path, overwrite: bool = False, background: bool = False) -> Any:
        """Start a new session file for the current layers at ``path`` (fresh history).

        Returns what :meth:`save` returns for its first save (a SaveReport, or with
        ``background`` the worker); None when that failed (notified).
        """
        from echo_napari.napari_hooks import current_user
        from echo_napari.session import Session

        self.detach()
        try:
            store = Session(self.review.sequence, path, author=current_user())
        except EchoNapariError as error:
            notify_error(f"No new session: {error}")
            return None
        self.attach(store, untitled=True)
        return self.save(path, overwrite=overwrite, background=background)

    # -- autosave ---------------------------------------------------------------------------
    def set_autosave(self, interval_s: float, every_n_edits: int) -> None:
        """Autosave every ``interval_s`` seconds while there are changes, or as soon as
        ``every_n_edits`` changes accumulated."""
        self.interval_s, self.every_n_edits = float(interval_s), int(every_n_edits)
        if self.autosaver is not None:
            self.autosaver.interval_s = self.interval_s
            self.autosaver.every_n_edits = self.every_n_edits

    def _start_autosaver(self) -> None:
        from echo_napari.session import Autosaver

        if self.store is None:
            return
        if self.autosaver is not None and self.autosaver.session is self.store:
            self.autosaver.start()
            return
        self._stop_autosaver(final_save=False)
        self.autosaver = Autosaver(
            self.store,
            self.interval_s,
            self.every_n_edits,
            on_error=lambda exc: self.autosave_failed.emit(str(exc)),
        ).start()

    def _stop_autosaver(self, final_save: bool) -> None:
        self._resume_timer.stop()
        saver, self.autosaver = self.autosaver, None
        if saver is not None:
            saver.stop(final_save=final_save)

    def _on_autosave_failed(self, message: str) -> None:
        # The Autosaver retries at every poll after a failure; pause it for one interval
        # so that a full disk gives one notification per interval, not four a second.
        if self.autosaver is not None:
            self.autosaver.stop(final_save=False)
            self._resume_timer.start(int(self.interval_s * 1000))
        notify_error(
            f"Autosave failed: {message}. Your work is still in memory; retrying in "
            f"{self.interval_s:.0f} s (or save under another name)."
        )

    @property
    def autosave_count(self) -> int:
        """Autosaves written by the current autosaver."""
        return 0 if self.autosaver is None else self.autosaver.count

    def shutdown(self) -> None:
        """Stop autosaving and close the store (viewer closed, dock removed)."""
        self.detach()
        worker, self.save_worker = self.save_worker, None
        if worker is not None:  # its file is written (detach waited): no widget to tell
            for signal in (worker.returned, worker.errored):
                try:
                    signal.disconnect()
                except (TypeError, RuntimeError):
                    pass
