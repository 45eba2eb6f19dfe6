"""The npe2 manifest and the hook functions it names (no viewer needed)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari import napari_hooks
from echo_napari.errors import EchoIOError
from echo_napari.io import read_sequence, write_sequence

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_and_is_packaged():
    npe2 = shutil.which("npe2") or str(Path(sys.executable).with_name("npe2"))
    out = subprocess.run([npe2, "validate", "echo-napari"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    link = ROOT / "echo_napari" / "napari.yaml"
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_every_manifest_command_imports():
    import npe2

    manifest = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    names = [c.python_name for c in manifest.contributions.commands]
    assert len(names) >= 7
    for python_name in names:
        module, attr = python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr)), python_name


@pytest.mark.parametrize("name", ["notes.txt", "image.png", "missing.avi", "fake.h5"])
def test_reader_declines_files_it_does_not_own(tmp_path, name):
    if name != "missing.avi":
        (tmp_path / name).write_bytes(b"not an echo file at all" * 10)
    assert napari_hooks.get_reader(str(tmp_path / name)) is None


def test_reader_declines_several_paths(tmp_path):
    assert napari_hooks.get_reader([str(tmp_path / "a.avi"), str(tmp_path / "b.avi")]) is None


def test_reader_error_is_ours_with_the_file_name(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # HDF5 signature, no content
    reader = napari_hooks.get_reader(str(path))
    assert reader is not None
    with pytest.raises(EchoIOError, match="broken.h5"):
        reader(str(path))


def test_layer_data_scale_units_and_facts():
    seq = make_sequence(n_frames=5, size=24)
    (image, image_kw, kind), (labels, labels_kw, kind2) = napari_hooks.sequence_layer_data(seq)
    assert (kind, kind2) == ("image", "labels")
    assert image_kw["scale"] == (1.0, 0.4, 0.3) and labels_kw["scale"] == image_kw["scale"]
    assert image_kw["units"] == ("pixel", "mm", "mm")
    facts = image_kw["metadata"]["echo_sequence"]
    assert facts["ed_index"] == 0 and facts["es_index"] == 2 and facts["keyframes"] == [0, 2]
    assert facts["metadata"]["reference"]["EF"] == 58.0
    assert labels_kw["colormap"][1] == (1.0, 0.25, 0.25, 1.0)


def test_unknown_spacing_is_pixels_and_said(caplog):
    seq = make_sequence(n_frames=3, size=16, spacing=None)
    seq.labels = None
    layers = napari_hooks.sequence_layer_data(seq, name="nospacing")
    assert len(layers) == 1  # no masks, no labels layer
    assert layers[0][1]["scale"] == (1.0, 1.0, 1.0)
    assert layers[0][1]["units"] == ("pixel", "pixel", "pixel")
    assert layers[0][1]["metadata"]["echo_sequence"]["spacing"] is None
    assert "no pixel spacing" in caplog.text


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd", ".h5"])
def test_labels_writer_round_trips_spacing(tmp_path, suffix):
    seq = make_sequence(n_frames=4, size=20)
    _, labels_kw, _ = napari_hooks.sequence_layer_data(seq)[1]
    path = tmp_path / f"out{suffix}"
    written = napari_hooks.write_labels_layer(str(path), seq.labels, labels_kw)
    assert str(path) in written and all(Path(p).exists() for p in written)
    if suffix == ".h5":
        import h5py

        with h5py.File(path) as handle:
            np.testing.assert_array_equal(handle["labels"][()], seq.labels)
            assert tuple(handle.attrs["spacing"]) == pytest.approx((0.4, 0.3))
        return
    back = read_sequence(path)
    np.testing.assert_array_equal(np.asarray(back.frames) > 0, seq.labels > 0)
    assert back.spacing == pytest.approx((0.4, 0.3))


def test_labels_writer_keeps_unknown_spacing_unknown(tmp_path):
    meta = {"scale": (1.0, 1.0, 1.0), "units": ("pixel", "pixel", "pixel"), "metadata": {}}
    assert napari_hooks.spacing_from_layer_meta(meta) is None
    meta = {"scale": (1.0, 0.5, 0.25), "metadata": {}}
    assert napari_hooks.spacing_from_layer_meta(meta) == (0.5, 0.25)


def test_area_csv_writer(tmp_path):
    seq = make_sequence(n_frames=4, size=20)
    _, labels_kw, _ = napari_hooks.sequence_layer_data(seq)[1]
    path = tmp_path / "areas.csv"
    assert napari_hooks.write_area_csv_layer(str(path), seq.labels, labels_kw) == [str(path)]
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 4 and "time_ms" in rows[0]
    lv = float(rows[2]["LV cavity (mm2)"])
    assert lv == pytest.approx((seq.labels[2] == 1).sum() * 0.4 * 0.3, rel=1e-5)


def test_labels_writer_refuses_out_of_range_values(tmp_path):
    with pytest.raises(EchoIOError, match="0..3"):
        napari_hooks.write_labels_layer(
            str(tmp_path / "x.nii.gz"), np.full((2, 4, 4), 300, np.int32), {"scale": (1, 1, 1)}
        )


def test_sequence_written_by_io_reads_back_through_the_hook(tmp_path):
    seq = make_sequence(n_frames=6, size=24)
    path = tmp_path / "session.h5"
    write_sequence(seq, path)
    layers = napari_hooks.get_reader(str(path))(str(path))
    facts = layers[0][1]["metadata"]["echo_sequence"]
    assert facts["es_index"] == 3 and facts["spacing"] == pytest.approx((0.4, 0.3))
