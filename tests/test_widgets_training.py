"""Training dock: cancelled fine-tune leaves no version, a tiny DIR run adds one, and
selecting / rolling back segmentation versions."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_sequence
from test_segmentation import tiny_model

from echo_napari.models import registry
from echo_napari.segmentation import list_versions, selected_version
from echo_napari.segmentation.weights import save_model
from echo_napari.widgets.layer_binding import FACTS_KEY
from echo_napari.widgets.training_dock import TrainingDock

pytestmark = pytest.mark.gui


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_NAPARI_DATA_DIR", str(tmp_path / "user"))
    return tmp_path / "user" / "models"


@pytest.fixture
def dock(make_napari_viewer, qtbot, user_dir):
    from echo_napari.sequence_facts import sequence_facts

    viewer = make_napari_viewer()
    sequence = make_sequence(n_frames=16, size=32)
    viewer.add_image(sequence.frames_array(), name="echo")
    labels = viewer.add_labels(sequence.labels, name="echo labels")
    labels.metadata[FACTS_KEY] = sequence_facts(sequence)  # keyframes 0 and 8
    widget = TrainingDock(viewer)
    viewer.window.add_dock_widget(widget, name="Training")
    assert widget.wait_until_ready(60)  # torch and the cores import in the background
    return viewer, widget


def _files(directory):
    return sorted(p.name for p in directory.glob("*")) if directory.exists() else []


def test_cancelled_fine_tune_writes_nothing_and_reenables(dock, qtbot, user_dir):
    _, widget = dock
    panel = widget.seg_panel
    widget.seg_base = tiny_model()
    widget.seg_steps.setValue(5000)
    before = _files(user_dir)
    panel.start_button.click()
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: len(panel.loss_history()[0]) >= 3, timeout=60000)
    clicked = time.perf_counter()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    print(f"fine-tune cancel latency {time.perf_counter() - clicked:.3f} s")
    assert time.perf_counter() - clicked < 2.0
    steps, losses = panel.loss_history()
    assert 3 <= steps[-1] < 5000 and np.all(np.isfinite(losses))
    assert panel.result is None
    assert "no version written" in panel.status_label.text()
    assert _files(user_dir) == before
    assert [v.id for v in list_versions()] == ["seg_v1", "seg_v2", "seg_v3", "seg_v4"]
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert widget.comparison_label.text() == ""


def test_short_fine_tune_completes_with_before_after(dock, qtbot, user_dir):
    _, widget = dock
    widget.seg_base = tiny_model()
    widget.seg_steps.setValue(3)
    widget.seg_panel.start_button.click()
    qtbot.waitUntil(lambda: not widget.seg_panel.running, timeout=60000)
    version = widget.seg_panel.result
    assert version is not None and version.id == "seg_v5"
    assert widget.seg_table.rowCount() == 5
    assert "→" in widget.seg_table.item(4, 3).text()
    assert "seg_v5" in widget.comparison_label.text()
    assert version.card["fine_tune"]["manual_frames"] == [0, 8]


def test_a_view_warning_shows_before_the_training_steps(dock, qtbot, user_dir, monkeypatch):
    import echo_napari.segmentation.finetune as finetune

    _, widget = dock
    panel = widget.seg_panel
    message = "This clip looks mirrored (LV on the left of the screen; view score +4.0)"
    monkeypatch.setattr(finetune, "_view_warning", lambda frames, mirrored: message)
    widget.seg_base = tiny_model()
    widget.seg_steps.setValue(5000)
    panel.start_button.click()
    # shown while the job runs, so the user can cancel before minutes of training
    qtbot.waitUntil(lambda: not panel.notice_label.isHidden(), timeout=60000)
    assert panel.running and message in panel.notice_label.text()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert panel.result is None and _files(user_dir) == []
    monkeypatch.setattr(finetune, "_view_warning", lambda frames, mirrored: "")
    widget.seg_steps.setValue(2)
    panel.start_button.click()  # a new job clears the last one's notice
    assert panel.notice_label.isHidden()
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert panel.notice_label.isHidden() and panel.result is not None


def test_tiny_dir_training_lists_a_new_version(dock, qtbot, user_dir):
    _, widget = dock
    rows = widget.dir_table.rowCount()
    widget.dir_steps.setValue(3)
    widget.dir_panel.start_button.click()
    qtbot.waitUntil(lambda: not widget.dir_panel.running, timeout=120000)
    assert widget.dir_panel.result is not None, widget.dir_panel.status_label.text()
    assert widget.dir_panel.loss_history()[0].tolist() == [1, 2, 3]
    assert widget.dir_table.rowCount() == rows + 1
    new = [m for m in registry.list_models("dirnet") if not m.bundled]
    base = registry.bundled_model("dirnet")
    assert [m.path.name for m in new] == [f"dirnet_v{base.version + 1}.safetensors"]
    card = new[0].card()
    assert card["parent"] == base.path.stem and card["training"]["iterations_done"] == 3
    assert 0 <= card["retrain"]["ncc_after"] <= 1
    assert widget.dir_base_combo.findText(new[0].label) >= 0


def test_select_and_rollback_segmentation_versions(dock, qtbot, user_dir):
    _, widget = dock
    model = tiny_model()
    model.card = {"name": "seg", "version": "seg_v5", "parent": "seg_v4"}
    user_dir.mkdir(parents=True)
    save_model(model, user_dir / "seg_v5")
    widget.refresh_versions()
    assert widget.seg_table.rowCount() == 5
    assert widget.selected_label.text() == "Selected: seg_v4"
    widget.seg_table.selectRow(4)
    widget.select_button.click()
    assert selected_version().id == "seg_v5"
    assert widget.seg_table.item(4, 0).text().startswith("●")
    widget.rollback_button.click()
    assert selected_version().id == "seg_v4"
    assert widget.selected_label.text() == "Selected: seg_v4"
    widget.rollback_button.click()  # the bundled seg_v4's parent is the bundled seg_v3
    assert selected_version().id == "seg_v3"
    widget.rollback_button.click()
    assert selected_version().id == "seg_v2"
    widget.rollback_button.click()
    assert selected_version().id == "seg_v1"


def test_dir_training_job_cancelled_writes_nothing(user_dir):
    from echo_napari.widgets.train_dir_job import dir_training_steps

    frames = make_sequence(n_frames=8, size=32).frames_array()
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    generator = dir_training_steps([frames], steps=50, should_stop=stop)
    records = []
    while True:
        try:
            records.append(next(generator))
        except StopIteration as end:
            assert end.value is None
            break
    assert [r.step for r in records] == [1, 2]
    assert _files(user_dir) == []
