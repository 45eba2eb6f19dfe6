"""Saving a :class:`~echo_napari.session.Session`: the user's file and its autosave.

Each file has a :class:`Target` that remembers the ``save_id`` we last wrote there, the
frames changed since, and the file's freshly written size. A save snapshots the dirty
frames under the session's lock (milliseconds) and writes outside it: incremental when
the file on disk is the one we last wrote and has not grown too much, else in full.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.session_autosave import autosave_path, move_aside
from echo_napari.session_read import read_header
from echo_napari.session_store import (
    SessionError,
    SessionState,
    SourceRef,
    sha256_of_file,
    write_full,
    write_incremental,
)

logger = logging.getLogger(__name__)

#: A file this many times its freshly written size (+1 MiB) gets a full, compacting write.
COMPACT_FACTOR = 2.0


@dataclass(frozen=True)
class SaveReport:
    """What one save did: ``mode`` "full" or "incremental", frames rewritten, seconds."""

    path: Path
    mode: str
    frames_written: int
    revision: int
    seconds: float
    size_bytes: int


@dataclass
class Target:
    """Write bookkeeping for one file (the user's file or its autosave)."""

    path: Path
    save_id: str | None = None  # what we last wrote or read there; None: nothing of ours
    incremental_ok: bool = False
    dirty: set[int] = field(default_factory=set)
    text_dirty: bool = True
    edits: int = 0
    last_write: float = field(default_factory=time.monotonic)
    compact_size: int = 0


def _record_copy(state: SessionState, **changes: Any) -> SessionState:
    return dataclasses.replace(
        state,
        provenance=list(state.provenance),
        times=state.times.copy(),
        authors=list(state.authors),
        keyframes=set(state.keyframes),
        settings=dict(state.settings),
        metadata=dict(state.metadata),
        **changes,
    )


class SavingMixin:
    """Save and autosave methods of :class:`~echo_napari.session.Session`."""

    path: Path
    sequence: Any
    session_uid: str
    _state: SessionState
    _lock: Any
    _io_lock: Any
    _file: Target
    _auto: Target
    _migrated_from: str | None
    _frames: Any

    # -- saving -------------------------------------------------------------------------
    def save(
        self, path: str | Path | None = None, *, overwrite: bool = False, force: bool = False
    ) -> SaveReport:
        """Write the committed state to the user's file (atomically).

        Parameters
        ----------
        path : save under a new name ("save as"); the session then lives there
        overwrite : allow replacing an existing file this session did not come from
        force : replace the file even when it changed on disk since it was opened

        Raises
        ------
        SessionError
            When the write would replace someone else's file or fails.
        """
        with self._io_lock:
            target = self._file
            renamed = path is not None and Path(path) != self.path
            if renamed:
                target = Target(Path(path), edits=1)
            self._check_user_file(target, overwrite, force)
            if force or overwrite:
                target.incremental_ok = False  # what is on disk is not what we last wrote
            if renamed:
                self.path, self._file = target.path, target
                self._auto = Target(autosave_path(self.path))
                self._migrated_from = None  # the old-format file stays where it was
            if self._migrated_from is not None and target.path.exists():
                backup = target.path.with_name(target.path.name + ".bak")
                n = 0
                while backup.exists():
                    n += 1
                    backup = target.path.with_name(f"{target.path.name}.{n}.bak")
                shutil.copy2(target.path, backup)
                logger.info("kept the %s original as %s", self._migrated_from, backup)
                self._migrated_from = None
            return self._write(target, {})

    def _check_user_file(self, target: Target, overwrite: bool, force: bool) -> None:
        if not target.path.exists() or force:
            return
        if target.save_id is None:
            if self._migrated_from is not None or overwrite:
                return
            raise SessionError(
                target.path,
                "exists and is not this session's file; save under another name or pass "
                "overwrite=True",
            )
        try:
            found = read_header(target.path).save_id
        except SessionError as exc:
            raise SessionError(
                target.path, f"on-disk file is no longer readable ({exc.reason}); pass force=True"
            ) from exc
        if found != target.save_id:
            raise SessionError(
                target.path,
                "changed on disk since this session opened or saved it; save under another "
                "name, or pass force=True to replace it",
            )

    def close(self) -> bool:
        """End the session cleanly: delete the autosave when the user's file holds all of
        its work (the autosave is kept while saves happen, so that later autosaves stay
        incremental). Returns True when the user's file is up to date."""
        with self._io_lock:
            if self._file.edits or self._file.save_id is None:
                return False
            self._drop_autosave(self._state.revision)
            return True

    def _drop_autosave(self, saved_revision: int) -> None:
        sibling = self._auto.path
        try:
            if sibling.exists() and read_header(sibling).revision <= saved_revision:
                sibling.unlink()
                self._auto = Target(sibling)
        except SessionError:
            logger.warning("left unreadable autosave %s in place", sibling)

    def autosave_due(self, interval_s: float, every_n_edits: int) -> bool:
        """Whether :meth:`autosave` has work: ≥ ``every_n_edits`` changes, or any change
        and ``interval_s`` seconds since the last autosave."""
        target = self._auto
        if target.edits == 0:
            return False
        waited = time.monotonic() - target.last_write
        return target.edits >= every_n_edits or waited >= interval_s

    def autosave(self) -> SaveReport | None:
        """Write the committed state to ``<name>.autosave.h5`` (never the user's file).

        Returns None when there is nothing new to save, or a save is in progress.
        """
        if not self._io_lock.acquire(blocking=False):
            return None
        try:
            target = self._auto
            if target.edits == 0 and target.path.exists() and target.save_id is not None:
                return None
            if target.save_id is None and target.path.exists():
                self._claim_autosave(target)
            return self._write(target, {"autosave_of": str(self.path)})
        finally:
            self._io_lock.release()

    def _claim_autosave(self, target: Target) -> None:
        """Keep an autosave file we did not write: move it aside unless it is ours."""
        try:
            mine = read_header(target.path).session_uid == self.session_uid
        except SessionError:
            mine = False
        if not mine:
            move_aside(target.path)

    def _write(self, target: Target, extra: dict[str, Any]) -> SaveReport:
        start = time.perf_counter()
        with self._lock:
            st = self._state
            incremental = (
                target.incremental_ok
                and target.save_id is not None
                and target.path.exists()
                and target.path.stat().st_size <= COMPACT_FACTOR * target.compact_size + 1024**2
            )
            dirty, text_dirty, edits = set(target.dirty), target.text_dirty, target.edits
            if incremental:
                snapshot = _record_copy(st)
                frame_labels = {t: st.labels[t].copy() for t in dirty}
            else:
                snapshot = _record_copy(st, labels=st.labels.copy())
            target.dirty, target.text_dirty, target.edits = set(), False, 0
        try:
            if incremental:
                save_id = write_incremental(
                    target.path, snapshot, frame_labels, target.save_id, text_dirty, extra
                )
            else:
                frames = self._embedded_frames() if snapshot.source.embedded else None
                save_id = write_full(target.path, snapshot, frames, extra)
        except BaseException:
            with self._lock:
                target.dirty |= dirty
                target.text_dirty |= text_dirty
                target.edits += edits
            raise
        size = target.path.stat().st_size
        target.save_id, target.incremental_ok = save_id, True
        target.last_write = time.monotonic()
        if not incremental:
            target.compact_size = size
        seconds = time.perf_counter() - start
        written = len(dirty) if incremental else snapshot.labels.shape[0]
        mode = "incremental" if incremental else "full"
        logger.debug("%s save of %s: %d frames, %.3f s", mode, target.path, written, seconds)
        return SaveReport(target.path, mode, written, snapshot.revision, seconds, size)

    def _embedded_frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames = self.sequence.frames
        return self._frames


def load_source(
    path: Path, state: SessionState, source: str | Path | None, verify: bool
) -> tuple[Any, SourceRef]:
    """Read the frames a session references; check hash and shape."""
    from echo_napari.io import read_sequence

    ref = state.source
    location = Path(source) if source is not None else Path(ref.path)
    if not ref.path and source is None:
        raise SessionError(path, "the session neither embeds frames nor names a source file")
    if not location.is_file():
        raise SessionError(
            path,
            f"its source file {location} is missing; open with source=<new location>",
        )
    if verify and ref.sha256:
        digest = sha256_of_file(location)
        if digest != ref.sha256:
            raise SessionError(
                path,
                f"source {location.name} differs from the file the session was made on "
                f"(sha256 {digest[:12]}… vs {ref.sha256[:12]}…); open with "
                "verify_source=False to use it anyway",
            )
    try:
        seq = read_sequence(location, key=ref.key or None)
    except EchoIOError as exc:
        raise SessionError(path, f"cannot read its source ({exc})") from exc
    if tuple(seq.frames.shape) != tuple(state.labels.shape):
        raise SessionError(
            path,
            f"source {location.name} has shape {tuple(seq.frames.shape)}; the session's "
            f"labels are {tuple(state.labels.shape)}",
        )
    return seq.frames, dataclasses.replace(ref, path=str(location.resolve()))
