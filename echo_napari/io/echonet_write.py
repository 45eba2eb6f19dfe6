"""Writing EchoNet-like datasets: masks → VolumeTracings chords, videos, CSV files."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.io._common import write_csv
from echo_napari.io.echonet import FILELIST_COLUMNS, TRACING_COLUMNS, video_key
from echo_napari.io.video import write_video
from echo_napari.sequence import EchoSequence, LabelClass

logger = logging.getLogger(__name__)

N_CHORDS = 20


def _largest_contour(mask: np.ndarray) -> np.ndarray:
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        raise SequenceError("mask is empty: no LV contour to trace")
    return max(contours, key=len) - 1.0  # (K, 2) row, col


def _line_hits(point: np.ndarray, direction: np.ndarray, contour: np.ndarray) -> np.ndarray:
    """Signed distances s where ``point + s * direction`` crosses the closed contour."""
    a = contour
    b = np.roll(contour, -1, axis=0)
    edge = b - a
    denom = direction[0] * edge[:, 1] - direction[1] * edge[:, 0]
    diff = a - point
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (diff[:, 0] * edge[:, 1] - diff[:, 1] * edge[:, 0]) / denom
        r = (diff[:, 0] * direction[1] - diff[:, 1] * direction[0]) / denom
    ok = (np.abs(denom) > 1e-12) & (r >= 0) & (r <= 1)
    return s[ok]


def mask_to_volume_tracing(mask: np.ndarray, annulus_points: Any | None = None) -> np.ndarray:
    """EchoNet-style tracing of an LV cavity mask: long axis plus 20 perpendicular chords.

    Parameters
    ----------
    mask : (H, W) bool
        LV cavity.
    annulus_points : ((y, x), (y, x)) pixels, optional
        The two mitral annulus hinge points. Without them the annulus is taken at the
        bottom of the mask (the base of a simulated apical-4-chamber LV, apex at the top).

    Returns
    -------
    (21, 4) float64 array of X1, Y1, X2, Y2 in pixels
        Row 0: apex (X1, Y1) and annulus midpoint (X2, Y2). Rows 1..20: chords at the
        centres of 20 equal segments of the long axis, from apex to annulus, with
        (X1, Y1) on one wall and (X2, Y2) on the other; rasterising X1/Y1 of rows 1..20
        then X2/Y2 of rows 20..1 reproduces the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.sum() < 4:
        raise SequenceError(f"need a 2D mask with at least 4 pixels; got shape {mask.shape}")
    contour = _largest_contour(mask)
    if annulus_points is not None:
        points = np.asarray(annulus_points, dtype=np.float64).reshape(2, 2)
        base = points.mean(axis=0)
    else:
        bottom = contour[:, 0].max()
        near = contour[contour[:, 0] >= bottom - 1.0]
        base = np.array([bottom, 0.5 * (near[:, 1].min() + near[:, 1].max())])
    distances = np.linalg.norm(contour - base, axis=1)
    apex = contour[int(np.argmax(distances))]
    length = float(distances.max())
    if length < 1.0:
        raise SequenceError("mask too small for a long axis")
    axis = (base - apex) / length
    normal = np.array([-axis[1], axis[0]])
    rows = [(apex[1], apex[0], base[1], base[0])]
    for i in range(N_CHORDS):
        centre = apex + axis * length * (i + 0.5) / N_CHORDS
        hits = _line_hits(centre, normal, contour)
        plus, minus = hits[hits >= 0], hits[hits <= 0]
        s1 = plus.min() if plus.size else 0.0
        s2 = minus.max() if minus.size else 0.0
        p1, p2 = centre + s1 * normal, centre + s2 * normal
        rows.append((p1[1], p1[0], p2[1], p2[0]))
    return np.asarray(rows, dtype=np.float64)


def write_echonet_dataset(
    root: str | Path,
    items: Mapping[str, EchoSequence] | Iterable[tuple[str, EchoSequence]],
) -> list[Path]:
    """Write an EchoNet-Dynamic-like dataset folder.

    Parameters
    ----------
    root : folder to create or extend (files of the same names are replaced)
    items : {name: EchoSequence} or (name, EchoSequence) pairs
        Each sequence: frames, frame_time_ms, ed_index/es_index; LV cavity labels (1) at
        ED and ES give the tracings; ``metadata["reference"]`` may hold EF, ESV, EDV
        (left empty otherwise), ``metadata["split"]`` the split (default TRAIN) and
        ``metadata["annulus_points"]`` {frame: ((y, x), (y, x))} the annulus hint.

    Returns
    -------
    list of Path
        ``Videos/<name>.avi`` for each item, ``FileList.csv``, ``VolumeTracings.csv``.
    """
    root = Path(root)
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    written: list[Path] = []
    filelist_rows: list[list[Any]] = []
    tracing_rows: list[list[Any]] = []
    for name, seq in pairs:
        key = video_key(name)
        video = root / "Videos" / f"{key}.avi"
        written += write_video(seq.frames, video, frame_time_ms=seq.frame_time_ms)
        reference = seq.metadata.get("reference") or {}
        fps = seq.fps or 50.0
        filelist_rows.append(
            [
                f"{key}.avi",
                *(_number(reference.get(k)) for k in ("EF", "ESV", "EDV")),
                seq.frame_shape[0],
                seq.frame_shape[1],
                _number(fps),
                seq.n_frames,
                str(seq.metadata.get("split", "TRAIN")),
            ]
        )
        tracing_rows += _tracing_rows(key, seq)
    written.append(write_csv(root / "FileList.csv", FILELIST_COLUMNS, filelist_rows))
    written.append(write_csv(root / "VolumeTracings.csv", TRACING_COLUMNS, tracing_rows))
    return written


def _tracing_rows(key: str, seq: EchoSequence) -> list[list[Any]]:
    if seq.labels is None:
        return []
    hints = seq.metadata.get("annulus_points") or {}
    rows = []
    for t in sorted({t for t in (seq.ed_index, seq.es_index) if t is not None}):
        mask = seq.labels[t] == LabelClass.LV_CAVITY
        if mask.sum() < 4:
            logger.warning("%s frame %d: no LV cavity label to trace", key, t)
            continue
        tracing = mask_to_volume_tracing(mask, hints.get(t, hints.get(str(t))))
        rows += tracing_csv_rows(key, t, tracing)
    return rows


def tracing_csv_rows(key: str, frame: int, tracing: Iterable[Any]) -> list[list[Any]]:
    """VolumeTracings.csv rows (FileName, X1, Y1, X2, Y2, Frame) of one frame's tracing."""
    return [[f"{key}.avi", *(f"{v:.4f}" for v in row), frame] for row in tracing]


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.8g}"
