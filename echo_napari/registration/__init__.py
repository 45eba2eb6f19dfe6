"""Deformable registration and keyframe propagation.

Conventions: frames (T, H, W) float32 in [0, 1]; displacement fields (…, 2, H, W)
float32 in pixels, channel 0 = dy, 1 = dx, pull convention
``warped(x) = moving(x + u(x))``; labels (H, W) / (T, H, W) uint8.

Typical use::

    fields = pairwise_fields(frames)                       # DIRNet, both directions
    result = propagate_from_keyframes(fields, {ed: ed_labels, es: es_labels})
    result = update_after_keyframe_change(result, fields, new_keyframes, changed=17)
"""

from echo_napari.registration.backends import (
    DirnetBackend,
    RegistrationBackend,
    available_backends,
    default_device,
    get_backend,
    register,
)
from echo_napari.registration.fusion import fuse_signed_distances, signed_distance
from echo_napari.registration.propagation import (
    PairwiseFields,
    PropagationResult,
    pairwise_fields,
    propagate_from_keyframes,
    update_after_keyframe_change,
)
from echo_napari.registration.warping import (
    compose,
    folding_fraction,
    jacobian_determinant,
    log_jacobian_std,
    warp_image,
    warp_labels,
)

__all__ = [
    "DirnetBackend",
    "PairwiseFields",
    "PropagationResult",
    "RegistrationBackend",
    "available_backends",
    "compose",
    "default_device",
    "folding_fraction",
    "fuse_signed_distances",
    "get_backend",
    "jacobian_determinant",
    "log_jacobian_std",
    "pairwise_fields",
    "propagate_from_keyframes",
    "register",
    "signed_distance",
    "update_after_keyframe_change",
    "warp_image",
    "warp_labels",
]
