"""HDF5: our own sequence layout and the DIR paper's CAMUS layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from io_fixtures import beating_sequence, make_dir_h5

from echo_napari.errors import EchoIOError
from echo_napari.io import can_read, list_sequences, read_sequence, write_sequence
from echo_napari.io.hdf5 import SCHEMA
from echo_napari.sequence import (
    MANUAL,
    EchoSequence,
    FrameProvenance,
    ProvenanceKind,
)


def test_our_layout_round_trips_every_field(tmp_path):
    frames, labels = beating_sequence(6)
    provenance = [
        MANUAL,
        *[FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1.2")] * 4,
        MANUAL,
    ]
    seq = EchoSequence(
        frames=frames,
        spacing=(0.25, 0.3),
        frame_time_ms=33.3,
        view="A2C",
        ed_index=0,
        es_index=5,
        labels=labels,
        provenance=provenance,
        keyframes={0, 5},
        metadata={"patient": "p1", "reference": {"EF": 55.0}, "array": np.arange(3)},
    )
    path = tmp_path / "session.h5"
    assert write_sequence(seq, path) == [path]
    with h5py.File(path) as handle:
        assert handle.attrs["schema"] == SCHEMA
    back = read_sequence(path)
    np.testing.assert_array_equal(back.frames, frames)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.provenance == provenance
    assert back.keyframes == {0, 5}
    assert back.spacing == (0.25, 0.3) and back.frame_time_ms == pytest.approx(33.3)
    assert (back.view, back.ed_index, back.es_index) == ("A2C", 0, 5)
    assert back.metadata["reference"] == {"EF": 55.0}
    assert back.metadata["array"] == [0, 1, 2]
    assert list_sequences(path) == [path]


def test_our_layout_without_optional_fields(tmp_path):
    frames, _ = beating_sequence(3)
    path = write_sequence(EchoSequence(frames=frames), tmp_path / "bare.h5")[0]
    back = read_sequence(path)
    assert back.labels is None and back.spacing is None and back.ed_index is None


def test_dir_layout_by_key(tmp_path):
    path = make_dir_h5(tmp_path / "camus.h5")
    keys = list_sequences(path)
    assert [str(k).split("::")[1] for k in keys] == [
        "patient0001/2CH",
        "patient0001/4CH",
        "patient0002/2CH",
        "patient0002/4CH",
    ]
    frames, labels = beating_sequence(6)
    first = read_sequence(path)
    assert first.metadata["hdf5_key"] == "patient0001/2CH" and first.view == "A2C"
    seq = read_sequence(path, key="patient0002/4CH")
    assert seq.view == "A4C" and (seq.ed_index, seq.es_index) == (0, 5)
    np.testing.assert_allclose(seq.frames, frames, atol=1e-6)
    np.testing.assert_array_equal(seq.labels[0], labels[0])
    np.testing.assert_array_equal(seq.labels[5], labels[5])
    assert seq.labelled_frames() == [0, 5] and seq.keyframes == {0, 5}
    assert seq.metadata["reference"] == {"EF": 50.0, "EDV": 120.0, "ESV": 60.0}
    assert seq.spacing is None and "spacing_note" in seq.metadata
    via_path = read_sequence(keys[3])
    np.testing.assert_array_equal(via_path.frames, seq.frames)
    assert can_read(keys[3])
    with pytest.raises(EchoIOError, match="patient0009/4CH"):
        read_sequence(path, key="patient0009/4CH")


def test_inconsistent_hdf5_content_is_an_error(tmp_path):
    path = make_dir_h5(tmp_path / "camus.h5", patients=("patient0001",))
    with h5py.File(path, "a") as handle:
        handle["patient0001/4CH"].attrs["ES"] = 40
        del handle["patient0001/2CH/masks"]
        handle["patient0001/2CH"].create_dataset("masks", data=np.zeros((3, 4, 4)))
    with pytest.raises(EchoIOError, match="ES=40"):
        read_sequence(path, key="patient0001/4CH")
    with pytest.raises(EchoIOError, match="masks shape"):
        read_sequence(path, key="patient0001/2CH")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(EchoIOError, match="other.h5"):
        read_sequence(other)
