"""The network's LV-border uncertainty: measure, flag, and where the user meets it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from echo_napari.sequence import FrameProvenance, ProvenanceKind
from echo_napari.uncertainty import (
    UNSURE_FLAG,
    count_unsure,
    lv_border_uncertainty,
    unsure_reason,
    unsure_score,
)


def _disc(size: int = 64, radius: float = 14.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2).astype(np.float32)


def test_a_sharp_border_is_sure_and_a_spread_one_is_not():
    sharp = _disc()
    spread = ndimage.gaussian_filter(sharp, 6.0)  # the network "sees" no clear wall
    haze = np.full_like(sharp, 0.4)  # no cavity above 0.5 at all
    u = lv_border_uncertainty(np.stack([sharp, spread, haze, np.zeros_like(sharp)]))
    assert u.shape == (4,) and u[0] == 0.0 and u[3] == 0.0
    assert u[1] >= UNSURE_FLAG
    assert u[2] == sharp.size  # every pixel unsure, no cavity: the count itself
    # a slightly soft border (as the network gives on a clear image) stays below the flag
    soft = lv_border_uncertainty(ndimage.gaussian_filter(sharp, 1.0)[None])[0]
    assert 0.0 < soft < UNSURE_FLAG
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        lv_border_uncertainty(sharp)


def test_the_score_starts_at_the_flag_where_a_failing_check_does():
    u = np.array([0.0, UNSURE_FLAG - 0.01, UNSURE_FLAG, 2 * UNSURE_FLAG, 9.0, np.nan])
    np.testing.assert_allclose(unsure_score(u), [0.0, 0.0, 0.5, 1.0, 1.0, 0.0])
    assert unsure_reason(UNSURE_FLAG - 0.01) == ""
    assert "unsure of the LV border (unsure pixels 75 %" in unsure_reason(0.75)
    drawn = np.array([True, False, True])
    assert count_unsure([0.9, 0.9, 0.1], drawn) == 1  # the unlabelled frame not counted
    assert count_unsure([], drawn) == 0 and count_unsure(None, drawn) == 0


def test_predict_sequence_reports_each_frames_uncertainty(monkeypatch):
    import echo_napari.segmentation.inference as inference
    from echo_napari.segmentation.model import UNetConfig, build_model
    from echo_napari.segmentation.weights import SegmentationModel

    n = 6
    lv = np.repeat(_disc()[None], n, axis=0)
    lv[3] = ndimage.gaussian_filter(lv[3], 6.0)  # one frame without a clear border
    probs = np.stack([1.0 - lv, lv, np.zeros_like(lv), np.zeros_like(lv)], axis=1)
    monkeypatch.setattr(inference, "predict_probabilities", lambda *a, **k: probs.copy())
    network = build_model(UNetConfig(channels=(4, 4, 8, 8, 8), clip_len=8, size=64)).eval()
    model = SegmentationModel(network=network, card={"name": "seg", "version": "t"})
    frames = np.random.default_rng(0).random(lv.shape).astype(np.float32)
    uncertainty: list[float] = []
    inference.predict_sequence(
        frames,
        model,
        refine=False,
        both_directions=False,
        crop_to_sector=False,
        clear_lost_view=False,
        uncertainty=uncertainty,
    )
    assert len(uncertainty) == n
    assert [u >= UNSURE_FLAG for u in uncertainty] == [False, False, False, True, False, False]


def test_accepted_unsure_frames_are_suspicious_say_why_and_are_saved(echo_sequence, tmp_path):
    from echo_napari.io import read_sequence, write_sequence
    from echo_napari.review_session import ReviewSession
    from echo_napari.uncertainty import UNCERTAINTY_KEY

    echo_sequence.keyframes.clear()
    session = ReviewSession(echo_sequence)
    n = session.sequence.n_frames
    uncertainty = np.full(n, 0.1)
    uncertainty[[3, 5, 9]] = 0.9
    prov = FrameProvenance(ProvenanceKind.PREDICTED, "seg", "seg_v3")
    predicted = session.labels.copy()
    predicted[9] = 0  # the network drew nothing here: not an unsure LV
    session.set_second_source(predicted, prov, uncertainty=uncertainty)
    assert session.second_source.n_unsure() == 2
    assert session.unsure_scores().max() == 0.0  # nothing accepted yet
    session.accept_second_source(0, 7)
    stored = session.sequence.metadata[UNCERTAINTY_KEY]
    assert stored[3] == 0.9 and stored[0] == 0.1 and stored[9] is None  # 9 not accepted
    assert np.flatnonzero(session.unsure_scores()).tolist() == [3, 5]
    # with frame 9 (disagreeing with the prediction) they top the ranking
    assert set(session.suspicious_frames()[:3]) == {3, 5, 9}
    assert any("unsure of the LV border" in r for r in session.implausibility_reasons(3))
    # painted over by a human: the labels are no longer the network's
    session.labels_edited([5])
    assert session.unsure_scores()[5] == 0.0
    assert not any("unsure" in r for r in session.implausibility_reasons(5))
    # kept in a saved session: reopened, frame 3 is still flagged
    write_sequence(session.sequence, tmp_path / "s.h5")
    reopened = ReviewSession(read_sequence(tmp_path / "s.h5"))
    assert np.flatnonzero(reopened.unsure_scores()).tolist() == [3]


def test_predict_cli_counts_the_unsure_frames(tmp_path, monkeypatch):
    import echo_napari.segmentation as segmentation
    from echo_napari.cli_compute import predict_one
    from echo_napari.io import write_sequence
    from echo_napari.sequence import EchoSequence

    def unsure_on_two(frames, *args, uncertainty=None, **kwargs):
        labels = np.zeros(frames.shape, np.uint8)
        labels[:, 8:20, 10:22] = 1
        labels[1] = 0  # unsure but unlabelled: not counted
        uncertainty[:] = [0.1, 0.9, 0.9, 0.7, 0.2, 0.1, 0.1, 0.1]
        return labels

    class Named:
        name, version = "seg", "none"

    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: Named())
    monkeypatch.setattr(segmentation, "predict_sequence", unsure_on_two)
    clip = np.random.default_rng(1).random((8, 32, 32)).astype(np.float32)
    write_sequence(EchoSequence(frames=clip, spacing=(0.5, 0.5)), tmp_path / "c.h5")
    row = predict_one((str(tmp_path / "c.h5"), str(tmp_path / "oc.h5"), {"refine": False}))
    assert row["unsure"] == 2
    # the written file, reviewed in the dock, points at the same frames
    from echo_napari.io import read_sequence
    from echo_napari.review_session import ReviewSession

    session = ReviewSession(read_sequence(tmp_path / "oc.h5"))
    assert np.flatnonzero(session.unsure_scores()).tolist() == [2, 3]
