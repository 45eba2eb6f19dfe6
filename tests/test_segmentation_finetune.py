"""Fine-tuning from corrections, model versions, and the bundled model on simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_segmentation import phantom, phantom_trained_model

from echo_napari.errors import ModelError, SequenceError
from echo_napari.segmentation import (
    fine_tune,
    fine_tune_steps,
    list_versions,
    load_model,
    predict_sequence,
    rollback,
    select_version,
    selected_version,
)
from echo_napari.segmentation.evaluate import mean_dice
from echo_napari.segmentation.weights import BUNDLED_STEM
from echo_napari.sequence import MANUAL, NO_PROVENANCE, EchoSequence

torch.set_num_threads(1)

CORRECTED = [0, 8, 16]


@pytest.fixture(autouse=True)
def user_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    return tmp_path / "user"


@pytest.fixture(scope="module")
def normal_contrast_model():
    """A tiny model trained on normal-contrast phantoms only."""
    return phantom_trained_model()


def inverted_case(seed: int, corrected=CORRECTED):
    """An inverted-contrast phantom whose ``corrected`` frames carry manual labels."""
    frames, truth = phantom(24, 32, seed, invert=True)
    labels = np.zeros_like(truth)
    labels[corrected] = truth[corrected]
    provenance = [MANUAL if t in corrected else NO_PROVENANCE for t in range(24)]
    sequence = EchoSequence(frames=frames, labels=labels, provenance=provenance)
    return sequence, truth


def held_out_dice(model, seeds=(20, 21)) -> float:
    scores = []
    for seed in seeds:
        sequence, truth = inverted_case(seed)
        pred = predict_sequence(sequence.frames, model)
        frames = [t for t in range(24) if t not in CORRECTED]
        scores.append(mean_dice(pred, truth, frames)["lv"])
    return float(np.mean(scores))


def test_fine_tune_fixes_a_systematically_different_case(normal_contrast_model, user_data):
    sequence, _ = inverted_case(20)
    before = held_out_dice(normal_contrast_model)
    records = []
    generator = fine_tune_steps(sequence, base=normal_contrast_model, steps=60, lr=3e-3)
    while True:
        try:
            records.append(next(generator))
        except StopIteration as stop:
            version = stop.value
            break
    assert [r.step for r in records] == list(range(1, 61))
    assert version is not None and not version.bundled
    assert version.parent == "tiny-base"
    assert version.path.parent == user_data / "models"
    after_model = load_model(version.id, "cpu")
    after = held_out_dice(after_model)
    assert before < 0.6
    assert after > before + 0.25
    dice_card = version.card["fine_tune"]["dice_on_corrected_frames"]
    assert dice_card["after"]["lv"] > dice_card["before"]["lv"]
    assert version.card["fine_tune"]["manual_frames"] == CORRECTED


def test_cancelled_fine_tune_writes_nothing(normal_contrast_model, user_data):
    sequence, _ = inverted_case(22)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    steps = []
    result = fine_tune(
        sequence,
        normal_contrast_model,
        steps=50,
        progress=lambda d, t: steps.append(d),
        should_stop=stop,
    )
    assert result is None
    assert len(steps) < 50
    folder = user_data / "models"
    assert not folder.exists() or not any(folder.iterdir())


def test_versions_never_overwrite_and_roll_back(normal_contrast_model, user_data):
    sequence, _ = inverted_case(23)
    first = fine_tune(sequence, normal_contrast_model, steps=2)
    second = fine_tune(sequence, first.id, steps=2)
    assert first.number < second.number and first.path != second.path
    assert second.parent == first.id
    ids = [v.id for v in list_versions()]
    assert first.id in ids and second.id in ids
    assert select_version(second.id).id == second.id
    assert selected_version().id == second.id
    assert rollback().id == first.id
    with pytest.raises(ModelError, match="tiny-base"):
        rollback()  # the in-memory base is no stored version
    with pytest.raises(ModelError, match="available"):
        select_version("seg_v999")


def test_fine_tune_needs_a_manual_frame(normal_contrast_model):
    frames, labels = phantom(16, 32)
    sequence = EchoSequence(frames=frames, labels=labels)  # no keyframe, no manual frame
    with pytest.raises(SequenceError, match="manually corrected"):
        fine_tune(sequence, normal_contrast_model, steps=1)
    with pytest.raises(SequenceError, match="with labels"):
        fine_tune(EchoSequence(frames=frames), normal_contrast_model, steps=1)


def test_unknown_model_name_raises_model_error():
    with pytest.raises(ModelError, match="neither"):
        load_model("no-such-model")


@pytest.mark.slow
def test_bundled_model_on_held_out_simulated_sequence():
    if not BUNDLED_STEM.with_suffix(".safetensors").is_file():
        pytest.fail(f"bundled weights missing: {BUNDLED_STEM}.safetensors")
    from echo_napari.segmentation.data import _simulator

    simulate_sequence, seeds = _simulator()
    sequence = simulate_sequence(seeds("test", 1)[0]).sequence
    model = load_model("bundled", "cpu")
    pred = predict_sequence(sequence.frames_array(), model)
    scores = mean_dice(pred, sequence.labels)
    assert scores["lv"] > 0.88
    assert scores["myocardium"] > 0.6


def test_sample_from_reviewed_sequence_weights_manual_and_propagated_frames():
    from echo_napari.segmentation import sample_from_sequence
    from echo_napari.sequence import FrameProvenance, ProvenanceKind

    frames, labels = phantom(12, 48)
    propagated = FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1")
    provenance = [MANUAL if t in (0, 6) else propagated for t in range(12)]
    sequence = EchoSequence(frames=frames, labels=labels, provenance=provenance)
    sample = sample_from_sequence(sequence, 32, propagated_weight=0.25)
    assert sample.frames.shape == (12, 32, 32) and sample.labels.dtype == np.uint8
    assert sample.weights[0] == sample.weights[6] == 1.0
    assert np.allclose(np.delete(sample.weights, [0, 6]), 0.25)


def test_fine_tune_samples_are_what_prediction_shows_the_network():
    from echo_napari.segmentation.finetune import as_the_network_sees

    rng = np.random.default_rng(0)
    frames = rng.random((5, 8, 10)).astype(np.float32)
    labels = rng.integers(0, 4, (5, 8, 10)).astype(np.uint8)
    weights = np.array([1, 0, 0.3, 0, 1], np.float32)
    same = as_the_network_sees(frames, labels, weights, 20.0, False)
    np.testing.assert_array_equal(same[0], frames)
    np.testing.assert_array_equal(same[2], weights)
    shown, shown_labels, shown_weights = as_the_network_sees(frames, labels, weights, 40.0, True)
    assert shown.shape == (9, 8, 10)  # 25 /s -> 50 /s
    np.testing.assert_allclose(shown[::2], frames[:, :, ::-1])  # mirrored back
    np.testing.assert_array_equal(shown_labels[::2], labels[:, :, ::-1])
    np.testing.assert_allclose(shown_weights, [1, 0, 0, 0, 0.3, 0, 0, 0, 1])  # between: 0
