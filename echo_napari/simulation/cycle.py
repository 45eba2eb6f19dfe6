"""The cardiac cycle: contraction and valve opening as functions of the cardiac phase.

Phase 0 (and 1) is end-diastole. The contraction curve ``c(φ)`` is 0 at ED and 1 at ES;
the LV shrinks with it. Between them: fast ejection (steepest early), ES, rapid filling,
diastasis (a plateau) and the atrial kick that completes filling just before the next ED.
The curve is a monotone piecewise-cubic (PCHIP) through physiological knots, so ED and ES
are the only extrema and no overshoot appears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.interpolate import PchipInterpolator


def es_phase(heart_rate_bpm: float) -> float:
    """Phase of end-systole: systole lasts ≈ 0.34·√RR s (Bazett-like), so ES falls at
    ≈ 0.37 of the cycle at 70 bpm and later at fast heart rates."""
    rr_s = 60.0 / heart_rate_bpm
    return float(np.clip(0.34 * np.sqrt(rr_s) / rr_s, 0.25, 0.55))


def contraction_curve(heart_rate_bpm: float) -> PchipInterpolator:
    """``c(φ)``: 0 at ED, 1 at ES, for φ in [0, 1] (evaluate with ``φ mod 1``).

    Knots (fraction of the stroke still ejected): ejection reaches 70 % at a third of
    systole; rapid filling recovers 70 % of the stroke in the first 30 % of diastole;
    diastasis adds 10 %; the atrial kick the last 20 % in the final 15 % of the cycle.
    """
    from scipy.interpolate import PchipInterpolator  # heavy import, only when simulating

    es = es_phase(heart_rate_bpm)
    dia = 1.0 - es
    knots_phase = [0.0, es / 3.0, es, es + 0.3 * dia, es + 0.55 * dia, 0.85, 0.93, 1.0]
    knots_value = [0.0, 0.7, 1.0, 0.3, 0.22, 0.2, 0.08, 0.0]
    phase = np.asarray(knots_phase)
    order = np.argsort(phase)
    return PchipInterpolator(phase[order], np.asarray(knots_value)[order], extrapolate=False)


def valve_opening(phase: np.ndarray, heart_rate_bpm: float) -> np.ndarray:
    """Mitral/tricuspid opening 0 (closed) … 1 (wide open) per phase.

    Closed through systole; opens wide in rapid filling (E wave), half-closes in
    diastasis, reopens with the atrial kick (A wave) and closes at ED.
    """
    es = es_phase(heart_rate_bpm)
    dia = 1.0 - es
    knots = [
        (0.0, 0.0),
        (es + 0.02, 0.0),
        (es + 0.12 * dia, 1.0),
        (es + 0.4 * dia, 0.35),
        (0.86, 0.35),
        (0.92, 0.8),
        (0.98, 0.0),
        (1.0, 0.0),
    ]
    x, y = np.asarray(knots).T
    return np.interp(np.mod(phase, 1.0), x, y)


def frame_phases(n_frames: int, frames_per_cycle: int, start_phase: float) -> np.ndarray:
    """Phase of every frame, (T,) float64 in [0, 1).

    The start is rounded to a whole frame so that ED (phase 0) falls exactly on a frame.
    """
    offset = int(round(start_phase * frames_per_cycle)) % frames_per_cycle
    # Integer modulo first: the same phase in every cycle is bit-identical, so ED (phase 0)
    # is exactly 0 and repeated beats tie exactly.
    return ((np.arange(n_frames) + offset) % frames_per_cycle) / frames_per_cycle
