"""Unsupervised DIRNet training on the open sequences, as a cancellable generator (no Qt).

The training dock runs :func:`dir_training_steps` in a ``thread_worker``. It trains a copy
of a DIRNet version on intra-sequence pairs of the given frames, checks ``should_stop``
before every step, and only a run that finishes writes a new user version
(``dirnet_v<N>``, atomically, with its model card: parent, data, schedule, and the
NCC / folding of consecutive pairs before and after training).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from echo_napari.errors import RegistrationError
from echo_napari.models.registry import ModelVersion, list_models, next_user_model_path
from echo_napari.registration.backends import DirnetBackend, default_device
from echo_napari.registration.evaluation import evaluate_unlabelled
from echo_napari.registration.modelio import load_dirnet, read_card, save_dirnet
from echo_napari.registration.training import TrainConfig, TrainRecord, train_steps
from echo_napari.registration.training_data import PairSource, to_internal

logger = logging.getLogger(__name__)

#: Steps of the default schedule: a few minutes on a laptop CPU, more on CUDA.
DEFAULT_STEPS = {"cpu": 100, "cuda": 2000}

#: Consecutive pairs per sequence scored before/after (bounds the evaluation time).
EVAL_PAIRS = 16


def dir_versions() -> list[ModelVersion]:
    """Bundled and user DIRNet versions, oldest first."""
    return list_models("dirnet")


def version_summary(version: ModelVersion) -> dict[str, Any]:
    """Display facts of a DIRNet version's card: parent, steps, NCC/folding before→after."""
    try:
        card = version.card()
    except Exception as error:  # noqa: BLE001 (a broken card must not break the list)
        return {"label": version.label, "error": str(error)}
    retrain = card.get("retrain", {})
    validation = card.get("validation", {})
    return {
        "label": version.label,
        "parent": card.get("parent", ""),
        "created": card.get("created", ""),
        "steps": card.get("training", {}).get("iterations_done"),
        "ncc_parent": retrain.get("ncc_after_parent"),
        "ncc_after": retrain.get("ncc_after"),
        "folding_after": retrain.get("folding_after"),
        "val_lv_dice": validation.get("lv_dice_fused_mean"),
    }


def _score(backend: DirnetBackend, sequences: Sequence[np.ndarray]) -> dict[str, float]:
    scores = [evaluate_unlabelled(backend, frames, EVAL_PAIRS) for frames in sequences]
    return {
        "ncc_before": float(np.mean([s.ncc_before for s in scores])),
        "ncc_after": float(np.mean([s.ncc_after for s in scores])),
        "folding": float(np.mean([s.folding for s in scores])),
    }


def dir_training_steps(
    sequences: Sequence[np.ndarray],
    base: ModelVersion | None = None,
    steps: int | None = None,
    batch: int = 4,
    lr: float = 1e-4,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
    threads: int | None = 1,
    names: Sequence[str] = (),
    seed: int = 0,
) -> Generator[TrainRecord, None, Path | None]:
    """Train a copy of ``base`` on ``sequences``; yields a record per step.

    Parameters
    ----------
    sequences : list of (T, H, W) float32 in [0, 1], T ≥ 2
    base : the DIRNet version to start from (None = the newest bundled one)
    steps : optimiser steps (None = :data:`DEFAULT_STEPS` for the device)
    batch : pairs per step
    lr : AMSGrad learning rate (small: this refines a trained model)
    should_stop : checked before every step; a cancelled run writes nothing
    device : torch device (None = CUDA when available, else CPU)
    threads : torch CPU threads for the run
    names : sequence names for the model card

    Returns (generator return value)
    -------
    Path of the new ``dirnet_v<N>.safetensors``, or None when cancelled.
    """
    device = device or default_device()
    steps = int(steps or DEFAULT_STEPS.get(torch.device(device).type, 100))
    if not sequences or any(np.ndim(s) != 3 or len(s) < 2 for s in sequences):
        raise RegistrationError("DIR training needs (T, H, W) sequences with at least 2 frames")
    if base is None:
        bundled = [v for v in dir_versions() if v.bundled]
        if not bundled:
            raise RegistrationError("no bundled DIRNet weights to start training from")
        base = max(bundled, key=lambda v: v.version)
    base_card = read_card(base.path)
    model = copy.deepcopy(load_dirnet(base.path, device))
    base_training = base_card.get("training", {})
    config = TrainConfig(
        iterations=steps,
        batch=batch,
        lr=lr,
        alpha=float(base_training.get("alpha", 10.0)),
        window=int(base_training.get("window", 9)),
        seed=seed,
        checkpoint_every=max(steps, 1),
        threads=threads,
    )
    size = model.config.size
    source = PairSource([to_internal(s, size) for s in sequences], "open sequences", max_gap=8)
    before_backend = DirnetBackend(model=copy.deepcopy(model), device=device)
    before_backend.alpha, before_backend.window = config.alpha, config.window
    before = _score(before_backend, sequences)
    started = time.perf_counter()
    last: TrainRecord | None = None
    generator = train_steps(model, [source], config, None, device)
    while True:
        if should_stop is not None and should_stop():
            generator.close()
            logger.info("DIR training cancelled at step %s; nothing written", last and last.step)
            return None
        try:
            last = next(generator)
        except StopIteration:
            break
        yield last
    model.eval()
    after_backend = DirnetBackend(model=model, device=device)
    after = _score(after_backend, sequences)
    if should_stop is not None and should_stop():
        return None
    out = next_user_model_path("dirnet")
    card = {
        "version": out.stem,
        "parent": base.path.stem,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "description": "DIRNet fine-tuned unsupervised on the sequences open in napari",
        "convention": base_card.get("convention", "pull; (N, 2, H, W) pixels"),
        "training": {
            **asdict(config),
            "iterations_done": 0 if last is None else last.step,
            "final_loss": None if last is None else last.loss,
            "seconds": round(time.perf_counter() - started, 1),
            "device": str(device),
        },
        "data": [{"name": "sequences open in napari", "sequences": list(names)}],
        "retrain": {
            "pairs_scored_per_sequence": EVAL_PAIRS,
            "ncc_before": after["ncc_before"],
            "ncc_after_parent": before["ncc_after"],
            "ncc_after": after["ncc_after"],
            "folding_parent": before["folding"],
            "folding_after": after["folding"],
        },
    }
    save_dirnet(model, out, card)
    logger.info("wrote %s (NCC %.3f → %.3f)", out, before["ncc_after"], after["ncc_after"])
    return out
