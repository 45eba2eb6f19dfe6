"""Clip augmentations: the optional gain field and blur, and their streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echo_napari.segmentation.augment import (
    AugmentConfig,
    gaussian_blur,
    random_intensity,
    smooth_gain_field,
)


def _clips() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(0.2, 0.6, (3, 1, 4, 32, 32)).astype(np.float32))


def test_optional_transforms_off_leave_the_random_stream_as_it_was():
    clips = _clips()
    plain = random_intensity(clips, AugmentConfig(), torch.Generator().manual_seed(3))
    explicit = AugmentConfig(gain_field=0.0, blur_px=(0.0, 0.0))
    again = random_intensity(clips, explicit, torch.Generator().manual_seed(3))
    assert torch.equal(plain, again)


def test_gain_field_is_smooth_the_same_over_time_and_varies_over_the_image():
    gain = smooth_gain_field((2, 1, 5, 48, 48), 1.0, torch.Generator().manual_seed(1))
    assert gain.shape == (2, 1, 1, 48, 48)
    assert (gain > 0).all()
    log = torch.log(gain)
    # Neighbouring pixels nearly equal (smooth), far corners differ (regional).
    assert (log[..., 1:, :] - log[..., :-1, :]).abs().max() < 0.2
    assert log.amax(dim=(-1, -2)).sub(log.amin(dim=(-1, -2))).max() > 0.2


def test_blur_lowers_pixel_to_pixel_contrast_only_where_drawn():
    clips = _clips()
    blurred = gaussian_blur(clips, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(blurred[0], clips[0])

    def roughness(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert roughness(blurred[2]) < roughness(blurred[1]) < 0.6 * roughness(clips[1])
    assert float(blurred[1].mean()) == pytest.approx(float(clips[1].mean()), abs=0.01)


def test_time_warp_redraws_clip_frames_in_order_with_labels_alongside():
    from echo_napari.segmentation.training import TrainingSample, sample_batch

    n = 40
    frames = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 4, 4)).copy()
    labels = np.broadcast_to((np.arange(n) % 4).astype(np.uint8)[:, None, None], (n, 4, 4))
    sample = TrainingSample(frames, labels.copy(), np.ones(n, np.float32))
    plain = sample_batch([sample], 8, 8, 2, np.random.default_rng(5))
    same = sample_batch([sample], 8, 8, 2, np.random.default_rng(5), time_warp=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, same, strict=True))
    warped, warped_labels, _ = sample_batch([sample], 8, 8, 2, np.random.default_rng(5), 1.0)
    for clip, clip_labels in zip(warped[:, :, 0, 0], warped_labels[:, :, 0, 0], strict=True):
        steps = np.diff(clip)
        assert (steps >= 0).all() or (steps <= 0).all()  # in order (either direction)
        np.testing.assert_array_equal(clip_labels, clip.astype(int) % 4)
    assert any(len(np.unique(clip)) < 8 for clip in warped[:, :, 0, 0])  # repeats occur
