"""Writers (labels, areas, sequences): formats, headers, atomicity; can_read/list_sequences."""

from __future__ import annotations

import csv
import os

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
from io_fixtures import beating_sequence

from echo_napari.errors import EchoIOError
from echo_napari.io import (
    can_read,
    list_sequences,
    read_sequence,
    write_area_csv,
    write_labels,
    write_sequence,
)
from echo_napari.sequence import EchoSequence


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mhd"])
def test_write_labels_itk_formats_keep_spacing(tmp_path, suffix):
    _, labels = beating_sequence(5)
    path = tmp_path / f"labels{suffix}"
    written = write_labels(labels, path, spacing=(0.4, 0.25), frame_time_ms=20.0)
    expected = {path.name} | ({"labels.raw"} if suffix == ".mhd" else set())
    assert {p.name for p in written} == expected
    assert {p.name for p in tmp_path.iterdir()} == expected  # nothing temporary left
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels)
    assert image.GetSpacing()[:2] == pytest.approx((0.25, 0.4))


def test_write_labels_h5(tmp_path):
    _, labels = beating_sequence(5)
    path = write_labels(labels, tmp_path / "labels.h5", spacing=(0.4, 0.25))[0]
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle["labels"][()], labels)
        assert tuple(handle.attrs["spacing"]) == (0.4, 0.25)
    with pytest.raises(EchoIOError, match="labels only"):
        read_sequence(path)


def test_write_labels_refuses_wrong_input(tmp_path):
    _, labels = beating_sequence(3)
    with pytest.raises(EchoIOError, match="uint8"):
        write_labels(labels.astype(np.int32), tmp_path / "x.nii.gz")
    with pytest.raises(EchoIOError, match="'.png'"):
        write_labels(labels, tmp_path / "x.png")
    with pytest.raises(EchoIOError, match="spacing"):
        write_labels(labels, tmp_path / "x.nii.gz", spacing=(float("nan"), 1.0))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    _, labels = beating_sequence(3)
    path = tmp_path / "labels.nii.gz"
    write_labels(labels, path)
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_labels(np.zeros_like(labels), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]


def test_write_area_csv(tmp_path):
    areas = {"LV cavity (mm2)": np.array([10.0, 12.5, 11.0]), "LA (mm2)": [1, 2, 3]}
    path = write_area_csv(areas, tmp_path / "areas.csv", frame_time_ms=20.0)[0]
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["frame", "time_ms", "LV cavity (mm2)", "LA (mm2)"]
    assert rows[2] == ["1", "20", "12.5", "2"]
    with pytest.raises(EchoIOError, match="different lengths"):
        write_area_csv({"a": [1, 2], "b": [1]}, tmp_path / "bad.csv")


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
def test_write_sequence_itk_with_labels(tmp_path, suffix):
    frames, labels = beating_sequence(4)
    seq = EchoSequence(frames=frames, labels=labels, spacing=(0.3, 0.3), frame_time_ms=30.0)
    written = write_sequence(seq, tmp_path / f"seq{suffix}")
    assert tmp_path / f"seq_gt{suffix}" in written
    back = read_sequence(tmp_path / f"seq{suffix}")
    np.testing.assert_allclose(back.frames, frames, atol=1e-6)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.spacing == pytest.approx((0.3, 0.3))
    assert back.frame_time_ms == pytest.approx(30.0)


def test_write_sequence_unknown_suffix(tmp_path):
    frames, _ = beating_sequence(2)
    with pytest.raises(EchoIOError, match="sequences can be written as"):
        write_sequence(EchoSequence(frames=frames), tmp_path / "x.tiff")


def test_can_read_and_list_plain_folder(tmp_path):
    frames, labels = beating_sequence(3)
    seq = EchoSequence(frames=frames, labels=labels, frame_time_ms=20.0)
    write_sequence(seq, tmp_path / "a.nii.gz")
    write_sequence(seq, tmp_path / "b.h5")
    write_sequence(seq, tmp_path / "c.dcm")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.avi").write_bytes(b"PK\x03\x04" + bytes(100))
    assert [p.name for p in list_sequences(tmp_path)] == ["a.nii.gz", "b.h5", "c.dcm"]
    assert can_read(tmp_path / "a.nii.gz") and can_read(tmp_path / "c.dcm")
    assert not can_read(tmp_path / "notes.txt")
    assert not can_read(tmp_path / "fake.avi")
    assert not can_read(tmp_path / "missing.h5")
    opened = read_sequence(tmp_path)
    assert opened.metadata["collection"]["count"] == 3
    with pytest.raises(EchoIOError, match="not a supported echo file"):
        read_sequence(tmp_path / "notes.txt")
    with pytest.raises(EchoIOError, match="RIFF"):
        read_sequence(tmp_path / "fake.avi")
    with pytest.raises(EchoIOError, match="not found"):
        read_sequence(tmp_path / "missing.h5")


@pytest.mark.parametrize("suffix", [".avi", ".dcm"])
def test_labels_written_next_to_frames_only_formats_come_back(tmp_path, suffix):
    frames, labels = beating_sequence(4)
    seq = EchoSequence(frames=frames, frame_time_ms=20.0)
    write_sequence(seq, tmp_path / f"clip{suffix}")
    write_labels(labels, tmp_path / "clip_gt.nii.gz", spacing=(0.5, 0.5))
    back = read_sequence(tmp_path / f"clip{suffix}")
    np.testing.assert_array_equal(back.labels, labels)
    assert back.keyframes == {0, 1, 2, 3}
    assert back.spacing == pytest.approx((0.5, 0.5))
    write_labels(labels[:3], tmp_path / "clip_gt.nii.gz")
    with pytest.raises(EchoIOError, match="clip_gt.nii.gz"):
        read_sequence(tmp_path / f"clip{suffix}")
