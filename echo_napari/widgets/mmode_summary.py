"""The M-mode dock's one-paragraph summary (measurements, quality, calibration state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scipy.signal behind measure: imported by the dock in the background
    from echo_napari.mmode.measure import MModeMeasurements
    from echo_napari.mmode.quality import WindowQuality
    from echo_napari.mmode.sampling import MModeImage


def calibration_note(strip: MModeImage) -> str:
    """Empty for a fully calibrated strip, else a sentence saying what is uncalibrated."""
    missing = []
    if strip.depth_step_mm is None:
        missing.append("depth (diameters in pixels; no volumes, EF or CSV in mm)")
    if strip.time_step_s is None:
        missing.append("time (columns, not seconds; no heart rate)")
    if not missing:
        return ""
    reason = strip.metadata.get("calibration") or "no calibration"
    return f"UNCALIBRATED {' and '.join(missing)} — {reason}. "


def summary_text(
    strip: MModeImage | None,
    measurements: MModeMeasurements | None,
    source: str,
    windows: Sequence[WindowQuality] | None = None,
) -> str:
    """Text for the dock: LVIDd/LVIDs/FS (and Teichholz volumes, EF, HR when calibrated),
    the measurement source ("labels", "network", "edited traces") and poor windows."""
    note = "" if strip is None else calibration_note(strip)
    if measurements is None:
        return note + "No band: add a labels layer or press Segment band."
    s = measurements.summary()
    if not s["beats"]:
        return note + f"LVID from {source}: no complete beat in this clip."
    unit = measurements.units
    text = (
        f"{source}: LVIDd {s['lvidd_mm']:.1f} {unit}, LVIDs {s['lvids_mm']:.1f} {unit}, "
        f"FS {s['fs_percent']:.0f} %"
    )
    if unit == "mm":
        text += (
            f", Teichholz EDV {s['edv_ml']:.0f} ml, ESV {s['esv_ml']:.0f} ml, "
            f"EF {s['ef_percent']:.0f} %"
        )
    if s["heart_rate_bpm"]:
        text += f", HR {s['heart_rate_bpm']:.0f} bpm"
    if windows:
        poor = sum(w.poor for w in windows)
        text += f"; {poor} of {len(windows)} windows poor (left out)"
    return note + text
