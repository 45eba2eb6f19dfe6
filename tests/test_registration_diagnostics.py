"""Registration diagnostics (no Qt): Jacobian box statistics, NCC, grid lines, vectors,
chunked diagnostics with a backend, propagated class masks."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.errors import RegistrationError
from echo_napari.registration import jacobian_determinant
from echo_napari.registration.diagnostics import (
    box_stats,
    deformed_grid_lines,
    diagnostics_chunks,
    displacement_vectors,
    ncc,
    pair_indices,
    propagated_class_masks,
)


class _ShiftBackend:
    """Translation by a known number of pixels (a pure shift has det J = 1)."""

    name = "shift"

    def __init__(self, shift=(1.0, -2.0)) -> None:
        self.shift = shift
        self.calls = 0

    def register_pairs(self, fixed, moving, progress=None):
        self.calls += 1
        u = np.zeros((fixed.shape[0], 2, *fixed.shape[1:]), np.float32)
        u[:, 0], u[:, 1] = self.shift
        return u


def test_pair_indices_modes():
    f, m = pair_indices(4, "consecutive")
    assert f.tolist() == [0, 1, 2, 3] and m.tolist() == [0, 0, 1, 2]
    f, m = pair_indices(4, "keyframe", 2)
    assert m.tolist() == [2, 2, 2, 2]
    with pytest.raises(RegistrationError):
        pair_indices(4, "keyframe", 7)


def test_box_stats_matches_numpy_percentiles_and_tukey_whiskers():
    rng = np.random.default_rng(1)
    values = rng.normal(1, 0.1, (3, 500))
    values[0, 0] = 50.0  # an outlier beyond 1.5 IQR: not a whisker
    stats = box_stats(values)
    q1, med, q3 = np.percentile(values[1], [25, 50, 75])
    np.testing.assert_allclose(stats[1, 1:4], [q1, med, q3])
    assert stats[0, 4] < 50.0
    assert np.all(stats[:, 0] <= stats[:, 1]) and np.all(stats[:, 3] <= stats[:, 4])


def test_ncc_perfect_anti_and_constant():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8))
    assert ncc(a, 2 * a + 1) == pytest.approx(1.0)
    assert ncc(a, -a) == pytest.approx(-1.0)
    assert np.isnan(ncc(a, np.ones_like(a)))


def test_grid_lines_follow_the_field():
    u = np.zeros((2, 16, 12), np.float32)
    u[1] = 3.0
    lines = deformed_grid_lines(u, step=4)
    assert len(lines) == 4 + 3
    np.testing.assert_allclose(lines[0][:, 1], np.arange(12) + 3)
    np.testing.assert_allclose(lines[4][:, 0], np.arange(16))


def test_vectors_with_frame_coordinate():
    u = np.zeros((2, 2, 8, 8), np.float32)
    u[1, 0] = 2.0
    v = displacement_vectors(u, step=4, frame_index=[5, 6])
    assert v.shape == (8, 2, 3)
    assert set(v[:, 0, 0]) == {5, 6}
    assert np.all(v[v[:, 0, 0] == 6][:, 1, 1] == 2.0)
    assert np.all(v[:, 1, 0] == 0)


def test_chunks_cover_every_frame_and_skip_identity_pairs(echo_sequence):
    frames = echo_sequence.frames_array()
    backend = _ShiftBackend()
    chunks = list(diagnostics_chunks(frames, backend, "keyframe", keyframe=3, chunk=5))
    covered = np.concatenate([c.frames for c in chunks])
    assert covered.tolist() == list(range(16))
    assert backend.calls == len(chunks)
    all_fields = np.concatenate([c.fields for c in chunks])
    assert np.all(all_fields[3] == 0) and np.all(all_fields[4, 0] == 1.0)
    det = np.concatenate([c.det for c in chunks])
    np.testing.assert_allclose(det, 1.0, atol=1e-6)
    assert np.all(np.concatenate([c.folding_percent for c in chunks]) == 0)
    first = chunks[0]
    np.testing.assert_allclose(first.ncc_before[3], 1.0)  # identity pair
    assert first.difference.shape == (5, 48, 48)


def test_folding_percent_counts_det_leq_zero():
    h = w = 24
    u = np.zeros((1, 2, h, w), np.float32)
    # dx = -2 x inside a band: d(dx)/dx = -2 so det = 1 - 2 = -1 there (a fold)
    u[0, 1, :, 8:14] = -2.0 * np.arange(6)
    frames = np.random.default_rng(0).random((2, h, w)).astype(np.float32)

    class Fixed:
        name = "fixed"

        def register_pairs(self, fixed, moving, progress=None):
            return u.copy()

    (chunk,) = list(diagnostics_chunks(frames, Fixed(), "consecutive", only=[1]))
    expected = jacobian_determinant(u[0]) <= 0
    assert expected.any()
    assert chunk.folding_percent[0] == pytest.approx(100 * expected.mean())


def test_propagated_class_masks_shift_the_class():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:10, 5:10] = 1
    u = np.zeros((1, 2, 20, 20), np.float32)
    u[0, 0] = -3.0  # pull: warped(y) = moving(y - 3) moves content down by 3
    masks = propagated_class_masks(labels, u, 1)
    assert masks[0, 8:13, 5:10].all() and masks[0].sum() == 25
    with pytest.raises(RegistrationError):
        propagated_class_masks(labels, u, 2)
