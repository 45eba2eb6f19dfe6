"""Simulation parameters, their randomisation per seed, and the documented seed split.

Seed split (every benchmark and training script uses it; the held-out ``test`` seeds are
never used for training by anyone):

======  ==================  ====================================================
split   seeds               use
======  ==================  ====================================================
train   0 … 899,999         training models (on-the-fly generation)
val     900,000 … 949,999   model selection, early stopping, threshold tuning
test    950,000 … 999,999   held-out: final numbers only, never for training
======  ==================  ====================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from echo_napari.errors import SequenceError

#: Documented seed split; ``test`` is held out (never used for training).
SPLITS: dict[str, range] = {
    "train": range(0, 900_000),
    "val": range(900_000, 950_000),
    "test": range(950_000, 1_000_000),
}


def seeds(split: str, n: int) -> list[int]:
    """The first ``n`` seeds of a split (deterministic, so every script agrees).

    Parameters
    ----------
    split : "train", "val" or "test"
    n : number of seeds, at most the size of the split
    """
    if split not in SPLITS:
        raise SequenceError(f"unknown seed split {split!r}; expected one of {sorted(SPLITS)}")
    seed_range = SPLITS[split]
    if not 0 <= n <= len(seed_range):
        raise SequenceError(f"split {split!r} holds {len(seed_range)} seeds; asked for {n}")
    return list(seed_range[:n])


@dataclass(frozen=True)
class SimulationParams:
    """Every knob of the simulator, with physiological defaults.

    The first group is always honoured. With ``randomize=True`` in
    :func:`~echo_napari.simulation.core.simulate_sequence`, the anatomy and appearance
    fields named in :data:`RANDOM_RANGES` (SIM_TO_REAL.md §4) are drawn per seed instead
    of taken from here; ``valve_prob`` is always honoured.

    Attributes
    ----------
    height, width : output size in pixels
    frames_per_cycle : frames per heart beat (20–128)
    n_cycles : number of beats (T = round(frames_per_cycle · n_cycles))
    heart_rate_bpm : heart rate; ``frame_time_ms = 60000 / heart_rate_bpm / frames_per_cycle``
    ef : requested LV ejection fraction (fraction, 0.10–0.85)
    snr_db : tissue-to-electronic-noise ratio, dB
    dropout : 0–1, strength of lateral-wall dropout and its random gaps
    jitter_px : probe jitter (rigid tissue motion relative to the probe), RMS pixels
    depth_mm : imaging depth covered by the image height (sets spacing = depth_mm / height)
    start_phase : 0–1, cardiac phase of the first frame (0 = ED); rounded to whole frames
    ef_range : (low, high) fractions or None; with ``randomize=True`` the EF is drawn per
        seed uniformly from it instead of using ``ef`` (for training on varied hearts)
    lv_length_mm, lv_width_mm : LV cavity apex-to-mitral-plane length and largest width at ED
    wall_mm : LV wall thickness at ED (septum and lateral wall)
    lv_tilt_deg : angle of the LV long axis from vertical (base towards the image right)
    sector_deg : opening angle of the sector
    apex_row_frac : row of the sector origin as a fraction of the height
    axial_psf_mm : axial point-spread FWHM
    lateral_psf_deg : lateral point-spread FWHM (constant in angle)
    dynamic_range_db : log-compression dynamic range
    gain_db : display gain added before log compression
    blood_db : blood-pool echogenicity relative to myocardium
    tissue_db : echogenicity of the tissue around the heart relative to myocardium
    tgc_db : amplitude of the residual time-gain-compensation ripple
    apex_motion : inward motion of the apical wall relative to the base's (1.0); drawn
        per seed within ×0.6–1.4 of it when randomised
    apex_gap_mm : (low, high) range of the gap between the sector origin and the outside
        of the apical wall, drawn per seed (chest wall and near field), mm
    depth_range_mm : (low, high) or None; with ``randomize=True`` the imaging depth is
        drawn per seed from it instead of using ``depth_mm`` (hearts of varied size in
        the image, as across scanners and patients)
    dropout_range : (low, high) or None; with ``randomize=True`` the wall dropout is drawn
        per seed from it instead of using ``dropout``
    trabeculae_db : echogenicity of a trabecular band lining the LV cavity (strands of
        muscle in the blood next to the wall, labelled cavity) relative to myocardium, dB;
        None draws none
    trabeculae_mm : thickness of that band at end-diastole, mm
    trabeculae_range_db : (low, high) or None; with ``randomize=True`` the band's level is
        drawn per seed from it and its thickness from ``TRABECULAE_MM``
    haze : near-field (apical) clutter level relative to myocardium
    haze_depth_mm : depth over which the haze decays
    redraw_fraction : fraction of scatterers re-drawn per frame (out-of-plane decorrelation)
    n_shadows : number of acoustic shadows (rib / lung)
    valve_prob : probability that mitral and tricuspid leaflets are drawn
    """

    height: int = 112
    width: int = 112
    frames_per_cycle: int = 48
    n_cycles: float = 1.0
    heart_rate_bpm: float = 70.0
    ef: float = 0.60
    snr_db: float = 20.0
    dropout: float = 0.3
    jitter_px: float = 0.5
    depth_mm: float = 150.0
    start_phase: float = 0.0
    ef_range: tuple[float, float] | None = None
    # anatomy (randomised)
    lv_length_mm: float = 76.0
    lv_width_mm: float = 50.0
    wall_mm: float = 10.0
    lv_tilt_deg: float = 12.0
    # appearance (randomised)
    sector_deg: float = 88.0
    apex_row_frac: float = 0.02
    axial_psf_mm: float = 1.2
    lateral_psf_deg: float = 1.8
    dynamic_range_db: float = 45.0
    gain_db: float = 0.0
    blood_db: float = -30.0
    tissue_db: float = -13.0
    tgc_db: float = 4.0
    haze: float = 0.3
    haze_depth_mm: float = 20.0
    redraw_fraction: float = 0.15
    n_shadows: int = 1
    valve_prob: float = 0.8
    apex_motion: float = 0.25
    apex_gap_mm: tuple[float, float] = (8.0, 15.0)
    depth_range_mm: tuple[float, float] | None = None
    dropout_range: tuple[float, float] | None = None
    trabeculae_db: float | None = None
    trabeculae_mm: float = 3.0
    trabeculae_range_db: tuple[float, float] | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return max(1, int(round(self.frames_per_cycle * self.n_cycles)))

    @property
    def frame_time_ms(self) -> float:
        """Time between frames, ms."""
        return 60000.0 / self.heart_rate_bpm / self.frames_per_cycle

    @property
    def spacing_mm(self) -> float:
        """Isotropic pixel spacing, mm."""
        return self.depth_mm / self.height

    def validate(self) -> None:
        """Raise :class:`SequenceError` for values the simulator cannot honour."""
        checks = [
            (self.height >= 32 and self.width >= 32, "height and width must be >= 32 px"),
            (20 <= self.frames_per_cycle <= 128, "frames_per_cycle must be in 20..128"),
            (self.n_cycles > 0, "n_cycles must be > 0"),
            (20 <= self.heart_rate_bpm <= 220, "heart_rate_bpm must be in 20..220"),
            (0.10 <= self.ef <= 0.85, "ef must be a fraction in 0.10..0.85"),
            (
                self.ef_range is None or 0.10 <= min(self.ef_range) <= max(self.ef_range) <= 0.85,
                "ef_range must be two fractions in 0.10..0.85",
            ),
            (0 <= self.dropout <= 1, "dropout must be in 0..1"),
            (0 <= self.apex_motion <= 1.5, "apex_motion must be in 0..1.5"),
            (self.jitter_px >= 0, "jitter_px must be >= 0"),
            (
                0 <= min(self.apex_gap_mm) <= max(self.apex_gap_mm) <= 80,
                "apex_gap_mm must be two values in 0..80 mm",
            ),
            (
                self.depth_range_mm is None
                or 60 <= min(self.depth_range_mm) <= max(self.depth_range_mm) <= 300,
                "depth_range_mm must be two values in 60..300 mm",
            ),
            (
                self.dropout_range is None
                or 0 <= min(self.dropout_range) <= max(self.dropout_range) <= 1,
                "dropout_range must be two values in 0..1",
            ),
            (
                self.trabeculae_range_db is None
                or -40 <= min(self.trabeculae_range_db) <= max(self.trabeculae_range_db) <= 0,
                "trabeculae_range_db must be two values in -40..0 dB",
            ),
            (0 < self.trabeculae_mm <= 15, "trabeculae_mm must be in (0, 15] mm"),
            (60 <= self.depth_mm <= 300, "depth_mm must be in 60..300"),
            (0 <= self.redraw_fraction <= 1, "redraw_fraction must be in 0..1"),
            (40 <= self.sector_deg <= 110, "sector_deg must be in 40..110"),
        ]
        for ok, message in checks:
            if not ok:
                raise SequenceError(f"SimulationParams: {message}; got {self}")


#: (low, high) ranges drawn uniformly per seed when ``randomize=True``.
RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "lv_length_mm": (66.0, 86.0),
    "lv_width_mm": (42.0, 58.0),
    "wall_mm": (8.0, 12.0),
    "lv_tilt_deg": (4.0, 20.0),
    "sector_deg": (78.0, 92.0),
    "apex_row_frac": (0.0, 0.05),
    "axial_psf_mm": (0.8, 1.6),
    "lateral_psf_deg": (1.4, 2.4),
    "dynamic_range_db": (38.0, 52.0),
    "gain_db": (-3.0, 3.0),
    "blood_db": (-40.0, -27.0),
    "tissue_db": (-20.0, -8.0),
    "tgc_db": (2.0, 6.0),
    "haze": (0.1, 0.45),
    "haze_depth_mm": (10.0, 30.0),
    "redraw_fraction": (0.05, 0.3),
    "n_shadows": (0, 2.99),
}

#: mm: thickness range of the trabecular band when its level is drawn per seed.
TRABECULAE_MM: tuple[float, float] = (2.0, 6.0)


def randomized(params: SimulationParams, rng: np.random.Generator) -> SimulationParams:
    """A copy of ``params`` with the anatomy and appearance fields drawn from
    :data:`RANDOM_RANGES`, the EF from ``ef_range``, the depth from ``depth_range_mm``, the
    dropout from ``dropout_range`` and the trabecular band from ``trabeculae_range_db`` when
    set (the other fields of the first group are kept)."""
    changes: dict[str, float | int] = {}
    for name, (low, high) in RANDOM_RANGES.items():
        value = float(rng.uniform(low, high))
        changes[name] = int(math.floor(value)) if name == "n_shadows" else value
    if params.ef_range is not None:
        changes["ef"] = float(rng.uniform(min(params.ef_range), max(params.ef_range)))
    if params.depth_range_mm is not None:
        # Drawn last, so settings without these ranges keep their seeds' draws.
        changes["depth_mm"] = float(rng.uniform(*sorted(params.depth_range_mm)))
    if params.dropout_range is not None:
        changes["dropout"] = float(rng.uniform(*sorted(params.dropout_range)))
    if params.trabeculae_range_db is not None:
        changes["trabeculae_db"] = float(rng.uniform(*sorted(params.trabeculae_range_db)))
        changes["trabeculae_mm"] = float(rng.uniform(*TRABECULAE_MM))
    return replace(params, **changes)
