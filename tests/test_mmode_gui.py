"""M-mode dock: default line, strip + traces + diameter curve, cursor ↔ time slider."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.errors import EchoIOError
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
    assert widget.wait_until_ready(60)  # the M-mode core imports in the background
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


def _moved(paths, which, column, rows):
    """Copy of the two (row, column) paths with the vertex of path ``which`` nearest
    ``column`` moved by ``rows``; returns the paths and the vertex's column."""
    paths = [np.array(p, dtype=np.float64) for p in paths]
    k = int(np.argmin(np.abs(paths[which][:, 1] - column)))
    paths[which][k, 0] += rows
    return paths, int(round(paths[which][k, 1]))


def test_edit_traces_vertex_move_updates_band_curve_measurements_and_csv(dock, tmp_path):
    from echo_napari.mmode.measure import measure_traces
    from echo_napari.mmode.traces import paths_to_traces, traces_to_band
    from echo_napari.widgets.mmode_edit import STRIP_LAYER, TRACES_LAYER

    viewer, widget = dock
    widget.use_default_line()
    before = widget.measurements.lvid_mm.copy()
    widget.edit_button.click()
    assert widget.edit_button.isChecked()
    layer = viewer.layers[TRACES_LAYER]
    assert len(layer.data) == 2 and list(layer.shape_type) == ["path", "path"]
    assert viewer.layers[STRIP_LAYER].visible and not viewer.layers["echo"].visible
    strip = widget.strip
    # Unedited traces reproduce the labels' diameters (path simplification ≤ 0.5 row).
    step = strip.depth_step_mm
    np.testing.assert_allclose(widget.measurements.lvid_mm, before, atol=2 * 0.5 * step)

    paths, column = _moved(layer.data, 1, 6, 4.0)
    widget.editor.set_paths(paths)
    upper, lower = paths_to_traces(paths, strip.image.shape[1])
    expected = measure_traces(upper, lower, step, strip.time_step_s)
    np.testing.assert_allclose(widget.measurements.lvid_mm, expected.lvid_mm)
    assert widget.measurements.lvid_mm[column] > before[column] + 3.0 * step
    np.testing.assert_array_equal(
        widget.edited_band, traces_to_band(upper, lower, len(strip.image))
    )
    _, curve = widget.edited_curve.getData()
    np.testing.assert_allclose(curve, expected.lvid_mm)
    assert widget.summary.text().startswith("edited traces")

    rows = widget.export_csv(tmp_path / "edited.csv").read_text().splitlines()
    assert float(rows[1 + column].split(",")[1]) == pytest.approx(
        expected.lvid_mm[column], abs=1e-3
    )

    widget.edit_button.click()  # leave editing: layers back, edits still in effect
    assert TRACES_LAYER not in viewer.layers and STRIP_LAYER not in viewer.layers
    assert viewer.layers["echo"].visible and viewer.layers["M-mode line"].visible
    np.testing.assert_allclose(widget.measurements.lvid_mm, expected.lvid_mm)


def test_broken_trace_edit_shows_message(dock):
    from echo_napari.widgets.mmode_edit import TRACES_LAYER

    viewer, widget = dock
    widget.use_default_line()
    widget.start_editing()
    viewer.layers[TRACES_LAYER].data = [viewer.layers[TRACES_LAYER].data[0]]
    assert "traces not usable" in widget.summary.text()


def _strip_image(depth=80, n=120):
    """Bright walls around a dark band whose width beats (period 40 columns)."""
    rows = np.arange(depth)[:, None]
    t = np.arange(n)[None, :]
    upper = 20 + 5 * np.sin(2 * np.pi * t / 40)
    lower = 60 - 5 * np.sin(2 * np.pi * t / 40)
    band = (rows > upper) & (rows < lower)
    wall = ((rows > upper - 8) & (rows <= upper)) | ((rows >= lower) & (rows < lower + 8))
    return np.where(wall, 0.75, np.where(band, 0.05, 0.25)).astype(np.float32)


def test_real_png_mmode_is_shown_directly_uncalibrated(dock, tmp_path, qtbot):
    from echo_napari.mmode.writers import write_strip_png
    from echo_napari.widgets.mmode_edit import TRACES_LAYER

    viewer, widget = dock
    image = _strip_image()
    band = np.zeros(image.shape, np.uint8)
    path = write_strip_png(tmp_path / "real.png", image, band)[0]
    layer = widget.open_mmode(path)
    assert widget.image_combo.currentText() == layer.name and widget.strip_mode()
    assert not widget.default_button.isEnabled()
    assert widget.strip.line is None and widget.strip.image.shape == image.shape
    np.testing.assert_allclose(widget.strip.image, image, atol=1 / 255)
    assert "UNCALIBRATED depth" in widget.summary.text()
    assert "UNCALIBRATED" in widget.summary.text() and "time" in widget.summary.text()

    widget.segment_button.click()
    qtbot.waitUntil(lambda: widget.result is not None, timeout=30000)
    qtbot.waitUntil(lambda: widget.segment_button.isEnabled(), timeout=5000)
    assert widget.result.band.shape == image.shape
    assert widget.measurements.units == "px"
    assert "UNCALIBRATED" in widget.summary.text()
    with pytest.raises(EchoIOError, match="calibration"):
        widget.export_csv(tmp_path / "x.csv")

    widget.start_editing()  # edits on the real strip's own layer
    traces = viewer.layers[TRACES_LAYER]
    np.testing.assert_allclose(traces.scale, layer.scale)
    paths, column = _moved(traces.data, 0, 60, -3.0)
    before = widget.measurements.lvid_mm[column]
    widget.editor.set_paths(paths)
    assert widget.measurements.lvid_mm[column] > before
    widget.stop_editing()
    assert layer.name in viewer.layers and layer.visible


def _add_calibrated_strip(viewer, widget, name: str) -> np.ndarray:
    """A 0.5 mm × 10 ms strip added as a layer and chosen in the dock; returns its image."""
    from echo_napari.mmode.layers import mmode_layer_data
    from echo_napari.mmode.sampling import MModeImage

    image = _strip_image()
    strip = MModeImage(image=image, depth_step_mm=0.5, time_step_s=0.01, metadata={})
    data, kwargs, _ = mmode_layer_data(strip, name)[0]
    viewer.add_image(data, **kwargs)
    widget.image_combo.setCurrentText(name)
    return image


def test_calibrated_mmode_layer_measures_in_mm(dock):
    viewer, widget = dock
    _add_calibrated_strip(viewer, widget, "dicom strip")
    assert widget.strip.depth_step_mm == 0.5 and widget.strip.time_step_s == 0.01
    assert "UNCALIBRATED" not in widget.summary.text()


def test_fine_tune_on_edited_traces_saves_a_user_version_and_uses_it(
    dock, qtbot, tmp_path, monkeypatch
):
    from echo_napari.mmode.traces import band_to_traces, traces_to_paths
    from echo_napari.models.registry import find_model, list_models

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    viewer, widget = dock
    image = _add_calibrated_strip(viewer, widget, "strip")
    widget.segment_button.click()
    qtbot.waitUntil(lambda: widget.result is not None, timeout=30000)
    qtbot.waitUntil(lambda: widget.segment_button.isEnabled(), timeout=5000)
    assert not widget.finetune.button.isEnabled()  # nothing edited yet
    first_result = widget.result
    widget.start_editing()
    # The user corrects the network's traces onto the walls' inner edges.
    rows = np.arange(image.shape[0])[:, None]
    t = np.arange(image.shape[1])
    upper = 20 + 5 * np.sin(2 * np.pi * t / 40)
    truth = (rows > upper) & (rows < 60 - 5 * np.sin(2 * np.pi * t / 40))
    widget.editor.set_paths(traces_to_paths(*band_to_traces(truth), 0.5))
    assert widget.finetune.button.isEnabled()
    edited = widget.edited_band.astype(bool)
    bundled = {m.path: m.path.read_bytes() for m in list_models("mmode") if m.bundled}

    widget.finetune.steps.setValue(6)
    widget.finetune.button.click()
    assert widget.finetune.cancel_button.isEnabled()
    assert not widget.finetune.button.isEnabled()
    qtbot.waitUntil(lambda: widget.model_path is not None, timeout=60000)
    qtbot.waitUntil(lambda: widget.result is not first_result, timeout=30000)
    qtbot.waitUntil(lambda: widget.segment_button.isEnabled(), timeout=5000)

    new = find_model("mmode")
    assert not new.bundled and new.path.exists() and new.path.parent == tmp_path / "user/models"
    assert widget.model_path == new.path and new.card()["fine_tuned"]
    assert all(p.read_bytes() == data for p, data in bundled.items())  # never overwritten
    tuned = new.card()["fine_tuned_on"]
    assert tuned["steps"] == 6 and tuned["dice_after"] > tuned["dice_before"] > 0.5
    # The dock re-segmented with the new version: its band is the one measured "after".
    band = widget.result.band.astype(bool)
    dice = 2 * (band & edited).sum() / (band.sum() + edited.sum())
    assert dice == pytest.approx(tuned["dice_after"], abs=1e-9)
    assert widget.finetune.progress.value() == 6
    assert f"before {tuned['dice_before']:.3f} → after {tuned['dice_after']:.3f}" in (
        widget.summary.text()
    )


def test_fine_tuning_that_fits_the_traces_worse_is_not_kept(dock, qtbot, tmp_path, monkeypatch):
    from echo_napari.models.registry import list_models
    from echo_napari.widgets import mmode_finetune

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    measured = iter([0.90, 0.80])  # before, after: the fine-tuned band fits worse
    monkeypatch.setattr(mmode_finetune, "network_band_dice", lambda *a: next(measured))
    _, widget = dock
    widget.use_default_line()
    widget.start_editing()
    widget.finetune.steps.setValue(2)
    widget.finetune.button.click()
    qtbot.waitUntil(lambda: widget.finetune.worker is None, timeout=60000)
    qtbot.waitUntil(lambda: "did not help" in widget.summary.text(), timeout=5000)
    assert "before 0.900 → after 0.800): nothing saved, still using mmode_v1" in (
        widget.summary.text()
    )
    assert widget.model_path is None  # the dock keeps the network it had
    assert not [m for m in list_models("mmode") if not m.bundled]  # nor is it the default


def test_fine_tune_cancel_saves_nothing(dock, qtbot, tmp_path, monkeypatch):
    from echo_napari.models.registry import list_models

    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    _, widget = dock
    widget.use_default_line()
    widget.start_editing()
    widget.finetune.steps.setValue(1000)
    widget.finetune.button.click()
    qtbot.waitUntil(lambda: widget.finetune.progress.value() >= 1, timeout=60000)
    widget.finetune.cancel_button.click()
    qtbot.waitUntil(lambda: widget.finetune.worker is None, timeout=30000)
    assert widget.model_path is None
    assert not [m for m in list_models("mmode") if not m.bundled]
    assert widget.finetune.button.isEnabled()


def test_a_lazy_clip_is_decoded_in_the_background_then_sampled(make_napari_viewer, qtbot):
    import threading

    from echo_napari.io.frame_source import FrameSource, lazy_frames
    from echo_napari.widgets.mmode_dock import MModeDock

    seq = make_sequence(16, 48)
    frames = np.asarray(seq.frames, dtype=np.float32)
    gui_thread, reads = threading.get_ident(), []

    class Recording(FrameSource):
        path = "recording"
        shape = frames.shape

        def frame(self, t: int) -> np.ndarray:
            reads.append(threading.get_ident())
            return frames[t]

    viewer = make_napari_viewer()
    for data, kwargs, kind in sequence_layer_data(seq, name="echo"):
        if kind == "image":
            data = lazy_frames(Recording())
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = MModeDock(viewer)
    viewer.window.add_dock_widget(widget, name="M-mode")
    assert widget.wait_until_ready(60)
    reads.clear()
    widget.use_default_line()
    assert widget.strip is None and "decoding" in widget.summary.text()
    qtbot.waitUntil(lambda: widget.strip is not None, timeout=10000)
    # every frame decoded once, none of them on the GUI thread (napari's own display of
    # the current frame aside)
    assert len([r for r in reads if r != gui_thread]) == frames.shape[0]
    assert reads.count(gui_thread) <= 1
    from echo_napari.mmode.sampling import sample_mmode

    eager = sample_mmode(frames, widget.strip.line, seq.spacing, seq.frame_time_ms, seq.labels)
    np.testing.assert_allclose(widget.strip.image, eager.image, atol=1e-6)
    times, lvid = widget.label_curve.getData()
    assert len(times) == 16 and np.all(np.isfinite(lvid))
