"""Writers: labels, per-frame areas and whole sequences, chosen by file suffix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import (
    ITK_SUFFIXES,
    VIDEO_SUFFIXES,
    full_suffix,
    stem_without_suffix,
    write_csv,
)
from echo_napari.sequence import EchoSequence

LABEL_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".h5", ".hdf5")
SEQUENCE_SUFFIXES = (".h5", ".hdf5", ".nii.gz", ".nii", ".mhd", ".dcm", *VIDEO_SUFFIXES)


def write_labels(
    labels: np.ndarray,
    path: str | Path,
    spacing: tuple[float, float] | None = None,
    frame_time_ms: float | None = None,
) -> list[Path]:
    """Write (T, H, W) uint8 labels to ``.nii.gz`` / ``.nii`` / ``.mhd`` (+``.raw``) / ``.h5``.

    Parameters
    ----------
    labels : (T, H, W) uint8 with :class:`~echo_napari.sequence.LabelClass` values
    spacing : (dy, dx) mm, written into the header (None: unknown)
    frame_time_ms : float, stored in the header (MetaImage key, NIfTI description, HDF5 attr)

    Returns
    -------
    list of Path
        Every file written (two for ``.mhd``).
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise EchoIOError(
            path, f"labels must be (T, H, W) uint8; got {labels.shape} {labels.dtype}"
        )
    suffix = full_suffix(path)
    if suffix in ITK_SUFFIXES:
        from echo_napari.io.itk import write_itk

        return write_itk(labels, path, spacing=spacing, frame_time_ms=frame_time_ms)
    if suffix in (".h5", ".hdf5"):
        from echo_napari.io.hdf5 import write_hdf5_labels

        return write_hdf5_labels(labels, path, spacing=spacing, frame_time_ms=frame_time_ms)
    raise EchoIOError(
        path, f"labels can be written as {', '.join(LABEL_SUFFIXES)}; got {suffix!r}"
    )


def write_area_csv(
    areas: dict[str, np.ndarray], path: str | Path, frame_time_ms: float | None = None
) -> list[Path]:
    """Write per-frame areas as CSV: ``frame[,time_ms],<name>...`` (one row per frame).

    Parameters
    ----------
    areas : {column name: (T,) array}, e.g. {"LV cavity (mm2)": ...}; all of length T
    frame_time_ms : float, adds a ``time_ms`` column

    Returns
    -------
    list of Path
        The file written.
    """
    path = Path(path)
    columns = {
        str(name): np.asarray(values, dtype=np.float64).ravel() for name, values in areas.items()
    }
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise EchoIOError(path, f"area columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    header = ["frame"] + (["time_ms"] if frame_time_ms else []) + list(columns)
    rows = []
    for t in range(n):
        row = [t] + ([f"{t * frame_time_ms:.6g}"] if frame_time_ms else [])
        row += [f"{columns[name][t]:.6g}" for name in columns]
        rows.append(row)
    return [write_csv(path, header, rows)]


def write_sequence(seq: EchoSequence, path: str | Path) -> list[Path]:
    """Write a whole sequence, format by suffix.

    * ``.h5`` / ``.hdf5``: our layout, everything (frames, labels, provenance, keyframes,
      spacing, frame time, view, ED/ES, metadata).
    * ``.nii.gz`` / ``.nii`` / ``.mhd``: float32 frames with spacing; labels, when present,
      to ``<name>_gt.<suffix>`` next to it (read back together).
    * ``.avi`` / ``.mp4``: frames only (MJPEG / H.264), at the sequence's frame rate.
    * ``.dcm``: Ultrasound Multi-frame Image, 8-bit grey, spacing and frame time.

    Returns
    -------
    list of Path
        Every file written.
    """
    path = Path(path)
    suffix = full_suffix(path)
    if suffix in (".h5", ".hdf5"):
        from echo_napari.io.hdf5 import write_hdf5_sequence

        return write_hdf5_sequence(seq, path)
    if suffix in ITK_SUFFIXES:
        from echo_napari.io.itk import write_itk

        kw = {"spacing": seq.spacing, "frame_time_ms": seq.frame_time_ms}
        written = write_itk(seq.frames_array(), path, **kw)
        if seq.labels is not None:
            gt = path.with_name(f"{stem_without_suffix(path)}_gt{suffix}")
            written += write_itk(seq.labels, gt, **kw)
        return written
    if suffix in VIDEO_SUFFIXES:
        from echo_napari.io.video import write_video

        return write_video(seq.frames, path, frame_time_ms=seq.frame_time_ms)
    if suffix == ".dcm":
        from echo_napari.io.dicom import write_dicom

        return write_dicom(seq, path)
    raise EchoIOError(
        path, f"sequences can be written as {', '.join(SEQUENCE_SUFFIXES)}; got {suffix!r}"
    )
