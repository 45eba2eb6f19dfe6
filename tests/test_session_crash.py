"""SIGKILL a process that edits and autosaves a session; the files must always reopen.

The writer edits one frame per revision k with content that encodes k, autosaves after
every edit (and saves the user's file every 7th edit), and prints "A k" / "S k" once a
write has returned. It is killed at random moments, several rounds, each round resuming
from the recovered autosave. After every kill the user's file and the autosave must
reopen, hold exactly the state of their revision, and be no older than the last write
the writer reported: at most the edit in flight (one autosave interval) is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from echo_napari.session import autosave_path, find_recovery
from echo_napari.session_read import read_session_file

T, H, W = 6, 24, 24

WRITER = textwrap.dedent(
    f"""
    import sys
    import numpy as np
    from echo_napari.sequence import MANUAL, EchoSequence
    from echo_napari.session import Session, find_recovery

    T, H, W = {T}, {H}, {W}
    path = sys.argv[1]

    def pattern(k):
        frame = np.full((H, W), k % 4, dtype=np.uint8)
        frame[0] = [(k >> (2 * i)) & 3 for i in range(W)]
        return frame

    try:
        session = Session.open(path, recovery="use")
    except Exception as exc:
        if "not found" not in str(exc):
            raise
        seq = EchoSequence(
            frames=np.zeros((T, H, W), np.float32), labels=np.zeros((T, H, W), np.uint8)
        )
        session = Session(seq, path, embed_frames=True)
        session.save()
    print("R", session.revision, flush=True)
    while True:
        k = session.revision + 1
        t = k % T
        session.labels[t] = pattern(k)
        session.sequence.provenance[t] = MANUAL
        session.commit("brush", [t])
        assert session.revision == k
        if k % 7 == 0:
            session.save()
            print("S", k, flush=True)
        session.autosave()
        print("A", k, flush=True)
    """
)


def _pattern(k: int) -> np.ndarray:
    frame = np.full((H, W), k % 4, dtype=np.uint8)
    frame[0] = [(k >> (2 * i)) & 3 for i in range(W)]
    return frame


def _expected(revision: int) -> np.ndarray:
    labels = np.zeros((T, H, W), dtype=np.uint8)
    for k in range(1, revision + 1):
        labels[k % T] = _pattern(k)
    return labels


def _check(path: Path, at_least: int) -> int:
    state, _ = read_session_file(path)
    assert state.revision >= at_least, f"{path.name}: revision {state.revision} < {at_least}"
    np.testing.assert_array_equal(state.labels, _expected(state.revision))
    touched = {k % T for k in range(1, state.revision + 1)}
    assert {t for t, p in enumerate(state.provenance) if p.kind.value == "manual"} == touched
    return state.revision


@pytest.mark.slow
def test_sigkill_during_autosaves_loses_at_most_one_interval(tmp_path):
    path = tmp_path / "crash.h5"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = np.random.default_rng(1234)
    autosaves = kills = interrupted = 0
    last_autosaved = last_saved = 0
    deadline = time.monotonic() + 50.0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    while (autosaves < 100 or kills < 6) and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        first = proc.stdout.readline().split()
        assert first and first[0] == "R", proc.stderr.read()
        resumed = int(first[1])
        assert resumed >= last_autosaved, "resumed from older work than was autosaved"
        time.sleep(float(rng.uniform(0.05, 0.8)))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        # only whole lines: the kill can land between print's writes ("A" without its
        # number), after the autosave it reports was already done
        for line in out.split("\n")[:-1]:
            kind, k = line.split()
            if kind == "A":
                autosaves += 1
                last_autosaved = max(last_autosaved, int(k))
            elif kind == "S":
                last_saved = max(last_saved, int(k))
        interrupted += bool(list(tmp_path.glob(".*.tmp")))
        user_revision = _check(path, last_saved)
        info = find_recovery(path)
        if last_autosaved > user_revision:
            assert info is not None, "a newer autosave exists but is not offered"
        if info is not None:
            assert info.file_revision == user_revision
            _check(autosave_path(path), last_autosaved)
    print(f"{autosaves} autosaves, {kills} kills, {interrupted} during a write")
    assert autosaves >= 100, f"only {autosaves} autosaves in {kills} rounds"
    assert kills >= 6
    leftovers = [p.name for p in tmp_path.glob(".*.tmp")]
    assert len(leftovers) <= 1, leftovers
