"""The session file: HDF5 layout, atomic full and incremental writes, reading, migration.

Layout (schema :data:`SESSION_SCHEMA`), readable with plain h5py::

    /                      attrs: schema, session_uid, revision (int, +1 per change),
                           save_id (new per write), saved_at, created_at (unix s),
                           frame_shape (T, H, W), ed_index, es_index (-1 = none),
                           view, spacing (dy, dx mm; absent = unknown),
                           frame_time_ms (absent = unknown), autosave_of (autosaves only)
    /source                attrs: path, key (HDF5 key or ""), sha256 (hex), size (bytes),
                           embedded (bool)
    /frames                (T, H, W) float32 in [0, 1], chunks (1, H, W), gzip; only when
                           embedded, else the frames are read from /source path
    /labels                (T, H, W) uint8 LabelClass values, chunks (1, H, W), gzip
    /keyframes             (T,) bool, True where a human set or accepted the labels
    /provenance/kind       (T,) enum uint8 {none: 0, manual: 1, propagated: 2, predicted: 3}
    /provenance/model      (T,) str   model name ("" for manual/none)
    /provenance/version    (T,) str   model version
    /provenance/time       (T,) float64 unix seconds of the last change, NaN = never
    /provenance/author     (T,) str   who made the last change
    /notes                 scalar str   free text
    /settings              scalar str   JSON object: the settings used (propagation, model…)
    /metadata              scalar str   JSON object: the sequence's metadata

e.g. ``h5py.File(p)["labels"][10]`` is frame 10's labels and
``np.flatnonzero(h5py.File(p)["keyframes"][()])`` the keyframes.

Writes are atomic: a full write goes to a temporary file in the same folder (through
:func:`echo_napari.io._common.atomic_output`), is flushed and fsynced, then moved over the
target with :func:`os.replace` and the folder fsynced. An *incremental* write copies the
current file (``shutil.copyfile``: a kernel-side copy), rewrites only the dirty frames'
label chunks and per-frame entries plus the small root attributes in the copy, fsyncs and
replaces the same way, so a one-frame save costs a file copy and one chunk, not a
recompression of every frame. A crash at any moment leaves either the old or the new file.
In-place chunk rewrites can leave unused space in the file; once it grows past twice its
freshly written size (+1 MiB) the next save is a full (compacting) write.

Reading is in :mod:`echo_napari.session_read`. Older layouts are migrated when read
(:data:`echo_napari.session_read.MIGRATIONS`): an ``echo-napari-sequence/1``
file (:func:`echo_napari.io.hdf5.write_hdf5_sequence`) opens as a session with embedded
frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoNapariError
from echo_napari.io._common import atomic_output, json_default
from echo_napari.sequence import EchoSequence, FrameProvenance, ProvenanceKind

logger = logging.getLogger(__name__)

SESSION_SCHEMA = "echo-napari-session/1"
SCHEMA_PREFIX = "echo-napari-session/"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KIND_CODES: dict[ProvenanceKind, int] = {
    ProvenanceKind.NONE: 0,
    ProvenanceKind.MANUAL: 1,
    ProvenanceKind.PROPAGATED: 2,
    ProvenanceKind.PREDICTED: 3,
}
KIND_BY_CODE = {code: kind for kind, code in KIND_CODES.items()}
_HASH_CHUNK = 1 << 20


class SessionError(EchoNapariError):
    """A session file is missing, foreign, corrupt, of an unknown schema, or would be lost.

    Parameters
    ----------
    path : str or Path
        The session (or source) file concerned.
    reason : str
        What was expected, what was found and the fix.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


@dataclass(frozen=True)
class SourceRef:
    """Where a session's frames come from.

    Parameters
    ----------
    path : absolute path of the source file ("" when the frames exist only embedded)
    key : HDF5 sequence key (``"patient0001/4CH"``) or ""
    sha256 : hex digest of the source file's bytes ("" when unknown)
    size : bytes of the source file (-1 when unknown)
    embedded : whether ``/frames`` holds a copy of the frames
    """

    path: str = ""
    key: str = ""
    sha256: str = ""
    size: int = -1
    embedded: bool = False


@dataclass
class SessionState:
    """Everything a session file holds except the frames (mutable working copy).

    ``labels`` (T, H, W) uint8; ``provenance`` length T; ``times`` (T,) float64 unix s
    (NaN = never changed); ``authors`` length T; ``keyframes`` set of frame indices.
    """

    labels: np.ndarray
    provenance: list[FrameProvenance]
    times: np.ndarray
    authors: list[str]
    keyframes: set[int]
    ed_index: int | None = None
    es_index: int | None = None
    spacing: tuple[float, float] | None = None
    frame_time_ms: float | None = None
    view: str = "unknown"
    notes: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: SourceRef = field(default_factory=SourceRef)
    session_uid: str = ""
    revision: int = 0
    created_at: float = 0.0


@dataclass(frozen=True)
class FileHeader:
    """The root facts of a session file, read without loading any array."""

    path: Path
    schema: str
    session_uid: str
    revision: int
    save_id: str
    saved_at: float
    autosave_of: str


def is_session_file(path: str | Path) -> bool:
    """True when ``path`` is an HDF5 file whose root ``schema`` is a session schema."""
    p = Path(path)
    if not p.is_file() or p.suffix.lower() not in (".h5", ".hdf5"):
        return False
    import h5py

    try:
        with h5py.File(p, "r") as handle:
            schema = handle.attrs.get("schema", "")
    except (OSError, ValueError):
        return False
    if isinstance(schema, bytes):
        schema = schema.decode("utf-8", "replace")
    return str(schema).startswith(SCHEMA_PREFIX)


def sha256_of_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, default=json_default, sort_keys=True)


def fsync_path(path: str | Path, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to the disk; folders ignore unsupported OSes."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def state_from_sequence(
    seq: EchoSequence, settings: dict[str, Any], notes: str, embed: bool | None
) -> SessionState:
    """A new session's state from a sequence: labels copied, a new ``session_uid``,
    revision 0; the source file (``metadata["source"]``) hashed when referenced."""
    source_path = str(seq.metadata.get("source") or "")
    has_file = bool(source_path) and Path(source_path).is_file()
    if embed is None:
        embed = not has_file
    if not embed and not has_file:
        raise SessionError(
            source_path or "sequence",
            "no source file to reference (metadata['source'] is not a file); "
            "create the session with embed_frames=True",
        )
    source = SourceRef(embedded=embed)
    if has_file:
        resolved = Path(source_path).resolve()
        source = SourceRef(
            path=str(resolved),
            key=str(seq.metadata.get("hdf5_key") or ""),
            sha256=sha256_of_file(resolved),
            size=resolved.stat().st_size,
            embedded=embed,
        )
    return new_state(
        seq,
        labels=seq.labels.copy(),
        metadata=dict(seq.metadata),
        source=source,
        notes=notes,
        settings=dict(settings),
    )


def new_state(
    seq: EchoSequence,
    *,
    labels: np.ndarray,
    metadata: dict[str, Any],
    source: SourceRef,
    notes: str = "",
    settings: dict[str, Any] | None = None,
) -> SessionState:
    """Revision 0 of a new session (fresh ``session_uid``, no edit times or authors) with
    the sequence's provenance, keyframes, ED/ES, spacing, frame time and view."""
    n = seq.n_frames
    return SessionState(
        labels=labels,
        provenance=list(seq.provenance),
        times=np.full(n, math.nan),
        authors=[""] * n,
        keyframes=set(seq.keyframes),
        ed_index=seq.ed_index,
        es_index=seq.es_index,
        spacing=seq.spacing,
        frame_time_ms=seq.frame_time_ms,
        view=seq.view,
        notes=notes,
        settings={} if settings is None else settings,
        metadata=metadata,
        source=source,
        session_uid=os.urandom(16).hex(),
        revision=0,
        created_at=time.time(),
    )


# -- writing --------------------------------------------------------------------------------
def _kind_dtype() -> Any:
    import h5py

    return h5py.enum_dtype({k.value: c for k, c in KIND_CODES.items()}, basetype="u1")


def _set_root_attrs(handle: Any, state: SessionState, save_id: str, extra: dict) -> None:
    attrs = handle.attrs
    attrs["schema"] = SESSION_SCHEMA
    attrs["session_uid"] = state.session_uid
    attrs["revision"] = np.int64(state.revision)
    attrs["save_id"] = save_id
    attrs["saved_at"] = time.time()
    attrs["created_at"] = float(state.created_at)
    attrs["frame_shape"] = np.asarray(state.labels.shape, dtype=np.int64)
    attrs["ed_index"] = -1 if state.ed_index is None else int(state.ed_index)
    attrs["es_index"] = -1 if state.es_index is None else int(state.es_index)
    attrs["view"] = state.view
    for name, value in (("spacing", state.spacing), ("frame_time_ms", state.frame_time_ms)):
        if value is None:
            if name in attrs:
                del attrs[name]
        else:
            attrs[name] = np.asarray(value, dtype=np.float64)
    for name, value in extra.items():
        attrs[name] = value


def _write_text(handle: Any, name: str, text: str) -> None:
    import h5py

    if name in handle:
        del handle[name]
    handle.create_dataset(name, data=text, dtype=h5py.string_dtype())


def _write_source_attrs(group: Any, source: SourceRef, embedded: bool) -> None:
    for name, value in (
        ("path", source.path),
        ("key", source.key),
        ("sha256", source.sha256),
        ("size", np.int64(source.size)),
        ("embedded", embedded),
    ):
        group.attrs[name] = value


def _write_frame_entries(handle: Any, state: SessionState, frames: Iterable[int]) -> None:
    prov = handle["provenance"]
    for t in frames:
        p = state.provenance[t]
        prov["kind"][t] = KIND_CODES[p.kind]
        prov["model"][t] = p.model
        prov["version"][t] = p.version
        prov["time"][t] = state.times[t]
        prov["author"][t] = state.authors[t]


def write_full(
    path: str | Path,
    state: SessionState,
    frames: np.ndarray | None,
    extra_attrs: dict[str, Any] | None = None,
) -> str:
    """Write the whole session file atomically; return the new ``save_id``.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1], written to ``/frames`` when given (embedded
        copy); None to reference ``state.source`` only.
    """
    import h5py

    path = Path(path)
    t, h, w = state.labels.shape
    save_id = os.urandom(8).hex()
    try:
        with atomic_output(path) as tmp:
            target = tmp / path.name
            with h5py.File(target, "w") as handle:
                _set_root_attrs(handle, state, save_id, extra_attrs or {})
                embedded = frames is not None
                _write_source_attrs(handle.create_group("source"), state.source, embedded)
                chunk = {"chunks": (1, h, w), "compression": "gzip", "compression_opts": 4}
                if embedded:
                    out = handle.create_dataset("frames", (t, h, w), np.float32, **chunk)
                    step = max(1, (32 * 1024**2) // (h * w * 4))
                    for start in range(0, t, step):
                        out[start : start + step] = np.asarray(
                            frames[start : start + step], dtype=np.float32
                        )
                handle.create_dataset("labels", data=state.labels, **chunk)
                mask = np.zeros(t, dtype=bool)
                mask[sorted(state.keyframes)] = True
                handle.create_dataset("keyframes", data=mask)
                prov = handle.create_group("provenance")
                codes = np.array([KIND_CODES[p.kind] for p in state.provenance], np.uint8)
                prov.create_dataset("kind", data=codes, dtype=_kind_dtype())
                strings = h5py.string_dtype()
                for name, values in (
                    ("model", [p.model for p in state.provenance]),
                    ("version", [p.version for p in state.provenance]),
                    ("author", state.authors),
                ):
                    prov.create_dataset(name, data=np.array(values, dtype=object), dtype=strings)
                prov.create_dataset("time", data=np.asarray(state.times, dtype=np.float64))
                _write_text(handle, "notes", state.notes)
                _write_text(handle, "settings", _dumps(state.settings))
                _write_text(handle, "metadata", _dumps(state.metadata))
            fsync_path(target)
    except OSError as exc:
        raise SessionError(path, f"could not write the session file ({exc})") from exc
    fsync_path(path.parent, directory=True)
    return save_id


def write_incremental(
    path: str | Path,
    state: SessionState,
    frame_labels: Mapping[int, np.ndarray],
    expected_save_id: str,
    text_dirty: bool = True,
    extra_attrs: dict[str, Any] | None = None,
) -> str:
    """Update the session file by copying it and rewriting only the dirty frames.

    Parameters
    ----------
    state : the current session; its ``labels`` array is not read
    frame_labels : {frame: (H, W) uint8} current labels of every dirty frame
    expected_save_id : the ``save_id`` of the file as last written; when the file on disk
        has another, :class:`SessionError` is raised and nothing is replaced

    Returns
    -------
    str
        The new ``save_id``.
    """
    import h5py

    path = Path(path)
    frames = sorted(int(t) for t in frame_labels)
    save_id = os.urandom(8).hex()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as handle:
            found = str(handle.attrs.get("save_id", ""))
            if found != expected_save_id:
                raise SessionError(
                    path, f"changed on disk since it was last saved (save_id {found!r})"
                )
            labels = handle["labels"]
            for t in frames:
                labels[t] = frame_labels[t]
            _write_frame_entries(handle, state, frames)
            mask = np.zeros(state.labels.shape[0], dtype=bool)
            mask[sorted(state.keyframes)] = True
            handle["keyframes"][...] = mask
            if text_dirty:
                _write_text(handle, "notes", state.notes)
                _write_text(handle, "settings", _dumps(state.settings))
                _write_text(handle, "metadata", _dumps(state.metadata))
            source = handle["source"]
            _write_source_attrs(source, state.source, bool(source.attrs.get("embedded")))
            _set_root_attrs(handle, state, save_id, extra_attrs or {})
        fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise SessionError(path, f"could not update the session file ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent, directory=True)
    return save_id
