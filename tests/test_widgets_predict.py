"""Predict full cycle in the review dock: a second source, then Accept for a frame range."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.napari_hooks import sequence_layer_data
from echo_napari.sequence import ProvenanceKind

pytestmark = pytest.mark.gui


def _tiny_model(version: str, device: str):
    import torch

    from echo_napari.segmentation.model import UNetConfig, build_model
    from echo_napari.segmentation.weights import SegmentationModel

    torch.manual_seed(0)
    network = build_model(UNetConfig(channels=(4, 4, 8, 8, 8), clip_len=8, size=32)).eval()
    return SegmentationModel(network=network, card={"name": "seg", "version": "test"})


def predict_in_a_new_dock(make_napari_viewer, qtbot, frames: np.ndarray):
    """A viewer showing ``frames``, its review dock, and Predict run there with the tiny
    model and no border refinement; returns the Predict panel once the job is done."""
    from echo_napari.napari_hooks import sequence_layer_data
    from echo_napari.sequence import EchoSequence

    viewer = make_napari_viewer()
    for data, kwargs, kind in sequence_layer_data(EchoSequence(frames), name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: widget.binding is not None, timeout=2000)
    panel = widget.predict_panel
    panel.model_factory = _tiny_model
    panel.refine_check.setChecked(False)
    panel.predict_button.click()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    return panel


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    for data, kwargs, kind in sequence_layer_data(make_sequence(16, 32), name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: widget.binding is not None, timeout=2000)
    widget.predict_panel.model_factory = _tiny_model
    return viewer, widget


def test_predict_shows_a_second_source_then_accept_writes_only_the_range(dock, qtbot):
    viewer, widget = dock
    panel, session = widget.predict_panel, widget.session
    before = session.labels.copy()
    assert not panel.accept_button.isEnabled()
    panel.predict_button.click()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    source = session.second_source
    assert source is not None, panel.status_label.text()
    assert "LV border refined on" in panel.status_label.text()
    np.testing.assert_array_equal(session.labels, before)  # nothing overwritten yet
    assert source.provenance.kind is ProvenanceKind.PREDICTED and source.provenance.model == "seg"
    _, dashed = widget.curve.second_curves[1].getData()
    np.testing.assert_allclose(dashed, source.areas[:, 1])
    # the untrained model disagrees with the labels: the suspicion score says so
    scores, free = session.suspicion_scores(), [t for t in range(16) if t not in (0, 8)]
    assert np.all(scores[free] >= source.disagreement[free] - 1e-9)

    panel.first_spin.setValue(2)
    panel.last_spin.setValue(9)  # keyframe 8 inside the range keeps its labels
    panel.accept_button.click()
    kinds = [p.kind for p in session.sequence.provenance]
    written = [t for t in range(16) if kinds[t] is ProvenanceKind.PREDICTED]
    assert written == [2, 3, 4, 5, 6, 7, 9]
    np.testing.assert_array_equal(session.labels[written], source.labels[written])
    untouched = [t for t in range(16) if t not in written]
    np.testing.assert_array_equal(session.labels[untouched], before[untouched])
    assert np.all(source.disagreement[written] == 0)
    np.testing.assert_allclose(widget.curve.curve_data(1), session.areas[:, 1])


def test_accepting_a_prediction_detects_missing_phases(dock, qtbot):
    _, widget = dock
    panel, session = widget.predict_panel, widget.session
    session.sequence.ed_index = session.sequence.es_index = None
    panel.predict_button.click()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    panel.first_spin.setValue(0)
    panel.last_spin.setValue(15)
    panel.accept_button.click()
    lv = session.areas[:, 1]
    ed, es = session.sequence.ed_index, session.sequence.es_index
    assert ed is not None and es is not None and lv[ed] > lv[es]
    assert f"ED {ed}, ES {es}" in panel.status_label.text()


def test_accepting_implausible_frames_points_at_repair(dock, qtbot):
    _, widget = dock
    panel, session = widget.predict_panel, widget.session
    panel.predict_button.click()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    session.second_source.labels[3] = np.flip(session.labels[3], axis=0)  # LA above LV
    panel.first_spin.setValue(3)
    panel.last_spin.setValue(3)
    panel.accept_button.click()
    assert session.plausible_share() == 15 / 16
    assert "6.2 % of the labelled frames fail the anatomical checks" in panel.status_label.text()
    assert "Repair implausible" in panel.status_label.text()


def test_cancel_prediction(dock, qtbot):
    viewer, widget = dock
    panel = widget.predict_panel

    def slow_model(version, device):
        time.sleep(0.3)  # the model loads while the user presses Cancel
        return _tiny_model(version, device)

    panel.model_factory = slow_model
    panel.predict_button.click()
    panel.cancel_button.click()
    start = time.perf_counter()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=10000)
    assert time.perf_counter() - start < 1.0
    assert widget.session.second_source is None
    assert "Cancelled" in panel.status_label.text()


def test_panel_checkboxes_reach_the_job(dock, qtbot, monkeypatch):
    from echo_napari.segmentation import inference
    from echo_napari.widgets import predict_panel as module

    _, widget = dock
    panel = widget.predict_panel
    refines, directions, mirrored = [], [], []
    run, predict = module.run_prediction, inference.predict_sequence

    def recording_job(*args, refine=True, **kwargs):
        refines.append(refine)
        return run(*args, refine=refine, **kwargs)

    def recording_network(*args, both_directions=True, **kwargs):
        directions.append(both_directions)
        mirrored.append(kwargs.get("mirrored"))
        return predict(*args, both_directions=both_directions, **kwargs)

    monkeypatch.setattr(module, "run_prediction", recording_job)
    monkeypatch.setattr(inference, "predict_sequence", recording_network)
    # both on by default
    assert panel.refine_check.isChecked() and panel.directions_check.isChecked()
    assert not panel.mirrored_check.isChecked()  # EchoNet's convention by default
    for checked in (True, False):
        panel.refine_check.setChecked(checked)
        panel.directions_check.setChecked(checked)
        panel.mirrored_check.setChecked(not checked)
        panel.predict_button.click()
        qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    assert refines == [True, False] and directions == [True, False]
    assert mirrored == [False, True]
    from echo_napari.sequence import MIRRORED_VIEW_KEY

    assert widget.session.sequence.metadata[MIRRORED_VIEW_KEY] is True  # the last run's
    assert widget.session.second_source is not None
    assert "refined" not in panel.status_label.text()


def test_run_prediction_counts_the_frames_the_refinement_moved(monkeypatch):
    from scipy import ndimage
    from test_segmentation_boundary import heart

    from echo_napari.segmentation import inference
    from echo_napari.widgets.predict_panel import run_prediction

    frame, truth = heart()
    frames = np.repeat(frame[None], 6, axis=0)
    network = np.repeat(truth[None], 6, axis=0)
    for t in (1, 4):  # the "network" stopped 3 px short of the wall on two frames
        cavity = truth == 1
        network[t][cavity & ~ndimage.binary_erosion(cavity, iterations=3)] = 2
    monkeypatch.setattr(inference, "predict_sequence", lambda *a, **k: network.copy())
    stages = []
    out = run_prediction(
        frames,
        lambda: None,
        progress=lambda stage, d, t: stages.append(stage),
        shape_prior=False,  # the refinement alone
    )
    labels, provenance = out.labels, out.provenance
    assert out.moved == 2 and provenance.kind is ProvenanceKind.PREDICTED
    assert out.notes == [] and out.cleaned == []  # an EchoNet-like clip, shown as it is
    assert out.uncertainty is None  # this stand-in network gives none
    assert provenance.version.endswith("+refined")
    area = (labels == 1).sum(axis=(1, 2))
    assert (area != (network == 1).sum(axis=(1, 2))).tolist() == [0, 1, 0, 0, 1, 0]
    assert stages[0] == "predicting" and stages[-1] == "refining the LV border"
    plain = run_prediction(frames, lambda: None, refine=False, shape_prior=False)
    np.testing.assert_array_equal(plain.labels, network)
    assert plain.moved == 0 and not plain.provenance.version.endswith("+refined")
    # the shape prior, last, keeps every frame's LV area (the network's here)
    shaped = run_prediction(frames, lambda: None, refine=False)
    assert shaped.provenance.version.endswith("+shape")
    area = (shaped.labels == 1).sum(axis=(1, 2))
    np.testing.assert_allclose(area, (network == 1).sum(axis=(1, 2)), rtol=0.02)


def test_a_prediction_on_a_clip_without_labels_is_drawn_within_the_axis(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    sequence = make_sequence(16, 32)
    predicted = sequence.labels.copy()
    for data, kwargs, kind in sequence_layer_data(sequence.copy(labels=None), name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: widget.binding is not None, timeout=2000)
    assert not widget.session.labels.any()
    from echo_napari.sequence import FrameProvenance

    widget.session.set_second_source(predicted, FrameProvenance(ProvenanceKind.PREDICTED))
    top = widget.curve.plot.viewRange()[1][1]
    highest = float(widget.session.second_source.areas[:, 1:].max())
    assert highest > 0 and highest <= top <= 1.2 * highest
