"""Write simulated sequences laid out like the real datasets.

* ``echonet``: ``echonet/Videos/<name>.avi``, ``FileList.csv``, ``VolumeTracings.csv``
  (tracings made from the GT LV masks at ED and ES, with the true mitral annulus points).
* ``camus``: ``camus/patientNNNN/`` with the ED→ES ``half_sequence`` (+ ``_gt``),
  ``_ED``/``_ES`` images and masks, and ``Info_4CH.cfg``.
* ``ted``: ``ted/patientNNNN/`` with the full-cycle ``sequence`` and its ``_gt`` (all frames).
* ``hdf5``: ``hdf5/<name>.h5`` in our own layout (frames, labels, ED/ES, metadata).
* ``dicom``: ``dicom/<name>.dcm``, Ultrasound Multi-frame Image (frames only).
* ``avi``: ``avi/<name>.avi`` plus ``avi/<name>_gt.nii.gz`` labels.

The writers come from :mod:`echo_napari.io`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.sequence import EchoSequence
from echo_napari.simulation.core import simulate_sequence
from echo_napari.simulation.params import SimulationParams

logger = logging.getLogger(__name__)

FORMATS = ("echonet", "camus", "ted", "hdf5", "dicom", "avi")
_ECHONET_SPLIT = {"train": "TRAIN", "val": "VAL", "test": "TEST"}


def sequence_name(seed: int) -> str:
    """File stem of the sequence simulated from ``seed``."""
    return f"SIM{seed:07d}"


def _half_sequence(seq: EchoSequence) -> EchoSequence:
    """The ED→ES part of a sequence (CAMUS ``half_sequence``), indices renumbered."""
    ed, es = seq.ed_index, seq.es_index
    if es < ed:
        # The clip starts mid-cycle: take the next ES after ED when the clip holds it.
        raise EchoIOError(
            "camus", f"ES (frame {es}) precedes ED (frame {ed}); simulate with start_phase=0"
        )
    part = slice(ed, es + 1)
    return seq.copy(
        frames=seq.frames[part],
        labels=None if seq.labels is None else seq.labels[part].copy(),
        provenance=list(seq.provenance[part]),
        keyframes={0, es - ed},
        ed_index=0,
        es_index=es - ed,
    )


def write_dataset(
    out: str | Path,
    formats: Iterable[str],
    seed_list: Iterable[int],
    params: SimulationParams | None = None,
    randomize: bool = True,
    split: str = "train",
    ef_range: tuple[float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Simulate one sequence per seed and write it in every requested format.

    Parameters
    ----------
    out : root folder; one sub-folder per format
    formats : names from :data:`FORMATS`
    seed_list : seeds to simulate (take them from :func:`~echo_napari.simulate.seeds`)
    split : recorded in EchoNet's ``FileList.csv`` Split column
    ef_range : (low, high) fractions: draw each sequence's EF uniformly, deterministic by
        seed (otherwise ``params.ef``)
    progress : called with (done, total) after each sequence

    Returns
    -------
    list of Path, every file written
    """
    from echo_napari import io

    formats = list(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise EchoIOError(out, f"unknown format(s) {unknown}; expected some of {FORMATS}")
    out = Path(out)
    seed_list = list(seed_list)
    written: list[Path] = []
    echonet_items: list[tuple[str, EchoSequence]] = []
    params = params or SimulationParams()
    for done, seed in enumerate(seed_list, start=1):
        seed_params = params
        if ef_range is not None:
            low, high = sorted(ef_range)
            ef = float(np.random.default_rng([seed, 7]).uniform(low, high))
            seed_params = dataclasses.replace(params, ef=ef)
        sim = simulate_sequence(seed, seed_params, randomize=randomize)
        seq = sim.sequence
        seq.metadata["split"] = _ECHONET_SPLIT.get(split, split.upper())
        name = sequence_name(seed)
        patient = out / "{}" / f"patient{done:04d}"
        if "echonet" in formats:
            echonet_items.append((name, seq))
        if "camus" in formats:
            folder = Path(str(patient).format("camus"))
            written += io.write_camus_patient(folder, _half_sequence(seq), view="4CH")
        if "ted" in formats:
            folder = Path(str(patient).format("ted"))
            written += io.write_camus_patient(
                folder, seq, view="4CH", full_cycle_gt=True, sequence_kind="sequence"
            )
        if "hdf5" in formats:
            written += io.write_sequence(seq, out / "hdf5" / f"{name}.h5")
        if "dicom" in formats:
            written += io.write_sequence(seq, out / "dicom" / f"{name}.dcm")
        if "avi" in formats:
            written += io.write_sequence(seq, out / "avi" / f"{name}.avi")
            written += io.write_labels(
                seq.labels,
                out / "avi" / f"{name}_gt.nii.gz",
                spacing=seq.spacing,
                frame_time_ms=seq.frame_time_ms,
            )
        if progress is not None:
            progress(done, len(seed_list))
    if echonet_items:
        written += io.write_echonet_dataset(out / "echonet", echonet_items)
    logger.info("wrote %d files under %s", len(written), out)
    return written
