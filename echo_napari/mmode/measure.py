"""M-mode measurements: LV internal diameter (LVID) per column, LVIDd / LVIDs per beat,
fractional shortening, Teichholz volumes, EF and heart rate; CSV export."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks

from echo_napari.errors import EchoIOError, SequenceError
from echo_napari.mmode.traces import as_trace_pair, band_to_traces, subsample_traces

#: Shortest plausible beat (200 bpm) when searching diameter peaks.
MIN_BEAT_S = 0.3
#: Median filter length (s) applied to the diameter curve before reading beats.
SMOOTH_S = 0.06
#: LVIDs below this fraction of LVIDd (FS > 75 %) means a lost border, not a beat.
MIN_LVIDS_FRACTION = 0.25


def teichholz_volume_ml(diameter_mm: float | np.ndarray) -> float | np.ndarray:
    """Teichholz volume V = 7·D³ / (2.4 + D), D in cm, V in ml.

    Parameters
    ----------
    diameter_mm : LV internal diameter in mm (scalar or array)
    """
    d_cm = np.asarray(diameter_mm, dtype=np.float64) / 10.0
    if np.any(d_cm < 0):
        raise SequenceError(f"diameters must be non-negative mm; got {diameter_mm}")
    volume = 7.0 * d_cm**3 / (2.4 + d_cm)
    return float(volume) if volume.ndim == 0 else volume


def fractional_shortening(lvidd_mm: float, lvids_mm: float) -> float:
    """FS = (LVIDd − LVIDs) / LVIDd in percent."""
    if not lvidd_mm > 0:
        raise SequenceError(f"LVIDd must be positive; got {lvidd_mm}")
    return 100.0 * (lvidd_mm - lvids_mm) / lvidd_mm


def ejection_fraction(edv_ml: float, esv_ml: float) -> float:
    """EF = (EDV − ESV) / EDV in percent."""
    if not edv_ml > 0:
        raise SequenceError(f"EDV must be positive; got {edv_ml}")
    return 100.0 * (edv_ml - esv_ml) / edv_ml


def diameter_per_column(
    band: np.ndarray, depth_step: float, probability: np.ndarray | None = None
) -> np.ndarray:
    """LVID per column: length of the band's longest run × ``depth_step``.

    Parameters
    ----------
    band : (D, N) bool/uint8
    depth_step : mm per row (or 1 for pixels)
    probability : (D, N) soft band, optional; edges then sit at its 0.5 crossings
        (sub-row), otherwise the length is a whole number of rows

    Returns
    -------
    (N,) float64 (NaN where a column has no band)
    """
    if probability is not None:
        upper, lower = subsample_traces(probability, band)
    else:
        upper, lower = band_to_traces(band)
    return (lower - upper) * depth_step


@dataclass(frozen=True)
class Beat:
    """One beat: ED (diameter maximum) and the following ES (minimum), columns and values."""

    ed_column: int
    es_column: int
    lvidd_mm: float
    lvids_mm: float

    @property
    def fs_percent(self) -> float:
        """Fractional shortening in percent."""
        return fractional_shortening(self.lvidd_mm, self.lvids_mm)

    @property
    def edv_ml(self) -> float:
        """Teichholz end-diastolic volume."""
        return teichholz_volume_ml(self.lvidd_mm)

    @property
    def esv_ml(self) -> float:
        """Teichholz end-systolic volume."""
        return teichholz_volume_ml(self.lvids_mm)

    @property
    def ef_percent(self) -> float:
        """Teichholz EF in percent."""
        return ejection_fraction(self.edv_ml, self.esv_ml)


@dataclass(frozen=True)
class MModeMeasurements:
    """Measurements of one strip.

    Attributes
    ----------
    times_s : (N,) float64 column times
    lvid_mm : (N,) float64 LVID per column (NaN where no band or the column is flagged poor)
    beats : detected beats (ED → ES)
    heart_rate_bpm : from the spacing of ED peaks; None with fewer than two beats
    units : "mm", or "px" for an uncalibrated strip (then volumes/EF are not meaningful)
    """

    times_s: np.ndarray
    lvid_mm: np.ndarray
    beats: list[Beat] = field(default_factory=list)
    heart_rate_bpm: float | None = None
    units: str = "mm"

    def summary(self) -> dict[str, float | None]:
        """Mean LVIDd, LVIDs, FS, EDV, ESV, EF over beats, and the heart rate."""
        if not self.beats:
            keys = ("lvidd_mm", "lvids_mm", "fs_percent", "edv_ml", "esv_ml", "ef_percent")
            return {**dict.fromkeys(keys), "heart_rate_bpm": self.heart_rate_bpm, "beats": 0}
        lvidd = float(np.mean([b.lvidd_mm for b in self.beats]))
        lvids = float(np.mean([b.lvids_mm for b in self.beats]))
        return {
            "lvidd_mm": lvidd,
            "lvids_mm": lvids,
            "fs_percent": float(np.mean([b.fs_percent for b in self.beats])),
            "edv_ml": float(np.mean([b.edv_ml for b in self.beats])),
            "esv_ml": float(np.mean([b.esv_ml for b in self.beats])),
            "ef_percent": float(np.mean([b.ef_percent for b in self.beats])),
            "heart_rate_bpm": self.heart_rate_bpm,
            "beats": len(self.beats),
        }


def detect_beats(lvid: np.ndarray, time_step_s: float | None) -> tuple[list[Beat], float | None]:
    """ED = diameter maxima, ES = the minimum before the next ED (or the end).

    The curve is first median-filtered over :data:`SMOOTH_S` (isolated mis-segmented
    columns would otherwise become LVIDs); LVIDd/LVIDs are read from the filtered curve.
    Peaks closer than :data:`MIN_BEAT_S` are merged; a peak must rise by 30 % of the
    curve's 5–95 % range. With no peak (clips shorter than a beat) the global maximum and
    the minimum after it form the one beat. Beats with LVIDs < :data:`MIN_LVIDS_FRACTION`
    × LVIDd (FS > 75 %, not physiological: a lost border) are left out. NaN columns are
    ignored.

    Returns
    -------
    beats, heart rate in bpm (None with fewer than two ED peaks inside the clip, or an
    unknown time step)
    """
    raw = np.asarray(lvid, dtype=np.float64)
    valid = np.isfinite(raw)
    if valid.sum() < 3:
        return [], None
    filled = np.interp(np.arange(raw.size), np.flatnonzero(valid), raw[valid])
    size = max(3, int(round(SMOOTH_S / time_step_s)) | 1) if time_step_s else 3
    lvid = np.where(valid, median_filter(filled, size=size, mode="nearest"), np.nan)
    smooth = np.where(valid, lvid, filled)
    distance = max(1, int(MIN_BEAT_S / time_step_s)) if time_step_s else max(1, raw.size // 8)
    period = dominant_period(smooth, time_step_s) if time_step_s else None
    if period is not None:
        # Two EDs are at least ~0.7 of the dominant beat-to-beat period apart.
        distance = max(distance, int(0.7 * period))
    low, high = np.nanpercentile(lvid, [5, 95])
    peaks, _ = find_peaks(
        np.pad(smooth, 1, mode="minimum"), distance=distance, prominence=0.3 * (high - low)
    )
    peaks = [int(p) - 1 for p in peaks if valid[int(p) - 1]]
    candidates = []
    if not peaks:
        ed = int(np.nanargmax(lvid))
        after = lvid[ed:]
        if np.isfinite(after).sum() > 1:
            candidates.append((ed, ed + int(np.nanargmin(after))))
    bounds = [*peaks, raw.size]
    for ed, nxt in zip(bounds[:-1], bounds[1:], strict=True):
        segment = lvid[ed:nxt]
        if np.isfinite(segment).sum() < 2:
            continue
        es = ed + int(np.nanargmin(segment))
        # A clip that ends during systole has no ES yet: its minimum is the last column.
        if es == ed or (nxt == raw.size and es == raw.size - 1):
            continue
        candidates.append((ed, es))
    beats = [
        Beat(ed, es, float(lvid[ed]), float(lvid[es]))
        for ed, es in candidates
        if lvid[es] >= MIN_LVIDS_FRACTION * lvid[ed] and lvid[ed] > lvid[es]
    ]
    heart_rate = None
    # A peak at either end of the clip may be a cut-off slope, not an ED: not for timing.
    interior = [p for p in peaks if 0 < p < raw.size - 1]
    if period is not None:
        heart_rate = 60.0 / (period * time_step_s)
    elif time_step_s and len(interior) >= 2:
        heart_rate = 60.0 / (float(np.median(np.diff(interior))) * time_step_s)
    return beats, heart_rate


def dominant_period(curve: np.ndarray, time_step_s: float) -> float | None:
    """Beat period in columns: the highest autocorrelation peak at lags of 0.3–2 s.

    Returns None when the clip holds less than ~1.2 beats or the curve is not periodic
    (peak correlation < 0.3).
    """
    x = np.asarray(curve, dtype=np.float64) - float(np.mean(curve))
    n = x.size
    lo, hi = max(1, int(MIN_BEAT_S / time_step_s)), min(n - 1, int(2.0 / time_step_s))
    if hi - lo < 3 or not np.any(x):
        return None
    ac = np.correlate(x, x, mode="full")[n - 1 :]
    ac = ac / (ac[0] * (n - np.arange(n)) / n)  # unbiased: longer lags have fewer terms
    lags, props = find_peaks(ac[lo : hi + 1], height=0.3)
    if lags.size == 0 or lags[0] + lo > n / 1.2:
        return None
    best = int(np.argmax(props["peak_heights"]))
    return float(lags[best] + lo)


def measure_band(
    band: np.ndarray,
    depth_step_mm: float | None,
    time_step_s: float | None,
    poor_columns: np.ndarray | None = None,
    probability: np.ndarray | None = None,
) -> MModeMeasurements:
    """All measurements of a band mask.

    Parameters
    ----------
    band : (D, N) uint8
    depth_step_mm : mm per row, or None (uncalibrated: diameters in pixels, ``units="px"``)
    time_step_s : s per column, or None (times are then column indices)
    poor_columns : (N,) bool, columns of windows flagged poor; left out (NaN)
    probability : (D, N) soft band for sub-row edges (see :func:`diameter_per_column`)
    """
    lvid = diameter_per_column(band, depth_step_mm or 1.0, probability)
    return _measure_lvid(lvid, depth_step_mm, time_step_s, poor_columns)


def measure_traces(
    upper: np.ndarray,
    lower: np.ndarray,
    depth_step_mm: float | None,
    time_step_s: float | None,
    poor_columns: np.ndarray | None = None,
) -> MModeMeasurements:
    """All measurements from two endocardial traces (e.g. edited paths), sub-row exact.

    Parameters
    ----------
    upper, lower : (N,) float64 row positions (see :mod:`echo_napari.mmode.traces`; NaN
        where a column has no band); a column whose lower trace is not below the upper one
        has no diameter (NaN)
    depth_step_mm, time_step_s, poor_columns : as in :func:`measure_band`
    """
    upper, lower = as_trace_pair(upper, lower)
    with np.errstate(invalid="ignore"):
        rows = np.where(lower > upper, lower - upper, np.nan)
    return _measure_lvid(rows * (depth_step_mm or 1.0), depth_step_mm, time_step_s, poor_columns)


def _measure_lvid(
    lvid: np.ndarray,
    depth_step_mm: float | None,
    time_step_s: float | None,
    poor_columns: np.ndarray | None,
) -> MModeMeasurements:
    if poor_columns is not None:
        lvid = np.where(np.asarray(poor_columns, dtype=bool), np.nan, lvid)
    beats, heart_rate = detect_beats(lvid, time_step_s)
    times = np.arange(lvid.size, dtype=np.float64) * (time_step_s or 1.0)
    return MModeMeasurements(times, lvid, beats, heart_rate, "mm" if depth_step_mm else "px")


def write_diameter_csv(path: str | Path, measurements: MModeMeasurements) -> Path:
    """Write ``time_s,lvid_mm`` (one row per column; empty LVID where not measured).

    Raises
    ------
    EchoIOError
        When the strip is uncalibrated (no mm) or the file cannot be written.
    """
    path = Path(path)
    if measurements.units != "mm":
        raise EchoIOError(
            path, "the M-mode has no depth calibration: LVID in mm cannot be written"
        )
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time_s", "lvid_mm"])
            for t, d in zip(measurements.times_s, measurements.lvid_mm, strict=True):
                writer.writerow([f"{t:.6f}", "" if not math.isfinite(d) else f"{d:.3f}"])
        tmp.replace(path)
    except OSError as exc:
        raise EchoIOError(path, f"cannot write the diameter CSV ({exc})") from exc
    return path
