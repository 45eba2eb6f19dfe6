"""Forward–backward consistency of displacement fields.

* :func:`symmetrise_pairs`: inverse-consistent averaging of the two directions of each
  consecutive pair. ``forward[t]`` (fixed t+1, moving t) and ``backward[t]`` (fixed t,
  moving t+1) describe the same motion, so ``forward ≈ −backward ∘ (id + forward)``; the
  average of the two estimates is used in place of each. Both directions are registered
  anyway, so this costs two resamplings per pair and no registration. On 6 simulated val
  sequences (dirnet_v1 of step 10,952, drift correction with blocks of 8) it raised the
  fused LV Dice over all frames from 0.950 to 0.959 (without drift correction 0.923 to
  0.947; SimpleITK B-spline 0.956 to 0.958), mostly on frames far from a keyframe, where
  per-pair errors accumulate.
* :func:`cycle_consistency`: carry a mask from one frame to another and back (fields from
  :func:`.drift.composed_field`) and compare it with where it started (label-free quality
  of a registration: a perfect one returns the mask unchanged).

Fields: (N, 2, H, W) float32, pixels, channel 0 = dy, 1 = dx, pull convention
``warped(x) = moving(x + u(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from echo_napari.errors import RegistrationError
from echo_napari.metrics import dice_coefficient
from echo_napari.registration import spatial
from echo_napari.registration.validation import check_field, check_labels
from echo_napari.registration.warping import warp_labels


def symmetrise_pairs(forward: np.ndarray, backward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-consistent average of the two directions of each pair.

    Parameters
    ----------
    forward : (N, 2, H, W) float32, pixels
        ``forward[t]``: fixed = frame t+1, moving = frame t.
    backward : (N, 2, H, W) float32, pixels
        ``backward[t]``: fixed = frame t, moving = frame t+1.

    Returns
    -------
    forward, backward : (N, 2, H, W) float32, pixels
        ``½ (f − b ∘ (id + f))`` and ``½ (b − f ∘ (id + b))``. A pair that is already
        inverse-consistent is returned unchanged (up to interpolation).
    """
    check_field(forward, "forward")
    check_field(backward, "backward")
    if forward.shape != backward.shape or forward.ndim != 4:
        raise RegistrationError(
            f"forward {forward.shape} and backward {backward.shape} must both be (N, 2, H, W)"
        )
    with torch.inference_mode():
        f = torch.from_numpy(np.ascontiguousarray(forward, dtype=np.float32))
        b = torch.from_numpy(np.ascontiguousarray(backward, dtype=np.float32))
        # b ∘ (id + f): backward sampled where forward points (and vice versa).
        f_sym = 0.5 * (f - spatial.sample(b, spatial.sampling_grid(f)))
        b_sym = 0.5 * (b - spatial.sample(f, spatial.sampling_grid(b)))
    return f_sym.numpy(), b_sym.numpy()


@dataclass(frozen=True)
class CycleScores:
    """A mask carried from frame a to frame b and back.

    Attributes
    ----------
    dice : float
        Dice of the start mask and its round trip (1 = perfectly cycle-consistent).
    carried : (H, W) bool
        The mask at frame b (after the outward trip).
    returned : (H, W) bool
        The mask back at frame a.
    """

    dice: float
    carried: np.ndarray
    returned: np.ndarray


def _warp_mask(mask: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Warp a boolean mask as a signed distance map (linear), thresholded at 0."""
    return warp_labels(mask.astype(np.uint8), u, classes=(1,)) > 0


def cycle_consistency(there: np.ndarray, back: np.ndarray, mask: np.ndarray) -> CycleScores:
    """Carry ``mask`` out with ``there`` and back with ``back``; Dice with the start.

    Parameters
    ----------
    there : (2, H, W) float32, pixels
        Composed field with fixed = frame b, moving = frame a (carries a's content to b).
    back : (2, H, W) float32, pixels
        Composed field with fixed = frame a, moving = frame b.
    mask : (H, W) bool or integer labels (non-zero = inside), at frame a

    Returns
    -------
    CycleScores. The mask is warped as a signed distance map each way (no nearest-
    neighbour loss); the round trip resamples twice, as propagating out and back would.
    """
    check_field(there, "there")
    check_field(back, "back")
    if there.shape != back.shape or there.ndim != 3:
        raise RegistrationError(
            f"there {there.shape} and back {back.shape} must both be (2, H, W) fields"
        )
    start = check_labels(np.asarray(mask) != 0, "mask", there.shape[1:]) > 0
    if not start.any():
        raise RegistrationError("cycle_consistency needs a non-empty mask at the start frame")
    carried = _warp_mask(start, there)
    if not carried.any():
        return CycleScores(0.0, carried, np.zeros_like(start))
    returned = _warp_mask(carried, back)
    return CycleScores(dice_coefficient(start, returned), carried, returned)
