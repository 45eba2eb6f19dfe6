"""The SimpleITK baseline backend: convention (sign, axis order), discovery, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from echo_napari_simpleitk import SimpleITKBackend
from scipy import ndimage

from echo_napari.errors import RegistrationError
from echo_napari.registration import available_backends, get_backend, register, warp_image

RNG = np.random.default_rng(0)


def blobs(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random((size, size)), 2.5)
    image = (image - image.min()) / np.ptp(image)
    return image.astype(np.float32)


def test_entry_point_is_discovered():
    assert "simpleitk" in available_backends()
    backend = get_backend("simpleitk")
    assert backend.name == "simpleitk"


@pytest.mark.parametrize(("dy", "dx"), [(2.0, 0.0), (0.0, -1.5), (1.0, 2.0)])
def test_known_shift_gives_our_sign_and_axis_order(dy, dx):
    fixed = blobs(1)
    shift = np.zeros((2, 64, 64), np.float32)
    shift[0], shift[1] = dy, dx
    # moving(x) = fixed(x − shift) ⇒ moving(x + shift) = fixed(x): expect u ≈ (dy, dx).
    moving = warp_image(fixed, -shift)
    u = register(fixed, moving, backend=SimpleITKBackend(iterations=50))
    inner = u[:, 12:-12, 12:-12]
    assert inner[0].mean() == pytest.approx(dy, abs=0.3)
    assert inner[1].mean() == pytest.approx(dx, abs=0.3)
    before = np.abs(moving - fixed)[12:-12, 12:-12].mean()
    after = np.abs(warp_image(moving, u) - fixed)[12:-12, 12:-12].mean()
    assert after < 0.5 * before


def test_register_pairs_shape_and_progress():
    frames = np.stack([blobs(2), blobs(3)])
    calls = []
    u = SimpleITKBackend(iterations=5).register_pairs(
        frames, frames[::-1].copy(), progress=lambda d, t: calls.append((d, t))
    )
    assert u.shape == (2, 2, 64, 64) and u.dtype == np.float32
    assert calls == [(1, 2), (2, 2)]


def test_bad_input_raises_registration_error():
    backend = SimpleITKBackend()
    with pytest.raises(RegistrationError, match="same shape"):
        backend.register_pairs(RNG.random((1, 32, 32)), RNG.random((1, 32, 30)))
    with pytest.raises(RegistrationError, match="constant"):
        backend.register_pairs(np.zeros((1, 32, 32)), RNG.random((1, 32, 32)))
