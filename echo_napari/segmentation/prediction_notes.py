"""What :func:`~echo_napari.segmentation.inference.predict_sequence` did to a clip, in
words for the user's status line."""

from __future__ import annotations

from typing import Any

from echo_napari.field_of_view import FieldOfView, find_field_of_view
from echo_napari.frame_rate import needs_resampling


def framing_notes(
    frames: Any,
    frame_time_ms: float | None = None,
    mirrored: bool = False,
    field_of_view: FieldOfView | None = None,
) -> list[str]:
    """How :func:`~echo_napari.segmentation.inference.predict_sequence` shows this clip
    to the network, in words for a status line ("the 448-pixel square around the imaging
    sector", "turned apex up", "resampled from 30 to 50 frames/s", "mirrored back");
    empty for an EchoNet-like clip.

    Parameters
    ----------
    frames : (T, H, W) float32, numpy or lazy (dask) array
    frame_time_ms, mirrored, field_of_view
        As for :func:`~echo_napari.segmentation.inference.predict_sequence`.
    """
    notes = []
    view = field_of_view if field_of_view is not None else find_field_of_view(frames)
    if not view.is_whole and not view.crops_whole_frame:
        notes.append(f"the {view.side}-pixel square around the imaging sector")
    if view.apex_down:
        notes.append("turned apex up (the clip shows the apex at the bottom)")
    if int(frames.shape[0]) > 1 and needs_resampling(frame_time_ms):
        notes.append(f"resampled from {1000.0 / frame_time_ms:.0f} to 50 frames/s")
    if mirrored:
        notes.append("mirrored back (LV on the left)")
    return notes


def postprocess_notes(tally: dict[str, int]) -> list[str]:
    """The ``tally`` of :func:`~echo_napari.segmentation.inference.predict_sequence` in
    words for a status line ("LV cut back to the mitral plane on 12 frames"); steps that
    changed nothing are left out."""
    words = (
        ("cut_at_mitral_plane", "LV cut back to the mitral plane on {} frame{}"),
        ("view_lost", "no heart found on {} frame{} (left unlabelled)"),
        ("lv_displaced", "LV away from its place on {} frame{} (left unlabelled)"),
        ("apex_restored", "apex lost on {} frame{}: re-drawn from the frames either side"),
    )
    return [
        text.format(tally[key], "" if tally[key] == 1 else "s")
        for key, text in words
        if tally.get(key)
    ]
