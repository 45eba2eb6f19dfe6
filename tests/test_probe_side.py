"""Labels the wrong way up for an apical view: the LA nearer the probe than the LV."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.field_of_view import FieldOfView, find_field_of_view
from echo_napari.probe_side import (
    UPSIDE_DOWN_SHARE,
    atrium_nearer_probe_share,
    probe_side_warning,
)
from echo_napari.sequence import LabelClass


def _chambers(n: int = 6, size: int = 64, lv_on_top: bool = True) -> np.ndarray:
    """(n, size, size) labels: an LV block and an LA block below (or above) it."""
    labels = np.zeros((n, size, size), np.uint8)
    upper, lower = slice(8, 34), slice(36, 56)
    labels[:, upper if lv_on_top else lower, 24:40] = LabelClass.LV_CAVITY
    labels[:, lower if lv_on_top else upper, 26:38] = LabelClass.LA
    return labels


def _view(size: int = 64, apex_down: bool = False) -> FieldOfView:
    return FieldOfView(np.ones((size, size), bool), 0, 0, size, apex_down=apex_down)


def test_the_probe_is_at_the_fan_apex_either_way_up():
    assert _view().apex_point == pytest.approx((0.065 * 64, 32.0))
    assert _view(apex_down=True).apex_point == pytest.approx((63 - 0.065 * 64, 32.0))


def test_an_atrium_nearer_the_probe_than_the_ventricle_is_counted():
    right = _chambers()
    assert atrium_nearer_probe_share(right, _view().apex_point) == (0.0, 6)
    assert atrium_nearer_probe_share(right, _view(apex_down=True).apex_point) == (1.0, 6)
    mixed = right.copy()
    mixed[:2] = _chambers(2, lv_on_top=False)
    mixed[5][mixed[5] == LabelClass.LA] = 0  # no LA: the frame is not judged
    assert atrium_nearer_probe_share(mixed, _view().apex_point) == (pytest.approx(0.4), 5)
    assert atrium_nearer_probe_share(np.zeros((3, 8, 8), np.uint8), (0, 4)) == (0.0, 0)


def test_the_warning_names_the_share_and_the_probe_side():
    assert probe_side_warning(_chambers(), _view()) == ""
    warning = probe_side_warning(_chambers(lv_on_top=False), _view())
    assert warning.startswith("On 100 % of the frames the LA lies nearer the probe")
    assert "at the top of the screen" in warning
    assert probe_side_warning(_chambers(), _view(apex_down=True)).startswith("On 100 %")
    below = _chambers(10)
    below[: int(10 * UPSIDE_DOWN_SHARE)] = _chambers(int(10 * UPSIDE_DOWN_SHARE), lv_on_top=False)
    assert probe_side_warning(below, _view()) == ""  # 20 %, under the threshold


@pytest.fixture(scope="module")
def simulated_clip() -> np.ndarray:
    from echo_napari.simulation import simulate_sequence

    return np.asarray(simulate_sequence(3).sequence.frames[:24], np.float32)


def _upside_down_network(frames, *args, **kwargs):
    """Labels drawn the wrong way up for an apical clip: the LA at the probe's end."""
    return np.tile(_chambers(1, frames.shape[1], lv_on_top=False), (frames.shape[0], 1, 1))


def test_predict_warns_when_the_labels_look_upside_down(
    simulated_clip, tmp_path, monkeypatch, capsys
):
    import echo_napari.segmentation as segmentation
    from echo_napari.cli import main
    from echo_napari.io import write_sequence
    from echo_napari.sequence import EchoSequence

    class Named:
        name, version = "seg", "none"

    assert not find_field_of_view(simulated_clip).apex_down
    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: Named())
    monkeypatch.setattr(segmentation, "predict_sequence", _upside_down_network)
    write_sequence(EchoSequence(simulated_clip), tmp_path / "clip.h5")
    args = ["predict", str(tmp_path / "clip.h5"), "-o", str(tmp_path / "a"), "--no-refine"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "clip: On 100 % of the frames the LA lies nearer the probe" in err


@pytest.mark.gui
def test_the_predict_panel_warns_when_the_labels_look_upside_down(
    simulated_clip, make_napari_viewer, qtbot, monkeypatch
):
    from test_widgets_predict import predict_in_a_new_dock

    import echo_napari.segmentation.inference as inference

    monkeypatch.setattr(inference, "predict_sequence", _upside_down_network)
    panel = predict_in_a_new_dock(make_napari_viewer, qtbot, simulated_clip)
    assert panel.status_label.text().startswith("On 100 % of the frames the LA lies nearer")
