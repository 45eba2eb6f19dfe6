"""Clips at other frame rates (echo_napari.frame_rate) in the network and the beat rule."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from echo_napari.frame_rate import (
    clip_positions,
    needs_resampling,
    reference_positions,
    sample_in_time,
)
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.sequence import LabelClass


@pytest.mark.parametrize(
    ("frame_time", "expected"),
    [
        (None, False),
        (20.0, False),
        (17.857, False),
        (22.5, False),
        (40.0, True),
        (10.0, True),
        (0.0, False),
        (float("nan"), False),
    ],
)
def test_which_clips_are_resampled(frame_time, expected):
    assert needs_resampling(frame_time) is expected


def test_sampling_in_time_numpy_and_lazy_and_back():
    frames = np.random.default_rng(0).random((9, 4, 5)).astype(np.float32)
    positions = reference_positions(9, 40.0)  # 25 /s -> 50 /s: 17 samples
    assert positions.size == 17 and positions[-1] == 8
    up = sample_in_time(frames, positions)
    np.testing.assert_allclose(up[::2], frames, atol=1e-6)  # the clip's own frames kept
    np.testing.assert_allclose(up[1], (frames[0] + frames[1]) / 2, atol=1e-6)
    np.testing.assert_allclose(np.asarray(sample_in_time(da.from_array(frames), positions)), up)
    back = sample_in_time(up, clip_positions(9, 40.0))
    np.testing.assert_allclose(back, frames, atol=1e-6)
    probs = np.random.default_rng(1).random((17, 4, 3, 3)).astype(np.float32)
    assert sample_in_time(probs, clip_positions(9, 40.0)).shape == (9, 4, 3, 3)


def _beating_disc(n_frames: int, frame_time_ms: float, period_ms: float = 800.0) -> np.ndarray:
    """A disc whose radius follows a cardiac-like cycle: slow filling, quick ejection."""
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((n_frames, 64, 64), np.uint8)
    for t in range(n_frames):
        phase = (t * frame_time_ms % period_ms) / period_ms
        squeeze = np.sin(np.pi * phase / 0.35) if phase < 0.35 else 0.0
        radius = 22 - 9 * squeeze
        labels[t][np.hypot(yy - 32, xx - 32) <= radius] = LabelClass.LV_CAVITY
    return labels


def test_beat_ef_at_25_frames_per_second_matches_50():
    native = ef_by_beats(_beating_disc(200, 20.0))
    clip = _beating_disc(100, 40.0)
    resampled = ef_by_beats(clip, frame_time_ms=40.0)
    assert len(native.beats) >= 3 and len(resampled.beats) == len(native.beats)
    assert resampled.ef == pytest.approx(native.ef, abs=3.0)
    assert resampled.curve.shape == (100,)
    for (ed, es, _), (ed50, es50, _) in zip(resampled.beats, native.beats, strict=True):
        assert abs(ed - ed50 / 2) <= 1 and abs(es - es50 / 2) <= 1  # the clip's own frames


def test_the_network_sees_the_clip_at_50_frames_per_second(monkeypatch):
    import echo_napari.segmentation.inference as inference
    from echo_napari.segmentation.model import UNetConfig, build_model
    from echo_napari.segmentation.weights import SegmentationModel

    seen = []
    real = inference.predict_probabilities

    def spy(frames, *args, **kwargs):
        seen.append(int(frames.shape[0]))
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(inference, "predict_probabilities", spy)
    network = build_model(UNetConfig(channels=(4, 4, 8, 8, 8), clip_len=8, size=32)).eval()
    model = SegmentationModel(network=network, card={"name": "seg", "version": "t"})
    frames = np.random.default_rng(0).random((20, 32, 32)).astype(np.float32)
    labels = inference.predict_sequence(frames, model, frame_time_ms=40.0, refine=False)
    assert labels.shape == (20, 32, 32) and seen == [39, 39]  # both directions, 50 /s
    seen.clear()
    inference.predict_sequence(frames, model, frame_time_ms=20.0, refine=False)
    assert seen == [20, 20]
