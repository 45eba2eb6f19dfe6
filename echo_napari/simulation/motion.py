"""The analytic motion of the heart: a smooth, invertible pull map from frame t to ED.

Radial contraction model about a centre ``C`` on the LV long axis. A point at radius
``r'`` from ``C`` in frame t comes from the ED radius ``r`` on the same ray, with

    r² = r'² + D(θ, t) · m(z) · w(y),      D = R² − R'²,   R' = R (1 − k c(t) g(θ))

``R(θ)`` is the ED endocardial ellipse radius along the ray, ``c(t)`` the contraction
curve (0 at ED, 1 at ES), ``g(θ)`` regional weights (base and walls move, apex little) and
``k`` the gain calibrated to the requested EF. ``z = (r'² − R'²)/R'²``; ``m(z) = (1+z)/(1+
softplus(z))`` is ``1+z`` inside the cavity (a uniform scaling ``R/R'``) and ≈ 1 in the
wall, where ``r² − r'²`` is then constant: the wall keeps its area and thickens as the
cavity shrinks. ``w(y)`` tapers the motion to zero beyond the epicardium over a band at
least 3·D wide, so the chest wall and far field stay still.

Because ``θ`` is preserved and ``∂r²/∂r'² ≥ 1 − D·|w'| > 0``, the map is smooth and
one-to-one (Jacobian determinant ``(r/r')·∂r/∂r' > 0``: no folding). The map is applied
after removing the probe jitter ``j(t)`` (a rigid shift of the tissue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo_napari.simulation.anatomy import Anatomy, cavity_boundary_radius

_SOFTNESS = 0.05
_PLANE_SOFTNESS_MM = 3.0


@dataclass(frozen=True)
class Motion:
    """Parameters of the contraction model (see the module docstring).

    Attributes
    ----------
    gain : k, contraction gain (calibrated to the requested EF)
    weights : (5,) coefficients of g over the ray angle φ from the apex→base axis:
        g = w0 + w1 cos φ + w2 cos 2φ + w3 sin φ + w4 sin 2φ
    wall_mm : mean wall thickness, where the taper starts
    """

    gain: float
    weights: tuple[float, float, float, float, float]
    wall_mm: float


def default_weights(
    rng: np.random.Generator | None = None, apex: float = 0.25
) -> tuple[float, ...]:
    """Regional weights: base 1.0, walls ≈ 1.1, apex ≈ ``apex``, with per-seed variation."""
    w_base, w_lat, w_apex = 1.0, 1.1, apex
    asym = (0.0, 0.0)
    if rng is not None:
        w_base *= rng.uniform(0.85, 1.15)
        w_lat *= rng.uniform(0.85, 1.15)
        w_apex *= rng.uniform(0.6, 1.4)
        asym = (rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.08))
    w1 = (w_base - w_apex) / 2.0
    w0 = ((w_base + w_apex) / 2.0 + w_lat) / 2.0
    w2 = ((w_base + w_apex) / 2.0 - w_lat) / 2.0
    return (w0, w1, w2, asym[0], asym[1])


def _ray_terms(anatomy: Anatomy, motion: Motion, uy: np.ndarray, ux: np.ndarray):
    """Per-ray R (mm) and g for unit directions (uy, ux) from the motion centre."""
    an = anatomy
    cos_phi = uy * an.axis[0] + ux * an.axis[1]
    sin_phi = uy * an.perp[0] + ux * an.perp[1]
    w = motion.weights
    g = w[0] + w[1] * cos_phi + w[2] * (2 * cos_phi**2 - 1) + w[3] * sin_phi
    g = g + w[4] * 2 * sin_phi * cos_phi
    # Ray/ellipse intersection in the LV frame (centre of the ellipse at a = semi_a).
    a_c = (an.motion_centre[0] - an.apex[0]) * an.axis[0] + (
        an.motion_centre[1] - an.apex[1]
    ) * an.axis[1]
    p, q = an.semi_a, an.semi_b
    qa = (cos_phi / p) ** 2 + (sin_phi / q) ** 2
    qb = 2 * (a_c - p) * cos_phi / p**2
    qc = ((a_c - p) / p) ** 2 - 1.0
    radius = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    # Smoothly truncate by the mitral plane (a kink would make the map only C0), so the
    # base, not the far end of the ellipse, sets the motion of basal rays and the LA
    # beyond the plane is stretched in systole instead of being carried with the cavity.
    to_plane = (an.base - a_c) / np.maximum(cos_phi, 1e-6)
    radius = -_PLANE_SOFTNESS_MM * np.logaddexp(
        -radius / _PLANE_SOFTNESS_MM, -to_plane / _PLANE_SOFTNESS_MM
    )
    return radius, g


def _ed_radius_sq(rp_sq, radius, g, contraction, motion: Motion):
    """ED radius² for frame radius² ``rp_sq`` on rays with ``radius``/``g``."""
    r_t = radius * (1.0 - motion.gain * contraction * g)
    r_t_sq = r_t * r_t
    d = radius * radius - r_t_sq
    z = rp_sq / r_t_sq - 1.0
    softplus = _SOFTNESS * np.logaddexp(0.0, z / _SOFTNESS)
    m = (1.0 + z) / (1.0 + softplus)
    y = rp_sq - r_t_sq
    start = (radius + 1.5 * motion.wall_mm) ** 2 - radius * radius
    width = np.maximum(3.0 * d, 400.0)
    s = np.clip((y - start) / width, 0.0, 1.0)
    taper = 1.0 - s * s * (3.0 - 2.0 * s)
    return rp_sq + d * m * taper


def pull_points(
    anatomy: Anatomy,
    motion: Motion,
    y: np.ndarray,
    x: np.ndarray,
    contraction: float,
    jitter: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """ED position (mm) of the tissue seen at points (y, x) (mm) of a frame.

    Parameters
    ----------
    y, x : arrays of the same shape, frame coordinates in mm
    contraction : c(t) of the frame, 0 (ED) … 1 (ES)
    jitter : (jy, jx) mm, rigid tissue shift of the frame relative to ED
    """
    cy, cx = anatomy.motion_centre
    ry = y - jitter[0] - cy
    rx = x - jitter[1] - cx
    rp_sq = ry * ry + rx * rx
    rp = np.sqrt(rp_sq)
    safe = np.maximum(rp, 1e-9)
    uy, ux = ry / safe, rx / safe
    radius, g = _ray_terms(anatomy, motion, uy, ux)
    r_sq = _ed_radius_sq(rp_sq, radius, g, contraction, motion)
    scale = np.sqrt(r_sq / np.maximum(rp_sq, 1e-18))
    scale = np.where(rp > 1e-9, scale, 1.0)
    return cy + ry * scale, cx + rx * scale


def push_points(
    anatomy: Anatomy,
    motion: Motion,
    y: np.ndarray,
    x: np.ndarray,
    contraction: float | np.ndarray,
    jitter: tuple[float | np.ndarray, float | np.ndarray] = (0.0, 0.0),
    iterations: int = 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame position (mm) of ED points (y, x) (mm): the inverse of :func:`pull_points`,
    by bisection along each ray (the map keeps rays and is monotone along them).

    ``contraction`` and the jitter components may be arrays that broadcast with ``y``.
    """
    cy, cx = anatomy.motion_centre
    ry, rx = np.asarray(y, float) - cy, np.asarray(x, float) - cx
    r = np.hypot(ry, rx)
    safe = np.maximum(r, 1e-9)
    uy, ux = ry / safe, rx / safe
    radius, g = _ray_terms(anatomy, motion, uy, ux)
    lo = np.zeros(np.broadcast_shapes(r.shape, np.shape(contraction)))
    hi = lo + r
    target = r * r
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = _ed_radius_sq(mid * mid, radius, g, contraction, motion) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    rp = 0.5 * (lo + hi)
    return cy + uy * rp + jitter[0], cx + ux * rp + jitter[1]


def cavity_area_mm2(
    anatomy: Anatomy, motion: Motion, contraction: np.ndarray, n_rays: int = 240
) -> np.ndarray:
    """Exact area (mm²) of the LV cavity region for each contraction value.

    The cavity is star-shaped about the motion centre and rays are preserved, so its
    frame-t boundary is found ray by ray and the area is ``½ Σ ρ_t(θ)² Δθ``.
    """
    theta = np.linspace(-np.pi, np.pi, n_rays, endpoint=False)
    rho = cavity_boundary_radius(anatomy, theta)
    cy, cx = anatomy.motion_centre
    contraction = np.atleast_1d(np.asarray(contraction, dtype=np.float64))[:, None]
    py, px = push_points(
        anatomy, motion, cy + rho * np.sin(theta), cx + rho * np.cos(theta), contraction
    )
    rho_t_sq = (py - cy) ** 2 + (px - cx) ** 2
    return 0.5 * rho_t_sq.sum(axis=1) * (2 * np.pi / n_rays)


def jitter_path(
    n_frames: int,
    frame_time_ms: float,
    rms_mm: float,
    ed_index: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Smooth probe jitter, (T, 2) float64 mm, zero at the ED frame.

    Respiratory sway (period 3–5 s) plus low-pass random wander, scaled to ``rms_mm``.
    """
    if rms_mm <= 0 or n_frames < 2:
        return np.zeros((n_frames, 2))
    t_s = np.arange(n_frames) * frame_time_ms / 1000.0
    period = rng.uniform(3.0, 5.0)
    sway = np.sin(2 * np.pi * t_s[:, None] / period + rng.uniform(0, 2 * np.pi, 2))
    sway *= rng.uniform(0.3, 1.0, 2)
    wander = np.cumsum(rng.normal(size=(n_frames, 2)), axis=0)
    wander -= np.linspace(0, 1, n_frames)[:, None] * wander[-1]
    path = sway + wander / max(np.abs(wander).max(), 1e-9)
    path -= path[ed_index]
    rms = np.sqrt(np.mean(np.sum(path**2, axis=1)))
    return path * (rms_mm / max(rms, 1e-9))
