"""CAMUS / TED patient folders and single ``.mhd`` / ``.nii(.gz)`` images.

Layout: ``patientXXXX/patientXXXX_{2CH,4CH}_{half_sequence,sequence,ED,ES}[_gt].{mhd|nii.gz}``
plus ``Info_{2CH,4CH}.cfg`` (``key: value``; ED and ES are 1-based frame numbers).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import (
    ITK_SUFFIXES,
    atomic_output,
    check_labels,
    frames_to_uint8,
    full_suffix,
    stem_without_suffix,
    to_unit_float,
)
from echo_napari.io.itk import read_itk, write_itk
from echo_napari.sequence import MANUAL, NO_PROVENANCE, EchoSequence

logger = logging.getLogger(__name__)

CAMUS_NAME = re.compile(
    r"^(?P<patient>patient\d+)_(?P<view>[24]CH)_(?P<kind>half_sequence|sequence|ED|ES)(?P<gt>_gt)?$"
)
VIEW_NAMES = {"2CH": "A2C", "4CH": "A4C"}
SEQUENCE_KINDS = ("half_sequence", "sequence")


def parse_info_cfg(path: str | Path) -> dict[str, Any]:
    """Parse an ``Info_{2CH,4CH}.cfg`` file: ``key: value`` lines, numbers converted."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EchoIOError(path, f"cannot read it as text ({exc})") from exc
    info: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise EchoIOError(path, f"line {number} is not 'key: value': {line[:60]!r}")
        key, value = (part.strip() for part in line.split(":", 1))
        try:
            number_value = float(value)
            info[key] = int(number_value) if number_value.is_integer() else number_value
        except ValueError:
            info[key] = value
    return info


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".mhd", ".nii"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _frame_index(cfg_path: Path, info: dict, key: str, n_frames: int) -> int | None:
    if key not in info:
        return None
    value = info[key]
    if not isinstance(value, int) or not 1 <= value <= n_frames:
        raise EchoIOError(cfg_path, f"{key}={value!r} is not a frame number in 1..{n_frames}")
    return value - 1


def find_camus_sequence(folder: str | Path, view: str | None = None) -> Path:
    """The sequence file of one view in a patient folder (``4CH`` first by default)."""
    folder = Path(folder)
    views = [view.upper().replace("A4C", "4CH").replace("A2C", "2CH")] if view else ["4CH", "2CH"]
    for v in views:
        for kind in (*SEQUENCE_KINDS, "ED"):
            found = _find(folder, f"{folder.name}_{v}_{kind}")
            if found is not None:
                return found
    raise EchoIOError(folder, f"no CAMUS sequence for view {'/'.join(views)} in this folder")


def read_image_sequence(path: str | Path) -> EchoSequence:
    """Read a ``.mhd`` / ``.nii(.gz)`` image, with CAMUS/TED sidecars when they exist.

    A file named like CAMUS (``patientXXXX_4CH_half_sequence.nii.gz``) gets its ``_gt``
    labels (full-cycle for TED), or else the ``_ED_gt``/``_ES_gt`` masks at the ED/ES
    frames, plus ED/ES, frame rate and patient facts from ``Info_4CH.cfg``. Any other file
    gets a sibling ``<name>_gt`` labels file when present. Opening a ``_gt`` file opens
    its image with it.
    """
    path = Path(path)
    stem = stem_without_suffix(path)
    if stem.endswith("_gt"):
        image = _find(path.parent, stem[:-3])
        if image is None:
            raise EchoIOError(path, "a label file whose image (same name without _gt) is missing")
        path, stem = image, stem[:-3]
    raw, spacing, header = read_itk(path)
    frames = to_unit_float(path, raw)
    seq_args: dict[str, Any] = {
        "spacing": spacing,
        "frame_time_ms": header.get("frame_time_ms"),
        "metadata": {"source": str(path), "format": full_suffix(path).lstrip(".")},
    }
    if spacing is None:
        seq_args["metadata"]["spacing_note"] = "the image header gives no pixel spacing"
    match = CAMUS_NAME.match(stem)
    labels = None
    keyframes: set[int] = set()
    gt = _find(path.parent, f"{stem}_gt")
    if gt is not None:
        labels = check_labels(gt, read_itk(gt)[0], frames.shape)
        keyframes = {int(t) for t in np.flatnonzero(labels.reshape(len(labels), -1).any(1))}
    if match:
        _apply_camus(path, match, frames, seq_args)
        if labels is None and match["kind"] in SEQUENCE_KINDS:
            labels, keyframes = _ed_es_labels(path, match, frames.shape, seq_args)
        elif labels is not None:
            seq_args["metadata"]["full_cycle_gt"] = match["kind"] in SEQUENCE_KINDS
    provenance = [MANUAL if t in keyframes else NO_PROVENANCE for t in range(len(frames))]
    return EchoSequence(
        frames=frames, labels=labels, keyframes=keyframes, provenance=provenance, **seq_args
    )


def _apply_camus(path: Path, match: re.Match, frames: np.ndarray, seq_args: dict) -> None:
    view = match["view"]
    seq_args["view"] = VIEW_NAMES[view]
    meta = seq_args["metadata"]
    meta.update(patient=match["patient"], camus_view=view, camus_kind=match["kind"])
    cfg = path.parent / f"Info_{view}.cfg"
    if not cfg.is_file():
        logger.info("%s: no %s next to it; ED/ES unknown", path.name, cfg.name)
        return
    info = parse_info_cfg(cfg)
    meta["patient_info"] = info
    reference = {k: info[k] for k in ("EF", "LVedv", "LVesv") if k in info}
    if reference:
        meta["reference"] = {
            "EF": reference.get("EF"),
            "EDV": reference.get("LVedv"),
            "ESV": reference.get("LVesv"),
        }
    rate = info.get("FrameRate")
    if isinstance(rate, (int, float)) and rate > 0 and seq_args["frame_time_ms"] is None:
        seq_args["frame_time_ms"] = 1000.0 / float(rate)
    if match["kind"] in SEQUENCE_KINDS:
        n = len(frames)
        if "NbFrame" in info and info["NbFrame"] != n:
            raise EchoIOError(cfg, f"NbFrame={info['NbFrame']!r} but {path.name} has {n} frames")
        seq_args["ed_index"] = _frame_index(cfg, info, "ED", n)
        seq_args["es_index"] = _frame_index(cfg, info, "ES", n)


def _ed_es_labels(
    path: Path, match: re.Match, shape: tuple[int, ...], seq_args: dict
) -> tuple[np.ndarray | None, set[int]]:
    labels = np.zeros(shape, dtype=np.uint8)
    keyframes: set[int] = set()
    for phase, index_key in (("ED", "ed_index"), ("ES", "es_index")):
        gt = _find(path.parent, f"{match['patient']}_{match['view']}_{phase}_gt")
        t = seq_args.get(index_key)
        if gt is None:
            continue
        if t is None:
            logger.warning("%s: %s exists but the frame index is unknown", path.name, gt.name)
            continue
        mask = read_itk(gt)[0]
        labels[t] = check_labels(gt, mask, (1, *shape[1:]))[0]
        keyframes.add(t)
    return (labels, keyframes) if keyframes else (None, set())


def read_patient_folder(folder: str | Path, view: str | None = None) -> EchoSequence:
    """Open a CAMUS/TED patient folder: the sequence of ``view`` ("4CH" first by default).

    Without a sequence file, the ``_ED`` and ``_ES`` images form a 2-frame sequence.
    """
    folder = Path(folder)
    found = find_camus_sequence(folder, view)
    if not found.name.split("_")[-1].startswith("ED"):
        return read_image_sequence(found)
    return _ed_es_pair(folder, found)


def _ed_es_pair(folder: Path, ed_path: Path) -> EchoSequence:
    ed = read_image_sequence(ed_path)
    es_path = _find(folder, stem_without_suffix(ed_path)[:-2] + "ES")
    if es_path is None:
        return ed
    es = read_image_sequence(es_path)
    if es.frame_shape != ed.frame_shape:
        raise EchoIOError(es_path, f"ES image {es.frame_shape} differs from ED {ed.frame_shape}")
    frames = np.concatenate([ed.frames[:1], es.frames[:1]])
    labels = None
    if ed.labels is not None or es.labels is not None:
        labels = np.zeros(frames.shape, dtype=np.uint8)
        for t, part in enumerate((ed, es)):
            if part.labels is not None:
                labels[t] = part.labels[0]
    keyframes = {t for t, part in enumerate((ed, es)) if part.labels is not None}
    seq = ed.copy(
        frames=frames,
        labels=labels,
        ed_index=0,
        es_index=1,
        keyframes=keyframes,
        provenance=[ed.provenance[0], es.provenance[0]],
    )
    seq.metadata["camus_kind"] = "ED+ES"
    return seq


def write_camus_patient(
    folder: str | Path,
    seq: EchoSequence,
    view: str = "4CH",
    full_cycle_gt: bool = True,
    suffix: str = ".nii.gz",
    sequence_kind: str = "half_sequence",
) -> list[Path]:
    """Write ``seq`` in the CAMUS layout into the patient folder ``folder``.

    Files: ``<patient>_<view>_<sequence_kind>`` (uint8 frames), its ``_gt`` when
    ``full_cycle_gt`` (TED-like), ``_ED``/``_ES`` images and ``_gt`` masks, and
    ``Info_<view>.cfg`` (1-based ED/ES, NbFrame, FrameRate, EF/LVedv/LVesv when the
    metadata ``reference`` holds them). The folder name is the patient id.

    Parameters
    ----------
    seq : EchoSequence with ed_index and es_index set; labels needed for any ``_gt``.
    view : "4CH" or "2CH"
    suffix : ".nii.gz" or ".mhd"

    Returns
    -------
    list of Path
        Every file written.
    """
    folder = Path(folder)
    view = view.upper().replace("A4C", "4CH").replace("A2C", "2CH")
    if view not in VIEW_NAMES:
        raise EchoIOError(folder, f"view must be 2CH or 4CH; got {view!r}")
    if suffix not in ITK_SUFFIXES or sequence_kind not in SEQUENCE_KINDS:
        raise EchoIOError(folder, f"unsupported suffix {suffix!r} or kind {sequence_kind!r}")
    if seq.ed_index is None or seq.es_index is None:
        raise EchoIOError(folder, "the sequence needs ed_index and es_index for CAMUS files")
    base = f"{folder.name}_{view}"
    frames = frames_to_uint8(seq.frames_array())
    kw = {"spacing": seq.spacing, "frame_time_ms": seq.frame_time_ms}
    written = write_itk(frames, folder / f"{base}_{sequence_kind}{suffix}", **kw)
    if full_cycle_gt and seq.labels is not None:
        written += write_itk(seq.labels, folder / f"{base}_{sequence_kind}_gt{suffix}", **kw)
    for phase, t in (("ED", seq.ed_index), ("ES", seq.es_index)):
        written += write_itk(frames[t], folder / f"{base}_{phase}{suffix}", spacing=seq.spacing)
        if seq.labels is not None:
            written += write_itk(
                seq.labels[t], folder / f"{base}_{phase}_gt{suffix}", spacing=seq.spacing
            )
    written.append(_write_cfg(folder / f"Info_{view}.cfg", seq))
    return written


def _write_cfg(path: Path, seq: EchoSequence) -> Path:
    info: dict[str, Any] = {"ED": seq.ed_index + 1, "ES": seq.es_index + 1}
    patient = seq.metadata.get("patient_info", {})
    for key in ("Sex", "Age", "ImageQuality"):
        if key in patient:
            info[key] = patient[key]
    reference = seq.metadata.get("reference", {}) or {}
    for key, ref_key in (("EF", "EF"), ("LVedv", "EDV"), ("LVesv", "ESV")):
        if reference.get(ref_key) is not None:
            info[key] = reference[ref_key]
    info["NbFrame"] = seq.n_frames
    if seq.fps:
        info["FrameRate"] = round(seq.fps, 4)
    text = "".join(f"{key}: {value}\n" for key, value in info.items())
    with atomic_output(path) as tmp:
        (tmp / path.name).write_text(text)
    return path
