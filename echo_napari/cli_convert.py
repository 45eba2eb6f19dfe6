"""``echo-napari convert``: between formats, and a CAMUS root → the DIR paper's HDF5 layout.

* one file → one file: the output format follows the suffix of DST;
* a dataset folder → a folder: every sequence becomes ``DST/<sequence id><--to>``;
  existing outputs are skipped (writers are atomic, so an existing file is complete);
* ``--layout dir-paper``: a CAMUS/TED root → one HDF5 file laid out as the MICCAI 2023 DIR
  paper's conversion script does: ``/<patient>/<2CH|4CH>/data`` float32 (T, H, W) in
  [0, 1] (chunks (1, H, W), gzip 9), ``/<patient>/<view>/masks`` uint8 (2, H, W) = [ED, ES],
  group attributes ED, ES (1-based, as in ``Info_*.cfg``), NbFrame, Sex, Age,
  ImageQuality, LVedv, LVesv, LVef — plus ``spacing`` (dy, dx) mm after resizing, which
  the original lacks. ``--size 512 512`` resizes as the paper did (cubic for images,
  nearest for masks).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.cli_evaluate import list_inputs, safe_name, sequence_id
from echo_napari.cli_tasks import TaskOutcome, atomic_path, run_tasks
from echo_napari.errors import EchoIOError
from echo_napari.sequence import EchoSequence

logger = logging.getLogger(__name__)

PATIENT_FOLDER = re.compile(r"^patient\d+$")
PAPER_ATTRIBUTES = ("Sex", "Age", "ImageQuality", "LVedv", "LVesv")


def _read(path: str) -> EchoSequence:
    from echo_napari.io import read_sequence

    if "::" in path:
        file, key = path.split("::", 1)
        return read_sequence(file, key=key)
    return read_sequence(path)


def convert_one(item: tuple[str, str]) -> dict[str, Any]:
    """Task: read one sequence and write it to ``dst`` (format by suffix)."""
    from echo_napari.io import write_sequence

    src, dst = item
    seq = _read(src)
    written = write_sequence(seq, dst)
    return {"frames": seq.n_frames, "output": str(written[0]) if written else dst}


def run_convert(
    src: str | Path,
    dst: str | Path,
    to: str = ".h5",
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
) -> list[TaskOutcome]:
    """Convert one file, or every sequence of a folder into ``dst`` (a folder)."""
    sources = list_inputs(src)
    dst = Path(dst)
    single = len(sources) == 1 and not Path(str(src).split("::")[0]).is_dir()
    if single and dst.suffix:
        items = [(sources[0], str(dst))]
    else:
        suffix = to if to.startswith(".") else f".{to}"
        items = [(s, str(dst / f"{safe_name(sequence_id(s))}{suffix}")) for s in sources]
    names = [sequence_id(s) for s, _ in items]
    skipped = [] if overwrite else [i for i, (_, d) in enumerate(items) if Path(d).exists()]
    todo = [i for i in range(len(items)) if i not in skipped]
    ran = run_tasks(
        convert_one,
        [items[i] for i in todo],
        [names[i] for i in todo],
        workers=workers,
        scheduler=scheduler,
        description="convert",
    )
    outcomes: list[TaskOutcome | None] = [None] * len(items)
    for i in skipped:
        outcomes[i] = TaskOutcome(names[i], "skipped", {"output": items[i][1]})
    for i, outcome in zip(todo, ran, strict=True):
        outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _resize(array: np.ndarray, size: tuple[int, int] | None, order: int) -> np.ndarray:
    if size is None or tuple(array.shape[-2:]) == tuple(size):
        return array
    from skimage.transform import resize

    out_shape = (*array.shape[:-2], *size)
    resized = resize(
        array, out_shape, order=order, preserve_range=True, anti_aliasing=False, mode="edge"
    )
    return resized


def camus_patient_views(root: str | Path) -> list[tuple[Path, str]]:
    """(patient folder, view) pairs of a CAMUS/TED root that hold a sequence."""
    from echo_napari.io.camus import find_camus_sequence

    root = Path(root)
    if not root.is_dir():
        raise EchoIOError(root, "expected a CAMUS root folder holding patientXXXX folders")
    found = []
    for folder in sorted(p for p in root.iterdir() if PATIENT_FOLDER.match(p.name)):
        for view in ("2CH", "4CH"):
            try:
                find_camus_sequence(folder, view)
            except EchoIOError:
                continue
            found.append((folder, view))
    if not found:
        raise EchoIOError(root, "no patientXXXX folders with 2CH/4CH sequences found")
    return found


def write_dir_paper_hdf5(
    root: str | Path, dst: str | Path, size: tuple[int, int] | None = None, progress=None
) -> list[TaskOutcome]:
    """Write a CAMUS/TED root as the DIR paper's HDF5 layout (see module docstring).

    Parameters
    ----------
    root : folder with ``patientXXXX/`` sub-folders
    dst : output ``.h5`` file (written atomically)
    size : (H, W) to resize to, e.g. (512, 512); None keeps the original size
    progress : optional callback ``(done, total)``

    Returns
    -------
    list of TaskOutcome, one per (patient, view); failed ones are left out of the file
    """
    import h5py

    from echo_napari.io.camus import read_patient_folder

    views = camus_patient_views(root)
    outcomes = []
    with atomic_path(dst) as tmp, h5py.File(tmp, "w") as h5:
        for done, (folder, view) in enumerate(views, start=1):
            name = f"{folder.name}/{view}"
            try:
                seq = read_patient_folder(folder, view)
                attrs = _write_group(h5, name, seq, size)
                outcomes.append(TaskOutcome(name, "done", attrs))
            except (EchoIOError, ValueError) as exc:
                logger.warning("%s: skipped: %s", name, exc)
                outcomes.append(TaskOutcome(name, "failed", error=str(exc)))
            if progress is not None:
                progress(done, len(views))
    return outcomes


def _write_group(h5: Any, name: str, seq: EchoSequence, size: tuple[int, int] | None) -> dict:
    if seq.ed_index is None or seq.es_index is None:
        raise ValueError(f"{name}: ED/ES unknown (Info_*.cfg missing)")
    if seq.labels is None:
        raise ValueError(f"{name}: no ED/ES ground-truth masks")
    frames = _resize(seq.frames_array(), size, order=3).clip(0, 1).astype(np.float32)
    masks = seq.labels[[seq.ed_index, seq.es_index]]
    masks = _resize(masks, size, order=0).astype(np.uint8)
    h, w = frames.shape[1:]
    group = h5.create_group(name)
    chunks = (1, h, w)
    group.create_dataset(
        "data", data=frames, chunks=chunks, compression="gzip", compression_opts=9
    )
    group.create_dataset(
        "masks", data=masks, chunks=chunks, compression="gzip", compression_opts=9
    )
    info = seq.metadata.get("patient_info", {}) or {}
    reference = seq.metadata.get("reference", {}) or {}
    attrs: dict[str, Any] = {
        "ED": seq.ed_index + 1,
        "ES": seq.es_index + 1,
        "NbFrame": seq.n_frames,
    }
    for key in PAPER_ATTRIBUTES:
        if key in info:
            attrs[key] = info[key]
    ef = info.get("LVef", info.get("EF", reference.get("EF")))
    if ef is not None:
        attrs["LVef"] = float(ef)
    if seq.spacing is not None:
        dy, dx = seq.spacing
        scale = (seq.frame_shape[0] / h, seq.frame_shape[1] / w)
        attrs["spacing"] = (dy * scale[0], dx * scale[1])
    for key, value in attrs.items():
        group.attrs[key] = value
    return attrs
