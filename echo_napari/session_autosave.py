"""Autosave files beside a session, crash recovery, and the background autosave thread.

An autosave of ``study.h5`` goes to ``study.autosave.h5`` in the same folder (never over
the user's file). After a crash :func:`find_recovery` tells whether that autosave holds
newer work than the user's file; :func:`recover` loads it and :func:`discard_recovery`
moves it aside (renamed with a time stamp, never deleted).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from echo_napari.io._common import full_suffix
from echo_napari.session_read import read_header, read_session_file
from echo_napari.session_store import SESSION_SCHEMA, SessionError

if TYPE_CHECKING:
    from echo_napari.session import Session

logger = logging.getLogger(__name__)


def autosave_path(path: str | Path) -> Path:
    """The autosave sibling of a session file: ``a/study.h5`` → ``a/study.autosave.h5``."""
    path = Path(path)
    suffix = full_suffix(path)
    stem = path.name[: -len(suffix)] if suffix in (".h5", ".hdf5") else path.name
    return path.with_name(f"{stem}.autosave.h5")


def move_aside(path: str | Path) -> Path:
    """Rename ``path`` to ``<name>.<YYYYmmdd-HHMMSS>[-n].bak`` beside it; return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{stamp}-{n}.bak")
        n += 1
    os.replace(path, target)
    logger.warning("%s moved aside to %s", path, target.name)
    return target


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files a killed writer left beside ``path`` and its autosave.

    Writes go to ``.<name>.<random>.tmp`` (files or folders) before the atomic rename; a
    crash leaves them behind. Assumes one writer per session file (call it on open).
    """
    import shutil

    path = Path(path)
    removed = []
    for name in (path.name, autosave_path(path).name):
        for stale in path.parent.glob(f".{name}.*.tmp"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed.append(stale)
    if removed:
        logger.info("removed %d temporary files left by an interrupted save", len(removed))
    return removed


@dataclass(frozen=True)
class RecoveryInfo:
    """A newer autosave found beside a session file.

    ``file_revision`` / ``file_saved_at`` are None when the user's file is missing or
    unreadable; ``same_session`` is False when the autosave came from another session
    (another ``session_uid``) that used the same path. Times are unix seconds.
    """

    path: Path
    autosave_path: Path
    autosave_revision: int
    autosave_saved_at: float
    file_revision: int | None
    file_saved_at: float | None
    same_session: bool


def find_recovery(path: str | Path) -> RecoveryInfo | None:
    """Report an autosave beside ``path`` that holds work newer than ``path``.

    Newer means: the user's file is missing or unreadable, or it comes from the same
    session with a lower revision, or from another session and was saved earlier.
    Autosaves are written atomically, so a crash never leaves a half-written one; an
    unreadable (foreign or damaged) autosave is logged and ignored.
    """
    path = Path(path)
    sibling = autosave_path(path)
    if not sibling.is_file():
        return None
    try:
        auto = read_header(sibling)
    except SessionError as exc:
        logger.warning("ignoring unreadable autosave %s (%s)", sibling, exc.reason)
        return None
    try:
        user = read_header(path) if path.exists() else None
    except SessionError as exc:
        logger.warning("session file %s unreadable (%s); its autosave is offered", path, exc)
        user = None
    same = user is not None and user.session_uid == auto.session_uid
    if user is not None:
        newer = auto.revision > user.revision if same else auto.saved_at > user.saved_at
        if not newer:
            return None
    return RecoveryInfo(
        path=path,
        autosave_path=sibling,
        autosave_revision=auto.revision,
        autosave_saved_at=auto.saved_at,
        file_revision=None if user is None else user.revision,
        file_saved_at=None if user is None else user.saved_at,
        same_session=same,
    )


def discard_recovery(path: str | Path) -> Path | None:
    """Move the autosave of ``path`` aside (kept as a ``.bak`` file); return its new path."""
    sibling = autosave_path(path)
    return move_aside(sibling) if sibling.exists() else None


class Autosaver:
    """Background thread calling :meth:`Session.autosave` when work is due.

    Due means: at least ``every_n_edits`` changes since the last autosave, or any change
    and ``interval_s`` seconds since the last autosave. The GUI thread is blocked only
    while the session copies the changed frames (under its lock), never during file IO.

    Parameters
    ----------
    session : the session to autosave
    interval_s : seconds between autosaves while there are unsaved changes
    every_n_edits : autosave as soon as this many changes accumulated
    poll_s : how often the thread checks, seconds
    on_error : called with the exception when an autosave fails (the thread goes on)
    """

    def __init__(
        self,
        session: Session,
        interval_s: float = 30.0,
        every_n_edits: int = 20,
        poll_s: float = 0.25,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.session = session
        self.interval_s = float(interval_s)
        self.every_n_edits = int(every_n_edits)
        self.poll_s = float(poll_s)
        self.on_error = on_error
        self.last_error: Exception | None = None
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Autosaver:
        """Start the thread (a daemon); returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="echo-autosave", daemon=True)
            self._thread.start()
        return self

    def stop(self, final_save: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread; with ``final_save`` autosave pending changes once more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if final_save:
            self._tick(force=True)

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._tick(force=False)

    def _tick(self, force: bool) -> None:
        if not (force or self.session.autosave_due(self.interval_s, self.every_n_edits)):
            return
        try:
            if self.session.autosave() is not None:
                self.count += 1
        except Exception as exc:  # the thread must survive a full disk or a moved folder
            self.last_error = exc
            logger.error("autosave of %s failed: %s", self.session.path, exc)
            if self.on_error is not None:
                self.on_error(exc)


class RecoveryAvailableError(SessionError):
    """Opening a session whose autosave holds newer work; ``info`` says which.

    Open again with ``recovery="use"`` (load the autosave) or ``recovery="discard"``
    (move the autosave aside and open the file).
    """

    def __init__(self, info: RecoveryInfo) -> None:
        self.info = info
        super().__init__(
            info.path,
            f"an autosave ({info.autosave_path.name}, revision {info.autosave_revision}) is "
            "newer than this file; open with recovery='use' or recovery='discard'",
        )


def recover(
    path: str | Path,
    *,
    source: str | Path | None = None,
    verify_source: bool = True,
    author: str = "",
    history_bytes: int = 64 * 1024**2,
) -> Session:
    """Load the autosave of ``path`` as a session that saves to ``path``.

    The user's file is not touched until :meth:`Session.save`; it then gets the whole
    recovered state (a full write; a file of an older schema or an unreadable one is first
    copied to ``<name>.bak``). :meth:`Session.close` removes the autosave once saved.

    Raises
    ------
    SessionError
        When there is no readable autosave.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    sibling = autosave_path(path)
    state, frames = read_session_file(sibling)
    from echo_napari.session import Session

    session = Session._from_state(
        path, state, frames, source, verify_source, author, history_bytes
    )
    auto_header = read_header(sibling)
    session._auto.save_id = auto_header.save_id
    session._auto.incremental_ok = True
    session._auto.text_dirty = False
    session._auto.compact_size = sibling.stat().st_size
    session._file.edits = 1
    if path.exists():
        try:
            header = read_header(path)
        except SessionError:
            session._migrated_from = "unreadable"  # kept as .bak when first saved over
        else:
            session._file.save_id = header.save_id
            if header.schema != SESSION_SCHEMA:
                session._migrated_from = header.schema
    return session
