"""The bundled models on a CUDA GPU give what they give on the CPU (skipped without one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echo_napari.registration import DirnetBackend, pairwise_fields, propagate_from_keyframes
from echo_napari.segmentation import load_model, predict_sequence
from echo_napari.segmentation.model import UNetConfig, build_model
from echo_napari.segmentation.training import TrainConfig, TrainingSample, train
from echo_napari.simulate import seeds, simulate_sequence

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def simulated():
    return simulate_sequence(seeds("test", 1)[0]).sequence


def test_dirnet_fields_match_cpu(simulated):
    frames = simulated.frames_array()[:12]
    fixed, moving = frames[1:], frames[:-1]
    cpu = DirnetBackend(device="cpu").register_pairs(fixed, moving)
    gpu = DirnetBackend(device="cuda").register_pairs(fixed, moving)
    # TF32 convolutions on the GPU: agreement to a few hundredths of a pixel.
    assert np.abs(cpu - gpu).max() < 0.05
    assert np.abs(cpu).max() > 0.1


def test_propagation_on_gpu_matches_cpu(simulated):
    frames = simulated.frames_array()
    keys = {simulated.ed_index: simulated.labels[simulated.ed_index]}
    keys[simulated.es_index] = simulated.labels[simulated.es_index]
    labels = {}
    for device in ("cpu", "cuda"):
        fields = pairwise_fields(frames, DirnetBackend(device=device))
        labels[device] = propagate_from_keyframes(fields, keys).labels
    agreement = (labels["cpu"] == labels["cuda"]).mean()
    assert agreement > 0.995


def test_segmentation_on_gpu_matches_cpu(simulated):
    frames = simulated.frames_array()[:40]
    cpu = predict_sequence(frames, load_model("bundled", "cpu"))
    gpu = predict_sequence(frames, load_model("bundled", "cuda"))
    assert (cpu == gpu).mean() > 0.995
    assert (gpu == 1).any()


def test_training_step_on_gpu():
    rng = np.random.default_rng(0)
    frames = rng.random((8, 32, 32)).astype(np.float32)
    labels = (frames > 0.5).astype(np.uint8)
    sample = TrainingSample(frames, labels, np.ones(8, np.float32))
    network = build_model(
        UNetConfig(
            channels=(4, 8, 16),
            temporal_pool=(False, True),
            temporal_kernel=(1, 3, 3),
            clip_len=8,
            size=32,
        )
    )
    history = train(network, [sample], TrainConfig(steps=3, clip_len=8), device="cuda")
    assert len(history) == 3
    assert all(np.isfinite(r.loss) for r in history)
    assert next(network.parameters()).device.type == "cuda"
