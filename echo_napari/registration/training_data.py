"""Frame-pair sources for unsupervised DIRNet training.

A source holds sequences (T, S, S) at the network's internal resolution and samples
intra-sequence pairs with a gap distribution weighted towards near pairs
(P(gap = d) ∝ 1/d, d = 1 … ``max_gap``), both orders, with light augmentation
(horizontal flip of the pair, shared gamma).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from echo_napari.errors import RegistrationError
from echo_napari.registration.spatial import resize_frames

log = logging.getLogger(__name__)

#: Real EchoNet videos kept out of training (fixed, also listed in the model card).
HELD_OUT_ECHONET = (
    "0X64E2FC6E99FAF669.avi",
    "0X698EF3292D6654DF.avi",
    "0X6F1EA03DBB298142.avi",
    "0X78A2ADFE42F241BD.avi",
    "0X7D52A5663195DC72.avi",
    "0XA6BD3BA9AAB064D.avi",
)


def load_simulator() -> tuple | None:
    """(simulate_sequence, seeds) of the project's simulator, or None when absent."""
    try:
        from echo_napari.simulation import seeds, simulate_sequence
    except ImportError:
        try:
            from echo_napari.simulate import seeds, simulate_sequence
        except ImportError:
            return None
    return simulate_sequence, seeds


def read_video_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decode a video to (T, H, W) float32 grey in [0, 1] with PyAV."""
    import av

    from echo_napari.errors import EchoIOError

    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="gray"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError) as error:
        raise EchoIOError(path, f"could not decode video: {error}") from error
    if not frames:
        raise EchoIOError(path, "video has no frames")
    return np.stack(frames).astype(np.float32) / 255.0


def to_internal(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W) float32 → (T, 1, size, size) tensor at the internal resolution."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]
    return resize_frames(tensor, (size, size)).contiguous()


class PairSource:
    """Samples (fixed, moving) pairs from a list of sequences.

    Parameters
    ----------
    sequences : list of (T, 1, S, S) tensors (T ≥ 2)
    name : str
        Shown in logs and the model card.
    max_gap : int
        Largest frame gap sampled.
    gap_exponent : float
        P(gap = d) ∝ d**-gap_exponent; 1 favours near pairs, 0 samples gaps uniformly
        (more long-range pairs, closer to what drift correction asks of the net).
    """

    def __init__(
        self,
        sequences: Sequence[torch.Tensor],
        name: str,
        max_gap: int = 32,
        gap_exponent: float = 1.0,
    ) -> None:
        self.sequences = [s for s in sequences if s.shape[0] >= 2]
        if not self.sequences:
            raise RegistrationError(f"training source {name!r} has no sequence of ≥ 2 frames")
        self.name = name
        self.max_gap = max_gap
        self.gap_exponent = float(gap_exponent)

    def __len__(self) -> int:
        return len(self.sequences)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of pairs: fixed, moving (batch, 1, S, S)."""
        fixed, moving = [], []
        for _ in range(batch):
            seq = self.sequences[rng.integers(len(self.sequences))]
            t_len = seq.shape[0]
            gaps = np.arange(1, min(self.max_gap, t_len - 1) + 1)
            weights = gaps.astype(np.float64) ** -self.gap_exponent
            gap = int(rng.choice(gaps, p=weights / weights.sum()))
            a = int(rng.integers(0, t_len - gap))
            b = a + gap
            if rng.random() < 0.5:
                a, b = b, a
            f, m = seq[a], seq[b]
            if rng.random() < 0.5:
                f, m = f.flip(-1), m.flip(-1)
            gamma = float(rng.uniform(0.7, 1.4))
            fixed.append(f.clamp(0, 1) ** gamma)
            moving.append(m.clamp(0, 1) ** gamma)
        return torch.stack(fixed), torch.stack(moving)


def echonet_source(
    video_dir: str | Path, size: int, held_out: Sequence[str] = HELD_OUT_ECHONET
) -> PairSource:
    """Unlabelled real videos (every file in ``video_dir`` except ``held_out``)."""
    paths = sorted(p for p in Path(video_dir).glob("*.avi") if p.name not in set(held_out))
    if not paths:
        raise RegistrationError(f"no .avi videos to train on in {video_dir}")
    sequences = [to_internal(read_video_frames(p), size) for p in paths]
    log.info("loaded %d real videos from %s", len(paths), video_dir)
    source = PairSource(sequences, "EchoNet-Dynamic research-use videos")
    source.files = [p.name for p in paths]
    return source


def echonet_npz_source(
    npz_path: str | Path, size: int, held_out: Sequence[str] = HELD_OUT_ECHONET
) -> PairSource:
    """Unlabelled real videos pre-decoded into one ``.npz`` (a ``(T, H, W)`` uint8 array per
    video stem), for machines without a video decoder; ``held_out`` videos are skipped."""
    from echo_napari.io.video import iter_videos_npz

    skip = {Path(name).stem for name in held_out}
    names, sequences = [], []
    for stem, frames in iter_videos_npz(npz_path, skip):
        names.append(stem)
        sequences.append(to_internal(frames, size))
    if not sequences:
        raise RegistrationError(f"no training videos in {npz_path}")
    source = PairSource(sequences, "EchoNet-Dynamic research-use videos")
    source.files = [f"{k}.avi" for k in names]
    return source


def _simulated_frames(seed: int, size: int) -> np.ndarray:
    simulator = load_simulator()
    if simulator is not None:
        return simulator[0](int(seed)).sequence.frames_array()
    from echo_napari.registration.synthetic import phantom_sequence

    return phantom_sequence(int(seed), n_frames=32, size=size).frames


def simulated_source(seeds: Sequence[int], size: int, workers: int = 1) -> PairSource:
    """Simulated sequences from :mod:`echo_napari.simulate` (or the built-in phantom),
    made in ``workers`` processes."""
    name = (
        "echo_napari.simulation sequences"
        if load_simulator()
        else "echo_napari.registration.synthetic phantom sequences"
    )
    from echo_napari.simulation.parallel import map_in_processes

    frames = map_in_processes(partial(_simulated_frames, size=size), seeds, workers)
    sequences = [to_internal(f, size) for f in frames]
    log.info("made %d sequences (%s)", len(sequences), name)
    return PairSource(sequences, name)


def labelled_sequences(
    split: str, n: int, size: int = 112
) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int], str]]:
    """(frames, labels, (ED, ES), name) from the simulator's ``split`` ("val"/"test").

    Falls back to phantom sequences (seeds 10,000+ for "val", 20,000+ for "test") when the
    simulator is not importable.
    """
    simulator = load_simulator()
    out = []
    if simulator is None:
        from echo_napari.registration.synthetic import phantom_sequence

        base = 10_000 if split == "val" else 20_000
        for seed in range(base, base + n):
            p = phantom_sequence(seed, n_frames=24, size=size)
            out.append((p.frames, p.labels, (0, 12), f"phantom-{seed}"))
        return out
    simulate_sequence, seeds = simulator
    for seed in seeds(split, n):
        seq = simulate_sequence(int(seed)).sequence
        out.append((seq.frames_array(), seq.labels, (seq.ed_index, seq.es_index), f"sim-{seed}"))
    return out
