"""M-mode network: save/load, windowed inference of any size, fine-tuning, quality score,
and the bundled model on a held-out simulated strip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from echo_napari.errors import ModelError
from echo_napari.mmode.inference import clean_band, predict_band_probability
from echo_napari.mmode.model import MModeNet, MModeNetConfig, load_mmode_model, save_mmode_model
from echo_napari.mmode.quality import degrade, window_quality, window_score
from echo_napari.mmode.sampling import MModeImage
from echo_napari.mmode.training import fine_tune


def _tiny():
    torch.manual_seed(0)
    return MModeNet(MModeNetConfig(filters=4, levels=2, window=(32, 16))).eval()


def _synthetic_strip(depth=60, n=40, step=1.0):
    """Bright walls around a dark band whose width oscillates; returns image and band."""
    rows = np.arange(depth)[:, None]
    t = np.arange(n)[None, :]
    upper = 15 + 3 * np.sin(2 * np.pi * t / 20)
    lower = 45 - 3 * np.sin(2 * np.pi * t / 20)
    band = ((rows > upper) & (rows < lower)).astype(np.uint8)
    wall = ((rows > upper - 8) & (rows <= upper)) | ((rows >= lower) & (rows < lower + 8))
    rng = np.random.default_rng(0)
    image = np.where(wall, 0.7, np.where(band == 1, 0.05, 0.25)) + 0.03 * rng.standard_normal(
        band.shape
    )
    return np.clip(image, 0, 1).astype(np.float32), band


def test_save_load_round_trip_and_bad_files(tmp_path):
    net = _tiny()
    path = save_mmode_model(net, tmp_path / "mmode_v7", {"version": 7})
    loaded = load_mmode_model(path)
    assert loaded.config == net.config
    x = torch.rand(1, 1, 32, 16)
    torch.testing.assert_close(loaded(x), net(x))
    card = json.loads(path.with_suffix(".json").read_text())
    card["config"]["filters"] = 8
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not fit"):
        load_mmode_model(path)
    with pytest.raises(ModelError):
        load_mmode_model(tmp_path / "absent.safetensors")
    with pytest.raises(ModelError, match="multiples"):
        net(torch.rand(1, 1, 30, 16))


def test_windowed_inference_any_size():
    net = _tiny()
    for shape in [(20, 10), (75, 130)]:
        strip = MModeImage(
            np.random.default_rng(1).random(shape, dtype=np.float32),
            depth_step_mm=1.0,
            time_step_s=0.02,
        )
        prob = predict_band_probability(strip, net)
        assert prob.shape == shape and prob.min() >= 0 and prob.max() <= 1
    # A real M-mode strip (1 ms columns, 0.5 mm rows) is resampled to the network's grid and back.
    strip = MModeImage(np.zeros((200, 600), np.float32), depth_step_mm=0.5, time_step_s=0.001)
    assert predict_band_probability(strip, net).shape == (200, 600)


def test_clean_band_keeps_one_run_per_column():
    mask = np.zeros((30, 5), bool)
    mask[5:20] = True
    mask[25:28, 2] = True  # a detached blob
    band = clean_band(mask)
    assert band[25:28].sum() == 0 and band[5:20].all()


def test_fine_tune_updates_weights(tmp_path, monkeypatch):
    net = _tiny()
    image, band = _synthetic_strip(32, 16)
    before = [p.detach().clone() for p in net.parameters()]
    history = fine_tune(net, [image], [band], 1.0, steps=2)
    assert len(history) == 2 and np.isfinite(history[-1].loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    from echo_napari.mmode.training import save_user_version

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path))
    first = save_user_version(net, {"quality_threshold": 0.5})
    second = save_user_version(net, {"quality_threshold": 0.5})
    assert first != second and first.exists() and second.exists()
    assert load_mmode_model().config == net.config  # the newest user version


@pytest.mark.parametrize("kind", ["low_snr", "dropout", "missing_wall"])
def test_quality_score_drops_for_degraded_strips(kind):
    image, band = _synthetic_strip()
    good = window_score(image, band, 5)
    bad = window_score(degrade(image, band, kind, np.random.default_rng(2)), band, 5)
    assert good > 2 * bad
    windows = window_quality(image, band, 1.0, 0.02, threshold=good / 2)
    assert windows and not any(w.poor for w in windows)


def test_bundled_model_on_held_out_simulated_strip():
    from echo_napari.mmode.measure import diameter_per_column
    from echo_napari.mmode.sampling import default_line, sample_mmode
    from echo_napari.simulate import SimulationParams, seeds, simulate_sequence

    seq = simulate_sequence(seeds("test", 2)[1], SimulationParams(frames_per_cycle=24)).sequence
    line = default_line(seq.labels[seq.ed_index] == 1)
    strip = sample_mmode(seq.frames, line, seq.spacing, seq.frame_time_ms, seq.labels)
    network = load_mmode_model()
    prob = predict_band_probability(strip, network)
    band = clean_band(prob >= 0.5)
    dice = 2 * (band & strip.band).sum() / (band.sum() + strip.band.sum())
    assert dice > 0.9
    error = diameter_per_column(band, strip.depth_step_mm, prob) - diameter_per_column(
        strip.band, strip.depth_step_mm, strip.band_probability
    )
    assert np.nanmedian(np.abs(error)) < 3 * strip.depth_step_mm
