"""Re-draw the frames on which a segmentation lost the LV's apex, by registration.

:func:`echo_napari.metrics_apex.apex_collapses` finds the stretches where the LV's tip
jumped away from the probe and back (the apical cavity taken for wall at end-systole).
The frames either side of each stretch have the apex; here their labels are carried
through the stretch by the pairwise registration fields of just those frames, both
directions, fused (:func:`~echo_napari.registration.propagation.propagate_from_keyframes`):
the ventricle shortens as the tissue moves, not as the network's view of the haze does.

On the 24 shared EchoNet videos (``seg_v4`` with the shape prior) it re-draws 0X1059…'s 28
end-systolic frames and one frame of 0X78A2…: 0X1059…'s EF 85.7 → 78.3 % (FileList 66.2),
its frames passing the anatomical checks 92.5 → 100 %, EF MAE over the 24 7.98 → 7.67
(``benchmarks/real_echo.py``, before the mitral-plane cut's one-third limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from echo_napari.metrics_apex import apex_collapses, collapsed_frames
from echo_napari.registration.backends import RegistrationBackend, resolve_backend
from echo_napari.registration.propagation import pairwise_fields, propagate_from_keyframes

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ApexRestore:
    """What :func:`restore_collapsed_apex` did.

    Attributes
    ----------
    labels : (T, H, W) uint8, the labels with the stretches re-drawn (the input's
        array when nothing was found)
    stretches : [(before, after), ...] the frames either side of each stretch
    redrawn : (N,) int64, the frames re-drawn
    backend : the registration backend that carried them (None when none was needed)
    """

    labels: np.ndarray
    stretches: list[tuple[int, int]]
    redrawn: np.ndarray
    backend: RegistrationBackend | None = None


def restore_collapsed_apex(
    frames: np.ndarray,
    labels: np.ndarray,
    probe: tuple[float, float],
    frame_time_ms: float | None = None,
    backend: str | RegistrationBackend | Callable[[], RegistrationBackend] = "dirnet",
    progress: Progress | None = None,
) -> ApexRestore:
    """Carry the labels of the frames around each lost-apex stretch across it.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1] (numpy or dask; only the stretches are read),
        at the labels' size or larger (then resized to it as the network's input is:
        :func:`~echo_napari.segmentation.work_grid.frames_on_grid`)
    labels : (T, h, w) uint8, LabelClass values
    probe : (row, col) pixels of the fan's apex in the labels' frame
        (:attr:`echo_napari.field_of_view.FieldOfView.apex_point`)
    frame_time_ms : ms between frames; None reads as 20 (50 frames/s)
    backend : registration backend, its name, or a function that makes one (called only
        when a stretch is found: most clips need none)
    progress : callable(done, total) over the stretches

    Returns
    -------
    ApexRestore
    """
    stretches = apex_collapses(labels, probe, frame_time_ms)
    redrawn = np.flatnonzero(collapsed_frames(stretches, len(labels))).astype(np.int64)
    if not stretches:
        return ApexRestore(labels, [], redrawn)
    if callable(backend) and not hasattr(backend, "register_pairs"):
        backend = backend()
    backend = resolve_backend(backend)
    out = np.array(labels, dtype=np.uint8, copy=True)
    for done, (before, after) in enumerate(stretches):
        clip = frames[before : after + 1]
        compute = getattr(clip, "compute", None)
        if compute is not None:  # a lazy clip: decoded here, on the calling thread
            clip = compute(scheduler="synchronous")
        if tuple(clip.shape[1:]) != out.shape[1:]:
            from echo_napari.segmentation.work_grid import frames_on_grid

            clip = frames_on_grid(clip, out.shape[1:])
        clip = np.asarray(clip, dtype=np.float32)
        fields = pairwise_fields(clip, backend)
        ends = {0: out[before], after - before: out[after]}
        carried = propagate_from_keyframes(fields, ends).labels
        out[before + 1 : after] = carried[1:-1]
        if progress is not None:
            progress(done + 1, len(stretches))
    return ApexRestore(out, stretches, redrawn, backend)
