"""The simulator's dataset writer and command line: files laid out like the real datasets
that our readers load back with the ground truth intact."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from echo_napari.io import read_sequence
from echo_napari.sequence import LabelClass
from echo_napari.simulate import SimulationParams, main, simulate_sequence
from echo_napari.simulation.datasets import sequence_name, write_dataset
from echo_napari.simulation.samples import SAMPLES, load_sample, simulate_sample

PARAMS = SimulationParams(height=64, width=64, frames_per_cycle=20)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    written = write_dataset(
        out, ["echonet", "camus", "ted", "hdf5", "dicom", "avi"], [950_010], PARAMS, split="test"
    )
    return out, written, simulate_sequence(950_010, PARAMS).sequence


def test_layout(dataset):
    out, written, _ = dataset
    name = sequence_name(950_010)
    expected = [
        out / "echonet" / "Videos" / f"{name}.avi",
        out / "echonet" / "FileList.csv",
        out / "echonet" / "VolumeTracings.csv",
        out / "camus" / "patient0001" / "Info_4CH.cfg",
        out / "camus" / "patient0001" / "patient0001_4CH_half_sequence_gt.nii.gz",
        out / "ted" / "patient0001" / "patient0001_4CH_sequence_gt.nii.gz",
        out / "hdf5" / f"{name}.h5",
        out / "dicom" / f"{name}.dcm",
        out / "avi" / f"{name}.avi",
        out / "avi" / f"{name}_gt.nii.gz",
    ]
    for path in expected:
        assert path.is_file(), path
        assert path in written
    with open(out / "echonet" / "FileList.csv") as handle:
        row = next(csv.DictReader(handle))
    assert row["Split"] == "TEST" and float(row["EF"]) == pytest.approx(60.0, abs=0.5)


def test_read_back(dataset):
    out, _, ref = dataset
    name = sequence_name(950_010)
    h5 = read_sequence(out / "hdf5" / f"{name}.h5")
    assert np.array_equal(h5.labels, ref.labels)
    assert (h5.ed_index, h5.es_index) == (ref.ed_index, ref.es_index)
    ted = read_sequence(out / "ted" / "patient0001")
    assert np.array_equal(ted.labels, ref.labels)
    camus = read_sequence(out / "camus" / "patient0001")
    assert camus.n_frames == ref.es_index - ref.ed_index + 1
    echonet = read_sequence(out / "echonet" / "Videos" / f"{name}.avi")
    assert echonet.n_frames == ref.n_frames
    for t in (ref.ed_index, ref.es_index):
        got = echonet.labels[t] == LabelClass.LV_CAVITY
        true = ref.labels[t] == LabelClass.LV_CAVITY
        assert 2 * (got & true).sum() / (got.sum() + true.sum()) > 0.9


def test_cli(tmp_path):
    status = main(
        ["--out", str(tmp_path), "--format", "hdf5", "--n", "1", "--size", "48", "--frames", "20"]
    )
    assert status == 0
    assert len(list((tmp_path / "hdf5").glob("*.h5"))) == 1


def test_samples_load():
    assert set(SAMPLES) == {"normal", "reduced_ef", "poor_quality"}
    seq = load_sample("reduced_ef")
    assert seq.frames.shape[1:] == (112, 112) and 48 <= seq.n_frames <= 64
    assert seq.labels is not None and seq.labels.reshape(seq.n_frames, -1).any(axis=1).all()
    assert seq.metadata["reference"]["EF"] == pytest.approx(30.0, abs=1.0)


@pytest.mark.slow
def test_sample_files_match_simulation():
    for name in SAMPLES:
        stored = load_sample(name)
        fresh = simulate_sample(name)
        assert np.array_equal(stored.labels, fresh.labels)
        assert np.abs(stored.frames - fresh.frames).max() < 1e-6
