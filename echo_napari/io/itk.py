"""MetaImage (``.mhd`` + ``.raw``) and NIfTI (``.nii``, ``.nii.gz``) through SimpleITK.

Headers are checked against the data on disk *before* SimpleITK allocates anything, so a
corrupt header yields an :class:`EchoIOError` rather than a crash or a huge allocation.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import (
    MAX_EAGER_BYTES,
    atomic_output,
    check_shape,
    check_spacing,
    full_suffix,
)

logger = logging.getLogger(__name__)

_MET_SIZES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 8,
    "MET_ULONG": 8,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
#: gzip/zlib cannot expand data by more than ~1032x; a header claiming more is corrupt.
_MAX_DEFLATE_RATIO = 1100
_FRAME_TIME_NOTE = re.compile(r"frame_time_ms=([0-9.eE+-]+)")


def parse_mhd_header(path: str | Path) -> dict[str, str]:
    """The ``key = value`` lines of a MetaImage header (keys as written)."""
    path = Path(path)
    try:
        raw = path.read_bytes()[:65536]
    except OSError as exc:
        raise EchoIOError(path, f"cannot read the header ({exc})") from exc
    if b"\x00" in raw.split(b"ElementDataFile", 1)[0]:
        raise EchoIOError(path, "not a MetaImage text header (binary bytes before the data)")
    header: dict[str, str] = {}
    for line in raw.decode("latin-1").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
        if line.strip().startswith("ElementDataFile"):
            break
    return header


def _check_mhd(path: Path) -> None:
    header = parse_mhd_header(path)
    for key in ("NDims", "DimSize", "ElementType", "ElementDataFile"):
        if key not in header:
            raise EchoIOError(path, f"MetaImage header lacks '{key}'")
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        ndims = int(header["NDims"])
        channels = int(header.get("ElementNumberOfChannels", "1"))
    except ValueError as exc:
        raise EchoIOError(path, f"unreadable MetaImage header value ({exc})") from exc
    if ndims not in (2, 3) or len(dims) != ndims or min(dims) < 1 or not 1 <= channels <= 4:
        raise EchoIOError(path, f"expected a 2D or 3D image; header says NDims={ndims} {dims}")
    if "ElementSpacing" in header:
        try:
            spacing = [float(v) for v in header["ElementSpacing"].split()]
        except ValueError as exc:
            raise EchoIOError(path, f"unreadable ElementSpacing ({exc})") from exc
        if len(spacing) != ndims or not all(np.isfinite(v) and v > 0 for v in spacing):
            raise EchoIOError(
                path, f"ElementSpacing must be {ndims} positive numbers; found {spacing}"
            )
    size = _MET_SIZES.get(header["ElementType"])
    if size is None:
        raise EchoIOError(path, f"unsupported ElementType {header['ElementType']!r}")
    nbytes = int(np.prod(dims, dtype=np.int64)) * size * channels
    if nbytes > MAX_EAGER_BYTES:
        raise EchoIOError(path, f"header claims {nbytes / 1e9:.1f} GB of pixels (corrupt?)")
    data_file = header["ElementDataFile"]
    compressed = header.get("CompressedData", "False").lower() == "true"
    if data_file.upper() == "LOCAL":
        available = path.stat().st_size
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        raise EchoIOError(path, "multi-file MetaImage (ElementDataFile LIST) is not supported")
    else:
        raw = path.parent / data_file
        if not raw.is_file():
            raise EchoIOError(path, f"its data file {data_file!r} is missing next to it")
        available = raw.stat().st_size
    if compressed:
        if available * _MAX_DEFLATE_RATIO < nbytes:
            raise EchoIOError(path, f"compressed data file too small for {dims}")
    elif available < nbytes:
        raise EchoIOError(
            path,
            f"data file {data_file!r} holds {available} bytes; the header needs {nbytes} "
            f"for DimSize {dims} (truncated?)",
        )


def _check_nifti(path: Path, reader: object) -> None:
    size = reader.GetSize()
    nbytes = int(np.prod(size, dtype=np.int64)) * reader.GetNumberOfComponents() * 8
    file_size = path.stat().st_size
    limit = file_size * _MAX_DEFLATE_RATIO if full_suffix(path) == ".nii.gz" else None
    if nbytes > MAX_EAGER_BYTES or (limit is not None and nbytes / 8 > limit):
        raise EchoIOError(path, f"header claims an image of size {size} (corrupt?)")
    if limit is None and file_size < int(np.prod(size, dtype=np.int64)):
        raise EchoIOError(path, f"file is {file_size} bytes: too small for size {size}")
    for axis in (1, 2):
        key = f"pixdim[{axis}]"
        if reader.HasMetaDataKey(key):
            try:
                value = float(reader.GetMetaData(key))
            except ValueError:
                value = float("nan")
            if not (np.isfinite(value) and value > 0):
                raise EchoIOError(
                    path,
                    f"NIfTI {key}={reader.GetMetaData(key)!r} is not a positive pixel spacing",
                )


def read_itk(path: str | Path) -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    """Read a 2D or 2D+time image.

    Returns
    -------
    array : (T, H, W) array in the file's pixel type (a 2D image gives T = 1)
    spacing : (dy, dx) mm, or None when the header does not give it
    info : dict
        ``frame_time_ms`` when the header stores it.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise EchoIOError(path, "file not found")
    if path.stat().st_size == 0:
        raise EchoIOError(path, "file is empty")
    suffix = full_suffix(path)
    if suffix == ".mhd":
        _check_mhd(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        if suffix != ".mhd":
            _check_nifti(path, reader)
        dim = reader.GetDimension()
        size = reader.GetSize()
        if dim == 4 and size[3] == 1:
            reader.SetExtractIndex([0, 0, 0, 0])
            reader.SetExtractSize([size[0], size[1], size[2], 0])
        elif dim not in (2, 3):
            raise EchoIOError(path, f"expected a 2D image or 2D+time sequence; found {dim}D")
        image = reader.Execute()
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise EchoIOError(path, f"SimpleITK could not read it ({message[:200]})") from exc
    if image.GetNumberOfComponentsPerPixel() > 1:
        if array.ndim - image.GetDimension() != 1 or array.shape[-1] not in (3, 4):
            raise EchoIOError(path, f"unsupported multi-component pixels {array.shape}")
        array = array[..., :3].mean(axis=-1)
    if array.ndim == 2:
        array = array[np.newaxis]
    check_shape(path, tuple(array.shape))
    spacing = _header_spacing(path, image, reader)
    info: dict = {}
    for key in ("FrameTimeMs", "ITK_FileNotes", "descrip"):
        if reader.HasMetaDataKey(key):
            value = reader.GetMetaData(key)
            match = _FRAME_TIME_NOTE.search(value) if key != "FrameTimeMs" else None
            text = match.group(1) if match else (value if key == "FrameTimeMs" else None)
            try:
                frame_time = float(text) if text is not None else None
            except ValueError:
                frame_time = None
            if frame_time is not None and np.isfinite(frame_time) and frame_time > 0:
                info["frame_time_ms"] = frame_time
                break
    return array, spacing, info


def _header_spacing(path: Path, image: object, reader: object) -> tuple[float, float] | None:
    sx, sy = image.GetSpacing()[:2]
    if full_suffix(path) == ".mhd":
        header = parse_mhd_header(path)
        if "ElementSpacing" not in header and "ElementSize" not in header:
            return None
    elif sx == 1.0 and sy == 1.0:
        units = reader.GetMetaData("xyzt_units") if reader.HasMetaDataKey("xyzt_units") else ""
        if units.strip() in ("", "0"):
            return None
    if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
        raise EchoIOError(path, f"pixel spacing in the header is not positive: {(sy, sx)}")
    return check_spacing(path, (sy, sx))


def write_itk(
    array: np.ndarray,
    path: str | Path,
    spacing: tuple[float, float] | None = None,
    frame_time_ms: float | None = None,
) -> list[Path]:
    """Write a (T, H, W) array as ``.mhd`` + ``.raw``, ``.nii`` or ``.nii.gz`` (atomically).

    Parameters
    ----------
    array : (T, H, W) or (H, W) array (uint8 labels, float32 frames, ...)
    spacing : (dy, dx) mm or None
        Written into the header (None writes 1 and, for NIfTI, no spatial unit meaning).
    frame_time_ms : float or None
        Stored as ``FrameTimeMs`` (MetaImage) or in the NIfTI ``descrip`` field.

    Returns
    -------
    list of Path
        The files written (``.mhd`` and ``.raw`` for MetaImage).
    """
    import SimpleITK as sitk

    path = Path(path)
    suffix = full_suffix(path)
    if suffix not in (".mhd", ".nii", ".nii.gz"):
        raise EchoIOError(path, f"expected a .mhd, .nii or .nii.gz name; found {suffix!r}")
    array = np.ascontiguousarray(array)
    image = sitk.GetImageFromArray(array)
    if spacing is not None:
        dy, dx = check_spacing(path, spacing)
        image.SetSpacing((dx, dy, 1.0)[: image.GetDimension()])
    if frame_time_ms is not None:
        key = "FrameTimeMs" if suffix == ".mhd" else "ITK_FileNotes"
        value = (
            f"{float(frame_time_ms):.6g}"
            if suffix == ".mhd"
            else f"frame_time_ms={frame_time_ms:.6g}"
        )
        image.SetMetaData(key, value)
    written = [path]
    with atomic_output(path) as tmp:
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp / path.name))
        writer.SetUseCompression(suffix != ".mhd")
        try:
            writer.Execute(image)
        except RuntimeError as exc:
            raise EchoIOError(path, f"SimpleITK could not write it ({exc})") from exc
        if suffix == ".mhd":
            written = [path.parent / p.name for p in sorted(tmp.iterdir())]
    return written
