"""Mean-teacher self-training on unlabelled videos: mechanics, safety and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_segmentation import TINY, phantom, phantom_trained_model, tiny_model

from echo_napari.errors import SequenceError
from echo_napari.segmentation import TrainConfig, make_sample, predict_sequence
from echo_napari.segmentation.evaluate import mean_dice
from echo_napari.segmentation.self_training import (
    SelfTrainConfig,
    pseudo_labels,
    self_train_steps,
    update_teacher,
)
from echo_napari.segmentation.training import frame_weights


def _labelled():
    frames, labels = phantom(24, 32, seed=7)
    return [make_sample(frames, labels, frame_weights(24, range(24)), TINY.size)]


def _videos():
    # Unlabelled "real" videos: same anatomy, darker and noisier than the labelled data.
    return [np.clip(phantom(24, 32, seed=s)[0] * 0.7, 0, 1) for s in (11, 12)]


def test_update_teacher_is_an_exponential_moving_average():
    student, teacher = tiny_model(seed=1).network, tiny_model(seed=2).network
    before = [p.detach().clone() for p in teacher.parameters()]
    update_teacher(teacher, student, ema=0.75)
    for t, b, s in zip(teacher.parameters(), before, student.parameters(), strict=True):
        assert torch.allclose(t, 0.75 * b + 0.25 * s)


def test_pseudo_labels_keep_only_confident_pixels():
    network = tiny_model().network.eval()
    clips = torch.randn(1, 1, 8, 32, 32)
    labels, mask = pseudo_labels(network, clips, confidence=0.0)
    assert labels.shape == (1, 8, 32, 32) and bool(mask.all())
    _, none = pseudo_labels(network, clips, confidence=1.01)
    assert not none.any()


def test_self_training_keeps_a_trained_model_working_and_returns_the_teacher():
    model = copy.deepcopy(phantom_trained_model())
    frames, labels = phantom(24, 32, seed=9)
    before = mean_dice(predict_sequence(frames, model), labels)["lv"]
    config = TrainConfig(steps=12, clip_len=8, lr=1e-3, warmup_steps=2)
    records = list(
        self_train_steps(model.network, _labelled(), _videos(), config, SelfTrainConfig(ema=0.9))
    )
    assert [r.phase for r in records] == ["self-training"] * 12
    assert all(0.0 <= r.terms["confident"] <= 1.0 and np.isfinite(r.loss) for r in records)
    after = mean_dice(predict_sequence(frames, model), labels)["lv"]
    assert before > 0.8 and after > before - 0.05
    assert not model.network.training


def test_self_training_can_be_cancelled():
    model = tiny_model()
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    config = TrainConfig(steps=50, clip_len=8)
    records = list(self_train_steps(model.network, _labelled(), _videos(), config, None, stop))
    assert len(records) == 3


@pytest.mark.parametrize(
    "videos, message",
    [([], "needs labelled samples and unlabelled videos"), ([np.zeros((8, 16, 16))], "video 0")],
)
def test_self_training_rejects_bad_videos(videos, message):
    with pytest.raises(SequenceError, match=message):
        list(self_train_steps(tiny_model().network, _labelled(), videos, TrainConfig(steps=1)))
