"""Sessions that never lose work: one HDF5 file per sequence, autosave, recovery, undo/redo.

A :class:`Session` wraps a live :class:`~echo_napari.sequence.EchoSequence` (the one the
GUI paints into) and keeps a *committed* copy of its labels, provenance, keyframes and
ED/ES. Anyone may change the live sequence; :meth:`Session.commit` records the difference
as one undoable :class:`~echo_napari.session_history.Change` (sparse frame diffs) and marks
the touched frames dirty. Saves and autosaves write the committed copy, so a stroke in
progress is never saved half-done and the autosave thread never reads the array the GUI
paints into.

* :meth:`Session.save` writes the user's file atomically; a one-frame change rewrites one
  chunk in a fast copy of the file (see :mod:`echo_napari.session_store` for the layout
  and the write protocol). It refuses to replace a file changed on disk by someone else,
  or an existing file the session did not come from, unless told to.
* :meth:`Session.autosave` writes ``<name>.autosave.h5`` beside it
  (:mod:`echo_napari.session_autosave`); :class:`~echo_napari.session_autosave.Autosaver`
  does so from a background thread. :func:`find_recovery` / :func:`recover` bring the work
  back after a crash.
* :meth:`Session.undo` / :meth:`Session.redo` across brush edits, propagation, prediction,
  accepted ranges, keyframes and ED/ES, within a memory cap.

Exports to CAMUS, EchoNet and HDF5 are in :mod:`echo_napari.session_export`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.sequence import EchoSequence, FrameProvenance
from echo_napari.session_autosave import (
    Autosaver,
    RecoveryAvailableError,
    RecoveryInfo,
    autosave_path,
    discard_recovery,
    find_recovery,
    recover,
    remove_stale_temporaries,
)
from echo_napari.session_files import SaveReport, SavingMixin, Target, load_source
from echo_napari.session_history import Change, FrameRecord, History, diff_frame
from echo_napari.session_read import read_header, read_session_file
from echo_napari.session_store import (
    SESSION_SCHEMA,
    SessionError,
    SessionState,
    SourceRef,
    state_from_sequence,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Autosaver",
    "Change",
    "RecoveryAvailableError",
    "RecoveryInfo",
    "SaveReport",
    "Session",
    "SessionError",
    "autosave_path",
    "discard_recovery",
    "find_recovery",
    "recover",
]

_VALID = frozenset(range(4))


class Session(SavingMixin):
    """One sequence under review, its committed state, history and files.

    Parameters
    ----------
    sequence : EchoSequence
        The live document; its ``labels`` (created when missing), ``provenance`` list,
        ``keyframes`` set and ED/ES are shared, not copied (undo writes into them).
    path : the session file (need not exist yet; :meth:`save` writes it)
    author : recorded with every change (e.g. the user name)
    settings : JSON-able settings used (propagation backend, model version, …)
    embed_frames : store a copy of the frames in the file; default: only when the
        sequence has no source file (``metadata["source"]``) to reference
    history_bytes : memory cap of the undo/redo history, bytes
    """

    def __init__(
        self,
        sequence: EchoSequence,
        path: str | Path,
        *,
        author: str = "",
        settings: dict[str, Any] | None = None,
        notes: str = "",
        embed_frames: bool | None = None,
        history_bytes: int = 64 * 1024**2,
        _state: SessionState | None = None,
    ) -> None:
        self.sequence = sequence
        self.path = Path(path)
        self.author = author
        self.history = History(history_bytes)
        self._lock = threading.RLock()
        self._io_lock = threading.Lock()
        labels = sequence.ensure_labels()
        sequence.validate()
        if labels.size and int(labels.max()) > 3:
            raise SequenceError(f"labels hold values up to {int(labels.max())}; classes are 0..3")
        if _state is None:
            _state = state_from_sequence(sequence, settings or {}, notes, embed_frames)
        self._state = _state
        self._file = Target(self.path)
        self._auto = Target(autosave_path(self.path))
        if labels.shape != self._state.labels.shape:
            raise SequenceError(
                f"labels {labels.shape} differ from the session's {self._state.labels.shape}"
            )

    # -- construction -------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        recovery: str = "ask",
        source: str | Path | None = None,
        verify_source: bool = True,
        author: str = "",
        history_bytes: int = 64 * 1024**2,
    ) -> Session:
        """Open a session file (read only until the next save).

        Parameters
        ----------
        recovery : what to do when a newer autosave exists: "ask" raises
            :class:`RecoveryAvailableError`, "use" loads the autosave (:func:`recover`),
            "discard" moves the autosave aside and opens the file
        source : where the source file is now, when it moved
        verify_source : check the source file's SHA-256 against the one recorded

        Raises
        ------
        SessionError
            Missing, foreign, corrupt or newer-schema file; missing or changed source.
        """
        path = Path(path)
        if recovery not in ("ask", "use", "discard"):
            raise ValueError(f"recovery must be 'ask', 'use' or 'discard'; got {recovery!r}")
        remove_stale_temporaries(path)
        info = find_recovery(path)
        if info is not None:
            if recovery == "ask":
                raise RecoveryAvailableError(info)
            if recovery == "use":
                return recover(path, source=source, verify_source=verify_source, author=author)
            discard_recovery(path)
        state, frames = read_session_file(path)
        session = cls._from_state(
            path, state, frames, source, verify_source, author, history_bytes
        )
        header = read_header(path)
        if header.schema == SESSION_SCHEMA:
            session._file.save_id = header.save_id
            session._file.incremental_ok = True
            session._file.text_dirty = False
            session._file.compact_size = path.stat().st_size
        else:
            session._migrated_from = header.schema
        return session

    @classmethod
    def _from_state(
        cls,
        path: Path,
        state: SessionState,
        frames: Any,
        source: str | Path | None,
        verify_source: bool,
        author: str,
        history_bytes: int,
    ) -> Session:
        if frames is None:
            frames, state.source = load_source(path, state, source, verify_source)
        metadata = dict(state.metadata)
        sequence = EchoSequence(
            frames=frames,
            spacing=state.spacing,
            frame_time_ms=state.frame_time_ms,
            view=state.view,
            ed_index=state.ed_index,
            es_index=state.es_index,
            labels=state.labels.copy(),
            provenance=list(state.provenance),
            keyframes=set(state.keyframes),
            metadata=metadata,
        )
        session = cls(sequence, path, author=author, history_bytes=history_bytes, _state=state)
        if state.source.embedded:
            session._frames = frames
        return session

    _migrated_from: str | None = None
    _frames: Any = None

    # -- state --------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        """Committed revision, +1 per change (undo and redo count as changes)."""
        return self._state.revision

    @property
    def session_uid(self) -> str:
        """Random id of this session, kept across saves."""
        return self._state.session_uid

    @property
    def labels(self) -> np.ndarray:
        """The live (T, H, W) uint8 labels (shared with the sequence)."""
        return self.sequence.labels

    @property
    def notes(self) -> str:
        """Free-text notes saved with the session."""
        return self._state.notes

    @property
    def settings(self) -> dict[str, Any]:
        """Copy of the settings saved with the session."""
        return dict(self._state.settings)

    @property
    def source(self) -> SourceRef:
        """Where the frames come from."""
        return self._state.source

    @property
    def is_modified(self) -> bool:
        """True when committed changes are not in the user's file yet."""
        return self._file.edits > 0 or self._file.save_id is None

    def frame_record(self, frame: int) -> FrameRecord:
        """Committed provenance, time (unix s, NaN never) and author of ``frame``."""
        st = self._state
        return FrameRecord(st.provenance[frame], float(st.times[frame]), st.authors[frame])

    def committed_labels(self) -> np.ndarray:
        """A copy of the committed (T, H, W) uint8 labels (what a save would write)."""
        with self._lock:
            return self._state.labels.copy()

    def committed_sequence(self) -> EchoSequence:
        """The committed state as a new EchoSequence (frames shared, the rest copied).

        What a save writes and what exports use: edits not yet committed are left out.
        """
        with self._lock:
            st = self._state
            return EchoSequence(
                frames=self.sequence.frames,
                spacing=st.spacing,
                frame_time_ms=st.frame_time_ms,
                view=st.view,
                ed_index=st.ed_index,
                es_index=st.es_index,
                labels=st.labels.copy(),
                provenance=list(st.provenance),
                keyframes=set(st.keyframes),
                metadata=dict(st.metadata),
            )

    # -- changes ------------------------------------------------------------------------
    def commit(
        self,
        operation: str = "edit",
        frames: Iterable[int] | None = None,
        author: str | None = None,
    ) -> Change | None:
        """Record what changed in the live sequence as one undoable change.

        Parameters
        ----------
        operation : name shown in the history ("brush", "propagate", "predict", …)
        frames : frames to compare (labels and provenance); None compares all frames.
            Keyframes and ED/ES are always compared.
        author : overrides the session's author for this change

        Returns
        -------
        Change or None
            None when nothing changed.

        Raises
        ------
        SequenceError
            When changed labels hold values outside the class table 0..3 (nothing is
            committed; fix or undo the edit).
        """
        with self._lock:
            seq, st = self.sequence, self._state
            live = seq.labels
            if live is None or live.shape != st.labels.shape:
                raise SequenceError(f"live labels must keep the shape {st.labels.shape}")
            n = st.labels.shape[0]
            idx = np.arange(n) if frames is None else _frame_indices(frames, n)
            diffs = []
            if idx.size:
                # frame by frame: no (N, H, W) copies or masks (100 × 600² frames: 5 vs 30 ms)
                changed = np.fromiter(
                    (not np.array_equal(live[t], st.labels[t]) for t in idx),
                    dtype=bool,
                    count=idx.size,
                )
                for t in idx[changed]:
                    diff = diff_frame(int(t), st.labels[t], live[t])
                    # valid values are 0..3: min/max are far cheaper than a unique per frame
                    out_of_range = diff.new.min() < 0 or diff.new.max() > 3
                    bad = set(np.unique(diff.new).tolist()) - _VALID if out_of_range else ()
                    if bad:
                        raise SequenceError(
                            f"frame {int(t)} holds label values {sorted(bad)} outside 0..3"
                        )
                    diffs.append(diff)
            now, who = time.time(), self.author if author is None else author
            touched = {d.frame for d in diffs}
            touched |= {int(t) for t in idx if seq.provenance[t] != st.provenance[t]}
            records = {
                t: (self.frame_record(t), FrameRecord(seq.provenance[t], now, who))
                for t in sorted(touched)
            }
            keyframes = None
            if set(seq.keyframes) != st.keyframes:
                keyframes = (frozenset(st.keyframes), frozenset(int(k) for k in seq.keyframes))
            phases = None
            if (seq.ed_index, seq.es_index) != (st.ed_index, st.es_index):
                phases = ((st.ed_index, st.es_index), (seq.ed_index, seq.es_index))
            if not (diffs or records or keyframes or phases):
                return None
            change = Change(operation, st.revision + 1, tuple(diffs), records, keyframes, phases)
            self._apply(change, forward=True, live=False)
            self.history.push(change)
            return change

    def apply_labels(
        self,
        frames: Iterable[int],
        labels: np.ndarray,
        provenance: FrameProvenance,
        operation: str = "propagate",
        keyframes: bool = False,
    ) -> Change | None:
        """Write computed labels into ``frames`` and commit them as one change.

        Parameters
        ----------
        frames : N frame indices
        labels : (N, H, W) uint8
        provenance : recorded for every written frame
        keyframes : also mark the frames as keyframes (an accepted or manual result)
        """
        with self._lock:
            idx = np.fromiter((int(t) for t in frames), dtype=np.int64)
            labels = np.asarray(labels)
            expected = (idx.size, *self.sequence.frame_shape)
            if labels.shape != expected or labels.dtype != np.uint8:
                raise SequenceError(
                    f"labels must be {expected} uint8; got {labels.shape} {labels.dtype}"
                )
            _frame_indices(idx, self.sequence.n_frames)
            self.sequence.labels[idx] = labels
            for t in idx:
                self.sequence.provenance[int(t)] = provenance
            if keyframes:
                self.sequence.keyframes.update(int(t) for t in idx)
            return self.commit(operation, idx)

    def accept_range(self, start: int, stop: int) -> Change | None:
        """Mark frames ``start`` .. ``stop - 1`` as keyframes (a human accepted them)."""
        with self._lock:
            idx = _frame_indices(range(int(start), int(stop)), self.sequence.n_frames)
            self.sequence.keyframes.update(int(t) for t in idx)
            return self.commit("accept", [])

    def set_keyframe(self, frame: int, is_keyframe: bool = True) -> Change | None:
        """Mark or unmark one keyframe (undoable)."""
        with self._lock:
            (t,) = _frame_indices([frame], self.sequence.n_frames)
            (self.sequence.keyframes.add if is_keyframe else self.sequence.keyframes.discard)(
                int(t)
            )
            return self.commit("keyframes", [])

    def set_phase(self, phase: str, frame: int | None) -> Change | None:
        """Set ED or ES (``phase`` "ed"/"es") to ``frame`` or None (undoable)."""
        if phase not in ("ed", "es"):
            raise ValueError(f"phase must be 'ed' or 'es'; got {phase!r}")
        with self._lock:
            if frame is not None:
                (frame,) = _frame_indices([frame], self.sequence.n_frames)
            setattr(self.sequence, f"{phase}_index", None if frame is None else int(frame))
            return self.commit("phase", [])

    def set_notes(self, notes: str) -> None:
        """Replace the free-text notes (saved, not undoable)."""
        with self._lock:
            self._state.notes = str(notes)
            self._text_changed()

    def update_settings(self, **settings: Any) -> None:
        """Merge JSON-able settings into the saved ones (not undoable)."""
        with self._lock:
            self._state.settings.update(settings)
            self._text_changed()

    def undo(self) -> Change | None:
        """Undo the last change (uncommitted live edits are committed first, then undone).

        Returns the undone change (its ``frames`` need redrawing) or None.
        """
        with self._lock:
            self.commit("edit")
            change = self.history.pop_undo()
            if change is not None:
                self._apply(change, forward=False, live=True)
            return change

    def redo(self) -> Change | None:
        """Redo the last undone change; returns it, or None."""
        with self._lock:
            self.commit("edit")
            change = self.history.pop_redo()
            if change is not None:
                self._apply(change, forward=True, live=True)
            return change

    def _apply(self, change: Change, forward: bool, live: bool) -> None:
        st, seq = self._state, self.sequence
        for d in change.diffs:
            values = d.new if forward else d.old
            st.labels[d.frame].reshape(-1)[d.index] = values
            if live:
                seq.labels[d.frame].put(d.index, values)
        for t, (old, new) in change.records.items():
            record = new if forward else old
            st.provenance[t], st.times[t], st.authors[t] = (
                record.provenance,
                record.time,
                record.author,
            )
            if live:
                seq.provenance[t] = record.provenance
        if change.keyframes is not None:
            st.keyframes = set(change.keyframes[1 if forward else 0])
            if live:
                seq.keyframes.clear()
                seq.keyframes.update(st.keyframes)
        if change.phases is not None:
            st.ed_index, st.es_index = change.phases[1 if forward else 0]
            if live:
                seq.ed_index, seq.es_index = st.ed_index, st.es_index
        st.revision += 1
        touched = set(change.frames.tolist())
        for target in (self._file, self._auto):
            target.dirty |= touched
            target.edits += 1

    def _text_changed(self) -> None:
        self._state.revision += 1
        for target in (self._file, self._auto):
            target.text_dirty = True
            target.edits += 1


# -- helpers ------------------------------------------------------------------------------
def _frame_indices(frames: Iterable[int], n: int) -> np.ndarray:
    idx = np.unique(np.fromiter((int(t) for t in frames), dtype=np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= n):
        raise SequenceError(f"frames {idx.tolist()[:8]} outside 0..{n - 1}")
    return idx
