"""Jacobian determinant, folding fraction and SD of log J."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.errors import RegistrationError
from echo_napari.registration import folding_fraction, jacobian_determinant, log_jacobian_std


def affine_field(matrix: np.ndarray, shape=(24, 30)) -> np.ndarray:
    """u(x) = (A − I)·x + b, so x + u(x) = A·x + b; (2, H, W) with (y, x) order."""
    ys, xs = np.meshgrid(
        np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float), indexing="ij"
    )
    a = matrix - np.eye(2)
    return np.stack([a[0, 0] * ys + a[0, 1] * xs + 1.5, a[1, 0] * ys + a[1, 1] * xs - 2.0]).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "matrix",
    [np.eye(2), np.array([[1.2, 0.1], [-0.3, 0.9]]), np.array([[0.5, 0.0], [0.0, 0.8]])],
)
def test_jacobian_of_affine_field_is_its_determinant(matrix):
    det = jacobian_determinant(affine_field(matrix))
    assert det.shape == (24, 30)
    np.testing.assert_allclose(det, np.linalg.det(matrix), rtol=1e-5)
    assert folding_fraction(affine_field(matrix)) == 0.0
    assert log_jacobian_std(affine_field(matrix)) == pytest.approx(0.0, abs=1e-5)


def test_folding_fraction_counts_non_positive_determinants():
    flip = affine_field(np.array([[-1.0, 0.0], [0.0, 1.0]]))  # a mirror: det = −1
    assert folding_fraction(flip) == 1.0
    stack = np.stack([affine_field(np.eye(2)), flip])
    np.testing.assert_array_equal(folding_fraction(stack), [0.0, 1.0])
    assert np.isnan(log_jacobian_std(stack)[1])


def test_jacobian_is_per_frame_for_stacks():
    stack = np.stack([affine_field(np.eye(2) * s) for s in (1.0, 1.1, 0.9)])
    det = jacobian_determinant(stack)
    assert det.shape == (3, 24, 30)
    np.testing.assert_allclose(det[:, 5, 5], [1.0, 1.21, 0.81], rtol=1e-5)


def test_log_jacobian_std_of_mixed_field():
    u = affine_field(np.eye(2))
    u[1, :, 15:] += 0.2 * np.arange(15)  # right half stretched in x: det 1.2
    det = jacobian_determinant(u)
    positive = det[det > 0]
    assert log_jacobian_std(u) == pytest.approx(float(np.log(positive).std()), rel=1e-6)
    assert log_jacobian_std(u) > 0.05


def test_bad_field_shape():
    with pytest.raises(RegistrationError, match=r"2, H, W"):
        jacobian_determinant(np.zeros((3, 10, 10), np.float32))
