"""Helpers shared by the readers and writers: atomic writes, intensity and label checks."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.sequence import LabelClass

logger = logging.getLogger(__name__)

#: Largest decoded array a reader will allocate eagerly (bytes); bigger files are refused
#: (or read lazily) instead of exhausting memory on a corrupt header.
MAX_EAGER_BYTES = 4 * 1024**3
#: Largest number of frames / pixels per side we accept from any header.
MAX_FRAMES = 100_000
MAX_SIDE = 16_384

VALID_LABELS = frozenset(int(c) for c in LabelClass)
_LABEL_RANGE = (min(VALID_LABELS), max(VALID_LABELS))
# True for the 0..3 class table: then min/max alone validate a labels array.
_LABELS_CONTIGUOUS = VALID_LABELS == frozenset(range(_LABEL_RANGE[0], _LABEL_RANGE[1] + 1))

# Suffixes, longest first so ".nii.gz" wins over ".gz".
SUFFIXES = (".nii.gz", ".nii", ".mhd", ".h5", ".hdf5", ".dcm", ".avi", ".mp4", ".mov", ".m4v")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".m4v")
ITK_SUFFIXES = (".nii.gz", ".nii", ".mhd")


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for metadata: numpy scalars/arrays, sets, else ``str``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``header`` and ``rows`` as CSV (``\n`` line ends) atomically to ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    try:
        with atomic_output(path) as tmp:
            (tmp / path.name).write_text(buffer.getvalue())
    except OSError as exc:
        raise EchoIOError(path, f"could not write it ({exc})") from exc
    return path


def full_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` in lower case (``".nii.gz"`` counts as one)."""
    name = Path(path).name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def stem_without_suffix(path: str | Path) -> str:
    """File name without its format suffix (``a_gt.nii.gz`` -> ``a_gt``)."""
    name = Path(path).name
    suffix = full_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else name


def read_head(path: str | Path, n: int = 512) -> bytes:
    """The first ``n`` bytes of a file (empty on any OS error)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(n)
    except OSError:
        return b""


def check_shape(path: str | Path, shape: tuple[int, ...], what: str = "frames") -> None:
    """Refuse (T, H, W) shapes that are empty or absurd before allocating anything."""
    if len(shape) != 3:
        raise EchoIOError(path, f"expected {what} of shape (T, H, W); found shape {shape}")
    t, h, w = shape
    if t < 1 or h < 2 or w < 2:
        raise EchoIOError(path, f"{what} are empty or smaller than 2x2 pixels: shape {shape}")
    if t > MAX_FRAMES or h > MAX_SIDE or w > MAX_SIDE:
        raise EchoIOError(path, f"{what} shape {shape} is implausibly large (corrupt header?)")


def to_unit_float(path: str | Path, array: np.ndarray) -> np.ndarray:
    """Convert pixel values to float32 in [0, 1].

    Parameters
    ----------
    array : (T, H, W) numeric array
        uint8 and integers within 0..255 are divided by 255, integers within 0..4095 by
        4095 (12-bit), floats already in [0, 1] are kept, floats within 0..255 (max > 2)
        are divided by 255; anything else is min-max scaled.

    Returns
    -------
    (T, H, W) float32 in [0, 1]
    """
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise EchoIOError(path, f"expected grey pixel values; found dtype {array.dtype}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise EchoIOError(path, "pixel values contain NaN or infinity")
    lo, hi = float(values.min()), float(values.max())
    if np.issubdtype(array.dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return values / np.float32(255.0)
        if lo >= 0 and hi <= 4095:
            return values / np.float32(4095.0)
    elif lo >= 0 and hi <= 1:
        return values
    elif lo >= 0 and 2 < hi <= 255:
        # 8-bit grey values stored as floats (e.g. the DIR paper's HDF5 conversion).
        return values / np.float32(255.0)
    if hi == lo:
        return np.zeros_like(values)
    logger.info("%s: pixel range %.4g..%.4g min-max scaled to [0, 1]", Path(path).name, lo, hi)
    return (values - lo) / np.float32(hi - lo)


def check_labels(path: str | Path, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a labels array against the frames and return it as (T, H, W) uint8.

    Raises :class:`EchoIOError` when the shape differs, values are not integers or a value
    lies outside the class table {0, 1, 2, 3}.
    """
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(shape):
        raise EchoIOError(
            path, f"labels shape {tuple(labels.shape)} does not match the frames {tuple(shape)}"
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
            raise EchoIOError(path, "labels must be whole numbers; found fractional or NaN")
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise EchoIOError(path, f"labels must be integers; found dtype {labels.dtype}")
    if labels.size == 0:
        return labels.astype(np.uint8)
    lo, hi = labels.min(), labels.max()
    # The class table is 0..3, so min/max settle it (np.unique: ~20x slower on a cine);
    # only a failing array pays for listing its unknown values.
    if _LABELS_CONTIGUOUS and _LABEL_RANGE[0] <= lo and hi <= _LABEL_RANGE[1]:
        return labels.astype(np.uint8)
    present = {int(v) for v in np.unique(labels)}
    unknown = sorted(present - VALID_LABELS)
    if unknown:
        raise EchoIOError(
            path, f"labels contain values {unknown[:5]} outside the class table 0..3"
        )
    return labels.astype(np.uint8)


def check_spacing(path: str | Path, spacing: tuple[float, float]) -> tuple[float, float]:
    """Return ``(dy, dx)`` as floats, refusing NaN, zero, negative or absurd values (mm)."""
    dy, dx = (float(v) for v in spacing)
    if not (np.isfinite(dy) and np.isfinite(dx) and 0 < dy < 1e3 and 0 < dx < 1e3):
        raise EchoIOError(path, f"pixel spacing must be positive finite mm; found {spacing}")
    return dy, dx


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Write files under a temporary folder next to ``path``, then move them in place.

    Yields the temporary folder; the caller writes files there under their *final* names
    (so headers that name sidecar files, like ``.mhd`` → ``.raw``, stay right). On
    success every file in it is moved with :func:`os.replace` (same file system, so each
    move is atomic); on failure the folder is removed and nothing is replaced.
    """
    target = Path(path)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder))
    except OSError as exc:
        raise EchoIOError(target, f"cannot write in folder {folder}: {exc}") from exc
    try:
        yield tmp
        # Sidecars (e.g. .raw) first, the file that names them last.
        names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n == target.name)
        for name in names:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_frames_array(path: str | Path, frames: np.ndarray) -> np.ndarray:
    """Validate in-memory frames: (T, H, W), finite, within [0, 1]; return float32."""
    check_shape(path, tuple(frames.shape))
    frames = np.asarray(frames, dtype=np.float32)
    if not np.isfinite(frames).all():
        raise EchoIOError(path, "frames contain NaN or infinity")
    return frames


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """(…) float in [0, 1] → uint8 0..255, clipped and rounded."""
    return np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
