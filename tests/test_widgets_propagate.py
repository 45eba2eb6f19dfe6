"""Propagate / Re-propagate in the review dock: background job, provenance, local updates."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.napari_hooks import sequence_layer_data
from echo_napari.sequence import ProvenanceKind

pytestmark = pytest.mark.gui


def _untrained_dirnet(name: str, device: str):
    import torch

    from echo_napari.registration.backends import DirnetBackend
    from echo_napari.registration.dirnet import DirNet, DirNetConfig

    torch.manual_seed(0)
    model = DirNet(DirNetConfig(size=32, grid_spacing=8, kernels=(4, 4, 4)))
    return DirnetBackend(model=model, device="cpu", threads=1, chunk=4)


class _SlowBackend:
    """Zero fields, 50 ms per pair: long enough to press Cancel in the middle."""

    name = "slow"

    def register_pairs(self, fixed, moving, progress=None):
        n, h, w = fixed.shape
        for i in range(n):
            time.sleep(0.05)
            if progress is not None:
                progress(i + 1, n)
        return np.zeros((n, 2, h, w), np.float32)


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    sequence = make_sequence(n_frames=16, size=32)
    for data, kwargs, kind in sequence_layer_data(sequence, name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    # only the keyframes are labelled, as after reading ED/ES tracings
    labels = viewer.layers["echo labels"].data
    labels[[t for t in range(16) if t not in (0, 8)]] = 0
    _, widget = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: widget.binding is not None, timeout=2000)
    widget.propagate_panel.backend_factory = _untrained_dirnet
    return viewer, widget


def _wait_done(qtbot, panel):
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)


def test_propagate_then_correct_then_repropagate_updates_only_the_neighbours(
    dock, qtbot, monkeypatch
):
    from echo_napari import review_session
    from echo_napari.metrics import class_areas_mm2

    viewer, widget = dock
    panel = widget.propagate_panel
    session = widget.session
    panel.propagate_button.click()
    _wait_done(qtbot, panel)
    assert "propagation" in session.results, panel.status_label.text()
    kinds = [p.kind for p in session.sequence.provenance]
    assert all(kinds[t] is ProvenanceKind.PROPAGATED for t in range(16) if t not in (0, 8))
    assert session.areas[4, 1] > 0 and session.areas[12, 1] > 0  # labels reached every frame
    np.testing.assert_allclose(widget.curve.curve_data(1), session.areas[:, 1])

    before = session.labels.copy()
    layer = viewer.layers["echo labels"]
    viewer.dims.set_current_step(0, 4)
    layer.brush_size = 9
    layer.paint((4, 4, 4), 3)  # a correction on frame 4 becomes a keyframe
    assert 4 in session.sequence.keyframes
    assert panel.pending_changes == {4}
    assert panel.repropagate_button.isEnabled()
    counted_here = []  # the written frames' areas come from the worker (the painted
    # frame's own, one frame, are counted when the brush stroke ends)
    monkeypatch.setattr(
        review_session,
        "class_areas_mm2",
        lambda labels, spacing: (
            (counted_here.append(len(labels)) if labels.ndim == 3 and len(labels) > 1 else None)
            or class_areas_mm2(labels, spacing)
        ),
    )
    panel.repropagate_button.click()
    _wait_done(qtbot, panel)
    assert counted_here == []
    np.testing.assert_array_equal(
        session.areas, class_areas_mm2(session.labels, session.sequence.spacing)
    )
    assert session.sequence.spacing is not None

    after = session.labels
    changed = {t for t in range(16) if not np.array_equal(after[t], before[t])}
    assert {3, 4, 5} <= changed  # the corrected keyframe and its neighbours
    assert not changed & set(range(9, 16))  # beyond the next keyframe: untouched
    assert session.sequence.provenance[4].kind is ProvenanceKind.MANUAL
    assert session.sequence.provenance[3].kind is ProvenanceKind.PROPAGATED
    assert panel.pending_changes == set()
    # The anatomical checks of the written frames came from the worker: same as recomputed.
    session.suspicion_scores()
    expected = frame_plausibility(session.labels).score
    np.testing.assert_allclose(session.plausibility.score, expected)


def test_cancel_stops_within_a_second_and_changes_nothing(dock, qtbot):
    viewer, widget = dock
    panel = widget.propagate_panel
    panel.backend_factory = lambda name, device: _SlowBackend()
    before = widget.session.labels.copy()
    panel.propagate_button.click()
    qtbot.waitUntil(lambda: "registering" in panel.status_label.text(), timeout=5000)
    start = time.perf_counter()
    panel.cancel_button.click()
    _wait_done(qtbot, panel)
    assert time.perf_counter() - start < 1.0
    assert "Cancelled" in panel.status_label.text()
    np.testing.assert_array_equal(widget.session.labels, before)
    assert "propagation" not in widget.session.results


def test_propagate_without_labels_is_a_notification_not_a_crash(dock, qtbot):
    viewer, widget = dock
    viewer.layers["echo labels"].data[:] = 0
    widget.session.sequence.keyframes.clear()
    widget.propagate_panel.propagate_button.click()
    assert widget.propagate_panel.worker is None
    assert "propagation" not in widget.session.results


def test_result_is_discarded_when_the_layers_change_during_the_job(dock, qtbot):
    viewer, widget = dock
    panel = widget.propagate_panel
    panel.backend_factory = lambda name, device: _SlowBackend()
    panel.propagate_button.click()
    viewer.layers.remove("echo labels")  # the dock rebinds to a new, empty labels layer
    qtbot.waitUntil(lambda: widget.binding is not None, timeout=2000)
    _wait_done(qtbot, panel)
    assert "discarded" in panel.status_label.text()
    assert not widget.session.labels.any()


def test_repair_redraws_implausible_frames_and_keeps_keyframes(dock, qtbot):
    viewer, widget = dock
    panel = widget.propagate_panel
    session = widget.session
    panel.propagate_button.click()
    _wait_done(qtbot, panel)
    good = session.labels[5].copy()
    session.labels[5] = np.flip(good, axis=0)  # a frame with the LA above the LV
    session.labels[8] = np.flip(session.labels[8], axis=0)  # a keyframe: the reviewer's
    session.refresh_areas([5, 8])
    keyframe = session.labels[8].copy()
    assert frame_plausibility(session.labels).score[5] == 1.0
    panel.repair_button.click()
    _wait_done(qtbot, panel)
    assert panel.status_label.text().startswith("Repaired 1 frames"), panel.status_label.text()
    assert frame_plausibility(session.labels).score[5] < 0.5
    assert (session.labels[5] == good).mean() > 0.9
    assert session.sequence.provenance[5].kind is ProvenanceKind.PROPAGATED
    np.testing.assert_array_equal(session.labels[8], keyframe)
    np.testing.assert_array_equal(viewer.layers["echo labels"].data[5], session.labels[5])
