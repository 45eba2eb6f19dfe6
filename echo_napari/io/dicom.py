"""DICOM ultrasound (single- and multi-frame) through pydicom."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import (
    MAX_EAGER_BYTES,
    atomic_output,
    check_shape,
    check_spacing,
    frames_to_uint8,
)
from echo_napari.io.frame_source import LAZY_THRESHOLD_BYTES, FrameSource, lazy_frames
from echo_napari.sequence import EchoSequence

logger = logging.getLogger(__name__)

US_MULTIFRAME_SOP = "1.2.840.10008.5.1.4.1.1.3.1"
_CM = 3  # PhysicalUnits code for centimetres
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.50": "pillow, or pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pillow, or pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pyjpegls, or pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pyjpegls, or pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg (or pillow built with openjpeg)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg (or pillow built with openjpeg)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg",
}


def is_dicom(path: str | Path, head: bytes | None = None) -> bool:
    """Cheap check: the ``DICM`` marker at byte 128."""
    if head is None:
        from echo_napari.io._common import read_head

        head = read_head(path, 132)
    return len(head) >= 132 and head[128:132] == b"DICM"


def _dcmread(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise EchoIOError(path, f"not a DICOM file ({exc})") from exc
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        EOFError,
        NotImplementedError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
    ) as exc:
        raise EchoIOError(path, f"corrupt DICOM header ({type(exc).__name__}: {exc})") from exc


def _number(ds: Any, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        value = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and np.isfinite(value) else None


def frame_time_ms(ds: Any) -> float | None:
    """Frame time from FrameTime, FrameTimeVector, CineRate or RecommendedDisplayFrameRate."""
    value = _number(ds, "FrameTime")
    if value and value > 0:
        return value
    vector = ds.get("FrameTimeVector")
    if vector:
        try:
            times = np.asarray([float(v) for v in vector], dtype=np.float64)
        except (TypeError, ValueError):
            times = np.array([])
        times = times[1:] if len(times) > 1 and times[0] == 0 else times
        if times.size and np.isfinite(times).all() and times.mean() > 0:
            return float(times.mean())
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _number(ds, keyword)
        if rate and rate > 0:
            return 1000.0 / rate
    return None


def ultrasound_spacing(ds: Any) -> tuple[tuple[float, float] | None, str]:
    """(dy, dx) mm from SequenceOfUltrasoundRegions (or PixelSpacing), with a note.

    Only 2D regions calibrated in cm in both directions count (time/Doppler strips use
    seconds); among them the one covering the largest image area is taken.
    """
    best, best_area = None, -1.0
    invalid = []
    for region in ds.get("SequenceOfUltrasoundRegions", None) or []:
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        fmt = region.get("RegionSpatialFormat")
        if units != (_CM, _CM) or (fmt is not None and fmt not in (1,)):
            continue
        dx, dy = _number(region, "PhysicalDeltaX"), _number(region, "PhysicalDeltaY")
        if not dx or not dy or dx <= 0 or dy <= 0:
            invalid.append((region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")))
            continue
        try:
            area = float(region.RegionLocationMaxX1 - region.RegionLocationMinX0) * float(
                region.RegionLocationMaxY1 - region.RegionLocationMinY0
            )
        except (AttributeError, TypeError):
            area = 0.0
        if area > best_area:
            best, best_area = (abs(dy) * 10.0, abs(dx) * 10.0), area
    if best is not None:
        return best, "from SequenceOfUltrasoundRegions (cm converted to mm)"
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        try:
            dy, dx = float(spacing[0]), float(spacing[1])
        except (TypeError, ValueError):
            dy = dx = 0.0
        if np.isfinite(dy) and np.isfinite(dx) and dy > 0 and dx > 0:
            return (dy, dx), "from PixelSpacing"
    if invalid:
        return None, f"spatial calibration regions have invalid PhysicalDeltaY/X {invalid}"
    return None, "no spatial calibration in the DICOM header (no cm ultrasound region)"


def _check_decoder(path: Path, ds: Any) -> None:
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return
    if not syntax.is_transfer_syntax:
        raise EchoIOError(path, f"unknown transfer syntax UID {str(syntax)[:64]!r}")
    if not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise EchoIOError(
            path, f"no pydicom decoder for transfer syntax {syntax.name} ({syntax})"
        ) from exc
    if not decoder.is_available:
        hint = _DECODER_HINTS.get(str(syntax), "a pydicom decoding plugin")
        raise EchoIOError(
            path,
            f"pixel data compressed as {syntax.name} ({syntax}); "
            f"no installed decoder can read it: pip install {hint}",
        )


#: photometric interpretations whose first sample is the luma (full range, BT.601: the
#: weights of :data:`_LUMA`): their grey is that sample, no conversion to RGB
_LUMA_FIRST = ("YBR_FULL", "YBR_FULL_422")
#: what pydicom and its plugins raise on pixel data they cannot decode
_DECODE_ERRORS = (
    ValueError,
    RuntimeError,
    NotImplementedError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    MemoryError,
)


def _is_compressed(ds: Any) -> bool:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return bool(syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed)


def _luma_only(ds: Any) -> bool:
    """Decode only the luma sample: a compressed YBR_FULL(_422) cine (see :func:`_pixels`)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return _is_compressed(ds) and photometric in _LUMA_FIRST


def _preferred_plugin(ds: Any) -> str:
    """ "pillow" where it can decode the cine (JPEG Baseline / Extended, JPEG 2000), else
    "" (pydicom's choice). For JPEG Baseline pydicom would take pylibjpeg, which decodes
    a 600 × 800 frame in 9.4 ms against Pillow's 3.8 ms and holds the GIL meanwhile:
    while a Predict job read a lazy cine, napari's event loop was late by 12–13 ms at the
    99th percentile against 2–4 ms with Pillow (``benchmarks/gui_latency.py`` part 4), and
    stalled up to 0.2–0.6 s at the job's start in fresh interpreters (Pillow ≤ 0.13 s)."""
    from pydicom.pixels import get_decoder

    try:
        plugins = get_decoder(ds.file_meta.TransferSyntaxUID).available_plugins
    except (AttributeError, NotImplementedError, ValueError):
        return ""
    return "pillow" if "pillow" in plugins else ""


def _one_frame(ds: Any, index: int, plugin: str = "") -> np.ndarray:
    """Frame ``index`` decoded: (H, W[, samples]), (H, W) when :func:`_luma_only`;
    ``plugin``: pydicom's decoding plugin to try first (:func:`_preferred_plugin`)."""
    from pydicom.pixels import pixel_array

    luma = _luma_only(ds)
    try:
        decoded = pixel_array(ds, index=index, as_rgb=not luma, decoding_plugin=plugin)
    except _DECODE_ERRORS:
        if not plugin:
            raise
        # e.g. 12-bit JPEG Extended, which Pillow does not read
        decoded = pixel_array(ds, index=index, as_rgb=not luma)
    return decoded[..., 0] if luma and decoded.ndim == 3 else decoded


def _pixels(ds: Any, frames: int, samples: int) -> tuple[np.ndarray, int]:
    """The decoded pixels, (T, H, W[, samples]) or (H, W[, samples]) for one frame, and
    the samples per pixel kept (1 for a luma-only decode).

    A compressed cine is decoded frame by frame (pydicom's whole-array path converts
    colour more slowly), with Pillow where it can (:func:`_preferred_plugin`), and a
    YBR_FULL(_422) one keeps only its luma sample, (T, H, W), with no conversion to RGB
    and back: ``benchmarks/dicom_read.py``, a 120-frame 600 × 800 JPEG cine in 0.25 s
    instead of 2.18 s; the luma differs from that of the converted RGB by rounding only
    (mean 0.0004 of the grey range)."""
    from pydicom.pixels import pixel_array

    if not _is_compressed(ds):
        return pixel_array(ds), samples
    plugin = _preferred_plugin(ds)
    first = _one_frame(ds, 0, plugin)
    out = np.empty((frames, *first.shape), dtype=first.dtype)
    out[0] = first
    for index in range(1, frames):
        out[index] = _one_frame(ds, index, plugin)
    kept = samples if first.ndim == 3 else 1
    return (out if frames > 1 else out[0]), kept


def _image_attributes(path: Path, ds: Any) -> tuple[int, int, int, int, int]:
    """(frames, rows, columns, samples per pixel, bytes of the decoded cine as float32),
    checked; a decoder must be installed."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise EchoIOError(path, f"image attributes missing or invalid ({exc})") from exc
    if "PixelData" not in ds:
        raise EchoIOError(path, "the file holds no pixel data (not an image)")
    check_shape(path, (frames, rows, cols))
    _check_decoder(path, ds)
    return frames, rows, cols, samples, frames * rows * cols * samples * max(bits, 8) // 8 * 4


def _decode(
    path: Path, ds: Any, attributes: tuple[int, int, int, int, int] | None = None
) -> np.ndarray:
    """All frames decoded, (T, H, W[, samples]); ``attributes``: what
    :func:`_image_attributes` gave, when the caller has it already."""
    frames, _, _, samples, eager_bytes = attributes or _image_attributes(path, ds)
    if eager_bytes > MAX_EAGER_BYTES:
        raise EchoIOError(path, f"{frames} frames are too large to load at once")
    try:
        array, samples = _pixels(ds, frames, samples)
    except _DECODE_ERRORS as exc:
        raise EchoIOError(
            path, f"pixel data could not be decoded ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    expected_ndim = (2 if frames == 1 else 3) + (1 if samples > 1 else 0)
    if array.ndim != expected_ndim:
        raise EchoIOError(path, f"decoded pixel array has shape {array.shape}")
    if frames == 1:
        array = array[np.newaxis]
    return array


class DicomFrameSource(FrameSource):
    """The grey frames of a multi-frame DICOM, each decoded when asked for (the file's
    bytes stay in memory, ~1/20 of the decoded float32 cine for JPEG).

    Parameters
    ----------
    path : the file (for messages)
    ds : its dataset, pixel data included
    shape : (T, H, W)
    """

    def __init__(self, path: Path, ds: Any, shape: tuple[int, int, int]) -> None:
        self.path = path
        self.ds = ds
        self.shape = shape
        self.plugin = _preferred_plugin(ds)
        self._lock = threading.Lock()
        self.frame(0)  # a file that cannot be decoded fails on opening, not on scrubbing

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W) float32 in [0, 1]."""
        with self._lock:  # pydicom's decoders keep per-dataset state
            try:
                decoded = _one_frame(self.ds, t, self.plugin)
            except _DECODE_ERRORS as exc:
                raise EchoIOError(
                    self.path, f"frame {t} could not be decoded ({type(exc).__name__}: {exc})"
                ) from exc
        grey = _to_grey(self.path, self.ds, decoded[np.newaxis])[0]
        if grey.shape != self.shape[1:] or not np.isfinite(grey).all():
            raise EchoIOError(self.path, f"frame {t} decoded as {grey.shape}, not a clean image")
        return grey.astype(np.float32, copy=False)

    # dask.distributed ships the source to its workers: the lock stays behind
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _to_grey(path: Path, ds: Any, array: np.ndarray) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = apply_color_lut(array, ds)
        except (ValueError, KeyError, AttributeError, IndexError, TypeError) as exc:
            raise EchoIOError(path, f"palette colour lookup table unusable ({exc})") from exc
        try:
            entry_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        except (AttributeError, IndexError, TypeError, ValueError):
            entry_bits = 8 if rgb.dtype == np.uint8 else 16
        scale = float(2 ** (16 if entry_bits == 16 else 8) - 1)
        return (rgb[..., :3].astype(np.float32) @ _LUMA) / np.float32(scale)
    if array.ndim == 4:
        if array.shape[-1] != 3:
            raise EchoIOError(path, f"expected 3 colour samples; found {array.shape[-1]}")
        bits = int(ds.get("BitsStored") or 8)
        return (array.astype(np.float32) @ _LUMA) / np.float32(2**bits - 1)
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    values = array.astype(np.float32)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        values += np.float32(2 ** (bits - 1))
    values /= np.float32(2**bits - 1)
    # in place: a 150-frame 600 × 800 cine is 290 MB of float32, and a copy per step
    # doubles what napari's reader holds on the GUI thread
    np.clip(values, 0.0, 1.0, out=values)
    if photometric == "MONOCHROME1":
        np.subtract(np.float32(1.0), values, out=values)
    return values


def read_dicom(path: str | Path, lazy: bool | None = None) -> EchoSequence:
    """Read a DICOM (multi-frame) ultrasound image.

    Parameters
    ----------
    path : the file
    lazy : a multi-frame cine's frames as a dask array decoded frame by frame on demand
        (True), all decoded now (False), or lazily when they would take more than
        :data:`~echo_napari.io.frame_source.LAZY_THRESHOLD_BYTES` as float32 (None)

    Returns
    -------
    EchoSequence
        frames (T, H, W) float32 in [0, 1] (palette and RGB/YBR converted to luma);
        spacing (dy, dx) mm from SequenceOfUltrasoundRegions or None
        (``metadata["spacing_note"]`` says why); frame_time_ms from the header.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise EchoIOError(path, "file is missing or empty")
    ds = _dcmread(path)
    attributes = _image_attributes(path, ds)
    n, rows, cols = attributes[:3]
    if lazy is None:
        lazy = n > 1 and n * rows * cols * 4 > LAZY_THRESHOLD_BYTES
    if lazy and n > 1:
        frames = lazy_frames(DicomFrameSource(path, ds, (n, rows, cols)))
    else:
        array = _decode(path, ds, attributes)
        frames = _to_grey(path, ds, array).astype(np.float32, copy=False)
        if not np.isfinite(frames).all():
            raise EchoIOError(path, "decoded pixels contain NaN")
    spacing, note = ultrasound_spacing(ds)
    if spacing is not None:
        spacing = check_spacing(path, spacing)
    metadata: dict[str, Any] = {
        "source": str(path),
        "format": "dicom",
        "sop_class": str(ds.get("SOPClassUID", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")),
    }
    metadata["spacing_note" if spacing is None else "spacing_source"] = note
    return EchoSequence(
        frames=frames, spacing=spacing, frame_time_ms=frame_time_ms(ds), metadata=metadata
    )


def write_dicom(seq: EchoSequence, path: str | Path) -> list[Path]:
    """Write the frames as an Ultrasound Multi-frame Image (MONOCHROME2, 8 bit, atomically).

    Spacing goes into one SequenceOfUltrasoundRegions item (cm), frame time into FrameTime
    and CineRate. Labels are not stored.

    Returns
    -------
    list of Path
        The file written.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.tag import Tag
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    frames = frames_to_uint8(seq.frames_array())
    t, h, w = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME_SOP, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = "Anonymous", ""
    ds.SeriesDescription = f"echo-napari export ({seq.view})"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, t
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if seq.frame_time_ms:
        ds.FrameTime = f"{seq.frame_time_ms:.6g}"
        ds.CineRate = max(1, round(1000.0 / seq.frame_time_ms))
        ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    if seq.spacing is not None:
        region = Dataset()
        region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
        region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = w - 1, h - 1
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = _CM
        region.PhysicalDeltaX, region.PhysicalDeltaY = seq.spacing[1] / 10, seq.spacing[0] / 10
        ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = frames.tobytes()
    with atomic_output(path) as tmp:
        ds.save_as(tmp / path.name, enforce_file_format=True)
    return [path]
