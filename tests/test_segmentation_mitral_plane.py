"""An LV drawn around the atrium is cut back to the mitral plane."""

from __future__ import annotations

import numpy as np
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
