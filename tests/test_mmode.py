"""M-mode core: sampling, default line, traces ↔ band, measurements, bad input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from echo_napari.errors import EchoIOError, SequenceError
from echo_napari.mmode.measure import (
    detect_beats,
    diameter_per_column,
    ejection_fraction,
    fractional_shortening,
    measure_band,
    teichholz_volume_ml,
    write_diameter_csv,
)
from echo_napari.mmode.sampling import MModeLine, default_line, sample_mmode
from echo_napari.mmode.traces import (
    band_to_traces,
    paths_to_traces,
    traces_to_band,
    traces_to_paths,
)


def pulsing_disc(n_frames=24, size=96, r0=20.0, amplitude=6.0, spacing=(0.5, 0.5)):
    """A disc cavity whose radius follows r0 + amplitude·cos(2πt/T) (pixels), in a
    bright wall ring: frames, labels and the exact radius per frame."""
    t = np.arange(n_frames)
    radius = r0 + amplitude * np.cos(2 * np.pi * t / n_frames)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    dist = np.hypot(yy - centre, xx - centre)
    labels = (dist[None] < radius[:, None, None]).astype(np.uint8)
    frames = np.where(dist[None] < radius[:, None, None] + 8, 0.8, 0.1).astype(np.float32)
    frames[labels == 1] = 0.05
    return frames, labels, radius, spacing, centre


@pytest.mark.parametrize("angle_deg", [0.0, 37.0, 90.0])
def test_known_wall_motion_diameter_within_one_pixel(angle_deg):
    frames, labels, radius, spacing, c = pulsing_disc()
    a = math.radians(angle_deg)
    half = 40.0
    line = MModeLine(
        c - half * math.sin(a),
        c - half * math.cos(a),
        c + half * math.sin(a),
        c + half * math.cos(a),
    )
    strip = sample_mmode(frames, line, spacing, 20.0, labels)
    assert strip.image.shape[1] == frames.shape[0]
    assert strip.depth_step_mm == pytest.approx(0.5)
    diameter = diameter_per_column(strip.band, strip.depth_step_mm, strip.band_probability)
    truth = 2 * radius * spacing[0]
    assert np.max(np.abs(diameter - truth)) <= spacing[0] + 1e-9


def test_simulated_sequence_matches_ground_truth_along_line():
    from echo_napari.simulate import SimulationParams, seeds, simulate_sequence

    params = SimulationParams(frames_per_cycle=20, n_cycles=1.0)
    seq = simulate_sequence(seeds("test", 1)[0], params).sequence
    line = default_line(seq.labels[seq.ed_index] == 1)
    strip = sample_mmode(seq.frames, line, seq.spacing, seq.frame_time_ms, seq.labels)
    measured = diameter_per_column(strip.band, strip.depth_step_mm, strip.band_probability)
    # Ground truth: the labels along the same line sampled 20x finer (nearest).
    fine = np.linspace(0, 1, 4001)
    rows = line.y0 + fine * (line.y1 - line.y0)
    cols = line.x0 + fine * (line.x1 - line.x0)
    step_mm = line.length_mm(seq.spacing) / (fine.size - 1)
    inside = seq.labels[:, np.round(rows).astype(int), np.round(cols).astype(int)] == 1
    truth = inside.sum(axis=1) * step_mm
    assert np.max(np.abs(measured - truth)) <= seq.spacing[0]
    # Systole shortens the line's diameter.
    assert measured[seq.es_index] < measured[seq.ed_index]


def test_default_line_is_perpendicular_to_long_axis_at_one_third():
    size = 120
    yy, xx = np.mgrid[:size, :size]
    # Ellipse: long axis vertical (rows 20..100), base at the bottom (larger row).
    cavity = ((yy - 60) / 40.0) ** 2 + ((xx - 60) / 15.0) ** 2 < 1
    line = default_line(cavity)
    direction = np.array([line.y1 - line.y0, line.x1 - line.x0])
    assert abs(direction[0]) < 1e-6 * np.hypot(*direction) + 1e-6
    mid_row = 0.5 * (line.y0 + line.y1)
    assert mid_row == pytest.approx(100 - 80 / 3, abs=1.5)
    assert min(line.x0, line.x1) < 45 and max(line.x0, line.x1) > 75


def test_default_line_of_a_sequence_shown_apex_down_sits_near_its_base():
    from echo_napari.mmode.analysis import sequence_line
    from echo_napari.sequence import EchoSequence, LabelClass

    size = 120
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((2, size, size), np.uint8)
    labels[:, ((yy - 60) / 40.0) ** 2 + ((xx - 60) / 15.0) ** 2 < 1] = LabelClass.LV_CAVITY
    labels[:, (yy > 101) & (yy < 115) & (np.abs(xx - 60) < 12)] = LabelClass.LA
    frames = np.zeros(labels.shape, np.float32)
    upright = sequence_line(EchoSequence(frames=frames, labels=labels))
    down = sequence_line(EchoSequence(frames=frames, labels=labels[:, ::-1].copy()))
    # a third of the way from the base (by the LA) either way up
    assert 0.5 * (upright.y0 + upright.y1) == pytest.approx(100 - 80 / 3, abs=1.5)
    assert 0.5 * (down.y0 + down.y1) == pytest.approx(size - 1 - (100 - 80 / 3), abs=1.5)


def test_sampling_256_frames_is_fast():
    frames = np.random.default_rng(0).random((256, 112, 112), dtype=np.float32)
    line = MModeLine(10, 10, 100, 90)
    sample_mmode(frames, line, (1.0, 1.0))
    start = time.perf_counter()
    sample_mmode(frames, line, (1.0, 1.0))
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    "line, message",
    [
        (MModeLine(-5, 10, 50, 50), "leaves"),
        (MModeLine(10, 10, 10, 200), "leaves"),
        (MModeLine(20, 20, 20, 20), "too short"),
    ],
)
def test_bad_lines_raise_clear_errors(line, message):
    frames = np.zeros((4, 64, 64), np.float32)
    with pytest.raises(SequenceError, match=message):
        sample_mmode(frames, line, (1.0, 1.0))


def test_one_frame_sequence_is_refused():
    with pytest.raises(SequenceError, match="at least 2 frames"):
        sample_mmode(np.zeros((1, 32, 32), np.float32), MModeLine(2, 2, 30, 30), None)


def test_line_parse():
    assert MModeLine.parse("1, 2,3,4.5") == MModeLine(1, 2, 3, 4.5)
    with pytest.raises(SequenceError, match="four"):
        MModeLine.parse("1,2,3")
    with pytest.raises(SequenceError, match="four numbers"):
        MModeLine.parse("a,b,c,d")


def test_uncalibrated_sequence_gives_pixel_strip():
    frames, labels, *_ = pulsing_disc()
    strip = sample_mmode(frames, MModeLine(48, 5, 48, 90), None, None, labels)
    assert not strip.calibrated and strip.time_step_s is None
    assert measure_band(strip.band, None, None).units == "px"


def test_traces_band_round_trip():
    rng = np.random.default_rng(1)
    n, depth = 50, 80
    upper = np.round(rng.uniform(5, 30, n)) - 0.5
    lower = upper + np.round(rng.uniform(10, 40, n))
    upper[[3, 17]] = np.nan
    lower[[3, 17]] = np.nan
    band = traces_to_band(upper, lower, depth)
    up2, low2 = band_to_traces(band)
    np.testing.assert_array_equal(up2, upper)
    np.testing.assert_array_equal(low2, lower)
    np.testing.assert_array_equal(traces_to_band(up2, low2, depth), band)
    paths = traces_to_paths(up2, low2)
    assert [p.shape for p in paths] == [(n - 2, 2), (n - 2, 2)]
    up3, low3 = paths_to_traces(paths[::-1], n)  # order does not matter
    finite = np.isfinite(upper)
    np.testing.assert_allclose(up3[finite], upper[finite])
    np.testing.assert_allclose(low3[finite], lower[finite])
    assert np.isnan(up3[[0]]).sum() == 0  # interpolated between vertices, not NaN inside


def test_band_to_traces_keeps_longest_run():
    band = np.zeros((20, 1), np.uint8)
    band[2:4, 0] = 1
    band[8:15, 0] = 1
    upper, lower = band_to_traces(band)
    assert (upper[0], lower[0]) == (7.5, 14.5)


def test_teichholz_fs_ef_hand_computed():
    # D = 5 cm: 7·125 / 7.4 = 118.2432 ml; D = 3 cm: 7·27 / 5.4 = 35.0 ml.
    assert teichholz_volume_ml(50.0) == pytest.approx(118.24324, rel=1e-6)
    assert teichholz_volume_ml(30.0) == pytest.approx(35.0, rel=1e-9)
    assert fractional_shortening(50.0, 30.0) == pytest.approx(40.0)
    assert ejection_fraction(118.24324324, 35.0) == pytest.approx(70.4, abs=1e-3)
    np.testing.assert_allclose(teichholz_volume_ml(np.array([0.0, 30.0])), [0.0, 35.0])
    with pytest.raises(SequenceError):
        fractional_shortening(0.0, 1.0)
    with pytest.raises(SequenceError):
        teichholz_volume_ml(-1.0)


def test_beats_and_heart_rate_from_diameter_curve():
    dt = 0.02
    t = np.arange(0, 3.1, dt)
    lvid = 40 + 10 * np.cos(2 * np.pi * 1.25 * t)  # 75 bpm, LVIDd 50, LVIDs 30
    beats, heart_rate = detect_beats(lvid, dt)
    assert heart_rate == pytest.approx(75.0, rel=0.03)
    assert len(beats) >= 3
    for beat in beats:
        assert beat.lvidd_mm == pytest.approx(50.0, abs=0.2)
        assert beat.lvids_mm == pytest.approx(30.0, abs=0.2)
        assert beat.fs_percent == pytest.approx(40.0, abs=0.5)
        assert beat.ef_percent == pytest.approx(70.4, abs=0.6)
    # A single systole (no interior peak) still gives one beat, no heart rate.
    beats, heart_rate = detect_beats(lvid[:30], dt)
    assert len(beats) == 1 and heart_rate is None


def test_poor_columns_are_left_out_and_csv(tmp_path):
    band = np.zeros((40, 10), np.uint8)
    band[10:30] = 1
    poor = np.zeros(10, bool)
    poor[:3] = True
    m = measure_band(band, 0.5, 0.02, poor)
    assert np.isnan(m.lvid_mm[:3]).all() and np.allclose(m.lvid_mm[3:], 10.0)
    path = write_diameter_csv(tmp_path / "x_mmode.csv", m)
    lines = path.read_text().splitlines()
    assert lines[0] == "time_s,lvid_mm" and len(lines) == 11
    assert lines[1] == "0.000000," and lines[4] == "0.060000,10.000"
    with pytest.raises(EchoIOError, match="calibration"):
        write_diameter_csv(tmp_path / "y.csv", measure_band(band, None, 0.02))


def test_simplified_paths_stay_within_tolerance_and_give_the_band():
    from echo_napari.mmode.traces import paths_to_band

    n, depth = 120, 90
    t = np.arange(n)
    upper = 20.3 + 6 * np.sin(2 * np.pi * t / 45)
    lower = 70.1 - 8 * np.sin(2 * np.pi * t / 45)
    paths = traces_to_paths(upper, lower, tolerance=0.5)
    assert all(len(p) < n / 3 for p in paths)  # draggable handful of vertices
    up2, low2 = paths_to_traces(paths, n)
    # Douglas–Peucker bounds the perpendicular distance; on slopes the vertical one is a
    # little larger.
    assert np.max(np.abs(up2 - upper)) <= 0.6
    assert np.max(np.abs(low2 - lower)) <= 0.6
    np.testing.assert_array_equal(
        paths_to_band(paths, (depth, n)), traces_to_band(up2, low2, depth)
    )


def test_measure_traces_matches_band_and_is_sub_row():
    from echo_napari.mmode.measure import measure_traces

    n = 150
    t = np.arange(n)
    upper = np.round(20 + 4 * np.sin(2 * np.pi * t / 50)) - 0.5
    lower = np.round(60 - 6 * np.sin(2 * np.pi * t / 50)) - 0.5
    band = traces_to_band(upper, lower, 90)
    by_band = measure_band(band, 0.5, 0.02)
    by_traces = measure_traces(upper, lower, 0.5, 0.02)
    np.testing.assert_allclose(by_traces.lvid_mm, by_band.lvid_mm)
    assert by_traces.summary() == by_band.summary()
    shifted = measure_traces(upper, lower + 0.25, 0.5, 0.02)  # a quarter row deeper
    np.testing.assert_allclose(shifted.lvid_mm, by_band.lvid_mm + 0.125)
    crossed = lower.copy()
    crossed[5] = upper[5] - 1  # lower edge above the upper one: no diameter, not negative
    assert np.isnan(measure_traces(upper, crossed, 0.5, 0.02).lvid_mm[5])
    poor = np.zeros(n, bool)
    poor[:10] = True
    assert np.isnan(measure_traces(upper, lower, 0.5, 0.02, poor).lvid_mm[:10]).all()
    with pytest.raises(SequenceError, match="equal length"):
        measure_traces(upper, lower[:-1], 0.5, 0.02)
