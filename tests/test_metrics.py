"""Metrics against hand-computed cases and independent implementations (SimpleITK, scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial.distance import cdist

from echo_napari.errors import SequenceError
from echo_napari.metrics import (
    class_areas_mm2,
    contour,
    dice_coefficient,
    frame_metrics,
    mask_metrics,
    sequence_means,
)


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def blob(rng: np.random.Generator, shape=(60, 70), pad=2) -> np.ndarray:
    """A random smooth blob that does not touch the image border."""
    mask = ndimage.gaussian_filter(rng.random(shape), 4) > 0.5
    return np.pad(mask, pad)


def sitk_image(mask: np.ndarray, spacing: tuple[float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing((spacing[1], spacing[0]))  # SimpleITK spacing is (x, y)
    return image


def test_two_discs_dice_and_hausdorff_match_geometry():
    r, d, spacing = 40.0, 10, (0.5, 0.5)
    a = disc((200, 220), 100, 100, r)
    b = disc((200, 220), 100, 100 + d, r)
    m = mask_metrics(a, b, spacing)
    lens = 2 * r * r * np.arccos(d / (2 * r)) - d / 2 * np.sqrt(4 * r * r - d * d)
    assert m.dice == pytest.approx(lens / (np.pi * r * r), abs=0.005)
    # Shifted copies: every contour point is at most the shift away from the other contour.
    assert m.hd == pytest.approx(d * spacing[1], abs=1e-9)
    assert 0 < m.mad < m.hd95 <= m.hd


def test_concentric_discs_distances_are_radius_difference():
    spacing = (0.25, 0.25)
    a = disc((120, 120), 60, 60, 30)
    b = disc((120, 120), 60, 60, 40)
    m = mask_metrics(a, b, spacing)
    assert m.dice == pytest.approx(2 * 30**2 / (30**2 + 40**2), abs=0.01)
    assert m.hd == pytest.approx(10 * 0.25, abs=0.3)
    assert m.mad == pytest.approx(10 * 0.25, abs=0.3)


def test_identical_masks_are_perfect():
    a = disc((50, 50), 25, 25, 12)
    m = mask_metrics(a, a, (0.3, 0.7))
    assert (m.dice, m.hd, m.hd95, m.mad) == (1.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_simpleitk_filters_with_anisotropic_spacing(seed):
    rng = np.random.default_rng(seed)
    spacing = (0.3, 0.5)
    a, b = blob(rng), blob(rng)
    ours = mask_metrics(a, b, spacing)

    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(sitk_image(a, spacing), sitk_image(b, spacing))
    assert ours.dice == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)

    # ITK's 4-connected label contour equals ours for masks off the image border.
    contour_filter = sitk.LabelContourImageFilter()
    contour_filter.SetFullyConnected(False)
    ca = contour_filter.Execute(sitk_image(a, spacing))
    cb = contour_filter.Execute(sitk_image(b, spacing))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ca) > 0, contour(a))
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(ca, cb)
    assert ours.hd == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-9)
    assert ours.mad == pytest.approx(hausdorff.GetAverageHausdorffDistance(), rel=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_against_brute_force_point_distances(seed):
    rng = np.random.default_rng(seed)
    spacing = (0.2, 0.45)
    a, b = blob(rng, (40, 50)), blob(rng, (40, 50))
    pa = np.argwhere(contour(a)) * spacing
    pb = np.argwhere(contour(b)) * spacing
    dist = cdist(pa, pb)
    d_ab, d_ba = dist.min(axis=1), dist.min(axis=0)
    m = mask_metrics(a, b, spacing)
    assert m.hd == pytest.approx(max(d_ab.max(), d_ba.max()))
    assert m.hd95 == pytest.approx(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
    assert m.mad == pytest.approx((d_ab.mean() + d_ba.mean()) / 2)


def test_spacing_none_gives_pixel_units_and_bad_spacing_raises():
    a = disc((60, 60), 30, 30, 10)
    b = disc((60, 60), 30, 34, 10)
    assert mask_metrics(a, b, None).hd == pytest.approx(4.0)
    assert mask_metrics(a, b, (2.0, 2.0)).hd == pytest.approx(8.0)
    with pytest.raises(SequenceError, match="spacing"):
        mask_metrics(a, b, (0.0, 1.0))


def test_empty_mask_conventions():
    empty = np.zeros((20, 20), bool)
    full = disc((20, 20), 10, 10, 5)
    both = mask_metrics(empty, empty, (1, 1))
    assert all(np.isnan([both.dice, both.hd, both.hd95, both.mad]))
    one = mask_metrics(full, empty, (1, 1))
    assert one.dice == 0.0 and np.isinf(one.hd) and np.isinf(one.mad)
    assert np.isnan(dice_coefficient(empty, empty))


def test_frame_table_and_sequence_means_handle_missed_and_absent_frames():
    t, shape = 4, (40, 40)
    ref = np.zeros((t, *shape), np.uint8)
    pred = np.zeros_like(ref)
    for i in range(t):
        ref[i][disc(shape, 20, 20, 8)] = 1
        pred[i][disc(shape, 20, 21, 8)] = 1
    pred[3] = 0  # the prediction misses the LV in the last frame
    table = frame_metrics(pred, ref, (0.5, 0.5), classes=(1, 3))
    assert len(table) == 2 * t
    means = sequence_means(table)
    lv = table[table["class"] == "lv"]
    assert means.loc["lv", "dice"] == pytest.approx(lv["dice"].iloc[:3].sum() / 4)
    assert means.loc["lv", "hd"] == pytest.approx(0.5)
    assert means.loc["lv", "missed"] == 1 and means.loc["lv", "frames"] == 4
    # LA is absent in both: not applicable, not a perfect score.
    assert means.loc["la", "frames"] == 0 and np.isnan(means.loc["la", "dice"])


def test_frame_metrics_rejects_shape_mismatch():
    with pytest.raises(SequenceError, match="same shape"):
        frame_metrics(np.zeros((2, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8), None)


def test_class_areas_mm2_counts_pixels_times_pixel_area():
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[0, :2, :5] = 1
    labels[1, :4, :5] = 3
    areas = class_areas_mm2(labels, (0.5, 0.2))
    assert areas[0, 1] == pytest.approx(10 * 0.1)
    assert areas[1, 3] == pytest.approx(20 * 0.1)
    assert class_areas_mm2(labels[0], None)[1] == 10


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    shift=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
    spacing=st.tuples(st.floats(0.1, 2.0), st.floats(0.1, 2.0)),
)
def test_metric_invariants(seeds, shift, spacing):
    """Symmetry, ordering and translation invariance on random blob pairs."""
    a = blob(np.random.default_rng(seeds[0]), (30, 30), pad=4)
    b = blob(np.random.default_rng(seeds[1]), (30, 30), pad=4)
    if not a.any() or not b.any():
        return
    ab, ba = mask_metrics(a, b, spacing), mask_metrics(b, a, spacing)
    assert ab.dice == pytest.approx(ba.dice) and ab.hd == pytest.approx(ba.hd)
    assert ab.mad == pytest.approx(ba.mad) and ab.hd95 == pytest.approx(ba.hd95)
    assert 0 <= ab.dice <= 1 and 0 <= ab.hd95 <= ab.hd and 0 <= ab.mad <= ab.hd
    moved = mask_metrics(np.roll(a, shift, (0, 1)), np.roll(b, shift, (0, 1)), spacing)
    assert moved.hd == pytest.approx(ab.hd) and moved.dice == pytest.approx(ab.dice)
