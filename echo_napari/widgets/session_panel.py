"""The Session panel of the review dock: file, undo/redo, autosave settings, exports.

Every action is a method taking an optional path; only when the path is None does it ask
with a file dialog, so tests call the methods with paths. The work happens in
:class:`~echo_napari.widgets.session_link.SessionLink` and the session core.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from echo_napari.errors import EchoNapariError
from echo_napari.widgets._jobs import file_error_message
from echo_napari.widgets._notify import notify_error, notify_info

if TYPE_CHECKING:
    from echo_napari.widgets.review_dock import ReviewDock

logger = logging.getLogger(__name__)

SESSION_FILTER = "echo-napari session (*.h5 *.hdf5)"


def ask_recovery(info: Any, untitled_source: str | None = None) -> str | None:
    """Ask whether to recover a newer autosave: "use", "discard" or None (cancel).

    ``info`` is a :class:`~echo_napari.session.RecoveryInfo`; ``untitled_source`` the
    sequence file when the autosave is that of an untitled session. Tests replace this function
    (``monkeypatch.setattr(session_panel, "ask_recovery", ...)``): the reader hook and the
    Open button both look it up here at call time.
    """
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.autosave_saved_at))
    if info.file_revision is None:
        state = "The session file itself is missing or unreadable."
    elif info.same_session:
        state = (
            f"The autosave is at revision {info.autosave_revision}; the file at "
            f"revision {info.file_revision}."
        )
    else:
        state = "The autosave comes from another session saved under the same name."
    box = QMessageBox()
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Recover unsaved work?")
    if untitled_source is not None:
        box.setText(
            f"Work on {Path(untitled_source).name} from {when} was never saved under a name; "
            "echo-napari kept it in an autosave."
        )
        box.setInformativeText(
            "Recover puts those labels, keyframes and ED/ES back on the layers (Save as… "
            f"then keeps them). Discard keeps the file's labels and moves the autosave aside "
            f"as a .bak file in {info.autosave_path.parent}."
        )
    else:
        box.setText(
            f"{info.path.name} has an autosave ({info.autosave_path.name}, {when}) with work "
            "that was never saved, probably because napari closed unexpectedly."
        )
        box.setInformativeText(
            f"{state}\nRecover opens the autosave (saving then writes it to the file). "
            "Discard opens the file and keeps the autosave aside as a .bak file."
        )
    recover = box.addButton("Recover autosave", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard autosave", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(recover)
    box.exec_()
    clicked = box.clickedButton()
    if clicked is recover:
        return "use"
    if clicked is discard:
        return "discard"
    return None


OPEN_TIP = "Open a session file (.h5) into new layers; read in the background"


class SessionPanel(QGroupBox):
    """New / Open / Save / Save as, Undo / Redo, autosave policy and exports.

    Parameters
    ----------
    dock : ReviewDock
        Provides ``link`` (the SessionLink), ``session`` (the review) and ``open_session``.
    """

    def __init__(self, dock: ReviewDock) -> None:
        super().__init__("Session")
        self.export_worker: Any = None
        self.last_export: list[Path] | None = None
        self.dock = dock
        self.link = dock.link

        self.file_label = QLabel()
        self.file_label.setWordWrap(True)
        self.history_label = QLabel()
        self.history_label.setWordWrap(True)
        self.new_button = QPushButton("New…")
        self.new_button.setToolTip("Start a session file for these layers (fresh history)")
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip(OPEN_TIP)
        self.save_button = QPushButton("Save")
        self.save_as_button = QPushButton("Save as…")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip(
            "Undo the last change: propagation, prediction, accept, keyframes, ED/ES or a "
            "whole brush stroke (Alt-Z; napari's Ctrl-Z still undoes strokes in the layer)"
        )
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Redo the last undone change (Alt-Shift-Z)")
        self.interval_spin = QDoubleSpinBox()
        self.interval_spin.setRange(1.0, 3600.0)
        self.interval_spin.setDecimals(0)
        self.interval_spin.setSuffix(" s")
        self.interval_spin.setValue(self.link.interval_s)
        self.edits_spin = QSpinBox()
        self.edits_spin.setRange(1, 10000)
        self.edits_spin.setSuffix(" edits")
        self.edits_spin.setValue(self.link.every_n_edits)
        self.autosave_label = QLabel()
        self.export_camus_button = QPushButton("CAMUS…")
        self.export_camus_button.setToolTip("Patient folder: sequence, _gt, ED/ES, Info cfg")
        self.export_tracings_button = QPushButton("EchoNet tracings…")
        self.export_tracings_button.setToolTip(
            "VolumeTracings-style CSV of the LV cavity on every keyframe"
        )
        self.export_hdf5_button = QPushButton("HDF5…")
        self.export_hdf5_button.setToolTip("Frames, labels, provenance, keyframes, ED/ES")

        files = QGridLayout()
        for i, b in enumerate(
            (self.new_button, self.open_button, self.save_button, self.save_as_button)
        ):
            files.addWidget(b, 0, i)
        history = QHBoxLayout()
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        autosave = QHBoxLayout()
        autosave.addWidget(QLabel("Autosave every"))
        autosave.addWidget(self.interval_spin)
        autosave.addWidget(QLabel("or"))
        autosave.addWidget(self.edits_spin)
        exports = QHBoxLayout()
        self.export_title = QLabel("Export")
        exports.addWidget(self.export_title)
        for b in (self.export_camus_button, self.export_tracings_button, self.export_hdf5_button):
            exports.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.file_label)
        layout.addLayout(files)
        layout.addLayout(history)
        layout.addWidget(self.history_label)
        layout.addLayout(autosave)
        layout.addWidget(self.autosave_label)
        layout.addLayout(exports)

        # Buttons write in the background: a first save embeds every frame (seconds).
        self.new_button.clicked.connect(lambda: self.new_session(background=True))
        self.open_button.clicked.connect(lambda: self.open_session(background=True))
        self.save_button.clicked.connect(lambda: self.save(background=True))
        self.save_as_button.clicked.connect(lambda: self.save_as(background=True))
        self.undo_button.clicked.connect(lambda: self.undo())
        self.redo_button.clicked.connect(lambda: self.redo())
        self.interval_spin.valueChanged.connect(self._on_autosave_policy)
        self.edits_spin.valueChanged.connect(self._on_autosave_policy)
        self.export_camus_button.clicked.connect(lambda: self.export_camus(background=True))
        self.export_tracings_button.clicked.connect(lambda: self.export_tracings(background=True))
        self.export_hdf5_button.clicked.connect(lambda: self.export_hdf5(background=True))
        self.link.changed.connect(self.refresh)
        # the autosave thread cannot touch widgets: poll its counter once a second
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(1000)
        self._status_timer.timeout.connect(self._update_autosave_label)
        self._status_timer.start()
        self.refresh()

    # -- display -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the file name, modified marker, undo/redo availability."""
        store = self.link.store
        has = store is not None
        if not has:
            self.file_label.setText("No session (bind an echo layer).")
        elif self.link.saving:
            self.file_label.setText(
                f"<b>{self.link.saving_to.name}</b> saving… (a first save also writes the frames)"
            )
        elif self.link.untitled:
            self.file_label.setText(
                "<b>untitled</b> ● autosaved for crash recovery only: Save as… to keep it"
            )
        else:
            mark = " ● modified" if store.is_modified else " (saved)"
            self.file_label.setText(f"<b>{store.path.name}</b>{mark}")
            self.file_label.setToolTip(str(store.path))
        for b in (self.new_button, self.save_button, self.save_as_button):
            b.setEnabled(has and not self.link.saving)
        exporting = self.export_worker is not None
        for b in (self.export_camus_button, self.export_tracings_button, self.export_hdf5_button):
            b.setEnabled(has and not exporting)
        self.export_title.setText("Exporting…" if exporting else "Export")
        opening = getattr(self.dock, "open_worker", None) is not None
        self.open_button.setEnabled(not opening)
        self.open_button.setText("Opening…" if opening else "Open…")
        self.open_button.setToolTip(
            f"Reading {Path(self.dock.opening_path).name}…" if opening else OPEN_TIP
        )
        self.undo_button.setEnabled(self.link.can_undo)
        self.redo_button.setEnabled(self.link.can_redo)
        if has and (len(store.history) or self.link.can_redo):
            last = self.link.last_step
            n = len(store.history)
            self.history_label.setText(
                f"{n} undo step{'' if n == 1 else 's'} ({store.history.nbytes / 1024:.0f} KiB)"
                + (f"; last: {last}" if last else "")
            )
        else:
            self.history_label.setText("Nothing to undo yet.")
        self._update_autosave_label()

    def _update_autosave_label(self) -> None:
        if self.link.store is None:
            self.autosave_label.setText("Autosave starts once an echo layer is bound.")
            return
        count = self.link.autosave_count
        running = self.link.autosaver is not None and self.link.autosaver.running
        state = "on" if running else "paused"
        self.autosave_label.setText(
            f"Autosave {state}: {count} written to {self.link.store._auto.path.name}"
        )

    def _on_autosave_policy(self, *_: Any) -> None:
        self.link.set_autosave(self.interval_spin.value(), self.edits_spin.value())

    # -- actions -------------------------------------------------------------------------------
    def _ask_save_path(self, title: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, "", SESSION_FILTER)
        if not path:
            return None
        return path if Path(path).suffix.lower() in (".h5", ".hdf5") else path + ".h5"

    def new_session(
        self, path: str | Path | None = None, overwrite: bool = False, background: bool = False
    ) -> Any:
        """Start a new session file for the bound layers; None path: ask with a dialog
        (which confirms overwriting, so the file is then replaced). ``background``: write
        in a worker (see :meth:`SessionLink.save`)."""
        if path is None:
            path = self._ask_save_path("New session file")
            if path is None:
                return None
            overwrite = True
        return self.link.new(path, overwrite=overwrite, background=background)

    def open_session(self, path: str | Path | None = None, background: bool = False) -> Any:
        """Open a session file into new layers (asks about a newer autosave); with
        ``background`` the file is read in a worker (see the dock's ``open_session``)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
            if not path:
                return None
        return self.dock.open_session(path, background=background)

    def save(self, background: bool = False) -> Any:
        """Save to the session's file (Save as… when it has none yet); ``background``:
        write in a worker (see :meth:`SessionLink.save`)."""
        if self.link.store is not None and self.link.untitled:
            return self.save_as(background=background)
        return self.link.save(background=background)

    def save_as(
        self, path: str | Path | None = None, overwrite: bool = False, background: bool = False
    ) -> Any:
        """Save under a new name; the session lives there afterwards."""
        if path is None:
            path = self._ask_save_path("Save session as")
            if path is None:
                return None
            overwrite = True
        return self.link.save(path, overwrite=overwrite, background=background)

    def undo(self) -> Any:
        """Undo the last change of the session."""
        return self.link.undo()

    def redo(self) -> Any:
        """Redo the last undone change."""
        return self.link.redo()

    def export_camus(
        self, folder: str | Path | None = None, suffix: str = ".nii.gz", background: bool = False
    ) -> Any:
        """Export to a CAMUS patient folder (its name is the patient id)."""
        from echo_napari.session_export import export_camus

        if folder is None:
            folder = QFileDialog.getExistingDirectory(
                self, "CAMUS patient folder (e.g. patient0001)"
            )
            if not folder:
                return None
        return self._export(lambda store: export_camus(store, folder, suffix=suffix), background)

    def export_tracings(self, path: str | Path | None = None, background: bool = False) -> Any:
        """Export the LV tracings of every keyframe as a VolumeTracings-style CSV."""
        from echo_napari.session_export import export_volume_tracings

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "EchoNet tracings", "", "CSV (*.csv)")
            if not path:
                return None
        store = self.link.store
        source = store.source.path if store is not None else ""
        name = Path(source or (store.path if store is not None else "echo")).stem
        return self._export(lambda store: export_volume_tracings(store, path, name), background)

    def export_hdf5(self, path: str | Path | None = None, background: bool = False) -> Any:
        """Export the whole sequence in the io package's HDF5 layout."""
        from echo_napari.session_export import export_hdf5

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export HDF5", "", "HDF5 (*.h5)")
            if not path:
                return None
        return self._export(lambda store: export_hdf5(store, path), background)

    def _export(self, write: Any, background: bool = False) -> Any:
        """Run ``write(store)``; returns the paths written (None on failure, notified), or
        with ``background`` the worker (exports of a whole sequence take seconds)."""
        store = self.link.store
        if store is None:
            notify_error("Nothing to export: bind an echo layer first.")
            return None
        if self.export_worker is not None:
            notify_error("An export is still running: wait until it has finished.")
            return None
        self.link.commit("brush")  # exports write the committed state (a snapshot)
        if not background:
            try:
                written = write(store)
            except (EchoNapariError, OSError) as error:
                self._export_failed(error)
                return None
            self._exported(written)
            return written
        from napari.qt.threading import create_worker

        worker = create_worker(write, store, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._exported)
        worker.errored.connect(self._export_failed)
        worker.finished.connect(self._export_finished)
        self.export_worker = worker
        self.refresh()
        worker.start()
        return worker

    def _exported(self, written: list[Path]) -> None:
        notify_info(f"echo-napari: exported {len(written)} files ({Path(written[0]).name}, …)")
        self.last_export = written

    def _export_failed(self, error: BaseException) -> None:
        reason = file_error_message(error)
        notify_error(f"Export failed: {reason}")

    def _export_finished(self) -> None:
        self.export_worker = None
        self.refresh()
