"""LV border refinement on the image (echo_napari.segmentation.boundary)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from echo_napari.segmentation.boundary import (
    BoundarySettings,
    chan_vese_stack,
    n_reports,
    refine_cavities,
    refine_lv_boundary,
)
from echo_napari.sequence import LabelClass

LV, MYO, LA = int(LabelClass.LV_CAVITY), int(LabelClass.MYOCARDIUM), int(LabelClass.LA)


def heart(size: int = 112, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One speckled frame (size, size) float32 with a dark elliptic cavity in a bright
    wall and a dark atrium below it, and its true labels (size, size) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cavity = ((yy - 0.42) / 0.24) ** 2 + ((xx - 0.5) / 0.14) ** 2 <= 1
    wall = ((yy - 0.42) / 0.30) ** 2 + ((xx - 0.5) / 0.20) ** 2 <= 1
    atrium = (((yy - 0.80) / 0.10) ** 2 + ((xx - 0.5) / 0.12) ** 2 <= 1) & ~wall
    labels = np.zeros((size, size), np.uint8)
    labels[wall] = MYO
    labels[cavity] = LV
    labels[atrium] = LA
    grey = np.choose(labels, [0.3, 0.06, 0.7, 0.08]).astype(np.float32)
    frame = np.clip(grey * (1 + 0.25 * rng.standard_normal(grey.shape)), 0, 1)
    return frame.astype(np.float32), labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("change", ["eroded", "dilated"])
def test_border_moves_to_the_blood_wall_step(change):
    frame, truth = heart()
    cavity = truth == LV
    op = ndimage.binary_erosion if change == "eroded" else ndimage.binary_dilation
    off = op(cavity, iterations=3)
    labels = truth.copy()
    labels[cavity & ~off] = MYO
    labels[off] = LV
    refined = refine_lv_boundary(frame[None], labels[None])[0]
    assert dice(off, cavity) < 0.9
    assert dice(refined == LV, cavity) > 0.95
    assert dice(refined == LV, cavity) > dice(off, cavity) + 0.05


def test_a_border_on_the_image_step_does_not_move():
    frame, truth = heart(seed=3)
    refined = refine_lv_boundary(frame[None], truth[None])[0]
    assert dice(refined == LV, truth == LV) > 0.97


def test_no_border_in_the_image_leaves_the_cavity_alone():
    _, truth = heart()
    flat = np.full(truth.shape, 0.4, np.float32)
    unsmoothed = BoundarySettings(border_sigma_px=0)
    np.testing.assert_array_equal(
        refine_lv_boundary(flat[None], truth[None], unsmoothed)[0], truth
    )
    # the smoothing alone moves a few pixels of an already smooth border, never the area
    smoothed = refine_lv_boundary(flat[None], truth[None])[0]
    assert (smoothed == LV).sum() == (truth == LV).sum()
    assert dice(smoothed == LV, truth == LV) > 0.99


def _jagged_heart() -> tuple[np.ndarray, np.ndarray]:
    """heart()'s labels with one-pixel spikes out of and notches into the cavity."""
    _, truth = heart(seed=2)
    cavity = truth == LV
    jagged = truth.copy()
    for row in np.flatnonzero(cavity.any(axis=1))[::3]:
        cols = np.flatnonzero(cavity[row])
        jagged[row, cols[-1] + 1 : cols[-1] + 3] = LV
        jagged[row + 1, cols[0] : cols[0] + 2] = MYO
    return truth, jagged


def _perimeter(mask: np.ndarray) -> int:
    return int((mask & ~ndimage.binary_erosion(mask)).sum())


def test_a_jagged_border_comes_out_smooth_at_the_same_area():
    truth, jagged = _jagged_heart()
    flat = np.full(truth.shape, 0.4, np.float32)  # no image border: only the smoothing acts
    out = refine_lv_boundary(flat[None], jagged[None])[0] == LV
    assert out.sum() == (jagged == LV).sum()
    assert _perimeter(out) < 0.85 * _perimeter(jagged == LV)
    # it stays where the network put it, give or take the spikes and notches
    assert not (out & ~ndimage.binary_dilation(jagged == LV, iterations=2)).any()
    assert not (ndimage.binary_erosion(jagged == LV, iterations=2) & ~out).any()


def test_a_larger_frame_is_smoothed_as_much_relative_to_the_heart():
    truth, jagged = _jagged_heart()
    big = np.kron(jagged, np.ones((3, 3), np.uint8))  # a 336-pixel frame, spikes 3 px wide
    flat = np.full(big.shape, 0.4, np.float32)
    out = refine_lv_boundary(flat[None], big[None])[0] == LV
    assert abs(int(out.sum()) - int((big == LV).sum())) < 0.01 * (big == LV).sum()
    assert _perimeter(out) < 0.55 * _perimeter(big == LV)  # 2 px unscaled: 0.61


def test_atrium_never_joins_and_given_up_pixels_take_the_neighbours_label():
    frame, truth = heart(seed=1)
    cavity = truth == LV
    labels = truth.copy()
    grown = ndimage.binary_dilation(cavity, iterations=3) & (truth == MYO)
    labels[grown] = LV  # the network ran 3 px into the wall
    before = labels.copy()
    refined = refine_lv_boundary(frame[None], labels[None])[0]
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert not ((refined == LV) & (truth == LA)).any()
    given_up = (labels == LV) & (refined != LV)
    assert given_up.sum() > 0.5 * grown.sum()
    assert (refined[given_up] == MYO).all()
    assert (refined[truth == LA] == LA).all()


def test_other_frame_sizes_are_refined_on_the_same_grid():
    frame, truth = heart()
    cavity = truth == LV
    off = ndimage.binary_erosion(cavity, iterations=3)
    big_frame = ndimage.zoom(frame, 2, order=1)
    big_off = ndimage.zoom(off.astype(np.uint8), 2, order=0).astype(bool)
    big_truth = ndimage.zoom(cavity.astype(np.uint8), 2, order=0).astype(bool)
    refined = refine_cavities([big_frame], [big_off], [np.zeros_like(big_off)])[0]
    assert refined.shape == big_off.shape
    assert dice(refined, big_truth) > 0.95


def test_tiny_or_absent_cavities_and_progress():
    frame, truth = heart()
    tiny = np.zeros_like(truth)
    tiny[50:53, 50:53] = LV
    frames = np.repeat(frame[None], 40, 0)
    labels = np.zeros((40, *truth.shape), np.uint8)
    labels[1] = tiny
    calls = []
    out = refine_lv_boundary(frames, labels, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(out, labels)
    assert calls == [(1, 2), (2, 2)] and n_reports(40) == 2


def test_settings_limit_how_far_the_border_moves():
    frame, truth = heart()
    cavity = truth == LV
    off = ndimage.binary_erosion(cavity, iterations=4)
    # the band holds the evolution; the smoothing after it is a separate step
    narrow = BoundarySettings(band_px=1, border_sigma_px=0)
    refined = refine_cavities([frame], [off], [truth == LA], narrow)[0]
    assert (refined & ~ndimage.binary_dilation(off, iterations=1)).sum() == 0


def test_stacked_chan_vese_equals_skimage_per_image(monkeypatch):
    from skimage.segmentation import morphological_chan_vese, morphsnakes

    # skimage alternates its two curvature operators through a module-level cycle:
    # start it where a fresh process does.
    fresh = morphsnakes._fcycle(
        [
            lambda u: morphsnakes.sup_inf(morphsnakes.inf_sup(u)),
            lambda u: morphsnakes.inf_sup(morphsnakes.sup_inf(u)),
        ]
    )
    monkeypatch.setattr(morphsnakes, "_curvop", fresh)
    images, levels = [], []
    for seed, size in ((0, (60, 50)), (1, (44, 58)), (2, (52, 52))):
        frame, truth = heart(size=112, seed=seed)
        box = (slice(12, 12 + size[0]), slice(30, 30 + size[1]))
        images.append(ndimage.gaussian_filter(frame[box].astype(np.float64), 1.0))
        levels.append(ndimage.binary_erosion(truth[box] == LV, iterations=2 + seed))
    stacked = chan_vese_stack(images, levels, iterations=10, smoothing=2)
    for image, level, result in zip(images, levels, stacked, strict=True):
        expected = morphological_chan_vese(
            image, 10, init_level_set=level.astype(np.int8), smoothing=2
        ).astype(bool)
        assert result.shape == image.shape
        assert (result != expected).mean() < 0.002


def test_cancel_in_the_first_report_stops_before_the_other_chunks_are_filled(monkeypatch):
    import echo_napari.segmentation.boundary as boundary

    frame, truth = heart()
    frames = np.repeat(frame[None], 70, 0)
    labels = np.repeat(truth[None], 70, 0)
    filled = []
    real_fill = boundary.fill_lv_bites
    monkeypatch.setattr(boundary, "fill_lv_bites", lambda x: filled.append(len(x)) or real_fill(x))

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        refine_lv_boundary(frames, labels, progress=cancel)
    assert filled == [boundary.FRAMES_PER_REPORT]


def test_the_smoothing_keeps_the_refined_area_next_to_the_atrium():
    frame, truth = heart(seed=4)
    cavity = truth == LV
    off = ndimage.binary_erosion(cavity, iterations=3)
    # an atrium over the cavity's dark base, which the evolving border reaches but the
    # cavity may not take: the area kept is counted without it
    rows = np.flatnonzero(cavity.any(axis=1))
    atrium = cavity & ~off
    atrium[: rows[-1] - 3] = False
    plain = refine_cavities([frame], [off], [atrium], BoundarySettings(border_sigma_px=0))[0]
    smooth = refine_cavities([frame], [off], [atrium], BoundarySettings())[0]
    assert plain.sum() > off.sum() and not (smooth & atrium).any()
    assert abs(int(smooth.sum()) - int(plain.sum())) <= 0.005 * plain.sum()
