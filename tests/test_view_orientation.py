"""The view-orientation check: is a clip in EchoNet's apical convention or mirrored?"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from echo_napari.errors import ModelError
from echo_napari.view_orientation import (
    MARGIN,
    OrientationCheck,
    OrientationNet,
    check_orientation,
    load_orientation_model,
    save_orientation_model,
)


@pytest.fixture(scope="module")
def simulated_clip() -> np.ndarray:
    """A simulated test-split heart (never trained on), EchoNet's convention, (T, H, W)."""
    from echo_napari.simulation.core import simulate_sequence
    from echo_napari.simulation.params import seeds

    return simulate_sequence(seeds("test", 1)[0]).sequence.frames_array()


def test_a_clip_and_its_mirror_image_get_opposite_scores(simulated_clip):
    torch.manual_seed(0)
    network = OrientationNet().eval()  # any weights: antisymmetric by construction
    as_is = check_orientation(simulated_clip, network)
    mirrored = check_orientation(np.ascontiguousarray(simulated_clip[:, :, ::-1]), network)
    assert as_is.windows == mirrored.windows >= 2
    assert mirrored.score == pytest.approx(-as_is.score, abs=1e-4)


def test_the_bundled_check_tells_a_simulated_heart_from_its_mirror_image(simulated_clip):
    as_is = check_orientation(simulated_clip)
    mirrored = check_orientation(np.ascontiguousarray(simulated_clip[:, :, ::-1]))
    assert as_is.verdict == "standard" and mirrored.verdict == "mirrored"


def test_a_scanner_screen_is_judged_on_its_sector():
    """The clip inside a larger dark screen (as a scanner's export) gets the same verdict."""
    from echo_napari.simulation.core import simulate_sequence
    from echo_napari.simulation.params import seeds

    clip = simulate_sequence(seeds("test", 2)[1]).sequence.frames_array()
    screen = np.zeros((clip.shape[0], 200, 260), np.float32)
    screen[:, 50:162, 90:202] = clip
    for frames, expected in ((screen, "standard"), (screen[:, :, ::-1], "mirrored")):
        assert check_orientation(np.ascontiguousarray(frames)).verdict == expected


def test_verdicts_warnings_and_the_margin():
    assert OrientationCheck(MARGIN + 0.1, 3).verdict == "mirrored"
    assert OrientationCheck(-MARGIN - 0.1, 3).verdict == "standard"
    assert OrientationCheck(MARGIN / 2, 3).verdict == "unsure"
    mirrored_looking = OrientationCheck(4.0, 3)
    assert mirrored_looking.contradicts(False) and not mirrored_looking.contradicts(True)
    assert "tick Mirrored view" in mirrored_looking.warning(False)
    assert mirrored_looking.warning(True) == ""
    standard_looking = OrientationCheck(-4.0, 3)
    assert "Mirrored view is on" in standard_looking.warning(True)
    assert standard_looking.warning(False) == ""
    assert OrientationCheck(0.2, 3).warning(False) == OrientationCheck(0.2, 3).warning(True) == ""
    assert OrientationCheck(4.0, 3).to_dict()["verdict"] == "mirrored"
    assert mirrored_looking.judged("mirrored") == "right"
    assert mirrored_looking.judged("standard") == "wrong"
    assert OrientationCheck(0.2, 3).judged("standard") == "unsure"


def test_the_bundled_card_records_its_cross_validation_and_held_out_videos():
    from echo_napari.models.registry import bundled_model

    card = bundled_model("orient").card()
    assert card["margin"] == MARGIN
    assert card["cross_validation"]["summary"]["wrong"] == 0
    held = card["data"]["held_out_never_trained"]
    assert held and not set(held) & set(card["data"]["training_videos"])
    assert card["held_out"]["summary"]["shown"] == 2 * len(held)


def test_saved_weights_load_back_and_bad_files_raise_model_error(tmp_path, simulated_clip):
    torch.manual_seed(1)
    network = OrientationNet().eval()
    path = save_orientation_model(network, tmp_path / "orient_v7", {"version": "orient_v7"})
    loaded = load_orientation_model(path)
    assert check_orientation(simulated_clip, loaded).score == pytest.approx(
        check_orientation(simulated_clip, network).score, abs=1e-5
    )
    assert json.loads(path.with_suffix(".json").read_text())["name"] == "orient"
    with pytest.raises(ModelError, match="cannot load"):
        load_orientation_model(tmp_path / "missing_v1.safetensors")
    other = tmp_path / "narrow_v1"
    card = {"version": "narrow_v1"}
    save_orientation_model(OrientationNet(), other, card)
    text = json.loads(other.with_suffix(".json").read_text())
    text["config"]["channels"] = [8, 8, 8, 8]
    other.with_suffix(".json").write_text(json.dumps(text))
    with pytest.raises(ModelError, match="do not fit"):
        load_orientation_model(other.with_suffix(".safetensors"))


def _mirrored_file(clip: np.ndarray, path) -> None:
    from echo_napari.io import write_sequence
    from echo_napari.sequence import EchoSequence

    write_sequence(EchoSequence(np.ascontiguousarray(clip[:, :, ::-1])), path)


def test_predict_warns_when_a_clip_looks_mirrored(simulated_clip, tmp_path, monkeypatch, capsys):
    import echo_napari.segmentation as segmentation
    from echo_napari.cli import main
    from echo_napari.io import write_sequence
    from echo_napari.sequence import EchoSequence

    def fake_network(frames, *args, **kwargs):  # the view check is what is tested here
        labels = np.zeros(frames.shape, np.uint8)
        labels[:, 40:70, 50:70] = 1
        return labels

    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: _Named())
    monkeypatch.setattr(segmentation, "predict_sequence", fake_network)
    _mirrored_file(simulated_clip, tmp_path / "clip.h5")
    assert (
        main(["predict", str(tmp_path / "clip.h5"), "-o", str(tmp_path / "a"), "--no-refine"]) == 0
    )
    out, err = capsys.readouterr()
    assert "view" in out.splitlines()[0] and "mirrored" in out
    assert "clip: This clip looks mirrored" in err and "--mirrored" in err
    args = ["predict", str(tmp_path / "clip.h5"), "-o", str(tmp_path / "b"), "--no-refine"]
    assert main([*args, "--mirrored"]) == 0
    assert "looks" not in capsys.readouterr().err  # told so: no warning
    # shown apex down: said in the same column
    write_sequence(EchoSequence(np.ascontiguousarray(simulated_clip[:, ::-1])), tmp_path / "d.h5")
    assert main(["predict", str(tmp_path / "d.h5"), "-o", str(tmp_path / "c"), "--no-refine"]) == 0
    assert "standard, apex down" in capsys.readouterr().out


class _Named:
    name, version = "seg", "none"


@pytest.mark.gui
def test_the_predict_panel_warns_when_the_clip_looks_mirrored(
    simulated_clip, make_napari_viewer, qtbot
):
    from test_widgets_predict import predict_in_a_new_dock

    clip = np.ascontiguousarray(simulated_clip[:24, :, ::-1])
    panel = predict_in_a_new_dock(make_napari_viewer, qtbot, clip)
    assert panel.status_label.text().startswith("This clip looks mirrored")
    assert panel.view_button.isVisibleTo(panel)
    assert panel.view_button.text() == "Predict with Mirrored view on"
    panel.view_button.click()  # one click: the setting flipped and predicted again
    assert panel.mirrored_check.isChecked() and not panel.view_button.isVisibleTo(panel)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    assert panel.status_label.text().startswith("Predicted")
    assert not panel.view_button.isVisibleTo(panel)


def test_fine_tuning_on_a_clip_that_looks_mirrored_says_so(simulated_clip, tmp_path, monkeypatch):
    from test_widgets_predict import _tiny_model

    from echo_napari.segmentation import fine_tune, fine_tune_steps
    from echo_napari.segmentation.finetune import FineTuneNotice
    from echo_napari.sequence import MANUAL, MIRRORED_VIEW_KEY, NO_PROVENANCE, EchoSequence

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    frames = np.ascontiguousarray(simulated_clip[:16, :, ::-1])
    labels = np.zeros(frames.shape, np.uint8)
    labels[:, 40:70, 30:50] = 1
    provenance = [MANUAL if t in (0, 8) else NO_PROVENANCE for t in range(16)]
    warnings, notices = [], []
    for marked in (False, True):
        sequence = EchoSequence(frames=frames, labels=labels, provenance=provenance)
        sequence.metadata[MIRRORED_VIEW_KEY] = marked
        steps = fine_tune_steps(sequence, _tiny_model("", "cpu"), steps=2)
        first = next(steps)
        notices.append(first.message if isinstance(first, FineTuneNotice) else "")
        version = fine_tune(sequence, _tiny_model("", "cpu"), steps=2)
        warnings.append(version.card["fine_tune"]["view_warning"])
    assert warnings[0].startswith("This clip looks mirrored") and warnings[1] == ""
    # the same words before the first training step, while the user can still cancel
    assert warnings[0] in notices[0] and notices[1] == ""


def test_a_missing_view_model_is_logged_and_skipped(simulated_clip, monkeypatch, caplog):
    import echo_napari.models.registry as registry
    from echo_napari.view_orientation import check_orientation_or_none

    def no_weights(name="dirnet"):
        raise ModelError(f"no bundled '{name}' weights")

    monkeypatch.setattr(registry, "bundled_model", no_weights)
    monkeypatch.setattr("echo_napari.view_orientation._CACHE", {})
    assert check_orientation_or_none(simulated_clip) is None
    assert "view-orientation check skipped" in caplog.text
