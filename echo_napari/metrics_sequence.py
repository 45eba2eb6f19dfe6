"""Evaluate one predicted label sequence against a reference: one summary row per sequence.

Rules (so numbers compare between tools and with the MICCAI 2023 DIR paper):

* Frames scored: those where the reference has any label (all frames for full-cycle
  references such as TED or the simulator; the ED/ES frames for CAMUS/EchoNet).
* Classes scored: those present somewhere in the reference (EchoNet traces only the LV
  cavity, so the myocardium of a 3-class prediction is not counted as a miss).
* Per-frame metrics are averaged per sequence (:func:`echo_napari.metrics.sequence_means`).
* EF, EDV, ESV at the reference's ED/ES frames (``ed_index``/``es_index`` or, if unset, the
  max/min of the reference's LV volume curve); the prediction is measured at the same
  frames. ``ef_pred_auto`` is the prediction's EF at its *own* volume max/min, what a
  user without reference frames would get.
* ``plausible_pct_pred``: share of the prediction's frames that pass the anatomical checks
  of :mod:`echo_napari.metrics_plausibility` (%), no reference needed.
* Smoothness (Eq. 2) of each class's area curve, normalised by its mean area (1/s³ with a
  known frame time, else 1/frame³); for the reference only when it is labelled in every
  frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from echo_napari.errors import SequenceError
from echo_napari.metrics import (
    CLASS_KEYS,
    FOREGROUND_CLASSES,
    class_areas_mm2,
    distance_unit,
    frame_metrics,
    sequence_means,
)
from echo_napari.metrics_ef import ef_by_beats
from echo_napari.metrics_plausibility import frame_plausibility
from echo_napari.metrics_volume import area_curve_smoothness, ef_from_labels
from echo_napari.sequence import EchoSequence

METRIC_NAMES = ("dice", "hd", "hd95", "mad")


@dataclass(frozen=True)
class SequenceEvaluation:
    """Result of :func:`evaluate_sequence`.

    Attributes
    ----------
    summary : dict, one CSV row (keys ``dice_lv``, ``hd95_myo``, ``ef_pred``, ...)
    frames : DataFrame, per-frame per-class metrics (:func:`frame_metrics`) for the scored
        frames
    areas : DataFrame, per-frame areas of every class for all frames, columns
        ``frame, class, pred_area, ref_area`` (mm², NaN where the reference has no label)
    """

    summary: dict[str, Any]
    frames: pd.DataFrame
    areas: pd.DataFrame


def _volume_unit(spacing: tuple[float, float] | None) -> str:
    return "px3/1000" if spacing is None else "mL"


def evaluate_sequence(
    pred_labels: np.ndarray,
    reference: EchoSequence,
    name: str = "",
    classes: tuple[int, ...] | None = None,
) -> SequenceEvaluation:
    """Score predicted labels against a reference sequence's labels.

    Parameters
    ----------
    pred_labels : (T, H, W) uint8, same shape as ``reference.labels``
    reference : EchoSequence; its labels (if any), spacing, frame time, ED/ES and
        ``metadata["reference"]["EF"]`` are used. Without labels only the prediction's
        volumes/EF are measured (at the reference's ED/ES if known, else its own).
    name : sequence identifier written in the ``sequence`` column
    classes : label values to score (default: the foreground classes in the reference)

    Returns
    -------
    SequenceEvaluation
    """
    pred = np.asarray(pred_labels)
    shape = tuple(reference.frames.shape)
    if pred.shape != shape:
        raise SequenceError(
            f"{name or 'prediction'}: predicted labels have shape {pred.shape}, the reference "
            f"sequence {shape}; they must match (same frames, same size)"
        )
    spacing = reference.spacing
    scored = reference.labelled_frames()
    # Without reference labels (e.g. EchoNet videos with only FileList EF) only the
    # prediction's own volumes and EF are measured; the overlap metrics stay NaN.
    ref = reference.labels if scored else np.zeros(shape, dtype=np.uint8)
    if classes is None:
        present = set(np.unique(ref[scored]).tolist()) if scored else set()
        classes = tuple(c for c in FOREGROUND_CLASSES if c in present)
    table = frame_metrics(pred, ref, spacing, classes=classes, frames=scored)
    means = sequence_means(table) if len(table) else pd.DataFrame()

    summary: dict[str, Any] = {
        "sequence": name,
        "n_frames": int(shape[0]),
        "scored_frames": len(scored),
        "distance_unit": distance_unit(spacing),
        "volume_unit": _volume_unit(spacing),
    }
    for label in FOREGROUND_CLASSES:
        key = CLASS_KEYS[label]
        row = means.loc[key] if key in means.index else None
        for metric in (*METRIC_NAMES, "missed"):
            summary[f"{metric}_{key}"] = float(row[metric]) if row is not None else np.nan

    ed, es = reference.ed_index, reference.es_index
    if scored and (ed is None or es is None):
        ref_volume = ef_from_labels(ref, spacing, "simpson")
        ed = ref_volume.ed_index if ed is None else ed
        es = ref_volume.es_index if es is None else es
    if ed is None or es is None:
        own = ef_from_labels(pred, spacing, "simpson")
        ed, es = own.ed_index, own.es_index
    summary["ed_index"], summary["es_index"] = int(ed), int(es)
    for method, suffix in (("simpson", ""), ("area_length", "_area_length")):
        ref_v = ef_from_labels(ref, spacing, method, ed, es)
        pred_v = ef_from_labels(pred, spacing, method, ed, es)
        labelled_ed_es = bool(ref[ed].any() and ref[es].any())
        for quantity in ("ef", "edv", "esv"):
            value = getattr(ref_v, quantity) if labelled_ed_es else np.nan
            summary[f"{quantity}_ref{suffix}"] = value
            summary[f"{quantity}_pred{suffix}"] = getattr(pred_v, quantity)
    summary["ef_pred_auto"] = ef_from_labels(pred, spacing, "simpson").ef
    # The clip's EF as `predict` reports it: area-length, mean over the beats it finds.
    summary["ef_pred_beats"] = (
        ef_by_beats(pred, spacing, frame_time_ms=reference.frame_time_ms).ef
        if shape[0] >= 3 and pred.any()
        else np.nan
    )
    checks = frame_plausibility(pred, frame_time_ms=reference.frame_time_ms)
    summary["plausible_pct_pred"] = 100.0 * checks.plausible_share()
    reference_facts = reference.metadata.get("reference") or {}
    summary["ef_file"] = float(reference_facts.get("EF", np.nan))

    pred_areas = class_areas_mm2(pred, spacing)
    ref_areas = class_areas_mm2(ref, spacing)
    labelled = np.zeros(ref.shape[0], dtype=bool)
    labelled[scored] = True
    full_cycle = bool(labelled.all())
    for label in FOREGROUND_CLASSES:
        key = CLASS_KEYS[label]
        summary[f"smoothness_pred_{key}"] = area_curve_smoothness(
            pred_areas[:, label], reference.frame_time_ms, normalise=True
        )
        summary[f"smoothness_ref_{key}"] = (
            area_curve_smoothness(ref_areas[:, label], reference.frame_time_ms, normalise=True)
            if full_cycle and label in classes
            else np.nan
        )
    area_rows = [
        {
            "frame": t,
            "class": CLASS_KEYS[label],
            "pred_area": pred_areas[t, label],
            "ref_area": ref_areas[t, label] if labelled[t] else np.nan,
        }
        for label in FOREGROUND_CLASSES
        for t in range(ref.shape[0])
    ]
    frames = table.assign(sequence=name) if len(table) else _empty_frame_table(name)
    areas = pd.DataFrame(area_rows).assign(sequence=name)
    return SequenceEvaluation(summary=summary, frames=frames, areas=areas)


def _empty_frame_table(name: str) -> pd.DataFrame:
    columns = [
        "frame",
        "label",
        "class",
        "dice",
        "hd",
        "hd95",
        "mad",
        "pred_area",
        "ref_area",
        "distance_unit",
        "sequence",
    ]
    return pd.DataFrame(columns=columns).assign(sequence=name)
