"""Per-frame mask operations and the cavity-bite filling of predictions."""

from __future__ import annotations

import numpy as np
from mask_fixtures import random_ellipses
from skimage.morphology import convex_hull_image

from echo_napari.segmentation.boundary import fill_lv_bites
from echo_napari.segmentation.masks import convex_hull_per_frame, smooth_at_constant_area
from echo_napari.sequence import LabelClass


def test_convex_hull_per_frame_is_skimages_convex_hull_image():
    rng = np.random.default_rng(5)
    for _ in range(60):
        mask = random_ellipses(rng, (50, 64), (5, 45), (1, 18))
        if not mask.any():
            continue
        np.testing.assert_array_equal(
            convex_hull_per_frame(mask[None])[0], convex_hull_image(mask)
        )


def test_convex_hull_of_a_line_and_of_empty_frames():
    mask = np.zeros((3, 20, 20), bool)
    mask[0, 5, 2:15] = True  # one row: its own hull
    mask[1, 3, 3] = mask[1, 15, 15] = True  # two points: the segment between them
    hull = convex_hull_per_frame(mask)
    np.testing.assert_array_equal(hull[0], mask[0])
    assert hull[1].sum() >= 2 and not hull[2].any()


def _ventricle_with_a_bite() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:64, 0:64]
    cavity = ((yy - 28) / 20) ** 2 + ((xx - 32) / 11) ** 2 <= 1
    wall = (((yy - 28) / 24) ** 2 + ((xx - 32) / 15) ** 2 <= 1) & ~cavity
    labels = np.zeros((2, 64, 64), np.uint8)
    labels[:, wall] = LabelClass.MYOCARDIUM
    labels[:, cavity] = LabelClass.LV_CAVITY
    labels[:, 52:60, 24:40] = LabelClass.LA
    bite = cavity & (yy > 34) & (xx > 34)
    labels[0][bite] = LabelClass.BACKGROUND  # blood the network left out at the base
    return labels, bite


def test_background_bitten_out_of_the_cavity_becomes_cavity():
    labels, bite = _ventricle_with_a_bite()
    out = fill_lv_bites(labels)
    # filled up to the chord across it: the hull of what the network left of the cavity
    filled = bite & (out[0] == LabelClass.LV_CAVITY)
    chord = convex_hull_image(labels[0] == LabelClass.LV_CAVITY) & bite
    np.testing.assert_array_equal(filled, chord)
    np.testing.assert_array_equal(out[1], labels[1])  # a convex cavity is left as it was
    # wall and atrium keep their labels, and so does background outside the cavity
    changed = out != labels
    assert (labels[changed] == LabelClass.BACKGROUND).all() and not (changed[0] & ~bite).any()


def test_a_wall_cut_into_the_cavity_stays_wall():
    labels, _ = _ventricle_with_a_bite()
    labels[1, 10:30, 30:34] = LabelClass.MYOCARDIUM  # wall drawn into the cavity
    out = fill_lv_bites(labels)
    assert (out[1, 10:30, 30:34] == LabelClass.MYOCARDIUM).all()


def test_the_border_refinement_starts_from_the_cavity_with_its_bites_filled():
    from echo_napari.segmentation.boundary import refine_lv_boundary

    labels, bite = _ventricle_with_a_bite()
    image = np.where(labels[1] == LabelClass.LV_CAVITY, 0.1, 0.4)  # blood dark, bite too
    image[labels[1] == LabelClass.MYOCARDIUM] = 0.8
    frames = np.repeat(image[None].astype(np.float32), 2, axis=0)
    refined = refine_lv_boundary(frames, labels)
    assert (refined[0][bite] == LabelClass.LV_CAVITY).mean() > 0.5


def test_smoothing_at_constant_area_removes_a_spike_and_a_notch():
    yy, xx = np.mgrid[0:64, 0:64]
    disk = (yy - 32) ** 2 + (xx - 32) ** 2 <= 15**2
    rough = disk.copy()
    rough[30:33, 47:52] = True  # a spike 3 px wide
    rough[14:19, 31:34] = False  # a notch 3 px wide
    smooth = smooth_at_constant_area(rough, 2.0)
    assert smooth.sum() == rough.sum()
    assert not smooth[31, 50] and smooth[18, 32]
    assert (smooth ^ disk).sum() < (rough ^ disk).sum()
    np.testing.assert_array_equal(smooth_at_constant_area(rough, 0), rough)


def test_smoothing_keeps_the_border_shared_with_the_kept_out_pixels():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 10:30] = True  # a cavity whose lower side meets the atrium ...
    atrium = np.zeros_like(mask)
    atrium[25:35, 10:30] = True  # ... along row 24/25
    smooth = smooth_at_constant_area(mask, 2.0, kept_out=atrium)
    assert not (smooth & atrium).any()
    assert smooth.sum() == mask.sum()
    assert smooth[24, 12:28].all()  # the shared side stays where it was (corners round)
    assert not smooth[5, 10] and not smooth[5, 29]  # the free corners do round


def test_the_stack_operations_equal_scipy_frame_by_frame_wherever_the_pixels_lie():
    # The stack functions label only the box around the set pixels; a frame-by-frame
    # scipy reference over the whole frame must agree, pixels near an edge or not.
    from scipy import ndimage

    from echo_napari.segmentation.masks import (
        components_near_per_frame,
        fill_holes_per_frame,
        label_per_frame,
        largest_component_per_frame,
    )

    cross = ndimage.generate_binary_structure(2, 1)
    rng = np.random.default_rng(7)
    for _ in range(60):
        t, h, w = (int(n) for n in rng.integers([1, 3, 3], [4, 24, 24]))
        mask = rng.random((t, h, w)) < rng.uniform(0.1, 0.8)
        top, left = (int(n) for n in rng.integers(0, [h, w]))
        mask[:, :top] = False
        mask[:, :, :left] = False
        anchor = rng.random((t, h, w)) < 0.03
        reach = int(rng.integers(1, 4))
        labels, n = label_per_frame(mask)
        assert n == sum(ndimage.label(m, cross)[1] for m in mask)
        assert labels.shape == mask.shape and ((labels > 0) == mask).all()
        for f in range(t):
            assert np.array_equal(
                fill_holes_per_frame(mask)[f], ndimage.binary_fill_holes(mask[f], cross)
            )
            parts, k = ndimage.label(mask[f], cross)
            if k:
                sizes = np.bincount(parts.ravel())[1:]
                assert np.array_equal(
                    largest_component_per_frame(mask)[f], parts == 1 + int(np.argmax(sizes))
                )
            near = ndimage.binary_dilation(anchor[f], cross, iterations=reach)
            kept = np.isin(parts, np.unique(parts[near & mask[f]])) & mask[f]
            assert np.array_equal(components_near_per_frame(mask, anchor, reach)[f], kept)
