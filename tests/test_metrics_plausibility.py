"""Reference-free anatomical plausibility of label sequences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics_plausibility import frame_plausibility


def _heart(n: int = 12, size: int = 64) -> np.ndarray:
    """A contracting elliptic LV (1) with a wall (2) and an LA (3) below it."""
    yy, xx = np.mgrid[0:size, 0:size]
    labels = np.zeros((n, size, size), np.uint8)
    for t in range(n):
        s = 1.0 - 0.3 * np.sin(np.pi * t / (n - 1))
        cavity = ((yy - 26) / (16 * s)) ** 2 + ((xx - 32) / (9 * s)) ** 2 <= 1
        wall = ((yy - 26) / (16 * s + 4)) ** 2 + ((xx - 32) / (9 * s + 4)) ** 2 <= 1
        labels[t][wall] = 2
        labels[t][cavity] = 1
        labels[t][((yy - 52) / 7) ** 2 + ((xx - 32) / 9) ** 2 <= 1] = 3
    return labels


def test_a_contracting_ventricle_is_plausible_on_every_frame():
    result = frame_plausibility(_heart())
    assert result.plausible_share() == 1.0
    assert result.score.max() < 0.2


def test_each_check_flags_its_own_frame():
    labels = _heart()
    labels[3][labels[3] == 1] = 2  # cavity lost
    lv = labels[5] == 1
    labels[5][lv & (np.arange(64)[:, None] < 36) & (np.abs(np.arange(64) - 32) < 3)] = 2  # notch
    labels[8] = np.flip(labels[8], axis=0)  # atrium above the ventricle
    result = frame_plausibility(labels)
    assert result.collapse[3] == 1.0 and result.collapse.sum() == 1.0
    assert result.concavity[5] > 0.5 and np.delete(result.concavity, 5).max() < 0.2
    assert result.atrium_side[8] == 1.0 and result.atrium_side.sum() == 1.0
    assert result.plausible_share() == pytest.approx(9 / 12)


def test_unlabelled_frames_and_sequences_are_not_judged():
    labels = _heart()
    labels[4:8] = 0  # not segmented yet
    assert frame_plausibility(labels).score.max() < 0.2
    assert frame_plausibility(np.zeros((5, 16, 16), np.uint8)).score.sum() == 0.0


def test_the_atrium_check_holds_for_any_orientation():
    labels = np.rot90(_heart(), k=1, axes=(1, 2)).copy()
    assert frame_plausibility(labels).atrium_side.sum() == 0.0


def test_bad_shape_is_an_error():
    with pytest.raises(SequenceError, match=r"\(T, H, W\)"):
        frame_plausibility(np.zeros((16, 16), np.uint8))


def test_solidity_from_row_extremes_equals_the_hull_of_every_pixel():
    # The hull is taken over the first and last pixel of each row only (fast enough to
    # rank 128 frames on the GUI thread); it must be the hull of all pixel squares.
    from mask_fixtures import random_ellipses
    from scipy.spatial import ConvexHull

    from echo_napari.metrics_plausibility import _CORNERS, _solidity

    rng = np.random.default_rng(3)
    for trial in range(40):
        mask = random_ellipses(rng, (80, 80), (15, 65), (2, 25))
        if trial % 2:
            mask &= rng.random(mask.shape) > 0.1  # holes and ragged edges
        points = np.argwhere(mask).astype(float)
        hull = ConvexHull((points[:, None, :] + _CORNERS[None]).reshape(-1, 2)).volume
        assert _solidity(mask) == pytest.approx(min(1.0, mask.sum() / hull), abs=1e-12)


def test_frames_where_the_model_found_no_heart_are_view_lost():
    from echo_napari.metrics_plausibility import VIEW_LOST_FRACTION, view_lost_frames

    labels = _heart()
    labels[5] = 0  # probe off: nothing found
    labels[6][labels[6] > 0] = 0
    labels[6, 20:24, 30:34] = 3  # a speck of "atrium"
    lost = view_lost_frames(labels)
    assert np.flatnonzero(lost).tolist() == [5, 6]
    # an end-systolic frame keeps far more than the threshold of the typical heart area
    heart = np.count_nonzero(labels.reshape(12, -1), axis=1)
    assert heart[np.delete(np.arange(12), [5, 6])].min() > 2 * VIEW_LOST_FRACTION * heart.max()
    assert not view_lost_frames(np.zeros((4, 8, 8), np.uint8)).any()


def test_plausible_share_is_over_the_labelled_frames():
    labels = _heart()
    labels[3][labels[3] == 1] = 2  # cavity lost: judged, fails
    labels[7:9] = 0  # unlabelled: not judged
    result = frame_plausibility(labels)
    assert result.plausible_share() == pytest.approx(9 / 10)
    assert result.plausible_share(among=np.ones(12, bool)) == pytest.approx(11 / 12)


def _long_heart(n: int = 40) -> np.ndarray:
    """Two beats of :func:`_heart`, long enough for the displaced check to judge."""
    beat = _heart(n // 2)
    return np.concatenate([beat, beat[::-1]])


def test_an_lv_drawn_over_the_atrium_is_displaced():
    from echo_napari.metrics_place import displaced_lv_frames

    labels = _long_heart()
    for t in (17, 18, 19):  # the atrium taken for the ventricle: labels swapped
        lv, la = labels[t] == 1, labels[t] == 3
        labels[t][lv], labels[t][la] = 3, 1
    result = frame_plausibility(labels)
    assert np.flatnonzero(result.displaced >= 0.5).tolist() == [17, 18, 19]
    assert np.flatnonzero(displaced_lv_frames(labels)).tolist() == [17, 18, 19]
    assert "LV away from where it is on the frames around it" in result.reasons(18)
    # a ventricle that moves a few pixels with the probe stays in place
    shifted = np.roll(_long_heart(), 3, axis=2)
    shifted[20:] = np.roll(shifted[20:], 3, axis=1)
    assert frame_plausibility(shifted).displaced.max() < 0.5


def test_a_few_keyframes_are_not_judged_for_place():
    labels = np.zeros((40, 64, 64), np.uint8)
    heart = _long_heart()
    labels[[0, 19]] = heart[[0, 19]]
    labels[19] = np.roll(labels[19], 20, axis=1)  # far away, but with one neighbour only
    assert frame_plausibility(labels).displaced.sum() == 0.0


def test_coarse_grid_covers_frames_of_any_size():
    from echo_napari.metrics_place import PLACE_GRID, coarse_grid

    for shape in ((600, 800), (112, 112), (20, 50), (7, 7)):
        mask = np.zeros((1, *shape), bool)
        # a speck in the middle row at the right edge, a pixel on small frames (large
        # ones are sampled every few pixels)
        h, w = max(1, shape[0] // 64), max(1, shape[1] // 64)
        mask[0, shape[0] // 2 : shape[0] // 2 + h, -w:] = True
        grid = coarse_grid(mask)
        assert grid.shape == (1, PLACE_GRID, PLACE_GRID)
        assert grid[0, :, -1].any() and grid[0, :, :-1].sum() <= 4 * PLACE_GRID
        assert grid.sum() >= 1


def test_frames_next_to_a_lost_view_stay_lost_while_the_heart_is_small():
    from echo_napari.metrics_plausibility import view_lost_frames

    labels = np.concatenate([_heart(), _heart()])
    labels[8:11] = 0  # the probe leaves the chest
    for t in (11, 12, 20):  # a sliver of a heart: ~0.4 of the typical area
        keep = np.zeros(labels[t].shape, bool)
        keep[: int(0.45 * 64)] = True
        labels[t][~keep] = 0
    heart = np.count_nonzero(labels.reshape(24, -1), axis=1)
    assert 0.3 < heart[11] / np.percentile(heart, 95) < 0.5
    # 11 and 12 follow the lost frames; 20, as small but far from them, is kept
    assert np.flatnonzero(view_lost_frames(labels)).tolist() == [8, 9, 10, 11, 12]
    assert np.flatnonzero(view_lost_frames(labels, extend_fraction=0.0)).tolist() == [8, 9, 10]


def _lv_around_the_atrium(labels: np.ndarray, t: int) -> None:
    """Frame ``t`` of :func:`_heart`: the LV drawn down around the LA as well (the LA's
    sides and bottom), as on an off-axis real frame."""
    la = labels[t] == 3
    around = ndimage.binary_dilation(la, iterations=4) & ~la
    labels[t][around & (np.arange(64)[:, None] > 40)] = 1


def test_an_lv_drawn_around_the_atrium_is_flagged():
    from echo_napari.metrics_plausibility import la_enclosed_share

    labels = _heart()
    # the two chambers meet along the mitral plane only: a small share of the LA's border
    for t in range(12):
        assert la_enclosed_share(labels[t] == 1, labels[t] == 3) < 0.4
    _lv_around_the_atrium(labels, 6)
    assert la_enclosed_share(labels[6] == 1, labels[6] == 3) > 0.8
    result = frame_plausibility(labels)
    assert np.flatnonzero(result.atrium_enclosed >= 0.5).tolist() == [6]
    assert "LV drawn around the LA (over the atrium?)" in result.reasons(6)
    assert result.plausible_share() == pytest.approx(11 / 12)


def test_the_displaced_check_looks_half_a_second_either_side_at_any_frame_rate():
    from echo_napari.metrics_place import PLACE_WINDOW, displaced_lv_frames, place_window

    assert place_window(None) == place_window(20.0) == PLACE_WINDOW  # 50 frames/s
    assert place_window(40.0) == 12  # 25 frames/s: 12.5 frames, rounded to even
    assert place_window(10.0) == 2 * PLACE_WINDOW
    # a clip whose view moves away for 20 frames: at 50 frames/s (0.4 s) the moved frames
    # are the minority within ±25 frames and fail; at 25 frames/s the same 20 frames last
    # 0.8 s, longer than the ±12-frame window, and are a view of their own
    labels = _heart(n=80)
    labels[30:50] = np.roll(labels[30:50], 20, axis=2)
    at_50 = displaced_lv_frames(labels, frame_time_ms=20.0)
    at_25 = displaced_lv_frames(labels, frame_time_ms=40.0)
    assert at_50[30:50].any() and not at_50[:30].any()
    assert not at_25.any()
    np.testing.assert_array_equal(displaced_lv_frames(labels), at_50)


def test_a_flip_of_the_chambers_and_back_is_flagged():
    labels = _heart(n=20)
    assert frame_plausibility(labels).plausible_share() == 1.0
    rows = np.arange(64)[:, None]
    for t in (8, 9):  # the LA drawn into the LV's lower half for 40 ms, then back
        labels[t][(labels[t] == 1) & (rows > 26)] = 3
    result = frame_plausibility(labels)
    assert np.flatnonzero(result.flipped).tolist() == [8, 9]
    assert "LV and LA trade pixels and back within 150 ms (a flip)" in result.reasons(8)
    # at 10 frames/s, 100 ms apart, such steps are within what a heart does
    assert not frame_plausibility(labels, frame_time_ms=100.0).flipped.any()


def test_shape_features_of_a_partly_labelled_stack_are_those_of_each_frame():
    # unlabelled frames are skipped (the blank features), labelled ones measured as alone
    from echo_napari.metrics_plausibility import _FEATURES, shape_features

    ys, xs = np.mgrid[0:64, 0:64]
    stack = np.zeros((6, 64, 64), np.uint8)
    for t in (1, 2, 4):
        stack[t][(ys - 24) ** 2 + (xs - 30 - t) ** 2 <= (10 + t) ** 2] = 1
        stack[t][(ys - 44) ** 2 + (xs - 30) ** 2 <= 36] = 3
    stack[2, 20:28, 10:14] = 2
    whole = shape_features(stack)
    for t in range(6):
        alone = shape_features(stack[t : t + 1])
        for name in _FEATURES:
            np.testing.assert_array_equal(getattr(whole, name)[t], getattr(alone, name)[0])
    assert whole.labelled.tolist() == [False, True, True, False, True, False]


def test_an_lv_drawn_as_a_small_circle_at_the_base_is_shortened():
    from echo_napari.metrics_plausibility import long_axis_px

    labels = _heart()
    yy, xx = np.mgrid[0:64, 0:64]
    labels[6][labels[6] == 1] = 2  # the apical cavity taken for wall …
    labels[6][(yy - 36) ** 2 + (xx - 32) ** 2 <= 7**2] = 1  # … a circle left at the base
    result = frame_plausibility(labels)
    # a third of the end-diastolic area: not collapsed, and convex, but half as long
    assert result.collapse[6] == 0.0 and result.concavity[6] == 0.0
    assert result.shortened[6] == 1.0 and np.delete(result.shortened, 6).max() == 0.0
    assert "LV much shorter" in " ".join(result.reasons(6))
    assert result.plausible_share() == pytest.approx(11 / 12)
    # the contraction itself (long axis down to 0.7 of the end-diastolic) is not flagged
    assert frame_plausibility(_heart()).shortened.max() == 0.0
    rectangle = np.zeros((120, 60), bool)
    rectangle[10:110, 10:50] = True
    assert long_axis_px(rectangle) == pytest.approx(200 / np.sqrt(3), rel=0.01)  # 115


def test_the_long_axis_is_that_of_the_pixel_coordinates_covariance():
    from echo_napari.metrics_plausibility import long_axis_px

    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = rng.random((30, 45)) < rng.random()
        mask[rng.integers(30), rng.integers(45)] = True
        rows, cols = np.nonzero(mask)
        if rows.size < 2:
            continue
        largest = np.linalg.eigvalsh(np.cov(np.stack([rows, cols]).astype(float)))[-1]
        assert long_axis_px(mask) == pytest.approx(4 * np.sqrt(max(largest, 0.0)), rel=1e-9)
    assert long_axis_px(np.zeros((5, 5), bool)) == 0.0


def test_large_frames_are_judged_on_the_check_grid_as_small_ones_are():
    """A heart drawn at 5× the size (a scanner's screen) is measured on its labels shrunk to
    CHECK_SIDE_PX: the same verdicts as on the small frames, where the checks' pixel
    thresholds were chosen (the atrium-enclosed reach is 2 pixels there)."""
    from echo_napari.metrics_plausibility import (
        CHECK_SIDE_PX,
        check_grid,
        long_axis_px,
        shape_features,
    )

    small = _heart(size=64)
    small[4][small[4] == 1] = 2  # a collapsed frame
    lv = small[6] == 1
    cols = np.arange(64)
    small[6][lv & (np.arange(64)[:, None] < 30) & (np.abs(cols - 32) < 3)] = 2  # notched
    big = np.repeat(np.repeat(small, 5, axis=1), 5, axis=2)  # 320 × 320
    assert check_grid(small) is small
    grid = check_grid(big)
    assert grid.shape == (small.shape[0], CHECK_SIDE_PX, CHECK_SIDE_PX)
    assert set(np.unique(grid)) == set(np.unique(big))
    on_small, on_big = frame_plausibility(small), frame_plausibility(big)
    np.testing.assert_array_equal(on_big.score >= 0.5, on_small.score >= 0.5)
    assert (on_small.score >= 0.5).tolist()[4] and (on_small.score >= 0.5).tolist()[6]
    np.testing.assert_allclose(on_big.score, on_small.score, atol=0.15)
    # pixel measures are the grid's: 2.5 grid pixels per small-frame pixel
    features = shape_features(big)
    np.testing.assert_allclose(features.lv_length[0], 2.5 * long_axis_px(small[0] == 1), rtol=0.03)
