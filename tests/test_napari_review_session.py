"""ReviewSession: the evented, Qt-free review state (areas per frame, provenance, keyframes)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from echo_napari.errors import SequenceError
from echo_napari.metrics import class_areas_mm2
from echo_napari.review_session import ReviewSession
from echo_napari.sequence import FrameProvenance, ProvenanceKind
from echo_napari.sequence_facts import provenance_from_facts, sequence_facts


def test_load_computes_all_areas_in_mm2(echo_sequence):
    session = ReviewSession(echo_sequence)
    expected = class_areas_mm2(echo_sequence.labels, (0.4, 0.3))
    np.testing.assert_allclose(session.areas, expected)
    assert session.area_unit == "mm²"
    # LV cavity area shrinks towards ES in the fixture
    assert session.areas[8, 1] < session.areas[0, 1]


def test_labels_edited_recomputes_only_that_frame_and_marks_manual_keyframe(echo_sequence):
    session = ReviewSession(echo_sequence)
    emitted: dict[str, list] = {"areas": [], "provenance": [], "keyframes": []}
    session.events.areas.connect(lambda f: emitted["areas"].append(f))
    session.events.provenance.connect(lambda f: emitted["provenance"].append(f))
    session.events.keyframes.connect(lambda: emitted["keyframes"].append(True))
    before = session.areas.copy()
    # change frame 5 directly in the shared array, and frame 9 too without telling it
    session.labels[5, :10, :10] = 1
    session.labels[9, :10, :10] = 1
    session.labels_edited(5)
    assert session.areas[5, 1] == pytest.approx(before[5, 1] + 100 * 0.4 * 0.3)
    np.testing.assert_array_equal(session.areas[9], before[9])  # not recomputed
    assert emitted["areas"][-1].tolist() == [5]
    assert session.sequence.provenance[5].kind is ProvenanceKind.MANUAL
    assert 5 in session.sequence.keyframes and emitted["keyframes"]


def test_refresh_areas_emits_only_when_changed(echo_sequence):
    session = ReviewSession(echo_sequence)
    seen = []
    session.events.areas.connect(seen.append)
    assert session.refresh_areas(3).size == 0 and seen == []
    session.labels[3, 0, 0] = 3
    assert session.refresh_areas([3, 4]).tolist() == [3]
    assert seen[-1].tolist() == [3]
    assert session.sequence.provenance[3].kind is ProvenanceKind.NONE


def test_write_labels_sets_provenance_and_checks_shape(echo_sequence):
    session = ReviewSession(echo_sequence)
    prov = FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1")
    new = np.zeros((2, 48, 48), dtype=np.uint8)
    session.write_labels([2, 3], new, prov)
    assert session.areas[2, 1:].sum() == 0 and session.sequence.provenance[3] == prov
    with pytest.raises(SequenceError, match="must be"):
        session.write_labels([1], np.zeros((1, 5, 5), np.uint8), prov)


def test_write_labels_takes_shape_features_computed_by_the_job(echo_sequence, monkeypatch):
    import echo_napari.shape_memo as memo_module
    from echo_napari.metrics_plausibility import frame_plausibility, shape_features

    session = ReviewSession(echo_sequence)
    session.suspicion_scores()
    prov = FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1")
    new = np.flip(session.labels[[4, 6]], axis=1).copy()  # LA above the LV
    features = shape_features(new)
    seen = []
    original = memo_module.grid_shape_features

    def counted(grid, labelled):
        seen.append(len(grid))
        return original(grid, labelled)

    monkeypatch.setattr(memo_module, "grid_shape_features", counted)
    session.write_labels([4, 6], new, prov, shapes=features)
    session.suspicion_scores()
    assert seen == []  # nothing recomputed on the caller's (GUI) thread
    expected = frame_plausibility(session.labels).score
    np.testing.assert_allclose(session.plausibility.score, expected)
    assert expected[4] == 1.0
    with pytest.raises(SequenceError, match="shape features for 2 frames"):
        session.write_labels([4], new[:1], prov, shapes=features)


def test_accepting_a_prediction_reuses_what_its_job_computed(echo_sequence, monkeypatch):
    import echo_napari.review_session as review_module
    from echo_napari.metrics_plausibility import frame_plausibility, shape_features
    from echo_napari.second_source import label_disagreement

    session = ReviewSession(echo_sequence)
    session.suspicion_scores()
    predicted = np.flip(session.labels, axis=1).copy()  # LA above the LV: implausible
    prov = FrameProvenance(ProvenanceKind.PREDICTED, "seg", "seg_v3+refined")
    session.set_second_source(predicted, prov, shape_features(predicted))
    calls = []
    import echo_napari.shape_memo as memo_module

    for module, name in (
        (memo_module, "grid_shape_features"),
        (review_module, "class_areas_mm2"),
        (review_module, "label_disagreement"),
    ):
        original = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k),
        )
    written = session.accept_second_source(2, 6)
    session.suspicion_scores()
    assert calls == []  # areas, shapes and disagreement come from the prediction's job
    # ... and equal what a full recomputation gives
    n = session.sequence.n_frames
    expected_areas = class_areas_mm2(session.labels, session.sequence.spacing)
    np.testing.assert_allclose(session.areas, expected_areas)
    expected_score = frame_plausibility(session.labels).score
    np.testing.assert_allclose(session.plausibility.score, expected_score)
    source = session.second_source
    np.testing.assert_allclose(
        source.disagreement, label_disagreement(session.labels, source.labels), atol=1e-12
    )
    assert written.size and all(session.sequence.provenance[t] == prov for t in written)
    assert n == session.labels.shape[0] and expected_score[written].max() == 1.0


def test_keyframe_navigation_and_toggle(echo_sequence):
    session = ReviewSession(echo_sequence)  # keyframes {0, 8}
    assert session.next_keyframe(0) == 8 and session.next_keyframe(8) is None
    assert session.previous_keyframe(8) == 0 and session.previous_keyframe(0) is None
    assert session.toggle_keyframe(4) is True
    assert session.sorted_keyframes() == [0, 4, 8]
    assert session.toggle_keyframe(4) is False
    with pytest.raises(SequenceError):
        session.set_keyframe(99)


def test_phase_override_and_reference_ef(echo_sequence):
    session = ReviewSession(echo_sequence)
    fired = []
    session.events.phases.connect(lambda: fired.append(1))
    session.set_phase("es", 7)
    assert session.sequence.es_index == 7 and fired
    with pytest.raises(SequenceError):
        session.set_phase("ed", 16)
    assert session.reference_ef() == pytest.approx(58.0)


def test_unknown_spacing_gives_pixel_areas(echo_sequence):
    echo_sequence.spacing = None
    session = ReviewSession(echo_sequence)
    assert session.area_unit == "px²"
    assert session.areas[0, 1] == float((echo_sequence.labels[0] == 1).sum())


def test_facts_round_trip_provenance(echo_sequence):
    echo_sequence.provenance[2] = FrameProvenance(ProvenanceKind.PREDICTED, "unet", "3")
    facts = sequence_facts(echo_sequence)
    assert facts["spacing"] == (0.4, 0.3) and facts["keyframes"] == [0, 8]
    assert provenance_from_facts(facts, 16) == echo_sequence.provenance


def test_unloaded_session_says_what_to_do():
    with pytest.raises(SequenceError, match="choose an echo image layer"):
        _ = ReviewSession().sequence


def test_session_and_hooks_import_without_qt():
    code = (
        "import sys, echo_napari.review_session, echo_napari.napari_hooks\n"
        "print(','.join(sorted(m for m in ('qtpy', 'PyQt5', 'napari', 'pyqtgraph') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_suspicion_ranks_a_one_frame_spike_first(echo_sequence):
    session = ReviewSession(echo_sequence)
    session.labels[6][session.labels[6] == 1] = 0
    session.refresh_areas(6)
    assert session.suspicious_frames()[0] == 6
    session.set_keyframe(6)  # a human confirmed it: no longer suspicious
    assert 6 not in session.suspicious_frames()
    session.set_result("disagreement", np.where(np.arange(16) == 12, 0.9, 0.0))
    assert session.suspicious_frames()[0] == 12


def test_ef_smoothness_and_phase_detection(echo_sequence):
    session = ReviewSession(echo_sequence)
    assert 30 < session.ejection_fraction() < 90
    assert session.lv_smoothness() > 0
    session.set_phase("ed", 5)
    assert session.detect_phases() == (0, 8)
    session.labels[:] = 0
    session.refresh_areas(range(16))
    assert session.ejection_fraction() is None
    with pytest.raises(SequenceError, match="no LV cavity"):
        session.detect_phases()


def _beating_clip(peak: tuple[float, ...], trough: tuple[float, ...]):
    """A 48 × 48 sequence of 20-frame beats, one per (peak, trough) LV radius pair, px."""
    from conftest import make_sequence

    seq = make_sequence(n_frames=20 * len(peak), size=48)
    yy, xx = np.mgrid[:48, :48]
    dist = np.hypot(yy - 19.2, xx - 24.0)
    for t in range(seq.n_frames):
        beat, phase = divmod(t, 20)
        lo, hi = trough[beat], peak[beat]
        radius = lo + (hi - lo) * (0.5 + 0.5 * np.cos(2 * np.pi * phase / 20))
        seq.labels[t][seq.labels[t] == 1] = 2
        seq.labels[t][dist <= radius] = 1
    return seq


def test_phase_detection_takes_ed_and_es_from_one_beat_of_a_clip():
    # Three beats; the largest ED is in the last beat, the smallest ES in the first.
    seq = _beating_clip(peak=(9.5, 10.0, 10.5), trough=(5.5, 6.5, 6.0))
    session = ReviewSession(seq)
    lv = session.areas[:, 1]
    assert np.argmax(lv) >= 40 and np.argmin(lv) < 20  # global extremes cross beats
    ed, es = session.detect_phases()
    assert 0 < es - ed <= 12  # ED and ES of the same beat
    assert (ed, es) == (20, 30)  # the beat of median area change


def test_phase_detection_skips_frames_without_a_ventricle():
    # Five beats; the largest ED is in the last beat, the smallest ES in the first.
    seq = _beating_clip(peak=(9.5, 10.0, 10.2, 10.3, 10.8), trough=(5.5, 6.5, 6.0, 6.2, 6.4))
    seq.labels[38:62] = 0  # the view is lost for a stretch: nothing labelled there
    session = ReviewSession(seq)
    ed, es = session.detect_phases()
    # One beat's ED and ES, both where there is a ventricle (before: the largest and the
    # smallest labelled frames, of any beat, as soon as one frame was unlabelled).
    assert 0 < es - ed <= 12
    assert not 38 <= ed < 62 and not 38 <= es < 62
    assert es % 20 == 10 and ed % 20 == 0


def test_suspicion_ranks_an_anatomically_implausible_frame_first(echo_sequence):
    session = ReviewSession(echo_sequence)
    # Upside down: every area unchanged (no curve spike), but the LA is above the LV.
    session.labels[9] = np.flip(session.labels[9], axis=0).copy()
    session.refresh_areas(9)
    assert session.suspicious_frames()[0] == 9
    assert session.suspicion_scores()[9] == 1.0
    assert session.implausibility_reasons(9) == [
        "LA on another side of the LV than in the other frames"
    ]
    assert session.implausibility_reasons(3) == []
    assert session.plausible_share() == 15 / 16
    session.labels[:] = 0
    session.refresh_areas(range(16))
    assert session.plausible_share() is None


def test_anatomical_checks_recompute_only_edited_frames(echo_sequence, monkeypatch):
    import echo_napari.shape_memo as memo_module
    from echo_napari.metrics_plausibility import frame_plausibility

    session = ReviewSession(echo_sequence)
    session.suspicion_scores()
    seen = []
    original = memo_module.grid_shape_features
    monkeypatch.setattr(
        memo_module,
        "grid_shape_features",
        lambda grid, labelled: seen.append(len(grid)) or original(grid, labelled),
    )
    session.labels[5] = np.flip(session.labels[5], axis=0).copy()
    session.labels_edited(5)
    scores = session.suspicion_scores()
    assert seen == [1]
    expected = frame_plausibility(session.labels).score
    np.testing.assert_allclose(session.plausibility.score, expected)
    assert scores[5] == 0.0  # a painted frame is a keyframe: the human has the last word


def test_disagreement_of_large_frames_is_taken_on_a_subsampled_grid(monkeypatch):
    import echo_napari.second_source as second_source
    from echo_napari.second_source import label_disagreement

    size = 2 * second_source.DISAGREEMENT_GRID_PX + 40
    yy, xx = np.mgrid[:size, :size]
    a = np.zeros((2, size, size), np.uint8)
    b = np.zeros_like(a)
    a[:, np.hypot(yy - size / 2, xx - size / 2) < size / 4] = 1
    b[:, np.hypot(yy - size / 2 - 7, xx - size / 2) < size / 4 - 5] = 1
    b[1] = a[1]
    fast = label_disagreement(a, b)
    monkeypatch.setattr(second_source, "DISAGREEMENT_GRID_PX", 10**6)  # every pixel
    full = label_disagreement(a, b)
    assert full[0] > 0.03 and full[1] == 0.0
    np.testing.assert_allclose(fast, full, atol=0.01)
    # some frames only: the same as comparing those frames' stacks
    monkeypatch.undo()
    np.testing.assert_array_equal(label_disagreement(a, b, frames=np.array([1])), fast[1:])
    np.testing.assert_array_equal(label_disagreement(a, b, frames=[1, 0]), fast[::-1])


def test_phase_detection_passes_over_a_beat_shorter_than_a_systole():
    # Five beats; on three of them the LV is cut short for three frames just after ED (as
    # the mitral-plane cut does to frames drawn over the atrium): deeper than their beat's
    # trough, 2-4 frames after its "ED". No heart ejects in 60 ms.
    seq = _beating_clip(peak=(9.5, 10.0, 10.2, 10.3, 10.8), trough=(7.0, 7.5, 7.2, 7.4, 6.0))
    yy, xx = np.mgrid[:48, :48]
    small = np.hypot(yy - 19.2, xx - 24.0) <= 6.0  # a third of the ED area: not "lost"
    for t in (22, 23, 24, 42, 43, 44, 62, 63, 64):
        seq.labels[t][seq.labels[t] == 1] = 2
        seq.labels[t][small] = 1
    ed, es = ReviewSession(seq).detect_phases()
    assert ed == 80 and 88 <= es <= 90  # the one beat left whole


def test_a_frame_whose_lv_jumps_says_so():
    seq = _beating_clip(peak=(9.5, 10.0, 10.2), trough=(5.5, 6.5, 6.0))
    session = ReviewSession(seq)
    assert all(not session.implausibility_reasons(t) for t in range(60))
    yy, xx = np.mgrid[:48, :48]
    session.labels[25][np.hypot(yy - 19.2, xx - 24.0) <= 4.0] = 2  # the cavity cut away
    session.refresh_areas(25)
    reasons = session.implausibility_reasons(25)
    assert len(reasons) == 1 and reasons[0].startswith("LV area -")
