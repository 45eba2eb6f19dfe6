"""``echo-napari evaluate``: score predicted labels against reference labels, per sequence.

Outputs (all written atomically):

* ``OUT`` (CSV): one row per sequence (:func:`echo_napari.metrics_sequence.evaluate_sequence`
  summary: Dice/HD/HD95/MAD per class, EF/EDV/ESV of prediction and reference, smoothness);
* ``OUT`` with ``_frames.csv``: per-frame, per-class metrics and areas (for the report's
  curves);
* ``OUT.parts/<sequence>.json``: each finished sequence, so an interrupted run resumes
  where it stopped (delete the folder or pass ``--overwrite`` to recompute).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from echo_napari.cli_tasks import TaskOutcome, atomic_path, run_tasks, write_csv_atomic
from echo_napari.errors import EchoIOError
from echo_napari.metrics_sequence import evaluate_sequence

logger = logging.getLogger(__name__)

_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".h5", ".hdf5", ".avi", ".mp4", ".dcm", ".npz")
_ROLE_TOKENS = ("_half_sequence", "_sequence", "_gt", "_pred", "_labels", "_prediction")


def sequence_id(path: str | Path) -> str:
    """Name that pairs a prediction with its reference.

    ``folder/file.h5::patient0001/4CH`` → ``patient0001_4CH``; ``patient0001_4CH_gt.nii.gz``
    and ``patient0001_4CH_half_sequence.mhd`` → ``patient0001_4CH``; ``0X1A2B.avi`` →
    ``0X1A2B``.
    """
    text = str(path)
    if "::" in text:
        return text.split("::", 1)[1].strip("/").replace("/", "_")
    name = Path(text).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    changed = True
    while changed:
        changed = False
        for token in _ROLE_TOKENS:
            if name.endswith(token):
                name = name[: -len(token)]
                changed = True
    return name


def safe_name(name: str) -> str:
    """``name`` usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "sequence"


def list_inputs(path: str | Path) -> list[str]:
    """The sequences under a dataset folder, or ``[path]`` for one file (or ``file::key``)."""
    from echo_napari.io import list_sequences

    text = str(path)
    if "::" not in text and Path(text).is_dir():
        return [str(p) for p in list_sequences(Path(text))]
    if "::" not in text and not Path(text).exists():
        raise EchoIOError(text, "no such file or folder")
    return [text]


def pair_inputs(pred: str | Path, ref: str | Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Pair predictions with references by :func:`sequence_id`.

    Returns
    -------
    pairs : list of (name, pred_path, ref_path)
    unmatched : names of references without a prediction
    """
    refs = list_inputs(ref)
    preds = list_inputs(pred)
    if Path(str(pred)).is_dir():
        # Every file with a known suffix, so an unreadable prediction is reported as such
        # (not as missing), and labels-only files count too.
        from echo_napari.io._common import SUFFIXES, full_suffix

        files = sorted(
            str(p)
            for p in Path(pred).iterdir()
            if p.is_file() and not p.name.startswith(".") and full_suffix(p) in SUFFIXES
        )
        preds = list(dict.fromkeys([*preds, *files]))
    if len(refs) == 1 and len(preds) == 1:
        return [(sequence_id(refs[0]), preds[0], refs[0])], []
    by_id = {sequence_id(p): p for p in preds}
    pairs, unmatched = [], []
    for r in refs:
        name = sequence_id(r)
        if name in by_id:
            pairs.append((name, by_id[name], r))
        else:
            unmatched.append(name)
    return pairs, unmatched


def _split_key(path: str) -> tuple[str, dict[str, Any]]:
    if "::" in path:
        file, key = path.split("::", 1)
        return file, {"key": key}
    return path, {}


def read_labels(path: str) -> np.ndarray:
    """Labels ``(T, H, W) uint8`` of a prediction: a sequence file with labels (``.h5``
    session, CAMUS with ``_gt``, ``file::key``) or a labels-only file written by
    :func:`echo_napari.io.write_labels` (``.h5``, ``.nii.gz``, ``.nii``, ``.mhd``).
    """
    from echo_napari.io import read_sequence

    file, options = _split_key(path)
    labels = _labels_only_file(Path(file)) if not options else None
    if labels is not None:
        return labels
    seq = read_sequence(file, **options)
    if seq.labels is None or not seq.labels.any():
        raise EchoIOError(file, "holds no labels; expected a segmentation of the sequence")
    return seq.labels


def _labels_only_file(path: Path) -> np.ndarray | None:
    """The array of a labels-only file, or None when ``path`` is something else."""
    from echo_napari.io._common import ITK_SUFFIXES, full_suffix

    suffix = full_suffix(path)
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                if "frames" in handle or "labels" not in handle:
                    return None
                labels = np.asarray(handle["labels"])
        except OSError as exc:
            raise EchoIOError(path, f"not a readable HDF5 file ({exc})") from exc
    elif suffix in ITK_SUFFIXES:
        from echo_napari.io.itk import read_itk

        labels = read_itk(path)[0]
        # An image has grey levels; a label map has only the class values 0..3.
        if labels.dtype.kind not in "iu" or labels.size == 0 or labels.max() > 3:
            return None
    else:
        return None
    if labels.ndim != 3 or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 3:
        raise EchoIOError(
            path,
            f"expected (T, H, W) labels with values 0..3; found {labels.shape} {labels.dtype}",
        )
    return labels.astype(np.uint8)


def evaluate_pair(item: tuple[str, str, str]) -> dict[str, Any]:
    """Task: evaluate one (name, prediction, reference) triple; runs in a worker.

    Returns
    -------
    dict with ``summary`` (one CSV row) and ``frames`` (the per-frame table, columnar:
    {column: list of values}, which serialises several times faster than a list of rows)
    """
    from echo_napari.io import read_sequence

    name, pred_path, ref_path = item
    file, options = _split_key(ref_path)
    reference = read_sequence(file, **options)
    pred_labels = read_labels(pred_path)
    result = evaluate_sequence(pred_labels, reference, name=name)
    frames = result.areas
    if len(result.frames):
        metrics = result.frames.drop(columns=["pred_area", "ref_area", "sequence"])
        frames = frames.merge(metrics, on=["frame", "class"], how="left")
    return {"summary": result.summary, "frames": frames.to_dict("list")}


def _part_path(parts: Path, name: str) -> Path:
    return parts / f"{safe_name(name)}.json"


def _write_part(parts: Path, name: str, value: dict[str, Any]) -> None:
    with atomic_path(_part_path(parts, name)) as tmp:
        # NaN/inf are kept as JSON's NaN/Infinity extensions (Python reads them back).
        tmp.write_text(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _read_part(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_evaluate(
    pred: str | Path,
    ref: str | Path,
    out: str | Path,
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
) -> list[TaskOutcome]:
    """Evaluate every prediction against its reference and write the CSV files.

    Returns
    -------
    list of TaskOutcome (value = the summary row) including unmatched references as failed
    """
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    pairs, unmatched = pair_inputs(pred, ref)
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for triple in pairs:
        part = None if overwrite else _read_part(_part_path(parts, triple[0]))
        if part is not None:
            done[triple[0]] = part
        else:
            todo.append(triple)
    if done:
        logger.info("resuming: %d sequences already evaluated in %s", len(done), parts)

    def keep(outcome: TaskOutcome) -> None:
        if outcome.status == "done":
            _write_part(parts, outcome.name, outcome.value)
            done[outcome.name] = outcome.value

    ran = run_tasks(
        evaluate_pair,
        todo,
        [t[0] for t in todo],
        workers=workers,
        scheduler=scheduler,
        description="evaluate",
        on_result=keep,
    )
    failed = {o.name: o for o in ran if o.status == "failed"}
    outcomes = []
    for name, _, _ in pairs:
        if name in failed:
            outcomes.append(failed[name])
        else:
            fresh = any(o.name == name and o.status == "done" for o in ran)
            status = "done" if fresh else "skipped"
            outcomes.append(TaskOutcome(name, status, done[name]["summary"]))
    for name in unmatched:
        outcomes.append(TaskOutcome(name, "failed", error=f"no prediction found in {pred}"))

    finished = [name for name, _, _ in pairs if name in done]
    if finished:
        summary = pd.DataFrame([done[n]["summary"] for n in finished])
        write_csv_atomic(summary, out)
        # Each part is columnar (parts of older runs: a list of rows; both read the same).
        frames = pd.concat([pd.DataFrame(done[n]["frames"]) for n in finished], ignore_index=True)
        write_csv_atomic(frames, frames_csv_path(out))
    return outcomes


def frames_csv_path(out: str | Path) -> Path:
    """Where the per-frame table of an evaluation CSV lives."""
    out = Path(out)
    return out.with_name(out.stem + "_frames.csv")
