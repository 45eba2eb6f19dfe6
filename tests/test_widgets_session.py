"""Sessions in the review dock: save/reopen through the reader, undo/redo of our operations
and brush strokes, autosave + recovery, save errors, exports, accept frame, auto mode."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.napari_hooks import SESSION_KEY, get_reader, read_echo, read_session
from echo_napari.sequence import MANUAL, ProvenanceKind
from echo_napari.session import autosave_path
from echo_napari.widgets import session_link, session_panel

pytestmark = pytest.mark.gui


class _ZeroBackend:
    """Zero displacement: propagation copies the nearest keyframe's labels (fast)."""

    name = "zero"

    def register_pairs(self, fixed, moving, progress=None):
        n, h, w = fixed.shape
        if progress is not None:
            progress(n, n)
        return np.zeros((n, 2, h, w), np.float32)


def _open_dock(viewer, qtbot, sequence=None, name="echo"):
    from echo_napari.napari_hooks import sequence_layer_data

    if sequence is not None:
        for data, kwargs, kind in sequence_layer_data(sequence, name=name):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, dock = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=3000)
    dock.propagate_panel.backend_factory = lambda name, device: _ZeroBackend()
    return dock


@pytest.fixture
def messages(monkeypatch):
    """Error notifications of the session link/panel/dock: (message, thread name)."""
    seen: list[tuple[str, str]] = []

    def record(message: str) -> None:
        seen.append((message, threading.current_thread().name))

    from echo_napari.widgets import review_dock_session

    for module in (session_link, session_panel, review_dock_session):
        monkeypatch.setattr(module, "notify_error", record)
    return seen


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    sequence = make_sequence(n_frames=10, size=32)
    # only the keyframes 0 and 5 are labelled, as after reading ED/ES tracings
    sequence.labels[[t for t in range(10) if t not in (0, 5)]] = 0
    dock = _open_dock(viewer, qtbot, sequence)
    return viewer, dock


def _held(call):
    """``call`` wrapped to wait in its (worker) thread until released: (wrapper, entered,
    release) with two threading.Events."""
    entered, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        entered.set()
        assert release.wait(10)
        return call(*args, **kwargs)

    return held, entered, release


def _paint(viewer, frame, value=3, where=(4, 4), size=5, name="echo labels"):
    layer = viewer.layers[name]
    viewer.dims.set_current_step(0, frame)
    layer.brush_size = size
    layer.paint((frame, *where), value)


def _propagate(dock, qtbot):
    panel = dock.propagate_panel
    panel.propagate()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=10000)
    assert "propagation" in dock.session.results, panel.status_label.text()
    dock.link.flush()


def test_bound_layers_get_an_untitled_session_with_undo(docked):
    viewer, dock = docked
    link = dock.link
    assert link.store is not None and link.untitled and link.autosaver is not None
    # autosaved for crash recovery, outside the user's folders
    assert link.store._auto.path.parent == session_link.untitled_dir()
    assert link.store.sequence is dock.session.sequence  # one shared document
    assert viewer.layers["echo labels"].metadata[SESSION_KEY].session is link.store
    assert "untitled" in dock.session_panel.file_label.text()
    assert not dock.session_panel.undo_button.isEnabled()


def test_save_then_reopen_through_the_reader_is_identical(docked, qtbot, tmp_path):
    viewer, dock = docked
    _propagate(dock, qtbot)
    _paint(viewer, 7)
    dock.set_es_button.click()  # ES := 7
    path = tmp_path / "study.h5"
    assert dock.session_panel.new_session(path) is not None
    assert "study.h5" in dock.session_panel.file_label.text()
    assert "saved" in dock.session_panel.file_label.text()
    _paint(viewer, 2)  # one more change after the first save
    qtbot.waitUntil(lambda: "modified" in dock.session_panel.file_label.text(), timeout=2000)
    assert "modified" in dock.session_panel.file_label.text()
    report = dock.session_panel.save()
    assert report is not None and report.mode == "incremental"
    expected = dock.session.sequence
    labels, provenance = expected.labels.copy(), list(expected.provenance)
    keyframes, phases = set(expected.keyframes), (expected.ed_index, expected.es_index)

    assert get_reader(str(path)) is read_session  # routed by the HDF5 schema attribute
    viewer.open(str(path), plugin="echo-napari")
    qtbot.waitUntil(lambda: dock.labels_layer.name == "study labels", timeout=3000)
    reopened = dock.session.sequence
    assert dock.link.store.path == path and not dock.link.untitled
    assert reopened is dock.link.store.sequence
    assert reopened.labels is viewer.layers["study labels"].data
    np.testing.assert_array_equal(reopened.labels, labels)
    assert reopened.provenance == provenance
    assert reopened.keyframes == keyframes
    assert (reopened.ed_index, reopened.es_index) == phases == (0, 7)
    assert (
        reopened.provenance[7] == MANUAL
        and reopened.provenance[3].kind is ProvenanceKind.PROPAGATED
    )
    np.testing.assert_allclose(dock.curve.curve_data(3), dock.session.areas[:, 3])
    assert dock.link.store.frame_record(2).author == dock.link.store.author


def test_propagate_undo_redo(docked, qtbot):
    viewer, dock = docked
    before = dock.session.labels.copy()
    kinds = [p.kind for p in dock.session.sequence.provenance]
    _propagate(dock, qtbot)
    after = dock.session.labels.copy()
    assert not np.array_equal(after, before)
    assert dock.link.last_step == "propagate"

    assert dock.undo().operation == "propagate"
    np.testing.assert_array_equal(viewer.layers["echo labels"].data, before)
    assert [p.kind for p in dock.session.sequence.provenance] == kinds
    np.testing.assert_allclose(dock.curve.curve_data(1), dock.session.areas[:, 1])
    assert dock.session.areas[3, 1] == 0
    assert dock.session_panel.redo_button.isEnabled()

    shortcut = {str(k): f for k, f in viewer.keymap.items()}
    shortcut["Shift+Alt+Z"](viewer)  # redo
    np.testing.assert_array_equal(dock.session.labels, after)
    assert dock.session.sequence.provenance[3].kind is ProvenanceKind.PROPAGATED
    assert dock.session.areas[3, 1] > 0


def test_brush_stroke_is_one_undo_step(docked, qtbot):
    viewer, dock = docked
    before = dock.session.labels.copy()
    curve = dock.curve.curve_data(3).copy()
    _paint(viewer, 3)
    painted = dock.session.labels.copy()
    assert 3 in dock.session.sequence.keyframes
    # committed when control returns to the event loop (napari writes the last pixels
    # after its paint event)
    qtbot.waitUntil(lambda: len(dock.link.store.history) == 1, timeout=2000)
    qtbot.wait(50)
    assert len(dock.link.store.history) == 1 and dock.link.last_step == "brush"
    assert dock.link.store.history.can_undo

    shortcut = {str(k): f for k, f in viewer.keymap.items()}
    shortcut["Alt+Z"](viewer)
    np.testing.assert_array_equal(dock.session.labels, before)
    np.testing.assert_array_equal(dock.curve.curve_data(3), curve)
    assert 3 not in dock.session.sequence.keyframes
    assert dock.session.sequence.provenance[3].kind is ProvenanceKind.NONE
    dock.redo()
    np.testing.assert_array_equal(dock.session.labels, painted)
    assert 3 in dock.session.sequence.keyframes


def test_napari_ctrl_z_is_recorded_so_saves_match_the_screen(docked, qtbot):
    viewer, dock = docked
    before = dock.session.labels.copy()
    _paint(viewer, 3)
    qtbot.waitUntil(lambda: len(dock.link.store.history) == 1, timeout=2000)
    viewer.layers["echo labels"].undo()  # napari's own Ctrl-Z
    qtbot.waitUntil(lambda: len(dock.link.store.history) == 2, timeout=2000)
    np.testing.assert_array_equal(dock.link.store.committed_labels(), before)


def test_accept_frame_shortcut(docked, qtbot):
    viewer, dock = docked
    _propagate(dock, qtbot)
    viewer.dims.set_current_step(0, 3)
    shortcut = {str(k): f for k, f in viewer.keymap.items()}
    shortcut["A"](viewer)
    dock.link.flush()  # what the event loop does next
    seq = dock.session.sequence
    assert 3 in seq.keyframes and seq.provenance[3] == MANUAL
    assert dock.link.last_step == "accept"
    assert len(dock.link.store.history) == 2  # propagate, accept (one step)
    dock.undo()
    assert 3 not in seq.keyframes and seq.provenance[3].kind is ProvenanceKind.PROPAGATED


def test_auto_repropagate_after_a_stroke(docked, qtbot):
    viewer, dock = docked
    auto = dock.auto_repropagate
    auto.timer.setInterval(10)
    auto.checkbox.setChecked(True)
    _propagate(dock, qtbot)
    propagated = dock.session.labels.copy()
    _paint(viewer, 3, value=3, where=(28, 28), size=11)  # an LA blob on frame 3 …
    qtbot.waitUntil(lambda: auto.runs == 1 and dock.propagate_panel.worker is None, timeout=10000)
    labels = dock.session.labels
    # … carried to the frames between the keyframes 0 and 5 (zero motion), not beyond
    assert labels[2, 28, 28] == 3 and propagated[2, 28, 28] == 0
    np.testing.assert_array_equal(labels[6:], propagated[6:])
    assert "3 frames" in dock.propagate_panel.status_label.text()  # 1, 2 and 4
    assert dock.link.last_step == "propagate"
    dock.undo()  # the re-propagation, then the stroke
    assert labels[2, 28, 28] == 0 and labels[3, 28, 28] == 3
    assert auto.runs == 1  # undo does not trigger it


def test_autosave_then_crash_offers_recovery(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "study.h5"
    viewer = make_napari_viewer()
    dock = _open_dock(viewer, qtbot, make_sequence(n_frames=8, size=32))
    dock.session_panel.edits_spin.setValue(1)  # autosave after every change
    dock.session_panel.new_session(path)
    _paint(viewer, 4)
    qtbot.waitUntil(lambda: dock.link.autosave_count >= 1, timeout=5000)
    edited = dock.session.labels.copy()
    # the crash: the autosave thread dies, nothing is saved or closed
    dock.link.autosaver.stop(final_save=False)
    dock.link.store = None
    assert autosave_path(path).exists()

    asked = []
    monkeypatch.setattr(session_panel, "ask_recovery", lambda info: asked.append(info) or None)
    other = make_napari_viewer()
    second = _open_dock(other, qtbot, make_sequence(n_frames=4, size=16), name="other")
    assert second.open_session(path) is None  # cancelled: nothing opened, autosave kept
    assert second.open_session(path, background=True) is None  # asked before any worker
    assert second.open_worker is None and len(asked) == 2
    assert autosave_path(path).exists() and "other labels" == second.labels_layer.name

    monkeypatch.setattr(session_panel, "ask_recovery", lambda info: asked.append(info) or "use")
    other.open(str(path), plugin="echo-napari")  # as a file dropped on the window
    qtbot.waitUntil(lambda: second.labels_layer.name == "study labels", timeout=3000)
    assert len(asked) == 3 and asked[2].same_session
    np.testing.assert_array_equal(second.session.labels, edited)
    assert second.link.store.is_modified  # recovered work is not in the file yet
    second.session_panel.save()
    assert second.link.store.close() and not autosave_path(path).exists()


def _open_file_in_dock(viewer, qtbot, path):
    viewer.open(str(path), plugin="echo-napari")
    _, dock = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=3000)
    return dock


def test_untitled_work_survives_a_crash(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from echo_napari.io import write_sequence

    source = tmp_path / "video.h5"
    write_sequence(make_sequence(n_frames=8, size=32), source)
    viewer = make_napari_viewer()
    dock = _open_file_in_dock(viewer, qtbot, source)
    assert dock.link.untitled
    dock.session_panel.edits_spin.setValue(1)
    _paint(viewer, 4, value=3, where=(20, 20), size=7, name="video labels")
    dock.toggle_key_button.click()  # frame 4 becomes a keyframe
    qtbot.waitUntil(lambda: dock.link.autosave_count >= 1, timeout=5000)
    auto = dock.link.store._auto.path
    assert auto.exists() and auto.parent == session_link.untitled_dir()
    edited = dock.session.labels.copy()
    keyframes = set(dock.session.sequence.keyframes)
    # the crash: nothing saved or closed
    dock.link.autosaver.stop(final_save=False)
    dock.link.store = None

    asked = []
    monkeypatch.setattr(
        session_panel, "ask_recovery", lambda info, **kw: asked.append((info, kw)) or "use"
    )
    again = _open_file_in_dock(make_napari_viewer(), qtbot, source)
    assert len(asked) == 1 and asked[0][1]["untitled_source"] == str(source)
    np.testing.assert_array_equal(again.session.labels, edited)
    assert again.session.sequence.keyframes == keyframes
    np.testing.assert_array_equal(again.labels_layer.data, edited)
    assert again.link.untitled and again.link.last_step == "restored unsaved work"

    # Save as: the work lives in the named file; the untitled autosave goes away
    named = tmp_path / "study.h5"
    again.link.commit("brush")
    again.link.autosaver._tick(force=True)
    untitled_auto = again.link.store._auto.path
    assert again.session_panel.save_as(named) is not None
    assert not untitled_auto.exists() and again.link.store.path == named


def test_untitled_recovery_declined_keeps_the_autosave_aside(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    from echo_napari.io import write_sequence

    source = tmp_path / "video.h5"
    original = make_sequence(n_frames=8, size=32)
    write_sequence(original, source)
    viewer = make_napari_viewer()
    dock = _open_file_in_dock(viewer, qtbot, source)
    _paint(viewer, 2, value=3, where=(20, 20), size=7, name="video labels")
    dock.link.detach()  # a clean close of an edited, never-named session keeps its autosave
    auto = session_link.untitled_dir()
    assert len(list(auto.glob("*.autosave.h5"))) == 1

    monkeypatch.setattr(session_panel, "ask_recovery", lambda info, **kw: "discard")
    again = _open_file_in_dock(make_napari_viewer(), qtbot, source)
    np.testing.assert_array_equal(again.session.labels, original.labels)
    assert not list(auto.glob("*.autosave.h5")) and len(list(auto.glob("*.bak"))) == 1


def test_save_error_is_notified_and_loses_nothing(docked, tmp_path, qtbot, messages):
    viewer, dock = docked
    folder = tmp_path / "work"
    folder.mkdir()
    path = folder / "study.h5"
    dock.session_panel.new_session(path)
    dock.link.set_autosave(0.2, 1000)
    _paint(viewer, 6)
    edited = dock.session.labels.copy()
    # the folder vanishes (unplugged drive, moved share); a file takes its name
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    assert dock.session_panel.save() is None
    assert messages and "Session not saved" in messages[0][0]
    with qtbot.waitSignal(dock.link.save_finished, timeout=10000) as failed:
        assert dock.session_panel.save(background=True) is not None
    assert failed.args == [None] and "Session not saved" in messages[-1][0]
    assert not dock.link.saving and dock.session_panel.save_button.isEnabled()
    qtbot.waitUntil(lambda: any("Autosave failed" in m for m, _ in messages), timeout=5000)
    # notified on the GUI thread, not from the autosave thread
    assert all(thread == threading.main_thread().name for _, thread in messages)
    np.testing.assert_array_equal(dock.session.labels, edited)
    assert "modified" in dock.session_panel.file_label.text()

    folder.unlink()
    folder.mkdir()
    assert dock.session_panel.save() is not None
    from echo_napari.session import Session

    reopened = Session.open(path, recovery="discard")
    np.testing.assert_array_equal(reopened.labels, edited)


def test_buttons_save_in_the_background_and_keep_edits_made_meanwhile(
    docked, qtbot, tmp_path, monkeypatch, messages
):
    from echo_napari import session_files
    from echo_napari.session import Session

    viewer, dock = docked
    panel, link = dock.session_panel, dock.link
    path = tmp_path / "study.h5"
    assert panel.new_session(path) is not None
    _paint(viewer, 6)
    qtbot.waitUntil(lambda: "modified" in panel.file_label.text(), timeout=2000)
    # hold the file write (after the session took its snapshot) until the test says so
    held_write, entered, release = _held(session_files.write_incremental)
    monkeypatch.setattr(session_files, "write_incremental", held_write)
    with qtbot.waitSignal(link.save_finished, timeout=10000) as finished:
        panel.save_button.click()
        assert entered.wait(5)
        # the GUI thread is free while the file is written: the panel says so, a second
        # save is refused, and the user goes on editing
        assert link.saving and "saving" in panel.file_label.text()
        assert not panel.save_button.isEnabled()
        assert panel.save() is None and "still running" in messages[-1][0]
        _paint(viewer, 2)
        link.flush()
        release.set()
    report = finished.args[0]
    assert report.mode == "incremental" and report.frames_written == 1  # frame 6 only
    assert not link.saving and panel.save_button.isEnabled()
    # the stroke made during the save is not in that file, and is not forgotten either
    assert link.store.is_modified and "modified" in panel.file_label.text()
    assert panel.save() is not None
    np.testing.assert_array_equal(Session.open(path).labels, dock.session.labels)


def test_closing_during_a_background_save_waits_for_the_file(docked, qtbot, tmp_path):
    from echo_napari.session import Session

    viewer, dock = docked
    _paint(viewer, 6)
    path = tmp_path / "first.h5"
    worker = dock.session_panel.save_as(path, background=True)  # untitled: a full write
    assert worker is not None
    dock.link.shutdown()  # the dock goes away before the write has finished
    assert not dock.link.saving and dock.link.store is None
    np.testing.assert_array_equal(Session.open(path).labels, dock.session.labels)


def test_exports_from_the_buttons_run_in_the_background(docked, qtbot, tmp_path, messages):
    from echo_napari.io import read_sequence

    viewer, dock = docked
    panel = dock.session_panel
    _paint(viewer, 6)
    started, release = threading.Event(), threading.Event()

    def held(store):
        started.set()
        assert release.wait(10)
        from echo_napari.session_export import export_hdf5

        return export_hdf5(store, tmp_path / "all.h5")

    worker = panel._export(held, background=True)
    assert worker is not None and started.wait(5)
    # the viewer is free: the panel says an export runs and refuses a second one
    assert panel.export_title.text() == "Exporting…" and not panel.export_hdf5_button.isEnabled()
    assert panel.export_tracings(tmp_path / "t.csv", background=True) is None
    assert "still running" in messages[-1][0]
    release.set()
    qtbot.waitUntil(lambda: panel.export_worker is None, timeout=10000)
    assert panel.export_title.text() == "Export" and panel.export_hdf5_button.isEnabled()
    assert panel.last_export == [tmp_path / "all.h5"]
    np.testing.assert_array_equal(read_sequence(tmp_path / "all.h5").labels, dock.session.labels)
    # a failing background export is notified on the GUI thread
    (tmp_path / "a file").write_text("not a folder")
    assert panel.export_tracings(tmp_path / "a file" / "t.csv", background=True) is not None
    qtbot.waitUntil(lambda: panel.export_worker is None, timeout=10000)
    assert "Export failed" in messages[-1][0]
    assert messages[-1][1] == threading.main_thread().name


def test_open_button_reads_the_session_in_the_background(
    docked, qtbot, tmp_path, messages, monkeypatch
):
    from echo_napari.session import Session

    viewer, dock = docked
    panel = dock.session_panel
    _paint(viewer, 6)
    path = tmp_path / "study.h5"
    assert panel.new_session(path) is not None
    labels = dock.session.labels.copy()
    viewer.layers.clear()
    held_open, started, release = _held(Session.open)
    monkeypatch.setattr(Session, "open", held_open)
    worker = panel.open_session(path, background=True)
    assert worker is not None and started.wait(5)
    # the viewer is free meanwhile: the button says so and refuses a second open
    assert panel.open_button.text() == "Opening…" and not panel.open_button.isEnabled()
    assert "study.h5" in panel.open_button.toolTip()
    assert panel.open_session(path, background=True) is None
    assert "still being opened" in messages[-1][0]
    release.set()
    qtbot.waitUntil(lambda: dock.open_worker is None, timeout=10000)
    qtbot.waitUntil(lambda: dock.labels_layer is not None, timeout=3000)
    assert dock.labels_layer.name == "study labels" and dock.link.store.path == path
    np.testing.assert_array_equal(dock.session.labels, labels)
    assert panel.open_button.text() == "Open…" and panel.open_button.isEnabled()
    # a file that is not a session: the error is notified on the GUI thread
    (tmp_path / "bad.h5").write_bytes(b"not an HDF5 file at all")
    assert panel.open_session(tmp_path / "bad.h5", background=True) is not None
    qtbot.waitUntil(lambda: dock.open_worker is None, timeout=10000)
    assert "Open failed" in messages[-1][0] and "bad.h5" in messages[-1][0]
    assert messages[-1][1] == threading.main_thread().name


def test_exports(docked, qtbot, tmp_path):
    from echo_napari.io import read_sequence

    viewer, dock = docked
    _propagate(dock, qtbot)
    panel = dock.session_panel
    written = panel.export_hdf5(tmp_path / "all.h5")
    assert get_reader(str(written[0])) is read_echo  # a sequence file, not a session
    back = read_sequence(written[0])
    np.testing.assert_array_equal(back.labels, dock.session.labels)
    assert back.keyframes == dock.session.sequence.keyframes
    csv = panel.export_tracings(tmp_path / "VolumeTracings.csv")[0]
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("FileName") and len(rows) == 1 + 21 * 2  # keyframes 0, 5
    camus = panel.export_camus(tmp_path / "patient0001")
    assert any(p.name.endswith("_gt.nii.gz") for p in camus)


def test_removing_the_dock_stops_autosave(docked, tmp_path):
    viewer, dock = docked
    dock.session_panel.new_session(tmp_path / "study.h5")
    saver = dock.link.autosaver
    assert saver is not None and saver.running
    _paint(viewer, 2)
    viewer.window.remove_dock_widget(dock)
    assert not saver.running and dock.link.store is None
    # the final autosave kept the unsaved stroke
    from echo_napari.session import find_recovery

    assert find_recovery(tmp_path / "study.h5") is not None


def test_closing_the_viewer_stops_autosave(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    dock = _open_dock(viewer, qtbot, make_sequence(n_frames=6, size=24))
    dock.session_panel.new_session(tmp_path / "study.h5")
    saver = dock.link.autosaver
    assert saver.running
    viewer.close()
    qtbot.waitUntil(lambda: not saver.running, timeout=2000)
