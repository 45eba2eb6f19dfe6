"""numpy-facing warping, composition and Jacobian diagnostics of displacement fields.

Fields are (2, H, W) or (N, 2, H, W) float32 in pixels, channel 0 = dy, 1 = dx, pull
convention: ``warp_image(moving, u)(x) = moving(x + u(x))``; samples outside the frame
take the nearest border value.
"""

from __future__ import annotations

import numpy as np
import torch

from echo_napari.errors import RegistrationError
from echo_napari.registration import spatial
from echo_napari.registration.fusion import labels_from_sdf, labels_to_sdf
from echo_napari.registration.validation import check_field, check_labels


def _batched(u: np.ndarray) -> tuple[torch.Tensor, bool]:
    u = check_field(u)
    single = u.ndim == 3
    flat = u.reshape(-1, 2, *u.shape[-2:])
    return torch.from_numpy(np.ascontiguousarray(flat)), single


def warp_image(image: np.ndarray, u: np.ndarray, order: str = "linear") -> np.ndarray:
    """Warp an image (or a stack) by a displacement field.

    Parameters
    ----------
    image : (H, W) or (N, H, W) float
    u : (2, H, W) or (N, 2, H, W) float32, pixels; one field is shared by a stack
    order : "linear" or "nearest"

    Returns
    -------
    float32 array shaped like ``image``.
    """
    modes = {"linear": "bilinear", "nearest": "nearest"}
    if order not in modes:
        raise RegistrationError(f"order must be 'linear' or 'nearest'; got {order!r}")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or not np.issubdtype(image.dtype, np.number):
        raise RegistrationError(
            f"image must be numeric (H, W) or (N, H, W); got {image.dtype} {image.shape}"
        )
    field, _ = _batched(u)
    if image.shape[-2:] != tuple(field.shape[-2:]):
        raise RegistrationError(
            f"image frame shape {image.shape[-2:]} does not match field {tuple(field.shape[-2:])}"
        )
    stack = torch.from_numpy(
        np.ascontiguousarray(image, dtype=np.float32).reshape(-1, 1, *image.shape[-2:])
    )
    if field.shape[0] not in (1, stack.shape[0]):
        raise RegistrationError(f"{field.shape[0]} fields for {stack.shape[0]} images")
    with torch.inference_mode():
        out = spatial.warp(stack, field, mode=modes[order])
    return out.numpy().reshape(image.shape)


def warp_labels(
    labels: np.ndarray, u: np.ndarray, classes: tuple[int, ...] | None = None
) -> np.ndarray:
    """Warp a label map through per-class signed distances (linear interpolation).

    Parameters
    ----------
    labels : (H, W) uint8
    u : (2, H, W) float32, pixels
    classes : label values to carry (default: every non-zero value present)

    Returns
    -------
    (H, W) uint8; each pixel takes the class with the highest positive warped SDF.
    """
    field = check_field(u)
    if field.ndim != 3:
        raise RegistrationError(f"warp_labels takes one (2, H, W) field; got {field.shape}")
    labels = check_labels(labels, "labels", field.shape[-2:])
    if classes is None:
        classes = tuple(int(c) for c in np.unique(labels) if c != 0)
    if not classes:
        return np.zeros_like(labels)
    sdf = labels_to_sdf(labels, tuple(classes))
    warped = warp_image(sdf, field[None])
    return labels_from_sdf(warped, tuple(classes))


def compose(u_first: np.ndarray, u_second: np.ndarray) -> np.ndarray:
    """The field that warps like ``u_first`` followed by ``u_second`` (pull convention).

    ``warp_image(warp_image(I, u_first), u_second) ≈ warp_image(I, compose(u_first, u_second))``
    with ``compose(a, b)(x) = b(x) + a(x + b(x))``. For frame fields: if ``u_first``
    carries frame 0 to frame 1 (fixed 1, moving 0) and ``u_second`` carries 1 to 2, the
    result carries 0 to 2. Shapes (2, H, W) or (N, 2, H, W), equal.
    """
    a, single_a = _batched(u_first)
    b, _ = _batched(u_second)
    if a.shape != b.shape:
        raise RegistrationError(f"fields differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    with torch.inference_mode():
        out = spatial.compose(a, b).numpy()
    return out[0] if single_a else out.reshape(np.shape(u_first))


def jacobian_determinant(u: np.ndarray) -> np.ndarray:
    """det(I + ∇u) per pixel (central differences; one-sided at borders).

    Parameters
    ----------
    u : (..., 2, H, W) float32, pixels

    Returns
    -------
    (..., H, W) float32; 1 = volume kept, < 1 contraction, ≤ 0 folding.
    """
    field = check_field(u)
    flat, _ = _batched(field)
    with torch.inference_mode():
        det = spatial.jacobian_determinant(flat).numpy()
    return det.reshape(*field.shape[:-3], *field.shape[-2:])


def folding_fraction(u: np.ndarray) -> float | np.ndarray:
    """Fraction of pixels with det J ≤ 0: a float for (2, H, W), (N,) for (N, 2, H, W)."""
    det = jacobian_determinant(u)
    fraction = (det <= 0).reshape(*det.shape[:-2], -1).mean(-1)
    return float(fraction) if np.ndim(fraction) == 0 else fraction


def log_jacobian_std(u: np.ndarray) -> float | np.ndarray:
    """SD of log det J over pixels with det J > 0: float for one field, (N,) for a stack."""
    det = jacobian_determinant(u)
    flat = det.reshape(-1, det.shape[-2] * det.shape[-1])
    out = np.empty(flat.shape[0], dtype=np.float64)
    for i, row in enumerate(flat):
        positive = row[row > 0]
        out[i] = np.log(positive).std() if positive.size else np.nan
    return float(out[0]) if det.ndim == 2 else out.reshape(det.shape[:-2])
