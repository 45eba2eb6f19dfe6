"""EchoNet-Dynamic videos with their ``FileList.csv`` and ``VolumeTracings.csv``.

Dataset layout: ``<root>/Videos/<FileName>.avi``, ``<root>/FileList.csv`` (EF, ESV, EDV,
FrameHeight, FrameWidth, FPS, NumberOfFrames, Split) and ``<root>/VolumeTracings.csv``
(FileName, X1, Y1, X2, Y2, Frame; 21 rows per traced frame: the long axis, then 20 chords).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io.video import read_video_frames
from echo_napari.sequence import MANUAL, NO_PROVENANCE, EchoSequence, LabelClass

logger = logging.getLogger(__name__)

FILELIST_COLUMNS = (
    "FileName",
    "EF",
    "ESV",
    "EDV",
    "FrameHeight",
    "FrameWidth",
    "FPS",
    "NumberOfFrames",
    "Split",
)
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
#: Fewer rows than this (long axis + chords) cannot outline a ventricle.
MIN_TRACING_ROWS = 11


def video_key(name: str) -> str:
    """FileName as a lookup key: releases differ in whether it carries ``.avi``."""
    name = str(name).strip()
    return name[:-4] if name.lower().endswith(".avi") else name


def find_dataset_root(video: str | Path) -> Path | None:
    """The EchoNet dataset folder of ``video`` (parent of ``Videos/``), if it has a CSV."""
    video = Path(video)
    parent = video.parent
    root = parent.parent if parent.name.lower() == "videos" else parent
    if (root / "FileList.csv").is_file() or (root / "VolumeTracings.csv").is_file():
        return root
    return None


@functools.lru_cache(maxsize=4)
def _read_csv_cached(path: str, mtime_ns: int, size: int) -> Any:
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype={"FileName": str, "Split": str})
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
    ) as exc:
        raise EchoIOError(path, f"not a readable CSV table ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _read_csv(path: Path, required: tuple[str, ...]) -> Any:
    try:
        stat = path.stat()
    except OSError as exc:
        raise EchoIOError(path, f"cannot read it ({exc})") from exc
    table = _read_csv_cached(str(path), stat.st_mtime_ns, stat.st_size)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise EchoIOError(path, f"missing columns {missing}; found {list(table.columns)[:10]}")
    keys = table["FileName"].astype(str).map(video_key)
    return table.assign(_key=keys)


def read_filelist_row(path: str | Path, name: str) -> dict[str, Any] | None:
    """The ``FileList.csv`` row of video ``name`` as a dict (None when absent)."""
    path = Path(path)
    table = _read_csv(path, ("FileName",))
    rows = table[table["_key"] == video_key(name)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    out: dict[str, Any] = {}
    for column in FILELIST_COLUMNS[1:]:
        if column not in table.columns:
            continue
        value = row[column]
        if column == "Split":
            out[column] = str(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise EchoIOError(path, f"{column}={value!r} for {name} is not a number") from exc
        out[column] = number if np.isfinite(number) else None
    return out


def read_tracings(
    path: str | Path, name: str, n_frames: int, frame_shape: tuple[int, int]
) -> dict[int, np.ndarray]:
    """The traced frames of video ``name``.

    Returns
    -------
    dict frame index → (N, 4) float array of X1, Y1, X2, Y2 in pixels (N rows, normally 21)
    """
    import pandas as pd

    path = Path(path)
    table = _read_csv(path, TRACING_COLUMNS)
    rows = table[table["_key"] == video_key(name)]
    if rows.empty:
        return {}
    values = rows[list(TRACING_COLUMNS[1:])].apply(pd.to_numeric, errors="coerce").to_numpy()
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values).all(1))[0])
        raise EchoIOError(path, f"row {rows.index[bad] + 2} of {name}: non-numeric values")
    h, w = frame_shape
    margin = 0.1 * max(h, w)
    xs, ys = values[:, [0, 2]], values[:, [1, 3]]
    if xs.min() < -margin or xs.max() > w + margin or ys.min() < -margin or ys.max() > h + margin:
        raise EchoIOError(path, f"tracing of {name} lies outside the {h}x{w} frame")
    tracings: dict[int, np.ndarray] = {}
    frames = values[:, 4]
    for frame in np.unique(frames):
        if frame != int(frame) or not 0 <= frame < n_frames:
            raise EchoIOError(path, f"{name}: traced frame {frame:g} outside 0..{n_frames - 1}")
        chunk = values[frames == frame, :4]
        if len(chunk) < MIN_TRACING_ROWS:
            raise EchoIOError(
                path,
                f"{name} frame {int(frame)}: {len(chunk)} rows; expected 21 "
                "(the long axis and 20 chords)",
            )
        if len(chunk) != 21:
            logger.warning("%s frame %d: %d tracing rows, expected 21", name, frame, len(chunk))
        tracings[int(frame)] = chunk
    return tracings


def tracing_polygon(tracing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the LV polygon: X1/Y1 of chords 1..N-1 then X2/Y2 in reverse."""
    chords = tracing[1:]
    xs = np.concatenate([chords[:, 0], chords[::-1, 2]])
    ys = np.concatenate([chords[:, 1], chords[::-1, 3]])
    return ys, xs


def rasterise_tracing(tracing: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """LV cavity mask (H, W) bool from one frame's (N, 4) tracing (pixel coordinates)."""
    from skimage.draw import polygon

    ys, xs = tracing_polygon(tracing)
    mask = np.zeros(frame_shape, dtype=bool)
    rr, cc = polygon(ys, xs, shape=frame_shape)
    mask[rr, cc] = True
    return mask


def read_echonet_video(path: str | Path, lazy: bool | None = None) -> EchoSequence:
    """Read an EchoNet AVI, with its dataset's FileList and VolumeTracings when present.

    Returns
    -------
    EchoSequence
        frames (T, 112, 112) float32 in [0, 1]; labels with LV cavity (1) at the traced
        frames (keyframes, manual provenance); ED = larger traced area, ES = smaller;
        ``metadata["reference"]`` = EF, ESV, EDV, FPS from FileList.
    """
    path = Path(path)
    frames, frame_time, info = read_video_frames(path, lazy=lazy)
    metadata: dict[str, Any] = {"source": str(path), "format": "avi", **info}
    metadata["spacing_note"] = "EchoNet videos carry no pixel spacing"
    root = find_dataset_root(path)
    n, h, w = (int(s) for s in frames.shape)
    seq_args: dict[str, Any] = {"view": "unknown"}
    labels = None
    keyframes: set[int] = set()
    if root is not None:
        seq_args["view"] = "A4C"
        metadata["dataset_root"] = str(root)
        name = video_key(path.name)
        filelist = root / "FileList.csv"
        if filelist.is_file():
            row = read_filelist_row(filelist, name)
            if row is None:
                logger.info("%s: not listed in %s", path.name, filelist)
            else:
                metadata["reference"] = {k: row.get(k) for k in ("EF", "ESV", "EDV", "FPS")}
                metadata["split"] = row.get("Split")
                _check_filelist(path, row, (n, h, w), metadata)
                if frame_time is None and row.get("FPS"):
                    frame_time = 1000.0 / row["FPS"]
        tracing_file = root / "VolumeTracings.csv"
        if tracing_file.is_file():
            tracings = read_tracings(tracing_file, name, n, (h, w))
            if tracings:
                labels, keyframes, ed, es = _tracing_labels(tracings, (n, h, w))
                seq_args.update(ed_index=ed, es_index=es)
                metadata["tracings"] = {t: v.tolist() for t, v in tracings.items()}
                odd = [
                    f"frame {t}: {len(v)} tracing rows, expected 21"
                    for t, v in tracings.items()
                    if len(v) != 21
                ]
                if odd:
                    metadata.setdefault("warnings", []).extend(odd)
    provenance = [MANUAL if t in keyframes else NO_PROVENANCE for t in range(n)]
    return EchoSequence(
        frames=frames,
        spacing=None,
        frame_time_ms=frame_time,
        labels=labels,
        keyframes=keyframes,
        provenance=provenance,
        metadata=metadata,
        **seq_args,
    )


def _check_filelist(path: Path, row: dict, shape: tuple[int, int, int], metadata: dict) -> None:
    notes = []
    for column, actual in (
        ("NumberOfFrames", shape[0]),
        ("FrameHeight", shape[1]),
        ("FrameWidth", shape[2]),
    ):
        listed = row.get(column)
        if listed is not None and int(listed) != actual:
            notes.append(f"FileList {column}={int(listed)} but the video has {actual}")
    if notes:
        logger.warning("%s: %s", path.name, "; ".join(notes))
        metadata.setdefault("warnings", []).extend(notes)


def _tracing_labels(
    tracings: dict[int, np.ndarray], shape: tuple[int, int, int]
) -> tuple[np.ndarray, set[int], int, int | None]:
    labels = np.zeros(shape, dtype=np.uint8)
    areas = {}
    for t, tracing in tracings.items():
        mask = rasterise_tracing(tracing, shape[1:])
        labels[t][mask] = LabelClass.LV_CAVITY
        areas[t] = int(mask.sum())
    order = sorted(areas, key=lambda t: (-areas[t], t))
    ed = order[0]
    es = order[-1] if len(order) > 1 else None
    return labels, set(areas), ed, es
