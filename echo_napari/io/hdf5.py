"""HDF5: our own sequence layout (versioned) and the DIR pseudo-label paper's CAMUS layout.

Ours (``schema`` = :data:`SCHEMA`): ``/frames`` (T, H, W) float32, ``/labels`` (T, H, W)
uint8, ``/provenance`` (T, 3) strings (kind, model, version), ``/keyframes`` int;
root attributes spacing (dy, dx mm), frame_time_ms, view, ed_index, es_index (-1 = none),
metadata (JSON).

DIR paper layout: ``/{patient}/{2CH|4CH}/data`` (T, H, W) float, ``masks`` (2, H, W) =
[ED, ES]; group attributes ED, ES (1-based, copied from CAMUS Info files), NbFrame, Sex, Age,
ImageQuality, LVedv, LVesv, LVef.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import (
    MAX_EAGER_BYTES,
    atomic_output,
    check_labels,
    check_shape,
    check_spacing,
    json_default,
    to_unit_float,
)
from echo_napari.sequence import (
    MANUAL,
    NO_PROVENANCE,
    EchoSequence,
    FrameProvenance,
    ProvenanceKind,
)

logger = logging.getLogger(__name__)

SCHEMA = "echo-napari-sequence/1"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_DIR_ATTRS = ("NbFrame", "Sex", "Age", "ImageQuality", "LVedv", "LVesv", "LVef")


def _open(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise EchoIOError(path, f"not a readable HDF5 file ({exc})") from exc


def dir_layout_keys(handle: Any) -> list[str]:
    """``patient/view`` keys of groups holding a ``data`` dataset (DIR paper layout)."""
    keys = []
    for patient in sorted(handle.keys()):
        group = handle[patient]
        if not hasattr(group, "keys"):
            continue
        for view in sorted(group.keys()):
            sub = group[view]
            if hasattr(sub, "keys") and "data" in sub:
                keys.append(f"{patient}/{view}")
    return keys


def list_hdf5_sequences(path: str | Path) -> list[str]:
    """The sequence keys in an HDF5 file ([""] for a single sequence in our layout)."""
    path = Path(path)
    with _open(path) as handle:
        try:
            if str(handle.attrs.get("schema", "")).startswith("echo-napari"):
                return [""]
            return dir_layout_keys(handle)
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise EchoIOError(path, f"corrupt HDF5 structure ({exc})") from exc


def _dataset(path: Path, handle: Any, name: str, ndim: int) -> Any:
    import h5py

    if name not in handle:
        raise EchoIOError(path, f"missing dataset '{name}'")
    node = handle[name]
    if not isinstance(node, h5py.Dataset) or node.ndim != ndim:
        raise EchoIOError(path, f"'{name}' must be a {ndim}D dataset; found {node!r}")
    if node.size * max(node.dtype.itemsize, 4) > MAX_EAGER_BYTES:
        raise EchoIOError(path, f"'{name}' of shape {node.shape} is too large to load")
    return node


def read_hdf5_sequence(path: str | Path, key: str | None = None) -> EchoSequence:
    """Read one sequence from an HDF5 file (our layout, or the DIR layout by ``key``).

    Parameters
    ----------
    key : "patient0001/4CH" for the DIR layout (default: the first group); ignored for
        files in our own layout.
    """
    path = Path(path)
    with _open(path) as handle:
        try:
            schema = str(handle.attrs.get("schema", ""))
            if schema.startswith("echo-napari-labels"):
                raise EchoIOError(path, "holds labels only (no frames); load it onto an image")
            if schema.startswith("echo-napari"):
                if schema != SCHEMA:
                    raise EchoIOError(path, f"schema {schema!r} is not {SCHEMA!r} (newer file?)")
                return _read_ours(path, handle)
            return _read_dir_layout(path, handle, key)
        except EchoIOError:
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise EchoIOError(path, f"corrupt HDF5 content ({exc})") from exc


def _attr(handle: Any, name: str, default: Any = None) -> Any:
    value = handle.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


def _read_ours(path: Path, handle: Any) -> EchoSequence:
    frames_node = _dataset(path, handle, "frames", 3)
    check_shape(path, tuple(frames_node.shape))
    frames = to_unit_float(path, frames_node[()])
    labels = None
    if "labels" in handle:
        labels = check_labels(path, _dataset(path, handle, "labels", 3)[()], frames.shape)
    n = len(frames)
    provenance = [NO_PROVENANCE] * n
    if "provenance" in handle:
        rows = _dataset(path, handle, "provenance", 2).asstr()[()]
        if rows.shape != (n, 3):
            raise EchoIOError(path, f"provenance shape {rows.shape}; expected ({n}, 3)")
        try:
            provenance = [FrameProvenance(ProvenanceKind(k), m, v) for k, m, v in rows]
        except ValueError as exc:
            raise EchoIOError(path, f"unknown provenance kind ({exc})") from exc
    keyframes: set[int] = set()
    if "keyframes" in handle:
        values = np.asarray(_dataset(path, handle, "keyframes", 1)[()])
        if not np.issubdtype(values.dtype, np.integer) or (
            values.size and (values.min() < 0 or values.max() >= n)
        ):
            raise EchoIOError(path, f"keyframes {values.tolist()[:8]} outside 0..{n - 1}")
        keyframes = {int(v) for v in values}
    spacing = _attr(handle, "spacing")
    if spacing is not None:
        spacing = check_spacing(path, tuple(np.asarray(spacing, dtype=np.float64).ravel()))
    frame_time = _attr(handle, "frame_time_ms")
    if frame_time is not None:
        frame_time = float(frame_time)
        if not (np.isfinite(frame_time) and frame_time > 0):
            raise EchoIOError(path, f"frame_time_ms={frame_time} is not a positive number")
    indices = {}
    for name in ("ed_index", "es_index"):
        value = int(_attr(handle, name, -1))
        if not -1 <= value < n:
            raise EchoIOError(path, f"{name}={value} outside 0..{n - 1}")
        indices[name] = None if value < 0 else value
    try:
        metadata = json.loads(_attr(handle, "metadata", "{}"))
    except (json.JSONDecodeError, TypeError) as exc:
        raise EchoIOError(path, f"metadata attribute is not JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise EchoIOError(path, "metadata attribute is not a JSON object")
    metadata["source"] = str(path)
    return EchoSequence(
        frames=frames,
        spacing=spacing,
        frame_time_ms=frame_time,
        view=str(_attr(handle, "view", "unknown")),
        labels=labels,
        provenance=provenance,
        keyframes=keyframes,
        metadata=metadata,
        **indices,
    )


def _read_dir_layout(path: Path, handle: Any, key: str | None) -> EchoSequence:
    keys = dir_layout_keys(handle)
    if not keys:
        raise EchoIOError(path, "neither our schema nor /{patient}/{view}/data groups found")
    if key is None:
        key = keys[0]
    elif key.strip("/") not in keys:
        raise EchoIOError(path, f"no sequence '{key}'; the file holds {keys[:5]}…")
    group = handle[key.strip("/")]
    data = _dataset(path, group, "data", 3)
    check_shape(path, tuple(data.shape))
    frames = to_unit_float(path, data[()])
    n = len(frames)
    attrs = {name: _attr(group, name) for name in ("ED", "ES", *_DIR_ATTRS)}
    if attrs["NbFrame"] is not None and int(attrs["NbFrame"]) != n:
        raise EchoIOError(path, f"{key}: NbFrame={attrs['NbFrame']} but data has {n} frames")
    indices: dict[str, int | None] = {}
    for name, attr in (("ed_index", "ED"), ("es_index", "ES")):
        value = attrs[attr]
        if value is None:
            indices[name] = None
            continue
        value = int(value)
        if not 1 <= value <= n:
            raise EchoIOError(path, f"{key}: {attr}={value} is not a frame number in 1..{n}")
        indices[name] = value - 1
    labels = None
    keyframes: set[int] = set()
    if "masks" in group:
        masks = _dataset(path, group, "masks", 3)[()]
        if masks.shape != (2, *frames.shape[1:]):
            raise EchoIOError(path, f"{key}: masks shape {masks.shape}; expected (2, H, W)")
        masks = check_labels(path, masks, masks.shape)
        labels = np.zeros(frames.shape, dtype=np.uint8)
        for mask, t in zip(masks, (indices["ed_index"], indices["es_index"]), strict=True):
            if t is not None:
                labels[t] = mask
                keyframes.add(t)
    view_code = key.split("/")[-1].upper()
    metadata = {
        "source": str(path),
        "hdf5_key": key,
        "format": "hdf5-camus",
        "patient": key.split("/")[0],
        "patient_info": {k: _plain(v) for k, v in attrs.items() if v is not None},
        "spacing_note": "the DIR HDF5 layout stores images resized without pixel spacing",
    }
    if attrs["LVef"] is not None:
        metadata["reference"] = {
            "EF": _plain(attrs["LVef"]),
            "EDV": _plain(attrs["LVedv"]),
            "ESV": _plain(attrs["LVesv"]),
        }
    return EchoSequence(
        frames=frames,
        view={"4CH": "A4C", "2CH": "A2C"}.get(view_code, "unknown"),
        labels=labels,
        keyframes=keyframes,
        provenance=[MANUAL if t in keyframes else NO_PROVENANCE for t in range(n)],
        metadata=metadata,
        **indices,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def write_hdf5_sequence(seq: EchoSequence, path: str | Path) -> list[Path]:
    """Write ``seq`` in our HDF5 layout (atomically); frames are written in frame chunks.

    Returns
    -------
    list of Path
        The file written.
    """
    import h5py

    path = Path(path)
    t, h, w = (int(s) for s in seq.frames.shape)
    with atomic_output(path) as tmp, h5py.File(tmp / path.name, "w") as handle:
        handle.attrs["schema"] = SCHEMA
        frames = handle.create_dataset(
            "frames",
            shape=(t, h, w),
            dtype=np.float32,
            chunks=(1, h, w),
            compression="gzip",
            compression_opts=4,
        )
        step = max(1, (64 * 1024**2) // (h * w * 4))
        for start in range(0, t, step):
            frames[start : start + step] = np.asarray(
                seq.frames[start : start + step], dtype=np.float32
            )
        if seq.labels is not None:
            handle.create_dataset(
                "labels", data=seq.labels, chunks=(1, h, w), compression="gzip", compression_opts=4
            )
        rows = [[p.kind.value, p.model, p.version] for p in seq.provenance]
        handle.create_dataset(
            "provenance", data=np.array(rows, dtype=object), dtype=h5py.string_dtype()
        )
        handle.create_dataset("keyframes", data=np.array(sorted(seq.keyframes), dtype=np.int64))
        if seq.spacing is not None:
            handle.attrs["spacing"] = np.asarray(seq.spacing, dtype=np.float64)
        if seq.frame_time_ms is not None:
            handle.attrs["frame_time_ms"] = float(seq.frame_time_ms)
        handle.attrs["view"] = seq.view
        handle.attrs["ed_index"] = -1 if seq.ed_index is None else int(seq.ed_index)
        handle.attrs["es_index"] = -1 if seq.es_index is None else int(seq.es_index)
        handle.attrs["metadata"] = json.dumps(seq.metadata, default=json_default)
    return [path]


def write_hdf5_labels(
    labels: np.ndarray,
    path: str | Path,
    spacing: tuple[float, float] | None = None,
    frame_time_ms: float | None = None,
) -> list[Path]:
    """Write (T, H, W) uint8 labels alone to HDF5: ``/labels`` plus spacing/frame time attrs."""
    import h5py

    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp / path.name, "w") as handle:
        handle.attrs["schema"] = "echo-napari-labels/1"
        handle.create_dataset(
            "labels",
            data=labels,
            chunks=(1, *labels.shape[1:]),
            compression="gzip",
            compression_opts=4,
        )
        if spacing is not None:
            handle.attrs["spacing"] = np.asarray(check_spacing(path, spacing), dtype=np.float64)
        if frame_time_ms is not None:
            handle.attrs["frame_time_ms"] = float(frame_time_ms)
    return [path]
