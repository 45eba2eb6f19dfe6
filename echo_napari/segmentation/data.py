"""Training data for the segmentation model: simulated sequences and real unlabelled videos.

Simulated sequences come with labels for every frame. They are turned into
:class:`~echo_napari.segmentation.training.TrainingSample` objects in one of two modes:

* ``"sparse"``: only ED and ES carry a loss weight (SimLVSeg's weak supervision);
* ``"dense"``: ED/ES weight 1, every other frame a pseudo-label with ``pseudo_weight``.
  The pseudo-labels come from DIR propagation of the ED/ES masks
  (``pseudo_source="dir"``, :func:`echo_napari.registration.propagate_from_keyframes`) or,
  as a development stand-in, from the simulator's own labels (``pseudo_source="simulator"``).

Real EchoNet-Dynamic videos (research use only; never copied into the repository) serve
unlabelled temporal-masking pretraining. :data:`HELD_OUT_VIDEOS` are never trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from echo_napari.errors import EchoNapariError, SequenceError
from echo_napari.segmentation.training import TrainingSample, frame_weights, resize_sequence
from echo_napari.sequence import EchoSequence
from echo_napari.simulation.params import SimulationParams

logger = logging.getLogger(__name__)

#: EchoNet videos of the shared development set kept out of every training run
#: (every fourth file in name order), for an honest real-video check.
HELD_OUT_VIDEOS: tuple[str, ...] = (
    "0X2064D5C200087993",
    "0X309E151E82DD9D94",
    "0X42FBF848EE88CB8D",
    "0X5682461951253D12",
    "0X698EF3292D6654DF",
    "0XA6BD3BA9AAB064D",
)


#: EF range (fractions) of the simulated training hearts (SIM_TO_REAL §3.1: EF 15–75 %+).
TRAINING_EF_RANGE: tuple[float, float] = (0.15, 0.80)


def _simulator() -> tuple[Callable, Callable]:
    """``(simulate_sequence, seeds)`` from the project's simulator."""
    try:
        from echo_napari.simulate import seeds, simulate_sequence
    except ImportError:
        try:
            from echo_napari.simulation.core import simulate_sequence
            from echo_napari.simulation.params import seeds
        except ImportError as exc:
            raise EchoNapariError(f"the simulator is not available: {exc}") from exc
    return simulate_sequence, seeds


def simulator_seeds(split: str, n: int) -> list[int]:
    """The first ``n`` simulator seeds of ``split`` ("train", "val" or "test")."""
    return list(_simulator()[1](split, n))


def training_params() -> SimulationParams:
    """Simulator settings for training: EF drawn per seed from 15–80 % (varied hearts, not
    every one at the default 60 %)."""
    return SimulationParams(ef_range=TRAINING_EF_RANGE)


def _params_key(params: SimulationParams | None) -> str:
    """Short hash of the simulator parameters, part of the cache file name so a cache made
    with other settings is never reused."""
    text = "default" if params is None else repr(params)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def simulated_arrays(
    seed: int,
    size: int,
    cache_dir: str | Path | None = None,
    params: SimulationParams | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One simulated sequence at ``size``²: frames, labels, ED index, ES index.

    ``params`` go to ``simulate_sequence`` (None = its defaults, EF 60 %; training uses
    :func:`training_params`). Cached as ``.npz`` under ``cache_dir`` (never inside the
    repository), keyed by seed, size and a hash of ``params``.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"sim_{seed}_{size}_{_params_key(params)}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as data:
                return data["frames"], data["labels"], int(data["ed"]), int(data["es"])
    simulate_sequence, _ = _simulator()
    sequence = simulate_sequence(seed, params).sequence
    if sequence.labels is None or sequence.ed_index is None or sequence.es_index is None:
        raise SequenceError(f"simulated seed {seed} lacks labels or ED/ES indices")
    frames, labels = resize_sequence(sequence.frames_array(), sequence.labels, size)
    ed, es = int(sequence.ed_index), int(sequence.es_index)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: training runs started together simulate the same
        # seeds, and a shared temporary name lets one rename another's half-written file.
        fd, tmp = tempfile.mkstemp(
            prefix=f".{cache_file.stem}.", suffix=".npz", dir=cache_file.parent
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez_compressed(handle, frames=frames, labels=labels, ed=ed, es=es)
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return frames, labels, ed, es


def dir_pseudo_labels(frames: np.ndarray, keyframe_labels: dict[int, np.ndarray]) -> np.ndarray:
    """``(T, S, S)`` uint8 labels propagated from keyframes with the bundled DIR model."""
    from echo_napari.registration import pairwise_fields, propagate_from_keyframes

    fields = pairwise_fields(frames)
    return propagate_from_keyframes(fields, keyframe_labels).labels


def make_mode_sample(
    frames: np.ndarray,
    labels: np.ndarray,
    ed: int,
    es: int,
    mode: str,
    pseudo_weight: float = 0.3,
    pseudo_source: str = "simulator",
) -> tuple[TrainingSample, str]:
    """A training sample in ``mode`` ("sparse" or "dense"); returns it and the pseudo source
    actually used ("none", "dir" or "simulator")."""
    n = frames.shape[0]
    keyframes = sorted({ed, es})
    if mode == "sparse":
        return TrainingSample(frames, labels, frame_weights(n, keyframes)), "none"
    if mode != "dense":
        raise SequenceError(f"unknown training mode {mode!r}; expected 'sparse' or 'dense'")
    others = [t for t in range(n) if t not in keyframes]
    used = pseudo_source
    pseudo = labels
    if pseudo_source == "dir":
        try:
            pseudo = dir_pseudo_labels(frames, {k: labels[k] for k in keyframes})
            pseudo[keyframes] = labels[keyframes]
        except EchoNapariError as exc:
            logger.warning("DIR pseudo-labels unavailable (%s); using simulator labels", exc)
            used = "simulator"
    weights = frame_weights(n, keyframes, others, 1.0, pseudo_weight)
    return TrainingSample(frames, pseudo.astype(np.uint8), weights), used


def simulated_samples(
    seeds: Sequence[int],
    size: int,
    mode: str,
    pseudo_weight: float = 0.3,
    pseudo_source: str = "simulator",
    cache_dir: str | Path | None = None,
    params: SimulationParams | None = None,
    appearance: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> tuple[list[TrainingSample], set[str]]:
    """Training samples for many simulator seeds; returns them and the pseudo sources used.

    ``appearance(seed, frames)``, when given, returns the frames to train on (e.g.
    histogram-matched to real echo, :func:`echo_napari.segmentation.appearance.matcher`).
    """
    samples, sources = [], set()
    for seed in seeds:
        frames, labels, ed, es = simulated_arrays(seed, size, cache_dir, params)
        if appearance is not None:
            frames = appearance(seed, frames)
        sample, used = make_mode_sample(frames, labels, ed, es, mode, pseudo_weight, pseudo_source)
        samples.append(sample)
        sources.add(used)
    return samples, sources


def echonet_video_paths(root: str | Path, held_out: bool | None = False) -> list[Path]:
    """AVI files under ``root/Videos``: training ones (``held_out=False``), held-out ones
    (``True``) or all (``None``), in name order."""
    videos = sorted(Path(root, "Videos").glob("*.avi"))
    if held_out is None:
        return videos
    return [p for p in videos if (p.stem in HELD_OUT_VIDEOS) == held_out]


def load_videos(paths: Sequence[Path], size: int) -> list[np.ndarray]:
    """Decode videos to ``(T, size, size)`` float32 grey frames in [0, 1]."""
    from echo_napari.io.video import read_video_frames

    out = []
    for path in paths:
        frames, _, _ = read_video_frames(path, lazy=False)
        small, _ = resize_sequence(np.asarray(frames, dtype=np.float32), None, size)
        out.append(small)
    return out


def fingerprint(paths: Sequence[Path]) -> str:
    """Short hash of file names, to identify a training set in a model card."""
    digest = hashlib.sha1("\n".join(sorted(p.name for p in paths)).encode()).hexdigest()
    return digest[:12]


def sample_from_sequence(
    sequence: EchoSequence,
    size: int,
    manual_weight: float = 1.0,
    propagated_weight: float = 0.3,
) -> TrainingSample:
    """A training sample from a reviewed sequence: manual frames (keyframes or manual
    provenance) weigh ``manual_weight``, propagated frames ``propagated_weight``, the rest 0.

    Raises
    ------
    SequenceError
        No labels, or no manual frame.
    """
    from echo_napari.segmentation.finetune import corrected_frames

    manual, propagated = corrected_frames(sequence)
    if not manual:
        raise SequenceError(
            f"{sequence.metadata.get('source', 'sequence')}: no manually labelled frame "
            "(keyframe or manual provenance) to train on"
        )
    frames, labels = resize_sequence(sequence.frames_array(), sequence.labels, size)
    weights = frame_weights(
        sequence.n_frames, manual, propagated, manual_weight, propagated_weight
    )
    return TrainingSample(frames, labels, weights)
