"""Segmentation core: shapes, blending, training, model files, bad input, bundled model."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from echo_napari.errors import ModelError, SequenceError
from echo_napari.segmentation import (
    SegmentationModel,
    TrainConfig,
    UNetConfig,
    build_model,
    make_sample,
    postprocess_labels,
    predict_probabilities,
    predict_sequence,
    save_model,
    train,
    train_steps,
)
from echo_napari.segmentation.evaluate import mean_dice
from echo_napari.segmentation.inference import blend_weights, window_starts
from echo_napari.segmentation.shape_prior import n_batches
from echo_napari.segmentation.training import frame_weights
from echo_napari.segmentation.weights import load_model_file
from echo_napari.sequence import LabelClass

torch.set_num_threads(1)

TINY = UNetConfig(
    channels=(4, 8, 16),
    temporal_pool=(False, True),
    temporal_kernel=(1, 3, 3),
    clip_len=8,
    size=32,
)


def phantom(n_frames=24, size=32, seed=0, period=16, invert=False):
    """A beating ellipse 'LV' with a bright ring 'myocardium' and a dark 'LA' below.

    Returns frames (T, size, size) float32 in [0, 1] and labels (T, size, size) uint8.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = 0.42 + 0.03 * rng.standard_normal(), 0.5 + 0.03 * rng.standard_normal()
    frames = np.empty((n_frames, size, size), np.float32)
    labels = np.zeros((n_frames, size, size), np.uint8)
    for t in range(n_frames):
        s = 1.0 - 0.25 * (0.5 - 0.5 * np.cos(2 * np.pi * t / period))
        ry, rx = 0.22 * s, 0.12 * s
        cavity = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        outer = ((yy - cy) / (ry + 0.06)) ** 2 + ((xx - cx) / (rx + 0.06)) ** 2 <= 1
        atrium = ((yy - (cy + ry + 0.15)) / 0.09) ** 2 + ((xx - cx) / 0.1) ** 2 <= 1
        lab = np.zeros((size, size), np.uint8)
        lab[outer] = 2
        lab[cavity] = 1
        lab[atrium & (lab == 0)] = 3
        img = np.choose(lab, [0.35, 0.08, 0.7, 0.12]).astype(np.float32)
        img = np.clip(img * (1 + 0.3 * rng.standard_normal((size, size))), 0, 1)
        frames[t] = 1 - img if invert else img
        labels[t] = lab
    return frames, labels


def tiny_model(seed: int = 0) -> SegmentationModel:
    torch.manual_seed(seed)
    return SegmentationModel(build_model(TINY).eval(), {"name": "seg", "version": "tiny"})


@functools.lru_cache(maxsize=1)
def phantom_trained_model() -> SegmentationModel:
    """A tiny model trained for a few seconds on normal-contrast phantoms (shared by the
    segmentation test files; callers must not train it further)."""
    model = tiny_model()
    samples = []
    for seed in range(3):
        frames, labels = phantom(24, 32, seed)
        samples.append(make_sample(frames, labels, frame_weights(24, range(24)), TINY.size))
    config = TrainConfig(steps=80, batch_size=2, clip_len=8, lr=3e-3, warmup_steps=5)
    train(model.network, samples, config)
    model.card = {"name": "seg", "version": "tiny-base"}
    return model


@pytest.fixture(scope="module")
def trained_tiny() -> SegmentationModel:
    return phantom_trained_model()


# -- shapes and blending ------------------------------------------------------------------
@pytest.mark.parametrize("n_frames", [1, 5, 32, 70])
@pytest.mark.parametrize("shape", [(37, 40), (32, 32), (64, 48)])
def test_predict_any_length_and_size(n_frames, shape):
    model = tiny_model()
    frames = np.random.default_rng(0).random((n_frames, *shape), dtype=np.float32)
    labels = predict_sequence(frames, model)
    assert labels.shape == (n_frames, *shape)
    assert labels.dtype == np.uint8
    assert labels.max() <= 3


def test_lazy_frames_and_progress():
    import dask.array as da

    frames, _ = phantom(20, 32)
    model = tiny_model()
    calls = []
    lazy = da.from_array(frames, chunks=(4, 32, 32))
    labels = predict_sequence(lazy, model, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(labels, predict_sequence(frames, model))
    # every window forwards (0, 8, 12) and backwards (staggered: 0, 4, 12 of the clip's
    # frames), then one report per 32 frames of the refinement, one per batch of the prior
    total = 2 * len(window_starts(20, 8, 0.0)) + 1 + n_batches(20)
    assert calls[-1][0] == calls[-1][1] == total
    assert [done for done, _ in calls] == list(range(1, calls[-1][1] + 1))


def test_window_starts_with_an_offset_keep_the_first_and_last_frames_covered():
    assert window_starts(20, 8, 0.0) == [0, 8, 12]
    assert window_starts(20, 8, 0.0, offset=4) == [0, 4, 12]
    assert window_starts(16, 8, 0.5, offset=2) == [0, 2, 6, 8]


def test_both_directions_centre_the_backward_windows_where_the_forward_ones_meet(monkeypatch):
    from echo_napari.segmentation import inference

    passes = []
    real = inference.predict_probabilities

    def spy(frames, model, clip_len, overlap, progress, offset=0):
        n = int(frames.shape[0])
        passes.append(inference.window_starts(n, int(clip_len or 8), overlap, offset))
        return real(frames, model, clip_len, overlap, progress, offset=offset)

    monkeypatch.setattr(inference, "predict_probabilities", spy)
    predict_sequence(np.random.default_rng(3).random((40, 32, 32), dtype=np.float32), tiny_model())
    forward, backward = passes
    assert forward == [0, 8, 16, 24, 32]
    # the backward pass runs on the reversed clip: its windows, in the clip's frames
    centres = sorted(40 - 8 - s + 4 for s in backward)
    assert centres == [4, 8, 16, 24, 32, 36]  # where forward windows meet, and both ends


def test_batched_windows_give_what_single_windows_give(monkeypatch):
    from echo_napari.segmentation import inference

    frames = np.random.default_rng(1).random((37, 32, 32), dtype=np.float32)
    model = tiny_model()
    batched = inference.predict_probabilities(frames, model, clip_len=8)
    monkeypatch.setattr(inference, "_FRAMES_PER_CALL", 8)  # one window per call
    single = inference.predict_probabilities(frames, model, clip_len=8)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_labels_are_the_first_most_probable_class_ties_included():
    from echo_napari.segmentation.inference import probabilities_to_labels

    probs = np.random.default_rng(2).random((5, 4, 16, 16), dtype=np.float32)
    probs[:, 3] = probs[:, 1]  # ties go to the lower class, as numpy's argmax
    np.testing.assert_array_equal(probabilities_to_labels(probs, (16, 16)), probs.argmax(axis=1))


def test_window_starts_cover_every_frame():
    for n in (8, 9, 15, 16, 70, 128):
        starts = window_starts(n, 8, 0.5)
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s : s + 8] = True
        assert covered.all() and starts[-1] == n - 8


def test_hann_weights_are_a_partition_of_unity_at_half_overlap():
    w = blend_weights(16)
    total = np.zeros(64)
    for s in window_starts(64, 16, 0.5):
        total[s : s + 16] += w
    np.testing.assert_allclose(total[8:-8], 1.0, atol=1e-6)


def test_constant_input_gives_constant_output_across_window_borders():
    model = tiny_model(seed=3)
    frame = np.random.default_rng(1).random((32, 32), dtype=np.float32)
    frames = np.repeat(frame[None], 43, axis=0)
    probs = predict_probabilities(frames, model, overlap=0.5)
    np.testing.assert_allclose(probs, np.broadcast_to(probs[20], probs.shape), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


class _PositionNetwork(torch.nn.Module):
    """A stand-in network whose LV logit is the frame's position in the window: the worst
    case for seams (non-overlapping windows jump from the last position to the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = TINY
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        ramp = torch.linspace(-3, 3, t).view(1, 1, t, 1, 1).expand(b, 1, t, h, w)
        return torch.cat([torch.zeros_like(ramp), ramp, -9 + 0 * ramp, -9 + 0 * ramp], 1)


def test_overlap_blending_removes_window_seams():
    model = SegmentationModel(_PositionNetwork())
    frames = np.zeros((40, 32, 32), np.float32)
    hard = predict_probabilities(frames, model, overlap=0.0)[:, 1, 0, 0]
    soft = predict_probabilities(frames, model, overlap=0.5)[:, 1, 0, 0]
    seam = abs(hard[8] - hard[7])  # window border at frame 8
    assert seam > 0.9
    assert np.abs(np.diff(soft)).max() < 0.25 * seam


# -- training -----------------------------------------------------------------------------
def test_tiny_model_overfits_one_sequence():
    frames, labels = phantom(24, 32, seed=5)
    model = tiny_model(seed=1)
    before = mean_dice(predict_sequence(frames, model), labels)["lv"]
    sample = make_sample(frames, labels, frame_weights(24, [0, 8]), TINY.size)  # sparse
    history = train(
        model.network, [sample], TrainConfig(steps=60, clip_len=8, lr=3e-3, warmup_steps=5)
    )
    after = mean_dice(predict_sequence(frames, model), labels)["lv"]
    assert len(history) == 60 and history[-1].phase == "supervised"
    assert after > 0.8 and after > before + 0.2


def test_train_steps_is_a_cancellable_generator_with_ssl():
    frames, labels = phantom(16, 32, seed=2)
    model = tiny_model()
    sample = make_sample(frames, labels, frame_weights(16, [0, 8]), TINY.size)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    config = TrainConfig(steps=10, ssl_steps=3, clip_len=8)
    records = list(train_steps(model.network, [sample], config, [frames], should_stop=stop))
    assert [r.phase for r in records] == ["ssl"] * 3 + ["supervised"] * 2
    assert all(np.isfinite(r.loss) and r.elapsed >= 0 for r in records)
    assert records[-1].total == 13


def test_training_rejects_unlabelled_samples():
    frames, labels = phantom(16, 32)
    sample = make_sample(frames, labels, np.zeros(16), TINY.size)
    with pytest.raises(SequenceError, match="no labelled"):
        list(train_steps(tiny_model().network, [sample], TrainConfig(steps=1, clip_len=8)))


# -- post-processing ----------------------------------------------------------------------
def test_postprocess_keeps_largest_component_and_fills_holes():
    labels = np.zeros((2, 20, 20), np.uint8)
    labels[:, 2:12, 2:12] = 1
    labels[0, 5, 5] = 0  # hole
    labels[:, 15:17, 15:17] = 1  # spurious blob
    labels[1, 14:19, 2:6] = 3
    out = postprocess_labels(labels)
    assert out[0, 5, 5] == 1
    assert (out[:, 15:17, 15:17] == 0).all()
    assert (out[1, 14:19, 2:6] == 3).all()


def test_postprocess_keeps_every_wall_piece_that_borders_the_cavity():
    # A wall broken at the apex: septal and lateral pieces of different sizes on both
    # frames, their size order swapped; a speck of "myocardium" far from the cavity.
    labels = np.zeros((2, 30, 30), np.uint8)
    labels[:, 8:24, 10:20] = 1
    labels[0, 8:24, 6:10] = 2  # septum, 4 px thick
    labels[0, 8:24, 20:22] = 2  # lateral wall, 2 px thick
    labels[1, 8:24, 7:10] = 2  # septum, 3 px
    labels[1, 8:24, 20:25] = 2  # lateral wall, 5 px
    labels[:, 1:3, 26:28] = 2  # a stray blob, not wall
    out = postprocess_labels(labels)
    walls = (out == 2).sum(axis=(1, 2))
    # both pieces kept on both frames: the wall area follows the drawing, no half-frame jump
    assert walls.tolist() == [16 * 6, 16 * 8]
    assert (out[:, 1:3, 26:28] == 0).all()
    np.testing.assert_array_equal(out == 1, labels == 1)


def test_hole_filling_is_binary_fill_holes_frame_by_frame():
    from scipy import ndimage

    from echo_napari.segmentation.masks import fill_holes_per_frame

    rng = np.random.default_rng(5)
    mask = ndimage.binary_opening(rng.random((6, 40, 40)) > 0.45)
    mask[:, 10:20, 10:20] = True
    mask[:, 14:16, 14:16] = False  # a hole on every frame, the first and last included
    expected = np.stack([ndimage.binary_fill_holes(frame) for frame in mask])
    filled = fill_holes_per_frame(mask)
    np.testing.assert_array_equal(filled, expected)
    assert filled[:, 14:16, 14:16].all()


def test_postprocess_fills_background_enclosed_by_cavity_and_wall_together():
    labels = np.zeros((1, 24, 24), np.uint8)
    labels[0, 4:20, 4:20] = 2
    labels[0, 7:20, 7:17] = 1  # the wall is open at the base: a U around the cavity
    labels[0, 9:12, 16:19] = 0  # a gap on the cavity/wall border, closed by neither alone
    labels[0, 21:23, 1:23] = 3  # the LA below keeps the background around it
    out = postprocess_labels(labels)
    gap = out[0, 9:12, 16:19]
    assert (gap[:, 0] == 1).all() and (gap[:, 2] == 2).all()
    assert (out[0, 20] == 0).all() and (out[0, 23] == 0).all()


# -- model files --------------------------------------------------------------------------
def test_save_load_roundtrip(tmp_path):
    model = tiny_model()
    model.card = {"name": "seg", "version": "test", "data": ["phantom"]}
    path = save_model(model, tmp_path / "seg_test")
    assert path.stat().st_size < 5e6
    loaded = load_model_file(path, "cpu")
    assert loaded.config == TINY and loaded.card["data"] == ["phantom"]
    frames, _ = phantom(10, 32)
    a = predict_probabilities(frames, model)
    b = predict_probabilities(frames, loaded)
    np.testing.assert_allclose(a, b, atol=2e-2)  # float16 storage


def test_corrupt_or_foreign_model_files_raise_model_error(tmp_path):
    path = save_model(tiny_model(), tmp_path / "seg_x")
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="safetensors"):
        load_model_file(path)
    with pytest.raises(ModelError, match="pickles"):
        load_model_file(tmp_path / "weights.pt")
    good = save_model(tiny_model(), tmp_path / "seg_y")
    card = json.loads(good.with_suffix(".json").read_text())
    card["architecture"]["channels"] = [8, 16, 32]
    good.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not match"):
        load_model_file(good)
    good.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model_file(good)
    good.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="card not found"):
        load_model_file(good)


def test_invalid_architecture_raises_model_error():
    with pytest.raises(ModelError):
        UNetConfig(channels=(8,), temporal_pool=(), temporal_kernel=(1,))
    with pytest.raises(ModelError, match="clip_len"):
        UNetConfig(clip_len=30)


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((32, 32), np.float32), "expected a \\(T, H, W\\)"),
        (np.zeros((4, 32, 32, 3), np.float32), "expected a \\(T, H, W\\)"),
        (np.zeros((0, 32, 32), np.float32), "at least one"),
        (np.full((4, 32, 32), 200.0, np.float32), "divide 8-bit"),
    ],
)
def test_bad_frames_raise_sequence_error(frames, message):
    with pytest.raises(SequenceError, match=message):
        predict_sequence(frames, tiny_model())


def test_nan_frames_name_the_frame():
    frames = np.zeros((6, 32, 32), np.float32)
    frames[4, 3, 3] = np.nan
    with pytest.raises(SequenceError, match="frame 4"):
        predict_sequence(frames, tiny_model())


def test_bad_clip_length_and_overlap_raise_model_error():
    frames = np.zeros((6, 32, 32), np.float32)
    with pytest.raises(ModelError, match="multiple of 2"):
        predict_sequence(frames, tiny_model(), clip_len=7)
    with pytest.raises(ModelError, match="overlap"):
        predict_sequence(frames, tiny_model(), overlap=1.0)


def test_trained_tiny_model_segments_unseen_phantom(trained_tiny):
    frames, labels = phantom(30, 48, seed=11)
    scores = mean_dice(predict_sequence(frames, trained_tiny), labels)
    assert scores["lv"] > 0.85


def test_train_bundled_records_the_simulated_geometry_in_the_card(tmp_path):
    from echo_napari.segmentation import train_bundled

    out = tmp_path / "seg_try"
    train_bundled.main(
        ["--out", str(out), "--steps", "2", "--n-train", "2", "--n-test", "1"]
        + ["--clip-len", "8", "--threads", "1", "--cache-dir", str(tmp_path / "cache")]
        + ["--depth-range", "130", "200", "--apex-gap", "8", "30", "--scale", "0.8", "1.25"]
        + ["--trabeculae-range", "-16", "-4", "--gain-field", "0.5", "--blur", "0", "1"]
    )
    card = json.loads(out.with_suffix(".json").read_text())
    simulated = card["data"][0]
    assert simulated["depth_range_mm"] == [130.0, 200.0]
    assert simulated["apex_gap_mm"] == [8.0, 30.0]
    assert simulated["trabeculae_range_db"] == [-16.0, -4.0]
    assert card["training"]["config"]["augment"]["scale"] == [0.8, 1.25]
    assert card["training"]["config"]["augment"]["gain_field"] == 0.5
    assert card["training"]["config"]["augment"]["blur_px"] == [0.0, 1.0]
    assert card["architecture"]["clip_len"] == 8  # inference on the trained clip length
    assert card["training"]["supervised_steps"] == 2
    model = load_model_file(out.with_suffix(".safetensors"))
    assert model.card["version"] == card["version"]


def test_frames_with_no_heart_in_view_are_left_unlabelled(monkeypatch):
    from echo_napari.segmentation import inference

    frames, truth = phantom(24, 32)
    truth[10:14] = 0
    truth[10:14, 4:6, 4:6] = LabelClass.LA  # the specks a model draws with the probe off
    onehot = (truth[:, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
    monkeypatch.setattr(inference, "predict_probabilities", lambda *a, **k: onehot)
    kept = predict_sequence(
        frames, tiny_model(), refine=False, shape_prior=False, clear_lost_view=False
    )
    labels = predict_sequence(frames, tiny_model(), refine=False, shape_prior=False)
    assert (kept[10:14] > 0).any() and not labels[10:14].any()
    np.testing.assert_array_equal(
        np.delete(labels, range(10, 14), 0), np.delete(kept, range(10, 14), 0)
    )


def test_frames_whose_lv_lies_over_the_atrium_are_left_unlabelled(monkeypatch):
    from echo_napari.segmentation import inference

    frames, truth = phantom(40, 32)
    for t in (20, 21):  # the network takes the atrium for the ventricle
        lv, la = truth[t] == LabelClass.LV_CAVITY, truth[t] == LabelClass.LA
        truth[t][lv], truth[t][la] = LabelClass.LA, LabelClass.LV_CAVITY
    onehot = (truth[:, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
    monkeypatch.setattr(inference, "predict_probabilities", lambda *a, **k: onehot)
    once = {"refine": False, "both_directions": False}  # the mock ignores the time order
    kept = predict_sequence(frames, tiny_model(), clear_lost_view=False, **once)
    labels = predict_sequence(frames, tiny_model(), **once)
    assert (kept[20:22] == LabelClass.LV_CAVITY).any() and not labels[20:22].any()
    np.testing.assert_array_equal(np.delete(labels, [20, 21], 0), np.delete(kept, [20, 21], 0))


def test_both_directions_average_the_forward_and_backward_probabilities(monkeypatch):
    from echo_napari.segmentation import inference

    frames = np.random.default_rng(2).random((12, 32, 32), dtype=np.float32)
    model = tiny_model()
    forward = inference.predict_probabilities(frames, model)
    backward = inference.predict_probabilities(frames[::-1].copy(), model)[::-1]
    seen = []
    original = inference.probabilities_to_labels

    def to_labels(probs, shape, chunk=64):
        seen.append(probs.copy())
        return original(probs, shape, chunk)

    monkeypatch.setattr(inference, "probabilities_to_labels", to_labels)
    predict_sequence(frames, model, postprocess=False, refine=False, clear_lost_view=False)
    np.testing.assert_allclose(seen[0], (forward + backward) / 2, atol=1e-5)
    one_way = predict_sequence(
        frames,
        model,
        postprocess=False,
        refine=False,
        clear_lost_view=False,
        both_directions=False,
    )
    np.testing.assert_allclose(seen[1], forward, atol=1e-5)
    assert one_way.shape == frames.shape
