"""Tests of the echo simulator: ground-truth consistency, EF, cycle, determinism, texture."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics_volume import ef_from_labels
from echo_napari.sequence import LabelClass
from echo_napari.simulate import SPLITS, SimulationParams, seeds, simulate_sequence
from echo_napari.simulation.anatomy import make_anatomy
from echo_napari.simulation.cycle import es_phase
from echo_napari.simulation.motion import Motion, default_weights, pull_points, push_points
from echo_napari.simulation.params import randomized

SMALL = SimulationParams(frames_per_cycle=24)
CLASSES = (LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM, LabelClass.LA)


@pytest.fixture(scope="module")
def simulated():
    return simulate_sequence(950_000, SMALL)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _warp_labels_linear(labels: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Pull ``labels`` (H, W) through ``displacement`` (2, H, W): linear on one-hot."""
    grid = np.mgrid[0 : labels.shape[0], 0 : labels.shape[1]].astype(np.float32)
    coords = grid + displacement
    onehot = [(labels == k).astype(np.float32) for k in range(len(LabelClass))]
    warped = [ndimage.map_coordinates(o, coords, order=1, mode="nearest") for o in onehot]
    return np.argmax(np.stack(warped), axis=0)


def test_shapes_types_and_ranges(simulated):
    seq = simulated.sequence
    t, h, w = seq.frames.shape
    assert (t, h, w) == (24, 112, 112)
    assert seq.frames.dtype == np.float32
    assert 0.0 <= float(seq.frames.min()) and float(seq.frames.max()) <= 1.0
    assert seq.labels.dtype == np.uint8 and seq.labels.shape == (t, h, w)
    assert simulated.displacement.shape == (t, 2, h, w)
    assert simulated.displacement.dtype == np.float32
    assert simulated.lv_area_mm2.shape == (t,)
    assert seq.spacing == pytest.approx((150.0 / 112, 150.0 / 112))
    assert seq.view == "A4C"
    assert seq.frame_time_ms == pytest.approx(60000 / 70 / 24)
    for frame in seq.labels:
        assert set(np.unique(frame)) == {0, 1, 2, 3}
    # Black outside the sector: the top corners hold no echo.
    assert float(seq.frames[:, :10, :10].max()) == 0.0


def test_gt_warp_reproduces_labels(simulated):
    seq = simulated.sequence
    ed = seq.labels[seq.ed_index]
    assert np.abs(simulated.displacement[seq.ed_index]).max() == 0.0
    for t in range(seq.n_frames):
        warped = _warp_labels_linear(ed, simulated.displacement[t])
        for k in CLASSES:
            assert _dice(warped == k, seq.labels[t] == k) >= 0.99, (t, k)


def test_gt_warp_nearest_neighbour_close(simulated):
    seq = simulated.sequence
    ed = seq.labels[seq.ed_index]
    grid = np.mgrid[0:112, 0:112].astype(np.float32)
    t = seq.es_index
    warped = ndimage.map_coordinates(ed, grid + simulated.displacement[t], order=0)
    for k in CLASSES:
        assert _dice(warped == k, seq.labels[t] == k) >= 0.97


def test_no_folding(simulated):
    for u in simulated.displacement:
        dyy = np.gradient(u[0], axis=0) + 1.0
        dyx = np.gradient(u[0], axis=1)
        dxy = np.gradient(u[1], axis=0)
        dxx = np.gradient(u[1], axis=1) + 1.0
        assert float((dyy * dxx - dyx * dxy).min()) > 0.0


@pytest.mark.parametrize("ef", [0.30, 0.45, 0.60, 0.75])
def test_achieved_ef(ef):
    params = SimulationParams(frames_per_cycle=20, ef=ef)
    sim = simulate_sequence(950_001, params)
    seq = sim.sequence
    assert seq.metadata["reference"]["EF"] == pytest.approx(100 * ef, abs=0.5)
    for method in ("simpson", "area_length"):
        measured = ef_from_labels(seq.labels, seq.spacing, method=method)
        assert measured.ef == pytest.approx(100 * ef, abs=2.0), method
    ref = seq.metadata["reference"]
    assert 40.0 < ref["EDV"] < 250.0 and ref["ESV"] < ref["EDV"]


def test_apex_motion_moves_the_apical_wall_and_keeps_the_ef():
    def apical_width(apex_motion: float) -> tuple[float, float]:
        params = SimulationParams(frames_per_cycle=20, ef=0.6, apex_motion=apex_motion)
        seq = simulate_sequence(950_002, params, randomize=False).sequence
        lv = seq.labels == 1
        rows = np.flatnonzero(lv[seq.ed_index].any(axis=1))
        band = slice(rows[0], rows[0] + (rows[-1] - rows[0]) // 4)  # apical quarter at ED
        width = lv[:, band].sum(axis=(1, 2))
        return width[seq.es_index] / width[seq.ed_index], seq.metadata["reference"]["EF"]

    (slow, ef_slow), (fast, ef_fast) = apical_width(0.25), apical_width(1.0)
    assert fast < slow - 0.05
    assert ef_slow == pytest.approx(60.0, abs=0.5) and ef_fast == pytest.approx(60.0, abs=0.5)
    with pytest.raises(SequenceError, match="apex_motion"):
        SimulationParams(apex_motion=2.0).validate()


def test_depth_range_and_apex_gap_vary_the_heart_in_the_image():
    def apex_row_and_area(params: SimulationParams, seed: int) -> tuple[float, float, int]:
        seq = simulate_sequence(seed, params).sequence
        lv = seq.labels[seq.ed_index] == 1
        return seq.spacing[0], float(np.flatnonzero(lv.any(axis=1))[0]), int(lv.sum())

    base = SimulationParams(frames_per_cycle=20)
    deep = SimulationParams(frames_per_cycle=20, depth_range_mm=(195.0, 200.0))
    far = SimulationParams(frames_per_cycle=20, apex_gap_mm=(28.0, 30.0))
    spacing, row, area = apex_row_and_area(base, 11)
    deep_spacing, _, deep_area = apex_row_and_area(deep, 11)
    _, far_row, _ = apex_row_and_area(far, 11)
    assert spacing == pytest.approx(150.0 / 112)
    assert 195.0 / 112 <= deep_spacing <= 200.0 / 112
    assert deep_area < 0.75 * area  # the same heart, smaller in a deeper image
    assert far_row >= row + 8  # ≥ 13 mm deeper apex, ≈ 1.34 mm per pixel
    # The depth is drawn last: the seed's other draws (here its EF) stay the same.
    ranged = replace(base, ef_range=(0.2, 0.7))
    efs = [
        simulate_sequence(11, p).sequence.metadata["reference"]["EF"]
        for p in (ranged, replace(ranged, depth_range_mm=(130.0, 200.0)))
    ]
    assert efs[0] == pytest.approx(efs[1], abs=0.5)
    for bad in ({"depth_range_mm": (40.0, 100.0)}, {"apex_gap_mm": (-1.0, 5.0)}):
        with pytest.raises(SequenceError, match=next(iter(bad))):
            replace(base, **bad).validate()


def test_dropout_range_draws_the_wall_dropout_per_seed():
    def lateral_wall_level(dropout_range: tuple[float, float]) -> float:
        params = SimulationParams(frames_per_cycle=20, dropout_range=dropout_range)
        seq = simulate_sequence(12, params).sequence
        assert min(dropout_range) <= seq.metadata["simulation"]["dropout"] <= max(dropout_range)
        wall = seq.labels[seq.ed_index] == 2
        columns = np.flatnonzero(wall.any(axis=0))
        wall[:, : (columns[0] + columns[-1]) // 2] = False  # the lateral half (image right)
        return float(seq.frames_array()[seq.ed_index][wall].mean())

    assert lateral_wall_level((0.9, 1.0)) < 0.9 * lateral_wall_level((0.0, 0.05))
    with pytest.raises(SequenceError, match="dropout_range"):
        SimulationParams(dropout_range=(0.5, 1.5)).validate()


def test_trabeculae_line_the_cavity_with_grey_next_to_the_wall():
    def grey_by_depth(params: SimulationParams) -> list[float]:
        seq = simulate_sequence(12, params, randomize=False).sequence
        cavity = seq.labels[seq.ed_index] == 1
        inside = ndimage.distance_transform_edt(cavity)
        frame = seq.frames_array()[seq.ed_index]
        return [float(frame[(inside > d) & (inside <= d + 1)].mean()) for d in (1, 6)]

    base = SimulationParams(frames_per_cycle=20)
    (near, deep) = grey_by_depth(base)
    (trab_near, trab_deep) = grey_by_depth(replace(base, trabeculae_db=-8.0, trabeculae_mm=5.0))
    assert trab_near > 2.5 * near  # a grey lining 1-2 px inside the border
    assert trab_deep == pytest.approx(deep, abs=0.02)  # the blood pool stays dark
    drawn = replace(base, trabeculae_range_db=(-12.0, -6.0), ef_range=(0.2, 0.7))
    seq = simulate_sequence(11, drawn).sequence
    assert -12.0 <= seq.metadata["simulation"]["trabeculae_db"] <= -6.0
    # Drawn last: the seed's EF is the one it has without the band.
    plain = simulate_sequence(11, replace(drawn, trabeculae_range_db=None)).sequence
    assert seq.metadata["reference"]["EF"] == pytest.approx(
        plain.metadata["reference"]["EF"], abs=0.5
    )
    with pytest.raises(SequenceError, match="trabeculae_range_db"):
        replace(base, trabeculae_range_db=(-10.0, 5.0)).validate()


def test_ef_range_draws_per_seed():
    params = SimulationParams(frames_per_cycle=20, ef_range=(0.2, 0.7))
    efs = [simulate_sequence(s, params).sequence.metadata["reference"]["EF"] for s in (3, 4)]
    assert all(20.0 - 0.5 <= ef <= 70.0 + 0.5 for ef in efs)
    assert abs(efs[0] - efs[1]) > 0.1
    fixed = simulate_sequence(3, params, randomize=False).sequence.metadata["reference"]["EF"]
    assert fixed == pytest.approx(60.0, abs=0.5)


def test_ed_es_at_extremes_of_area_curve():
    params = SimulationParams(frames_per_cycle=32, n_cycles=1.5, start_phase=0.5)
    sim = simulate_sequence(950_002, params)
    seq = sim.sequence
    assert seq.ed_index == int(np.argmax(sim.lv_area_mm2)) == 16
    assert seq.es_index == int(np.argmin(sim.lv_area_mm2))
    pixel_area = (seq.labels == LabelClass.LV_CAVITY).sum(axis=(1, 2))
    pixel_area = pixel_area * seq.spacing[0] * seq.spacing[1]
    assert np.allclose(pixel_area, sim.lv_area_mm2, rtol=0.03)
    assert abs(int(np.argmax(pixel_area)) - seq.ed_index) <= 1
    assert abs(int(np.argmin(pixel_area)) - seq.es_index) <= 1


def test_physiological_cycle(simulated):
    seq = simulated.sequence
    # ES at 35–40 % of the cycle at 70 bpm.
    assert 0.35 <= es_phase(70.0) <= 0.40
    assert 0.35 <= seq.es_index / 24 <= 0.42
    areas = {k: (seq.labels == k).sum(axis=(1, 2)).astype(float) for k in CLASSES}
    ed, es = seq.ed_index, seq.es_index
    # LA fills while the LV empties.
    assert areas[LabelClass.LA][es] > 1.1 * areas[LabelClass.LA][ed]
    # Wall thickening with a roughly conserved myocardial area.
    myo = areas[LabelClass.MYOCARDIUM]
    assert myo.max() / myo.min() < 1.1
    # Long-axis shortening: the base moves towards the apex.
    rows_ed = np.nonzero(seq.labels[ed] == LabelClass.LV_CAVITY)[0]
    rows_es = np.nonzero(seq.labels[es] == LabelClass.LV_CAVITY)[0]
    assert rows_es.max() < rows_ed.max() - 3
    assert abs(rows_es.min() - rows_ed.min()) <= 3


def test_deterministic_by_seed():
    params = SimulationParams(frames_per_cycle=20, height=64, width=64, depth_mm=150)
    a = simulate_sequence(7, params)
    b = simulate_sequence(7, params)
    c = simulate_sequence(8, params)
    assert np.array_equal(a.sequence.frames, b.sequence.frames)
    assert np.array_equal(a.sequence.labels, b.sequence.labels)
    assert np.array_equal(a.displacement, b.displacement)
    assert not np.array_equal(a.sequence.frames, c.sequence.frames)


def test_speckle_decorrelates_slowly(simulated):
    seq = simulated.sequence
    frames = seq.frames - ndimage.gaussian_filter(seq.frames, (0, 3, 3))
    mask = seq.labels[seq.ed_index] == LabelClass.MYOCARDIUM

    def corr(t0: int, t1: int) -> float:
        return float(np.corrcoef(frames[t0][mask], frames[t1][mask])[0, 1])

    near = np.mean([corr(t, t + 1) for t in range(0, 12)])
    far = np.mean([corr(t, t + 8) for t in range(0, 12)])
    assert near > 0.5
    assert near > far + 0.1


def test_blood_dark_walls_bright(simulated):
    seq = simulated.sequence
    cavity = seq.frames[seq.labels == LabelClass.LV_CAVITY].mean()
    wall = seq.frames[seq.labels == LabelClass.MYOCARDIUM].mean()
    assert wall > 2.5 * cavity


def test_seed_split():
    assert set(SPLITS) == {"train", "val", "test"}
    ranges = list(SPLITS.values())
    for i, first in enumerate(ranges):
        for second in ranges[i + 1 :]:
            assert not set(range(first.start, first.start + 10)) & set(second)
            assert first.stop <= second.start or second.stop <= first.start
    assert seeds("test", 3) == [950_000, 950_001, 950_002]
    assert all(s in SPLITS["train"] for s in seeds("train", 5))
    with pytest.raises(SequenceError):
        seeds("holdout", 1)


def test_invalid_params_raise():
    with pytest.raises(SequenceError, match="frames_per_cycle"):
        simulate_sequence(0, SimulationParams(frames_per_cycle=8))
    with pytest.raises(SequenceError, match="end-diastole"):
        simulate_sequence(0, SimulationParams(n_cycles=0.5, start_phase=0.5))
    with pytest.raises(SequenceError, match="does not fit"):
        simulate_sequence(0, SimulationParams(height=160, width=64, frames_per_cycle=20))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    contraction=st.floats(0.0, 1.0),
    y=st.floats(0.0, 150.0),
    x=st.floats(0.0, 150.0),
)
def test_pull_map_inverts(seed, contraction, y, x):
    """push ∘ pull is the identity: the motion is one-to-one everywhere."""
    rng = np.random.default_rng(seed)
    params = randomized(SimulationParams(), rng)
    anatomy = make_anatomy(params, rng)
    motion = Motion(0.3, default_weights(rng), params.wall_mm)
    jitter = (float(rng.normal()), float(rng.normal()))
    qy, qx = pull_points(anatomy, motion, np.array([y]), np.array([x]), contraction, jitter)
    py, px = push_points(anatomy, motion, qy, qx, contraction, jitter, iterations=48)
    assert abs(py[0] - y) < 1e-6 and abs(px[0] - x) < 1e-6


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "echonet-unlabeled"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data is absent")
def test_appearance_close_to_real_echonet(simulated):
    """In-sector grey levels and speckle size of a simulated clip stay near the mean of
    four real videos (the real ones vary by about ±0.1 in these percentiles)."""
    import av

    from echo_napari.simulation import realism

    real_pct, real_fwhm = [], []
    for path in sorted((REAL / "Videos").glob("*.avi"))[:4]:
        with av.open(str(path)) as container:
            real = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
        real = real[:48].astype(np.float32) / 255.0
        mask = realism.sector_mask(real)
        real_pct.append(realism.intensity_percentiles(real, mask, (50, 95)))
        real_fwhm.append(realism.speckle_fwhm(real, mask))
    real_pct, real_fwhm = np.mean(real_pct, axis=0), np.mean(real_fwhm, axis=0)
    sim = simulated.sequence.frames
    sim_mask = realism.sector_mask(sim)
    sim_pct = realism.intensity_percentiles(sim, sim_mask, (50, 95))
    assert np.all(np.abs(sim_pct - real_pct) < 0.15), (sim_pct, real_pct)
    sim_fwhm = np.asarray(realism.speckle_fwhm(sim, sim_mask))
    assert np.all(np.abs(sim_fwhm - real_fwhm) < 1.5), (sim_fwhm, real_fwhm)


def test_image_moves_with_displacement(simulated):
    """Warping the ED frame by the GT field explains frame t better than the ED frame does:
    the speckle is carried by the same motion as the labels."""
    seq = simulated.sequence
    ed, t = seq.ed_index, seq.es_index
    grid = np.mgrid[0:112, 0:112].astype(np.float32)
    warped = ndimage.map_coordinates(seq.frames[ed], grid + simulated.displacement[t], order=1)
    heart = ndimage.binary_dilation(seq.labels[t] > 0, iterations=3)

    def ncc(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a[heart], b[heart])[0, 1])

    assert ncc(warped, seq.frames[t]) > ncc(seq.frames[ed], seq.frames[t]) + 0.15


def test_map_in_processes_keeps_the_order_of_its_items():
    from echo_napari.simulation.parallel import map_in_processes

    assert map_in_processes(abs, [-3, 1, -2, 5, -4], workers=2) == [3, 1, 2, 5, 4]
    assert map_in_processes(abs, [-1], workers=1) == [1]


def test_drawn_depth_grows_until_the_heart_fits():
    # Seed 792 draws a large heart and a 131 mm depth: at that depth its LV would touch
    # the image border, so the per-seed depth is raised until it fits (within the range).
    params = SimulationParams(frames_per_cycle=20, ef_range=(0.15, 0.8), apex_gap_mm=(8.0, 30.0))
    drawn = randomized(replace(params, depth_range_mm=(130.0, 200.0)), _params_rng(792))
    assert drawn.depth_mm < 132.0
    seq = simulate_sequence(792, replace(params, depth_range_mm=(130.0, 200.0))).sequence
    assert seq.spacing[0] > drawn.depth_mm / 112
    lv = np.isin(seq.labels[seq.ed_index], (1, 2))
    assert not (lv[0].any() or lv[-1].any() or lv[:, 0].any() or lv[:, -1].any())
    # A range too shallow for this heart, or a depth the user set, still says so.
    with pytest.raises(SequenceError, match="does not fit"):
        simulate_sequence(792, replace(params, depth_range_mm=(130.0, 132.0)))
    with pytest.raises(SequenceError, match="does not fit"):
        simulate_sequence(792, replace(params, depth_mm=drawn.depth_mm), randomize=True)


def _params_rng(seed: int) -> np.random.Generator:
    """The generator simulate_sequence draws a seed's parameters from."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[0])
