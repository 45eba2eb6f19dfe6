"""Real M-mode strips as napari layer data (plain tuples: no napari import here).

A real M-mode (PNG/TIFF strip, or the time-based region of a DICOM) becomes one 2D Image
layer, rows = depth, columns = time, scaled in (mm, s) when calibrated and in pixels
otherwise. Its calibration rides in the layer metadata under :data:`MMODE_KEY`, so the
M-mode dock can rebuild the :class:`~echo_napari.mmode.sampling.MModeImage` from the layer
without guessing from the scale (napari's own PNG reader gives scale 1, which is not 1 mm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.mmode.readers import is_mmode_file, read_mmode
from echo_napari.mmode.sampling import MModeImage

#: napari's camera is isotropic, so a time axis in seconds next to depth in mm would draw a
#: 4 s, 150 mm strip 40 times taller than wide; centiseconds give the look of a scanner's
#: 100 mm/s sweep while the unit stays true.
TIME_UNIT = "centisecond"
TIME_PER_S = 100.0

#: Layer-metadata key holding ``{"depth_step_mm", "time_step_s", "calibration", "source"}``.
MMODE_KEY = "echo_napari_mmode"

LayerData = tuple[Any, dict[str, Any], str]

UNCALIBRATED_LAYER = (
    "uncalibrated: the layer carries no M-mode calibration (open the file with the echo-napari "
    "M-mode reader, or a DICOM with a time-based ultrasound region)"
)


def mmode_layer_data(strip: MModeImage, name: str = "M-mode") -> list[LayerData]:
    """One Image layer-data tuple for a real (or anatomical) M-mode strip.

    Returns
    -------
    [(image (D, N) float32 in [0, 1], kwargs, "image")]; scale (mm, s) when calibrated,
    else 1 pixel per sample on the uncalibrated axis (units say ``pixel``); time is shown
    in :data:`TIME_UNIT`
    """
    depth, time = strip.depth_step_mm, strip.time_step_s
    meta = {
        "depth_step_mm": depth,
        "time_step_s": time,
        "calibration": strip.metadata.get(
            "calibration", "calibrated" if depth is not None else UNCALIBRATED_LAYER
        ),
        "source": strip.metadata.get("source"),
    }
    kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": (0.0, 1.0),
        "scale": layer_scale(strip),
        "units": ("mm" if depth else "pixel", TIME_UNIT if time else "pixel"),
        "axis_labels": ("depth", "time"),
        "metadata": {MMODE_KEY: meta},
    }
    return [(strip.image, kwargs, "image")]


def layer_scale(strip: MModeImage) -> tuple[float, float]:
    """napari (depth, time) scale of a strip layer: (mm, cs), 1 on an uncalibrated axis."""
    return (strip.depth_step_mm or 1.0, (strip.time_step_s or 0.01) * TIME_PER_S)


def read_mmode_layers(path: str | list[str]) -> list[LayerData]:
    """napari reader function for real M-mode files (see :func:`read_mmode`)."""
    if not isinstance(path, str):
        path = list(path)[0]
    return mmode_layer_data(read_mmode(path), name=Path(path).stem)


def get_mmode_reader(path: str | list[str]):
    """napari reader hook: :func:`read_mmode_layers` for M-mode files, else None."""
    if not isinstance(path, str):
        paths = list(path)
        if len(paths) != 1:
            return None
        path = paths[0]
    return read_mmode_layers if is_mmode_file(path) else None


def strip_from_layer(data: Any, metadata: dict[str, Any] | None, rgb: bool = False) -> MModeImage:
    """Rebuild an :class:`MModeImage` from a 2D Image layer's data and metadata.

    Parameters
    ----------
    data : (D, N) or, with ``rgb``, (D, N, 3|4) array of any numeric dtype
    metadata : the layer's metadata; calibration is read only from its :data:`MMODE_KEY`
        entry (absent: explicitly uncalibrated)

    Raises
    ------
    SequenceError
        When the data is not a single 2D strip.
    """
    array = np.asarray(data)
    if rgb and array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if array.ndim != 2:
        raise SequenceError(
            f"an M-mode layer must be one 2D (depth, time) image; got shape {array.shape}"
        )
    values = array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        values /= float(np.iinfo(array.dtype).max)
    elif values.size and float(values.max()) > 1.0:
        values /= float(values.max())
    info = (metadata or {}).get(MMODE_KEY) or {}
    depth, time = info.get("depth_step_mm"), info.get("time_step_s")
    return MModeImage(
        image=np.clip(values, 0.0, 1.0),
        depth_step_mm=float(depth) if depth else None,
        time_step_s=float(time) if time else None,
        metadata={
            "source": info.get("source"),
            "calibration": info.get("calibration") or UNCALIBRATED_LAYER,
        },
    )
