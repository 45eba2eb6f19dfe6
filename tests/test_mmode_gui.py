"""M-mode dock: default line, strip + traces + diameter curve, cursor ↔ time slider."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.napari_hooks import sequence_layer_data

pytestmark = pytest.mark.gui


@pytest.fixture
def dock(make_napari_viewer):
    from echo_napari.widgets.mmode_dock import MModeDock

    viewer = make_napari_viewer()
    for data, kwargs, kind in sequence_layer_data(make_sequence(16, 48), name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = MModeDock(viewer)
    viewer.window.add_dock_widget(widget, name="M-mode")
    return viewer, widget


def test_default_line_gives_strip_traces_and_curve(dock, tmp_path):
    viewer, widget = dock
    assert widget.image_combo.currentText() == "echo"
    assert widget.labels_combo.currentText() == "echo labels"
    widget.use_default_line()
    assert "M-mode line" in viewer.layers
    strip = widget.strip
    assert strip is not None and strip.image.shape[1] == 16
    assert strip.depth_step_mm == pytest.approx(0.3)  # finer of (0.4, 0.3) mm
    times, lvid = widget.label_curve.getData()
    assert len(times) == 16 and np.all(np.isfinite(lvid))
    assert lvid[8] < lvid[0]  # the disc contracts towards ES
    _, upper = widget.label_traces[0].getData()
    assert np.all(np.isfinite(upper))
    rows = tmp_path.joinpath("x.csv")
    widget.export_csv(rows)
    assert len(rows.read_text().splitlines()) == 17


def test_moving_the_line_resamples_and_cursor_follows_slider(dock):
    viewer, widget = dock
    widget.use_default_line()
    layer = viewer.layers["M-mode line"]
    layer.data = [np.array([[19.0, 2.0], [19.0, 45.0]])]
    assert widget.strip.line.y0 == pytest.approx(19.0)
    assert widget.strip.image.shape[0] == int(43 * 0.3 / 0.3) + 1
    viewer.dims.set_current_step(0, 5)
    assert widget.cursors[0].value() == pytest.approx(5 * 0.02)
    widget.cursors[1].setValue(9 * 0.02)
    widget.cursors[1].sigDragged.emit(widget.cursors[1])
    assert viewer.dims.current_step[0] == 9


def test_bad_line_shows_message_not_crash(dock):
    viewer, widget = dock
    widget.use_default_line()
    viewer.layers["M-mode line"].data = [np.array([[10.0, 10.0], [10.0, 10.0]])]
    assert "too short" in widget.summary.text()


def test_segment_runs_in_a_worker_and_draws_network_curve(dock, qtbot):
    viewer, widget = dock
    widget.use_default_line()
    widget.segment_button.click()
    qtbot.waitUntil(lambda: widget.result is not None, timeout=30000)
    qtbot.waitUntil(lambda: widget.segment_button.isEnabled(), timeout=5000)
    times, lvid = widget.network_curve.getData()
    assert len(times) == 16
    assert widget.result.band.shape == widget.strip.image.shape
    assert "network" in widget.summary.text() or "no complete beat" in widget.summary.text()
