"""Session files: round trip, incremental saves, never overwriting, autosave, recovery,
undo memory, migration and exports."""

from __future__ import annotations

import csv
import os
import time

import h5py
import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.errors import SequenceError
from echo_napari.io import read_sequence, write_sequence
from echo_napari.sequence import MANUAL, FrameProvenance, ProvenanceKind
from echo_napari.session import (
    Autosaver,
    RecoveryAvailableError,
    Session,
    SessionError,
    autosave_path,
    discard_recovery,
    find_recovery,
    recover,
)
from echo_napari.session_export import (
    export_camus,
    export_echonet,
    export_hdf5,
    export_labels,
    export_volume_tracings,
)
from echo_napari.session_read import read_session_file

PROPAGATED = FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1.2")


def _edited_session(path, **kwargs):
    seq = make_sequence(n_frames=8, size=32)
    session = Session(seq, path, author="alice", settings={"alpha": 1.0}, notes="n1", **kwargs)
    session.apply_labels([2, 3], np.ones((2, 32, 32), np.uint8), PROPAGATED)
    seq.labels[5, :4, :4] = 3
    seq.provenance[5] = MANUAL
    seq.keyframes.add(5)
    session.commit("brush", [5])
    session.set_phase("es", 6)
    return session


def _assert_same_state(a: Session, b: Session) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(np.asarray(a.sequence.frames), np.asarray(b.sequence.frames))
    assert a.sequence.provenance == b.sequence.provenance
    assert a.sequence.keyframes == b.sequence.keyframes
    for name in ("ed_index", "es_index", "spacing", "frame_time_ms", "view"):
        assert getattr(a.sequence, name) == getattr(b.sequence, name), name
    assert a.notes == b.notes and a.settings == b.settings
    for t in range(a.sequence.n_frames):
        ra, rb = a.frame_record(t), b.frame_record(t)
        assert ra.provenance == rb.provenance and ra.author == rb.author
        assert (np.isnan(ra.time) and np.isnan(rb.time)) or ra.time == rb.time


def test_round_trip_embedded(tmp_path):
    session = _edited_session(tmp_path / "a.h5")
    report = session.save()
    assert report.mode == "full" and not session.is_modified
    reopened = Session.open(tmp_path / "a.h5")
    _assert_same_state(session, reopened)
    assert reopened.sequence.metadata["reference"] == {"EF": 58.0}
    assert reopened.revision == session.revision and reopened.session_uid == session.session_uid
    assert reopened.frame_record(2).author == "alice"
    assert reopened.frame_record(2).provenance == PROPAGATED
    assert np.isnan(reopened.frame_record(0).time)


def test_layout_is_readable_with_plain_h5py(tmp_path):
    session = _edited_session(tmp_path / "a.h5")
    session.save()
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f.attrs["schema"] == "echo-napari-session/1"
        assert f["labels"].chunks == (1, 32, 32) and f["labels"].compression == "gzip"
        np.testing.assert_array_equal(f["labels"][5], session.labels[5])
        assert sorted(np.flatnonzero(f["keyframes"][()])) == [0, 4, 5]
        kinds = h5py.check_enum_dtype(f["provenance/kind"].dtype)
        assert kinds["propagated"] == f["provenance/kind"][2]
        assert f["provenance/model"].asstr()[2] == "dirnet"
        assert f["notes"].asstr()[()] == "n1"
        assert int(f.attrs["es_index"]) == 6
        assert f["source"].attrs["embedded"]


def test_referenced_source_round_trip_relocation_and_hash(tmp_path):
    source = tmp_path / "video.h5"
    write_sequence(make_sequence(n_frames=8, size=32), source)
    seq = read_sequence(source)
    session = Session(seq, tmp_path / "s.h5")
    session.apply_labels([1], np.full((1, 32, 32), 2, np.uint8), PROPAGATED)
    session.save()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert "frames" not in f and f["source"].attrs["sha256"] == session.source.sha256
    _assert_same_state(session, Session.open(tmp_path / "s.h5"))

    moved = tmp_path / "moved.h5"
    os.replace(source, moved)
    with pytest.raises(SessionError, match="source=") as err:
        Session.open(tmp_path / "s.h5")
    assert "missing" in str(err.value)
    relocated = Session.open(tmp_path / "s.h5", source=moved)
    assert relocated.source.path == str(moved.resolve())

    other = make_sequence(n_frames=8, size=32)
    other.frames = other.frames * 0.5
    write_sequence(other, moved)
    with pytest.raises(SessionError, match="sha256"):
        Session.open(tmp_path / "s.h5", source=moved)
    loose = Session.open(tmp_path / "s.h5", source=moved, verify_source=False)
    np.testing.assert_array_equal(loose.labels, session.labels)


def test_without_source_file_referencing_is_refused(tmp_path):
    with pytest.raises(SessionError, match="embed_frames=True"):
        Session(make_sequence(n_frames=4, size=16), tmp_path / "x.h5", embed_frames=False)


def test_one_frame_change_rewrites_one_frame(tmp_path):
    path = tmp_path / "a.h5"
    session = _edited_session(path)
    session.save()
    before = read_session_file(path)[0].labels
    session.labels[7, :2, :2] = 3
    session.commit("brush", [7])
    report = session.save()
    assert report.mode == "incremental" and report.frames_written == 1
    after = read_session_file(path)[0].labels
    np.testing.assert_array_equal(after[:7], before[:7])
    np.testing.assert_array_equal(after[7], session.labels[7])


def test_growing_file_is_compacted_by_a_full_write(tmp_path):
    path = tmp_path / "a.h5"
    session = Session(make_sequence(n_frames=4, size=64), path, embed_frames=True)
    session.save()
    session._file.compact_size = 1  # pretend the file has grown far past its fresh size
    big = np.zeros(64 * 64 * 300, dtype=np.uint8)
    with open(path, "ab") as handle:  # HDF5 ignores bytes after its end of file
        handle.write(big.tobytes())
    session.labels[1, 0, 0] = 3
    session.commit("brush", [1])
    assert session.save().mode == "full"
    assert read_session_file(path)[0].labels[1, 0, 0] == 3


def test_never_overwrites_a_file_it_did_not_come_from(tmp_path):
    path = tmp_path / "user.h5"
    path.write_bytes(b"my precious notes")
    session = Session(make_sequence(n_frames=4, size=16), path)
    with pytest.raises(SessionError, match="overwrite=True"):
        session.save()
    assert path.read_bytes() == b"my precious notes"
    session.save(tmp_path / "elsewhere.h5")
    assert session.path == tmp_path / "elsewhere.h5"
    with pytest.raises(SessionError, match="overwrite=True"):
        session.save(path)
    assert session.path == tmp_path / "elsewhere.h5"
    session.save(path, overwrite=True)
    assert Session.open(path).revision == session.revision


def test_refuses_to_replace_a_file_changed_on_disk(tmp_path):
    path = tmp_path / "a.h5"
    _edited_session(path).save()
    first, second = Session.open(path), Session.open(path)
    second.set_keyframe(7)
    second.save()
    saved = path.read_bytes()
    first.set_keyframe(6)
    with pytest.raises(SessionError, match="changed on disk"):
        first.save()
    assert path.read_bytes() == saved
    first.save(force=True)
    assert 6 in Session.open(path).sequence.keyframes


def test_autosave_recovery_flow(tmp_path):
    path = tmp_path / "a.h5"
    session = _edited_session(path)
    session.save()
    saved = path.read_bytes()
    assert find_recovery(path) is None
    session.labels[0, :3, :3] = 2
    session.commit("brush", [0])
    report = session.autosave()
    assert report.path == autosave_path(path) == tmp_path / "a.autosave.h5"
    assert path.read_bytes() == saved, "autosave must never write the user's file"
    assert session.autosave() is None  # nothing new
    session.set_notes("after autosave")
    assert session.autosave().mode == "incremental"

    info = find_recovery(path)
    assert info.same_session and info.autosave_revision == session.revision
    assert info.file_revision < info.autosave_revision
    with pytest.raises(RecoveryAvailableError) as err:
        Session.open(path)
    assert err.value.info == info

    recovered = Session.open(path, recovery="use")
    _assert_same_state(session, recovered)
    assert recovered.path == path and recovered.is_modified
    assert path.read_bytes() == saved
    recovered.save()
    assert find_recovery(path) is None
    _assert_same_state(session, Session.open(path))
    assert recovered.close() and not autosave_path(path).exists()


def test_discard_moves_the_autosave_aside(tmp_path):
    path = tmp_path / "a.h5"
    session = _edited_session(path)
    session.save()
    session.set_keyframe(1)
    session.autosave()
    auto_bytes = autosave_path(path).read_bytes()
    opened = Session.open(path, recovery="discard")
    assert 1 not in opened.sequence.keyframes
    kept = list(tmp_path.glob("a.autosave.h5.*.bak"))
    assert len(kept) == 1 and kept[0].read_bytes() == auto_bytes
    assert discard_recovery(path) is None


def test_unsaved_new_session_is_recovered_from_its_autosave(tmp_path):
    path = tmp_path / "new.h5"
    session = _edited_session(path)
    session.autosave()
    info = find_recovery(path)
    assert info is not None and info.file_revision is None
    recovered = recover(path)
    _assert_same_state(session, recovered)
    assert not recovered.close(), "unsaved work keeps its autosave"
    assert autosave_path(path).exists()
    recovered.save()
    assert recovered.close() and not autosave_path(path).exists()


def test_recovery_over_an_unreadable_user_file_keeps_a_copy(tmp_path):
    path = tmp_path / "a.h5"
    session = _edited_session(path)
    session.save()
    session.set_keyframe(2)
    session.autosave()
    path.write_bytes(b"damaged by a crashed disk")
    info = find_recovery(path)
    assert info is not None and info.file_revision is None
    recovered = Session.open(path, recovery="use")
    recovered.save()
    assert (tmp_path / "a.h5.bak").read_bytes() == b"damaged by a crashed disk"
    _assert_same_state(session, Session.open(path))


def test_foreign_autosave_is_kept_not_overwritten(tmp_path):
    path = tmp_path / "a.h5"
    other = _edited_session(tmp_path / "b.h5")
    other.save()
    foreign = autosave_path(path)
    foreign.write_bytes((tmp_path / "b.h5").read_bytes())
    session = Session(make_sequence(n_frames=8, size=32), path)
    session.set_keyframe(3)
    session.autosave()
    kept = list(tmp_path.glob("a.autosave.h5.*.bak"))
    assert len(kept) == 1 and kept[0].read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert read_session_file(foreign)[0].session_uid == session.session_uid


def test_background_autosaver(tmp_path):
    path = tmp_path / "a.h5"
    session = Session(make_sequence(n_frames=6, size=24), path)
    saver = Autosaver(session, interval_s=60.0, every_n_edits=3, poll_s=0.02).start()
    try:
        for t in range(3):
            session.labels[t, 0, 0] = 3
            session.commit("brush", [t])
        deadline = time.monotonic() + 10
        while saver.count == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert saver.count >= 1 and saver.last_error is None
        assert read_session_file(autosave_path(path))[0].revision == 3
        session.set_keyframe(5)
    finally:
        saver.stop(final_save=True)
    assert not saver.running
    assert 5 in read_session_file(autosave_path(path))[0].keyframes
    assert not path.exists(), "the autosaver must never create the user's file"


def test_autosave_due_by_edits_or_interval(tmp_path):
    session = Session(make_sequence(n_frames=4, size=16), tmp_path / "a.h5")
    assert not session.autosave_due(0.0, 1)
    session.set_keyframe(1)
    assert session.autosave_due(1e9, 1) and not session.autosave_due(1e9, 2)
    assert session.autosave_due(0.0, 100)


def test_history_memory_is_sparse_and_capped(tmp_path):
    seq = make_sequence(n_frames=64, size=112)
    session = Session(seq, tmp_path / "a.h5", history_bytes=20_000)
    seq.labels[3, 50, 50] = 0 if seq.labels[3, 50, 50] else 1
    change = session.commit("brush", [3])
    assert change.nbytes < 1024, "a one-pixel edit must not cost a frame copy"
    for t in range(64):
        session.apply_labels([t], np.full((1, 112, 112), t % 4, np.uint8), PROPAGATED)
    assert session.history.nbytes <= 20_000 or len(session.history) == 1
    assert session.history.dropped > 0
    kept = len(session.history)
    undone = sum(session.undo() is not None for _ in range(kept + 5))
    assert undone == kept < 64
    np.testing.assert_array_equal(session.labels[63], seq.labels[63])


def test_undo_redo_restore_labels_provenance_keyframes_phases(tmp_path):
    seq = make_sequence(n_frames=8, size=32)
    original = seq.labels.copy()
    session = Session(seq, tmp_path / "a.h5")
    session.apply_labels(range(1, 4), np.zeros((3, 32, 32), np.uint8), PROPAGATED, keyframes=True)
    session.set_phase("ed", 2)
    session.undo()
    assert seq.ed_index == 0
    session.undo()
    np.testing.assert_array_equal(seq.labels, original)
    assert seq.provenance[1].kind is ProvenanceKind.NONE and seq.keyframes == {0, 4}
    change = session.redo()
    assert change.operation == "propagate" and change.frames.tolist() == [1, 2, 3]
    assert seq.provenance[2] == PROPAGATED and {1, 2, 3} <= seq.keyframes
    seq.labels[7, 0, 0] = 3  # painted but not committed: undo commits it first, then undoes it
    session.undo()
    np.testing.assert_array_equal(seq.labels[7], original[7])
    assert session.redo() is not None and seq.labels[7, 0, 0] == 3


def test_commit_refuses_values_outside_the_class_table(tmp_path):
    seq = make_sequence(n_frames=4, size=16)
    session = Session(seq, tmp_path / "a.h5")
    seq.labels[1, 0, 0] = 7
    with pytest.raises(SequenceError, match=r"\[7\]"):
        session.commit("brush", [1])
    assert session.revision == 0


def test_migrates_an_io_sequence_file_and_keeps_the_original(tmp_path):
    path = tmp_path / "old.h5"
    write_sequence(make_sequence(n_frames=6, size=24), path)
    original = path.read_bytes()
    session = Session.open(path)
    assert session.source.embedded and session.sequence.keyframes == {0, 3}
    assert session.sequence.metadata["migrated_from"]["schema"] == "echo-napari-sequence/1"
    assert path.read_bytes() == original
    session.set_keyframe(5)
    session.save()
    assert (tmp_path / "old.h5.bak").read_bytes() == original
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "echo-napari-session/1"
    assert 5 in Session.open(path).sequence.keyframes


def test_exports(tmp_path):
    from echo_napari.io.itk import read_itk

    session = _edited_session(tmp_path / "a.h5")
    session.set_keyframe(0)
    labels = session.committed_labels()

    written = export_camus(session, tmp_path / "patient0042", view="4CH")
    assert any(p.name == "patient0042_4CH_half_sequence_gt.nii.gz" for p in written)
    back = read_sequence(tmp_path / "patient0042")
    np.testing.assert_array_equal(back.labels, labels)
    assert (back.ed_index, back.es_index) == (0, 6)

    (nii,) = export_labels(session, tmp_path / "labels.nii.gz")
    array, spacing, _ = read_itk(nii)
    np.testing.assert_array_equal(array, labels)
    assert spacing == pytest.approx(session.sequence.spacing)

    export_hdf5(session, tmp_path / "seq.h5")
    seq = read_sequence(tmp_path / "seq.h5")
    np.testing.assert_array_equal(seq.labels, labels)
    assert seq.provenance == session.sequence.provenance

    written = export_echonet(session, tmp_path / "echonet", "case1")
    with open(tmp_path / "echonet" / "VolumeTracings.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["Frame"]) for r in rows} == {0, 6} and len(rows) == 42

    (path,) = export_volume_tracings(session, tmp_path / "tracings.csv", "case1")
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    lv_keyframes = [t for t in sorted(session.sequence.keyframes) if (labels[t] == 1).sum() >= 4]
    assert sorted({int(r["Frame"]) for r in rows}) == lv_keyframes
    assert len(rows) == 21 * len(lv_keyframes)


def test_review_session_hooks(tmp_path):
    """The lines the review dock needs: commit on the review session's events, refresh
    areas after undo; one brush stroke is one undo step."""
    from echo_napari.review_session import ReviewSession

    review = ReviewSession(make_sequence(n_frames=6, size=24))
    store = Session(review.sequence, tmp_path / "a.h5", author="bob")
    review.events.provenance.connect(lambda frames: store.commit("edit", frames))
    review.events.keyframes.connect(lambda: store.commit("keyframes", []))
    review.events.phases.connect(lambda: store.commit("phase", []))
    before = review.labels.copy()
    areas_before = review.areas.copy()

    review.labels[5, :4, :4] = 3  # what napari's brush does to the shared array
    review.labels_edited([5])
    assert len(store.history) == 1 and store.frame_record(5).author == "bob"
    review.set_phase("ed", 2)
    assert len(store.history) == 2

    store.undo()
    review.events.phases.emit()
    assert review.sequence.ed_index == 0
    change = store.undo()
    review.refresh_areas(change.frames)
    np.testing.assert_array_equal(review.labels, before)
    np.testing.assert_array_equal(review.areas, areas_before)
    assert review.sequence.keyframes == {0, 3}
    assert store.save().mode == "full"
