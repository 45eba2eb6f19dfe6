"""Frames on which the LV lost its apex: found from the tip's jumps, re-drawn by registration."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.field_of_view import square_apex_point
from echo_napari.metrics import dice_coefficient as dice
from echo_napari.metrics_apex import (
    APEX_JUMP_SHARE,
    apex_collapses,
    apex_depth,
    collapsed_frames,
)
from echo_napari.registration import DirnetBackend
from echo_napari.registration.apex_restore import restore_collapsed_apex
from echo_napari.segmentation.prediction_notes import postprocess_notes
from echo_napari.sequence import LabelClass
from echo_napari.simulate import SimulationParams, simulate_sequence

LV, MYO = int(LabelClass.LV_CAVITY), int(LabelClass.MYOCARDIUM)


def lose_apex(labels: np.ndarray, keep: float = 0.3) -> np.ndarray:
    """(H, W) labels whose LV keeps only its basal ``keep`` of rows, the rest wall: the
    apical cavity taken for myocardium, as the network does in apical haze."""
    out = labels.copy()
    rows = np.flatnonzero((labels == LV).any(axis=1))
    cut = rows[-1] - int(keep * (rows[-1] - rows[0]))
    out[:cut][out[:cut] == LV] = MYO
    return out


def beating(n: int = 30, size: int = 112) -> np.ndarray:
    """(n, size, size) uint8: an LV ellipse whose apex stays ~14 px under the probe while
    its base rises and falls (the ventricle shortens from its base)."""
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size), np.uint8)
    for t in range(n):
        base = 80 - 8 * np.sin(np.pi * t / n) ** 2
        half_width = 16 - 4 * np.sin(np.pi * t / n) ** 2
        centre, half_length = (base + 22) / 2, (base - 22) / 2
        cavity = ((yy - centre) / half_length) ** 2 + ((xx - 56) / half_width) ** 2 <= 1
        out[t][cavity] = LV
    return out


@pytest.fixture(scope="module")
def simulated():
    return simulate_sequence(5, SimulationParams(frames_per_cycle=24)).sequence


def test_apex_depth_is_the_nearest_lv_pixel_to_the_probe() -> None:
    lv = np.zeros((2, 20, 20), bool)
    lv[0, 10:15, 8:12] = True
    depth = apex_depth(lv, (0.0, 10.0))
    assert depth[0] == pytest.approx(10.0) and np.isnan(depth[1])


def test_a_tip_that_jumps_away_and_back_is_a_lost_apex() -> None:
    labels = beating()
    probe = square_apex_point(labels.shape[1:])
    assert apex_collapses(labels, probe) == []  # a base that moves is a heart's motion
    broken = labels.copy()
    for t in range(12, 17):
        broken[t] = lose_apex(labels[t])
    assert apex_collapses(broken, probe) == [(11, 17)]
    np.testing.assert_array_equal(np.flatnonzero(collapsed_frames([(11, 17)], 30)), range(12, 17))
    # gone for longer than a systole (here 5 frames of 80 ms): a different view, not a jump
    assert apex_collapses(broken, probe, frame_time_ms=80.0) == []
    # lost and never found again: nothing to carry from on the far side
    never = labels.copy()
    for t in range(20, 30):
        never[t] = lose_apex(labels[t])
    assert apex_collapses(never, probe) == []


def test_a_small_step_of_the_tip_is_not_a_jump() -> None:
    labels = beating()
    probe = square_apex_point(labels.shape[1:])
    shifted = labels.copy()
    # the whole cavity moved 2 px down for 4 frames: a tenth of its length is ~6 px
    shifted[12:16] = np.roll(labels[12:16], 2, axis=1)
    assert 2 < APEX_JUMP_SHARE * 58
    assert apex_collapses(shifted, probe) == []
    # the tip jumps, but the area hardly changes: no lost cavity either
    moved = labels.copy()
    moved[12:16] = np.roll(labels[12:16], 8, axis=1)
    assert apex_collapses(moved, probe) == []


def test_lost_apex_frames_are_redrawn_from_the_frames_either_side(simulated) -> None:
    frames, truth = simulated.frames_array(), simulated.labels
    probe = square_apex_point(truth.shape[1:])
    broken = truth.copy()
    for t in range(9, 13):
        broken[t] = lose_apex(truth[t])
    assert all(dice(broken[t] == LV, truth[t] == LV) < 0.6 for t in range(9, 13))
    result = restore_collapsed_apex(frames, broken, probe, backend=DirnetBackend(threads=1))
    assert result.stretches == [(8, 13)] and result.redrawn.tolist() == [9, 10, 11, 12]
    for t in range(9, 13):
        assert dice(result.labels[t] == LV, truth[t] == LV) > 0.9
    untouched = [t for t in range(truth.shape[0]) if not 9 <= t <= 12]
    np.testing.assert_array_equal(result.labels[untouched], broken[untouched])
    assert broken[10].tolist() == lose_apex(truth[10]).tolist()  # input left as it was


def test_frames_larger_than_the_labels_are_registered_on_their_grid(simulated) -> None:
    frames, truth = simulated.frames_array(), simulated.labels
    large = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)
    broken = truth.copy()
    for t in range(9, 13):
        broken[t] = lose_apex(truth[t])
    probe = square_apex_point(truth.shape[1:])
    result = restore_collapsed_apex(large, broken, probe, backend=DirnetBackend(threads=1))
    assert result.redrawn.tolist() == [9, 10, 11, 12]
    assert all(dice(result.labels[t] == LV, truth[t] == LV) > 0.85 for t in range(9, 13))


def test_no_lost_apex_needs_no_backend(simulated) -> None:
    def no_backend():
        raise AssertionError("a backend was made with nothing to re-draw")

    truth = simulated.labels
    result = restore_collapsed_apex(
        simulated.frames_array(), truth, square_apex_point(truth.shape[1:]), backend=no_backend
    )
    assert result.labels is truth and result.redrawn.size == 0 and result.backend is None


def test_the_status_line_says_so() -> None:
    assert postprocess_notes({"apex_restored": 4}) == [
        "apex lost on 4 frames: re-drawn from the frames either side"
    ]
    assert postprocess_notes({"apex_restored": 0}) == []


def test_cli_predict_redraws_lost_apex_frames_as_propagated(simulated, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import echo_napari.segmentation as segmentation
    from echo_napari.cli_compute import predict_one
    from echo_napari.io import read_sequence, write_sequence
    from echo_napari.sequence import ProvenanceKind

    broken = simulated.labels.copy()
    for t in range(9, 13):
        broken[t] = lose_apex(simulated.labels[t])
    monkeypatch.setattr(segmentation, "predict_sequence", lambda *a, **k: broken.copy())
    monkeypatch.setattr(
        segmentation, "load_model", lambda *a, **k: SimpleNamespace(name="seg", version="fake")
    )
    write_sequence(simulated, tmp_path / "s.h5")
    row = predict_one((str(tmp_path / "s.h5"), str(tmp_path / "o.h5"), {"refine": False}))
    assert row["apex_restored"] == 4
    out = read_sequence(tmp_path / "o.h5")
    kinds = [p.kind for p in out.provenance]
    assert [t for t, k in enumerate(kinds) if k == ProvenanceKind.PROPAGATED] == [9, 10, 11, 12]
    assert all(dice(out.labels[t] == LV, simulated.labels[t] == LV) > 0.85 for t in range(9, 13))
    row = predict_one(
        (str(tmp_path / "s.h5"), str(tmp_path / "p.h5"), {"refine": False, "shape_prior": False})
    )
    assert row["apex_restored"] == 0  # part of the plausible-shapes step


def test_predict_panel_job_redraws_lost_apex_frames_and_says_so(simulated, monkeypatch):
    from types import SimpleNamespace

    import echo_napari.segmentation.inference as inference
    from echo_napari.widgets.predict_panel import run_prediction

    broken = simulated.labels.copy()
    for t in range(9, 13):
        broken[t] = lose_apex(simulated.labels[t])
    monkeypatch.setattr(inference, "predict_sequence", lambda *a, **k: broken.copy())
    stages: list[str] = []
    output = run_prediction(
        simulated.frames_array(),
        lambda: SimpleNamespace(name="seg", version="fake"),
        progress=lambda stage, done, total: stages.append(stage),
        refine=False,
    )
    assert "restoring apex" in stages
    assert "apex lost on 4 frames: re-drawn from the frames either side" in output.cleaned
    for t in range(9, 13):
        assert dice(output.labels[t] == LV, simulated.labels[t] == LV) > 0.85
