"""Registration diagnostics for the debugger: per-frame Jacobian statistics, NCC before and
after, deformed-grid lines, subsampled displacement vectors, and a chunked generator that
registers a sequence and yields these per chunk.

Fields follow the package convention: (2, H, W) or (N, 2, H, W) float32 in pixels,
channel 0 = dy, 1 = dx, pull convention ``warped(x) = moving(x + u(x))``.

Which pair each frame ``t`` shows (:func:`pair_indices`):

* ``"consecutive"``: fixed = t, moving = t − 1 (frame 0 shows the identity);
* ``"keyframe"``: fixed = t, moving = the keyframe (the keyframe shows the identity).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from echo_napari.errors import RegistrationError
from echo_napari.registration.backends import RegistrationBackend
from echo_napari.registration.sector_square import on_sector_square
from echo_napari.registration.validation import as_float_frames, check_field
from echo_napari.registration.warping import jacobian_determinant, warp_image, warp_labels

MODES = ("consecutive", "keyframe")


def pair_indices(n_frames: int, mode: str, keyframe: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fixed, moving) frame indices shown at each frame ``t``, each (T,) int.

    Where fixed == moving the field is the identity and is not registered.
    """
    if mode not in MODES:
        raise RegistrationError(f"mode must be one of {MODES}; got {mode!r}")
    if n_frames < 2:
        raise RegistrationError(f"a sequence of ≥ 2 frames is needed; got {n_frames}")
    fixed = np.arange(n_frames)
    if mode == "consecutive":
        moving = np.maximum(fixed - 1, 0)
    else:
        if not 0 <= keyframe < n_frames:
            raise RegistrationError(f"keyframe {keyframe} outside 0..{n_frames - 1}")
        moving = np.full(n_frames, keyframe)
    return fixed, moving


def ncc(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Global normalised cross-correlation of (H, W) images (float) or (N, H, W) stacks (N,).

    A constant image gives NaN (the correlation is undefined).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise RegistrationError(
            f"ncc needs equal (H, W) or (N, H, W) shapes; got {a.shape} and {b.shape}"
        )
    single = a.ndim == 2
    a = a.reshape(-1, a.shape[-2] * a.shape[-1])
    b = b.reshape(-1, b.shape[-2] * b.shape[-1])
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), np.nan)
    return float(out[0]) if single else out


def box_stats(values: np.ndarray) -> np.ndarray:
    """Tukey boxplot numbers of each row: (N, 5) float64 = whisker low, Q1, median, Q3,
    whisker high, whiskers at the furthest data within 1.5·IQR of the box.

    Parameters
    ----------
    values : (N, M) float (e.g. a Jacobian determinant per frame, flattened); NaNs ignored.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = np.full((values.shape[0], 5), np.nan)
    for i, row in enumerate(values):
        row = row[np.isfinite(row)]
        if row.size == 0:
            continue
        q1, med, q3 = np.percentile(row, [25, 50, 75])
        iqr = q3 - q1
        inside = row[(row >= q1 - 1.5 * iqr) & (row <= q3 + 1.5 * iqr)]
        out[i] = (inside.min(), q1, med, q3, inside.max())
    return out


def deformed_grid_lines(u: np.ndarray, step: int = 8) -> list[np.ndarray]:
    """Grid lines of a regular grid (every ``step`` pixels) moved to ``x + u(x)``.

    With the pull convention ``x + u(x)`` is where each fixed-frame pixel samples the
    moving frame, so the drawn grid is the moving-frame pre-image of a regular grid.

    Parameters
    ----------
    u : (2, H, W) float32, pixels
    step : int, pixels between lines

    Returns
    -------
    list of (L, 2) float32 polylines in (y, x) pixel coordinates: rows first, then columns.
    """
    u = check_field(u)
    if u.ndim != 3:
        raise RegistrationError(f"deformed_grid_lines takes one (2, H, W) field; got {u.shape}")
    if step < 1:
        raise RegistrationError(f"grid step must be ≥ 1 pixel; got {step}")
    h, w = u.shape[-2:]
    lines = []
    xs = np.arange(w)
    for y in range(0, h, step):
        lines.append(np.stack([y + u[0, y, :], xs + u[1, y, :]], axis=1).astype(np.float32))
    ys = np.arange(h)
    for x in range(0, w, step):
        lines.append(np.stack([ys + u[0, :, x], x + u[1, :, x]], axis=1).astype(np.float32))
    return lines


def displacement_vectors(
    u: np.ndarray, step: int = 4, frame_index: Sequence[int] | None = None
) -> np.ndarray:
    """Subsampled displacement vectors in napari's Vectors format.

    Parameters
    ----------
    u : (2, H, W) or (N, 2, H, W) float32, pixels
    step : int, subsampling in pixels (vectors at every ``step``-th row and column)
    frame_index : the frame number of each of the N fields (prepended as a leading
        coordinate); None for a single field without a frame coordinate.

    Returns
    -------
    (M, 2, D) float32: ``[start, displacement]`` per vector, D = 2 (y, x) or 3 (t, y, x).
    """
    u = check_field(u)
    stack = u[None] if u.ndim == 3 else u
    h, w = stack.shape[-2:]
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    blocks = []
    for i, field in enumerate(stack):
        dy = field[0, ys, xs].ravel()
        dx = field[1, ys, xs].ravel()
        start = [ys.ravel(), xs.ravel()]
        vec = [dy, dx]
        if frame_index is not None:
            start.insert(0, np.full(dy.size, frame_index[i]))
            vec.insert(0, np.zeros(dy.size))
        blocks.append(np.stack([np.stack(start, 1), np.stack(vec, 1)], 1))
    return np.concatenate(blocks).astype(np.float32)


@dataclass(frozen=True)
class DiagnosticsChunk:
    """Diagnostics of the pairs shown at ``frames``.

    Attributes
    ----------
    frames : (n,) int, the frames t (fixed indices) covered
    fields : (n, 2, H, W) float32, pixels
    det : (n, H, W) float32, Jacobian determinant
    warped : (n, H, W) float32, the moving frame warped onto the fixed one
    difference : (n, H, W) float32, warped − fixed (intensity units)
    folding_percent : (n,) float64, % of pixels with det ≤ 0
    log_jac_sd : (n,) float64, SD of log det over det > 0
    ncc_before, ncc_after : (n,) float64, global NCC of fixed with moving / warped
    box : (n, 5) float64, :func:`box_stats` of det
    """

    frames: np.ndarray
    fields: np.ndarray
    det: np.ndarray
    warped: np.ndarray
    difference: np.ndarray
    folding_percent: np.ndarray
    log_jac_sd: np.ndarray
    ncc_before: np.ndarray
    ncc_after: np.ndarray
    box: np.ndarray


def diagnose(
    fixed: np.ndarray, moving: np.ndarray, u: np.ndarray, frames: np.ndarray
) -> DiagnosticsChunk:
    """Diagnostics of registered pairs (N, H, W) with their fields (N, 2, H, W)."""
    u = check_field(u)
    det = jacobian_determinant(u)
    warped = warp_image(moving, u)
    flat = det.reshape(det.shape[0], -1)
    log_sd = np.full(det.shape[0], np.nan)
    for i, row in enumerate(flat):
        positive = row[row > 0]
        if positive.size:
            log_sd[i] = np.log(positive).std()
    return DiagnosticsChunk(
        frames=np.asarray(frames, dtype=int),
        fields=u,
        det=det.astype(np.float32),
        warped=warped,
        difference=(warped - fixed).astype(np.float32),
        folding_percent=100.0 * (flat <= 0).mean(1),
        log_jac_sd=log_sd,
        ncc_before=np.atleast_1d(ncc(fixed, moving)),
        ncc_after=np.atleast_1d(ncc(fixed, warped)),
        box=box_stats(flat),
    )


def diagnostics_chunks(
    frames: np.ndarray,
    backend: RegistrationBackend,
    mode: str = "consecutive",
    keyframe: int = 0,
    chunk: int = 8,
    only: Sequence[int] | None = None,
    crop_to_sector: bool = True,
) -> Iterator[DiagnosticsChunk]:
    """Register the pairs of :func:`pair_indices` ``chunk`` at a time and yield diagnostics.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1]
    backend : a registration backend instance
    mode : "consecutive" or "keyframe"
    keyframe : moving frame of the "keyframe" mode
    chunk : pairs per backend call (bounds the latency of each yield and of a cancel)
    only : restrict to these frames t (e.g. the current frame); None = every frame
    crop_to_sector : register only the square around a scanner screen's sector, as
        propagation does (:func:`.sector_square.on_sector_square`)

    Identity pairs (fixed == moving) are yielded with zero fields, without registering.
    """
    frames = as_float_frames(frames, "frames", 3)
    if crop_to_sector:
        backend = on_sector_square(backend, frames)
    fixed_idx, moving_idx = pair_indices(frames.shape[0], mode, keyframe)
    todo = np.arange(frames.shape[0]) if only is None else np.asarray(sorted(set(only)), int)
    h, w = frames.shape[-2:]
    for start in range(0, todo.size, max(1, int(chunk))):
        ts = todo[start : start + chunk]
        fi, mi = fixed_idx[ts], moving_idx[ts]
        u = np.zeros((ts.size, 2, h, w), np.float32)
        real = fi != mi
        if real.any():
            u[real] = backend.register_pairs(frames[fi[real]], frames[mi[real]])
        yield diagnose(frames[fi], frames[mi], u, ts)


def propagated_class_masks(
    keyframe_labels: np.ndarray, fields: np.ndarray, label_class: int
) -> np.ndarray:
    """One class of a keyframe's labels carried by each field: (N, H, W) bool.

    ``fields[i]`` must have the keyframe as moving frame (the "keyframe" mode), so the
    warped mask is the class as propagated to the fixed frame.
    """
    mask = (np.asarray(keyframe_labels) == label_class).astype(np.uint8)
    if not mask.any():
        raise RegistrationError(f"the keyframe has no pixel of class {label_class}")
    return np.stack([warp_labels(mask, f, classes=(1,)) == 1 for f in check_field(fields)])
