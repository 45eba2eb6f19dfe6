"""``simulate_sequence``: one synthetic A4C sequence with full-cycle ground truth.

Ground truth is consistent by construction: the labels of frame t are the ED labels
pulled through the analytic map ``ψ_t`` (their signed distance maps, bilinear), and
``displacement[t] = ψ_t(x) − x`` in pixels, so warping the ED labels by
``displacement[t]`` reproduces ``labels[t]``. The requested EF is met by calibrating
the contraction gain on the GT masks (Simpson monoplane, method of discs).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics_volume import volume_simpson
from echo_napari.sequence import EchoSequence, FrameProvenance, LabelClass, ProvenanceKind
from echo_napari.simulation import imaging
from echo_napari.simulation.anatomy import Anatomy, classify, make_anatomy
from echo_napari.simulation.cycle import contraction_curve, frame_phases, valve_opening
from echo_napari.simulation.interp import Bilinear
from echo_napari.simulation.motion import (
    Motion,
    cavity_area_mm2,
    default_weights,
    jitter_path,
    pull_points,
    push_points,
)
from echo_napari.simulation.params import SimulationParams, randomized
from echo_napari.simulation.texture import (
    echogenicity,
    leaflet_segments,
    make_grid,
    segment_amplitude,
)

logger = logging.getLogger(__name__)

#: Grey above myocardium (dB) that maps to white: pericardium and valves saturate,
#: myocardium sits mid-grey as in EchoNet videos.
HEADROOM_DB = 25.0
GENERATOR = "echo_napari.simulate"


@dataclass(frozen=True)
class SimulatedSequence:
    """A simulated sequence and its exact ground truth.

    Attributes
    ----------
    sequence : EchoSequence
        frames (T, H, W) float32 in [0, 1]; labels (T, H, W) uint8 for every frame
        (1 LV cavity, 2 LV myocardium, 3 LA); spacing (dy, dx) mm; frame_time_ms; view
        "A4C"; ed_index, es_index; metadata["reference"] = {"EF": %, "EDV": mL, "ESV": mL}
        (Simpson monoplane on the GT masks) and metadata["simulation"] (seed, params).
    displacement : (T, 2, H, W) float32, pixels
        ``u_t`` from ED to frame t in the pull convention: ``labels[t](x) ≈
        labels[ed](x + u_t(x))``; channel 0 = dy (rows), 1 = dx (columns).
    lv_area_mm2 : (T,) float64, mm²
        Exact area of the continuous LV cavity (the pixel count of ``labels == 1`` agrees
        within discretisation); ED/ES are its maximum/minimum.
    """

    sequence: EchoSequence
    displacement: np.ndarray
    lv_area_mm2: np.ndarray


class _Geometry:
    """Pixel grid, ED labels and their signed distance maps for one sequence."""

    def __init__(self, anatomy: Anatomy, params: SimulationParams) -> None:
        self.spacing = params.spacing_mm
        rows, cols = np.mgrid[0 : params.height, 0 : params.width].astype(np.float64)
        self.rows, self.cols = rows, cols
        self.y, self.x = rows * self.spacing, cols * self.spacing
        self.ed_labels = classify(anatomy, self.y, self.x)
        sdf = []
        for k in range(len(LabelClass)):
            inside = self.ed_labels == k
            sdf.append(
                ndimage.distance_transform_edt(inside) - ndimage.distance_transform_edt(~inside)
            )
        self.sdf = np.stack(sdf).astype(np.float32)

    def cavity(self, anatomy, motion, contraction, jitter) -> np.ndarray:
        """LV cavity mask (H, W) bool of one frame (cheaper than :meth:`pull`)."""
        qy, qx = pull_points(anatomy, motion, self.y, self.x, contraction, jitter)
        plan = Bilinear.at(qy / self.spacing, qx / self.spacing, self.ed_labels.shape)
        return (plan(self.sdf[LabelClass.LV_CAVITY]) > 0).reshape(self.ed_labels.shape)

    def pull(self, anatomy, motion, contraction, jitter):
        """Displacement (2, H, W) float32 pixels and labels (H, W) uint8 of one frame."""
        if contraction == 0 and jitter[0] == 0 and jitter[1] == 0:
            # The reference frame itself: exactly the identity (no rounding residue).
            return np.zeros((2, *self.ed_labels.shape), np.float32), self.ed_labels.copy()
        qy, qx = pull_points(anatomy, motion, self.y, self.x, contraction, jitter)
        displacement = np.stack(
            [(qy - self.y) / self.spacing, (qx - self.x) / self.spacing]
        ).astype(np.float32)
        plan = Bilinear.at(qy / self.spacing, qx / self.spacing, self.ed_labels.shape)
        labels = np.argmax(plan(self.sdf), axis=0).astype(np.uint8)
        return displacement, labels.reshape(self.ed_labels.shape)


#: factor by which a per-seed imaging depth grows until the simulated heart fits.
_DEPTH_STEP = 1.04


def _check_fits(ed_labels: np.ndarray, params: SimulationParams) -> None:
    """Raise when the LV (cavity or myocardium) touches the image border: its volumes and
    EF would be those of a truncated mask."""
    lv = (ed_labels == LabelClass.LV_CAVITY) | (ed_labels == LabelClass.MYOCARDIUM)
    border = np.concatenate([lv[0], lv[-1], lv[:, 0], lv[:, -1]])
    if border.any():
        raise SequenceError(
            f"the simulated LV does not fit in a {params.height}x{params.width} image at "
            f"depth_mm={params.depth_mm}: use a wider image (width ≳ 0.9 × height) or a "
            "larger depth_mm"
        )


def _anatomy_that_fits(
    params: SimulationParams, anatomy_seed: np.random.SeedSequence, deepen: bool
) -> tuple[SimulationParams, Anatomy, np.random.Generator, _Geometry]:
    """The anatomy drawn from ``anatomy_seed`` and its pixel geometry, checked to fit.

    With ``deepen`` (depth drawn per seed from ``depth_range_mm``), a heart too large for
    the drawn depth is imaged deeper, in steps of ``_DEPTH_STEP``, as a sonographer would,
    up to the range's upper end; a heart that does not fit even there, or a depth the user
    set, raises. Returns the (possibly deeper) params, the anatomy, the anatomy generator
    (its later draws continue the same stream) and the geometry.
    """
    while True:
        rng = np.random.default_rng(anatomy_seed)
        anatomy = make_anatomy(params, rng)
        geometry = _Geometry(anatomy, params)
        try:
            _check_fits(geometry.ed_labels, params)
            return params, anatomy, rng, geometry
        except SequenceError:
            deeper = params.depth_mm * _DEPTH_STEP
            if not deepen or deeper > max(params.depth_range_mm):
                raise
            logger.debug("heart too large at depth %.0f mm: %.0f mm", params.depth_mm, deeper)
            params = replace(params, depth_mm=deeper)


def _calibrate_gain(anatomy, weights, params, geometry, contraction_es, jitter_es) -> float:
    """Bisection on the contraction gain so that the GT-mask Simpson EF matches
    ``params.ef``."""
    spacing = (geometry.spacing, geometry.spacing)
    edv = volume_simpson(geometry.ed_labels == LabelClass.LV_CAVITY, spacing)
    if edv <= 0:
        raise SequenceError(
            "simulated LV cavity is empty at ED: the anatomy does not fit the image; "
            f"check depth_mm={params.depth_mm} and lv_length_mm={params.lv_length_mm}"
        )
    max_weight = max(_max_weight(weights), 1e-6)
    lo, hi = 0.0, 0.92 / (max_weight * max(contraction_es, 1e-6))
    for _ in range(13):
        gain = 0.5 * (lo + hi)
        motion = Motion(gain, weights, params.wall_mm)
        cavity = geometry.cavity(anatomy, motion, contraction_es, jitter_es)
        esv = volume_simpson(cavity, spacing)
        if 1.0 - esv / edv < params.ef:
            lo = gain
        else:
            hi = gain
    return 0.5 * (lo + hi)


def _max_weight(weights) -> float:
    """Upper bound of the regional weight g over all ray angles."""
    return float(abs(weights[0]) + sum(abs(w) for w in weights[1:]))


def simulate_sequence(
    seed: int, params: SimulationParams | None = None, randomize: bool = True
) -> SimulatedSequence:
    """Simulate one apical four-chamber sequence with exact ground truth.

    Parameters
    ----------
    seed : int
        Everything (anatomy, appearance, speckle, jitter) follows from it; see
        :data:`~echo_napari.simulation.params.SPLITS` for the train/val/test split.
    params : SimulationParams, optional
        Defaults to ``SimulationParams()``.
    randomize : bool
        Draw the anatomy and appearance fields per seed from
        :data:`~echo_napari.simulation.params.RANDOM_RANGES` (size, frames, heart rate,
        EF, SNR, dropout, jitter and depth stay as given).

    Returns
    -------
    SimulatedSequence
    """
    params = params or SimulationParams()
    params.validate()
    children = np.random.SeedSequence(seed).spawn(5)
    rng_params, _, rng_motion, rng_texture, rng_speckle = map(np.random.default_rng, children)
    if randomize:
        params = randomized(params, rng_params)
    deepen = randomize and params.depth_range_mm is not None
    params, anatomy, rng_anatomy, geometry = _anatomy_that_fits(params, children[1], deepen)
    weights = default_weights(rng_anatomy if randomize else None, params.apex_motion)

    n_frames = params.n_frames
    phases = frame_phases(n_frames, params.frames_per_cycle, params.start_phase)
    contraction = contraction_curve(params.heart_rate_bpm)(phases)
    at_ed = np.flatnonzero(contraction == 0)
    if at_ed.size == 0:
        raise SequenceError(
            f"the clip of {n_frames} frames starting at phase {params.start_phase:.2f} holds "
            "no end-diastole frame; use start_phase=0 or more frames (n_cycles)"
        )
    ed_index = int(at_ed[0])
    es_index = int(np.argmax(contraction))
    jitter = jitter_path(
        n_frames, params.frame_time_ms, params.jitter_px * params.spacing_mm, ed_index, rng_motion
    )

    gain = _calibrate_gain(
        anatomy, weights, params, geometry, float(contraction[es_index]), tuple(jitter[es_index])
    )
    motion = Motion(gain, weights, params.wall_mm)
    displacement = np.empty((n_frames, 2, params.height, params.width), dtype=np.float32)
    labels = np.empty((n_frames, params.height, params.width), dtype=np.uint8)
    for t in range(n_frames):
        displacement[t], labels[t] = geometry.pull(
            anatomy, motion, float(contraction[t]), tuple(jitter[t])
        )
    spacing = (params.spacing_mm, params.spacing_mm)
    edv = volume_simpson(labels[ed_index] == LabelClass.LV_CAVITY, spacing)
    esv = volume_simpson(labels[es_index] == LabelClass.LV_CAVITY, spacing)
    if abs(100.0 * (1.0 - esv / edv) - 100.0 * params.ef) > 1.0:
        logger.warning(
            "seed %d: requested EF %.1f %%, achieved %.1f %% (outside the model's range)",
            seed,
            100.0 * params.ef,
            100.0 * (1.0 - esv / edv),
        )
    unique, inverse = np.unique(contraction, return_inverse=True)
    lv_area = cavity_area_mm2(anatomy, motion, unique)[inverse.ravel()]

    annulus = {
        int(t): _annulus_pixels(anatomy, motion, float(contraction[t]), jitter[t], params)
        for t in (ed_index, es_index)
    }
    frames = _render(
        anatomy,
        motion,
        params,
        contraction,
        phases,
        jitter,
        displacement,
        rng_texture,
        rng_speckle,
    )
    provenance = [FrameProvenance(ProvenanceKind.MANUAL, GENERATOR, "1")] * n_frames
    sequence = EchoSequence(
        frames=frames,
        spacing=(params.spacing_mm, params.spacing_mm),
        frame_time_ms=params.frame_time_ms,
        view="A4C",
        ed_index=ed_index,
        es_index=es_index,
        labels=labels,
        provenance=provenance,
        keyframes={ed_index, es_index},
        metadata={
            "reference": {
                "EF": 100.0 * (1.0 - esv / edv),
                "EDV": float(edv),
                "ESV": float(esv),
            },
            "simulation": {"seed": int(seed), "randomize": bool(randomize), **asdict(params)},
            "source": f"{GENERATOR} seed {seed}",
            "annulus_points": annulus,
        },
    )
    return SimulatedSequence(sequence=sequence, displacement=displacement, lv_area_mm2=lv_area)


def _render(
    anatomy, motion, params, contraction, phases, jitter, displacement, rng_texture, rng_speckle
):
    """B-mode frames (T, H, W) float32 in [0, 1].

    The tissue seen at each polar sample comes from the (smooth) GT displacement,
    interpolated bilinearly from the pixel grid: the speckle moves exactly with the labels.
    """
    polar = imaging.make_polar_grid(anatomy, params)
    grid = make_grid(anatomy, cell=max(polar.dr, 0.6 * params.spacing_mm))
    amplitude = echogenicity(anatomy, params, grid, rng_texture).ravel()
    gain = imaging.probe_gain(polar, params, anatomy, rng_texture)
    tgc = imaging.tgc_gain(polar, params, rng_texture)
    haze = imaging.haze_field(polar, params, rng_texture)
    draw_valves = rng_texture.uniform() < params.valve_prob

    n_cells = amplitude.size
    scatter = _complex_normal(rng_speckle, n_cells)
    py, px = polar.cartesian()
    valves = None
    if draw_valves:
        valves = _valve_amplitudes(anatomy, motion, params, contraction, phases, jitter, py, px)
    noise_level = 10.0 ** (-params.snr_db / 20.0)
    depth = polar.depth()[:, None] / polar.depth()[-1]
    # TGC amplifies electronic noise with depth: it dominates the far field.
    noise_profile = (noise_level * 10.0 ** ((6.0 * depth - 6.0) / 20.0)).astype(np.float32)
    noise_pool = _complex_normal(rng_speckle, 4 * polar.nr * polar.nt).reshape(
        2 * polar.nr, 2 * polar.nt
    )

    spacing = params.spacing_mm
    sample_plan = Bilinear.at(py / spacing, px / spacing, displacement.shape[-2:])
    n_frames = contraction.shape[0]
    signal = np.empty((n_frames, polar.nr, polar.nt), dtype=np.complex64)
    n_redraw = int(round(params.redraw_fraction * n_cells))
    for t in range(n_frames):
        moved = sample_plan(displacement[t]).reshape(2, *py.shape)
        index = grid.nearest_index(py + spacing * moved[0], px + spacing * moved[1])
        level = amplitude[index]
        if valves is not None:
            level = level + valves[t]
        signal[t] = (level * gain) * scatter[index] + haze
        oy, ox = rng_speckle.integers(0, polar.nr), rng_speckle.integers(0, polar.nt)
        signal[t] += noise_profile * noise_pool[oy : oy + polar.nr, ox : ox + polar.nt]
        if n_redraw:
            scatter[rng_speckle.integers(0, n_cells, n_redraw)] = _complex_normal(
                rng_speckle, n_redraw
            )
    grey = imaging.log_compress(
        imaging.envelope_db(signal, polar, params, tgc), params, HEADROOM_DB
    )
    imaging.antialias(grey, polar, params)
    return imaging.make_scan_converter(polar, params)(grey)


def _annulus_pixels(anatomy, motion, contraction, jitter, params):
    """Mitral annulus hinge points of a frame, ((y, x), (y, x)) in pixels (septal first)."""
    half = anatomy.annulus_half_width
    ay, ax = anatomy.from_lv_frame(np.array([anatomy.base] * 2), np.array([-half, half]))
    fy, fx = push_points(anatomy, motion, ay, ax, contraction, (jitter[0], jitter[1]))
    s = params.spacing_mm
    return tuple((float(y / s), float(x / s)) for y, x in zip(fy, fx, strict=True))


def _complex_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """n circular complex Gaussian samples of unit variance, complex64."""
    pairs = rng.standard_normal((n, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))
    return pairs.view(np.complex64).ravel()


def _valve_amplitudes(anatomy, motion, params, contraction, phases, jitter, py, px):
    """(T, nr, nt) float32 leaflet amplitude per frame (None when no sample is near)."""
    an = anatomy
    half = an.annulus_half_width
    septum_b = -(an.semi_b + an.wall_septum)
    rv_u = (an.tricuspid_a - an.rv_centre_a) / an.rv_semi_a
    free_wall_b = an.rv_centre_b - an.rv_semi_b * np.sqrt(max(1.0 - rv_u * rv_u, 0.0))
    a = np.array([an.base, an.base, an.tricuspid_a, an.tricuspid_a])
    b = np.array([-half, half, septum_b + 2.0, free_wall_b])
    ay, ax = an.from_lv_frame(a, b)
    fy, fx = push_points(
        an, motion, ay[None, :], ax[None, :], contraction[:, None], (jitter[:, :1], jitter[:, 1:])
    )
    opening = valve_opening(phases, params.heart_rate_bpm)
    reach = 0.8 * 2 * max(half, abs(free_wall_b - septum_b)) + 5.0
    near = np.zeros(py.shape, dtype=bool)
    for k in range(4):
        lo_y, hi_y = fy[:, k].min() - reach, fy[:, k].max() + reach
        lo_x, hi_x = fx[:, k].min() - reach, fx[:, k].max() + reach
        near |= (py > lo_y) & (py < hi_y) & (px > lo_x) & (px < hi_x)
    if not near.any():
        return None
    out = np.zeros((contraction.shape[0], *py.shape), dtype=np.float32)
    sy, sx = py[near], px[near]
    for t in range(contraction.shape[0]):
        annulus = np.stack([fy[t], fx[t]], axis=1)
        segments = leaflet_segments(an, annulus, float(opening[t]))
        out[t][near] = 1.3 * segment_amplitude(sy, sx, segments, width_mm=0.9)
    return out
