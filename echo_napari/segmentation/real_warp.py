"""Real-appearance systoles: a real end-diastolic frame contracted by a known deformation.

The simulator's images are not real echo, and the labels our own models draw on real
videos are only trustworthy where the cavity is clear, mostly at end-diastole. This
module takes a real end-diastolic frame and its label and contracts the left ventricle by
a smooth, known deformation (cavity drawn towards its long axis, walls thickening, the
mitral plane descending towards a nearly still apex, the atrium stretching), warping the
image and the label with the same map. The result is a clip whose every frame has a real
echo's texture, haze and trabeculae and a label that matches it exactly: what the network
lacks at end-systole, where it calls the hazy, compressed cavity of real clips myocardium.
A band of the cavity border is relabelled myocardium as the contraction proceeds
(``compaction``): the trabeculae join the wall as the blood between them is squeezed out,
and without it the network learnt to draw end-systolic cavities 16–19 % too large.

Shapes: frames ``(S, S)`` / ``(T, S, S)`` float32 in [0, 1], labels the same uint8
(:class:`~echo_napari.sequence.LabelClass` values), coordinates ``(row, col)`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echo_napari.errors import SequenceError
from echo_napari.metrics_volume import long_axis as volume_long_axis
from echo_napari.sequence import LabelClass

#: Pixels the cavity's pull reaches beyond the endocardium (e-folding distance), so the
#: wall thickens: its inner border moves fully, its outer one by about a third.
WALL_REACH_PX = 5.0
#: Pixels the mitral plane's descent reaches beyond the cavity and into the atrium.
BASE_REACH_PX = 12.0


@dataclass(frozen=True)
class Contraction:
    """How far one synthetic systole goes.

    Attributes
    ----------
    radial : share of the cavity's half-width lost at end-systole (0–1)
    longitudinal : share of the long axis by which the mitral plane descends (0–1)
    es_frame : frame index of end-systole in the clip
    n_frames : clip length, frames
    recovery : share of the contraction undone by the clip's last frame (early diastole)
    compaction : pixels of cavity border turned myocardium at end-systole, where the
        blood between trabeculae is squeezed out and they join the wall (0: none)
    """

    radial: float
    longitudinal: float
    es_frame: int
    n_frames: int
    recovery: float
    compaction: float = 0.0


def long_axis(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base and apex points of the LV cavity, ``(2,)`` float64 each, pixels.

    The cavity's principal axis (:func:`echo_napari.metrics_volume.long_axis`); its base
    end is the one nearer the atrium or, with no atrium drawn, the one farther
    from the image top (apex-up framing).
    """
    cavity = labels == LabelClass.LV_CAVITY
    if np.count_nonzero(cavity) < 20:
        raise SequenceError("no LV cavity to contract (fewer than 20 pixels)")
    axis = volume_long_axis(cavity, None)
    # ends[0] is the apical end for apex-up framing (the axis points from the top down)
    ends = np.asarray(axis.centre) + np.outer([axis.start, axis.end], axis.direction)
    atrium = np.argwhere(labels == LabelClass.LA)
    base_first = len(atrium) > 0 and np.linalg.norm(
        ends[0] - atrium.mean(axis=0)
    ) < np.linalg.norm(ends[1] - atrium.mean(axis=0))
    base, apex = (ends[0], ends[1]) if base_first else (ends[1], ends[0])
    return base, apex


def contraction_field(labels: np.ndarray, radial: float, longitudinal: float) -> np.ndarray:
    """Forward displacement of a full contraction, ``(2, S, S)`` float64 pixels (row, col).

    Parameters
    ----------
    labels : (S, S) uint8 end-diastolic label
    radial : share of the cavity's half-width lost
    longitudinal : share of the long axis the mitral plane descends
    """
    base, apex = long_axis(labels)
    length = float(np.linalg.norm(apex - base))
    along = (apex - base) / length
    grid = np.indices(labels.shape, dtype=np.float64)
    rel = grid - base[:, None, None]
    u = np.tensordot(along, rel, axes=1) / length  # 0 at the base, 1 at the apex
    perp = rel - along[:, None, None] * (u * length)[None]
    outside = ndimage.distance_transform_edt(labels != 1)
    pull = np.exp(-outside / WALL_REACH_PX) * np.clip(u / 0.1, 0.0, 1.0)
    radial_disp = -radial * perp * pull[None]
    # The mitral plane descends, the apex nearly still; the atrium's far wall stays.
    atrium_decay = np.exp(np.minimum(u, 0.0) * length / BASE_REACH_PX)
    reach = np.exp(-outside / (2 * BASE_REACH_PX)) * atrium_decay
    descent = longitudinal * length * (1.0 - np.clip(u, 0.0, 1.0)) * reach
    field = radial_disp + along[:, None, None] * descent[None]
    return np.stack([ndimage.gaussian_filter(c, 1.5) for c in field])


def warp_pair(
    frame: np.ndarray, labels: np.ndarray, field: np.ndarray, iterations: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` (bilinear) and ``labels`` (nearest) moved by the forward ``field``.

    The backward map ``p = q - field(p)`` is solved by fixed-point iteration.
    """
    grid = np.indices(frame.shape, dtype=np.float64)
    source = grid.copy()
    for _ in range(iterations):
        disp = np.stack(
            [ndimage.map_coordinates(c, source, order=1, mode="nearest") for c in field]
        )
        source = grid - disp
    moved = ndimage.map_coordinates(frame, source, order=1, mode="nearest")
    moved_labels = ndimage.map_coordinates(labels, source, order=0, mode="nearest")
    return moved.astype(np.float32), moved_labels.astype(np.uint8)


def compact_border(labels: np.ndarray, depth_px: float) -> np.ndarray:
    """``labels`` with the cavity pixels within ``depth_px`` of the wall relabelled
    myocardium; the mitral plane (cavity pixels within 3 px of the atrium) is left."""
    if depth_px <= 0:
        return labels
    cavity = labels == LabelClass.LV_CAVITY
    depth = ndimage.distance_transform_edt(cavity)
    near_atrium = ndimage.distance_transform_edt(labels != LabelClass.LA) < 3
    out = labels.copy()
    out[cavity & (depth <= depth_px) & ~near_atrium] = LabelClass.MYOCARDIUM
    return out


def contraction_schedule(c: Contraction) -> np.ndarray:
    """``(n_frames,)`` share of the full contraction per frame: a cosine rise to 1 at
    ``es_frame``, then a cosine fall by ``recovery``."""
    t = np.arange(c.n_frames, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / max(c.es_frame, 1), 0.0, 1.0))
    tail = max(c.n_frames - 1 - c.es_frame, 1)
    fall = c.recovery * (0.5 - 0.5 * np.cos(np.pi * np.clip((t - c.es_frame) / tail, 0.0, 1.0)))
    return np.where(t <= c.es_frame, rise, 1.0 - fall)


def synthetic_systole(
    frame: np.ndarray, labels: np.ndarray, contraction: Contraction
) -> tuple[np.ndarray, np.ndarray]:
    """A clip ``(T, S, S)`` float32 and its labels ``(T, S, S)`` uint8 from one ED frame."""
    full = contraction_field(labels, contraction.radial, contraction.longitudinal)
    frames, masks = [], []
    for share in contraction_schedule(contraction):
        moved, moved_labels = warp_pair(frame, labels, full * share)
        frames.append(moved)
        masks.append(compact_border(moved_labels, contraction.compaction * share))
    return np.stack(frames), np.stack(masks)


#: Default ranges of :func:`random_contraction`: area-length EF of roughly 30–75 %.
RADIAL_RANGE: tuple[float, float] = (0.15, 0.45)
LONGITUDINAL_RANGE: tuple[float, float] = (0.05, 0.2)


def random_contraction(
    rng: np.random.Generator,
    n_frames: int = 16,
    radial: tuple[float, float] = RADIAL_RANGE,
    longitudinal: tuple[float, float] = LONGITUDINAL_RANGE,
    compaction: tuple[float, float] = (0.0, 0.0),
) -> Contraction:
    """A systole drawn uniformly from the ``radial``, ``longitudinal`` (shares) and
    ``compaction`` (pixels) ranges."""
    return Contraction(
        radial=float(rng.uniform(*radial)),
        longitudinal=float(rng.uniform(*longitudinal)),
        es_frame=int(rng.integers(n_frames // 2 - 2, n_frames // 2 + 3)),
        n_frames=n_frames,
        recovery=float(rng.uniform(0.2, 0.7)),
        compaction=float(rng.uniform(*compaction)),
    )


def end_diastoles(labels: np.ndarray, max_score: float = 0.5) -> list[int]:
    """ED frame indices of a label sequence's beats whose ED label passes the
    anatomical checks (:func:`echo_napari.metrics_plausibility.frame_plausibility`)."""
    from echo_napari.metrics_ef import ef_by_beats
    from echo_napari.metrics_plausibility import frame_plausibility

    score = frame_plausibility(labels).score
    return sorted({ed for ed, _, _ in ef_by_beats(labels).beats if score[ed] < max_score})


def real_systole_clips(
    videos: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    per_frame: int,
    seed: int = 0,
    n_frames: int = 16,
    radial: tuple[float, float] = RADIAL_RANGE,
    longitudinal: tuple[float, float] = LONGITUDINAL_RANGE,
    compaction: tuple[float, float] = (0.0, 0.0),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``per_frame`` synthetic systoles from every plausible ED frame of every video.

    Parameters
    ----------
    videos : (T, S, S) float32 frames per video
    labels : (T, S, S) uint8 labels of the same videos (e.g. the bundled model's)
    radial, longitudinal, compaction : ranges the contractions are drawn from
        (:class:`Contraction`)
    """
    rng = np.random.default_rng(seed)
    clips = []
    for frames, lab in zip(videos, labels, strict=True):
        for ed in end_diastoles(lab):
            for _ in range(per_frame):
                contraction = random_contraction(rng, n_frames, radial, longitudinal, compaction)
                clips.append(synthetic_systole(frames[ed], lab[ed], contraction))
    return clips
