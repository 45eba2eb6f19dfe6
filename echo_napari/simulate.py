"""Synthetic echo sequences with known motion and full-cycle ground truth.

Public API (the pieces live in :mod:`echo_napari.simulation`)::

    simulate_sequence(seed, params=None, randomize=True) -> SimulatedSequence
    SimulationParams, SimulatedSequence, SPLITS, seeds(split, n)

Seed split — every benchmark and training script uses it; ``test`` is held out and never
used for training by anyone:

======  ==================  ====================================================
split   seeds               use
======  ==================  ====================================================
train   0 … 899,999         training models (on-the-fly generation)
val     900,000 … 949,999   model selection, early stopping
test    950,000 … 999,999   held-out: final numbers only, never for training
======  ==================  ====================================================

Command line: ``python -m echo_napari.simulate --out DIR --format echonet --n 10
--split test`` writes datasets laid out like the real ones (see ``--help``).
"""

from __future__ import annotations

from echo_napari.simulation.core import SimulatedSequence, simulate_sequence
from echo_napari.simulation.params import SPLITS, SimulationParams, seeds

__all__ = ["SPLITS", "SimulatedSequence", "SimulationParams", "main", "seeds", "simulate_sequence"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m echo_napari.simulate``)."""
    from echo_napari.simulation.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
