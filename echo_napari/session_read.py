"""Reading session files: signature and schema checks, the current layout, migrations.

The layout is documented in :mod:`echo_napari.session_store`. Every failure is a
:class:`~echo_napari.session_store.SessionError` naming the file; files are opened read
only, so a failed read leaves them byte-for-byte as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import check_labels, check_spacing
from echo_napari.sequence import FrameProvenance
from echo_napari.session_store import (
    HDF5_MAGIC,
    KIND_BY_CODE,
    SCHEMA_PREFIX,
    SESSION_SCHEMA,
    FileHeader,
    SessionError,
    SessionState,
    SourceRef,
    new_state,
)


def check_hdf5(path: str | Path) -> Path:
    """Refuse missing, empty and non-HDF5 files with a :class:`SessionError`."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(path, "session file not found")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head != HDF5_MAGIC:
        raise SessionError(
            path, f"not a session file: expected the HDF5 signature, found bytes {head!r}"
        )
    return path


def _open_read(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise SessionError(path, f"truncated or corrupt HDF5 file ({exc})") from exc


def _text_attr(attrs: Any, name: str, default: str = "") -> str:
    value = attrs.get(name, default)
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_header(path: str | Path) -> FileHeader:
    """Root facts of a session file (schema checked); :class:`SessionError` otherwise."""
    path = check_hdf5(path)
    with _open_read(path) as handle:
        try:
            attrs = handle.attrs
            schema = _text_attr(attrs, "schema")
            _check_schema(path, schema, handle)
            return FileHeader(
                path=path,
                schema=schema,
                session_uid=_text_attr(attrs, "session_uid"),
                revision=int(attrs.get("revision", 0)),
                save_id=_text_attr(attrs, "save_id"),
                saved_at=float(attrs.get("saved_at", 0.0)),
                autosave_of=_text_attr(attrs, "autosave_of"),
            )
        except SessionError:
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise SessionError(path, f"corrupt session header ({exc})") from exc


def _check_schema(path: Path, schema: str, handle: Any) -> None:
    if schema == SESSION_SCHEMA or schema in MIGRATIONS:
        return
    if schema.startswith(SCHEMA_PREFIX):
        raise SessionError(
            path,
            f"session schema {schema!r} is not one this version reads ({SESSION_SCHEMA!r} "
            f"or {sorted(MIGRATIONS)}); update echo-napari",
        )
    found = f"schema {schema!r}" if schema else f"no schema attribute; top level {list(handle)}"
    raise SessionError(path, f"not an echo-napari session file ({found})")


def read_session_file(path: str | Path, load_frames: bool = True) -> tuple[SessionState, Any]:
    """Read a session file (any readable schema, migrated) into memory.

    Returns
    -------
    (SessionState, frames)
        frames : (T, H, W) float32 in [0, 1] when embedded and ``load_frames``, else None.

    Raises
    ------
    SessionError
        For a missing, non-HDF5, truncated, foreign or inconsistent file.
    """
    path = check_hdf5(path)
    with _open_read(path) as handle:
        try:
            schema = _text_attr(handle.attrs, "schema")
            _check_schema(path, schema, handle)
            if schema != SESSION_SCHEMA:
                return MIGRATIONS[schema](path, handle)
            return _read_current(path, handle, load_frames)
        except (SessionError, EchoIOError):
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise SessionError(path, f"corrupt session content ({exc})") from exc


def _read_current(path: Path, handle: Any, load_frames: bool) -> tuple[SessionState, Any]:
    attrs = handle.attrs
    shape = tuple(int(v) for v in attrs["frame_shape"])
    if len(shape) != 3 or min(shape) < 1:
        raise SessionError(path, f"frame_shape {shape} is not (T, H, W)")
    n = shape[0]
    try:
        labels = check_labels(path, handle["labels"][()], shape)
    except EchoIOError as exc:
        raise SessionError(path, exc.reason) from exc
    prov = handle["provenance"]
    columns = {name: prov[name] for name in ("kind", "model", "version", "time", "author")}
    for name, column in columns.items():
        if column.shape != (n,):
            raise SessionError(
                path, f"provenance/{name} has shape {column.shape}; expected ({n},)"
            )
    codes = columns["kind"][()]
    unknown = sorted(set(np.unique(codes).tolist()) - set(KIND_BY_CODE))
    if unknown:
        raise SessionError(path, f"provenance/kind holds unknown codes {unknown}")
    models = columns["model"].asstr()[()]
    versions = columns["version"].asstr()[()]
    provenance = [
        FrameProvenance(KIND_BY_CODE[int(c)], str(m), str(v))
        for c, m, v in zip(codes, models, versions, strict=True)
    ]
    key_mask = np.asarray(handle["keyframes"][()])
    if key_mask.shape != (n,):
        raise SessionError(path, f"keyframes has shape {key_mask.shape}; expected ({n},)")
    indices = {}
    for name in ("ed_index", "es_index"):
        value = int(attrs.get(name, -1))
        if not -1 <= value < n:
            raise SessionError(path, f"{name}={value} outside 0..{n - 1}")
        indices[name] = None if value < 0 else value
    spacing = None
    if "spacing" in attrs:
        try:
            spacing = check_spacing(path, tuple(np.asarray(attrs["spacing"]).ravel()))
        except EchoIOError as exc:
            raise SessionError(path, exc.reason) from exc
    frame_time = float(attrs["frame_time_ms"]) if "frame_time_ms" in attrs else None
    texts = {}
    for name in ("settings", "metadata"):
        try:
            texts[name] = json.loads(handle[name].asstr()[()])
        except json.JSONDecodeError as exc:
            raise SessionError(path, f"/{name} is not JSON ({exc})") from exc
        if not isinstance(texts[name], dict):
            raise SessionError(path, f"/{name} is not a JSON object")
    src = handle["source"].attrs
    source = SourceRef(
        path=_text_attr(src, "path"),
        key=_text_attr(src, "key"),
        sha256=_text_attr(src, "sha256"),
        size=int(src.get("size", -1)),
        embedded=bool(src.get("embedded", False)),
    )
    frames = None
    if source.embedded:
        node = handle["frames"]
        if tuple(node.shape) != shape:
            raise SessionError(path, f"/frames shape {node.shape} differs from {shape}")
        if load_frames:
            frames = np.asarray(node[()], dtype=np.float32)
    state = SessionState(
        labels=labels,
        provenance=provenance,
        times=np.asarray(columns["time"][()], dtype=np.float64),
        authors=[str(a) for a in columns["author"].asstr()[()]],
        keyframes={int(t) for t in np.flatnonzero(key_mask)},
        spacing=spacing,
        frame_time_ms=frame_time,
        view=_text_attr(attrs, "view", "unknown"),
        notes=str(handle["notes"].asstr()[()]),
        settings=texts["settings"],
        metadata=texts["metadata"],
        source=source,
        session_uid=_text_attr(attrs, "session_uid"),
        revision=int(attrs.get("revision", 0)),
        created_at=float(attrs.get("created_at", 0.0)),
        **indices,
    )
    return state, frames


def _from_sequence_v1(path: Path, handle: Any) -> tuple[SessionState, Any]:
    """Migrate an ``echo-napari-sequence/1`` file: frames embedded, labels, provenance."""
    from echo_napari.io.hdf5 import read_hdf5_sequence

    seq = read_hdf5_sequence(path)
    labels = seq.ensure_labels()
    metadata = dict(seq.metadata)
    metadata["migrated_from"] = {"schema": "echo-napari-sequence/1", "path": str(path)}
    state = new_state(seq, labels=labels, metadata=metadata, source=SourceRef(embedded=True))
    return state, np.asarray(seq.frames, dtype=np.float32)


#: Readers of older schemas, each returning the state in the current layout.
MIGRATIONS: dict[str, Callable[[Path, Any], tuple[SessionState, Any]]] = {
    "echo-napari-sequence/1": _from_sequence_v1,
}
