"""Registration losses: normalised cross-correlation and bending energy.

Both are computed **per pair** and then averaged over the batch, so one high-contrast pair
cannot dominate the similarity of the others (the seed code averaged NCC over the whole
batch as if it were one image). Bending energy uses proper second derivatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_images(fixed: torch.Tensor, warped: torch.Tensor) -> None:
    if fixed.shape != warped.shape or fixed.ndim != 4:
        raise ValueError(
            "fixed and warped must both be (N, C, H, W) with equal shapes; "
            f"got {tuple(fixed.shape)} and {tuple(warped.shape)}"
        )


def global_ncc(fixed: torch.Tensor, warped: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """NCC of each pair over the whole image.

    Parameters
    ----------
    fixed, warped : (N, C, H, W) tensors

    Returns
    -------
    (N,) tensor in [-1, 1].
    """
    _check_images(fixed, warped)
    a = fixed.flatten(1)
    b = warped.flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + eps)


def local_ncc(
    fixed: torch.Tensor, warped: torch.Tensor, window: int = 9, eps: float = 1e-4
) -> torch.Tensor:
    """Windowed NCC, averaged over pixels of each pair.

    Local statistics make the measure robust to the depth-dependent gain and the slowly
    varying speckle brightness of echo. Flat windows (e.g. outside the sector) contribute
    ~0 thanks to ``eps``.

    Parameters
    ----------
    fixed, warped : (N, C, H, W) tensors
    window : odd int, window side in pixels

    Returns
    -------
    (N,) tensor in [-1, 1].
    """
    _check_images(fixed, warped)
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd size ≥ 3; got {window}")
    pad = window // 2
    stack = torch.cat([fixed, warped, fixed * fixed, warped * warped, fixed * warped], dim=1)
    means = F.avg_pool2d(stack, window, stride=1, padding=pad, count_include_pad=False)
    c = fixed.shape[1]
    mf, mw, mff, mww, mfw = means.split(c, dim=1)
    cov = mfw - mf * mw
    var_f = (mff - mf * mf).clamp(min=0.0)
    var_w = (mww - mw * mw).clamp(min=0.0)
    cc = cov / torch.sqrt(var_f * var_w + eps**2)
    return cc.flatten(1).mean(1)


def bending_energy(u: torch.Tensor) -> torch.Tensor:
    """Mean thin-plate bending energy of each field.

    ``(∂²u/∂y²)² + 2(∂²u/∂y∂x)² + (∂²u/∂x²)²`` summed over both components and averaged
    over interior pixels; second differences in pixel units. Zero for any affine field.

    Parameters
    ----------
    u : (N, 2, H, W) tensor, pixels (H, W ≥ 3)

    Returns
    -------
    (N,) tensor, pixels⁻².
    """
    if u.ndim != 4 or u.shape[1] != 2 or min(u.shape[-2:]) < 3:
        raise ValueError(f"u must be (N, 2, H, W) with H, W ≥ 3; got {tuple(u.shape)}")
    d_yy = u[:, :, 2:, 1:-1] - 2 * u[:, :, 1:-1, 1:-1] + u[:, :, :-2, 1:-1]
    d_xx = u[:, :, 1:-1, 2:] - 2 * u[:, :, 1:-1, 1:-1] + u[:, :, 1:-1, :-2]
    d_xy = (u[:, :, 2:, 2:] - u[:, :, 2:, :-2] - u[:, :, :-2, 2:] + u[:, :, :-2, :-2]) / 4.0
    energy = d_yy**2 + d_xx**2 + 2.0 * d_xy**2
    return energy.sum(1).flatten(1).mean(1)


def registration_loss(
    fixed: torch.Tensor,
    warped: torch.Tensor,
    u: torch.Tensor,
    alpha: float,
    similarity: str = "local_ncc",
    window: int = 9,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Batch loss ``mean_pairs(−NCC + α·bending)`` and its terms as floats."""
    if similarity == "local_ncc":
        ncc = local_ncc(fixed, warped, window)
    elif similarity == "global_ncc":
        ncc = global_ncc(fixed, warped)
    else:
        raise ValueError(f"similarity must be 'local_ncc' or 'global_ncc'; got {similarity!r}")
    bend = bending_energy(u)
    loss = (-ncc + alpha * bend).mean()
    return loss, {
        "loss": float(loss.detach()),
        "ncc": float(ncc.detach().mean()),
        "bending": float(bend.detach().mean()),
    }
