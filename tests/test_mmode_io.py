"""Real M-mode files (DICOM time region, PNG) and the ``mmode`` command."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from echo_napari.errors import EchoIOError, EchoNapariError, SequenceError
from echo_napari.mmode.readers import is_mmode_file, read_mmode


def _region(x0, y0, x1, y1, units_x, units_y, dx, dy, spatial_format):
    from pydicom.dataset import Dataset

    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = spatial_format, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1, y1
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = units_x, units_y
    region.PhysicalDeltaX, region.PhysicalDeltaY = dx, dy
    return region


def write_mmode_dicom(path, pixels, regions):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # US Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "US"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if regions:
        ds.SequenceOfUltrasoundRegions = regions
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _two_region_pixels():
    pixels = np.zeros((120, 100), np.uint8)
    pixels[:60] = 50  # B-mode region
    pixels[60:120, 10:90] = np.arange(80, dtype=np.uint8)[None, :] + 100  # M-mode strip
    return pixels


def test_dicom_time_region_calibration(tmp_path):
    regions = [
        _region(0, 0, 99, 59, 3, 3, 0.03, 0.03, 1),  # B-mode: cm x cm
        _region(10, 60, 89, 119, 4, 3, 0.004, 0.05, 2),  # M-mode: s x cm
    ]
    path = write_mmode_dicom(tmp_path / "mm.dcm", _two_region_pixels(), regions)
    assert is_mmode_file(path)
    strip = read_mmode(path)
    assert strip.image.shape == (60, 80)
    assert strip.depth_step_mm == pytest.approx(0.5)
    assert strip.time_step_s == pytest.approx(0.004)
    np.testing.assert_allclose(strip.image[0, :3] * 255, [100, 101, 102], atol=1e-3)
    assert strip.times_s[-1] == pytest.approx(79 * 0.004)


def test_dicom_without_time_region_is_explicitly_uncalibrated(tmp_path):
    path = write_mmode_dicom(tmp_path / "plain.dcm", _two_region_pixels(), [])
    assert not is_mmode_file(path)
    strip = read_mmode(path)
    assert not strip.calibrated and strip.time_step_s is None
    assert "uncalibrated" in strip.metadata["calibration"]
    bad = [_region(10, 60, 89, 119, 4, 3, 0.0, 0.0, 2)]
    strip = read_mmode(write_mmode_dicom(tmp_path / "zero.dcm", _two_region_pixels(), bad))
    assert not strip.calibrated and "PhysicalDeltaX" in strip.metadata["calibration"]


def test_dicom_region_outside_image_is_an_error(tmp_path):
    regions = [_region(10, 60, 300, 119, 4, 3, 0.004, 0.05, 2)]
    path = write_mmode_dicom(tmp_path / "bad.dcm", _two_region_pixels(), regions)
    with pytest.raises(EchoIOError, match="does not fit"):
        read_mmode(path)


def test_png_strip_round_trip(tmp_path):
    from echo_napari.mmode.writers import write_strip_png

    image = np.linspace(0, 1, 30 * 40, dtype=np.float32).reshape(30, 40)
    band = np.zeros((30, 40), np.uint8)
    band[10:20] = 1
    paths = write_strip_png(tmp_path / "s_mmode.png", image, band)
    strip = read_mmode(paths[0])
    np.testing.assert_allclose(strip.image, image, atol=1 / 255)
    assert not strip.calibrated and "uncalibrated" in strip.metadata["calibration"]
    assert read_mmode(paths[1]).image.max() > 0
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(EchoIOError):
        read_mmode(tmp_path / "junk.png")
    with pytest.raises(EchoIOError, match="missing or empty"):
        read_mmode(tmp_path / "absent.tif")


def _run_cli(argv):
    from echo_napari.mmode.cli import add_subcommand

    parser = argparse.ArgumentParser()
    add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_writes_csv_per_frame_from_labels(tmp_path):
    from echo_napari.io import write_sequence
    from echo_napari.simulate import SimulationParams, seeds, simulate_sequence

    seq = simulate_sequence(seeds("test", 1)[0], SimulationParams(frames_per_cycle=20)).sequence
    src = tmp_path / "sim.h5"
    write_sequence(seq, src)
    out = tmp_path / "out"
    assert _run_cli(["mmode", str(src), "--output", str(out), "--from-labels"]) == 0
    rows = (out / "sim_mmode.csv").read_text().splitlines()
    assert rows[0] == "time_s,lvid_mm" and len(rows) == seq.n_frames + 1
    lvid = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert lvid[seq.es_index] < lvid[seq.ed_index]
    assert (out / "sim_mmode.png").exists() and (out / "sim_mmode_band.png").exists()
    with pytest.raises(SequenceError, match="leaves"):
        _run_cli(["mmode", str(src), "-o", str(out), "--line", "0,0,500,500"])


def test_cli_refuses_uncalibrated_mmode(tmp_path):
    path = write_mmode_dicom(tmp_path / "plain.dcm", _two_region_pixels(), [])
    with pytest.raises(EchoNapariError):
        _run_cli(["mmode", str(path), "-o", str(tmp_path / "o")])


def test_mmode_layer_data_round_trip_and_reader_hook(tmp_path):
    from echo_napari.mmode.layers import (
        MMODE_KEY,
        get_mmode_reader,
        mmode_layer_data,
        read_mmode_layers,
        strip_from_layer,
    )

    regions = [_region(10, 60, 89, 119, 4, 3, 0.004, 0.05, 2)]
    path = write_mmode_dicom(tmp_path / "m.dcm", _two_region_pixels(), regions)
    reader = get_mmode_reader(str(path))
    assert reader is read_mmode_layers
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image" and data.ndim == 2
    assert kwargs["scale"] == pytest.approx((0.5, 0.4))  # 0.05 cm, 0.004 s = 0.4 cs
    assert [str(u) for u in kwargs["units"]] == ["mm", "centisecond"]
    strip = strip_from_layer(data, kwargs["metadata"])
    assert strip.depth_step_mm == pytest.approx(0.5) and strip.time_step_s == pytest.approx(0.004)

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 255
    grey = strip_from_layer(rgb, {}, rgb=True)
    assert grey.image.shape == (20, 30) and not grey.calibrated
    assert "uncalibrated" in grey.metadata["calibration"]
    [(_, plain, _)] = mmode_layer_data(grey, "x")
    assert plain["scale"] == (1.0, 1.0) and plain["units"] == ("pixel", "pixel")
    assert plain["metadata"][MMODE_KEY]["depth_step_mm"] is None
    assert get_mmode_reader(str(tmp_path / "video.avi")) is None

    # napari's File > Open routes an M-mode DICOM to the strip reader, a B-mode one not
    from echo_napari.napari_hooks import get_reader, read_echo

    assert get_reader(str(path)) is read_mmode_layers
    bmode = [_region(0, 0, 99, 59, 3, 3, 0.03, 0.03, 1)]
    other = write_mmode_dicom(tmp_path / "b.dcm", _two_region_pixels(), bmode)
    assert get_reader(str(other)) in (read_echo, None)
    with pytest.raises(SequenceError, match="one 2D"):
        strip_from_layer(np.zeros((3, 4, 5)), {})
