"""Shape features remembered by frame content (undo/redo of large frames)."""

from __future__ import annotations

import numpy as np
from conftest import make_sequence

from echo_napari.metrics_plausibility import _FEATURES, grid_shape_features, shape_features
from echo_napari.review_session import ReviewSession
from echo_napari.shape_memo import ShapeMemo, frame_digests


def _assert_same(a, b):
    for name in _FEATURES:  # every feature the checks read (the grid: also below)
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_memo_gives_the_computed_features_and_finds_frames_again():
    labels = make_sequence(n_frames=12, size=40).labels
    memo = ShapeMemo()
    first, found = memo.features(labels)
    assert found == 0 and len(memo) == len(set(frame_digests(labels)))
    _assert_same(first, shape_features(labels))
    # the same frames in another order, one of them edited: only that one is new
    edited = labels[::-1].copy()
    edited[3, :6, :6] = 1
    again, found = memo.features(edited)
    assert found == 11
    _assert_same(again, shape_features(edited))


def test_memo_forgets_the_least_recently_used_frames():
    labels = make_sequence(n_frames=8, size=32).labels
    memo = ShapeMemo(capacity=4)
    memo.features(labels[:4])
    memo.features(labels[:1])  # frame 0 used again: kept
    memo.features(labels[4:7])
    assert len(memo) == 4
    assert memo.features(labels[:1])[1] == 1
    assert memo.features(labels[1:2])[1] == 0


def test_digests_tell_frame_sizes_apart():
    a = np.zeros((1, 4, 8), np.uint8)
    b = np.zeros((1, 8, 4), np.uint8)
    assert frame_digests(a) != frame_digests(b)


def test_undo_of_every_frame_finds_the_features_again(monkeypatch):
    from echo_napari import shape_memo

    computed = []

    def counting(grid, labelled, *args, **kwargs):
        computed.append(len(grid))
        return grid_shape_features(grid, labelled, *args, **kwargs)

    monkeypatch.setattr(shape_memo, "grid_shape_features", counting)
    seq = make_sequence(n_frames=16, size=40)
    session = ReviewSession(seq)
    session.suspicion_scores()  # the review scores every frame once
    before = session._current_shapes().take(np.arange(16))
    original = session.labels.copy()
    session.labels[session.labels == 1] = 2  # a change to every frame...
    session.refresh_areas(range(16))
    session.suspicion_scores()
    assert sum(computed) == 32
    session.labels[:] = original  # ...undone
    session.restored(range(16))
    session.suspicion_scores()
    assert sum(computed) == 32  # nothing recomputed: every frame found again
    _assert_same(session._current_shapes(), before)


def test_the_coarse_lv_grid_comes_back_from_the_memo():
    labels = np.zeros((3, 64, 64), np.uint8)
    labels[:, 10:40, 20:30] = 1
    labels[1, 40:60, 5:15] = 1
    memo = ShapeMemo()
    memo.features(labels)
    found, hits = memo.features(labels)
    assert hits == 3
    np.testing.assert_array_equal(found.lv_grid, shape_features(labels).lv_grid)


def test_digests_of_large_frames_cover_what_the_features_are_computed_from():
    """Large frames are measured on the checks' grid: a frame differing only where the
    grid does not sample has the same features, and the same digest; having any label at
    all is part of it."""
    from echo_napari.metrics_plausibility import check_grid

    a = np.zeros((3, 400, 500), np.uint8)
    a[:, 100:300, 150:350] = 1
    a[2] = 0
    b = a.copy()
    b[0, 0, 0] = 3  # not under any grid pixel's centre (the grid starts at 1.5 px)
    b[2, 0, 0] = 3  # … but the frame now has a label
    assert (check_grid(b)[0] == check_grid(a)[0]).all()
    da, db = frame_digests(a), frame_digests(b)
    assert da[0] == db[0] and da[1] == db[1] and da[2] != db[2]
    _assert_same(shape_features(b[:1]), shape_features(a[:1]))
