"""Apical four-chamber anatomy at end-diastole, as analytic regions in mm.

Coordinates are image millimetres ``(y, x)``: ``y`` down from the centre of pixel row 0,
``x`` right from the centre of pixel column 0. Orientation as in EchoNet-Dynamic A4C
videos: the sector origin (probe) at the top, the LV apex just below it, the LV on the
image's right with its base lower right, the RV on the left of the septum, the atria at
the bottom (LA under the LV, RA under the RV).

Every region is described in the LV frame: ``a`` along the long axis from the apical
endocardium towards the base, ``b`` across it, positive towards the LV lateral wall
(image right). The LV cavity is an ellipse truncated by the mitral plane ``a = base``;
the myocardium is a confocal-like outer ellipse truncated by the same plane; the LA an
ellipse below the plane. RV, RA, atrial walls, pericardium and valves only shape the
appearance (the label table has LV cavity, LV myocardium and LA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo_napari.sequence import LabelClass
from echo_napari.simulation.params import SimulationParams

#: Position of the contraction centre along the long axis (fraction of apex→base): the
#: apex then moves little and the base a lot, as in real long-axis shortening.
MOTION_CENTRE_FRACTION = 0.42


@dataclass(frozen=True)
class Anatomy:
    """End-diastolic geometry, all lengths in mm.

    Attributes
    ----------
    origin : (y, x) sector origin (probe)
    sector_radius, sector_half_angle : sector extent (mm, radians; angle from vertical)
    apex : (y, x) apical endocardium
    axis, perp : unit vectors of the LV frame (apex→base, septum→lateral)
    semi_a, semi_b : LV cavity ellipse semi-axes (centre at ``a = semi_a``)
    base : distance apex → mitral plane along the axis
    wall_apex, wall_septum, wall_lateral : wall thickness
    la_centre_a, la_centre_b, la_semi_a, la_semi_b : LA ellipse in the LV frame
    rv_centre_a, rv_centre_b, rv_semi_a, rv_semi_b : RV ellipse in the LV frame
    ra_centre_a, ra_centre_b, ra_semi_a, ra_semi_b : RA ellipse in the LV frame
    tricuspid_a : position of the tricuspid plane along the axis
    atrial_septum_b : position of the interatrial septum across the axis
    motion_centre : (y, x) centre of the radial contraction model
    wall_wave : (relative amplitude, phase) of the smooth variation of wall thickness
        along the long axis
    """

    origin: tuple[float, float]
    sector_radius: float
    sector_half_angle: float
    apex: tuple[float, float]
    axis: tuple[float, float]
    perp: tuple[float, float]
    semi_a: float
    semi_b: float
    base: float
    wall_apex: float
    wall_septum: float
    wall_lateral: float
    la_centre_a: float
    la_centre_b: float
    la_semi_a: float
    la_semi_b: float
    rv_centre_a: float
    rv_centre_b: float
    rv_semi_a: float
    rv_semi_b: float
    ra_centre_a: float
    ra_centre_b: float
    ra_semi_a: float
    ra_semi_b: float
    tricuspid_a: float
    atrial_septum_b: float
    motion_centre: tuple[float, float]
    wall_wave: tuple[float, float] = (0.0, 0.0)

    @property
    def annulus_half_width(self) -> float:
        """Half width of the LV cavity at the mitral plane, mm."""
        u = (self.base - self.semi_a) / self.semi_a
        return float(self.semi_b * np.sqrt(max(1.0 - u * u, 0.0)))

    def to_lv_frame(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) LV-frame coordinates (mm) of image points (mm)."""
        dy, dx = y - self.apex[0], x - self.apex[1]
        a = dy * self.axis[0] + dx * self.axis[1]
        b = dy * self.perp[0] + dx * self.perp[1]
        return a, b

    def from_lv_frame(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image points (y, x) in mm of LV-frame coordinates (a, b)."""
        y = self.apex[0] + a * self.axis[0] + b * self.perp[0]
        x = self.apex[1] + a * self.axis[1] + b * self.perp[1]
        return y, x


def make_anatomy(params: SimulationParams, rng: np.random.Generator) -> Anatomy:
    """Build the ED anatomy for one sequence; small per-seed shape variation from ``rng``."""
    s = params.spacing_mm
    origin = (params.apex_row_frac * params.height * s, (0.52 * params.width - 0.5) * s)
    sector_radius = 1.03 * params.depth_mm * (1.0 - params.apex_row_frac)
    half_angle = np.deg2rad(params.sector_deg) / 2.0

    base = params.lv_length_mm
    semi_b = params.lv_width_mm / 2.0
    semi_a = base * rng.uniform(0.62, 0.70)
    tilt = np.deg2rad(params.lv_tilt_deg)
    axis = (float(np.cos(tilt)), float(np.sin(tilt)))
    perp = (float(-np.sin(tilt)), float(np.cos(tilt)))
    wall = params.wall_mm
    wall_apex = wall * rng.uniform(0.7, 0.9)
    apex_depth = wall_apex + rng.uniform(*sorted(params.apex_gap_mm))
    apex = (origin[0] + apex_depth, origin[1] + rng.uniform(0.0, 6.0))

    u = (base - semi_a) / semi_a
    annulus = semi_b * np.sqrt(1.0 - u * u)
    la_semi_a = rng.uniform(19.0, 27.0)
    la_semi_b = annulus * rng.uniform(1.0, 1.2)
    rv_semi_b = rng.uniform(10.0, 15.0)
    rv_semi_a = base * rng.uniform(0.36, 0.44)
    tricuspid_a = base - rng.uniform(4.0, 9.0)
    ra_semi_a = rng.uniform(17.0, 23.0)
    ra_semi_b = rng.uniform(14.0, 18.0)
    septum_b = -(semi_b + wall)
    return Anatomy(
        origin=(float(origin[0]), float(origin[1])),
        sector_radius=float(sector_radius),
        sector_half_angle=float(half_angle),
        apex=(float(apex[0]), float(apex[1])),
        axis=axis,
        perp=perp,
        semi_a=float(semi_a),
        semi_b=float(semi_b),
        base=float(base),
        wall_apex=float(wall_apex),
        wall_septum=float(wall * rng.uniform(0.95, 1.1)),
        wall_lateral=float(wall * rng.uniform(0.85, 1.0)),
        la_centre_a=float(base + 0.62 * la_semi_a),
        la_centre_b=float(rng.uniform(0.0, 4.0)),
        la_semi_a=float(la_semi_a),
        la_semi_b=float(la_semi_b),
        rv_centre_a=float(tricuspid_a - rv_semi_a * 0.92),
        rv_centre_b=float(septum_b - 0.8 * rv_semi_b),
        rv_semi_a=float(rv_semi_a),
        rv_semi_b=float(rv_semi_b),
        ra_centre_a=float(tricuspid_a + 0.6 * ra_semi_a),
        ra_centre_b=float(-annulus - 2.5 - 0.8 * ra_semi_b),
        ra_semi_a=float(ra_semi_a),
        ra_semi_b=float(ra_semi_b),
        tricuspid_a=float(tricuspid_a),
        atrial_septum_b=float(-annulus - 1.0),
        motion_centre=(
            float(apex[0] + MOTION_CENTRE_FRACTION * base * axis[0]),
            float(apex[1] + MOTION_CENTRE_FRACTION * base * axis[1]),
        ),
        wall_wave=(float(rng.uniform(0.0, 0.25)), float(rng.uniform(0.0, 2 * np.pi))),
    )


def _ellipse(a, b, centre_a, centre_b, semi_a, semi_b):
    return ((a - centre_a) / semi_a) ** 2 + ((b - centre_b) / semi_b) ** 2


def region_values(anatomy: Anatomy, y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Implicit functions of every region at ED points (mm); a region is ``value < 1``.

    Returns
    -------
    dict of arrays shaped like ``y``: "cavity", "epi" (LV epicardium), "la", "rv", "ra"
    plus "a", "b" (the LV-frame coordinates, mm).
    """
    an = anatomy
    a, b = an.to_lv_frame(y, x)
    cavity = _ellipse(a, b, an.semi_a, 0.0, an.semi_a, an.semi_b)
    wave = 1.0 + an.wall_wave[0] * np.sin(2 * np.pi * a / an.base + an.wall_wave[1])
    wall_b = an.semi_b + wave * np.where(b >= 0, an.wall_lateral, an.wall_septum)
    epi = ((a - an.semi_a) / (an.semi_a + an.wall_apex)) ** 2 + (b / wall_b) ** 2
    la = _ellipse(a, b, an.la_centre_a, an.la_centre_b, an.la_semi_a, an.la_semi_b)
    rv = _ellipse(a, b, an.rv_centre_a, an.rv_centre_b, an.rv_semi_a, an.rv_semi_b)
    ra = _ellipse(a, b, an.ra_centre_a, an.ra_centre_b, an.ra_semi_a, an.ra_semi_b)
    return {"cavity": cavity, "epi": epi, "la": la, "rv": rv, "ra": ra, "a": a, "b": b}


def classify(anatomy: Anatomy, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Label (:class:`LabelClass`) of ED points given in mm; uint8, shaped like ``y``."""
    v = region_values(anatomy, y, x)
    above_plane = v["a"] < anatomy.base
    labels = np.zeros(np.shape(y), dtype=np.uint8)
    labels[(v["la"] < 1) & ~above_plane & (v["b"] > anatomy.atrial_septum_b)] = LabelClass.LA
    labels[(v["epi"] < 1) & above_plane] = LabelClass.MYOCARDIUM
    labels[(v["cavity"] < 1) & above_plane] = LabelClass.LV_CAVITY
    return labels


def cavity_radius(anatomy: Anatomy, theta: np.ndarray) -> np.ndarray:
    """Distance (mm) from the motion centre to the untruncated cavity ellipse along the
    ray of image angle ``theta`` (radians, ``atan2(dy, dx)``)."""
    a_c, b_c = anatomy.to_lv_frame(
        np.float64(anatomy.motion_centre[0]), np.float64(anatomy.motion_centre[1])
    )
    # Ray direction in the LV frame.
    dy, dx = np.sin(theta), np.cos(theta)
    da = dy * anatomy.axis[0] + dx * anatomy.axis[1]
    db = dy * anatomy.perp[0] + dx * anatomy.perp[1]
    p, q = anatomy.semi_a, anatomy.semi_b
    # Solve ((a_c + t da - p)/p)^2 + ((b_c + t db)/q)^2 = 1 for t > 0.
    qa = (da / p) ** 2 + (db / q) ** 2
    qb = 2 * ((a_c - p) * da / p**2 + b_c * db / q**2)
    qc = ((a_c - p) / p) ** 2 + (b_c / q) ** 2 - 1.0
    return (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)


def cavity_boundary_radius(anatomy: Anatomy, theta: np.ndarray) -> np.ndarray:
    """Distance (mm) from the motion centre to the ED cavity boundary (ellipse truncated
    by the mitral plane) along image angle ``theta``; the cavity is star-shaped about the
    centre."""
    radius = cavity_radius(anatomy, theta)
    a_c, _ = anatomy.to_lv_frame(
        np.float64(anatomy.motion_centre[0]), np.float64(anatomy.motion_centre[1])
    )
    da = np.sin(theta) * anatomy.axis[0] + np.cos(theta) * anatomy.axis[1]
    with np.errstate(divide="ignore"):
        to_plane = np.where(da > 1e-9, (anatomy.base - a_c) / np.maximum(da, 1e-9), np.inf)
    return np.minimum(radius, to_plane)
