"""Implausible frames of a segmentation re-drawn from the plausible ones by registration."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.errors import SequenceError
from echo_napari.metrics import dice_coefficient as dice
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.registration import DirnetBackend
from echo_napari.registration.repair import repair_implausible_frames
from echo_napari.simulate import SimulationParams, simulate_sequence


@pytest.fixture(scope="module")
def simulated():
    return simulate_sequence(3, SimulationParams(frames_per_cycle=24)).sequence


def test_failing_frames_are_redrawn_from_the_passing_ones(simulated):
    frames, truth = simulated.frames_array(), simulated.labels
    broken = truth.copy()
    broken[5] = np.flip(truth[5], axis=0)  # LA above the LV
    broken[14] = np.where(truth[14] == 1, 2, truth[14]).astype(np.uint8)  # cavity lost
    assert frame_plausibility(broken).plausible_share() == pytest.approx(22 / 24)
    result = repair_implausible_frames(frames, broken, DirnetBackend(threads=1))
    assert result.repaired.tolist() == [5, 14]
    assert result.plausible_before == pytest.approx(22 / 24) and result.plausible_after == 1.0
    for t in (5, 14):
        assert dice(result.labels[t] == 1, truth[t] == 1) > 0.9
    untouched = [t for t in range(24) if t not in (5, 14)]
    np.testing.assert_array_equal(result.labels[untouched], broken[untouched])


def test_nothing_to_repair_or_nothing_to_carry_from(simulated):
    frames, truth = simulated.frames_array(), simulated.labels
    result = repair_implausible_frames(frames, truth, "not-a-backend")  # never registers
    assert result.labels is truth and result.repaired.size == 0
    empty_lv = np.where(truth == 1, 0, truth).astype(np.uint8)
    result = repair_implausible_frames(frames, empty_lv, "not-a-backend")
    assert result.repaired.size == 0 and result.plausible_after == result.plausible_before


def test_shapes_are_checked(simulated):
    frames = simulated.frames_array()
    with pytest.raises(SequenceError, match="same shape"):
        repair_implausible_frames(frames[:3], simulated.labels)
    with pytest.raises(SequenceError, match="uint8"):
        repair_implausible_frames(frames, simulated.labels.astype(np.int32))


def test_protected_frames_are_kept_and_carried_from(simulated):
    frames, truth = simulated.frames_array(), simulated.labels
    broken = truth.copy()
    broken[5] = np.flip(truth[5], axis=0)
    broken[9] = np.flip(truth[9], axis=0)
    result = repair_implausible_frames(frames, broken, DirnetBackend(threads=1), protected=[9])
    assert result.repaired.tolist() == [5]
    np.testing.assert_array_equal(result.labels[9], broken[9])
