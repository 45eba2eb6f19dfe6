"""EchoNet-Dynamic: tracings ↔ masks, dataset writing and reading."""

from __future__ import annotations

import numpy as np
import pytest
from io_fixtures import beating_sequence, dice, write_avi_pyav

from echo_napari.errors import EchoIOError
from echo_napari.io import (
    list_sequences,
    mask_to_volume_tracing,
    read_sequence,
    write_echonet_dataset,
)
from echo_napari.io.echonet import rasterise_tracing
from echo_napari.sequence import EchoSequence, LabelClass, ProvenanceKind


def ellipse_lv(shape, centre, radii, angle=0.0, base_cut=0.8):
    """An apical-view LV: an ellipse (long axis vertical) cut flat at the base (bottom)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u = c * (yy - centre[0]) + s * (xx - centre[1])
    v = -s * (yy - centre[0]) + c * (xx - centre[1])
    return ((u / radii[0]) ** 2 + (v / radii[1]) ** 2 <= 1) & (u < base_cut * radii[0])


@pytest.mark.parametrize(
    "centre, radii, angle",
    [
        ((56, 56), (30, 14), 0.0),
        ((60, 50), (22, 11), 0.25),
        ((50, 60), (35, 18), -0.2),
        ((56, 56), (9, 6), 0.0),
    ],
)
def test_mask_to_tracing_to_mask_dice(centre, radii, angle):
    mask = ellipse_lv((112, 112), centre, radii, angle)
    tracing = mask_to_volume_tracing(mask)
    assert tracing.shape == (21, 4)
    assert dice(mask, rasterise_tracing(tracing, mask.shape)) >= 0.95


def test_tracing_long_axis_and_annulus_hint():
    mask = ellipse_lv((112, 112), (56, 56), (30, 14))
    tracing = mask_to_volume_tracing(mask)
    apex_x, apex_y, base_x, base_y = tracing[0]
    assert apex_y < 30 and base_y > 75  # apex at the top, annulus at the bottom
    assert abs(apex_x - 56) < 2 and abs(base_x - 56) < 2
    rows, cols = np.nonzero(mask)
    bottom = rows.max()
    hint = ((bottom, cols[rows == bottom].min()), (bottom, cols[rows == bottom].max()))
    hinted = mask_to_volume_tracing(mask, annulus_points=hint)
    assert dice(mask, rasterise_tracing(hinted, mask.shape)) >= 0.95
    # chords are perpendicular to the long axis
    axis = hinted[0, 2:] - hinted[0, :2]
    chords = hinted[1:, 2:] - hinted[1:, :2]
    cosines = chords @ axis / (np.linalg.norm(chords, axis=1) * np.linalg.norm(axis))
    assert np.abs(cosines).max() < 1e-6


def make_dataset(root, n_frames=12, names=("0XAAA", "0XBBB")):
    items = {}
    yy, xx = np.mgrid[:112, :112]
    for k, name in enumerate(names):
        frames = np.full((n_frames, 112, 112), 0.1, np.float32)
        labels = np.zeros((n_frames, 112, 112), np.uint8)
        for t in range(n_frames):
            size = 1.0 - 0.3 * np.sin(np.pi * t / (n_frames - 1))
            lv = ellipse_lv((112, 112), (56, 56), (30 * size, 14 * size))
            frames[t][~lv & (np.hypot(yy - 56, xx - 56) < 45)] = 0.7
            labels[t][lv] = LabelClass.LV_CAVITY
        es = n_frames // 2
        items[name] = EchoSequence(
            frames=frames,
            frame_time_ms=20.0,
            labels=labels,
            ed_index=0,
            es_index=es,
            metadata={"reference": {"EF": 40.0 + k, "ESV": 30.0, "EDV": 50.0}, "split": "VAL"},
        )
    written = write_echonet_dataset(root, items)
    return items, written


def test_write_and_read_echonet_dataset(tmp_path):
    items, written = make_dataset(tmp_path)
    assert {p.name for p in written} == {
        "0XAAA.avi",
        "0XBBB.avi",
        "FileList.csv",
        "VolumeTracings.csv",
    }
    videos = list_sequences(tmp_path)
    assert [p.name for p in videos] == ["0XAAA.avi", "0XBBB.avi"]
    seq = read_sequence(videos[1])
    truth = items["0XBBB"]
    assert seq.view == "A4C" and seq.frames.shape == (12, 112, 112)
    assert seq.frame_time_ms == pytest.approx(20.0)
    assert seq.metadata["reference"]["EF"] == pytest.approx(41.0)
    assert seq.metadata["split"] == "VAL"
    assert (seq.ed_index, seq.es_index) == (0, 6)
    assert seq.keyframes == {0, 6}
    assert seq.labelled_frames() == [0, 6]
    assert seq.provenance[0].kind == ProvenanceKind.MANUAL
    assert seq.provenance[3].kind == ProvenanceKind.NONE
    for t in (0, 6):
        assert dice(seq.labels[t] == 1, truth.labels[t] == 1) >= 0.95
    assert (seq.labels[0] == 1).sum() > (seq.labels[6] == 1).sum()


def test_filename_without_avi_and_es_before_ed(tmp_path):
    make_dataset(tmp_path, names=("0XCCC",))
    filelist = tmp_path / "FileList.csv"
    filelist.write_text(filelist.read_text().replace("0XCCC.avi", "0XCCC"))
    tracings = tmp_path / "VolumeTracings.csv"
    lines = tracings.read_text().splitlines()
    # swap the frame numbers: the small (ES) tracing now comes first in time
    swapped = [
        line.rsplit(",", 1)[0] + "," + {"0": "6", "6": "0"}[line.rsplit(",", 1)[1]]
        for line in lines[1:]
    ]
    tracings.write_text("\n".join([lines[0], *swapped]) + "\n")
    seq = read_sequence(tmp_path / "Videos" / "0XCCC.avi")
    assert seq.metadata["reference"]["EF"] == pytest.approx(40.0)
    assert (seq.ed_index, seq.es_index) == (6, 0)


def test_bad_tracings_raise_echo_io_error(tmp_path):
    make_dataset(tmp_path, names=("0XDDD",))
    tracings = tmp_path / "VolumeTracings.csv"
    good = tracings.read_text()
    lines = good.splitlines()
    video = tmp_path / "Videos" / "0XDDD.avi"
    cases = {
        "rows": "\n".join(lines[:3]) + "\n",  # frame with 2 rows
        "frame": good.replace(",6\n", ",600\n"),  # frame outside the video
        "value": good.replace(lines[5].split(",")[1], "abc", 1),
        "columns": good.replace("X1,", "Z1,", 1),
    }
    for name, text in cases.items():
        tracings.write_text(text)
        with pytest.raises(EchoIOError) as info:
            read_sequence(video)
        assert "VolumeTracings.csv" in str(info.value), name


def test_plain_avi_outside_a_dataset_has_no_labels(tmp_path):
    frames, _ = beating_sequence(4, 112, 112)
    path = write_avi_pyav(tmp_path / "alone.avi", frames)
    seq = read_sequence(path)
    assert seq.labels is None and seq.view == "unknown" and "reference" not in seq.metadata
