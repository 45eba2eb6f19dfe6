"""``echo-napari propagate | predict | train-dir | train-seg``: the torch-backed commands.

``propagate`` and ``predict`` run one task per sequence (serial or on dask workers, one
torch thread per worker) and write ``OUT/<sequence id><suffix>`` with the new labels and
their provenance; existing outputs are skipped. ``propagate`` also writes
``OUT/<sequence id>_jacobian.csv``: Jacobian determinant statistics of every
frame-to-frame field (the report draws them as boxplots per frame).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from echo_napari.cli_convert import _read
from echo_napari.cli_evaluate import list_inputs, safe_name, sequence_id
from echo_napari.cli_tasks import TaskOutcome, run_tasks, write_csv_atomic
from echo_napari.errors import EchoNapariError, SequenceError
from echo_napari.sequence import (
    MANUAL,
    MIRRORED_VIEW_KEY,
    EchoSequence,
    FrameProvenance,
    ProvenanceKind,
)

logger = logging.getLogger(__name__)


def jacobian_csv_path(output: str | Path) -> Path:
    """Where ``propagate`` puts the Jacobian table of the sequence written to ``output``."""
    output = Path(output)
    name = output.name
    for suffix in (".nii.gz", ".nii", ".mhd", ".h5", ".hdf5"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}_jacobian.csv")


def jacobian_table(forward: np.ndarray) -> pd.DataFrame:
    """Per-pair Jacobian statistics of ``forward`` fields ``(T-1, 2, H, W)``, pixels."""
    from echo_napari.metrics_stats import PERCENTILES, jacobian_statistics

    rows = []
    for t, stats in enumerate(jacobian_statistics(forward)):
        row: dict[str, Any] = {
            "pair": t,
            "fixed": t + 1,
            "moving": t,
            "folding_fraction": stats.folding_fraction,
            "min": stats.min,
            "max": stats.max,
            "mean": stats.mean,
            "log_std": stats.log_std,
        }
        row.update({f"p{q}": v for q, v in zip(PERCENTILES, stats.percentiles, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def propagate_one(item: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Task: propagate a sequence's keyframe labels to every frame and write it."""
    from echo_napari.io import write_sequence
    from echo_napari.registration import get_backend, pairwise_fields, propagate_from_keyframes
    from echo_napari.registration.backends import propagated_provenance

    src, dst, options = item
    seq = _read(src)
    if seq.labels is None:
        raise SequenceError(f"{Path(src).name}: no labels to propagate (label ED/ES first)")
    keyframes = options.get("keyframes") or sorted(seq.keyframes) or seq.labelled_frames()
    empty = [k for k in keyframes if not 0 <= k < seq.n_frames or not seq.labels[k].any()]
    if not keyframes or empty:
        raise SequenceError(
            f"{Path(src).name}: keyframes {empty or keyframes} are outside the sequence or "
            f"unlabelled (labelled frames: {seq.labelled_frames()})"
        )
    backend = get_backend(
        "dirnet",
        device=options.get("device"),
        weights=options.get("weights"),
        threads=options.get("threads"),
        refine_steps=options.get("refine_steps", 0),
    )
    fields = pairwise_fields(seq.frames_array(), backend)
    result = propagate_from_keyframes(fields, {k: seq.labels[k] for k in keyframes})
    made = propagated_provenance(backend, "dirnet")
    out = seq.copy(
        labels=result.labels,
        keyframes=set(keyframes),
        provenance=[MANUAL if t in keyframes else made for t in range(seq.n_frames)],
    )
    write_sequence(out, dst)
    table = jacobian_table(fields.forward)
    write_csv_atomic(table.assign(sequence=sequence_id(src)), jacobian_csv_path(dst))
    return {
        "frames": seq.n_frames,
        "keyframes": ",".join(map(str, keyframes)),
        "folding_pct": 100.0 * float(table["folding_fraction"].mean()),
        "output": dst,
    }


def predict_one(item: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Task: segment every frame of a sequence with the segmentation model and write it.

    The summary gives the beat-mean EF of the prediction (%) and the share of frames
    whose labels pass the anatomical checks (``plausible_pct``, over the labelled frames): a
    low share says the EF is not to be trusted before review. ``no_view`` counts the frames
    left unlabelled because the model found no heart there (probe off the chest, a changed
    view: :func:`echo_napari.metrics_plausibility.view_lost_frames`) or found the LV only
    away from where it is on the frames around them
    (:func:`echo_napari.metrics_place.displaced_lv_frames`); ``mitral_cut`` the
    frames whose LV, drawn around the LA, was cut back to the mitral plane
    (:mod:`echo_napari.segmentation.mitral_plane`); ``apex_restored`` the frames on which
    the LV lost its apex, re-drawn from the frames either side by registration after the
    shape prior (:mod:`echo_napari.registration.apex_restore`; recorded as propagated
    frames); ``unsure`` the labelled frames whose LV
    border the network was unsure of (:mod:`echo_napari.uncertainty`: check
    those first; kept in the output's metadata, where the review dock finds them). Unless
    ``options["refine"]`` is False, each frame's LV border is moved to the image's
    blood/wall border (:func:`echo_napari.segmentation.boundary.refine_lv_boundary`;
    ``refined`` counts the frames it moved). With ``options["repair"]`` the frames failing
    the checks are re-drawn from the passing ones by registration
    (:func:`echo_napari.registration.repair.repair_implausible_frames`; ``repaired``
    counts them, recorded as propagated frames). ``options["both_directions"]`` False runs
    the network on the clip played forwards only (on overlapping windows: the same time);
    ``options["mirrored"]`` reads the clips as mirrored apical views (LV on the left) and
    records that in the output's metadata. ``view`` is the apical convention the clip
    looks like (:mod:`echo_napari.view_orientation`: "standard", "mirrored" or
    "unsure"), followed by ", apex down" for a clip shown apex down (turned apex up for
    the models: :mod:`echo_napari.field_of_view`); ``view_warning`` says so when it
    contradicts ``options["mirrored"]``; ``probe_warning`` when the labels look upside
    down for an apical view (:mod:`echo_napari.probe_side`).
    """
    from echo_napari.field_of_view import find_field_of_view
    from echo_napari.io import write_sequence
    from echo_napari.metrics_ef import ef_by_beats
    from echo_napari.metrics_plausibility import frame_plausibility
    from echo_napari.probe_side import probe_side_warning
    from echo_napari.segmentation import load_model, predict_sequence
    from echo_napari.segmentation.plausible_shapes import draw_plausible_shapes
    from echo_napari.segmentation.shape_prior import shaped_version
    from echo_napari.uncertainty import count_unsure, store_uncertainty
    from echo_napari.view_orientation import check_orientation_or_none

    src, dst, options = item
    if options.get("threads"):
        import torch

        torch.set_num_threads(int(options["threads"]))
    seq = _read(src)
    model = load_model(options.get("model") or "bundled", device=options.get("device"))
    frames = seq.frames_array()
    both = options.get("both_directions", True)
    view = find_field_of_view(frames)  # once, for the network and the border
    tally: dict[str, int] = {}
    uncertainty: list[float] = []
    labels = predict_sequence(
        frames,
        model,
        refine=False,
        shape_prior=False,
        both_directions=both,
        frame_time_ms=seq.frame_time_ms,
        mirrored=bool(options.get("mirrored", False)),
        field_of_view=view,
        tally=tally,
        uncertainty=uncertainty,
    )
    refine = options.get("refine", True)
    version = model.version
    if refine:
        from echo_napari.segmentation.boundary import (
            moved_frames,
            refine_lv_boundary,
            refined_version,
        )

        network = labels
        labels = refine_lv_boundary(frames, network, field_of_view=view)
        moved = int(moved_frames(network, labels).sum())
        version = refined_version(version)
    # judged on the labels as drawn from the image: the prior must not hide it
    probe_warning = probe_side_warning(labels, view)
    restored = None
    if options.get("shape_prior", True):
        from echo_napari.registration import get_backend

        labels, restored = draw_plausible_shapes(
            frames,
            labels,
            view,
            seq.frame_time_ms,
            lambda: get_backend(
                "dirnet", device=options.get("device"), threads=options.get("threads")
            ),
        )
        version = shaped_version(version)
    made = FrameProvenance(ProvenanceKind.PREDICTED, model.name, version)
    provenance = [made] * seq.n_frames
    if restored is not None and restored.redrawn.size:
        from echo_napari.registration.backends import propagated_provenance

        carried = propagated_provenance(restored.backend, "dirnet")
        for t in restored.redrawn.tolist():
            provenance[t] = carried
    repaired: list[int] = []
    if options.get("repair") and seq.n_frames >= 2:
        from echo_napari.registration import get_backend
        from echo_napari.registration.backends import propagated_provenance
        from echo_napari.registration.repair import repair_implausible_frames

        backend = get_backend(
            "dirnet", device=options.get("device"), threads=options.get("threads")
        )
        fix = repair_implausible_frames(frames, labels, backend, frame_time_ms=seq.frame_time_ms)
        labels, repaired = fix.labels, fix.repaired.tolist()
        carried = propagated_provenance(backend, "dirnet")
        for t in repaired:
            provenance[t] = carried
    out = seq.copy(labels=labels, keyframes=set(), provenance=provenance)
    if options.get("mirrored"):
        out.metadata[MIRRORED_VIEW_KEY] = True  # fine-tuning on the output mirrors it too
    if len(uncertainty) == seq.n_frames:  # the review dock's Next suspicious reads it
        every = np.arange(seq.n_frames)
        store_uncertainty(out.metadata, every, np.asarray(uncertainty), seq.n_frames)
    write_sequence(out, dst)
    lv = (labels == 1).reshape(seq.n_frames, -1).sum(axis=1)
    ef = (
        ef_by_beats(labels, seq.spacing, frame_time_ms=seq.frame_time_ms).ef
        if seq.n_frames >= 3 and lv.any()
        else float("nan")
    )
    checks = frame_plausibility(labels, frame_time_ms=seq.frame_time_ms)
    orientation = check_orientation_or_none(frames, field_of_view=view)
    return {
        "frames": seq.n_frames,
        "model": model.version,
        "lv_frames": int((lv > 0).sum()),
        "no_view": int(np.count_nonzero(~checks.labelled)),
        "mitral_cut": tally.get("cut_at_mitral_plane", 0),
        "apex_restored": 0 if restored is None else int(restored.redrawn.size),
        "unsure": count_unsure(uncertainty, lv > 0),
        "ef": round(ef, 1),
        # no LV anywhere: nothing the checks could judge (not "100 % plausible")
        "plausible_pct": round(100.0 * checks.plausible_share(), 1) if lv.any() else float("nan"),
        **({"refined": moved} if refine else {}),
        **({"repaired": len(repaired)} if options.get("repair") else {}),
        "view": ", ".join(
            part
            for part in (
                orientation.verdict if orientation is not None else "",
                "apex down" if view.apex_down else "",
            )
            if part
        ),
        "view_warning": (
            orientation.warning(bool(options.get("mirrored", False))) if orientation else ""
        ),
        "probe_warning": probe_warning,
        "output": dst,
    }


def run_per_sequence(
    task: Any,
    src: str | Path,
    out: str | Path,
    options: dict[str, Any],
    suffix: str = ".h5",
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    description: str = "sequences",
) -> list[TaskOutcome]:
    """Run ``task`` on every sequence of ``src``, writing ``out/<id><suffix>``."""
    sources = list_inputs(src)
    out = Path(out)
    if workers > 1 or scheduler:
        # One torch thread per worker process: N workers on N cores, no oversubscription.
        options = {**options, "threads": 1}
    items = [(s, str(out / f"{safe_name(sequence_id(s))}{suffix}"), options) for s in sources]
    names = [sequence_id(s) for s in sources]
    skip = set() if overwrite else {i for i, it in enumerate(items) if Path(it[1]).exists()}
    todo = [i for i in range(len(items)) if i not in skip]
    ran = iter(
        run_tasks(
            task,
            [items[i] for i in todo],
            [names[i] for i in todo],
            workers=workers,
            scheduler=scheduler,
            description=description,
        )
    )
    return [
        TaskOutcome(names[i], "skipped", {"output": items[i][1]}) if i in skip else next(ran)
        for i in range(len(items))
    ]


def train_dir(
    data: str | Path,
    weights: str | Path,
    iterations: int,
    batch: int,
    device: str | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Train a DIRNet on every sequence of ``data`` (unsupervised: NCC + bending energy).

    Resumes from the checkpoint folder ``<weights>.ckpt`` when present; writes
    ``weights`` (.safetensors) and its JSON card.
    """
    from echo_napari.registration import default_device
    from echo_napari.registration.modelio import save_dirnet
    from echo_napari.registration.training import TrainConfig, new_model, train_steps
    from echo_napari.registration.training_data import PairSource, to_internal

    model = new_model()
    size = model.config.size
    sources = list_inputs(data)
    sequences = []
    for s in sources:
        try:
            sequences.append(to_internal(_read(s).frames_array(), size))
        except EchoNapariError as exc:
            logger.warning("%s: left out of training: %s", s, exc)
    source = PairSource(sequences, f"sequences of {data}")
    config = TrainConfig(
        iterations=iterations, batch=batch, checkpoint_every=max(1, iterations // 10)
    )
    device = device or default_device()
    weights = Path(weights)
    last = None
    for record in train_steps(model, [source], config, weights.with_suffix(".ckpt"), device):
        last = record
        if progress is not None:
            progress(record.step, iterations)
    card = {
        "name": "dirnet",
        "version": weights.stem,
        "training": {**config.__dict__, "data": str(data), "sequences": len(sequences)},
    }
    save_dirnet(model, weights, card)
    return {
        "steps": iterations,
        "loss": last.loss if last else float("nan"),
        "sequences": len(sequences),
        "output": str(weights),
    }


def train_seg(
    data: str | Path,
    stem: str | Path,
    steps: int,
    device: str | None = None,
    progress: Any = None,
    channels: tuple[int, ...] | None = None,
    clip_len: int | None = None,
) -> dict[str, Any]:
    """Train the 2D+time U-Net on the labelled frames of every sequence of ``data``.

    Frames with labels (the keyframes, or every labelled frame) get loss weight 1, others 0.
    ``channels`` / ``clip_len`` change the bundled architecture (smaller = faster).
    Writes ``<stem>.safetensors`` and ``<stem>.json``.
    """
    from dataclasses import replace

    from echo_napari.registration import default_device
    from echo_napari.segmentation import (
        BUNDLED_CONFIG,
        SegmentationModel,
        TrainConfig,
        build_model,
        make_sample,
        save_model,
        train_steps,
    )
    from echo_napari.segmentation.training import frame_weights

    changes = {k: v for k, v in (("channels", channels), ("clip_len", clip_len)) if v}
    network = build_model(replace(BUNDLED_CONFIG, **changes))
    size = network.config.size
    samples = []
    for s in list_inputs(data):
        try:
            seq = _read(s)
        except EchoNapariError as exc:
            logger.warning("%s: left out of training: %s", s, exc)
            continue
        labelled = seq.labelled_frames()
        if not labelled:
            logger.warning("%s: no labels; left out of training", s)
            continue
        weights = frame_weights(seq.n_frames, labelled)
        samples.append(make_sample(seq.frames_array(), seq.labels, weights, size))
    if not samples:
        raise EchoNapariError(f"{data}: no labelled sequences to train on")
    config = TrainConfig(steps=steps, clip_len=network.config.clip_len)
    device = device or default_device()
    last = None
    for record in train_steps(network, samples, config, device=device):
        last = record
        if progress is not None:
            progress(record.step, record.total)
    stem = Path(stem)
    card = {
        "name": "seg",
        "version": stem.name,
        "training": {**config.to_dict(), "data": str(data), "sequences": len(samples)},
    }
    path = save_model(SegmentationModel(network, card), stem)
    return {
        "steps": steps,
        "loss": last.loss if last else float("nan"),
        "sequences": len(samples),
        "output": str(path),
    }


def _read_corrected(path: str | Path, use_autosave: bool) -> EchoSequence:
    """A labelled sequence: a session file (its keyframes and provenance) or any reader's."""
    from echo_napari.session_store import is_session_file

    if not is_session_file(path):
        return _read(path)
    from echo_napari.session import RecoveryAvailableError, Session

    p = Path(path)
    try:
        session = Session.open(p, recovery="use" if use_autosave else "ask")
    except RecoveryAvailableError as exc:
        raise EchoNapariError(
            f"{p.name}: a newer autosave exists; open the session in napari to decide, or "
            "pass --use-autosave to fine-tune on the autosaved state"
        ) from exc
    return session.committed_sequence()


def fine_tune_seg(
    path: str | Path,
    base: str,
    steps: int,
    device: str | None = None,
    progress: Any = None,
    use_autosave: bool = False,
    propagated_weight: float = 0.3,
) -> dict[str, Any]:
    """Fine-tune the segmentation model on the corrected frames of one sequence.

    Corrected frames are the keyframes and frames with manual provenance (a session file
    keeps them; an EchoNet video with tracings or a CAMUS/TED sequence has its traced
    frames); propagated frames count with ``propagated_weight``. Writes a new user version
    (never overwrites; parent recorded) and returns its name, path and the Dice on the
    corrected frames before and after.
    """
    from echo_napari.segmentation import fine_tune

    sequence = _read_corrected(path, use_autosave)
    version = fine_tune(
        sequence,
        base=base,
        steps=steps,
        propagated_weight=propagated_weight,
        progress=progress,
        device=device,
    )
    if version is None:  # only a should_stop callback cancels, and the CLI passes none
        raise EchoNapariError(f"{Path(path).name}: fine-tuning stopped before the end")
    dice = version.card.get("fine_tune", {}).get("dice_on_corrected_frames", {})
    return {
        "version": version.id,
        "dice before": _format_dice(dice.get("before")),
        "dice after": _format_dice(dice.get("after")),
        "output": str(version.path),
        "view_warning": version.card.get("fine_tune", {}).get("view_warning", ""),
    }


def _format_dice(per_class: dict[str, float] | None) -> str:
    """``{"lv": 0.97, ...}`` → ``"lv 0.970 / myocardium 0.934 ..."`` for the summary table."""
    if not per_class:
        return "n/a"
    return " / ".join(f"{name} {value:.3f}" for name, value in per_class.items())
