"""Volumes, EF, ED/ES, smoothness, agreement statistics and sequence evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.metrics_sequence import evaluate_sequence
from echo_napari.metrics_stats import agreement, bootstrap_ci
from echo_napari.metrics_volume import (
    area_curve_smoothness,
    disc_diameters,
    ed_es_from_curve,
    ef_from_labels,
    ejection_fraction,
    long_axis,
    volume_area_length,
    volume_simpson,
    volume_simpson_biplane,
)
from echo_napari.sequence import EchoSequence


def ellipse(shape, centre, semi_y, semi_x, spacing=(1.0, 1.0)) -> np.ndarray:
    """Ellipse with semi-axes given in mm on a grid of the given spacing."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    y = (yy - centre[0]) * spacing[0]
    x = (xx - centre[1]) * spacing[1]
    return (y / semi_y) ** 2 + (x / semi_x) ** 2 <= 1.0


def prolate_ml(a: float, b: float) -> float:
    return 4.0 / 3.0 * np.pi * a * b * b / 1000.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.3, 0.5)])
def test_ellipse_volumes_match_prolate_ellipsoid(spacing):
    a, b = 40.0, 18.0  # mm, long axis vertical like an apical LV
    shape = (int(110 / spacing[0]), int(60 / spacing[1]))
    mask = ellipse(shape, (shape[0] / 2, shape[1] / 2), a, b, spacing)
    expected = prolate_ml(a, b)
    axis = long_axis(mask, spacing)
    assert axis.length == pytest.approx(2 * a, rel=0.01)
    assert axis.direction[0] == pytest.approx(1.0, abs=1e-6)  # apex (top) -> base
    assert volume_area_length(mask, spacing) == pytest.approx(expected, rel=0.02)
    # The extent includes whole pixel footprints at both tips: about one pixel too long.
    assert volume_area_length(mask, spacing, "extent") == pytest.approx(expected, rel=0.03)
    assert volume_simpson(mask, spacing) == pytest.approx(expected, rel=0.02)


def test_area_length_formula_by_hand():
    mask = ellipse((200, 200), (100, 100), 60, 30)
    area = float(mask.sum())
    length = long_axis(mask, (1, 1)).length
    assert volume_area_length(mask, (1, 1)) == pytest.approx(
        8 * area**2 / (3 * np.pi * length) / 1000
    )


def test_tilted_ellipse_axis_and_simpson():
    yy, xx = np.mgrid[:200, :200].astype(float)
    angle = np.deg2rad(30)
    u = (yy - 100) * np.cos(angle) + (xx - 100) * np.sin(angle)
    v = -(yy - 100) * np.sin(angle) + (xx - 100) * np.cos(angle)
    mask = (u / 70) ** 2 + (v / 25) ** 2 <= 1
    axis = long_axis(mask, (1, 1))
    assert axis.direction[0] == pytest.approx(np.cos(angle), abs=0.01)
    assert volume_simpson(mask, (1, 1)) == pytest.approx(prolate_ml(70, 25), rel=0.02)


def test_disc_diameters_of_a_rectangle_are_its_width():
    mask = np.zeros((100, 60), bool)
    mask[10:90, 20:40] = True
    diameters, length = disc_diameters(mask, (0.5, 0.5))
    assert length == pytest.approx(40.0)
    np.testing.assert_allclose(diameters, 10.0, atol=0.3)


def test_biplane_with_equal_views_equals_monoplane_and_circular_section():
    mask = ellipse((120, 80), (60, 40), 50, 20)
    mono = volume_simpson(mask, (1, 1))
    assert volume_simpson_biplane(mask, (1, 1), mask, (1, 1)) == pytest.approx(mono)
    # Elliptic cross-section: b from the 2CH view -> V = 4/3 pi a b c.
    narrow = ellipse((120, 80), (60, 40), 50, 12)
    expected = 4.0 / 3.0 * np.pi * 50 * 20 * 12 / 1000
    assert volume_simpson_biplane(mask, (1, 1), narrow, (1, 1)) == pytest.approx(
        expected, rel=0.03
    )


def test_empty_and_degenerate_masks():
    empty = np.zeros((10, 10), bool)
    assert volume_simpson(empty, (1, 1)) == 0.0
    assert volume_area_length(empty, (1, 1)) == 0.0
    one = empty.copy()
    one[5, 5] = True
    assert np.isnan(volume_area_length(one, (1, 1)))
    assert np.isnan(ejection_fraction(0.0, 0.0))


def test_ef_from_labels_finds_ed_es_and_matches_formula():
    shape = (160, 100)
    semi_minor = [20, 18, 15, 13, 15, 19]
    labels = np.zeros((len(semi_minor), *shape), np.uint8)
    for t, b in enumerate(semi_minor):
        labels[t][ellipse(shape, (80, 50), 50, b)] = 1
    result = ef_from_labels(labels, (1.0, 1.0), "area_length")
    assert (result.ed_index, result.es_index) == (0, 3)
    expected = 100 * (1 - prolate_ml(50, 13) / prolate_ml(50, 20))
    assert result.ef == pytest.approx(expected, abs=1.0)
    fixed = ef_from_labels(labels, (1.0, 1.0), "simpson", ed_index=1, es_index=2)
    assert fixed.ef == pytest.approx(100 * (1 - (15 / 18) ** 2), abs=1.0)


def test_ed_es_from_curve_with_smoothing():
    t = np.arange(60)
    curve = 100 + 20 * np.cos(2 * np.pi * t / 60)
    curve[30] -= 0  # minimum at 30
    noisy = curve + np.where(t == 45, -50, 0)  # a single-frame glitch
    assert ed_es_from_curve(curve) == (0, 30)
    assert ed_es_from_curve(noisy)[1] == 45
    assert ed_es_from_curve(noisy, sigma_frames=3)[1] in range(27, 34)


def test_smoothness_discretisation():
    assert area_curve_smoothness(np.linspace(0, 10, 20)) == pytest.approx(0.0, abs=1e-18)
    t = np.arange(10) * 0.02  # 20 ms frames
    curve = 3.0 * (t / 0.02) ** 2  # a'' = 6 per frame² = 6 / 0.02² per s²
    per_frame = area_curve_smoothness(curve)
    assert per_frame == pytest.approx(36.0 * 8)
    per_second = area_curve_smoothness(curve, frame_time_ms=20.0)
    assert per_second == pytest.approx((6 / 0.02**2) ** 2 * 8 * 0.02)
    assert area_curve_smoothness(2 * curve, normalise=True) == pytest.approx(
        area_curve_smoothness(curve, normalise=True)
    )
    assert np.isnan(area_curve_smoothness(np.ones(2)))


def test_agreement_by_hand():
    ref = np.array([50.0, 60.0, 40.0, 55.0, np.nan])
    pred = np.array([52.0, 59.0, 43.0, 55.0, 70.0])
    a = agreement(pred, ref)
    diff = np.array([2.0, -1.0, 3.0, 0.0])
    assert a.n == 4
    assert a.bias == pytest.approx(diff.mean())
    assert a.mae == pytest.approx(np.abs(diff).mean())
    assert a.sd == pytest.approx(diff.std(ddof=1))
    assert a.loa_high == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
    assert a.pearson_r == pytest.approx(np.corrcoef(pred[:4], ref[:4])[0, 1])


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(0.93, 0.02, size=200)
    low, high = bootstrap_ci(values, seed=1)
    assert low < values.mean() < high
    # Normal-theory 95 % half-width 1.96 * sd / sqrt(n): the bootstrap is close to it.
    assert (high - low) / 2 == pytest.approx(1.96 * values.std() / np.sqrt(200), rel=0.15)
    assert bootstrap_ci(values, seed=1) == (low, high)
    low90, high90 = bootstrap_ci(values, seed=1, confidence=0.90)
    assert high90 - low90 < high - low
    pred, ref = values + 0.01, values
    mae = bootstrap_ci(pred, ref, statistic=lambda p, r: np.mean(np.abs(p - r)))
    assert mae == pytest.approx((0.01, 0.01))


def test_evaluate_sequence_perfect_and_shifted():
    shape = (64, 48)
    semi_minor = [14, 12, 10, 12]
    labels = np.zeros((4, *shape), np.uint8)
    for t, b in enumerate(semi_minor):
        labels[t][ellipse(shape, (32, 24), 25, b + 4)] = 2
        labels[t][ellipse(shape, (32, 24), 22, b)] = 1
    ref = EchoSequence(
        frames=np.zeros((4, *shape), np.float32),
        spacing=(0.5, 0.5),
        frame_time_ms=20.0,
        labels=labels,
        metadata={"reference": {"EF": 40.0}},
    )
    perfect = evaluate_sequence(labels, ref, name="s0")
    s = perfect.summary
    assert s["dice_lv"] == 1.0 and s["hd95_lv"] == 0.0 and s["dice_myo"] == 1.0
    assert np.isnan(s["dice_la"])  # LA not in the reference: not scored
    assert (s["ed_index"], s["es_index"]) == (0, 2)
    assert s["ef_pred"] == s["ef_ref"] and s["ef_file"] == 40.0
    assert s["distance_unit"] == "mm" and s["volume_unit"] == "mL"
    shifted = evaluate_sequence(np.roll(labels, 2, axis=2), ref, name="s1").summary
    assert shifted["hd_lv"] == pytest.approx(1.0)  # 2 pixels of 0.5 mm
    assert shifted["dice_lv"] < 1.0
    assert len(perfect.areas) == 4 * 3


def test_jacobian_statistics_of_affine_and_folding_fields():
    from echo_napari.metrics_stats import jacobian_statistics

    yy, xx = np.mgrid[:32, :40].astype(np.float32)
    a = np.array([[1.1, 0.2], [-0.1, 0.9]])  # x' = A x, det = 1.01
    u = np.stack([(a[0, 0] - 1) * yy + a[0, 1] * xx, a[1, 0] * yy + (a[1, 1] - 1) * xx])
    fold = np.stack([np.zeros_like(yy), -2.0 * xx])  # dx/dx = -1 everywhere: all folded
    stats_affine, stats_fold = jacobian_statistics(np.stack([u, fold]).astype(np.float32))
    assert stats_affine.mean == pytest.approx(np.linalg.det(a), abs=1e-4)
    assert stats_affine.folding_fraction == 0.0
    assert stats_affine.log_std == pytest.approx(0.0, abs=1e-4)
    assert stats_affine.percentiles[3] == pytest.approx(np.linalg.det(a), abs=1e-4)
    assert stats_fold.folding_fraction == 1.0 and np.isnan(stats_fold.log_std)
    assert len(jacobian_statistics(u.astype(np.float32))) == 1


def test_simpson_matches_echonet_style_tracing_chords():
    """Independent route: the IO package's EchoNet tracing (long axis + 20 chords) of the
    same mask, volume Σ π/4 d² L/20 as EchoNet's FileList volumes are computed."""
    from echo_napari.io import mask_to_volume_tracing
    from echo_napari.simulate import seeds, simulate_sequence

    seq = simulate_sequence(seeds("test", 1)[0]).sequence
    spacing = seq.spacing
    assert spacing[0] == pytest.approx(spacing[1])  # tracings are in (isotropic) pixels
    volumes = {}
    for t in (seq.ed_index, seq.es_index):
        mask = seq.labels[t] == 1
        tracing = mask_to_volume_tracing(mask)
        length = np.hypot(*(tracing[0, 2:] - tracing[0, :2])) * spacing[0]
        chords = np.hypot(*(tracing[1:, 2:] - tracing[1:, :2]).T) * spacing[0]
        from_tracing = np.sum(np.pi / 4 * chords**2) * length / 20 / 1000
        ours = volume_simpson(mask, spacing)
        assert ours == pytest.approx(from_tracing, rel=0.04)
        volumes[t] = (ours, from_tracing)
    ef_ours = ejection_fraction(volumes[seq.ed_index][0], volumes[seq.es_index][0])
    ef_tracing = ejection_fraction(volumes[seq.ed_index][1], volumes[seq.es_index][1])
    assert ef_ours == pytest.approx(ef_tracing, abs=1.5)


def test_evaluate_sequence_without_reference_labels_measures_ef_only():
    shape = (64, 48)
    labels = np.zeros((4, *shape), np.uint8)
    for t, b in enumerate([14, 12, 10, 12]):
        labels[t][ellipse(shape, (32, 24), 22, b)] = 1
    ref = EchoSequence(
        frames=np.zeros((4, *shape), np.float32), metadata={"reference": {"EF": 45.0}}
    )
    result = evaluate_sequence(labels, ref, name="video")
    s = result.summary
    assert np.isnan(s["dice_lv"]) and np.isnan(s["ef_ref"]) and s["ef_file"] == 45.0
    assert (s["ed_index"], s["es_index"]) == (0, 2)
    assert s["ef_pred"] == pytest.approx(100 * (1 - (10 / 14) ** 2), abs=1.5)
    assert s["volume_unit"] == "px3/1000" and len(result.frames) == 0
