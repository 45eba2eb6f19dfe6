"""Quick held-out scores of a segmentation model on simulated sequences (Dice per class)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echo_napari.metrics import dice_coefficient
from echo_napari.segmentation.inference import predict_sequence
from echo_napari.segmentation.weights import SegmentationModel
from echo_napari.sequence import LabelClass

FOREGROUND = (LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM, LabelClass.LA)
CLASS_KEYS = {
    LabelClass.LV_CAVITY: "lv",
    LabelClass.MYOCARDIUM: "myocardium",
    LabelClass.LA: "la",
}


def mean_dice(
    pred: np.ndarray, ref: np.ndarray, frames: Sequence[int] | None = None
) -> dict[str, float]:
    """Mean Dice per foreground class over ``frames`` (all by default) of (T, H, W) labels.

    Frames where a class is absent from both prediction and reference are skipped.
    """
    frames = range(pred.shape[0]) if frames is None else frames
    out = {}
    for cls in FOREGROUND:
        values = [dice_coefficient(pred[t] == cls, ref[t] == cls) for t in frames]
        values = [v for v in values if not np.isnan(v)]
        out[CLASS_KEYS[cls]] = float(np.mean(values)) if values else float("nan")
    return out


def evaluate_arrays(
    model: SegmentationModel,
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
    clip_len: int | None = None,
    overlap: float | None = None,
) -> dict[str, float]:
    """Mean over sequences of :func:`mean_dice`; input pairs are ((T,H,W) frames, labels).
    ``overlap`` None: :func:`predict_sequence`'s default windows."""
    scores = [
        mean_dice(predict_sequence(frames, model, clip_len, overlap), labels)
        for frames, labels in sequences
    ]
    return {key: float(np.nanmean([s[key] for s in scores])) for key in CLASS_KEYS.values()}
