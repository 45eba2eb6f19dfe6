"""Accuracy measures for registration backends, shared by training, tests and benchmarks.

* :func:`evaluate_propagation`: labelled sequence → per-frame LV Dice of the forward,
  backward and fused propagation from ED and ES keyframes, and folding of the fields.
* :func:`evaluate_unlabelled`: real video without labels → local NCC of consecutive
  frames before and after warping, and folding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from echo_napari.registration.backends import RegistrationBackend
from echo_napari.registration.fusion import labels_from_sdf
from echo_napari.registration.losses import local_ncc
from echo_napari.registration.propagation import (
    PairwiseFields,
    pairwise_fields,
    propagate_from_keyframes,
)
from echo_napari.registration.warping import folding_fraction, warp_image


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@dataclass(frozen=True)
class PropagationScores:
    """LV-cavity Dice per frame and field diagnostics of one labelled sequence.

    ``forward``/``backward``/``fused`` are (T,) arrays, NaN where that result does not
    exist (keyframes are excluded from all three: they are given, not predicted).
    ``seconds_per_pair`` is the registration time divided by the 2·(T−1) pairs;
    ``seconds_propagation`` includes the drift-correction pass when it is on.
    """

    forward: np.ndarray
    backward: np.ndarray
    fused: np.ndarray
    folding: float
    seconds_per_pair: float
    seconds_propagation: float

    @property
    def mean_fused(self) -> float:
        """Mean fused LV Dice over the non-keyframe frames."""
        return float(np.nanmean(self.fused))


def evaluate_propagation(
    backend: RegistrationBackend | str,
    frames: np.ndarray,
    labels: np.ndarray,
    keyframes: tuple[int, ...],
    classes: tuple[int, ...] = (1, 2, 3),
    fields: PairwiseFields | None = None,
    drift_correction: bool | None = None,
) -> PropagationScores:
    """Propagate from ``keyframes`` (ground-truth labels there) and score LV Dice per frame.

    Parameters
    ----------
    backend : registration backend or its name (ignored when ``fields`` is given)
    frames : (T, H, W) float32 in [0, 1]
    labels : (T, H, W) uint8 ground truth
    keyframes : frames whose ground truth seeds the propagation (e.g. (ED, ES))
    drift_correction : passed to :func:`propagate_from_keyframes` (None = its default)
    """
    start = time.perf_counter()
    if fields is None:  # at the frames' size: the per-direction SDFs are scored there
        fields = pairwise_fields(frames, backend, on_grid=False)
    seconds_pairs = time.perf_counter() - start
    present = tuple(c for c in classes if any((labels[k] == c).any() for k in keyframes))
    start = time.perf_counter()
    result = propagate_from_keyframes(
        fields,
        {k: labels[k] for k in keyframes},
        classes=present,
        keep_sdf=True,
        drift_correction=drift_correction,
    )
    seconds_prop = time.perf_counter() - start
    t_len = frames.shape[0]
    lv = present.index(1) if 1 in present else None
    out = {name: np.full(t_len, np.nan) for name in ("forward", "backward", "fused")}
    for t in range(t_len):
        if t in keyframes or lv is None:
            continue
        truth = labels[t] == 1
        out["fused"][t] = dice(result.labels[t] == 1, truth)
        for name, stack in (("forward", result.forward_sdf), ("backward", result.backward_sdf)):
            if not np.isnan(stack[t, 0, 0, 0]):
                out[name][t] = dice(labels_from_sdf(stack[t], present) == 1, truth)
    folding = float(
        np.mean(
            np.concatenate([folding_fraction(fields.forward), folding_fraction(fields.backward)])
        )
    )
    return PropagationScores(
        forward=out["forward"],
        backward=out["backward"],
        fused=out["fused"],
        folding=folding,
        seconds_per_pair=seconds_pairs / (2 * (t_len - 1)),
        seconds_propagation=seconds_prop,
    )


@dataclass(frozen=True)
class UnlabelledScores:
    """Mean local NCC of consecutive frames before/after warping; folding fraction."""

    ncc_before: float
    ncc_after: float
    folding: float


def evaluate_unlabelled(
    backend: RegistrationBackend, frames: np.ndarray, max_pairs: int | None = None
) -> UnlabelledScores:
    """Register consecutive frames (fixed t+1, moving t) of an unlabelled video and score."""
    n = frames.shape[0] - 1 if max_pairs is None else min(frames.shape[0] - 1, max_pairs)
    fixed, moving = frames[1 : n + 1], frames[:n]
    u = backend.register_pairs(fixed, moving)
    warped = warp_image(moving, u)
    with torch.inference_mode():
        f = torch.from_numpy(np.ascontiguousarray(fixed))[:, None]
        before = local_ncc(f, torch.from_numpy(np.ascontiguousarray(moving))[:, None])
        after = local_ncc(f, torch.from_numpy(np.ascontiguousarray(warped))[:, None])
    return UnlabelledScores(
        ncc_before=float(before.mean()),
        ncc_after=float(after.mean()),
        folding=float(np.mean(folding_fraction(u))),
    )
