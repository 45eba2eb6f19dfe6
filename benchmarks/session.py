"""Session saves: a one-frame change on a 256x112x112 session, incremental vs full rewrite.

Builds a synthetic 256-frame 112x112 sequence with labels on every frame (the simulator's
beating disc), saves it once, then repeats: paint a few pixels on one frame, commit, save.
The incremental save (fast file copy + one rewritten chunk + fsync + rename) is timed
against a full atomic rewrite of the same state, for a session that references its source
file and one that embeds the frames. Also times one autosave and the undo memory of the
edit. Prints medians and full/incremental ratios.

Usage: ``python benchmarks/session.py [--frames 256] [--size 112] [--repeats 15]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import make_sequence  # noqa: E402

from echo_napari.io import read_sequence, write_sequence  # noqa: E402
from echo_napari.sequence import MANUAL  # noqa: E402
from echo_napari.session import Session  # noqa: E402


def _edit(session: Session, k: int) -> int:
    t = k % session.sequence.n_frames
    session.labels[t, k % 100 : k % 100 + 5, 10:15] = (k % 3) + 1
    session.sequence.provenance[t] = MANUAL
    change = session.commit("brush", [t])
    return 0 if change is None else change.nbytes


def measure(session: Session, repeats: int) -> dict[str, float]:
    """Median seconds of incremental saves, full saves and autosaves after one edit
    (the first autosave, a full write, is made before timing)."""
    session.save()
    incremental, full, autosave, undo_bytes = [], [], [], []
    session.autosave()
    for k in range(repeats):
        undo_bytes.append(_edit(session, 2 * k))
        report = session.save()
        assert report.mode == "incremental" and report.frames_written == 1, report
        incremental.append(report.seconds)
        _edit(session, 2 * k + 1)
        autosave.append(session.autosave().seconds)
        _edit(session, 2 * k + 1)
        session._file.incremental_ok = False  # force the full atomic rewrite path
        report = session.save()
        assert report.mode == "full", report
        full.append(report.seconds)
    return {
        "incremental_s": statistics.median(incremental),
        "full_s": statistics.median(full),
        "autosave_s": statistics.median(autosave),
        "undo_bytes": statistics.median(undo_bytes),
        "file_mb": session.path.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = folder / "source.h5"
        write_sequence(make_sequence(args.frames, args.size), source)
        cases = {
            "referenced source": Session(read_sequence(source), folder / "ref.h5"),
            "embedded frames": Session(
                make_sequence(args.frames, args.size), folder / "emb.h5", embed_frames=True
            ),
        }
        print(
            f"session {args.frames}x{args.size}x{args.size}, one-frame edit, "
            f"median of {args.repeats}"
        )
        for name, session in cases.items():
            r = measure(session, args.repeats)
            print(
                f"{name:18s}: incremental {r['incremental_s'] * 1e3:7.1f} ms | full rewrite "
                f"{r['full_s'] * 1e3:7.1f} ms | ratio full/incremental "
                f"{r['full_s'] / r['incremental_s']:5.1f}x | autosave "
                f"{r['autosave_s'] * 1e3:6.1f} ms | file {r['file_mb']:.2f} MB | undo step "
                f"{r['undo_bytes']:.0f} B"
            )


if __name__ == "__main__":
    main()
