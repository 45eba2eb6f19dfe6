"""LV area jumps between consecutive frames."""

from __future__ import annotations

import numpy as np

from echo_napari.metrics_jumps import lv_area_jump


def test_a_beating_curve_has_no_jump_and_a_swap_is_named():
    t = np.arange(100)
    lv = 1000 + 300 * np.cos(2 * np.pi * t / 40)  # ≤ 5 % per frame
    la = 800 - 100 * np.cos(2 * np.pi * t / 40)
    assert all(lv_area_jump(lv, la, f) is None for f in range(100))
    # frames 30-39: the LV drawn over the atrium (it gains what the LA loses)
    lv[30:40] += 600
    la[30:40] -= 500
    assert lv_area_jump(lv, la, 35) is None  # inside the stretch, nothing moves fast
    first = lv_area_jump(lv, la, 30)
    assert first.startswith("LV area +") and "against frame\u00a029" in first
    assert "while the LA shrinks" in first
    assert "LA grows" in lv_area_jump(lv, la, 40)  # the LA back, the LV smaller
    # a jump of the LV alone is named as such
    lv[70] *= 1.6
    assert "faster than a heart moves" in lv_area_jump(lv, la, 70)
    # no LV on a frame: nothing to compare
    lv[50] = 0
    assert lv_area_jump(lv, la, 50) is None and lv_area_jump(lv, la, 51) is None


def test_the_limit_grows_with_the_time_between_frames():
    lv = np.array([1000.0, 1500.0])  # +50 % in one frame
    la = np.array([500.0, 500.0])
    assert lv_area_jump(lv, la, 1, frame_time_ms=20.0)
    assert lv_area_jump(lv, la, 1, frame_time_ms=40.0) is None  # 2 × 20 ms: ≤ 1.35²
    assert lv_area_jump(lv, la, 1) == lv_area_jump(lv, la, 1, frame_time_ms=20.0)


def test_a_trade_and_back_within_150_ms_is_a_flip():
    from echo_napari.metrics_jumps import flipped_frames, trade_steps

    lv = np.full(40, 1000.0)
    la = np.full(40, 500.0)
    lv[10:13], la[10:13] = 400.0, 1100.0  # the LA takes the LV's base for 3 frames
    lv[25:35], la[25:35] = 400.0, 1100.0  # ... and for 10 frames: a state, not a flip
    assert np.flatnonzero(trade_steps(lv, la)).tolist() == [10, 13, 25, 35]
    assert np.flatnonzero(flipped_frames(lv, la)).tolist() == [10, 11, 12]  # 60 ms
    assert flipped_frames(lv, la, frame_time_ms=40.0)[10:13].all()  # 3 frames = 120 ms
    assert not flipped_frames(lv, la, frame_time_ms=60.0).any()  # 180 ms
    # the atrium drawn into the ventricle's base: the LA takes a fifth of what the LV
    # loses (the rest goes to the wall), and gives it back 6 frames (120 ms) later
    lv, la = np.full(40, 1400.0), np.full(40, 280.0)
    lv[20:26], la[20:26] = 700.0, 430.0
    assert np.flatnonzero(flipped_frames(lv, la)).tolist() == list(range(20, 26))
    la[20:26] = 330.0  # a seventh: the LV's loss went elsewhere, not a trade
    assert not flipped_frames(lv, la).any()
