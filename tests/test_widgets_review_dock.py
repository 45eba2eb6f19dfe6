"""The review dock through the manifest: layers, live area curve, slider link, keyframes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.napari_hooks import sequence_layer_data
from echo_napari.sequence import ProvenanceKind

pytestmark = pytest.mark.gui


def _add_sequence(viewer, sequence, name="echo"):
    for data, kwargs, kind in sequence_layer_data(sequence, name=name):
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    return widget


@pytest.fixture
def docked(make_napari_viewer, qtbot, echo_sequence):
    viewer = make_napari_viewer()
    _add_sequence(viewer, echo_sequence)
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=2000)
    return viewer, dock


def test_dock_binds_the_read_layers(docked, echo_sequence):
    viewer, dock = docked
    assert dock.image_layer == viewer.layers["echo"]
    assert dock.labels_layer == viewer.layers["echo labels"]
    # the session paints into the very array the layer shows
    assert dock.session.labels is viewer.layers["echo labels"].data
    np.testing.assert_allclose(dock.curve.curve_data(1), dock.session.areas[:, 1])
    assert dock.session.sequence.ed_index == 0 and dock.session.sequence.es_index == 8
    assert "reference EF 58.0 %" in dock.info_label.text()
    assert "0.4×0.3 mm/px" in dock.info_label.text()


def test_painting_a_frame_updates_only_that_frame_and_makes_it_a_manual_keyframe(docked, qtbot):
    viewer, dock = docked
    layer = viewer.layers["echo labels"]
    viewer.dims.set_current_step(0, 5)
    before = {c: dock.curve.curve_data(c).copy() for c in (1, 2, 3)}
    layer.brush_size = 6
    layer.paint((5, 2, 2), 3)  # a new LA blob in a corner of frame 5
    after = {c: dock.curve.curve_data(c) for c in (1, 2, 3)}
    changed = np.flatnonzero(after[3] != before[3])
    assert changed.tolist() == [5]
    assert after[3][5] > before[3][5]
    np.testing.assert_array_equal(after[1], before[1])
    assert dock.session.sequence.provenance[5].kind is ProvenanceKind.MANUAL
    assert 5 in dock.session.sequence.keyframes
    assert "5" in dock.keyframes_label.text()
    # the review state is mirrored into the layer metadata once edits pause
    qtbot.waitUntil(
        lambda: layer.metadata["echo_sequence"]["provenance"][5]["kind"] == "manual",
        timeout=2000,
    )
    assert 5 in layer.metadata["echo_sequence"]["keyframes"]


def test_undo_restores_the_curve(docked):
    viewer, dock = docked
    layer = viewer.layers["echo labels"]
    viewer.dims.set_current_step(0, 3)
    before = dock.curve.curve_data(3).copy()
    layer.paint((3, 2, 2), 3)
    assert dock.curve.curve_data(3)[3] > before[3]
    layer.undo()
    np.testing.assert_array_equal(dock.curve.curve_data(3), before)


def test_undo_of_every_frame_updates_the_summary_after_the_repaint(docked, qtbot):
    viewer, dock = docked
    labels = dock.session.labels
    labels[labels == 1] = 0  # the LV erased on every frame
    dock.session.refresh_areas(range(labels.shape[0]))
    dock.link.commit("edit", list(range(labels.shape[0])))
    dock._update_info()
    erased = dock.info_label.text()
    dock.link.undo()
    # the whole-clip summary (checks of every frame, EF) waits for the debounce timer
    assert dock._summary_timer.isActive() and dock.info_label.text() == erased
    qtbot.waitUntil(lambda: dock.info_label.text() != erased, timeout=2000)


def test_time_slider_and_plot_cursor_stay_linked(docked, qtbot):
    viewer, dock = docked
    viewer.dims.set_current_step(0, 11)
    assert dock.curve.current_frame == 11
    assert int(round(dock.curve.cursor.value())) == 11
    # a click on the plot at frame 3 moves napari's slider
    from qtpy.QtCore import QPointF, Qt

    plot = dock.curve.plot_widget
    plot.resize(400, 200)
    plot.show()
    qtbot.waitExposed(plot)
    vb = dock.curve.plot.getViewBox()
    scene_pos = vb.mapViewToScene(QPointF(3.0, float(dock.session.areas[:, 1].max()) / 2))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == 3, timeout=2000)
    assert dock.curve.current_frame == 3
    # dragging the cursor line moves the slider too
    dock.curve.cursor.setValue(6.8)
    assert viewer.dims.current_step[0] == 7


def test_keyframe_shortcuts(docked):
    viewer, dock = docked  # keyframes {0, 8}
    viewer.dims.set_current_step(0, 2)
    dock.go_to_next_keyframe()
    assert viewer.dims.current_step[0] == 8
    dock.go_to_previous_keyframe()
    assert viewer.dims.current_step[0] == 0
    viewer.dims.set_current_step(0, 4)
    shortcut = {str(k): f for k, f in viewer.keymap.items()}
    shortcut["K"](viewer)
    assert 4 in dock.session.sequence.keyframes
    assert dock.toggle_key_button.text() == "Unmark keyframe"
    shortcut["K"](viewer)
    assert 4 not in dock.session.sequence.keyframes
    shortcut["Shift+Right"](viewer)
    assert viewer.dims.current_step[0] == 8


def test_set_es_here_overrides_the_file(docked):
    viewer, dock = docked
    viewer.dims.set_current_step(0, 9)
    dock.set_es_button.click()
    assert dock.session.sequence.es_index == 9
    assert dock.curve.es_line.value() == 9


def test_image_without_labels_gets_an_empty_labels_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    sequence = make_sequence(n_frames=6, size=32, spacing=None)
    sequence.labels = None
    _add_sequence(viewer, sequence, name="bare")
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=2000)
    layer = dock.labels_layer
    assert layer.data.shape == (6, 32, 32) and layer.data.dtype == np.uint8
    assert not layer.data.any()
    assert dock.session.area_unit == "px²"
    # the summary is written on the event loop's next turn (not part of opening the dock)
    qtbot.waitUntil(lambda: "spacing unknown" in dock.info_label.text(), timeout=2000)


def test_mismatched_labels_layer_is_refused_with_a_message(docked, qtbot):
    viewer, dock = docked
    viewer.layers["echo labels"].paint((6, 2, 2), 3)  # review state that must survive
    viewer.add_labels(np.zeros((3, 10, 10), dtype=np.uint8), name="wrong")
    dock.labels_combo.setCurrentText("wrong")
    assert dock.binding is None
    assert "has shape (3, 10, 10)" in dock.info_label.text()
    dock.labels_combo.setCurrentText("echo labels")
    assert dock.binding is not None and dock.binding.layer == viewer.layers["echo labels"]
    assert dock.session.sequence.provenance[6].kind is ProvenanceKind.MANUAL
    assert 6 in dock.session.sequence.keyframes


def test_replacing_the_labels_array_redraws_the_curve(docked):
    viewer, dock = docked
    layer = viewer.layers["echo labels"]
    new = np.zeros_like(layer.data)
    new[:, :4, :4] = 1
    layer.data = new
    assert dock.session.labels is layer.data
    np.testing.assert_allclose(dock.curve.curve_data(1), 16 * 0.4 * 0.3)


def test_without_an_image_layer_the_dock_says_what_to_do(make_napari_viewer):
    viewer = make_napari_viewer()
    dock = _dock(viewer)
    assert dock.binding is None and "Open an echo sequence" in dock.info_label.text()
    dock.go_to_next_keyframe()  # no sequence: nothing happens, no exception
    dock.toggle_keyframe_here()


def test_next_suspicious_frame_finds_a_one_frame_spike(docked, qtbot):
    viewer, dock = docked
    labels = viewer.layers["echo labels"].data
    labels[11][labels[11] == 1] = 0  # the LV vanishes on one frame only
    dock.session.refresh_areas(11)
    viewer.dims.set_current_step(0, 2)
    dock.go_to_next_suspicious()
    assert viewer.dims.current_step[0] == 11
    ranking = dock.session.suspicious_frames()
    dock.go_to_next_suspicious()  # pressed again: on down the ranking
    assert viewer.dims.current_step[0] == ranking[1]
    viewer.dims.set_current_step(0, ranking[2])  # the user moved on, then presses it
    dock.go_to_next_suspicious()
    assert viewer.dims.current_step[0] == 11  # from the top again
    dock.go_to_next_suspicious()
    assert viewer.dims.current_step[0] == ranking[1]
    viewer.dims.set_current_step(0, 11)
    # the strip is redrawn once the action's events are handled
    qtbot.waitUntil(lambda: int(np.argmax(dock.curve.suspicion_curve.getData()[1])) == 11)
    assert "LV cavity collapsed or missing" in dock.frame_label.text()
    dock._update_info()
    assert "shapes plausible on 93.8 % of labelled frames" in dock.info_label.text()


def test_a_predicted_frame_with_no_heart_says_so(docked):
    from echo_napari.sequence import FrameProvenance

    viewer, dock = docked
    shape = dock.session.sequence.frame_shape
    predicted = FrameProvenance(ProvenanceKind.PREDICTED, "seg", "v")
    dock.session.write_labels([5], np.zeros((1, *shape), np.uint8), predicted)
    viewer.dims.set_current_step(0, 5)
    dock._update_frame_label()
    assert "no heart found here" in dock.frame_label.text()
    viewer.dims.set_current_step(0, 4)
    dock._update_frame_label()
    assert "no heart found" not in dock.frame_label.text()


def test_detect_phases_and_ef_in_the_summary(docked, qtbot):
    viewer, dock = docked
    dock.session.set_phase("es", 3)
    dock.detect_phases_button.click()
    assert (dock.session.sequence.ed_index, dock.session.sequence.es_index) == (0, 8)
    assert "EF " in dock.info_label.text() and "(labels, Simpson)" in dock.info_label.text()
    assert "LV smoothness" in dock.info_label.text()


def test_curve_legend_fits_inside_the_plot(docked, qtbot):
    from echo_napari.metrics_plausibility import shape_features
    from echo_napari.sequence import FrameProvenance, ProvenanceKind

    viewer, dock = docked
    widget = dock.curve.plot_widget
    widget.setFixedSize(560, 110)  # its size in a docked 1500 x 900 window
    widget.resizeEvent(None)  # lay the hidden plot out at that size
    predicted = dock.session.labels.copy()
    prov = FrameProvenance(ProvenanceKind.PREDICTED, "seg", "seg_v3+refined")
    dock.session.set_second_source(predicted, prov, shape_features(predicted))
    qtbot.wait(50)
    legend = dock.curve.legend
    assert len(legend.items) == 4  # three classes and the dashed prediction
    plot_area = dock.curve.plot.getViewBox().sceneBoundingRect()
    box = legend.sceneBoundingRect()
    # every entry visible: stacked in one column the first was cut off at the top
    assert box.top() >= plot_area.top() - 1 and box.bottom() <= plot_area.bottom() + 1


def test_summary_shows_the_beat_ef_the_command_line_reports(make_napari_viewer, qtbot):
    from echo_napari.metrics_ef import ef_by_beats

    seq = make_sequence(n_frames=80, size=48)
    yy, xx = np.mgrid[:48, :48]
    dist = np.hypot(yy - 19.2, xx - 24.0)
    for t in range(80):  # four 20-frame beats
        radius = 6.0 + 4.0 * (0.5 + 0.5 * np.cos(2 * np.pi * t / 20))
        seq.labels[t][seq.labels[t] == 1] = 2
        seq.labels[t][dist <= radius] = 1
    expected = ef_by_beats(seq.labels, seq.spacing)
    viewer = make_napari_viewer()
    _add_sequence(viewer, seq)
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: "beats: EF" in dock.info_label.text(), timeout=5000)
    values = [ef for _, _, ef in expected.beats]
    shown = (
        f"beats: EF {expected.ef:.1f} % (mean of {len(expected.beats)} beats, "
        f"{min(values):.0f}–{max(values):.0f}, area-length)"
    )
    assert shown in dock.info_label.text() and len(expected.beats) >= 2
    # the LV erased on most frames: no beats to measure, the text goes (not a stale EF)
    labels = dock.session.labels
    labels[10:70][labels[10:70] == 1] = 2
    dock.session.refresh_areas(range(10, 70))
    qtbot.waitUntil(lambda: "beats:" not in dock.info_label.text(), timeout=5000)
    assert not dock.beat_ef.running


def test_beat_ef_text():
    from echo_napari.widgets.beat_ef import beat_ef_text, clip_for_beats

    labels = np.zeros((30, 32, 32), np.uint8)
    assert beat_ef_text(labels, None) == ""
    assert clip_for_beats(labels, None, np.zeros(30)) is None  # no LV anywhere
    assert clip_for_beats(labels[:20], None, np.ones(20)) is None  # under two beats
    assert clip_for_beats(labels, (0.3, 0.3), np.ones(30))[1] == (0.3, 0.3)


def test_job_tabs_arrive_after_their_cores_are_imported_in_the_background(
    make_napari_viewer, qtbot, echo_sequence
):
    viewer = make_napari_viewer()
    _add_sequence(viewer, echo_sequence)
    dock = _dock(viewer)
    tabs = dock.jobs_tabs
    names = [tabs.tabText(i) for i in range(tabs.count())]
    if not dock._job_panels_built:  # the import thread may already be done
        assert names == ["Session", "Propagate · Predict"] and not tabs.isTabEnabled(1)
    qtbot.waitUntil(lambda: dock._job_panels_built, timeout=30000)
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Session", "Propagate", "Predict"]
    assert dock.propagate_panel is tabs.widget(1) and dock.predict_panel is tabs.widget(2)
    assert all(tabs.isTabEnabled(i) for i in range(3))


def test_reading_a_job_panel_early_waits_for_it(make_napari_viewer, echo_sequence):
    viewer = make_napari_viewer()
    _add_sequence(viewer, echo_sequence)
    dock = _dock(viewer)
    panel = dock.predict_panel  # right away: built once the cores are imported
    assert panel is not None and dock._job_panels_built
    assert dock.jobs_tabs.tabText(dock.jobs_tabs.indexOf(panel)) == "Predict"


def test_a_missing_core_hides_its_tab(make_napari_viewer, qtbot, echo_sequence, monkeypatch):
    from echo_napari.widgets import job_cores

    monkeypatch.setitem(job_cores.CORE_MODULES, "predict", ("echo_napari.no_such_core",))
    viewer = make_napari_viewer()
    _add_sequence(viewer, echo_sequence)
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: dock._cores.wait(0), timeout=30000)
    assert not hasattr(dock, "predict_panel") and hasattr(dock, "propagate_panel")
    tabs = dock.jobs_tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Session", "Propagate"]
