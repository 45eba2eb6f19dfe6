"""Echogenicity (mean backscatter amplitude) of the ED anatomy, and the valve leaflets.

Levels are linear amplitudes relative to the LV myocardium (1.0), per SIM_TO_REAL.md §4:
blood −24 … −38 dB, the tissue around the heart −4 … −12 dB, pericardium the brightest
(+5 dB). Walls that run parallel to the beams lose up to 20 dB with ``dropout`` (specular
reflection goes elsewhere), most on the LV lateral side. Everything here is defined in ED
coordinates, so it moves with the tissue once sampled through the pull map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echo_napari.simulation.anatomy import Anatomy, region_values
from echo_napari.simulation.params import SimulationParams


@dataclass(frozen=True)
class EdGrid:
    """A Cartesian grid in ED mm coordinates holding the echogenicity and scatterers.

    Attributes
    ----------
    y0, x0 : mm of cell (0, 0)
    cell : cell size, mm
    shape : (ny, nx)
    """

    y0: float
    x0: float
    cell: float
    shape: tuple[int, int]

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(ny, nx) float64 mm coordinates of the cell centres."""
        ny, nx = self.shape
        y = self.y0 + self.cell * np.arange(ny)
        x = self.x0 + self.cell * np.arange(nx)
        return np.meshgrid(y, x, indexing="ij")

    def nearest_index(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Flat index of the nearest cell (clipped to the grid), int64 shaped like ``y``."""
        ny, nx = self.shape
        iy = np.clip(np.rint((y - self.y0) / self.cell), 0, ny - 1).astype(np.int64)
        ix = np.clip(np.rint((x - self.x0) / self.cell), 0, nx - 1).astype(np.int64)
        return iy * nx + ix


def make_grid(anatomy: Anatomy, cell: float, margin_mm: float = 25.0) -> EdGrid:
    """A grid covering the sector plus ``margin_mm`` (tissue moves in from outside)."""
    oy, ox = anatomy.origin
    half_width = anatomy.sector_radius * np.sin(min(anatomy.sector_half_angle, np.pi / 2))
    y0 = oy - margin_mm
    x0 = ox - half_width - margin_mm
    ny = int(np.ceil((anatomy.sector_radius + 2 * margin_mm) / cell)) + 1
    nx = int(np.ceil((2 * half_width + 2 * margin_mm) / cell)) + 1
    return EdGrid(float(y0), float(x0), float(cell), (ny, nx))


def _db(value: float) -> float:
    return float(10.0 ** (value / 20.0))


def _smooth_field(shape, sigma_cells, rng, amplitude_db):
    """Smooth random log-gain field with the given RMS (dB), as a linear factor.

    Drawn on a coarse grid and upsampled bilinearly: the same statistics, a fraction of
    the cost of filtering full-resolution noise with a wide kernel.
    """
    step = max(1, int(sigma_cells / 2))
    coarse = (shape[0] // step + 2, shape[1] // step + 2)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma_cells / step, mode="wrap")
    field = ndimage.zoom(field, step, order=1, grid_mode=False)[: shape[0], : shape[1]]
    field /= max(field.std(), 1e-9)
    return 10.0 ** (amplitude_db * field / 20.0)


def echogenicity(
    anatomy: Anatomy, params: SimulationParams, grid: EdGrid, rng: np.random.Generator
) -> np.ndarray:
    """Mean backscatter amplitude on the ED grid, (ny, nx) float32, myocardium ≈ 1."""
    an = anatomy
    y, x = grid.coordinates()
    v = region_values(an, y, x)
    a, b = v["a"], v["b"]
    above = a < an.base
    cavity = (v["cavity"] < 1) & above
    lv_wall = (v["epi"] < 1) & above & ~cavity
    la = (v["la"] < 1) & (a >= an.base) & (b > an.atrial_septum_b + 1.0)
    ra = (v["ra"] < 1) & (a >= an.tricuspid_a) & (b < an.atrial_septum_b - 1.5)
    rv = (v["rv"] < 1) & (a < an.tricuspid_a) & (v["epi"] >= 1)
    # Thin walls: RV free wall and atrial walls as bands outside the blood pools.
    rv_wall = (v["rv"] < (1 + 4.0 / an.rv_semi_b) ** 2) & ~rv & (v["epi"] >= 1)
    rv_wall &= a < an.tricuspid_a + 2.0
    atria = la | ra
    atrial_wall = ndimage.binary_dilation(atria, iterations=max(1, int(round(1.8 / grid.cell))))
    atrial_wall &= ~atria & ~lv_wall & ~cavity
    blood = cavity | la | ra | rv
    heart = blood | lv_wall | rv_wall | atrial_wall

    cell = grid.cell
    # Tissue around the heart: heterogeneous, with a few bright patches (fat, lung edge).
    level = _db(params.tissue_db) * _smooth_field(y.shape, 6.0 / cell, rng, 6.0)
    level = level.astype(np.float32)
    # Pericardium: a bright band outside the heart, brightest behind the atria and along
    # the lateral wall, patchy elsewhere.
    outside = ndimage.distance_transform_edt(~heart) * cell
    band = np.exp(-0.5 * ((outside - 3.0) / 2.0) ** 2)
    band *= np.clip((a - 0.3 * an.base) / (0.5 * an.base), 0, 1) * (0.5 + 0.5 * (b > 0))
    band *= _smooth_field(y.shape, 8.0 / cell, rng, 6.0)
    level = np.maximum(level, _db(rng.uniform(4.0, 9.0)) * band)
    # Myocardium: speckle-scale texture and a larger-scale patchiness; septum brighter.
    texture = _smooth_field(y.shape, 2.5 / cell, rng, 3.0)
    texture *= _smooth_field(y.shape, 10.0 / cell, rng, 3.0)
    septum_gain = _db(rng.uniform(0.0, 4.0))
    level = np.where(lv_wall, texture * np.where(b < 0, septum_gain, 1.0), level)
    level = np.where(rv_wall, 0.6 * texture, level)
    patchy = np.clip(_smooth_field(y.shape, 6.0 / cell, rng, 8.0) - 0.4, 0.05, 1.5)
    level = np.where(atrial_wall, 0.5 * texture * patchy, level)
    blood_level = _db(params.blood_db) * _smooth_field(y.shape, 4.0 / cell, rng, 4.0)
    level = np.where(blood, blood_level, level)
    if params.trabeculae_db is not None:
        level = np.maximum(level, _trabeculae(params, cavity, lv_wall, cell, rng))
    level = np.maximum(level, _papillary_muscles(an, a, b, cavity, rng))
    # Fibrous skeleton: bright spots at the mitral annulus and the crux.
    for sign in (-1.0, 1.0):
        ay, ax = an.from_lv_frame(np.float64(an.base), np.float64(sign * an.annulus_half_width))
        spot = np.exp(-((y - ay) ** 2 + (x - ax) ** 2) / (2 * 2.5**2))
        level = np.maximum(level, _db(rng.uniform(2.0, 6.0)) * spot)
    level = _wall_dropout(level, heart & ~blood, anatomy, params, y, x, b, cell, rng)
    return level.astype(np.float32)


def _trabeculae(params: SimulationParams, cavity, lv_wall, cell, rng) -> np.ndarray:
    """Trabecular band: spotty echoes in the cavity within ``trabeculae_mm`` of the LV wall,
    fading towards the blood pool and patchy along the wall. Real apical views show this
    grey lining: 2 px inside the LV border the EchoNet videos' grey level is 0.13-0.18,
    the simulator's without it 0.05-0.08, so a network learns that the cavity ends at the
    first grey."""
    inside = ndimage.distance_transform_edt(~lv_wall) * cell
    fade = np.clip(1.0 - inside / params.trabeculae_mm, 0.0, 1.0)
    strands = np.clip(_smooth_field(cavity.shape, 0.8 / cell, rng, 8.0) - 0.3, 0.0, 2.5)
    along = np.clip(_smooth_field(cavity.shape, 10.0 / cell, rng, 5.0), 0.2, 2.0)
    band = _db(params.trabeculae_db) * fade * strands * along
    return np.where(cavity, band, 0.0).astype(np.float32)


def _papillary_muscles(an: Anatomy, a, b, cavity, rng) -> np.ndarray:
    """0–2 papillary muscles: elongated echoes inside the LV cavity (labelled cavity, as in
    CAMUS), rooted in the mid lateral or septal wall and pointing to the mitral valve."""
    level = np.zeros(a.shape, dtype=np.float32)
    for side in rng.permutation([1.0, -1.0])[: rng.integers(0, 3)]:
        centre_a = an.base * rng.uniform(0.5, 0.65)
        u = (centre_a - an.semi_a) / an.semi_a
        wall_b = an.semi_b * np.sqrt(max(1.0 - u * u, 0.0))
        centre_b = side * (wall_b - rng.uniform(3.0, 5.0))
        length, width = rng.uniform(7.0, 11.0), rng.uniform(2.5, 4.0)
        shape = ((a - centre_a) / length) ** 2 + ((b - centre_b) / width) ** 2
        level = np.maximum(level, _db(rng.uniform(-10.0, -3.0)) * np.exp(-2.0 * shape**2))
    return np.where(cavity, level, 0.0).astype(np.float32)


def _wall_dropout(level, walls, anatomy, params, y, x, b, cell, rng):
    """Attenuate walls parallel to the beam by up to ≈ 25·dropout dB, in patches, most on
    the LV lateral side."""
    if params.dropout <= 0:
        return level
    smooth = ndimage.gaussian_filter(walls.astype(np.float32), 2.0 / cell)
    gy, gx = np.gradient(smooth)
    norm = np.hypot(gy, gx) + 1e-6
    oy, ox = anatomy.origin
    by, bx = y - oy, x - ox
    bnorm = np.hypot(by, bx) + 1e-6
    cos_incidence = np.abs(gy * by + gx * bx) / (norm * bnorm)
    parallel = np.clip(1.0 - cos_incidence, 0.0, 1.0)
    side = 0.3 + 0.7 / (1.0 + np.exp(-b / 8.0))
    weight = ndimage.gaussian_filter(walls.astype(np.float32), 1.0 / cell)
    # Patchy: the loss varies along the wall, so gaps open where the wall runs with the beam.
    patches = np.clip(_smooth_field(walls.shape, 8.0 / cell, rng, 6.0), 0.3, 2.0)
    loss_db = 25.0 * params.dropout * parallel * side * weight * patches
    return level * 10.0 ** (-loss_db / 20.0)


def leaflet_segments(
    anatomy: Anatomy, annulus_frame: np.ndarray, opening: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mitral and tricuspid leaflets of one frame as (start, end) mm points.

    Parameters
    ----------
    annulus_frame : (4, 2) mm, frame positions of the mitral (septal, lateral) and
        tricuspid (septal, free-wall) annulus points
    opening : 0 (closed, leaflets meet across the orifice) … 1 (open, towards the apex)
    """
    axis = np.asarray(anatomy.axis)
    perp = np.asarray(anatomy.perp)
    segments = []
    for first, second, lengths in ((0, 1, (0.6, 0.45)), (2, 3, (0.55, 0.5))):
        p, q = annulus_frame[first], annulus_frame[second]
        span = np.linalg.norm(q - p)
        for start, other, frac in ((p, q, lengths[0]), (q, p, lengths[1])):
            closed = (other - start) / max(np.linalg.norm(other - start), 1e-9)
            closed = closed + 0.25 * axis  # closed leaflets bow towards the atrium
            outward = np.sign(np.dot(start - other, perp)) * perp
            open_dir = -axis + 0.35 * outward
            direction = (1 - opening) * closed / np.linalg.norm(closed)
            direction = direction + opening * open_dir / np.linalg.norm(open_dir)
            direction /= max(np.linalg.norm(direction), 1e-9)
            segments.append((start, start + frac * span * direction))
    return segments


def segment_amplitude(
    y: np.ndarray, x: np.ndarray, segments: list[tuple[np.ndarray, np.ndarray]], width_mm: float
) -> np.ndarray:
    """Amplitude of thin bright lines along segments, Gaussian profile of ``width_mm``.

    Parameters
    ----------
    y, x : (N,) mm sample positions
    segments : (start, end) pairs of (y, x) mm points

    Returns
    -------
    (N,) float32 in [0, 1]
    """
    starts = np.array([s for s, _ in segments], dtype=np.float32)[:, :, None]
    delta = np.array([e - s for s, e in segments], dtype=np.float32)[:, :, None]
    points = np.stack([y, x]).astype(np.float32)[None]
    rel = points - starts
    length_sq = np.maximum((delta * delta).sum(axis=1), 1e-9)
    t = np.clip((rel * delta).sum(axis=1) / length_sq, 0.0, 1.0)
    dist_sq = ((rel - t[:, None] * delta) ** 2).sum(axis=1).min(axis=0)
    return np.exp(-dist_sq / np.float32(2 * width_mm**2))
