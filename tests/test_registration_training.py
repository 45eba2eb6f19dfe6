"""DIRNet training generator, resumable checkpoints, model cards and the model registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from echo_napari.errors import ModelError
from echo_napari.models import registry
from echo_napari.registration import DirnetBackend
from echo_napari.registration.dirnet import DirNetConfig
from echo_napari.registration.modelio import load_dirnet, save_dirnet
from echo_napari.registration.synthetic import phantom_sequence
from echo_napari.registration.training import TrainConfig, new_model, train, train_steps
from echo_napari.registration.training_data import PairSource, to_internal

torch.set_num_threads(1)
TINY = DirNetConfig(size=32, grid_spacing=4, kernels=(4, 8))


@pytest.fixture(scope="module")
def source() -> PairSource:
    frames = [phantom_sequence(seed, n_frames=6, size=32).frames for seed in (1, 2)]
    return PairSource([to_internal(f, 32) for f in frames], "phantom", max_gap=3)


def test_training_yields_records_and_learns(source):
    model = new_model(TINY, seed=0)
    config = TrainConfig(iterations=40, batch=4, lr=3e-3, alpha=1.0, window=5)
    records = list(train_steps(model, [source], config))
    assert [r.step for r in records] == list(range(1, 41))
    assert all(np.isfinite(r.loss) and r.elapsed >= 0 for r in records)
    assert records[0].source == "phantom"
    # The zero-initialised head leaves the identity; the field is no longer all zero.
    assert model.head.weight.abs().sum() > 0


def test_training_resumes_from_checkpoint(source, tmp_path):
    config = TrainConfig(iterations=6, batch=2, window=5, checkpoint_every=3)
    straight = new_model(TINY, seed=0)
    train(straight, [source], config)

    resumed = new_model(TINY, seed=0)
    generator = train_steps(resumed, [source], config, checkpoint_dir=tmp_path)
    for record in generator:
        if record.step == 3:
            break  # "cancelled" after the step-3 checkpoint
    again = new_model(TINY, seed=0)
    rest = list(train_steps(again, [source], config, checkpoint_dir=tmp_path))
    assert [r.step for r in rest] == [4, 5, 6]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["step"] == 6 and meta["architecture"]["size"] == 32


def test_resuming_applies_the_new_learning_rate(source, tmp_path):
    config = TrainConfig(iterations=3, batch=2, lr=1e-3, window=5, checkpoint_every=3)
    list(train_steps(new_model(TINY, seed=0), [source], config, checkpoint_dir=tmp_path))
    slower = TrainConfig(iterations=4, batch=2, lr=1e-4, window=5, checkpoint_every=1)
    list(train_steps(new_model(TINY, seed=0), [source], slower, checkpoint_dir=tmp_path))
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["step"] == 4
    assert meta["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_save_and_load_round_trip(tmp_path, source):
    model = new_model(TINY, seed=1)
    train(model, [source], TrainConfig(iterations=3, batch=2, window=5))
    path = save_dirnet(model, tmp_path / "dirnet_v3.safetensors", {"training": {"alpha": 2.0}})
    loaded = load_dirnet(path)
    assert loaded.config == TINY
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x, x.flip(-1)), model.eval()(x, x.flip(-1)))
    backend = DirnetBackend(weights=path, device="cpu")
    assert backend.alpha == 2.0 and backend.size == 32


def test_corrupt_or_mismatched_weights_raise_model_error(tmp_path):
    model = new_model(TINY)
    path = save_dirnet(model, tmp_path / "dirnet_v1.safetensors", {})
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read"):
        load_dirnet(path)
    path = save_dirnet(model, tmp_path / "dirnet_v2.safetensors", {})
    card = json.loads(path.with_suffix(".json").read_text())
    card["architecture"]["kernels"] = [8, 8]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not match"):
        load_dirnet(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="card missing"):
        load_dirnet(path)


def test_registry_lists_bundled_and_user_versions_without_overwriting(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path))
    first = registry.next_user_model_path("dirnet")
    save_dirnet(new_model(TINY), first, {})
    second = registry.next_user_model_path("dirnet")
    assert second != first and not second.exists()
    save_dirnet(new_model(TINY), second, {})
    user = [m for m in registry.list_models("dirnet") if not m.bundled]
    assert [m.path for m in user] == [first.resolve(), second.resolve()]
    assert registry.find_model("dirnet").path == second.resolve()
    with pytest.raises(ModelError, match="no 'dirnet' version 99"):
        registry.find_model("dirnet", 99)


def test_bundled_weights_are_small_and_documented():
    bundled = registry.bundled_model("dirnet")
    assert bundled.path.stat().st_size < 2_000_000
    card = bundled.card()
    assert card["architecture"]["size"] >= 64
    assert "validation" in card and "data" in card
    held_out = [d.get("held_out") for d in card["data"] if "held_out" in d]
    assert not held_out or len(held_out[0]) >= 6
