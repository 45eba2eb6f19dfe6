"""Shared fixtures: a tiny labelled echo sequence, and torch capped to one thread."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.sequence import EchoSequence


def _cap_torch_threads() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


_cap_torch_threads()


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory, monkeypatch):
    """Untitled-session autosaves and user models go to the user data folder: one fresh
    folder per test (a test may still point it elsewhere)."""
    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path_factory.mktemp("user-data")))


def make_sequence(
    n_frames: int = 16, size: int = 48, spacing: tuple[float, float] | None = (0.4, 0.3)
) -> EchoSequence:
    """A beating disc: LV cavity (1) radius oscillating over the cycle, ring myocardium (2),
    LA (3) below it; frames are the labels blurred into [0, 1] with noise.

    Returns (T, H, W) float32 frames, uint8 labels on every frame, ED = 0, ES = T // 2.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n_frames, size, size), dtype=np.uint8)
    for t in range(n_frames):
        radius = size * (0.22 - 0.06 * np.sin(np.pi * t / n_frames) ** 2)
        dist = np.hypot(yy - size * 0.4, xx - size / 2)
        labels[t][dist <= radius + 3] = 2
        labels[t][dist <= radius] = 1
        labels[t][np.hypot(yy - size * 0.8, xx - size / 2) <= size * 0.1] = 3
    frames = np.clip(0.2 + 0.5 * (labels == 2) + 0.1 * rng.random(labels.shape), 0, 1)
    return EchoSequence(
        frames=frames.astype(np.float32),
        spacing=spacing,
        frame_time_ms=20.0,
        view="A4C",
        ed_index=0,
        es_index=n_frames // 2,
        labels=labels,
        keyframes={0, n_frames // 2},
        metadata={"reference": {"EF": 58.0}},
    )


@pytest.fixture
def echo_sequence() -> EchoSequence:
    """16 frames of 48×48, spacing (0.4, 0.3) mm, labels on every frame."""
    return make_sequence()
