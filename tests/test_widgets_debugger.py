"""Registration debugger dock: Jacobian/folding layers, vectors, grid, plots, cancel."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.widgets.debugger_dock import DebuggerDock

pytestmark = pytest.mark.gui

T, SIZE = 6, 32


def folding_field(h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """A smooth field with a fold: dx = -2.5·(x − 12) inside columns 12..19 of rows 8..23."""
    u = np.zeros((2, h, w), np.float32)
    ramp = -2.5 * np.arange(8, dtype=np.float32)
    u[1, 8:24, 12:20] = ramp
    u[1, 8:24, 20:] = ramp[-1]
    return u


def det_independent(u: np.ndarray) -> np.ndarray:
    """det(I + ∇u) with numpy's gradient (central, one-sided at the borders)."""
    duy_dy, duy_dx = np.gradient(u[0].astype(np.float64))
    dux_dy, dux_dx = np.gradient(u[1].astype(np.float64))
    return (1 + duy_dy) * (1 + dux_dx) - duy_dx * dux_dy


class FoldingBackend:
    """Returns the folding field for frames 1, 2, … scaled by 0, 1, 0.5, … (per pair)."""

    name = "folding"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def register_pairs(self, fixed, moving, progress=None):
        time.sleep(self.delay * len(fixed))
        return np.stack([folding_field() for _ in range(len(fixed))])


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    sequence = make_sequence(n_frames=T, size=SIZE)
    viewer.add_image(sequence.frames_array(), name="echo")
    viewer.add_labels(sequence.labels, name="echo labels")
    widget = DebuggerDock(viewer)
    viewer.window.add_dock_widget(widget, name="Registration debugger")
    assert widget.wait_until_ready(60)  # the registration core imports in the background
    widget.backend_factory = lambda key: FoldingBackend()
    return viewer, widget


def _wait(qtbot, widget, timeout=20000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_folding_overlay_marks_exactly_the_folded_pixels(dock, qtbot):
    viewer, widget = dock
    u = folding_field()
    expected = det_independent(u) <= 0
    assert 0 < expected.sum() < expected.size // 4
    widget.compute_button.click()
    _wait(qtbot, widget)
    run = widget.runs["A"]
    folding = run.folding.data
    assert folding.shape == (T, SIZE, SIZE)
    assert not folding[0].any()  # frame 0: identity (no earlier frame)
    for t in range(1, T):
        np.testing.assert_array_equal(folding[t].astype(bool), expected)
    np.testing.assert_allclose(run.det.data[2], det_independent(u), atol=1e-5)
    series = widget.plots.series["A"]
    np.testing.assert_allclose(series.folding[1:], 100 * expected.mean())
    assert series.folding[0] == 0
    np.testing.assert_allclose(widget.plots.curve_data("A", "folding"), series.folding)
    # the box plot numbers are the det quartiles of each frame
    q1, med, q3 = np.percentile(det_independent(u), [25, 50, 75])
    np.testing.assert_allclose(series.box[3, 1:4], [q1, med, q3], atol=1e-5)
    # the vectors and the deformed grid are the current frame's, and follow the time slider:
    # one vector per subsampled pixel, carrying the field
    viewer.dims.set_current_step(0, 3)
    vectors = run.vectors.data
    assert vectors.shape == (int(np.ceil(SIZE / 6)) ** 2, 2, 3)
    assert np.all(vectors[:, 0, 0] == 3)
    assert np.isclose(vectors[:, 1, 2].min(), u[1, ::6, ::6].min())
    assert len(run.grid.data) == 2 * int(np.ceil(SIZE / 6))
    assert np.all(run.grid.data[0][:, 0] == 3)
    # the plots' cursor follows the slider, and a plot click moves the slider
    assert widget.plots.cursors[0].value() == 3
    viewer.dims.set_current_step(0, 0)  # frame 0: the identity, vectors of length 0
    assert np.all(run.vectors.data[:, 0, 0] == 0) and not run.vectors.data[:, 1].any()
    widget.plots.frame_requested.emit(4)
    assert widget.current_frame() == 4
    assert widget.compute_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_log_scale_two_backends_and_propagated_class(dock, qtbot):
    viewer, widget = dock
    widget.log_check.setChecked(True)
    widget.backend_b.setCurrentIndex(1)  # a second backend: compared side by side
    widget.mode_combo.setCurrentIndex(1)  # keyframe → t
    widget.keyframe_spin.setValue(0)
    widget.labels_combo.setCurrentText("echo labels")
    widget.class_combo.setCurrentIndex(1)  # LV cavity
    widget.compute_button.click()
    _wait(qtbot, widget)
    assert set(widget.runs) == {"A", "B"}
    run = widget.runs["B"]
    assert run.det.name.endswith("log det J")
    u = folding_field()
    det = det_independent(u)
    ok = det > np.exp(-1)
    np.testing.assert_allclose(run.det.data[1][ok], np.log(det[ok]), atol=1e-5)
    assert np.all(run.det.data[1][det <= 0] == -1.0)
    assert not run.folding.data[0].any()  # the keyframe itself: identity
    assert run.propagated is not None and run.propagated.data[1].any()
    np.testing.assert_array_equal(
        run.propagated.data[0], viewer.layers["echo labels"].data[0] == 1
    )


def test_cancel_keeps_the_shown_chunks_and_reenables(dock, qtbot):
    viewer, widget = dock
    widget.backend_factory = lambda key: FoldingBackend(delay=0.15)
    widget.compute_button.click()
    qtbot.waitUntil(lambda: widget._frames_done > 0, timeout=10000)
    widget.cancel_button.click()
    _wait(qtbot, widget)
    assert widget._frames_done < T
    assert "Cancelled" in widget.status_label.text()
    assert widget.compute_button.isEnabled()
    # computing again replaces the layers instead of piling them up
    widget.backend_factory = lambda key: FoldingBackend()
    widget.compute_button.click()
    _wait(qtbot, widget)
    assert sum(ly.name.startswith("dbg A") for ly in viewer.layers) == 5


def test_layers_are_added_one_per_event_loop_turn(dock, qtbot):
    """napari takes ~60 ms to add a layer: Compute adds the run's layers one at a time, and
    chunks that arrive before a layer is added are in it once it is."""
    viewer, widget = dock
    widget.compute_button.click()
    assert sum(ly.name.startswith("dbg A") for ly in viewer.layers) < 5
    _wait(qtbot, widget)
    run = widget.runs["A"]
    assert run.complete and sum(ly.name.startswith("dbg A") for ly in viewer.layers) == 5
    np.testing.assert_allclose(run.det.data[2], det_independent(folding_field()), atol=1e-5)


class ShiftBackend:
    """A constant shift of 2 pixels along x, at the size of the frames it is given."""

    name = "shift"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def register_pairs(self, fixed, moving, progress=None):
        self.sizes.append(tuple(fixed.shape[1:]))
        u = np.zeros((len(fixed), 2, *fixed.shape[1:]), np.float32)
        u[:, 1] = 2.0
        return u


def test_large_frames_are_registered_and_shown_on_the_working_grid(make_napari_viewer, qtbot):
    """Frames longer than 320 pixels: registered on the 320-pixel grid as Propagate does,
    the layers on that grid overlay the image (scaled), the keyframe's class is carried
    there."""
    from echo_napari.registration.working_grid import labels_on_grid

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    frames = rng.random((3, 400, 330)).astype(np.float32)
    labels = np.zeros(frames.shape, np.uint8)
    labels[:, 100:300, 80:250] = 1
    image = viewer.add_image(frames, name="echo", scale=(1.0, 0.5, 0.5))
    viewer.add_labels(labels, name="echo labels", scale=(1.0, 0.5, 0.5))
    widget = DebuggerDock(viewer)
    viewer.window.add_dock_widget(widget, name="Registration debugger")
    assert widget.wait_until_ready(60)
    backend = ShiftBackend()
    widget.backend_factory = lambda key: backend
    widget.mode_combo.setCurrentIndex(1)  # keyframe → t
    widget.labels_combo.setCurrentText("echo labels")
    widget.class_combo.setCurrentIndex(1)  # LV cavity
    widget.compute_button.click()
    _wait(qtbot, widget)
    assert backend.sizes and all(max(size) <= 320 for size in backend.sizes)
    run = widget.runs["A"]
    assert run.det.data.shape == (3, 320, 264)
    np.testing.assert_allclose(run.det.scale[1:], [0.5 * 399 / 319, 0.5 * 329 / 263])
    np.testing.assert_allclose(run.det.extent.world, image.extent.world, atol=1e-6)
    np.testing.assert_allclose(run.det.data[1:], 1.0, atol=1e-5)  # a shift: no area change
    assert "320 × 264" in widget.status_label.text() or "264 × 320" in widget.status_label.text()
    viewer.dims.set_current_step(0, 1)
    np.testing.assert_allclose(run.vectors.data[:, 1, 2], 2.0)
    on_grid = labels_on_grid(labels[0], (320, 264)) == 1
    assert run.propagated.data.shape == (3, 320, 264)
    np.testing.assert_array_equal(run.propagated.data[0], on_grid)
    moved = np.zeros_like(on_grid)
    moved[:, :-2] = on_grid[:, 2:]  # pulled from 2 pixels further along x
    assert (run.propagated.data[1] != moved).mean() < 0.01


def test_computing_again_while_the_canvas_paints(make_napari_viewer, qtbot):
    """The last run's layers are removed and the next run's added while the canvas paints
    between chunks (on Mesa's software OpenGL napari crashed when a paint came between
    removing layers and adding the next one)."""
    viewer = make_napari_viewer(show=True)
    sequence = make_sequence(n_frames=T, size=SIZE)
    viewer.add_image(sequence.frames_array(), name="echo")
    widget = DebuggerDock(viewer)
    viewer.window.add_dock_widget(widget, name="Registration debugger")
    assert widget.wait_until_ready(60)
    widget.backend_factory = lambda key: FoldingBackend(delay=0.02)
    for _ in range(3):
        widget.compute_button.click()
        _wait(qtbot, widget)
        qtbot.wait(200)  # the canvas paints the run's layers
    assert sum(ly.name.startswith("dbg A") for ly in viewer.layers) == 5
    assert widget.runs["A"].done.all()


def test_labels_of_another_frame_size_are_refused_with_a_message(dock, qtbot):
    viewer, widget = dock
    viewer.add_labels(np.ones((T, SIZE + 8, SIZE), np.uint8), name="other labels")
    widget.mode_combo.setCurrentIndex(1)  # keyframe → t
    widget.labels_combo.setCurrentText("other labels")
    widget.class_combo.setCurrentIndex(1)  # LV cavity
    widget.compute_button.click()
    assert widget.worker is None and not widget.runs


def test_computing_again_reuses_the_layers_and_keeps_the_users_choices(dock, qtbot):
    viewer, widget = dock
    widget.compute_button.click()
    _wait(qtbot, widget)
    first = widget.runs["A"]
    ids = [id(ly) for ly in first.layers()]
    first.det.visible = False  # the user's choices on the layers
    first.grid.opacity = 0.3
    widget.log_check.setChecked(True)
    widget.compute_button.click()
    _wait(qtbot, widget)
    run = widget.runs["A"]
    assert run is not first and [id(ly) for ly in run.layers()] == ids
    assert not run.det.visible and run.grid.opacity == pytest.approx(0.3)
    assert run.det.name.endswith("log det J") and tuple(run.det.contrast_limits) == (-1.0, 1.0)
    det = det_independent(folding_field())
    ok = det > np.exp(-1)
    np.testing.assert_allclose(run.det.data[1][ok], np.log(det[ok]), atol=1e-5)
    assert sum(ly.name.startswith("dbg A") for ly in viewer.layers) == 5
    # another slot (backend B) or a propagated class: the last run's layers are replaced
    widget.backend_b.setCurrentIndex(1)
    widget.compute_button.click()
    _wait(qtbot, widget)
    assert id(widget.runs["A"].det) not in ids
    assert sum(ly.name.startswith("dbg A") for ly in viewer.layers) == 5
    assert sum(ly.name.startswith("dbg B") for ly in viewer.layers) == 5
