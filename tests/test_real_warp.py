"""Synthetic systoles from one end-diastolic frame (segmentation.real_warp)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.segmentation.real_warp import (
    Contraction,
    compact_border,
    contraction_schedule,
    long_axis,
    real_systole_clips,
    synthetic_systole,
)


def _ventricle(size: int = 64) -> np.ndarray:
    """(S, S) uint8: an apex-up LV cavity ellipse, a 4-px wall and an atrium below it."""
    rows, cols = np.indices((size, size), dtype=np.float64)
    inner = ((rows - 26) / 16) ** 2 + ((cols - 32) / 9) ** 2 <= 1
    outer = ((rows - 26) / 20) ** 2 + ((cols - 32) / 13) ** 2 <= 1
    atrium = ((rows - 50) / 8) ** 2 + ((cols - 32) / 9) ** 2 <= 1
    labels = np.zeros((size, size), np.uint8)
    labels[outer] = 2
    labels[atrium & ~inner] = 3  # meets the cavity along the mitral plane
    labels[inner] = 1
    return labels


def test_long_axis_points_from_the_atrium_to_the_apex() -> None:
    base, apex = long_axis(_ventricle())
    assert base[0] > apex[0]  # base below the apex (apex up)
    assert abs(base[1] - 32) < 1.5 and abs(apex[1] - 32) < 1.5
    assert apex[0] == pytest.approx(10, abs=1.5) and base[0] == pytest.approx(42, abs=1.5)


def test_long_axis_needs_a_cavity() -> None:
    with pytest.raises(SequenceError, match="no LV cavity"):
        long_axis(np.zeros((32, 32), np.uint8))


def test_schedule_rises_to_end_systole_then_recovers_part() -> None:
    share = contraction_schedule(Contraction(0.3, 0.1, es_frame=6, n_frames=12, recovery=0.4))
    assert share[0] == 0.0 and share[6] == pytest.approx(1.0)
    assert np.all(np.diff(share[:7]) > 0) and np.all(np.diff(share[6:]) < 0)
    assert share[-1] == pytest.approx(0.6)


def test_systole_shrinks_the_cavity_and_thickens_the_wall() -> None:
    labels = _ventricle()
    contraction = Contraction(0.35, 0.1, es_frame=5, n_frames=8, recovery=0.5)
    frames, masks = synthetic_systole(labels.astype(np.float32) / 3, labels, contraction)
    assert frames.shape == masks.shape == (8, 64, 64)
    cavity = (masks == 1).sum(axis=(1, 2))
    assert cavity[0] == (labels == 1).sum()  # frame 0 is the ED frame itself
    assert cavity[5] < 0.7 * cavity[0]  # end-systole
    assert cavity[0] > cavity[7] > cavity[5]  # early diastole refills part
    wall_ed = (masks[0] == 2).sum() / (masks[0] > 0).sum()
    wall_es = (masks[5] == 2).sum() / (masks[5] > 0).sum()
    assert wall_es > wall_ed
    # The atrium is stretched by the descending mitral plane, never shrunk.
    assert (masks[5] == 3).sum() >= (labels == 3).sum()


def test_compaction_turns_the_cavity_border_into_wall_but_not_the_mitral_plane() -> None:
    labels = _ventricle()
    compacted = compact_border(labels, 2.0)
    changed = (labels == 1) & (compacted == 2)
    assert changed.any() and not ((compacted != labels) & ~changed).any()
    rows, cols = np.nonzero(changed)
    assert rows.min() <= 11  # the apex gives up its border
    near_atrium = ndimage.distance_transform_edt(labels != 3) < 3
    assert ((labels == 1) & near_atrium).any()  # the cavity's base, against the atrium
    assert not (changed & near_atrium).any()
    np.testing.assert_array_equal(compact_border(labels, 0.0), labels)
    contraction = Contraction(0.3, 0.1, es_frame=4, n_frames=6, recovery=0.3, compaction=2.0)
    _, masks = synthetic_systole(labels.astype(np.float32), labels, contraction)
    plain = synthetic_systole(
        labels.astype(np.float32), labels, replace(contraction, compaction=0)
    )
    assert (masks[4] == 1).sum() < 0.85 * (plain[1][4] == 1).sum()
    np.testing.assert_array_equal(masks[0], plain[1][0])  # nothing compacted at ED


def test_image_and_label_move_together() -> None:
    labels = _ventricle()
    contraction = Contraction(0.3, 0.12, es_frame=4, n_frames=6, recovery=0.3)
    frames, masks = synthetic_systole(labels.astype(np.float32), labels, contraction)
    # The image was the label map itself: the warped grey levels read back the warped
    # labels except on the borders that bilinear sampling blends.
    agree = np.round(frames[4]) == masks[4]
    assert agree.mean() > 0.97


def test_clips_come_from_plausible_end_diastoles_only(tiny_cycle) -> None:
    frames, labels = tiny_cycle
    clips = real_systole_clips([frames], [labels], per_frame=2, seed=3, n_frames=10)
    assert clips, "the cycle's ED frame should pass the anatomical checks"
    for clip_frames, clip_labels in clips:
        assert clip_frames.shape == clip_labels.shape == (10, *frames.shape[1:])
        assert clip_frames.dtype == np.float32 and clip_labels.dtype == np.uint8
    broken = labels.copy()
    broken[:] = 0
    assert real_systole_clips([frames], [broken], per_frame=2) == []


@pytest.fixture
def tiny_cycle() -> tuple[np.ndarray, np.ndarray]:
    """Three beats of a contracting ellipse ventricle, ``(T, 64, 64)``."""
    base = _ventricle()
    n = 90
    frames, labels = [], []
    for t in range(n):
        share = 0.5 - 0.5 * np.cos(2 * np.pi * t / 30)
        moved_frames, moved = synthetic_systole(
            base.astype(np.float32) / 3,
            base,
            Contraction(0.35 * share, 0.1 * share, es_frame=1, n_frames=2, recovery=0.0),
        )
        frames.append(moved_frames[-1])
        labels.append(moved[-1])
    return np.stack(frames), np.stack(labels)
