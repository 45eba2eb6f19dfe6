"""Sliding-window prediction over sequences of any length, with blended overlaps.

Each window of ``clip_len`` frames is predicted once; per-frame class probabilities are
blended with a Hann (sin²) weight over the window, so every frame is dominated by the
windows that see it near their centre and no seam appears where windows meet. Sequences
shorter than one clip are reflect-padded in time. Frames are resized to the model's
internal square resolution and the probabilities resized back before the argmax.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from echo_napari.errors import ModelError, SequenceError
from echo_napari.field_of_view import FieldOfView, find_field_of_view
from echo_napari.frame_rate import (
    clip_positions,
    needs_resampling,
    reference_positions,
    sample_in_time,
)
from echo_napari.metrics_place import PLACE_WINDOW, displaced_lv_frames, place_window
from echo_napari.metrics_plausibility import view_lost_frames
from echo_napari.segmentation.boundary import n_reports, refine_lv_boundary
from echo_napari.segmentation.lv_continuity import atrium_pieces_in_lv_place, misplaced_lv_pieces
from echo_napari.segmentation.masks import (
    components_near_per_frame,
    fill_holes_per_frame,
    largest_component_per_frame,
)
from echo_napari.segmentation.mitral_plane import lv_beyond_mitral_plane
from echo_napari.segmentation.prediction_notes import framing_notes, postprocess_notes
from echo_napari.segmentation.shape_prior import apply_shape_prior_in_view, n_batches
from echo_napari.segmentation.weights import SegmentationModel
from echo_napari.segmentation.windows import (
    ONE_WAY_OVERLAP,
    STAGGERED_OVERLAP,
    backward_offset,
    blend_weights,
    n_windows,
    window_starts,
)
from echo_napari.segmentation.work_grid import frames_on_grid, labels_to_shape, work_shape
from echo_napari.sequence import MIRRORED_VIEW_KEY, LabelClass
from echo_napari.uncertainty import lv_border_uncertainty

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: pixels: a myocardium piece this close to the LV cavity is wall, not a stray blob.
WALL_REACH_PX = 2

#: Frames the network sees per call (several short windows are batched up to this).
_FRAMES_PER_CALL = 32


def check_frames(frames: Any, what: str = "frames") -> tuple[int, int, int]:
    """Validate a ``(T, H, W)`` frame array; return its shape.

    Raises
    ------
    SequenceError
        Wrong number of dimensions, empty axes, or (for in-memory arrays) NaN/inf values
        or values far outside [0, 1].
    """
    shape = tuple(getattr(frames, "shape", ()))
    if len(shape) != 3:
        raise SequenceError(
            f"{what}: expected a (T, H, W) array of grey frames; got shape {shape} "
            "(convert colour videos to grey and stack frames along the first axis)"
        )
    t, h, w = (int(s) for s in shape)
    if t < 1 or h < 2 or w < 2:
        raise SequenceError(f"{what}: need at least one 2x2 frame; got shape {shape}")
    if isinstance(frames, np.ndarray):
        if not np.issubdtype(frames.dtype, np.number):
            raise SequenceError(f"{what}: expected numeric frames; got dtype {frames.dtype}")
        finite = np.isfinite(frames)
        if not finite.all():
            bad = int(np.flatnonzero(~finite.reshape(t, -1).all(1))[0])
            raise SequenceError(f"{what}: frame {bad} holds NaN or infinite values")
        lo, hi = float(frames.min()), float(frames.max())
        if lo < -0.01 or hi > 1.01:
            raise SequenceError(
                f"{what}: expected float values in [0, 1]; found range [{lo:.3g}, {hi:.3g}] "
                "(divide 8-bit frames by 255)"
            )
    return t, h, w


def _prepare_clip(clip: np.ndarray, model: SegmentationModel) -> torch.Tensor:
    """(L, H, W) float in [0, 1] → normalised (1, 1, L, S, S) tensor on the model's device."""
    cfg = model.config
    x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)).to(model.device)
    x = x.clamp(0.0, 1.0)[:, None]
    if x.shape[-2:] != (cfg.size, cfg.size):
        shrink = x.shape[-2] > cfg.size or x.shape[-1] > cfg.size
        x = F.interpolate(
            x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=shrink
        )
    x = (x - cfg.mean) / cfg.std
    x = x.permute(1, 0, 2, 3)[None]
    if model.device.type == "cpu":
        # oneDNN's 3D convolutions run ~30 % faster in channels-last layout on CPU.
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x


def predict_probabilities(
    frames: Any,
    model: SegmentationModel,
    clip_len: int | None = None,
    overlap: float = 0.5,
    progress: Progress | None = None,
    offset: int = 0,
) -> np.ndarray:
    """Blended class probabilities at the model's internal resolution.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1]
        numpy or lazy (dask) array; any T ≥ 1.
    model : SegmentationModel
    clip_len : int, optional
        Frames per window (default: the model card's clip length).
    overlap : float in [0, 1)
        Fraction of a window shared with the next one.
    progress : callable(done, total), optional
        Called after each window.
    offset : int
        Frames the windows' starts are shifted by (:func:`window_starts`).

    Returns
    -------
    (T, n_classes, S, S) float32
        Probabilities summing to 1 over the class axis; S = model.config.size.
    """
    n_frames, _, _ = check_frames(frames)
    cfg = model.config
    clip_len = int(clip_len or cfg.clip_len)
    if clip_len < 1 or clip_len % cfg.time_divisor:
        raise ModelError(
            f"clip_len={clip_len} must be a positive multiple of {cfg.time_divisor} "
            f"for model {model.name!r}"
        )
    # Reflect-pad short sequences in time (numpy's reflect also handles T = 1).
    index = np.arange(n_frames)
    if n_frames < clip_len:
        index = np.pad(index, (0, clip_len - n_frames), mode="reflect")
    starts = window_starts(len(index), clip_len, overlap, offset)
    weights = blend_weights(clip_len)
    size = cfg.size
    accumulated = np.zeros((n_frames, cfg.n_classes, size, size), dtype=np.float32)
    weight_sum = np.zeros(n_frames, dtype=np.float32)
    network = model.network
    was_training = network.training
    network.eval()
    # Short windows go through the network several at a time: the same frames per call as
    # one long window, so a short clip length costs no extra per-call overhead. (Group
    # normalisation is per clip, so batching does not change a window's result.)
    per_call = max(1, _FRAMES_PER_CALL // clip_len)
    done = 0
    try:
        with torch.inference_mode():
            for first in range(0, len(starts), per_call):
                batch = [
                    index[start : start + clip_len] for start in starts[first : first + per_call]
                ]
                lo = min(int(w.min()) for w in batch)
                hi = max(int(w.max()) for w in batch) + 1
                block = np.asarray(frames[lo:hi], dtype=np.float32)
                if not np.isfinite(block).all():
                    raise SequenceError(f"frames {lo}..{hi - 1} hold NaN or infinite values")
                clips = torch.cat([_prepare_clip(block[w - lo], model) for w in batch])
                probs = torch.softmax(network(clips).float(), dim=1).permute(0, 2, 1, 3, 4)
                for window_index, window_probs in zip(batch, probs.cpu().numpy(), strict=True):
                    probs_np = window_probs * weights[:, None, None, None]
                    if len(np.unique(window_index)) == clip_len:
                        # unbuffered np.add.at is ~10x slower; only reflect padding repeats
                        accumulated[window_index] += probs_np
                        weight_sum[window_index] += weights
                    else:
                        np.add.at(accumulated, window_index, probs_np)
                        np.add.at(weight_sum, window_index, weights)
                    done += 1
                    if progress is not None:
                        progress(done, len(starts))
    finally:
        network.train(was_training)
    accumulated /= weight_sum[:, None, None, None]
    return accumulated


def probabilities_to_labels(
    probabilities: np.ndarray, shape: tuple[int, int], chunk: int = 64
) -> np.ndarray:
    """Resize ``(T, C, S, S)`` probabilities to ``shape`` (H, W) and take the argmax.

    Works in chunks of frames so a long, large video never needs all-class full-size maps.
    Returns ``(T, H, W)`` uint8.
    """
    n_frames = probabilities.shape[0]
    out = np.empty((n_frames, *shape), dtype=np.uint8)
    for lo in range(0, n_frames, chunk):
        p = torch.from_numpy(probabilities[lo : lo + chunk])
        if tuple(p.shape[-2:]) != tuple(shape):
            p = F.interpolate(p, size=shape, mode="bilinear", align_corners=False)
        # max(dim).indices (the first maximum, as argmax) is ~20x faster than argmax over
        # the class axis on CPU.
        out[lo : lo + chunk] = p.max(dim=1).indices.to(torch.uint8).numpy()
    return out


def drop_misplaced_lv(
    labels: np.ndarray, probabilities: np.ndarray, window: int = PLACE_WINDOW
) -> np.ndarray:
    """Relabel the LV pieces that lie where the LV seldom is on the frames around them
    (:func:`~echo_napari.segmentation.lv_continuity.misplaced_lv_pieces`) as the likelier
    of background and LA — such a piece is the atrium taken for the ventricle.

    Parameters
    ----------
    labels : (T, H, W) uint8, the argmax of ``probabilities``
    probabilities : (T, C, S, S) float, as :func:`predict_probabilities` returns
    window : frames either side that define where the LV usually is

    Returns
    -------
    (T, H, W) uint8, a copy when anything changed
    """
    misplaced = misplaced_lv_pieces(labels, window)
    frames = np.flatnonzero(misplaced.any(axis=(1, 2)))
    if frames.size == 0:
        return labels
    others = np.array(probabilities[frames], dtype=np.float32)
    others[:, [LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM]] = -1.0
    alternative = probabilities_to_labels(others, labels.shape[1:])
    out = labels.copy()
    part = out[frames]
    part[misplaced[frames]] = alternative[misplaced[frames]]
    out[frames] = part
    return out


def postprocess_labels(labels: np.ndarray) -> np.ndarray:
    """Largest connected component per class and frame, holes filled.

    The myocardium also keeps every piece that borders the LV cavity (within
    :data:`WALL_REACH_PX`): a wall broken at the apex or by dropout is two pieces, and
    keeping the larger only made its area jump by half between frames. Holes are filled
    in the LV cavity and LA; the myocardium's holes are filled only with
    pixels that are background (its "hole" is normally the cavity); background enclosed by
    cavity and myocardium together takes the nearer of the two.

    Parameters
    ----------
    labels : (T, H, W) uint8

    Returns
    -------
    (T, H, W) uint8
    """
    out = labels.copy()
    for cls in (LabelClass.LV_CAVITY, LabelClass.LA, LabelClass.MYOCARDIUM):
        mask = out == cls
        if not mask.any():
            continue
        kept = largest_component_per_frame(mask)
        if cls == LabelClass.MYOCARDIUM:
            cavity = out == LabelClass.LV_CAVITY
            kept |= components_near_per_frame(mask, cavity, WALL_REACH_PX)
        out[mask & ~kept] = LabelClass.BACKGROUND
        filled = fill_holes_per_frame(kept)
        if cls == LabelClass.MYOCARDIUM:
            filled &= out == LabelClass.BACKGROUND
        else:
            filled &= ~kept
        out[filled] = cls
    # Background enclosed by cavity and wall together (neither class's own hole): the
    # ventricle has no holes, so each such pixel takes the nearer of the two labels.
    ventricle = (out == LabelClass.LV_CAVITY) | (out == LabelClass.MYOCARDIUM)
    holes = fill_holes_per_frame(ventricle) & ~ventricle
    holes &= out == LabelClass.BACKGROUND
    for t in np.flatnonzero(holes.any(axis=(1, 2))):
        _, (iy, ix) = ndimage.distance_transform_edt(~ventricle[t], return_indices=True)
        out[t][holes[t]] = out[t][iy[holes[t]], ix[holes[t]]]
    return out


#: Frames cleaned up at once after the shape prior (:func:`redraw_with_shape_prior`).
CLEANUP_BLOCK = 16


def redraw_with_shape_prior(
    labels: np.ndarray,
    field_of_view: FieldOfView | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Every labelled frame redrawn by the bundled shape prior
    (:func:`~echo_napari.segmentation.shape_prior.apply_shape_prior_in_view`: each
    frame's LV cavity keeps its pixel count), then the largest component per class
    (:func:`postprocess_labels`). The last step of :func:`predict_sequence`, for callers
    that refine the LV border themselves.

    Parameters
    ----------
    labels : (T, H, W) uint8
    field_of_view : FieldOfView, optional
        Of the frames; None: the frames are the EchoNet-like square already.
    progress : callable(done, total), optional

    Returns
    -------
    (T, H, W) uint8
    """
    redrawn = apply_shape_prior_in_view(labels, field_of_view, progress)
    # Frame by frame all the same; in blocks, so that on large frames no single scipy
    # call holds the GIL long enough to stall the GUI thread (150 frames of a 448-pixel
    # square: 1.1 s in all).
    for start in range(0, len(redrawn), CLEANUP_BLOCK):
        block = slice(start, start + CLEANUP_BLOCK)
        redrawn[block] = postprocess_labels(redrawn[block])
    return redrawn


def predict_sequence(
    frames: Any,
    model: SegmentationModel | None = None,
    clip_len: int | None = None,
    overlap: float | None = None,
    progress: Progress | None = None,
    postprocess: bool = True,
    refine: bool = True,
    shape_prior: bool = True,
    clear_lost_view: bool = True,
    both_directions: bool = True,
    crop_to_sector: bool = True,
    frame_time_ms: float | None = None,
    mirrored: bool = False,
    field_of_view: FieldOfView | None = None,
    tally: dict[str, int] | None = None,
    uncertainty: list[float] | None = None,
) -> np.ndarray:
    """Segment every frame of a sequence.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1]
        Any T ≥ 1 and any H, W (resized internally to the model's resolution).
    model : SegmentationModel, optional
        Default: the selected model version (the bundled one unless the user chose another).
    clip_len : int, optional
        Frames per window; default the model's (8 for the bundled ``seg_v4``).
    overlap : float in [0, 1), optional
        Window overlap of each pass. Default: :data:`ONE_WAY_OVERLAP` (0.5) with
        ``both_directions`` off, else :data:`STAGGERED_OVERLAP` (0) with the backward
        windows centred where the forward ones meet; either way every frame is blended
        from two windows.
    progress : callable(done, total), optional
        Called after each window, then every few frames of the boundary refinement.
    postprocess : bool
        Drop LV pieces away from the LV's place on the frames around them
        (:func:`drop_misplaced_lv`), relabel as LV the atrium pieces lying where the LV
        is on the frames around them
        (:func:`~echo_napari.segmentation.lv_continuity.atrium_pieces_in_lv_place`),
        then the largest component per class and hole filling; on frames whose LV wraps
        around the LA, the LV beyond the mitral plane becomes LA
        (:func:`~echo_napari.segmentation.mitral_plane.lv_beyond_mitral_plane`).
    refine : bool
        Move each frame's LV cavity border to the image's blood/wall border, after the
        background cut into it is filled
        (:func:`echo_napari.segmentation.boundary.refine_lv_boundary`).
    shape_prior : bool
        Last (after ``refine``), redraw every labelled frame as the bundled shape
        prior's plausible heart, each frame's LV cavity keeping its pixel count
        (:func:`~echo_napari.segmentation.shape_prior.apply_shape_prior`: notched apices,
        ventricles running into the atrium and atria drawn apart go), then the largest
        component per class again. On the 24 shared EchoNet videos plausible frames
        98.4 → 98.1 % (training videos), 95.9 → 99.8 % (held out); EF MAE 7.7 → 8.0
        (held out 7.2 → 7.0): the shapes' rounder tips move the area-length volumes.
        Then the frames on which the LV lost its apex are re-drawn from the frames
        either side by registration
        (:func:`~echo_napari.registration.apex_restore.restore_collapsed_apex`).
    clear_lost_view : bool
        Leave unlabelled the frames on which the model found no heart
        (:func:`echo_napari.metrics_plausibility.view_lost_frames`: probe off the chest, a
        changed view), rather than keep the specks it drew there; then also those whose
        LV lies away from where it is on the frames around them
        (:func:`echo_napari.metrics_place.displaced_lv_frames`: the atrium or a
        neighbouring chamber taken for the ventricle, fragments in fog). On the 24 shared
        EchoNet videos the second clears 14 frames of 0X1059…, 4 of 0X64E2… and 8 of
        0X3981…, no others.
    both_directions : bool
        Average the class probabilities of the frames played forwards and backwards (the
        model is trained on clips in both directions, so each frame sees its context from
        both sides). On the 18 training EchoNet videos, EF MAE over five models' masks
        7.05 → 6.70 (the bundled one 7.55 → 6.35); the 6 held out, measured once after the
        choice: 9.34 → 8.80 (9.36 → 8.05). Each direction's windows are staggered
        (:data:`STAGGERED_OVERLAP`), so it costs the network time of one direction; on
        the training videos (``seg_v4``) EF MAE 8.1 → 7.8 against two passes of
        overlapping windows, held out (measured after) 7.3 → 7.2, and 128 real frames
        take 1.6 s instead of 2.5 s on 2 threads.
    crop_to_sector : bool
        Segment the EchoNet-like square around the imaging sector
        (:mod:`echo_napari.field_of_view`: a scanner's screen with text, scales and an ECG
        trace around the sector) and put the labels back in the whole frame, 0 outside the
        sector; frames that are (nearly) that square already, as EchoNet's, are used as
        they are.
    frame_time_ms : float, optional
        ms between frames. A clip far from 50 frames/s (:mod:`echo_napari.frame_rate`) is
        given to the network resampled in time to 50 /s, and the class probabilities are
        taken back at its own frames. None: used as it is.
    mirrored : bool
        The clip is shown in the mirrored apical convention (LV on the left of the
        screen, RV on the right). The bundled models know EchoNet's (LV on the right):
        fed a mirrored clip they draw the LV over both ventricles or over the RV (on the
        24 shared videos mirrored, EF MAE 7.2 → 10.9, plausible frames 99 → 92 %). With
        this set the network is given the clip mirrored back, and the labels are
        mirrored to the clip.
    field_of_view : FieldOfView, optional
        The square of ``crop_to_sector``, when the caller found it already (it then
        shares it with :func:`~echo_napari.segmentation.boundary.refine_lv_boundary`);
        default: found from ``frames``.
    tally : dict, optional
        Filled with the number of frames each post-processing step changed, for the
        user's status line: ``"cut_at_mitral_plane"`` (LV drawn around the LA, cut back),
        ``"view_lost"`` and ``"lv_displaced"`` (left unlabelled by ``clear_lost_view``),
        ``"apex_restored"`` (re-drawn after ``shape_prior``).
    uncertainty : list, optional
        Filled with each frame's LV-border uncertainty (T floats,
        :func:`~echo_napari.uncertainty.lv_border_uncertainty`).

    Returns
    -------
    (T, H, W) uint8
        :class:`~echo_napari.sequence.LabelClass` values.
    """
    if model is None:
        from echo_napari.segmentation.versions import load_model

        model = load_model("selected")
    check_frames(frames)
    view = None
    if crop_to_sector:
        view = field_of_view if field_of_view is not None else find_field_of_view(frames)
        if view.is_whole:
            view = None
    source = view.crop(frames) if view is not None else frames
    if mirrored:  # the square is centred on the sector: mirroring it mirrors the clip
        source = source[:, :, ::-1]
    labels = _segment(
        source,
        model,
        clip_len,
        overlap,
        progress,
        postprocess,
        refine,
        shape_prior,
        clear_lost_view,
        both_directions,
        frame_time_ms,
        tally if tally is not None else {},
        uncertainty if uncertainty is not None else [],
    )
    if mirrored:
        labels = np.ascontiguousarray(labels[:, :, ::-1])
    return view.paste(labels) if view is not None else labels


def _segment(
    frames: Any,
    model: SegmentationModel,
    clip_len: int | None,
    overlap: float | None,
    progress: Progress | None,
    postprocess: bool,
    refine: bool,
    shape_prior: bool,
    clear_lost_view: bool,
    both_directions: bool,
    frame_time_ms: float | None,
    tally: dict[str, int],
    uncertainty: list[float],
) -> np.ndarray:
    """:func:`predict_sequence` on frames already framed (and checked) as the network
    expects; ``tally`` and ``uncertainty`` as there."""
    n_frames, height, width = (int(n) for n in frames.shape)
    resample = n_frames > 1 and needs_resampling(frame_time_ms)
    network_frames = (
        sample_in_time(frames, reference_positions(n_frames, frame_time_ms))
        if resample
        else frames
    )
    n_network = int(network_frames.shape[0])
    length = int(clip_len or model.config.clip_len)
    if overlap is None:
        overlap = STAGGERED_OVERLAP if both_directions else ONE_WAY_OVERLAP
    back_offset = backward_offset(n_network, length, overlap)
    windows = n_windows(n_network, length, overlap)
    back_windows = n_windows(n_network, length, overlap, back_offset) if both_directions else 0
    refine_reports = n_reports(n_frames) if refine else 0
    prior_reports = n_batches(n_frames) if shape_prior else 0
    total = windows + back_windows + refine_reports + prior_reports

    def report(done: int, stage_offset: int) -> None:
        if progress is not None:
            progress(stage_offset + done, total)

    probs = predict_probabilities(
        network_frames, model, clip_len, overlap, lambda done, _: report(done, 0)
    )
    if both_directions:
        backwards = predict_probabilities(
            network_frames[::-1],
            model,
            clip_len,
            overlap,
            lambda done, _: report(done, windows),
            offset=back_offset,
        )
        probs += backwards[::-1]
        probs *= 0.5
    if resample:
        probs = sample_in_time(probs, clip_positions(n_frames, frame_time_ms))
    uncertainty[:] = lv_border_uncertainty(probs[:, LabelClass.LV_CAVITY]).tolist()
    # frames larger than the network's grid are post-processed on it (:mod:`.work_grid`)
    work = work_shape((height, width), probs.shape[-2:])
    labels = probabilities_to_labels(probs, work or (height, width))
    window = place_window(frame_time_ms)  # ~0.5 s either side at any frame rate
    if postprocess:
        labels = drop_misplaced_lv(labels, probs, window)
        labels[atrium_pieces_in_lv_place(labels, window)] = LabelClass.LV_CAVITY
        labels = postprocess_labels(labels)
        beyond = lv_beyond_mitral_plane(labels)
        tally["cut_at_mitral_plane"] = int(np.count_nonzero(beyond.any(axis=(1, 2))))
        if beyond.any():
            labels[beyond] = LabelClass.LA
            labels = postprocess_labels(labels)
    if clear_lost_view and n_frames > 1:
        lost = view_lost_frames(labels)
        labels[lost] = LabelClass.BACKGROUND
        displaced = displaced_lv_frames(labels, frame_time_ms=frame_time_ms)
        labels[displaced] = LabelClass.BACKGROUND
        tally["view_lost"] = int(np.count_nonzero(lost))
        tally["lv_displaced"] = int(np.count_nonzero(displaced))
    if refine:
        labels = refine_lv_boundary(
            frames if work is None else frames_on_grid(frames, work),
            labels,
            progress=lambda done, _: report(done, windows + back_windows),
        )
    if shape_prior:
        from echo_napari.segmentation.plausible_shapes import draw_plausible_shapes

        labels, restored = draw_plausible_shapes(
            frames,
            labels,
            frame_time_ms=frame_time_ms,
            prior_progress=lambda done, _: report(done, windows + back_windows + refine_reports),
        )
        tally["apex_restored"] = 0 if restored is None else int(restored.redrawn.size)
    return labels if work is None else labels_to_shape(labels, (height, width))


__all__ = [
    "MIRRORED_VIEW_KEY",
    "blend_weights",
    "framing_notes",
    "check_frames",
    "drop_misplaced_lv",
    "n_windows",
    "postprocess_labels",
    "postprocess_notes",
    "predict_probabilities",
    "predict_sequence",
    "probabilities_to_labels",
    "redraw_with_shape_prior",
    "window_starts",
]
