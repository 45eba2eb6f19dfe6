"""propagate / predict / report --jacobian through the CLI, with tiny saved models."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from echo_napari.cli import main
from echo_napari.io import read_sequence, write_sequence
from echo_napari.sequence import EchoSequence, ProvenanceKind
from tests.conftest import make_sequence


@pytest.fixture
def identity_dirnet(tmp_path: Path) -> Path:
    """An untrained DIRNet: its zero-initialised last layer makes every field zero."""
    from echo_napari.registration.modelio import save_dirnet
    from echo_napari.registration.training import new_model

    path = tmp_path / "dirnet_identity.safetensors"
    card = {"name": "dirnet", "version": "identity-test", "training": {"alpha": 1.0}}
    return save_dirnet(new_model(), path, card)


def test_propagate_writes_labels_provenance_and_jacobian(tmp_path, identity_dirnet, capsys):
    data = tmp_path / "data"
    data.mkdir()
    seq = make_sequence(n_frames=8, size=32)  # keyframes 0 and 4
    write_sequence(seq, data / "beat.h5")
    out = tmp_path / "propagated"
    args = ["propagate", str(data), "-o", str(out), "--weights", str(identity_dirnet)]
    assert main([*args, "--device", "cpu"]) == 0
    result = read_sequence(out / "beat.h5")
    assert result.labels.shape == seq.labels.shape
    assert all(result.labels[t].any() for t in range(8))
    np.testing.assert_array_equal(result.labels[4], seq.labels[4])
    kinds = [p.kind for p in result.provenance]
    assert kinds[0] == ProvenanceKind.MANUAL and kinds[2] == ProvenanceKind.PROPAGATED
    assert result.provenance[2].version == "identity-test"
    jac = pd.read_csv(out / "beat_jacobian.csv")
    assert len(jac) == 7 and np.allclose(jac["p50"], 1.0) and (jac["folding_fraction"] == 0).all()

    # The propagated labels evaluate against the full-cycle reference, and report.
    csv = tmp_path / "prop.csv"
    assert main(["evaluate", str(out), str(data), "-o", str(csv)]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert 0.7 < row["dice_lv"] < 1.0  # zero motion: frames between keyframes differ
    html = tmp_path / "r.html"
    assert main(["report", str(csv), "-o", str(html), "--jacobian", str(out)]) == 0
    assert "Jacobian determinant of each frame" in html.read_text()
    assert main([*args]) == 0 and "1 skipped" in capsys.readouterr().out


def test_propagate_without_labels_is_reported(tmp_path, identity_dirnet, capsys):
    seq = make_sequence(n_frames=4, size=32)
    seq.labels = None
    write_sequence(seq, tmp_path / "bare.h5")
    code = main(
        [
            "propagate",
            str(tmp_path / "bare.h5"),
            "-o",
            str(tmp_path / "o"),
            "--weights",
            str(identity_dirnet),
        ]
    )
    assert code == 1 and "no labels to propagate" in capsys.readouterr().out


def test_predict_with_a_tiny_model(tmp_path, capsys):
    from echo_napari.segmentation import SegmentationModel, UNetConfig, build_model, save_model

    config = UNetConfig(channels=(4, 4, 4, 4, 4), clip_len=8, size=32)
    stem = tmp_path / "seg_tiny"
    save_model(SegmentationModel(build_model(config), {"name": "seg", "version": "t1"}), stem)
    write_sequence(make_sequence(n_frames=6, size=32), tmp_path / "clip.h5")
    out = tmp_path / "pred"
    model = f"{stem}.safetensors"
    assert main(["predict", str(tmp_path / "clip.h5"), "-o", str(out), "--model", model]) == 0
    result = read_sequence(out / "clip.h5")
    assert result.labels.shape == (6, 32, 32) and result.labels.max() <= 3
    assert result.provenance[0].kind == ProvenanceKind.PREDICTED
    assert result.provenance[0].version == "t1+refined+shape"
    header = capsys.readouterr().out.splitlines()[0]
    assert "ef" in header.split() and "plausible_pct" in header
    plain = tmp_path / "plain"
    args = ["predict", str(tmp_path / "clip.h5"), "-o", str(plain), "--model", model]
    assert main([*args, "--no-shape-prior"]) == 0
    assert read_sequence(plain / "clip.h5").provenance[0].version == "t1+refined"


def test_predict_summary_reports_ef_and_plausibility(tmp_path):
    from test_segmentation import phantom, phantom_trained_model

    from echo_napari.cli_compute import predict_one
    from echo_napari.segmentation import save_model
    from echo_napari.sequence import EchoSequence

    stem = tmp_path / "seg_phantom"
    save_model(phantom_trained_model(), stem)
    frames, _ = phantom(48, 32, seed=4, period=16)
    write_sequence(EchoSequence(frames=frames, spacing=(0.5, 0.5)), tmp_path / "p.h5")
    item = (str(tmp_path / "p.h5"), str(tmp_path / "o.h5"), {"model": f"{stem}.safetensors"})
    row = predict_one(item)
    assert 30.0 < row["ef"] < 80.0
    assert row["plausible_pct"] > 90.0 and row["no_view"] == 0


def test_predict_summary_of_a_clip_without_a_heart(tmp_path, monkeypatch):
    import echo_napari.segmentation as segmentation
    from echo_napari.cli_compute import predict_one
    from echo_napari.sequence import EchoSequence

    # a model that finds no LV anywhere, only a patch of "wall" (as on a non-cardiac scan)
    def no_lv(frames, *args, **kwargs):
        labels = np.zeros(frames.shape, np.uint8)
        labels[:, 10:20, 10:20] = 2
        return labels

    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: _Named())
    monkeypatch.setattr(segmentation, "predict_sequence", no_lv)
    blank = np.zeros((8, 32, 32), np.float32)
    write_sequence(EchoSequence(frames=blank, spacing=(0.5, 0.5)), tmp_path / "b.h5")
    row = predict_one((str(tmp_path / "b.h5"), str(tmp_path / "ob.h5"), {"refine": False}))
    assert row["lv_frames"] == 0 and row["no_view"] == 0
    assert np.isnan(row["plausible_pct"])  # nothing judged: not "100 % plausible"


class _Named:
    name, version = "seg", "none"


def test_predict_refines_the_lv_border_unless_told_not_to(tmp_path, monkeypatch, capsys):
    from test_segmentation_boundary import heart

    import echo_napari.segmentation as segmentation
    from echo_napari.segmentation.boundary import moved_frames

    frame, truth = heart()
    network = np.repeat(truth[None], 4, axis=0)
    cavity = truth == 1
    network[2][cavity & ~ndimage.binary_erosion(cavity, iterations=3)] = 2  # 3 px short
    monkeypatch.setattr(segmentation, "predict_sequence", lambda *a, **k: network.copy())
    monkeypatch.setattr(
        segmentation,
        "load_model",
        lambda name, device=None: SimpleNamespace(name="seg", version="fake"),
    )
    seq = EchoSequence(frames=np.repeat(frame[None], 4, axis=0), spacing=(0.5, 0.5))
    write_sequence(seq, tmp_path / "c.h5")
    args = ["predict", str(tmp_path / "c.h5"), "--no-shape-prior"]  # the refinement alone
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert "refined" in capsys.readouterr().out.splitlines()[0]
    refined = read_sequence(tmp_path / "a" / "c.h5").labels
    assert moved_frames(network, refined).tolist() == [0, 0, 1, 0]
    # the other frames are only smoothed: same area, a few border pixels
    for t in (0, 1, 3):
        assert ((refined[t] == 1) != (network[t] == 1)).sum() < 0.02 * (network[t] == 1).sum()
    assert main([*args, "-o", str(tmp_path / "b"), "--no-refine"]) == 0
    assert "refined" not in capsys.readouterr().out.splitlines()[0]
    np.testing.assert_array_equal(read_sequence(tmp_path / "b" / "c.h5").labels, network)


def test_predict_repair_redraws_the_implausible_frames(tmp_path, monkeypatch, capsys):
    import echo_napari.segmentation as segmentation
    from echo_napari.simulate import SimulationParams, simulate_sequence

    seq = simulate_sequence(3, SimulationParams(frames_per_cycle=20)).sequence
    broken = seq.labels.copy()
    broken[7] = np.flip(seq.labels[7], axis=0)  # the "model" drew the LA above the LV
    monkeypatch.setattr(
        segmentation, "predict_sequence", lambda frames, model, **kwargs: broken.copy()
    )
    monkeypatch.setattr(
        segmentation,
        "load_model",
        lambda name, device=None: SimpleNamespace(name="seg", version="fake"),
    )
    write_sequence(seq.copy(labels=None), tmp_path / "s.h5")
    out = tmp_path / "o"
    args = ["predict", str(tmp_path / "s.h5"), "-o", str(out), "--repair", "--no-refine"]
    args.append("--no-shape-prior")  # the frame the "model" drew upside down stays so
    assert main(args) == 0
    assert "repaired" in capsys.readouterr().out.splitlines()[0]
    result = read_sequence(out / "s.h5")
    assert result.provenance[7].kind == ProvenanceKind.PROPAGATED
    assert result.provenance[6].kind == ProvenanceKind.PREDICTED
    np.testing.assert_array_equal(result.labels[6], broken[6])
    lv, truth = result.labels[7] == 1, seq.labels[7] == 1
    assert (lv & truth).sum() / max(lv.sum(), truth.sum()) > 0.85


def test_train_dir_then_propagate_with_the_result(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_sequence(make_sequence(n_frames=6, size=32), data / "a.h5")
    weights = tmp_path / "mine.safetensors"
    args = ["train-dir", str(data), str(weights), "--iterations", "2", "--batch", "2"]
    assert main([*args, "--device", "cpu"]) == 0
    assert weights.exists() and weights.with_suffix(".json").exists()
    out = tmp_path / "out"
    assert main(["propagate", str(data), "-o", str(out), "--weights", str(weights)]) == 0
    assert read_sequence(out / "a.h5").provenance[1].version == "mine"


@pytest.mark.slow
def test_train_seg_small_architecture(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_sequence(make_sequence(n_frames=8, size=32), data / "a.h5")
    stem = tmp_path / "seg_small"
    args = [
        "train-seg",
        str(data),
        str(stem),
        "--steps",
        "1",
        "--channels",
        "4",
        "4",
        "4",
        "4",
        "4",
        "--clip-len",
        "8",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    out = tmp_path / "pred"
    assert main(["predict", str(data), "-o", str(out), "--model", f"{stem}.safetensors"]) == 0
    # the provenance says which pipeline drew the labels: the model, the refinement, the
    # shape prior
    assert read_sequence(out / "a.h5").provenance[0].version == "seg_small+refined+shape"
    raw = tmp_path / "raw"
    args = ["predict", str(data), "-o", str(raw), "--model", f"{stem}.safetensors", "--no-refine"]
    assert main(args) == 0
    assert read_sequence(raw / "a.h5").provenance[0].version == "seg_small+shape"


def _tiny_seg_model(tmp_path):
    from echo_napari.segmentation import SegmentationModel, UNetConfig, build_model, save_model

    config = UNetConfig(channels=(4, 4, 4, 4, 4), clip_len=8, size=32)
    stem = tmp_path / "seg_tiny"
    save_model(SegmentationModel(build_model(config), {"name": "seg", "version": "t1"}), stem)
    return f"{stem}.safetensors"


def test_fine_tune_from_a_session_writes_a_new_version(tmp_path, monkeypatch, capsys):
    from echo_napari.session import Session

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    seq = make_sequence(n_frames=8, size=32)
    seq.keyframes = {0, 4}
    Session(seq, tmp_path / "study.h5").save()
    base = _tiny_seg_model(tmp_path)
    args = ["fine-tune", str(tmp_path / "study.h5"), "--base", base, "--steps", "2"]
    assert main([*args, "--device", "cpu"]) == 0
    written = sorted((tmp_path / "user").rglob("seg_v*.safetensors"))
    assert len(written) == 1 and written[0].with_suffix(".json").exists()
    out = capsys.readouterr().out
    assert written[0].stem in out and "n/a" not in out  # Dice before/after are reported


def test_fine_tune_without_corrected_frames_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    seq = make_sequence(n_frames=8, size=32)
    seq.labels = None
    write_sequence(seq, tmp_path / "clip.h5")
    args = ["fine-tune", str(tmp_path / "clip.h5"), "--base", _tiny_seg_model(tmp_path)]
    assert main([*args, "--steps", "1"]) == 2
    assert "needs a sequence with labels" in capsys.readouterr().err
    assert not list((tmp_path / "user").rglob("seg_v*"))


def test_predict_one_direction_halves_the_network_passes(tmp_path, monkeypatch):
    import echo_napari.segmentation as segmentation
    from echo_napari.cli import main

    seen, mirrored = [], []

    def record(frames, *args, **kwargs):
        seen.append(kwargs.get("both_directions", True))
        mirrored.append(kwargs.get("mirrored", False))
        labels = np.zeros(frames.shape, np.uint8)
        labels[:, 8:20, 10:20] = 1
        return labels

    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: _Named())
    monkeypatch.setattr(segmentation, "predict_sequence", record)
    write_sequence(make_sequence(n_frames=6, size=32), tmp_path / "clip.h5")
    for flag, expected in (([], True), (["--one-direction"], False)):
        out = tmp_path / f"out{len(flag)}"
        args = ["predict", str(tmp_path / "clip.h5"), "-o", str(out), "--no-refine", *flag]
        assert main(args) == 0
        assert seen[-1] is expected
    assert (
        main(["predict", str(tmp_path / "clip.h5"), "-o", str(tmp_path / "m"), "--mirrored"]) == 0
    )
    assert mirrored == [False, False, True]
    from echo_napari.io import read_sequence
    from echo_napari.sequence import MIRRORED_VIEW_KEY

    written = read_sequence(tmp_path / "m" / "clip.h5")
    assert written.metadata.get(MIRRORED_VIEW_KEY) is True  # fine-tuning reads it
