"""Export a session's committed labels to CAMUS, EchoNet and HDF5 files.

Each function takes a :class:`~echo_napari.session.Session` (its committed state: edits not
yet committed are left out) and returns every path it wrote. The writing itself is the
io package's (:func:`~echo_napari.io.write_camus_patient`, :func:`~echo_napari.io.write_labels`,
:func:`~echo_napari.io.write_echonet_dataset`, :func:`~echo_napari.io.mask_to_volume_tracing`,
:func:`~echo_napari.io.write_sequence`), all atomic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from echo_napari.errors import SequenceError
from echo_napari.io import (
    mask_to_volume_tracing,
    write_camus_patient,
    write_echonet_dataset,
    write_labels,
    write_sequence,
)
from echo_napari.io._common import write_csv
from echo_napari.io.echonet import TRACING_COLUMNS, video_key
from echo_napari.io.echonet_write import tracing_csv_rows
from echo_napari.sequence import LabelClass

if TYPE_CHECKING:
    from echo_napari.session import Session

logger = logging.getLogger(__name__)


def export_camus(
    session: Session, folder: str | Path, view: str = "4CH", suffix: str = ".nii.gz"
) -> list[Path]:
    """CAMUS patient folder: full-cycle sequence + ``_gt``, ED/ES images and masks, Info cfg.

    Parameters
    ----------
    folder : the patient folder (its name, e.g. ``patient0001``, is the patient id)
    view : "4CH" or "2CH"
    suffix : ".nii.gz" or ".mhd"
    """
    return write_camus_patient(folder, session.committed_sequence(), view=view, suffix=suffix)


def export_labels(session: Session, path: str | Path) -> list[Path]:
    """(T, H, W) uint8 labels alone as ``.nii.gz`` / ``.nii`` / ``.mhd`` / ``.h5``, with
    the spacing (mm) and frame time in the header."""
    seq = session.committed_sequence()
    return write_labels(seq.labels, path, spacing=seq.spacing, frame_time_ms=seq.frame_time_ms)


def export_hdf5(session: Session, path: str | Path) -> list[Path]:
    """The whole sequence (frames, labels, provenance, keyframes, ED/ES) in the io package's
    HDF5 sequence layout, readable by :func:`~echo_napari.io.read_sequence`."""
    return write_sequence(session.committed_sequence(), path)


def export_echonet(session: Session, root: str | Path, name: str) -> list[Path]:
    """EchoNet-Dynamic-like folder: ``Videos/<name>.avi``, ``FileList.csv`` and
    ``VolumeTracings.csv`` with the LV tracings of the ED and ES frames (both must be set
    and hold an LV cavity)."""
    seq = session.committed_sequence()
    if seq.ed_index is None or seq.es_index is None:
        raise SequenceError("set ED and ES before exporting to EchoNet (tracings at ED/ES)")
    return write_echonet_dataset(root, {name: seq})


def export_volume_tracings(
    session: Session, path: str | Path, name: str, frames: Iterable[int] | None = None
) -> list[Path]:
    """A VolumeTracings-style CSV (FileName, X1, Y1, X2, Y2, Frame; pixels) of the LV
    cavity on ``frames`` (default: every keyframe with an LV cavity), 21 rows per frame
    (long axis, then 20 chords) as :func:`~echo_napari.io.mask_to_volume_tracing` gives.
    """
    seq = session.committed_sequence()
    path = Path(path)
    lv = seq.labels == LabelClass.LV_CAVITY
    if frames is None:
        chosen = [t for t in sorted(seq.keyframes) if lv[t].sum() >= 4]
    else:
        chosen = sorted({int(t) for t in frames})
    if not chosen:
        raise SequenceError("no frame with an LV cavity (label 1) to trace")
    key = video_key(name)
    rows = []
    for t in chosen:
        if not 0 <= t < seq.n_frames:
            raise SequenceError(f"frame {t} outside 0..{seq.n_frames - 1}")
        rows += tracing_csv_rows(key, t, mask_to_volume_tracing(lv[t]))
    return [write_csv(path, TRACING_COLUMNS, rows)]
