"""Drift correction of long-range composed fields.

Composing ~30 frame-to-frame fields accumulates their errors (a network that slightly
under-estimates each step's motion under-estimates the total by ~30 times as much). The
correction registers each target frame directly against the keyframe image warped by its
composed field (a small residual, which the network estimates well) and composes that
residual in:

``U' = r + U ∘ (id + r)`` with ``warp(I_key, U)(x + r(x)) ≈ I_t(x)``,

so ``I_key(x + U'(x)) ≈ I_t(x)``.

The frames of a chain (keyframe → the frames it carries to, in travel order) are corrected
in blocks of ``block`` steps: block j starts from the *corrected* field of the last frame
of block j − 1 and composes only the ≤ ``block`` frame-to-frame fields after it, so errors
accumulate over at most ``block`` steps before a correction. Every frame is registered
once per iteration either way; the blocks of all chains at the same depth go to the
backend in one batched call (⌈longest chain / block⌉ calls in all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from echo_napari.errors import RegistrationError
from echo_napari.registration import spatial
from echo_napari.registration.backends import RegistrationBackend

#: Frames within fewer composed steps of their keyframe than this are not corrected:
#: their field is a single network prediction. Chosen on the simulated "val" split.
DEFAULT_MIN_STEPS = 2

#: Steps composed before each re-anchoring (see the module docstring).
DEFAULT_BLOCK = 8

#: Residual passes per block (each one batched backend call).
DEFAULT_ITERATIONS = 1

#: Between two keyframes, frames where a direction's Eq. 1 weight is below this are not
#: corrected in that direction (the other direction dominates the fused result there).
#: 0.5 halves the correction work there at no cost on the val split (fused LV Dice
#: 0.9518 vs 0.9519 correcting everything, 6 sequences).
DEFAULT_MIN_WEIGHT = 0.5


@dataclass(frozen=True)
class Chain:
    """A keyframe and the frames it carries to, in travel order.

    Attributes
    ----------
    keyframe : int
    targets : (n,) int, the frames reached after 1 … n steps
    steps : (n, 2, H, W) float32 tensor, pixels: ``steps[i]`` carries ``targets[i-1]``
        (the keyframe for i = 0) to ``targets[i]`` (fixed = target, moving = previous)
    correct_until : int or None
        Only the first ``correct_until`` targets are corrected (later ones are composed
        from the last corrected one); None = all.
    """

    keyframe: int
    targets: np.ndarray
    steps: torch.Tensor
    correct_until: int | None = None


def compose_chain(steps: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Cumulative composition of frame-to-frame fields.

    Parameters
    ----------
    steps : (n, 2, H, W) float32 tensor, pixels, in travel order
    start : (2, H, W) tensor or None: a field to start from (origin → frame before
        ``steps[0]``); None = identity

    Returns
    -------
    (n, 2, H, W): origin → frame after 1, 2, … steps. Composition
    ``U ← f_i + U∘(id + f_i)`` reuses each step's sampling grid, made in one batched call.
    """
    grids = spatial.sampling_grid(steps)
    total = torch.empty_like(steps)
    if start is None:
        current = steps[:1]
    else:
        current = steps[:1] + spatial.sample(start[None], grids[:1])
    total[0] = current[0]
    for i in range(1, steps.shape[0]):
        current = steps[i : i + 1] + spatial.sample(current, grids[i : i + 1])
        total[i] = current[0]
    return total


def _residual_pass(
    backend: RegistrationBackend,
    key_images: torch.Tensor,
    fixed: np.ndarray,
    composed: torch.Tensor,
    iterations: int,
) -> torch.Tensor:
    for _ in range(iterations):
        with torch.no_grad():
            warped = spatial.warp(key_images, composed)[:, 0].numpy()
        residual = torch.from_numpy(backend.register_pairs(fixed, warped))
        with torch.no_grad():
            composed = spatial.compose(composed, residual)
    return composed


def track_chains(
    backend: RegistrationBackend,
    frames: np.ndarray,
    chains: Sequence[Chain],
    block: int = DEFAULT_BLOCK,
    iterations: int = DEFAULT_ITERATIONS,
    min_steps: int = DEFAULT_MIN_STEPS,
) -> list[torch.Tensor]:
    """Drift-corrected keyframe → frame fields of every chain.

    Parameters
    ----------
    backend : registration backend
    frames : (T, H, W) float32 in [0, 1], the sequence
    chains : the chains to carry (see :class:`Chain`)
    block : steps composed between corrections (≥ 1; larger than every chain = compose
        everything first, then correct once)
    iterations : residual passes per block (0 = no correction: plain composition)
    min_steps : frames fewer steps than this from their keyframe are not corrected

    Returns
    -------
    list of (n, 2, H, W) float32 tensors, pixels, one per chain in travel order
    (fixed = target frame, moving = keyframe).
    """
    block = max(1, int(block))
    out = [torch.empty_like(c.steps) for c in chains]
    longest = max((c.targets.shape[0] for c in chains), default=0)
    for begin in range(0, longest, block):
        pieces, where, tails = [], [], []
        with torch.no_grad():
            for i, chain in enumerate(chains):
                stop = min(begin + block, chain.targets.shape[0])
                if begin >= stop:
                    continue
                start = out[i][begin - 1] if begin > 0 else None
                out[i][begin:stop] = compose_chain(chain.steps[begin:stop], start)
                # Positions are 0-based: position p is p + 1 steps from the keyframe.
                last = stop if chain.correct_until is None else min(stop, chain.correct_until)
                for p in range(max(begin, min_steps - 1), last):
                    where.append((i, p))
                    pieces.append(out[i][p])
                if begin < last < stop:
                    tails.append((i, last, stop))
        if not where or iterations <= 0:
            continue
        keys = np.array([chains[i].keyframe for i, _ in where])
        targets = np.array([chains[i].targets[p] for i, p in where])
        key_images = torch.from_numpy(np.ascontiguousarray(frames[keys]))[:, None]
        fixed = np.ascontiguousarray(frames[targets])
        corrected = _residual_pass(backend, key_images, fixed, torch.stack(pieces), iterations)
        with torch.no_grad():
            for (i, p), field in zip(where, corrected, strict=True):
                out[i][p] = field
            # Uncorrected frames after a corrected one in this block: recompose from it.
            for i, last, stop in tails:
                out[i][last:stop] = compose_chain(chains[i].steps[last:stop], out[i][last - 1])
    return out


def use_correction(fields: Any, requested: bool | None) -> bool:
    """Whether to correct ``fields`` (PairwiseFields): None = when they can; True = must.

    Raises RegistrationError when correction is requested but the fields carry no
    frames and backend, or frames of the wrong shape.
    """
    use = fields.can_correct_drift if requested is None else bool(requested)
    if use and not fields.can_correct_drift:
        raise RegistrationError(
            "drift_correction=True needs the frames and backend, which PairwiseFields "
            "built by hand or loaded from a session lack; make them with pairwise_fields() "
            "or pass drift_correction=None/False"
        )
    if use and fields.frames.shape != (fields.n_frames, *fields.frame_shape):
        raise RegistrationError(
            f"fields carry frames of shape {fields.frames.shape}, expected "
            f"({fields.n_frames}, {fields.frame_shape[0]}, {fields.frame_shape[1]})"
        )
    return use
