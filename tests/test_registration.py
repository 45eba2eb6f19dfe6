"""Registration core: B-spline transformer, losses, warping, backends, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from echo_napari.errors import RegistrationError
from echo_napari.registration import (
    DirnetBackend,
    available_backends,
    compose,
    get_backend,
    register,
    spatial,
    warp_image,
    warp_labels,
)
from echo_napari.registration.dirnet import DirNet, DirNetConfig
from echo_napari.registration.losses import bending_energy, global_ncc, local_ncc

torch.set_num_threads(1)


def smooth_image(seed: int = 0, size: int = 64) -> np.ndarray:
    """A smooth random image in [0, 1] with features at several scales."""
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random((size, size)), 3.0)
    image += 0.5 * ndimage.gaussian_filter(rng.random((size, size)), 1.5)
    image -= image.min()
    return (image / image.max()).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_backend() -> DirnetBackend:
    """Untrained (identity) DIRNet at 32×32 with grid spacing 4: fast."""
    torch.manual_seed(0)
    model = DirNet(DirNetConfig(size=32, grid_spacing=4, kernels=(4, 8), output_scale=1.0))
    return DirnetBackend(model=model, device="cpu")


# -- B-spline transformer ------------------------------------------------------------
def test_bspline_kernel_is_a_partition_of_unity():
    params = torch.full((1, 2, 11, 11), 2.5)
    field = spatial.control_points_to_field(params, 8, (64, 64))
    assert field.shape == (1, 2, 64, 64)
    torch.testing.assert_close(field, torch.full_like(field, 2.5))


def test_bspline_reproduces_linear_fields():
    # Cubic B-splines reproduce polynomials up to degree 1 exactly: control points placed
    # on a linear function at their positions (g-1)·s - 0.5 give that linear field.
    s, size = 8, (64, 64)
    gy, gx = spatial.control_grid_shape(size, s)
    pos_y = (torch.arange(gy) - 1.0) * s - 0.5
    pos_x = (torch.arange(gx) - 1.0) * s - 0.5
    params = torch.zeros(1, 2, gy, gx)
    params[0, 0] = 0.1 * pos_y[:, None] + 0.0 * pos_x[None, :]
    params[0, 1] = -0.05 * pos_x[None, :] + 0.02 * pos_y[:, None]
    field = spatial.control_points_to_field(params, s, size)[0]
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    torch.testing.assert_close(field[0], 0.1 * ys, atol=1e-4, rtol=0)
    torch.testing.assert_close(field[1], -0.05 * xs + 0.02 * ys, atol=1e-4, rtol=0)


@pytest.mark.parametrize("normalize", [False, True])
def test_untrained_dirnet_is_identity(normalize):
    net = DirNet(DirNetConfig(size=32, grid_spacing=4, kernels=(4, 8), normalize_input=normalize))
    x = torch.rand(2, 1, 32, 32)
    assert torch.count_nonzero(net(x, x.flip(-1))) == 0


def test_dirnet_rejects_wrong_size():
    net = DirNet(DirNetConfig(size=32, grid_spacing=4, kernels=(4, 8)))
    with pytest.raises(ValueError, match="must be"):
        net(torch.rand(1, 1, 30, 30), torch.rand(1, 1, 30, 30))


def test_config_round_trip_and_validation():
    config = DirNetConfig(size=64, grid_spacing=8, kernels=(8, 16, 16))
    assert DirNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        DirNetConfig(size=64, grid_spacing=6, kernels=(8, 8))
    with pytest.raises(ValueError):
        DirNetConfig(size=64, grid_spacing=8, kernels=(8, 8))
    with pytest.raises(ValueError, match="odd"):
        DirNetConfig(size=64, grid_spacing=8, kernels=(8, 8, 8), head_kernel_size=2)
    # Cards written before head_kernel_size existed rebuild the paper's 1x1 layers.
    old = {k: v for k, v in config.to_dict().items() if k != "head_kernel_size"}
    assert DirNetConfig.from_dict(old).head_kernel_size == 1


def test_widening_the_grid_layers_keeps_the_field():
    torch.manual_seed(0)
    net = DirNet(DirNetConfig(size=32, grid_spacing=4, kernels=(4, 8)))
    for param in net.parameters():  # a non-trivial net (the head starts at zero)
        torch.nn.init.normal_(param, std=0.1)
    wider = net.with_head_kernel(3)
    assert wider.config.head_kernel_size == 3
    assert sum(p.numel() for p in wider.parameters()) > sum(p.numel() for p in net.parameters())
    fixed, moving = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before, after = net(fixed, moving), wider(fixed, moving)
    assert before.abs().max() > 1e-3
    assert torch.allclose(before, after, atol=1e-5)


# -- losses ---------------------------------------------------------------------------
def test_bending_energy_of_affine_field_is_zero():
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(24.0), indexing="ij")
    u = torch.stack([0.3 * ys - 0.1 * xs + 2, 0.05 * xs + 0.2 * ys - 1])[None]
    assert float(bending_energy(u)) == pytest.approx(0.0, abs=1e-10)


def test_bending_energy_of_quadratic_field_is_exact():
    # u_y = a·x²: ∂²u_y/∂x² = 2a everywhere, other second derivatives 0 → energy 4a².
    axis = torch.arange(16.0, dtype=torch.float64)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    a = 0.01
    u = torch.stack([a * xs**2, torch.zeros_like(xs)])[None]
    assert float(bending_energy(u)) == pytest.approx(4 * a**2, rel=1e-9)
    # u_x = b·x·y: mixed derivative b → energy 2b².
    b = 0.03
    u = torch.stack([torch.zeros_like(xs), b * xs * ys])[None]
    assert float(bending_energy(u)) == pytest.approx(2 * b**2, rel=1e-9)


def test_ncc_is_per_pair():
    a = torch.rand(1, 1, 32, 32)
    bright = torch.rand(1, 1, 32, 32) * 100  # a high-contrast unrelated pair
    both = global_ncc(torch.cat([a, bright]), torch.cat([a, bright.flip(-1)]))
    assert both.shape == (2,)
    assert float(both[0]) == pytest.approx(1.0, abs=1e-5)
    local = local_ncc(torch.cat([a, bright]), torch.cat([a, bright]))
    assert torch.all(local > 0.99)


# -- warping / composition -------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.integers(0, 10_000))
def test_zero_field_warp_is_identity(h, w, seed):
    image = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    np.testing.assert_allclose(
        warp_image(image, np.zeros((2, h, w), np.float32)), image, atol=1e-5
    )


def test_integer_shift_warp_matches_roll():
    image = smooth_image(1)
    u = np.zeros((2, 64, 64), np.float32)
    u[0], u[1] = 3.0, -2.0  # pull: output(y, x) = image(y + 3, x - 2)
    warped = warp_image(image, u)
    np.testing.assert_allclose(warped[5:50, 10:60], image[8:53, 8:58], atol=1e-5)


def test_composed_warp_matches_sequential_warp():
    rng = np.random.default_rng(2)
    params = torch.from_numpy(rng.normal(0, 1.5, (2, 2, 11, 11)).astype(np.float32))
    fields = spatial.control_points_to_field(params, 8, (64, 64)).numpy()
    image = smooth_image(3)
    sequential = warp_image(warp_image(image, fields[0]), fields[1])
    once = warp_image(image, compose(fields[0], fields[1]))
    naive = warp_image(image, fields[0] + fields[1])
    inner = (slice(8, -8), slice(8, -8))
    error = np.abs(sequential - once)[inner].mean()
    # The residual is the extra interpolation blur of warping twice; adding fields is wrong.
    assert error < 0.005
    assert error < 0.75 * np.abs(sequential - naive)[inner].mean()


def test_compose_of_affine_fields_is_exact():
    ys, xs = np.meshgrid(np.arange(40.0), np.arange(40.0), indexing="ij")
    a = np.array([[0.05, -0.02], [0.03, 0.04]])
    b = np.array([[-0.03, 0.01], [0.02, -0.05]])
    u1 = np.stack([a[0, 0] * ys + a[0, 1] * xs + 1.0, a[1, 0] * ys + a[1, 1] * xs - 0.5])
    u2 = np.stack([b[0, 0] * ys + b[0, 1] * xs - 0.7, b[1, 0] * ys + b[1, 1] * xs + 0.3])
    # compose(u1, u2)(x) = u2(x) + u1(x + u2(x)), affine in x.
    py, px = ys + u2[0], xs + u2[1]
    expected = u2 + np.stack(
        [a[0, 0] * py + a[0, 1] * px + 1.0, a[1, 0] * py + a[1, 1] * px - 0.5]
    )
    got = compose(u1.astype(np.float32), u2.astype(np.float32))
    np.testing.assert_allclose(got[:, 5:-5, 5:-5], expected[:, 5:-5, 5:-5], atol=1e-4)


def test_warp_labels_uses_distances_not_nearest():
    labels = np.zeros((48, 48), np.uint8)
    labels[10:30, 12:36] = 1
    labels[30:38, 12:36] = 2
    u = np.zeros((2, 48, 48), np.float32)
    u[0] = -4.0
    warped = warp_labels(labels, u)
    assert warped.dtype == np.uint8
    np.testing.assert_array_equal(warped[14:34, 12:36], labels[10:30, 12:36])
    assert set(np.unique(warped)) == {0, 1, 2}
    np.testing.assert_array_equal(warp_labels(labels, np.zeros_like(u)), labels)


# -- backends ---------------------------------------------------------------------------
def test_refinement_keeps_identical_frames_aligned(tiny_backend):
    image = smooth_image(4)
    u = tiny_backend.register_pairs(image[None], image[None], refine_steps=30)
    assert np.abs(u).max() < 0.05


def test_known_translation_recovered_by_instance_optimisation(tiny_backend):
    image = smooth_image(5)
    shift = np.zeros((2, 64, 64), np.float32)
    shift[0], shift[1] = 1.5, -1.0
    moving = warp_image(image, -shift)  # moving(x) ≈ image(x - shift) → u ≈ +shift
    u = register(image, moving, backend=tiny_backend, refine_steps=150)
    inner = u[:, 16:-16, 16:-16]
    assert inner[0].mean() == pytest.approx(1.5, abs=0.3)
    assert inner[1].mean() == pytest.approx(-1.0, abs=0.3)


def test_bundled_dirnet_gives_near_zero_field_for_identical_frames():
    simulation = pytest.importorskip("echo_napari.simulation")
    frame = simulation.simulate_sequence(simulation.seeds("test", 1)[0]).sequence.frames_array()[5]
    u = register(frame, frame)
    assert u.shape == (2, *frame.shape)
    assert np.abs(u).mean() < 0.15 and np.abs(u).max() < 0.5  # measured 0.06 / 0.23 px


def test_backend_discovery():
    backends = available_backends()
    assert "dirnet" in backends
    with pytest.raises(RegistrationError, match="unknown registration backend"):
        get_backend("no-such-backend")


def test_field_is_rescaled_to_frame_size(tiny_backend):
    # A 96×64 frame through the 32×32 network: the field comes back at 96×64.
    image = np.random.default_rng(6).random((96, 64)).astype(np.float32)
    u = tiny_backend.register_pairs(image[None], image[None])
    assert u.shape == (1, 2, 96, 64) and u.dtype == np.float32


def test_resize_field_rescales_displacements():
    u = torch.ones(1, 2, 33, 17)
    out = spatial.resize_field(u, (65, 33))
    torch.testing.assert_close(out[0, 0], torch.full((65, 33), 2.0))
    torch.testing.assert_close(out[0, 1], torch.full((65, 33), 2.0))


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixed", "moving", "message"),
    [
        (np.zeros((2, 32, 32), np.float32), np.zeros((2, 32, 32), np.float32), "constant"),
        (np.ones((1, 32, 32), np.float32), np.ones((1, 30, 32), np.float32), "same shape"),
        (np.full((1, 32, 32), np.nan, np.float32), np.ones((1, 32, 32), np.float32), "NaN"),
        (np.ones((1, 32, 32), np.uint8), np.ones((1, 32, 32), np.uint8), "integer"),
        (np.ones((32, 32), np.float32), np.ones((32, 32), np.float32), r"\(N, H, W\)"),
        (np.array([["a"]]), np.array([["a"]]), "dtype"),
    ],
)
def test_bad_pairs_raise_registration_error(tiny_backend, fixed, moving, message):
    with pytest.raises(RegistrationError, match=message):
        tiny_backend.register_pairs(fixed, moving)


def test_register_rejects_refinement_for_other_backends():
    class Other:
        name = "other"

        def register_pairs(self, fixed, moving, progress=None):
            return np.zeros((fixed.shape[0], 2, *fixed.shape[1:]), np.float32)

    image = smooth_image(7)
    with pytest.raises(RegistrationError, match="refine_steps"):
        register(image, image, backend=Other(), refine_steps=3)
    assert register(image, image, backend=Other()).shape == (2, 64, 64)


def test_bad_fields_raise():
    with pytest.raises(RegistrationError, match=r"\(\.\.\., 2, H, W\)"):
        warp_image(np.zeros((8, 8), np.float32), np.zeros((3, 8, 8), np.float32))
    with pytest.raises(RegistrationError, match="NaN"):
        compose(np.full((2, 8, 8), np.nan, np.float32), np.zeros((2, 8, 8), np.float32))
    with pytest.raises(RegistrationError, match="does not match"):
        warp_image(np.zeros((8, 9), np.float32), np.zeros((2, 8, 8), np.float32))
