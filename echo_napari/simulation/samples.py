"""Bundled sample sequences (``sample_data/*.h5``) for File › Open Sample and the tests.

Each sample is one simulated 112×112 A4C sequence with labels on every frame, written in
our HDF5 layout. :func:`load_sample` reads the file from ``sample_data/`` (or the folder
named by ``ECHO_NAPARI_SAMPLE_DATA``); where the package is installed without that folder
it simulates the same sequence from the same seed and parameters (identical content).
Regenerate the files with ``python -m echo_napari.simulation.samples sample_data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.sequence import EchoSequence
from echo_napari.simulation.core import simulate_sequence
from echo_napari.simulation.params import SimulationParams

_BASE = SimulationParams(frames_per_cycle=56, heart_rate_bpm=64.0)

#: name → (seed, parameters, randomize, description)
SAMPLES: dict[str, tuple[int, SimulationParams, bool, str]] = {
    "normal": (11, dataclasses.replace(_BASE, ef=0.60), True, "normal heart, EF 60 %"),
    "reduced_ef": (
        12,
        dataclasses.replace(_BASE, ef=0.30, heart_rate_bpm=82.0),
        True,
        "reduced EF, 30 %",
    ),
    "poor_quality": (
        13,
        dataclasses.replace(
            _BASE,
            ef=0.55,
            snr_db=12.0,
            dropout=0.7,
            jitter_px=1.2,
            haze=0.5,
            n_shadows=2,
            dynamic_range_db=42.0,
            lateral_psf_deg=2.4,
        ),
        False,
        "poor image quality: low SNR, strong dropout, probe jitter, EF 55 %",
    ),
}


def sample_folder() -> Path:
    """Folder holding the sample files: ``$ECHO_NAPARI_SAMPLE_DATA`` or the checkout's
    ``sample_data/``."""
    env = os.environ.get("ECHO_NAPARI_SAMPLE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "sample_data"


def sample_file(name: str) -> Path:
    """Path of a sample's ``.h5`` file (it may not exist in an installed package)."""
    _check_name(name)
    return sample_folder() / f"sim_{name}.h5"


def _check_name(name: str) -> None:
    if name not in SAMPLES:
        raise EchoIOError(name, f"unknown sample; expected one of {sorted(SAMPLES)}")


def simulate_sample(name: str) -> EchoSequence:
    """Simulate a sample afresh, frames quantised to 8 bits as in the stored files."""
    _check_name(name)
    seed, params, randomize, description = SAMPLES[name]
    seq = simulate_sequence(seed, params, randomize=randomize).sequence
    seq.frames = np.round(seq.frames * 255.0).astype(np.float32) / np.float32(255.0)
    seq.metadata["sample"] = name
    seq.metadata["description"] = description
    return seq


def load_sample(name: str) -> EchoSequence:
    """A bundled sample sequence: "normal", "reduced_ef" or "poor_quality".

    Returns
    -------
    EchoSequence
        frames (T, H, W) float32 in [0, 1] (8-bit levels), labels on every frame, spacing
        (mm), frame time, ED/ES and metadata["reference"] (EF %, EDV/ESV mL).
    """
    path = sample_file(name)
    if path.is_file():
        from echo_napari.io import read_sequence

        return read_sequence(path)
    return simulate_sample(name)


def write_samples(folder: str | Path) -> list[Path]:
    """Simulate every sample and write it to ``folder/sim_<name>.h5``."""
    from echo_napari.io import write_sequence

    folder = Path(folder)
    written: list[Path] = []
    for name in SAMPLES:
        written += write_sequence(simulate_sample(name), folder / f"sim_{name}.h5")
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m echo_napari.simulation.samples FOLDER``: regenerate the sample files."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", nargs="?", default=str(sample_folder()))
    args = parser.parse_args(argv)
    for path in write_samples(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
