"""Readers and writers for echo formats; every reader returns an :class:`EchoSequence`.

``read_sequence`` dispatches by content (magic bytes) and suffix: EchoNet-Dynamic AVIs
(with their dataset CSVs), CAMUS/TED ``.mhd``/``.nii(.gz)`` files and patient folders,
HDF5 (ours and the DIR paper's CAMUS layout, ``file.h5::patient0001/4CH``), DICOM
ultrasound, and any AVI/MP4 (decoded lazily when large). Bad input of any kind raises
:class:`~echo_napari.errors.EchoIOError` naming the file and the reason.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from echo_napari.errors import EchoIOError, SequenceError
from echo_napari.io._common import (
    VIDEO_SUFFIXES,
    full_suffix,
    read_head,
    stem_without_suffix,
)
from echo_napari.io.camus import write_camus_patient
from echo_napari.io.echonet_write import mask_to_volume_tracing, write_echonet_dataset
from echo_napari.io.writers import write_area_csv, write_labels, write_sequence
from echo_napari.sequence import EchoSequence

logger = logging.getLogger(__name__)

__all__ = [
    "EchoIOError",
    "can_read",
    "list_sequences",
    "mask_to_volume_tracing",
    "read_sequence",
    "write_area_csv",
    "write_camus_patient",
    "write_echonet_dataset",
    "write_labels",
    "write_sequence",
]

_OPTIONS = {"key", "lazy", "view"}
_PATIENT = re.compile(r"^patient\d+$")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SUPPORTED = "EchoNet/any .avi or .mp4, CAMUS .mhd/.nii.gz or patient folder, .h5, DICOM"


def _split_key(path: str | Path, key: str | None) -> tuple[Path, str | None]:
    text = os.fspath(path)
    if "::" in text and key is None:
        text, key = text.split("::", 1)
    return Path(text), key


def _sniff(path: Path) -> str | None:
    """The format of a file from its first bytes and suffix, or None."""
    head = read_head(path, 512)
    suffix = full_suffix(path)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[4:8] == b"ftyp" or (suffix in VIDEO_SUFFIXES and head[4:8] in (b"moov", b"mdat")):
        return "video"
    if suffix == ".mhd" and (b"NDims" in head or b"ObjectType" in head):
        return "itk"
    if suffix == ".nii.gz" and head[:2] == b"\x1f\x8b":
        return "itk"
    if suffix == ".nii" and len(head) >= 4 and int.from_bytes(head[:4], "little") in (348, 540):
        return "itk"
    if suffix == ".nii" and len(head) >= 4 and int.from_bytes(head[:4], "big") in (348, 540):
        return "itk"
    return None


def _is_patient_folder(folder: Path) -> bool:
    from echo_napari.io.camus import CAMUS_NAME

    if not _PATIENT.match(folder.name):
        return False
    return any(CAMUS_NAME.match(stem_without_suffix(p)) for p in _scan(folder))


def _scan(folder: Path, limit: int = 500) -> list[Path]:
    out = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                out.append(Path(entry.path))
                if len(out) >= limit:
                    break
    except OSError:
        return []
    return sorted(out)


def _is_echonet_root(folder: Path) -> bool:
    return (folder / "Videos").is_dir()


def can_read(path: str | Path) -> bool:
    """Cheap check (suffix, a few magic bytes, folder layout; no decoding) of whether
    :func:`read_sequence` handles ``path``. Never raises."""
    try:
        path, key = _split_key(path, None)
        if key is not None:
            return path.is_file() and _sniff(path) == "hdf5"
        if path.is_dir():
            if _is_patient_folder(path) or _is_echonet_root(path):
                return True
            if any(_PATIENT.match(p.name) and p.is_dir() for p in _scan(path)):
                return True
            return any(p.is_file() and _sniff(p) is not None for p in _scan(path, 50))
        if not path.is_file():
            return False
        return _sniff(path) is not None
    except (OSError, ValueError):
        return False


def list_sequences(folder: str | Path) -> list[Path]:
    """The sequences in a dataset folder or multi-sequence file.

    * EchoNet root (with ``Videos/``) or a ``Videos`` folder: the ``.avi`` files.
    * CAMUS/TED root (``patientXXXX/`` folders) or one patient folder: the sequence file of
      each view (``_half_sequence`` / ``_sequence``, else ``_ED``), 4CH before 2CH.
    * An HDF5 file in the DIR layout: ``file.h5::patient0001/4CH`` paths.
    * Any other folder: its readable files (``_gt`` label files and ``.raw`` excluded).

    Returns
    -------
    list of Path, sorted; each can be passed to :func:`read_sequence`.
    """
    path = Path(folder)
    if path.is_file():
        if _sniff(path) == "hdf5":
            from echo_napari.io.hdf5 import list_hdf5_sequences

            keys = list_hdf5_sequences(path)
            return [path if not k else Path(f"{path}::{k}") for k in keys]
        return [path] if _sniff(path) else []
    if not path.is_dir():
        raise EchoIOError(path, "folder not found")
    if _is_echonet_root(path):
        path = path / "Videos"
    if path.name.lower() == "videos":
        return [p for p in _scan(path, 10**6) if p.suffix.lower() == ".avi" and p.is_file()]
    if _is_patient_folder(path):
        return _patient_sequences(path)
    patients = [p for p in _scan(path, 10**6) if p.is_dir() and _PATIENT.match(p.name)]
    if patients:
        return [s for p in patients for s in _patient_sequences(p)]
    return [
        p
        for p in _scan(path, 10**6)
        if p.is_file() and not stem_without_suffix(p).endswith("_gt") and _sniff(p)
    ]


def _patient_sequences(folder: Path) -> list[Path]:
    from echo_napari.io.camus import find_camus_sequence

    found = []
    for view in ("4CH", "2CH"):
        try:
            found.append(find_camus_sequence(folder, view))
        except EchoIOError:
            continue
    return found


def read_sequence(path: str | Path, **options: Any) -> EchoSequence:
    """Read any supported echo file or folder into an :class:`EchoSequence`.

    Parameters
    ----------
    path : str or Path
        A file, a CAMUS patient folder, a dataset folder (its first sequence is opened;
        :func:`list_sequences` lists them all) or ``file.h5::patient0001/4CH``.
    key : str, optional
        HDF5 (DIR layout) sequence key, e.g. ``"patient0001/4CH"`` (default: the first).
    lazy : bool or None, optional
        Videos and multi-frame DICOM: decode on demand (dask) or all at once; None decides
        by size (lazy above 256 MB of float32 frames).
    view : str, optional
        CAMUS patient folders: ``"4CH"`` or ``"2CH"`` (default 4CH when present).

    Returns
    -------
    EchoSequence
        frames (T, H, W) float32 in [0, 1]; spacing (dy, dx) mm or None.

    Raises
    ------
    EchoIOError
        For missing, unsupported, truncated, corrupt or inconsistent input.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"read_sequence got unknown options {sorted(unknown)}")
    path, key = _split_key(path, options.pop("key", None))
    if not path.exists():
        raise EchoIOError(path, "file or folder not found")
    try:
        return _dispatch(path, key, options)
    except EchoIOError:
        raise
    except SequenceError as exc:
        raise EchoIOError(path, f"inconsistent content ({exc})") from exc
    except MemoryError as exc:
        raise EchoIOError(path, "too large to load into memory") from exc
    except Exception as exc:  # the contract is one exception type for any bad input
        logger.debug("unexpected error reading %s", path, exc_info=True)
        raise EchoIOError(path, f"unreadable content ({type(exc).__name__}: {exc})") from exc


def _dispatch(path: Path, key: str | None, options: dict[str, Any]) -> EchoSequence:
    if path.is_dir():
        return _read_folder(path, options)
    try:
        if path.stat().st_size == 0:
            raise EchoIOError(path, "file is empty")
    except OSError as exc:
        raise EchoIOError(path, f"cannot read it ({exc})") from exc
    kind = _sniff(path)
    suffix = full_suffix(path)
    if kind == "dicom" or (kind is None and suffix == ".dcm"):
        from echo_napari.io.dicom import read_dicom

        return _attach_sibling_labels(path, read_dicom(path, lazy=options.get("lazy")))
    if kind == "hdf5":
        from echo_napari.io.hdf5 import read_hdf5_sequence

        return read_hdf5_sequence(path, key=key)
    if kind == "video":
        return _read_video(path, options.get("lazy"))
    if kind == "itk":
        from echo_napari.io.camus import read_image_sequence

        return read_image_sequence(path)
    head = read_head(path, 8)
    expected = {
        ".avi": "a RIFF/AVI header",
        ".mp4": "an MP4 'ftyp' box",
        ".h5": "the HDF5 signature",
        ".hdf5": "the HDF5 signature",
        ".nii": "a NIfTI header",
        ".nii.gz": "gzip data",
        ".mhd": "a MetaImage text header",
    }.get(suffix)
    if expected:
        raise EchoIOError(path, f"expected {expected}; found first bytes {head!r}")
    if suffix in (".raw", ".zraw"):
        raise EchoIOError(path, "a MetaImage data file: open the .mhd header next to it")
    raise EchoIOError(
        path,
        f"not a supported echo file (suffix {suffix or 'none'!r}, first bytes "
        f"{head!r}; supported: {SUPPORTED})",
    )


def _read_video(path: Path, lazy: bool | None) -> EchoSequence:
    from echo_napari.io.echonet import find_dataset_root, read_echonet_video
    from echo_napari.io.video import read_video_frames

    if path.suffix.lower() == ".avi" and find_dataset_root(path) is not None:
        return read_echonet_video(path, lazy=lazy)
    frames, frame_time, info = read_video_frames(path, lazy=lazy)
    metadata = {
        "source": str(path),
        "format": path.suffix.lower().lstrip("."),
        **info,
        "spacing_note": "video files carry no pixel spacing",
    }
    seq = EchoSequence(frames=frames, frame_time_ms=frame_time, metadata=metadata)
    return _attach_sibling_labels(path, seq)


def _attach_sibling_labels(path: Path, seq: EchoSequence) -> EchoSequence:
    """Add labels from ``<stem>_gt.{nii.gz,mhd,nii,h5}`` next to a video or DICOM file.

    Labels written by :func:`write_labels` next to frames-only formats come back this way;
    their spacing (mm) is used when the frames' file has none.
    """
    import numpy as np

    from echo_napari.io._common import check_labels
    from echo_napari.sequence import MANUAL, NO_PROVENANCE

    stem = stem_without_suffix(path)
    for suffix in (".nii.gz", ".mhd", ".nii", ".h5"):
        sidecar = path.with_name(f"{stem}_gt{suffix}")
        if sidecar.is_file():
            break
    else:
        return seq
    spacing = None
    if suffix == ".h5":
        import h5py

        try:
            with h5py.File(sidecar, "r") as handle:
                raw = handle["labels"][()]
                if "spacing" in handle.attrs:
                    spacing = tuple(float(v) for v in handle.attrs["spacing"])
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise EchoIOError(sidecar, f"not a labels file from write_labels ({exc})") from exc
    else:
        from echo_napari.io.itk import read_itk

        raw, spacing, _ = read_itk(sidecar)
    labels = check_labels(sidecar, raw, tuple(seq.frames.shape))
    labelled = {int(t) for t in np.flatnonzero(labels.reshape(len(labels), -1).any(1))}
    seq.labels = labels
    seq.keyframes = labelled
    seq.provenance = [MANUAL if t in labelled else NO_PROVENANCE for t in range(seq.n_frames)]
    seq.metadata["labels_source"] = str(sidecar)
    if seq.spacing is None and spacing is not None:
        from echo_napari.io._common import check_spacing

        seq.spacing = check_spacing(sidecar, spacing)
        seq.metadata["spacing_note"] = f"pixel spacing taken from {sidecar.name}"
    seq.validate()
    return seq


def _read_folder(folder: Path, options: dict[str, Any]) -> EchoSequence:
    if _is_patient_folder(folder):
        from echo_napari.io.camus import read_patient_folder

        return read_patient_folder(folder, view=options.get("view"))
    sequences = list_sequences(folder)
    if not sequences:
        raise EchoIOError(folder, f"no supported echo files in this folder ({SUPPORTED})")
    logger.info("%s holds %d sequences; opening %s", folder, len(sequences), sequences[0].name)
    seq = read_sequence(sequences[0], **options)
    seq.metadata["collection"] = {"folder": str(folder), "count": len(sequences)}
    return seq
