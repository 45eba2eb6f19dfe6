"""An LV drawn around the atrium is cut back to the mitral plane."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from test_metrics_plausibility import _heart, _lv_around_the_atrium

from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.segmentation.mitral_plane import lv_beyond_mitral_plane, usual_la_direction


def test_only_the_lv_beyond_the_atrium_border_is_cut():
    labels = _heart()
    _lv_around_the_atrium(labels, 6)
    before = frame_plausibility(labels).atrium_enclosed[6]
    cut = lv_beyond_mitral_plane(labels)
    assert np.flatnonzero(cut.any(axis=(1, 2))).tolist() == [6]
    # the LA starts at row 45 (its top is the mitral plane): nothing above it is cut,
    # everything drawn below the LA's middle (row 52) is
    assert np.flatnonzero(cut[6].any(axis=1)).min() > 45
    ring = (labels[6] == 1) & (_heart()[6] != 1)
    assert cut[6][ring & (np.arange(64)[:, None] > 54)].all()
    fixed = labels.copy()
    fixed[cut] = 3
    assert frame_plausibility(fixed).atrium_enclosed[6] < before
    # the ventricle itself is kept
    assert np.count_nonzero(fixed[6] == 1) >= np.count_nonzero(_heart()[6] == 1)


def test_a_plane_that_would_cut_the_ventricle_in_two_is_not_used():
    labels = _heart()
    rows, cols = np.mgrid[0:64, 0:64]
    # frame 6: the LA drawn as a blob in the middle of the cavity, the LV all round it
    labels[6][(labels[6] == 3)] = 0
    labels[6][(rows - 27) ** 2 + (cols - 32) ** 2 <= 9] = 3
    assert frame_plausibility(labels).atrium_enclosed[6] >= 0.5
    lv = np.count_nonzero(labels[6] == 1)
    # the plane through the blob would take the lower half of the LV: left as drawn
    cut = lv_beyond_mitral_plane(labels, margin=0.0)
    assert not cut[6].any() and np.count_nonzero(labels[6] == 1) == lv
    # a trim of what runs past the atrium is still made
    ring = _heart()
    _lv_around_the_atrium(ring, 6)
    assert lv_beyond_mitral_plane(ring)[6].any()


def test_the_usual_direction_comes_from_the_clip_not_the_frame():
    directions = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]] + [[np.nan, np.nan]])
    np.testing.assert_allclose(usual_la_direction(directions), [5, 1] / np.hypot(5, 1))
    assert usual_la_direction(np.full((4, 2), np.nan)) is None
    # a rotated clip is cut along its own axis
    labels = np.rot90(_heart(), k=1, axes=(1, 2)).copy()
    rotated = _heart()
    _lv_around_the_atrium(rotated, 6)
    labels[6] = np.rot90(rotated[6])
    assert np.flatnonzero(lv_beyond_mitral_plane(labels).any(axis=(1, 2))).tolist() == [6]


def test_predict_sequence_tells_how_many_frames_it_cut(monkeypatch):
    import echo_napari.segmentation.inference as inference
    from echo_napari.segmentation.model import UNetConfig, build_model
    from echo_napari.segmentation.weights import SegmentationModel

    drawn = _heart()
    # at end-diastole the LV runs down both sides of the LA (open below: a closed ring
    # would hold the LA as a hole, which hole filling gives to the LV)
    la = drawn[11] == 3
    rows = np.arange(64)[:, None]
    sides = ndimage.binary_dilation(la, iterations=4) & ~la & (rows > 40) & (rows < 56)
    drawn[11][sides] = 1
    # the "network" draws these labels: one-hot probabilities at the frames' own size
    one_hot = (drawn[:, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
    monkeypatch.setattr(inference, "predict_probabilities", lambda *a, **k: one_hot.copy())
    network = build_model(UNetConfig(channels=(4, 4, 8, 8, 8), clip_len=8, size=64)).eval()
    model = SegmentationModel(network=network, card={"name": "seg", "version": "t"})
    frames = np.random.default_rng(0).random(drawn.shape).astype(np.float32)
    tally: dict[str, int] = {}
    labels = inference.predict_sequence(
        frames, model, refine=False, both_directions=False, crop_to_sector=False, tally=tally
    )
    counts = {"cut_at_mitral_plane": 1, "view_lost": 0, "lv_displaced": 0, "apex_restored": 0}
    assert tally == counts
    assert frame_plausibility(labels).plausible_share() == 1.0
    assert inference.postprocess_notes(tally) == ["LV cut back to the mitral plane on 1 frame"]
    notes = inference.postprocess_notes({"view_lost": 3, "lv_displaced": 0})
    assert notes == ["no heart found on 3 frames (left unlabelled)"]
