"""Fine-tuning the segmentation model from a user's corrected frames.

Manual frames (keyframes or frames with manual provenance) carry ``manual_weight``,
propagated frames ``propagated_weight``, all others nothing. Training runs on a copy of
the base model as a generator that yields a progress record per step and checks
``should_stop`` before every step (a step takes well under a second on a CPU), so the GUI
can cancel it at once. Only a run that finishes writes a new version — a new file number in
the user's data folder, never an overwrite, written atomically — whose card records the
parent version and the Dice on the corrected frames before and after.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from echo_napari.errors import SequenceError
from echo_napari.frame_rate import needs_resampling, reference_positions, sample_in_time
from echo_napari.segmentation.augment import AugmentConfig
from echo_napari.segmentation.evaluate import mean_dice
from echo_napari.segmentation.inference import MIRRORED_VIEW_KEY, predict_sequence
from echo_napari.segmentation.model import use_fast_cpu_layout
from echo_napari.segmentation.training import (
    TrainConfig,
    TrainingSample,
    TrainProgress,
    frame_weights,
    resize_sequence,
    train_steps,
)
from echo_napari.segmentation.versions import (
    ModelVersion,
    get_version,
    load_model,
    next_version_path,
)
from echo_napari.segmentation.weights import SegmentationModel, resolve_device, save_model
from echo_napari.sequence import EchoSequence, ProvenanceKind

logger = logging.getLogger(__name__)

#: Milder geometry than pre-training: a user's corrections are for this very view.
FINE_TUNE_AUGMENT = AugmentConfig(
    rotation_deg=8.0, scale=(0.95, 1.05), translation=0.05, gamma=(0.7, 1.3), gain=(0.8, 1.25)
)


class _Cancelled(Exception):
    """Internal: raised from a progress callback to abandon a prediction."""


@dataclass(frozen=True)
class FineTuneNotice:
    """Something the user should know before the training steps run (the view check
    disagreeing with the clip's Mirrored view setting), yielded by
    :func:`fine_tune_steps` before its first step."""

    message: str


def corrected_frames(sequence: EchoSequence) -> tuple[list[int], list[int]]:
    """Manual frames (keyframes or manual provenance) and propagated frames, with labels."""
    if sequence.labels is None:
        raise SequenceError("fine-tuning needs a sequence with labels; this one has none")
    has_labels = set(sequence.labelled_frames())
    manual = {
        t
        for t, p in enumerate(sequence.provenance)
        if p.kind == ProvenanceKind.MANUAL and t in has_labels
    }
    manual |= {t for t in sequence.keyframes if t in has_labels}
    propagated = {
        t
        for t, p in enumerate(sequence.provenance)
        if p.kind == ProvenanceKind.PROPAGATED and t in has_labels and t not in manual
    }
    return sorted(manual), sorted(propagated)


def _dice_on(
    model: SegmentationModel,
    frames: np.ndarray,
    labels: np.ndarray,
    which: list[int],
    should_stop: Callable[[], bool] | None,
    frame_time_ms: float | None = None,
    mirrored: bool = False,
) -> dict[str, float]:
    def check(done: int, total: int) -> None:
        if should_stop is not None and should_stop():
            raise _Cancelled

    pred = predict_sequence(
        frames, model, progress=check, frame_time_ms=frame_time_ms, mirrored=mirrored
    )
    return mean_dice(pred, labels, which)


def as_the_network_sees(
    frames: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    frame_time_ms: float | None,
    mirrored: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clip's frames, labels and frame weights as :func:`predict_sequence` shows the
    network the clip: mirrored back for a mirrored view, resampled to 50 frames/s
    (:mod:`echo_napari.frame_rate`; the samples between the clip's own frames carry the
    nearest frame's labels at weight 0), so that fine-tuning teaches what prediction asks.

    Parameters
    ----------
    frames : (T, H, W) float32; labels : (T, H, W) uint8; weights : (T,) float32

    Returns
    -------
    frames (M, H, W), labels (M, H, W), weights (M,)
    """
    if mirrored:
        frames, labels = frames[:, :, ::-1], labels[:, :, ::-1]
    if needs_resampling(frame_time_ms):
        positions = reference_positions(frames.shape[0], frame_time_ms)
        nearest = np.rint(positions).astype(int)
        exact = np.abs(positions - nearest) < 1e-6
        frames = np.asarray(sample_in_time(frames, positions), dtype=np.float32)
        labels = labels[nearest]
        weights = np.where(exact, np.asarray(weights)[nearest], 0.0).astype(np.float32)
    return np.ascontiguousarray(frames), np.ascontiguousarray(labels), weights


def fine_tune_steps(
    sequence: EchoSequence,
    base: str | SegmentationModel = "selected",
    manual_weight: float = 1.0,
    propagated_weight: float = 0.3,
    steps: int = 60,
    lr: float = 2e-4,
    clip_len: int = 8,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
    seed: int = 0,
) -> Generator[TrainProgress | FineTuneNotice, None, ModelVersion | None]:
    """Fine-tune on ``sequence``'s corrected frames; yields progress, returns the new version.

    A :class:`FineTuneNotice` comes first when the view check disagrees with the clip's
    Mirrored view setting (the card records it too, ``fine_tune.view_warning``).

    Parameters
    ----------
    sequence : EchoSequence with labels
        Manual frames = keyframes or manual provenance; propagated provenance frames count
        with ``propagated_weight``.
    base : "selected", "bundled", a version id, a path, or a loaded SegmentationModel
    manual_weight, propagated_weight : float
        Per-frame loss weights.
    steps : int
        Optimisation steps (each well under a second on a laptop CPU).
    should_stop : callable, optional
        Checked before every step and during the before/after evaluation; a cancelled run
        writes nothing and returns None.

    Returns (as the generator's return value)
    -------
    ModelVersion or None
    """
    manual, propagated = corrected_frames(sequence)
    if not manual:
        raise SequenceError(
            "fine-tuning needs at least one manually corrected frame (a keyframe or a frame "
            "with manual provenance); none found"
        )
    model = load_model(base, device) if not isinstance(base, SegmentationModel) else base
    parent = model.card.get("version") or str(model.card.get("path", "unknown"))
    frames = sequence.frames_array()
    labels = sequence.labels
    mirrored = bool(sequence.metadata.get(MIRRORED_VIEW_KEY, False))
    view_warning = _view_warning(frames, mirrored)
    if view_warning:  # before minutes of training, while the user can still cancel
        yield FineTuneNotice(f"Before fine-tuning on it: {view_warning}")
    started = time.perf_counter()
    try:
        before = _dice_on(
            model, frames, labels, manual, should_stop, sequence.frame_time_ms, mirrored
        )
    except _Cancelled:
        return None
    tuned = SegmentationModel(
        copy.deepcopy(model.network),
        dict(model.card),
        resolve_device(device),
    )
    weights = frame_weights(
        len(frames),
        manual,
        propagated,
        manual_weight=manual_weight,
        pseudo_weight=propagated_weight,
    )
    shown, shown_labels, weights = as_the_network_sees(
        frames, labels, weights, sequence.frame_time_ms, mirrored
    )
    small_frames, small_labels = resize_sequence(shown, shown_labels, tuned.config.size)
    sample = TrainingSample(small_frames, small_labels, weights)
    clip_len = min(clip_len, tuned.config.clip_len)
    clip_len -= clip_len % tuned.config.time_divisor
    config = TrainConfig(
        steps=steps,
        batch_size=1,
        clip_len=max(clip_len, tuned.config.time_divisor),
        lr=lr,
        warmup_steps=min(5, steps),
        augment=FINE_TUNE_AUGMENT,
        seed=seed,
    )
    done = 0
    losses = []
    for record in train_steps(tuned.network, [sample], config, None, should_stop, tuned.device):
        done = record.step
        losses.append(record.loss)
        yield record
    if done < steps:
        logger.info("fine-tuning cancelled after %d of %d steps; nothing written", done, steps)
        return None
    if tuned.device.type == "cpu":
        use_fast_cpu_layout(tuned.network)
    try:
        after = _dice_on(
            tuned, frames, labels, manual, should_stop, sequence.frame_time_ms, mirrored
        )
    except _Cancelled:
        return None
    path = next_version_path()
    tuned.card = _card(model.card, path.stem, parent, sequence, manual, propagated, config)
    tuned.card["fine_tune"].update(
        {
            "manual_weight": manual_weight,
            "propagated_weight": propagated_weight,
            "final_loss": float(np.mean(losses[-10:])),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "dice_on_corrected_frames": {"before": before, "after": after},
            "view_warning": view_warning,
        }
    )
    save_model(tuned, path.with_suffix(""))
    logger.info("fine-tuned version %s written (parent %s)", path.stem, parent)
    return get_version(path.stem)


def _view_warning(frames: np.ndarray, mirrored: bool) -> str:
    """The view check's warning (:mod:`echo_napari.view_orientation`) when the clip looks
    the other way round from its Mirrored view setting: fine-tuning would then teach the
    model the wrong layout. ``""`` when it agrees, cannot tell, or cannot run."""
    from echo_napari.view_orientation import check_orientation_or_none

    check = check_orientation_or_none(frames)
    warning = check.warning(mirrored) if check is not None else ""
    if warning:
        logger.warning("fine-tuning: %s", warning)
    return warning


def _card(
    base_card: dict[str, Any],
    version: str,
    parent: str,
    sequence: EchoSequence,
    manual: list[int],
    propagated: list[int],
    config: TrainConfig,
) -> dict[str, Any]:
    card = {
        k: v
        for k, v in base_card.items()
        if k not in ("path", "weights_file", "format", "architecture", "held_out_metrics")
    }
    card.update(
        {
            "name": "seg",
            "version": version,
            "parent": parent,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "parent_held_out_metrics": base_card.get("held_out_metrics"),
            "fine_tune": {
                "sequence": str(sequence.metadata.get("source", "in-memory sequence")),
                "n_frames": sequence.n_frames,
                "manual_frames": manual,
                "propagated_frames": propagated,
                "steps": config.steps,
                "lr": config.lr,
                "clip_len": config.clip_len,
            },
        }
    )
    return card


def fine_tune(
    sequence: EchoSequence,
    base: str | SegmentationModel = "selected",
    manual_weight: float = 1.0,
    propagated_weight: float = 0.3,
    steps: int = 60,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> ModelVersion | None:
    """Run :func:`fine_tune_steps` to the end; returns the new version (None if cancelled)."""
    generator = fine_tune_steps(
        sequence, base, manual_weight, propagated_weight, steps, should_stop=should_stop, **kwargs
    )
    while True:
        try:
            record = next(generator)
        except StopIteration as stop:
            return stop.value
        if progress is not None and not isinstance(record, FineTuneNotice):
            progress(record.step, record.total)
