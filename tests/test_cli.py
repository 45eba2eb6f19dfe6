"""The echo-napari command line end to end, on tiny generated files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from echo_napari.cli import main
from echo_napari.cli_evaluate import sequence_id
from echo_napari.errors import EchoIOError
from echo_napari.io import read_sequence, write_camus_patient, write_labels, write_sequence
from tests.conftest import make_sequence


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """References gt/seq{0,1,2,3}.h5; predictions pred/seq{0,1,2}.h5 (labels only, shifted
    by 0, 1, 2 pixels) and a corrupt pred/seq3.h5."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for k in range(4):
        seq = make_sequence(n_frames=8, size=32)
        seq.metadata["reference"] = {"EF": 50.0 + k}
        write_sequence(seq, gt / f"seq{k}.h5")
        if k < 3:
            write_labels(np.roll(seq.labels, k, axis=2), pred / f"seq{k}.h5", seq.spacing)
    (pred / "seq3.h5").write_bytes(b"not an HDF5 file")
    return pred, gt


def test_help_from_a_subprocess():
    exe = Path(sys.executable).with_name("echo-napari")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "echo_napari.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for word in ("convert", "evaluate", "report", "examples:", "--workers"):
        assert word in result.stdout


def test_sequence_ids_pair_files():
    assert sequence_id("a/patient0001_4CH_half_sequence.nii.gz") == "patient0001_4CH"
    assert sequence_id("patient0001_4CH_gt.mhd") == "patient0001_4CH"
    assert sequence_id("x/camus.h5::patient0002/2CH") == "patient0002_2CH"
    assert sequence_id("Videos/0X1A2B.avi") == "0X1A2B"


def test_evaluate_folder_reports_a_bad_sequence_and_resumes(dataset, tmp_path, capsys):
    pred, gt = dataset
    out = tmp_path / "out" / "results.csv"
    assert main(["evaluate", str(pred), str(gt), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "seq3" in captured.out
    assert "1 of 4 sequences failed" in captured.err
    table = pd.read_csv(out)
    assert list(table["sequence"]) == ["seq0", "seq1", "seq2"]
    assert table.loc[0, "dice_lv"] == 1.0 and table.loc[0, "hd95_lv"] == 0.0
    assert table.loc[1, "hd_lv"] == pytest.approx(0.3)  # one column of 0.3 mm
    assert table["dice_lv"].is_monotonic_decreasing
    assert (table["ef_file"] == [50.0, 51.0, 52.0]).all()
    frames = pd.read_csv(out.with_name("results_frames.csv"))
    assert len(frames) == 3 * 8 * 3  # sequences x frames x classes

    # A second run skips the finished sequences; deleting one part recomputes only it.
    assert main(["evaluate", str(pred), str(gt), "-o", str(out)]) == 1
    assert "3 skipped" in capsys.readouterr().out
    (out.with_name("results.csv.parts") / "seq1.json").unlink()
    main(["evaluate", str(pred), str(gt), "-o", str(out)])
    assert "1 done, 2 skipped" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out), table)


@pytest.mark.slow
def test_evaluate_with_two_dask_workers_equals_serial(dataset, tmp_path):
    pred, gt = dataset
    serial, parallel = tmp_path / "serial.csv", tmp_path / "parallel.csv"
    assert main(["evaluate", str(pred), str(gt), "-o", str(serial)]) == 1
    assert main(["evaluate", str(pred), str(gt), "-o", str(parallel), "--workers", "2"]) == 1
    pd.testing.assert_frame_equal(pd.read_csv(serial), pd.read_csv(parallel))

    # An existing cluster, reached by its address (as `dask scheduler` would give).
    from distributed import LocalCluster

    remote = tmp_path / "remote.csv"
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        args = ["evaluate", str(pred), str(gt), "-o", str(remote)]
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 1
    pd.testing.assert_frame_equal(pd.read_csv(serial), pd.read_csv(remote))


def test_evaluate_single_files(dataset, tmp_path):
    pred, gt = dataset
    out = tmp_path / "one.csv"
    assert main(["evaluate", str(pred / "seq1.h5"), str(gt / "seq1.h5"), "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == 1


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path / "nope"), str(tmp_path / "nope2"), "-o", "x.csv"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(EchoIOError):
        main(["evaluate", str(tmp_path / "nope"), str(tmp_path / "n2"), "-o", "x.csv", "--debug"])


def test_report_has_plots_and_numbers(dataset, tmp_path, capsys):
    pred, gt = dataset
    out = tmp_path / "results.csv"
    main(["evaluate", str(pred), str(gt), "-o", str(out)])
    html_path = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(html_path), "--curves", "2"]) == 0
    text = html_path.read_text()
    assert text.count("<svg") >= 6  # 3 boxplots, EF scatter + Bland-Altman, curves
    assert "seq0: area per frame" in text and "seq2: area per frame" not in text
    assert "Pearson r" in text and "95 % CI" in text
    (tmp_path / "bad.csv").write_text("just,a\n1,2\n")
    assert main(["report", str(tmp_path / "bad.csv"), "-o", str(html_path)]) == 2


def test_report_as_a_printable_pdf(dataset, tmp_path):
    pred, gt = dataset
    out = tmp_path / "results.csv"
    main(["evaluate", str(pred), str(gt), "-o", str(out)])
    main(["report", str(out), "-o", str(tmp_path / "report.html"), "--curves", "2"])
    n_plots = (tmp_path / "report.html").read_text().count("<svg")
    pdf_path = tmp_path / "report.pdf"
    assert main(["report", str(out), "-o", str(pdf_path), "--curves", "2"]) == 0
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    # every plot is in it, as an image drawn from its SVG; text stays text
    assert data.count(b"/Subtype /Image") >= n_plots >= 6
    assert b"/Type /Page" in data and b"/Font" in data
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_convert_file_and_folder(dataset, tmp_path):
    _, gt = dataset
    out = tmp_path / "converted"
    assert main(["convert", str(gt), str(out), "--to", ".nii.gz"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert "seq0.nii.gz" in files and "seq0_gt.nii.gz" in files
    back = read_sequence(out / "seq2.nii.gz")
    original = read_sequence(gt / "seq2.h5")
    np.testing.assert_array_equal(back.labels, original.labels)
    assert back.spacing == pytest.approx(original.spacing)
    single = tmp_path / "single.h5"
    assert main(["convert", str(out / "seq1.nii.gz"), str(single)]) == 0
    assert read_sequence(single).n_frames == 8


def test_convert_camus_root_to_dir_paper_hdf5(tmp_path, capsys):
    root = tmp_path / "camus"
    for k in (1, 2):
        seq = make_sequence(n_frames=6, size=32)
        seq.metadata["patient_info"] = {"Sex": "F", "Age": 60 + k, "ImageQuality": "Good"}
        seq.metadata["reference"] = {"EF": 55.0, "EDV": 100.0, "ESV": 45.0}
        write_camus_patient(root / f"patient000{k}", seq, view="4CH")
    out = tmp_path / "camus.h5"
    args = ["convert", str(root), str(out), "--layout", "dir-paper", "--size", "40", "40"]
    assert main(args) == 0
    with h5py.File(out, "r") as h5:
        group = h5["patient0001/4CH"]
        assert group["data"].shape == (6, 40, 40) and group["data"].dtype == np.float32
        assert group["data"].chunks == (1, 40, 40)
        assert group["masks"].shape == (2, 40, 40)
        assert group.attrs["ED"] == 1 and group.attrs["ES"] == 4  # 1-based, as in Info cfg
        assert group.attrs["NbFrame"] == 6 and group.attrs["Age"] == 61
        assert set(np.unique(group["masks"][0])) == {0, 1, 2, 3}
    back = read_sequence(out, key="patient0002/4CH")
    assert back.n_frames == 6
    assert main(args) == 0 and "skipped" in capsys.readouterr().out


def test_evaluate_against_unlabelled_videos_uses_the_file_ef(tmp_path):
    """EchoNet-like: references with only a FileList EF; predictions with full labels."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    predicted = []
    for k in range(3):
        seq = make_sequence(n_frames=8, size=32, spacing=None)
        write_labels(seq.labels, pred / f"v{k}.h5")
        predicted.append(seq.labels.copy())
        seq.labels, seq.keyframes = None, set()
        seq.metadata["reference"] = {"EF": 40.0 + 5 * k}
        write_sequence(seq, gt / f"v{k}.h5")
    out = tmp_path / "ef.csv"
    assert main(["evaluate", str(pred), str(gt), "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["dice_lv"].isna().all() and (table["ef_file"] == [40.0, 45.0, 50.0]).all()
    assert table["ef_pred_auto"].between(10, 90).all()
    # the EF `predict` reports: area-length, mean over the clip's beats
    from echo_napari.metrics_ef import ef_by_beats

    for k, labels in enumerate(predicted):
        expected = ef_by_beats(labels).ef
        assert table["ef_pred_beats"][k] == pytest.approx(expected, nan_ok=True)
    assert table["ef_pred_beats"].notna().any()
    assert (table["plausible_pct_pred"] == 100.0).all()
    assert (table["distance_unit"] == "px").all()
    html = tmp_path / "ef.html"
    assert main(["report", str(out), "-o", str(html)]) == 0
    assert "own ED/ES vs file EF" in html.read_text()
    assert "mean over beats (area-length) vs file EF" in html.read_text()


REAL_VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "echonet-unlabeled"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_VIDEOS.is_dir(), reason="../shared/data is absent")
def test_convert_real_echonet_videos_keeps_filelist_ef(tmp_path):
    """Two real EchoNet-Dynamic videos (research use; copied to tmp only, never the repo)."""
    videos = tmp_path / "echonet"
    (videos / "Videos").mkdir(parents=True)
    names = sorted(p.name for p in (REAL_VIDEOS / "Videos").glob("*.avi"))[:2]
    for name in names:
        (videos / "Videos" / name).symlink_to(REAL_VIDEOS / "Videos" / name)
    (videos / "FileList.csv").symlink_to(REAL_VIDEOS / "FileList.csv")
    out = tmp_path / "h5"
    assert main(["convert", str(videos), str(out)]) == 0
    filelist = pd.read_csv(REAL_VIDEOS / "FileList.csv")
    for name in names:
        seq = read_sequence(out / name.replace(".avi", ".h5"))
        row = filelist[filelist["FileName"].str.replace(".avi", "") == name[:-4]].iloc[0]
        assert seq.n_frames == row["NumberOfFrames"] and seq.frame_shape == (112, 112)
        assert seq.metadata["reference"]["EF"] == pytest.approx(row["EF"])
