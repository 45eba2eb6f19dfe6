"""Input checks shared by every registration entry point.

Each check raises :class:`~echo_napari.errors.RegistrationError` with a message naming
the argument, what was expected and what was found, so bad input never reaches torch or
SimpleITK (whose own errors are cryptic or, for NaN, silent).
"""

from __future__ import annotations

import numpy as np

from echo_napari.errors import RegistrationError

#: Frames whose intensity range is below this are "constant": NCC is undefined on them.
CONSTANT_RANGE = 1e-6


def as_float_frames(frames: object, name: str, ndim: int) -> np.ndarray:
    """Return ``frames`` as float32 with ``ndim`` dimensions, finite and in a sane range.

    Parameters
    ----------
    frames : array-like
        (H, W) when ``ndim == 2``, (N, H, W) when ``ndim == 3``; float or integer dtype.
    name : str
        Argument name used in error messages.
    """
    array = np.asarray(frames)
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise RegistrationError(
            f"{name} must be a float array (float32 in [0, 1]); got dtype {array.dtype}"
        )
    if array.ndim != ndim:
        expected = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise RegistrationError(f"{name} must be {expected}; got shape {array.shape}")
    if min(array.shape[-2:]) < 8:
        raise RegistrationError(
            f"{name} frames must be at least 8x8 pixels; got {array.shape[-2:]}"
        )
    if np.issubdtype(array.dtype, np.integer):
        raise RegistrationError(
            f"{name} has integer dtype {array.dtype}; convert to float32 in [0, 1] first "
            "(e.g. frames / 255)"
        )
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise RegistrationError(f"{name} contains {bad} NaN/inf values; expected finite values")
    return array


def check_not_constant(frames: np.ndarray, name: str) -> None:
    """Raise when any frame of (N, H, W) ``frames`` is constant (nothing to register)."""
    flat = frames.reshape(frames.shape[0], -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    constant = np.flatnonzero(spread < CONSTANT_RANGE)
    if constant.size:
        raise RegistrationError(
            f"{name}: frame(s) {constant[:10].tolist()} are constant (blank); "
            "registration needs image content in every frame"
        )


def check_pair_batch(fixed: object, moving: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch of pairs and return them as float32 (N, H, W) arrays."""
    fixed = as_float_frames(fixed, "fixed", 3)
    moving = as_float_frames(moving, "moving", 3)
    if fixed.shape != moving.shape:
        raise RegistrationError(
            f"fixed and moving must have the same shape; got {fixed.shape} and {moving.shape}"
        )
    if fixed.shape[0] == 0:
        raise RegistrationError("no pairs to register (N = 0)")
    check_not_constant(fixed, "fixed")
    check_not_constant(moving, "moving")
    return fixed, moving


def check_field(u: object, name: str = "u") -> np.ndarray:
    """Return a displacement field as float32 (..., 2, H, W), finite."""
    array = np.asarray(u)
    if array.ndim < 3 or array.shape[-3] != 2:
        raise RegistrationError(
            f"{name} must be a displacement field (..., 2, H, W) in pixels; "
            f"got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise RegistrationError(f"{name} must be float; got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise RegistrationError(f"{name} contains NaN/inf displacements")
    return array


def check_labels(labels: object, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Return an (H, W) label map as uint8 (integer input in 0..255 accepted)."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise RegistrationError(f"{name} must be an (H, W) label map; got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise RegistrationError(
            f"{name} has shape {array.shape}; expected the frame shape {tuple(shape)}"
        )
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise RegistrationError(f"{name} must be integer labels (uint8); got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise RegistrationError(f"{name} values must be 0..255; got {array.min()}..{array.max()}")
    return array.astype(np.uint8, copy=False)
