"""Forward–backward consistency: symmetrised pair fields, composed fields, cycle Dice,
and the open ends fused from two keyframes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echo_napari.errors import RegistrationError
from echo_napari.registration import (
    PairwiseFields,
    pairwise_fields,
    propagate_from_keyframes,
    update_after_keyframe_change,
)
from echo_napari.registration.consistency import cycle_consistency, symmetrise_pairs
from echo_napari.registration.drift import composed_field
from echo_napari.registration.evaluation import dice

torch.set_num_threads(1)
SIZE = 48


def disk(radius: float, centre=(24.0, 24.0)) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def constant(n: int, dy: float, dx: float) -> np.ndarray:
    u = np.zeros((n, 2, SIZE, SIZE), np.float32)
    u[:, 0], u[:, 1] = dy, dx
    return u


# -- symmetrise_pairs -----------------------------------------------------------------------
def test_symmetrise_keeps_an_inverse_consistent_pair():
    forward, backward = constant(3, 1.5, -2.0), constant(3, -1.5, 2.0)
    f, b = symmetrise_pairs(forward, backward)
    np.testing.assert_allclose(f, forward, atol=1e-5)
    np.testing.assert_allclose(b, backward, atol=1e-5)


def test_symmetrise_cancels_an_error_shared_by_both_directions():
    # Both directions biased by the same +0.8 px in dy: the average keeps the true motion.
    f, b = symmetrise_pairs(constant(2, 2.0 + 0.8, 0.0), constant(2, -2.0 + 0.8, 0.0))
    np.testing.assert_allclose(f[:, 0], 2.0, atol=1e-5)
    np.testing.assert_allclose(b[:, 0], -2.0, atol=1e-5)


def test_symmetrise_rejects_mismatched_fields():
    with pytest.raises(RegistrationError, match="must both be"):
        symmetrise_pairs(constant(2, 0, 0), constant(3, 0, 0))
    bad = constant(2, 0, 0)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(RegistrationError, match="NaN"):
        symmetrise_pairs(bad, constant(2, 0, 0))


def test_pairwise_fields_symmetric_option():
    rng = np.random.default_rng(1)
    frames = rng.random((3, SIZE, SIZE)).astype(np.float32)

    class Skewed:
        name = "skewed"

        def register_pairs(self, fixed, moving, progress=None):
            return constant(fixed.shape[0], 1.0, 0.0)  # same field both directions

    raw = pairwise_fields(frames, Skewed(), symmetric=False)
    sym = pairwise_fields(frames, Skewed())
    np.testing.assert_allclose(raw.forward[:, 0], 1.0)
    np.testing.assert_allclose(sym.forward, 0.0, atol=1e-5)  # f = −b: no net motion


# -- composed_field and cycle_consistency -------------------------------------------------
def shift_fields(t_len: int, dy: float) -> PairwiseFields:
    forward = constant(t_len - 1, -dy, 0.0)
    return PairwiseFields(forward, -forward, "test")


def test_composed_field_sums_constant_steps_both_ways():
    fields = shift_fields(6, 1.0)
    np.testing.assert_allclose(composed_field(fields, 1, 4)[0], -3.0, atol=1e-4)
    np.testing.assert_allclose(composed_field(fields, 4, 1)[0], 3.0, atol=1e-4)
    assert not composed_field(fields, 2, 2).any()
    with pytest.raises(RegistrationError, match="outside"):
        composed_field(fields, 0, 6)


def test_cycle_consistency_of_consistent_and_inconsistent_fields():
    mask = disk(8)
    there, back = constant(1, -3.0, 0.0)[0], constant(1, 3.0, 0.0)[0]
    scores = cycle_consistency(there, back, mask)
    assert scores.dice > 0.99
    assert dice(scores.carried, np.roll(mask, 3, axis=0)) > 0.99
    # Forgetting the way back leaves the mask where it was carried to.
    stuck = cycle_consistency(there, np.zeros_like(back), mask)
    assert stuck.dice == pytest.approx(dice(mask, np.roll(mask, 3, axis=0)), abs=0.01)
    assert stuck.dice < 0.9
    with pytest.raises(RegistrationError, match="non-empty"):
        cycle_consistency(there, back, np.zeros((SIZE, SIZE), bool))
    with pytest.raises(RegistrationError, match="must both be"):
        cycle_consistency(there, constant(2, 0, 0), mask)


def test_cycle_consistency_on_a_simulated_sequence():
    simulation = pytest.importorskip("echo_napari.simulation")
    seq = simulation.simulate_sequence(simulation.seeds("val", 1)[0]).sequence
    frames, ed, es = seq.frames_array(), seq.ed_index, seq.es_index
    fields = pairwise_fields(frames, "dirnet")
    lv = seq.labels[ed] == 1
    scores = cycle_consistency(composed_field(fields, ed, es), composed_field(fields, es, ed), lv)
    # Measured 0.97 (dirnet_v1, drift correction); the round trip of a zero field would
    # give 1, so also check that the outward trip really reached ES.
    assert scores.dice > 0.9
    assert dice(scores.carried, seq.labels[es] == 1) > 0.9
    assert dice(scores.carried, lv) < 0.9


# -- open ends fused from two keyframes -------------------------------------------------------
def zero_fields(t_len: int) -> PairwiseFields:
    zeros = np.zeros((t_len - 1, 2, SIZE, SIZE), np.float32)
    return PairwiseFields(zeros, zeros.copy(), "test")


def radius(mask: np.ndarray) -> float:
    return float(np.sqrt(mask.sum() / np.pi))


def test_open_ends_average_the_two_nearest_keyframes():
    small, large = disk(6).astype(np.uint8), disk(16).astype(np.uint8)
    result = propagate_from_keyframes(zero_fields(10), {2: small, 6: large}, classes=(1,))
    for t in (0, 1, 7, 8, 9):  # before the first and after the last keyframe
        assert radius(result.labels[t] == 1) == pytest.approx(11.0, abs=1.0)
        assert 0 < result.disagreement[t] < 1
    assert result.source[0] == (None, 2) and result.source[9] == (6, None)
    # One keyframe: carried from it alone, no disagreement to report.
    single = propagate_from_keyframes(zero_fields(10), {6: large}, classes=(1,))
    assert radius(single.labels[9] == 1) == pytest.approx(16.0, abs=0.5)
    assert np.isnan(single.disagreement[9])


def test_open_end_carries_across_the_nearest_keyframe():
    # Content moves 1 px/frame down; the partner's carry is composed through the last key.
    fields = shift_fields(9, 1.0)
    labels = {k: np.roll(disk(8), k, axis=0).astype(np.uint8) for k in (1, 4)}
    result = propagate_from_keyframes(fields, labels, classes=(1,))
    for t in (0, 5, 6, 7, 8):
        assert dice(result.labels[t] == 1, np.roll(disk(8), t, axis=0)) > 0.98
        assert result.disagreement[t] < 0.02


@pytest.mark.parametrize(
    ("changed", "labels_of"),
    [(5, "edit"), (8, "add"), (5, "remove"), (2, "edit"), (1, "add")],
)
def test_update_near_an_open_end_matches_a_full_run(changed, labels_of):
    fields = zero_fields(12)
    base = {2: disk(6).astype(np.uint8), 5: disk(10).astype(np.uint8), 9: disk(14)}
    base = {k: v.astype(np.uint8) for k, v in base.items()}
    result = propagate_from_keyframes(fields, base, classes=(1,))
    new = dict(base)
    if labels_of == "remove":
        del new[changed]
    else:
        new[changed] = disk(4 + changed).astype(np.uint8)
    updated = update_after_keyframe_change(result, fields, new, changed)
    full = propagate_from_keyframes(fields, new, classes=(1,))
    np.testing.assert_array_equal(updated.labels, full.labels)
    np.testing.assert_array_equal(updated.disagreement, full.disagreement)
