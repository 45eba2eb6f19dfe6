"""LV band ↔ endocardial traces (upper = first wall in depth, lower = second).

A trace is the band's edge position per column, in row units with row r centred at r: the
band of one column covers rows ``upper < r < lower``, so ``lower - upper`` is the number
of band rows (diameter in samples). Traces as napari paths are ``(N, 2)`` (row, column)
vertices; editing them and converting back gives a band again.
"""

from __future__ import annotations

import numpy as np

from echo_napari.errors import SequenceError


def band_to_traces(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower edges of the longest band run in every column.

    Parameters
    ----------
    band : (D, N) bool or uint8

    Returns
    -------
    upper, lower : (N,) float64 row positions (NaN where the column has no band)
    """
    band = np.asarray(band).astype(bool)
    if band.ndim != 2:
        raise SequenceError(f"a band mask must be (depth, time); got shape {band.shape}")
    d, n = band.shape
    upper = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    padded = np.zeros((d + 2, n), dtype=np.int8)
    padded[1:-1] = band
    edges = np.diff(padded, axis=0)
    for col in np.flatnonzero(band.any(axis=0)):
        starts = np.flatnonzero(edges[:, col] == 1)
        stops = np.flatnonzero(edges[:, col] == -1)
        k = int(np.argmax(stops - starts))
        upper[col] = starts[k] - 0.5
        lower[col] = stops[k] - 0.5
    return upper, lower


def subsample_traces(probability: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Traces of ``band`` refined to the 0.5 crossing of ``probability`` (linear between
    the last sample outside and the first inside), so diameters are not quantised to rows.

    Parameters
    ----------
    probability : (D, N) float in [0, 1] (soft band: sampled one-hot labels or network)
    band : (D, N) bool/uint8, ``probability >= 0.5`` cleaned

    Returns
    -------
    upper, lower : (N,) float64 row positions (NaN where no band)
    """
    upper, lower = band_to_traces(band)
    d = band.shape[0]
    cols = np.flatnonzero(np.isfinite(upper))
    prob = np.asarray(probability, dtype=np.float64)
    first = (upper[cols] + 0.5).astype(int)
    last = (lower[cols] - 0.5).astype(int)
    for trace, inside, outside, sign in (
        (upper, first, first - 1, -1),
        (lower, last, last + 1, 1),
    ):
        ok = (outside >= 0) & (outside < d)
        p_in = prob[inside[ok], cols[ok]]
        p_out = prob[outside[ok], cols[ok]]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip((p_in - 0.5) / (p_in - p_out), 0.0, 1.0)
        frac = np.where(np.isfinite(frac), frac, 0.5)
        trace[cols[ok]] = inside[ok] + sign * frac
    return upper, lower


def as_trace_pair(upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two traces as float64 arrays, checked to be 1-D of one length (rows, NaN = none).

    Raises
    ------
    SequenceError
        When they are not.
    """
    upper = np.asarray(upper, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    if upper.shape != lower.shape or upper.ndim != 1:
        raise SequenceError(
            f"upper and lower traces must be 1-D of equal length; got {upper.shape} and "
            f"{lower.shape}"
        )
    return upper, lower


def traces_to_band(upper: np.ndarray, lower: np.ndarray, depth: int) -> np.ndarray:
    """Band mask from the two traces (inverse of :func:`band_to_traces`).

    Parameters
    ----------
    upper, lower : (N,) float row positions (NaN = no band in that column)
    depth : number of rows D

    Returns
    -------
    (D, N) uint8
    """
    upper, lower = as_trace_pair(upper, lower)
    rows = np.arange(depth, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        inside = (rows > upper[None, :]) & (rows < lower[None, :])
    return inside.astype(np.uint8)


def traces_to_paths(
    upper: np.ndarray, lower: np.ndarray, tolerance: float = 0.0
) -> list[np.ndarray]:
    """The traces as two napari path vertices arrays ``(K, 2)`` (row, column), NaN columns
    left out.

    Parameters
    ----------
    upper, lower : (N,) float row positions (NaN = no band)
    tolerance : rows; > 0 keeps only the vertices needed to stay within this (perpendicular)
        distance of the trace (Douglas–Peucker), so that a path has a handful of vertices to drag
        instead of one per column

    Returns
    -------
    [upper path, lower path], each (K, 2) float64
    """
    from skimage.measure import approximate_polygon

    out = []
    for trace in (upper, lower):
        cols = np.flatnonzero(np.isfinite(trace))
        path = np.stack([trace[cols], cols.astype(np.float64)], axis=1)
        if tolerance > 0 and len(path) > 2:
            path = approximate_polygon(path, tolerance=tolerance)
        out.append(path)
    return out


def paths_to_traces(paths: list[np.ndarray], n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Traces (N,) from two edited paths (linear interpolation between vertices over time;
    NaN outside a path's time range). The path with the smaller mean row is the upper one.

    Parameters
    ----------
    paths : two (K, 2) arrays of (row, column) vertices
    n_columns : N
    """
    if len(paths) != 2:
        raise SequenceError(f"expected two trace paths (upper, lower); got {len(paths)}")
    traces = []
    cols = np.arange(n_columns, dtype=np.float64)
    for path in paths:
        path = np.asarray(path, dtype=np.float64)
        if path.ndim != 2 or path.shape[1] != 2 or len(path) < 2:
            raise SequenceError(
                f"a trace path needs at least 2 (row, column) vertices; got {path.shape}"
            )
        order = np.argsort(path[:, 1], kind="stable")
        x, y = path[order, 1], path[order, 0]
        trace = np.interp(cols, x, y)
        trace[(cols < x[0]) | (cols > x[-1])] = np.nan
        traces.append(trace)
    upper, lower = traces
    if np.nanmean(upper) > np.nanmean(lower):
        upper, lower = lower, upper
    return upper, lower


def paths_to_band(paths: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Band mask (D, N) uint8 from two edited trace paths (see :func:`paths_to_traces`)."""
    upper, lower = paths_to_traces(paths, shape[1])
    return traces_to_band(upper, lower, shape[0])
