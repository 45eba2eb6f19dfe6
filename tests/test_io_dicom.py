"""DICOM ultrasound: frame time, calibration regions, colour models, compression."""

from __future__ import annotations

import numpy as np
import pytest
from io_fixtures import beating_sequence, doppler_region, make_dicom, spatial_region

from echo_napari.errors import EchoIOError
from echo_napari.io import can_read, read_sequence, write_sequence
from echo_napari.sequence import EchoSequence


def test_multiframe_grey_with_regions(tmp_path):
    frames, _ = beating_sequence(4, 32, 48)
    path = make_dicom(
        tmp_path / "cine.dcm",
        frames,
        regions=[
            doppler_region((0, 20, 47, 31)),
            spatial_region(0.02, (2, 2, 20, 10)),
            spatial_region(0.035, (0, 0, 47, 19)),
        ],
    )
    assert can_read(path)
    seq = read_sequence(path)
    assert seq.frames.shape == (4, 32, 48) and seq.frames.dtype == np.float32
    assert seq.spacing == pytest.approx((0.35, 0.35))  # the largest spatial region, in mm
    assert seq.frame_time_ms == pytest.approx(20.0)
    np.testing.assert_allclose(seq.frames, np.rint(frames * 255) / 255, atol=1e-6)


def test_frame_time_sources(tmp_path):
    vector = make_dicom(tmp_path / "a.dcm", frame_time=None, frame_time_vector=[0, 30, 30, 30])
    assert read_sequence(vector).frame_time_ms == pytest.approx(30.0)
    cine = make_dicom(tmp_path / "b.dcm", frame_time=None, cine_rate=25)
    assert read_sequence(cine).frame_time_ms == pytest.approx(40.0)
    none = make_dicom(tmp_path / "c.dcm", frame_time=None)
    assert read_sequence(none).frame_time_ms is None


def test_no_calibration_gives_none_and_a_note(tmp_path):
    path = make_dicom(tmp_path / "x.dcm", regions=[doppler_region((0, 0, 47, 31))])
    seq = read_sequence(path)
    assert seq.spacing is None
    assert "no spatial calibration" in seq.metadata["spacing_note"]


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL", "PALETTE COLOR", "MONOCHROME1"])
def test_colour_models_become_grey(tmp_path, photometric):
    frames, _ = beating_sequence(3, 32, 48)
    grey = np.rint(frames * 255)
    reference = grey / 255
    if photometric in ("RGB", "YBR_FULL"):  # luma of the tinted fixture
        reference = 0.299 * grey + 0.587 * np.floor(grey * 0.8) + 0.114 * np.floor(grey * 0.5)
        reference /= 255
    if photometric == "PALETTE COLOR":
        reference = 1 - reference  # the test palette inverts
    seq = read_sequence(make_dicom(tmp_path / "x.dcm", frames, photometric=photometric))
    tolerance = 2.5 / 255 if photometric == "YBR_FULL" else 1e-5
    np.testing.assert_allclose(seq.frames, reference, atol=tolerance)


def test_rle_compressed_decodes(tmp_path):
    frames, _ = beating_sequence(3, 32, 48)
    seq = read_sequence(make_dicom(tmp_path / "rle.dcm", frames, compress="rle"))
    np.testing.assert_allclose(seq.frames, np.rint(frames * 255) / 255, atol=1e-6)


def test_a_jpeg_ybr_cine_reads_its_luma_frame_by_frame(tmp_path, monkeypatch):
    import pydicom
    from pydicom.pixels import pixel_array

    frames, _ = beating_sequence(5, 64, 80)
    path = make_dicom(tmp_path / "jpeg.dcm", frames, compress="jpeg")
    calls = []

    def counted(ds, **options):
        calls.append(options)
        return pixel_array(ds, **options)

    monkeypatch.setattr("pydicom.pixels.pixel_array", counted)
    seq = read_sequence(path)
    # one frame at a time, the luma sample only: no conversion to RGB
    assert [c.get("index") for c in calls] == list(range(5))
    assert all(c.get("as_rgb") is False for c in calls)
    rgb = pixel_array(pydicom.dcmread(path)).astype(np.float32)
    luma_of_rgb = rgb @ np.array([0.299, 0.587, 0.114], np.float32) / 255
    assert seq.frames.shape == (5, 64, 80)
    assert np.abs(seq.frames - luma_of_rgb).mean() < 1e-3
    np.testing.assert_allclose(seq.frames, luma_of_rgb, atol=0.04)


def test_undecodable_transfer_syntax_names_it(tmp_path):
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder
    from pydicom.uid import HTJ2KLossless, JPEGLosslessSV1, JPEGLSLossless

    missing = [
        s
        for s in (JPEGLSLossless, JPEGLosslessSV1, HTJ2KLossless)
        if not get_decoder(s).is_available
    ]
    if not missing:
        pytest.skip("every candidate decoder is installed here")
    path = make_dicom(tmp_path / "j2k.dcm")
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = missing[0]
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(40)] * int(ds.NumberOfFrames))
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(EchoIOError, match=f"{missing[0]}.*no installed decoder.*pip install"):
        read_sequence(path)


def test_write_sequence_dicom_round_trip(tmp_path):
    frames, _ = beating_sequence(5, 32, 48)
    seq = EchoSequence(frames=frames, spacing=(0.4, 0.3), frame_time_ms=25.0)
    path = write_sequence(seq, tmp_path / "out.dcm")[0]
    back = read_sequence(path)
    assert back.spacing == pytest.approx((0.4, 0.3))
    assert back.frame_time_ms == pytest.approx(25.0)
    np.testing.assert_allclose(back.frames, np.rint(frames * 255) / 255, atol=1e-6)


def test_not_dicom_with_dcm_suffix(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"hello world" * 20)
    with pytest.raises(EchoIOError, match="fake.dcm"):
        read_sequence(path)


def test_jpeg_ls_lossless_cine_reads_exactly(tmp_path):
    frames, _ = beating_sequence(4, 32, 48)
    path = make_dicom(tmp_path / "jls.dcm", frames, compress="jpegls")
    grey = np.clip(np.rint(frames * 255), 0, 255) / 255
    np.testing.assert_allclose(np.asarray(read_sequence(path).frames), grey, atol=1e-6)


def test_lossless_jpeg_decoders_are_installed():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLossless, JPEGLosslessSV1, JPEGLSLossless

    lossless = (JPEGLosslessSV1, JPEGLossless, JPEGLSLossless)
    assert all(get_decoder(s).is_available for s in lossless)


@pytest.mark.parametrize(
    ("photometric", "compress"),
    [("MONOCHROME2", "jpeg"), ("PALETTE COLOR", None), ("MONOCHROME1", "rle"), ("RGB", None)],
)
def test_a_lazy_cine_decodes_the_frames_an_eager_read_gives(tmp_path, photometric, compress):
    import pickle

    import dask.array as da

    frames, _ = beating_sequence(6, 32, 48)
    path = make_dicom(tmp_path / "x.dcm", frames, photometric=photometric, compress=compress)
    eager = read_sequence(path, lazy=False)
    lazy = read_sequence(path, lazy=True)
    assert isinstance(lazy.frames, da.Array) and isinstance(eager.frames, np.ndarray)
    np.testing.assert_array_equal(np.asarray(lazy.frames), eager.frames)
    np.testing.assert_array_equal(np.asarray(lazy.frames[4, 3:9]), eager.frames[4, 3:9])
    assert lazy.frame_time_ms == eager.frame_time_ms and lazy.spacing == eager.spacing
    # dask.distributed ships the array, and the source behind it, to its workers
    shipped = pickle.loads(pickle.dumps(lazy.frames))
    np.testing.assert_array_equal(np.asarray(shipped[2]), eager.frames[2])


def test_a_long_cine_is_read_lazily_by_default(tmp_path, monkeypatch):
    import dask.array as da

    import echo_napari.io.dicom as dicom

    path = make_dicom(tmp_path / "x.dcm", beating_sequence(6, 32, 48)[0], compress="jpeg")
    assert isinstance(read_sequence(path).frames, np.ndarray)  # 37 kB of frames
    monkeypatch.setattr(dicom, "LAZY_THRESHOLD_BYTES", 6 * 32 * 48 * 4 - 1)
    assert isinstance(read_sequence(path).frames, da.Array)
    single = make_dicom(tmp_path / "one.dcm", beating_sequence(1, 32, 48)[0], compress="jpeg")
    assert isinstance(read_sequence(single, lazy=True).frames, np.ndarray)  # nothing to defer
