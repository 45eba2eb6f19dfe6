"""Real files from ../shared/data (skipped when absent; never copied into the repository)."""

from __future__ import annotations

import numpy as np
import pytest
from io_fixtures import SHARED_DATA

from echo_napari.io import can_read, list_sequences, read_sequence

pytestmark = pytest.mark.realdata
DICOM = SHARED_DATA / "dicom-us"
ECHONET = SHARED_DATA / "echonet-unlabeled"


@pytest.mark.skipif(not DICOM.is_dir(), reason="../shared/data/dicom-us absent")
def test_real_palette_dicom_spacing_from_the_tissue_region():
    seq = read_sequence(DICOM / "OBXXXX1A_2frame.dcm")
    assert seq.frames.shape == (2, 600, 800) and seq.frames.dtype == np.float32
    assert seq.spacing == pytest.approx((0.2623, 0.2623), abs=1e-4)
    assert 0 <= seq.frames.min() and seq.frames.max() <= 1 and seq.frames.std() > 0.05


@pytest.mark.skipif(not DICOM.is_dir(), reason="../shared/data/dicom-us absent")
def test_real_rgb_dicom_without_calibration():
    seq = read_sequence(DICOM / "US1_UNCR.dcm")
    assert seq.frames.shape == (1, 480, 640)
    assert seq.spacing is None and "no spatial calibration" in seq.metadata["spacing_note"]


@pytest.mark.skipif(not ECHONET.is_dir(), reason="../shared/data/echonet-unlabeled absent")
def test_real_echonet_videos_with_filelist():
    import pandas as pd

    videos = list_sequences(ECHONET)
    assert len(videos) >= 2 and can_read(ECHONET)
    table = pd.read_csv(ECHONET / "FileList.csv")
    for video in videos[:2]:
        seq = read_sequence(video)
        row = table[table.FileName.str.replace(".avi", "") == video.stem].iloc[0]
        assert seq.frames.shape == (row.NumberOfFrames, 112, 112)
        assert not seq.is_lazy and seq.view == "A4C"
        assert seq.frame_time_ms == pytest.approx(1000.0 / row.FPS)
        assert seq.metadata["reference"]["EF"] == pytest.approx(row.EF)
        assert 0.05 < seq.frames.mean() < 0.6
