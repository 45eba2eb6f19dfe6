"""CAMUS / TED patient folders, .mhd/.raw and .nii.gz through SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
from io_fixtures import beating_sequence, make_camus_patient, write_itk_image

from echo_napari.errors import EchoIOError
from echo_napari.io import can_read, list_sequences, read_sequence, write_camus_patient
from echo_napari.io.camus import parse_info_cfg
from echo_napari.sequence import EchoSequence, ProvenanceKind


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
def test_half_sequence_with_ed_es_gt(tmp_path, suffix):
    folder = make_camus_patient(tmp_path, suffix=suffix, ed=2, es=7)
    seq = read_sequence(folder / f"patient0001_4CH_half_sequence{suffix}")
    frames, labels = beating_sequence(8)
    assert seq.frames.shape == (8, 48, 40) and seq.frames.dtype == np.float32
    assert seq.spacing == pytest.approx((0.31, 0.154))
    assert (seq.ed_index, seq.es_index) == (1, 6)
    assert seq.view == "A4C"
    assert seq.frame_time_ms == pytest.approx(40.0)
    assert seq.keyframes == {1, 6}
    assert seq.labelled_frames() == [1, 6]
    np.testing.assert_array_equal(seq.labels[1], labels[1])
    np.testing.assert_array_equal(seq.labels[6], labels[6])
    assert seq.provenance[1].kind == ProvenanceKind.MANUAL
    assert seq.metadata["reference"] == {"EF": 55.3, "EDV": 98.0, "ESV": 43.8}
    assert seq.metadata["patient_info"]["Sex"] == "F"
    np.testing.assert_allclose(seq.frames, np.rint(frames * 255) / 255, atol=1e-6)


def test_ted_full_cycle_gt_and_patient_folder(tmp_path):
    folder = make_camus_patient(tmp_path, full_cycle_gt=True)
    make_camus_patient(tmp_path, view="2CH", suffix=".mhd")
    seq = read_sequence(folder)
    _, labels = beating_sequence(8)
    assert seq.view == "A4C" and seq.metadata["full_cycle_gt"] is True
    np.testing.assert_array_equal(seq.labels, labels)
    assert seq.labelled_frames() == list(range(8))
    two = read_sequence(folder, view="2CH")
    assert two.view == "A2C" and two.labelled_frames() == [0, 7]
    assert can_read(folder) and can_read(tmp_path)
    names = [p.name for p in list_sequences(tmp_path)]
    assert names == ["patient0001_4CH_half_sequence.nii.gz", "patient0001_2CH_half_sequence.mhd"]
    # opening the label file opens its image with it
    gt = read_sequence(folder / "patient0001_4CH_half_sequence_gt.nii.gz")
    np.testing.assert_array_equal(gt.labels, labels)


def test_ed_es_only_folder_gives_two_frames(tmp_path):
    folder = make_camus_patient(tmp_path)
    for path in folder.glob("*half_sequence*"):
        path.unlink()
    seq = read_sequence(folder)
    assert seq.n_frames == 2 and (seq.ed_index, seq.es_index) == (0, 1)
    assert seq.keyframes == {0, 1}


def test_cfg_disagreeing_with_the_sequence_is_an_error(tmp_path):
    folder = make_camus_patient(tmp_path)
    cfg = folder / "Info_4CH.cfg"
    cfg.write_text(cfg.read_text().replace("NbFrame: 8", "NbFrame: 9"))
    with pytest.raises(EchoIOError, match="NbFrame"):
        read_sequence(folder)
    cfg.write_text("ED: 1\nES: 12\n")
    with pytest.raises(EchoIOError, match="ES=12"):
        read_sequence(folder)
    cfg.write_text("this is not a cfg\n")
    with pytest.raises(EchoIOError, match="Info_4CH.cfg"):
        read_sequence(folder)


def test_parse_info_cfg(tmp_path):
    path = tmp_path / "Info_2CH.cfg"
    path.write_text("ED: 1\nES: 14\nNbFrame: 14\nSex: M\nAge: 58\nEF: 61.5\n\n")
    assert parse_info_cfg(path) == {
        "ED": 1,
        "ES": 14,
        "NbFrame": 14,
        "Sex": "M",
        "Age": 58,
        "EF": 61.5,
    }


def test_labels_outside_the_class_table_are_refused(tmp_path):
    frames, labels = beating_sequence(3)
    write_itk_image(tmp_path / "seq.nii.gz", np.rint(frames * 255).astype(np.uint8), (0.3, 0.3))
    labels[0, 0, 0] = 7
    write_itk_image(tmp_path / "seq_gt.nii.gz", labels, (0.3, 0.3))
    with pytest.raises(EchoIOError, match="outside the class table"):
        read_sequence(tmp_path / "seq.nii.gz")


def test_mhd_without_spacing_says_so(tmp_path):
    header = tmp_path / "x.mhd"
    (tmp_path / "x.raw").write_bytes(np.zeros((2, 8, 8), np.uint8).tobytes())
    header.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 8 8 2\n"
        "ElementType = MET_UCHAR\nElementDataFile = x.raw\n"
    )
    seq = read_sequence(header)
    assert seq.spacing is None and "spacing" in seq.metadata["spacing_note"]


@pytest.mark.parametrize("suffix", [".nii.gz", ".mhd"])
def test_write_camus_patient_round_trip(tmp_path, suffix):
    frames, labels = beating_sequence(10)
    seq = EchoSequence(
        frames=frames,
        labels=labels,
        spacing=(0.3, 0.2),
        frame_time_ms=20.0,
        ed_index=0,
        es_index=5,
        metadata={"reference": {"EF": 50.0, "EDV": 100.0, "ESV": 50.0}},
    )
    folder = tmp_path / "patient0042"
    written = write_camus_patient(folder, seq, view="2CH", suffix=suffix)
    names = {p.name for p in written}
    assert f"patient0042_2CH_half_sequence_gt{suffix}" in names
    assert "Info_2CH.cfg" in names
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    back = read_sequence(folder)
    assert back.view == "A2C" and (back.ed_index, back.es_index) == (0, 5)
    assert back.spacing == pytest.approx((0.3, 0.2))
    assert back.frame_time_ms == pytest.approx(20.0)
    np.testing.assert_array_equal(back.labels, labels)
    assert np.abs(back.frames - frames).max() <= 0.5 / 255 + 1e-6
    assert back.metadata["reference"]["EF"] == pytest.approx(50.0)
    # CAMUS-like: ED/ES ground truth only
    half = write_camus_patient(tmp_path / "patient0043", seq, full_cycle_gt=False)
    assert not any("sequence_gt" in p.name for p in half)
    assert read_sequence(tmp_path / "patient0043").labelled_frames() == [0, 5]
