"""Real M-mode images: PNG/TIFF strips (SimpleITK) and DICOM with a time-based region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io.dicom import _dcmread, _decode, _number, _to_grey, is_dicom
from echo_napari.mmode.sampling import MModeImage

_SECONDS = 4  # DICOM PhysicalUnits code for seconds
_CM = 3
_STRIP_SUFFIXES = (".png", ".tif", ".tiff")


def is_mmode_file(path: str | Path) -> bool:
    """True for PNG/TIFF images and DICOMs holding a time-based ultrasound region."""
    path = Path(path)
    if path.suffix.lower() in _STRIP_SUFFIXES:
        return True
    if not path.is_file() or not is_dicom(path):
        return False
    try:
        ds = _dcmread(path)
    except EchoIOError:
        return False
    return time_region(ds) is not None


def time_region(ds: Any) -> Any | None:
    """The M-mode region: PhysicalUnitsXDirection 4 (s), Y 3 (cm); the largest one."""
    best, best_area = None, -1
    for region in ds.get("SequenceOfUltrasoundRegions", None) or []:
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units != (_SECONDS, _CM):
            continue
        try:
            area = (int(region.RegionLocationMaxX1) - int(region.RegionLocationMinX0)) * (
                int(region.RegionLocationMaxY1) - int(region.RegionLocationMinY0)
            )
        except (AttributeError, TypeError, ValueError):
            area = 0
        if area > best_area:
            best, best_area = region, area
    return best


def read_mmode(path: str | Path) -> MModeImage:
    """Read a real M-mode image.

    PNG/TIFF strips carry no calibration (the result is explicitly uncalibrated:
    ``depth_step_mm`` and ``time_step_s`` None, ``metadata["calibration"]`` says so).
    DICOM: the time-based region (s × cm) is cropped and calibrated; a DICOM without one
    is returned whole and uncalibrated.

    Returns
    -------
    MModeImage with image (D, N) float32 in [0, 1] (rows = depth, columns = time)
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise EchoIOError(path, "file is missing or empty")
    if path.suffix.lower() in _STRIP_SUFFIXES:
        return _read_strip(path)
    if is_dicom(path):
        return _read_dicom(path)
    raise EchoIOError(
        path, "not an M-mode image: expected a PNG, TIFF or DICOM (DICM marker) file"
    )


def _read_strip(path: Path) -> MModeImage:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise EchoIOError(path, f"cannot decode the image ({str(exc).strip()[:200]})") from exc
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise EchoIOError(
            path, f"expected a single 2D strip; found an array of shape {array.shape}"
        )
    values = array.astype(np.float32)
    top = (
        float(np.iinfo(array.dtype).max)
        if np.issubdtype(array.dtype, np.integer)
        else max(float(values.max()), 1.0)
    )
    return MModeImage(
        image=np.clip(values / top, 0.0, 1.0),
        metadata={
            "source": str(path),
            "calibration": "uncalibrated: PNG/TIFF strips carry no depth or time scale",
        },
    )


def _read_dicom(path: Path) -> MModeImage:
    ds = _dcmread(path)
    frames = _to_grey(path, ds, _decode(path, ds))
    image = frames[0].astype(np.float32)
    region = time_region(ds)
    metadata: dict[str, Any] = {"source": str(path), "format": "dicom"}
    if region is None:
        metadata["calibration"] = (
            "uncalibrated: no ultrasound region with PhysicalUnitsXDirection 4 (s) and "
            "PhysicalUnitsYDirection 3 (cm)"
        )
        return MModeImage(image=image, metadata=metadata)
    try:
        x0, x1 = int(region.RegionLocationMinX0), int(region.RegionLocationMaxX1)
        y0, y1 = int(region.RegionLocationMinY0), int(region.RegionLocationMaxY1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise EchoIOError(path, f"the M-mode region has no valid RegionLocation ({exc})") from exc
    h, w = image.shape
    if not (0 <= x0 < x1 < w + 1 and 0 <= y0 < y1 < h + 1) or x1 - x0 < 2 or y1 - y0 < 2:
        raise EchoIOError(
            path, f"M-mode region x {x0}..{x1}, y {y0}..{y1} does not fit the {h}x{w} image"
        )
    dt, dy = _number(region, "PhysicalDeltaX"), _number(region, "PhysicalDeltaY")
    strip = image[y0 : y1 + 1, x0 : x1 + 1]
    if not dt or not dy or dt <= 0 or dy <= 0:
        metadata["calibration"] = (
            "uncalibrated: the M-mode region has "
            f"PhysicalDeltaX={region.get('PhysicalDeltaX')} s, "
            f"PhysicalDeltaY={region.get('PhysicalDeltaY')} cm (expected positive numbers)"
        )
        return MModeImage(image=strip, metadata=metadata)
    metadata["calibration"] = "from the DICOM time-based ultrasound region"
    metadata["region"] = (y0, x0, y1, x1)
    return MModeImage(
        image=strip, depth_step_mm=abs(dy) * 10.0, time_step_s=abs(dt), metadata=metadata
    )
