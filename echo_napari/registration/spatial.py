"""Torch building blocks for dense displacement fields (pull convention, pixels).

Every field here is ``(N, 2, H, W)``: channel 0 = dy (rows), 1 = dx (columns), in pixels,
and ``warp(moving, u)(x) = moving(x + u(x))``. The functions are stateless so one set
serves the network, instance refinement, composition and propagation.

Cubic B-spline geometry (see :func:`control_points_to_field`): with grid spacing ``s``
and an image of ``n·s`` pixels per axis, control point ``g = 0 … n+2`` sits at pixel
coordinate ``(g − 1)·s − 0.5`` (pixel centres at integers), so every pixel lies under
exactly four control points per axis. A network that pads its input by ``1.5·s`` on each
side and pools by ``s`` produces one output cell centred on each control point.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def cubic_bspline(x: torch.Tensor) -> torch.Tensor:
    """Centred cubic B-spline basis β³(x); support (−2, 2), partition of unity."""
    ax = x.abs()
    inner = 2.0 / 3.0 - ax**2 + 0.5 * ax**3
    outer = (2.0 - ax).clamp(min=0.0) ** 3 / 6.0
    return torch.where(ax < 1.0, inner, outer)


def bspline_kernel_1d(spacing: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The cubic B-spline sampled for upsampling by ``spacing``: shape (4·spacing,).

    Sample ``j`` is β³((j + 0.5 − 2·spacing) / spacing), symmetric about the kernel centre;
    shifted copies at stride ``spacing`` sum to exactly 1 (a constant control grid gives a
    constant field).
    """
    j = torch.arange(4 * spacing, dtype=torch.float64)
    return cubic_bspline((j + 0.5 - 2 * spacing) / spacing).to(dtype)


def control_grid_shape(size: tuple[int, int], spacing: int) -> tuple[int, int]:
    """Number of control points (Gy, Gx) for an image ``size`` = (H, W) in pixels."""
    h, w = size
    if h % spacing or w % spacing:
        raise ValueError(f"image size {size} must be a multiple of the grid spacing {spacing}")
    return h // spacing + 3, w // spacing + 3


@functools.lru_cache(maxsize=32)
def _bspline_matrix(
    spacing: int, n_pixels: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(n_pixels, n_pixels/spacing + 3) matrix: control points → pixels along one axis.

    Entry (y, g) is the upsampling kernel of :func:`bspline_kernel_1d` placed at control
    point g, ``kernel[y + 3·spacing − g·spacing]`` (0 outside its support): the strided
    transposed convolution by that kernel, cropped to the image, as a matrix.
    """
    with torch.inference_mode(False), torch.no_grad():
        kernel = bspline_kernel_1d(spacing, torch.float64)
        n_points = n_pixels // spacing + 3
        y = torch.arange(n_pixels)[:, None]
        g = torch.arange(n_points)[None, :]
        index = y + 3 * spacing - g * spacing
        inside = (index >= 0) & (index < kernel.shape[0])
        matrix = torch.where(inside, kernel[index.clamp(0, kernel.shape[0] - 1)], 0.0)
        return matrix.to(device=device, dtype=dtype)


def control_points_to_field(
    params: torch.Tensor, spacing: int, size: tuple[int, int]
) -> torch.Tensor:
    """Dense displacement from cubic B-spline control-point displacements.

    The separable B-spline upsampling written as two small matrix products
    ``M_y · P · M_xᵀ`` (several times faster on CPU than the equivalent strided
    transposed convolution, and the same numbers up to rounding).

    Parameters
    ----------
    params : (N, 2, Gy, Gx) tensor, pixels
        Control-point displacements, ``(Gy, Gx) == control_grid_shape(size, spacing)``.
    spacing : int
        Control-point spacing in pixels.
    size : (H, W)
        Output size in pixels.

    Returns
    -------
    (N, 2, H, W) tensor, pixels.
    """
    expected = control_grid_shape(size, spacing)
    if tuple(params.shape[-2:]) != expected or params.ndim != 4 or params.shape[1] != 2:
        raise ValueError(
            f"control points must be (N, 2, {expected[0]}, {expected[1]}) for size {size} "
            f"and spacing {spacing}; got {tuple(params.shape)}"
        )
    m_y = _bspline_matrix(spacing, size[0], params.device, params.dtype)
    m_x = _bspline_matrix(spacing, size[1], params.device, params.dtype)
    return torch.matmul(torch.matmul(m_y, params), m_x.T)


def identity_grid(
    size: tuple[int, int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel coordinates (2, H, W): channel 0 = row y, 1 = column x."""
    ys = torch.arange(size[0], device=device, dtype=dtype)
    xs = torch.arange(size[1], device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


@functools.lru_cache(maxsize=16)
def _normalised_identity(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Identity sampling grid (1, H, W, 2) in grid_sample's (x, y) ∈ [-1, 1] coordinates."""
    # A normal (not inference-mode) tensor, so the cached grid also serves training.
    with torch.inference_mode(False), torch.no_grad():
        ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([gx, gy], dim=-1)[None]


def sampling_grid(u: torch.Tensor) -> torch.Tensor:
    """grid_sample grid (N, H, W, 2) in [-1, 1] (x, y) for sampling at x + u(x).

    ``u`` is (N, 2, H, W) in pixels (dy, dx); corner pixels map to ±1 (align_corners).
    """
    h, w = u.shape[-2:]
    identity = _normalised_identity(h, w, u.device, u.dtype)
    if u.requires_grad:
        gx = u[:, 1] * (2.0 / max(w - 1, 1))
        gy = u[:, 0] * (2.0 / max(h - 1, 1))
        return identity + torch.stack([gx, gy], dim=-1)
    # Inference: write straight into the channels-last grid (several times faster on CPU).
    grid = torch.empty((u.shape[0], h, w, 2), device=u.device, dtype=u.dtype)
    torch.mul(u[:, 1], 2.0 / max(w - 1, 1), out=grid[..., 0])
    torch.mul(u[:, 0], 2.0 / max(h - 1, 1), out=grid[..., 1])
    return grid.add_(identity)


def sample(image: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample (N, C, H, W) ``image`` on a :func:`sampling_grid` (border padding)."""
    if grid.shape[0] != image.shape[0]:
        grid = grid.expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def warp(image: torch.Tensor, u: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` at ``x + u(x)`` (pull convention), border padding.

    Parameters
    ----------
    image : (N, C, H, W) tensor
    u : (N, 2, H, W) tensor, pixels (N may be 1 to broadcast over the images, or match)
    mode : "bilinear" or "nearest" (``grid_sample`` modes)
    """
    return sample(image, sampling_grid(u), mode)


def compose(u_first: torch.Tensor, u_second: torch.Tensor) -> torch.Tensor:
    """Field equivalent to warping by ``u_first`` and then by ``u_second``.

    ``warp(warp(I, u_first), u_second)(x) = I(x + u_second(x) + u_first(x + u_second(x)))``
    so the result is ``u_second + u_first ∘ (id + u_second)``. Both (N, 2, H, W), pixels.
    """
    return u_second + warp(u_first, u_second)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (N, C, H, W) → (N, C, *size), anti-aliased when shrinking.

    Corner pixels stay aligned (``align_corners=True``), matching :func:`resize_field`.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    shrinking = frames.shape[-2] > size[0] or frames.shape[-1] > size[1]
    return F.interpolate(
        frames, size=size, mode="bilinear", align_corners=True, antialias=shrinking
    )


def resize_field(u: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a field to ``size`` and rescale its pixel displacements to the new grid.

    With corner-aligned resizing, pixel y maps to ``y·(H'−1)/(H−1)``, so dy scales by
    that ratio (and dx by the column ratio).
    """
    h, w = u.shape[-2:]
    if (h, w) == tuple(size):
        return u
    out = F.interpolate(u, size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor(
        [(size[0] - 1) / max(h - 1, 1), (size[1] - 1) / max(w - 1, 1)],
        dtype=u.dtype,
        device=u.device,
    )
    return out * scale.view(1, 2, 1, 1)


def jacobian_determinant(u: torch.Tensor) -> torch.Tensor:
    """det(I + ∇u) by central differences (one-sided at the borders).

    Parameters
    ----------
    u : (N, 2, H, W) tensor, pixels

    Returns
    -------
    (N, H, W) tensor (dimensionless; ≤ 0 means folding).
    """
    duy_dy, duy_dx = torch.gradient(u[:, 0], dim=(1, 2))
    dux_dy, dux_dx = torch.gradient(u[:, 1], dim=(1, 2))
    return (1.0 + duy_dy) * (1.0 + dux_dx) - duy_dx * dux_dy


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding (sigma in pixels)."""
    if sigma <= 0:
        return image
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    pad = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(pad, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
