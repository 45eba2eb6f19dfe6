"""The LV piece kept on each frame is the one where the LV is on the frames around it."""

from __future__ import annotations

import numpy as np

from echo_napari.segmentation.inference import drop_misplaced_lv, postprocess_labels
from echo_napari.segmentation.lv_continuity import atrium_pieces_in_lv_place, misplaced_lv_pieces
from echo_napari.sequence import LabelClass

LV, LA = int(LabelClass.LV_CAVITY), int(LabelClass.LA)


def _sequence(n_frames: int = 60, atrium_frames: range = range(20, 26)) -> np.ndarray:
    """A 6 x 10 px LV at the apex on every frame; on ``atrium_frames`` a larger 14 x 14 px
    "LV" piece over the atrium below it, as the network draws on a foreshortened view."""
    labels = np.zeros((n_frames, 64, 64), np.uint8)
    labels[:, 8:14, 27:37] = LV
    for t in atrium_frames:
        labels[t, 30:44, 25:39] = LV
    return labels


def test_the_atrium_piece_is_dropped_and_the_apical_cavity_kept():
    labels = _sequence()
    dropped = misplaced_lv_pieces(labels)
    assert set(np.flatnonzero(dropped.any(axis=(1, 2)))) == set(range(20, 26))
    assert dropped[22, 30:44, 25:39].all() and not dropped[22, 8:14, 27:37].any()
    # the largest-piece rule alone keeps the atrium on those frames
    assert (postprocess_labels(labels)[22, 8:14, 27:37] == 0).all()


def test_dropped_pixels_take_the_likelier_of_background_and_atrium():
    labels = _sequence()
    probs = np.zeros((labels.shape[0], 4, 64, 64), np.float32)
    probs[:, 0] = 1.0
    for cls in (LV, LA):
        probs[:, 0][labels == cls] = 0.0
        probs[:, cls][labels == cls] = 0.6
    probs[20:26, LA, 30:44, 25:39] = 0.3  # second to the LV, above background
    out = postprocess_labels(drop_misplaced_lv(labels, probs))
    assert (out[22, 30:44, 25:39] == LA).all()
    assert (out[22, 8:14, 27:37] == LV).all()
    assert np.array_equal(out[:20], postprocess_labels(labels)[:20])


def test_a_lone_piece_is_kept_even_where_the_lv_seldom_is():
    labels = _sequence(atrium_frames=range(0))
    labels[30, 8:14, 27:37] = 0
    labels[30, 30:44, 25:39] = LV  # the only piece: the LV moved, not a second chamber
    assert not misplaced_lv_pieces(labels).any()


def test_a_larger_piece_where_the_lv_usually_is_is_kept():
    labels = _sequence(atrium_frames=range(0, 60))  # both pieces on every frame
    assert not misplaced_lv_pieces(labels).any()


def test_a_ventricle_that_moves_for_good_keeps_its_place_after_the_window():
    labels = np.zeros((120, 64, 64), np.uint8)
    labels[:60, 8:14, 27:37] = LV
    labels[60:, 30:44, 25:39] = LV
    labels[60:, 8:10, 30:32] = LV  # a speck left where the LV used to be
    dropped = misplaced_lv_pieces(labels, window=10)
    assert not dropped.any()


def _ventricle_and_atrium(n_frames: int = 40) -> np.ndarray:
    """A 20 x 14 px LV above a 10 x 12 px LA below its valve, on every frame."""
    labels = np.zeros((n_frames, 64, 64), np.uint8)
    labels[:, 8:28, 25:39] = LV
    labels[:, 30:40, 26:38] = LA
    return labels


def test_an_atrium_blob_inside_the_ventricle_becomes_ventricle():
    labels = _ventricle_and_atrium()
    labels[18:21, 12:28, 28:39] = LA  # the network's "atrium" inside the LV, larger
    moved = atrium_pieces_in_lv_place(labels)
    assert set(np.flatnonzero(moved.any(axis=(1, 2)))) == {18, 19, 20}
    assert moved[19, 12:28, 28:39].all() and not moved[19, 30:40, 26:38].any()
    # the largest-piece rule alone keeps the blob and drops the real atrium
    assert (postprocess_labels(labels)[19, 30:40, 26:38] == 0).all()
    assert not atrium_pieces_in_lv_place(_ventricle_and_atrium()).any()


def test_a_frames_only_atrium_piece_is_never_taken():
    labels = _ventricle_and_atrium()
    labels[18:21, 30:40, 26:38] = 0  # no atrium below the valve on these frames
    labels[18:21, 12:28, 28:39] = LA
    assert not atrium_pieces_in_lv_place(labels).any()
