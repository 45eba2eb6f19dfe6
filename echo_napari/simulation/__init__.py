"""Synthetic apical four-chamber echo with exact full-cycle ground truth.

Modules: :mod:`.params` (knobs, seed split), :mod:`.anatomy` (ED geometry),
:mod:`.cycle` (cardiac cycle), :mod:`.motion` (analytic pull map), :mod:`.texture`
(echogenicity, valves), :mod:`.imaging` (speckle, PSF, log compression, scan conversion),
:mod:`.core` (``simulate_sequence``), :mod:`.samples` (bundled sample sequences),
:mod:`.datasets` (writing EchoNet/CAMUS/TED/HDF5/DICOM/AVI layouts), :mod:`.cli`
(``python -m echo_napari.simulate``), :mod:`.interp` (bilinear sampling plans),
:mod:`.realism` (statistics to compare with real echo).
"""

from echo_napari.simulation.core import SimulatedSequence, simulate_sequence
from echo_napari.simulation.params import SPLITS, SimulationParams, seeds

__all__ = ["SPLITS", "SimulatedSequence", "SimulationParams", "seeds", "simulate_sequence"]
