"""Large frames post-processed on the network's grid, labels at the frames' size."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.segmentation.work_grid import frames_on_grid, labels_to_shape, work_shape


def test_only_frames_larger_than_the_grid_use_it():
    assert work_shape((112, 112), (112, 112)) is None
    assert work_shape((100, 80), (112, 112)) is None
    assert work_shape((448, 448), (112, 112)) == (112, 112)
    assert work_shape((112, 300), (112, 112)) == (112, 112)


def test_labels_come_back_at_the_frames_size_with_the_same_shapes():
    yy, xx = np.mgrid[0:112, 0:112]
    small = np.zeros((3, 112, 112), np.uint8)
    small[:, (yy - 40) ** 2 / 30**2 + (xx - 56) ** 2 / 18**2 <= 1] = 1
    small[:, (yy - 88) ** 2 + (xx - 56) ** 2 <= 12**2] = 3
    small[1] = 0  # an empty frame stays empty
    large = labels_to_shape(small, (448, 448))
    assert large.shape == (3, 448, 448) and large.dtype == np.uint8
    assert not large[1].any()
    for c in (1, 3):  # areas scale with the square of the size, centroids with the size
        assert (large[0] == c).sum() == pytest.approx(16 * (small[0] == c).sum(), rel=0.02)
        centre_small = np.argwhere(small[0] == c).mean(0)
        centre_large = np.argwhere(large[0] == c).mean(0)
        np.testing.assert_allclose((centre_large + 0.5) / 4 - 0.5, centre_small, atol=0.1)
    # the border is smooth: fewer steps than nearest-neighbour enlargement draws
    nearest = np.kron(small[0], np.ones((4, 4), np.uint8))

    def border_turns(mask):
        rows = np.flatnonzero(mask.any(axis=1))
        left = np.array([np.argmax(mask[r]) for r in rows])
        return np.count_nonzero(np.diff(left))

    assert border_turns(large[0] == 1) > 1.5 * border_turns(nearest == 1)


def test_frames_are_resized_as_the_network_sees_them_lazy_or_not():
    import dask.array as da

    rng = np.random.default_rng(0)
    frames = rng.random((20, 224, 336), dtype=np.float32)
    small = frames_on_grid(frames, (112, 112))
    assert small.shape == (20, 112, 112) and small.dtype == np.float32
    np.testing.assert_allclose(small, frames_on_grid(da.from_array(frames, chunks=5), (112, 112)))
    # anti-aliased: the speckle averages out instead of aliasing
    assert small.std() < 0.6 * frames.std()
    assert small.mean() == pytest.approx(frames.mean(), abs=0.01)
