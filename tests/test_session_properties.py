"""Property tests: random edit / propagate / accept / phase / undo / redo sequences end in
exactly the state of a reference model that keeps full copies; saves reopen identically."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_napari.sequence import MANUAL, EchoSequence, FrameProvenance, ProvenanceKind
from echo_napari.session import Session
from echo_napari.session_read import read_session_file

T, H, W = 4, 3, 3
PROPAGATED = FrameProvenance(ProvenanceKind.PROPAGATED, "dirnet", "1.0")
PREDICTED = FrameProvenance(ProvenanceKind.PREDICTED, "simlvseg", "2")

frames_st = st.integers(0, T - 1)
OPS = st.one_of(
    st.tuples(
        st.just("edit"), frames_st, st.integers(0, H - 1), st.integers(0, W - 1), st.integers(0, 3)
    ),
    st.tuples(st.just("propagate"), frames_st, frames_st, st.integers(1, T)),
    st.tuples(st.just("predict"), frames_st, st.integers(0, 3)),
    st.tuples(st.just("accept"), frames_st, st.integers(1, T)),
    st.tuples(st.just("phase"), st.sampled_from(["ed", "es"]), st.one_of(st.none(), frames_st)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
)


@dataclass
class Snapshot:
    labels: np.ndarray
    provenance: list
    keyframes: set
    phases: tuple

    def same(self, other: Snapshot) -> bool:
        return (
            np.array_equal(self.labels, other.labels)
            and self.provenance == other.provenance
            and self.keyframes == other.keyframes
            and self.phases == other.phases
        )


def _snapshot(seq: EchoSequence) -> Snapshot:
    return Snapshot(
        seq.labels.copy(), list(seq.provenance), set(seq.keyframes), (seq.ed_index, seq.es_index)
    )


class Reference:
    """Undo/redo by whole copies: the simplest model that is obviously right."""

    def __init__(self, first: Snapshot) -> None:
        self.states = [first]
        self.at = 0

    @property
    def current(self) -> Snapshot:
        return self.states[self.at]

    def do(self, new: Snapshot) -> None:
        if new.same(self.current):
            return
        del self.states[self.at + 1 :]
        self.states.append(new)
        self.at += 1

    def undo(self) -> None:
        self.at = max(0, self.at - 1)

    def redo(self) -> None:
        self.at = min(len(self.states) - 1, self.at + 1)


def _new_session(path: Path) -> Session:
    rng = np.random.default_rng(0)
    seq = EchoSequence(
        frames=rng.random((T, H, W), dtype=np.float32),
        labels=rng.integers(0, 4, (T, H, W), dtype=np.uint8),
        ed_index=0,
        keyframes={0},
    )
    return Session(seq, path, embed_frames=True, author="tester")


def _model_step(state: Snapshot, op: tuple) -> Snapshot:
    """What ``op`` does to a copy of the state (the reference's side)."""
    new = Snapshot(state.labels.copy(), list(state.provenance), set(state.keyframes), state.phases)
    kind = op[0]
    if kind == "edit":
        _, t, y, x, value = op
        new.labels[t, y : y + 2, x : x + 2] = value
        new.provenance[t] = MANUAL
        new.keyframes.add(t)
    elif kind == "propagate":
        _, src, start, length = op
        for t in range(start, min(T, start + length)):
            new.labels[t] = state.labels[src]
            new.provenance[t] = PROPAGATED
    elif kind == "predict":
        _, t, value = op
        new.labels[t] = value
        new.provenance[t] = PREDICTED
    elif kind == "accept":
        _, start, length = op
        new.keyframes.update(range(start, min(T, start + length)))
    elif kind == "phase":
        _, phase, t = op
        new.phases = (t, new.phases[1]) if phase == "ed" else (new.phases[0], t)
    return new


def _session_step(session: Session, op: tuple) -> None:
    """The same operation through the session's API (brush edits paint in place)."""
    seq, kind = session.sequence, op[0]
    if kind == "edit":
        _, t, y, x, value = op
        seq.labels[t, y : y + 2, x : x + 2] = value
        seq.provenance[t] = MANUAL
        seq.keyframes.add(t)
        session.commit("brush", [t])
    elif kind == "propagate":
        _, src, start, length = op
        targets = list(range(start, min(T, start + length)))
        labels = np.repeat(seq.labels[src][None], len(targets), axis=0)
        session.apply_labels(targets, labels, PROPAGATED, "propagate")
    elif kind == "predict":
        _, t, value = op
        session.apply_labels([t], np.full((1, H, W), value, np.uint8), PREDICTED, "predict")
    elif kind == "accept":
        _, start, length = op
        session.accept_range(start, min(T, start + length))
    elif kind == "phase":
        session.set_phase(op[1], op[2])
    elif kind == "undo":
        session.undo()
    elif kind == "redo":
        session.redo()


def _assert_matches(session: Session, expected: Snapshot) -> None:
    seq = session.sequence
    assert _snapshot(seq).same(expected)
    np.testing.assert_array_equal(session.committed_labels(), expected.labels)
    committed = session.committed_sequence()
    assert committed.provenance == expected.provenance
    assert committed.keyframes == expected.keyframes
    assert (committed.ed_index, committed.es_index) == expected.phases


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=14))
def test_random_operation_sequences_match_full_copy_model(ops):
    session = _new_session(Path("unused.h5"))
    reference = Reference(_snapshot(session.sequence))
    for op in ops:
        if op[0] == "undo":
            reference.undo()
        elif op[0] == "redo":
            reference.redo()
        else:
            reference.do(_model_step(reference.current, op))
        _session_step(session, op)
        _assert_matches(session, reference.current)
    assert session.history.can_undo == (reference.at > 0)
    assert session.history.can_redo == (reference.at < len(reference.states) - 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(OPS, st.tuples(st.just("save")), st.tuples(st.just("autosave"))),
        min_size=1,
        max_size=12,
    )
)
def test_incremental_saves_reopen_to_the_committed_state(ops):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        session = _new_session(path)
        session.save()
        for op in ops:
            if op[0] == "save":
                session.save()
            elif op[0] == "autosave":
                session.autosave()
            else:
                _session_step(session, op)
        session.save()
        state, frames = read_session_file(path)
        committed = session.committed_sequence()
        np.testing.assert_array_equal(state.labels, committed.labels)
        np.testing.assert_array_equal(frames, session.sequence.frames)
        assert state.provenance == committed.provenance
        assert state.keyframes == committed.keyframes
        assert (state.ed_index, state.es_index) == (committed.ed_index, committed.es_index)
        assert state.revision == session.revision
        for t in range(T):
            record = session.frame_record(t)
            assert state.authors[t] == record.author
            assert np.isnan(state.times[t]) == np.isnan(record.time)
            if not np.isnan(record.time):
                assert state.times[t] == record.time
