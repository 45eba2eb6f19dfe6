"""Weak supervision by reported EF: the differentiable EF, the loss, beats and training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_segmentation import TINY, phantom, phantom_trained_model, tiny_model

from echo_napari.errors import SequenceError
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_volume import volume_area_length
from echo_napari.segmentation import TrainConfig, make_sample, predict_sequence
from echo_napari.segmentation.ef_supervision import (
    EFSupervisionConfig,
    EFVideo,
    _centred_index,
    beat_clips,
    ef_loss,
    ef_supervision_steps,
    find_beats,
    predicted_ef,
)
from echo_napari.segmentation.training import frame_weights


def _ellipse_logits(radii: list[tuple[float, float]], size: int = 48, clip_len: int = 4):
    """(2B, 4, L, S, S) logits that are confidently LV inside ellipses of the given radii."""
    yy, xx = np.mgrid[0:size, 0:size]
    masks = [((yy - 24) / ry) ** 2 + ((xx - 24) / rx) ** 2 <= 1 for ry, rx in radii]
    logits = torch.full((len(radii), 4, clip_len, size, size), -20.0)
    for i, mask in enumerate(masks):
        logits[i, 1, :, torch.from_numpy(mask)] = 20.0
        logits[i, 0, :, torch.from_numpy(~mask)] = 20.0
    return logits, masks


def test_predicted_ef_matches_area_length_on_hard_masks():
    logits, masks = _ellipse_logits([(18, 10), (14, 7), (16, 9), (16, 9)])
    ef = predicted_ef(logits, clip_len=4)
    volumes = [volume_area_length(m, None) for m in masks]
    expected = [100 * (1 - volumes[1] / volumes[0]), 0.0]
    assert ef.shape == (2,)
    np.testing.assert_allclose(ef.numpy(), expected, atol=0.5)


def test_predicted_ef_has_a_gradient_through_the_areas():
    logits, _ = _ellipse_logits([(18, 10), (14, 7)])
    logits = (logits / 20.0).requires_grad_()
    predicted_ef(logits, clip_len=4).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_ef_loss_ignores_errors_within_the_tolerance():
    config = EFSupervisionConfig(tolerance=3.0, scale=10.0)
    reported = torch.tensor([60.0, 60.0])
    assert float(ef_loss(torch.tensor([58.0, 62.5]), reported, config)) == 0.0
    small = float(ef_loss(torch.tensor([50.0, 60.0]), reported, config))
    large = float(ef_loss(torch.tensor([30.0, 60.0]), reported, config))
    assert 0.0 < small < large


def test_centred_index_reflects_at_the_edges():
    assert _centred_index(10, 5, 4).tolist() == [3, 4, 5, 6]
    assert _centred_index(10, 0, 4).tolist() == [2, 1, 0, 1]
    assert _centred_index(10, 9, 4).tolist() == [7, 8, 9, 8]


def test_find_beats_and_beat_clips_on_a_phantom():
    _, labels = phantom(48, 32, seed=3, period=16)
    beats = find_beats(labels)
    assert len(beats) >= 2 and all(es > ed for ed, es in beats)
    areas = (labels == 1).sum((1, 2))
    assert all(areas[ed] > areas[es] for ed, es in beats)
    video = EFVideo(np.zeros((48, 32, 32), np.float32), 55.0, beats, "p")
    clips, efs = beat_clips([video], 3, 6, np.random.default_rng(0))
    assert clips.shape == (3, 12, 32, 32) and efs.tolist() == [55.0] * 3


def _labelled():
    frames, labels = phantom(24, 32, seed=7)
    return [make_sample(frames, labels, frame_weights(24, range(24)), TINY.size)]


def test_ef_supervision_moves_the_ef_towards_the_report():
    model = copy.deepcopy(phantom_trained_model())
    frames, labels = phantom(48, 32, seed=21, period=16)
    before = ef_by_beats(predict_sequence(frames, model)).ef
    truth = ef_by_beats(labels).ef
    video = EFVideo(frames, truth + 25.0, find_beats(predict_sequence(frames, model)), "p")
    config = TrainConfig(steps=40, clip_len=8, lr=2e-3, warmup_steps=2, batch_size=1)
    ef_config = EFSupervisionConfig(ef_weight=5.0, tolerance=1.0)
    records = list(ef_supervision_steps(model.network, _labelled(), [video], config, ef_config))
    assert [r.phase for r in records] == ["ef-supervision"] * 40
    assert all(np.isfinite(r.loss) for r in records)
    after = ef_by_beats(predict_sequence(frames, model)).ef
    assert abs(before - truth) < 8.0
    assert after > before + 3.0
    assert not model.network.training


def test_ef_supervision_can_be_cancelled():
    frames, labels = phantom(24, 32, seed=5)
    video = EFVideo(frames, 60.0, find_beats(labels), "p")
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    records = list(
        ef_supervision_steps(
            tiny_model().network,
            _labelled(),
            [video],
            TrainConfig(steps=50, clip_len=8),
            None,
            stop,
        )
    )
    assert len(records) == 2


@pytest.mark.parametrize(
    "videos, message",
    [
        ([], "needs labelled samples and videos with beats"),
        ([EFVideo(np.zeros((8, 16, 16), np.float32), 60.0, ((1, 4),), "small")], "small"),
    ],
)
def test_ef_supervision_rejects_bad_videos(videos, message):
    with pytest.raises(SequenceError, match=message):
        list(ef_supervision_steps(tiny_model().network, _labelled(), videos, TrainConfig(steps=1)))


def test_the_anchor_keeps_the_starting_models_sure_pixels():
    frames, labels = phantom(48, 32, seed=21, period=16)
    start = phantom_trained_model()
    before = predict_sequence(frames, start)
    video = EFVideo(frames, ef_by_beats(labels).ef + 25.0, find_beats(before), "p")
    config = TrainConfig(steps=30, clip_len=8, lr=2e-3, warmup_steps=2, batch_size=1)
    changed = {}
    for anchor in (0.0, 5.0):
        model = copy.deepcopy(start)
        ef_config = EFSupervisionConfig(ef_weight=5.0, tolerance=1.0, anchor_weight=anchor)
        records = list(
            ef_supervision_steps(model.network, _labelled(), [video], config, ef_config)
        )
        assert ("anchor_ce" in records[-1].terms) == (anchor > 0)
        changed[anchor] = float(np.mean(predict_sequence(frames, model) != before))
    assert changed[5.0] < changed[0.0]
