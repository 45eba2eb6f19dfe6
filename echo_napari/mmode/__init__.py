"""M-mode: anatomical M-mode from B-mode sequences, real M-mode images, band segmentation,
LV internal diameter (LVID), fractional shortening, Teichholz volumes, EF and heart rate.

Typical use::

    strip = anatomical_mmode(sequence)            # default line from the ED labels
    result = analyse_strip(strip)                 # band network + quality + measurements
    result.measurements.summary()                 # LVIDd/LVIDs (mm), FS, EDV/ESV, EF, HR
    write_diameter_csv("x_mmode.csv", result.measurements)

No napari or Qt here; the dock is :mod:`echo_napari.widgets.mmode_dock`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names are imported on first use so that light users (the CLI's --help, line sampling)
# do not pay for torch, which only the band network needs.
_LAZY: dict[str, str] = {
    "Beat": "echo_napari.mmode.measure",
    "MModeImage": "echo_napari.mmode.sampling",
    "MModeLine": "echo_napari.mmode.sampling",
    "MModeMeasurements": "echo_napari.mmode.measure",
    "MModeNet": "echo_napari.mmode.model",
    "MModeNetConfig": "echo_napari.mmode.model",
    "MModeResult": "echo_napari.mmode.analysis",
    "WindowQuality": "echo_napari.mmode.quality",
    "analyse_strip": "echo_napari.mmode.analysis",
    "anatomical_mmode": "echo_napari.mmode.analysis",
    "band_to_traces": "echo_napari.mmode.traces",
    "clean_band": "echo_napari.mmode.inference",
    "default_line": "echo_napari.mmode.sampling",
    "detect_beats": "echo_napari.mmode.measure",
    "diameter_per_column": "echo_napari.mmode.measure",
    "ejection_fraction": "echo_napari.mmode.measure",
    "fractional_shortening": "echo_napari.mmode.measure",
    "is_mmode_file": "echo_napari.mmode.readers",
    "load_mmode_model": "echo_napari.mmode.model",
    "measure_band": "echo_napari.mmode.measure",
    "measure_traces": "echo_napari.mmode.measure",
    "mmode_layer_data": "echo_napari.mmode.layers",
    "paths_to_band": "echo_napari.mmode.traces",
    "read_mmode_layers": "echo_napari.mmode.layers",
    "strip_from_layer": "echo_napari.mmode.layers",
    "paths_to_traces": "echo_napari.mmode.traces",
    "poor_columns": "echo_napari.mmode.quality",
    "predict_band_probability": "echo_napari.mmode.inference",
    "quality_threshold": "echo_napari.mmode.analysis",
    "read_mmode": "echo_napari.mmode.readers",
    "sample_along_line": "echo_napari.mmode.sampling",
    "sample_mmode": "echo_napari.mmode.sampling",
    "save_mmode_model": "echo_napari.mmode.model",
    "segment_band": "echo_napari.mmode.inference",
    "sequence_line": "echo_napari.mmode.analysis",
    "subsample_traces": "echo_napari.mmode.traces",
    "teichholz_volume_ml": "echo_napari.mmode.measure",
    "traces_to_band": "echo_napari.mmode.traces",
    "traces_to_paths": "echo_napari.mmode.traces",
    "window_quality": "echo_napari.mmode.quality",
    "write_diameter_csv": "echo_napari.mmode.measure",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Beat",
    "MModeImage",
    "MModeLine",
    "MModeMeasurements",
    "MModeNet",
    "MModeNetConfig",
    "MModeResult",
    "WindowQuality",
    "analyse_strip",
    "anatomical_mmode",
    "band_to_traces",
    "clean_band",
    "default_line",
    "detect_beats",
    "diameter_per_column",
    "ejection_fraction",
    "fractional_shortening",
    "is_mmode_file",
    "load_mmode_model",
    "measure_band",
    "measure_traces",
    "mmode_layer_data",
    "paths_to_band",
    "read_mmode_layers",
    "strip_from_layer",
    "paths_to_traces",
    "poor_columns",
    "predict_band_probability",
    "quality_threshold",
    "read_mmode",
    "sample_along_line",
    "sample_mmode",
    "save_mmode_model",
    "segment_band",
    "sequence_line",
    "subsample_traces",
    "teichholz_volume_ml",
    "traces_to_band",
    "traces_to_paths",
    "window_quality",
    "write_diameter_csv",
]
