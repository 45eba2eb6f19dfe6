"""Unsupervised DIRNet training as a generator of progress records.

``train_steps`` yields a :class:`TrainRecord` per step (so a napari ``thread_worker``, the
CLI's tqdm bar and the tests drive the same code and can stop at any yield);
:func:`train` runs it to the end and returns the history. Training is resumable: every
``checkpoint_every`` steps the model and AMSGrad state go to ``checkpoint.safetensors``
and the step, configs, RNG state and history to ``checkpoint.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from echo_napari.registration.dirnet import DirNet, DirNetConfig
from echo_napari.registration.losses import registration_loss
from echo_napari.registration.spatial import warp
from echo_napari.registration.training_data import PairSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper: AMSGrad, lr 1e-3, α = 1.0, batch 32, 10,000 iters).

    Parameters
    ----------
    iterations : int
        Total optimiser steps.
    batch : int
        Pairs per step.
    lr : float
        AMSGrad learning rate.
    alpha : float
        Bending-energy weight, pixel units (see :func:`~.losses.bending_energy`). Tuned to
        10 for the bundled model (α = 2 trained worse; the paper's α = 1 is in normalised
        coordinates, ≈ 3000 in pixel units at 112 px, and was not tried).
    similarity : str
        "local_ncc" (default) or "global_ncc"; both per pair.
    window : int
        Local NCC window (pixels at the internal resolution).
    source_weights : tuple of float
        Probability of drawing a batch from each source, in the order given to training.
    seed : int
    checkpoint_every : int
    threads : int or None
        torch CPU threads during training (None leaves torch's default).
    """

    iterations: int = 2000
    batch: int = 8
    lr: float = 1e-3
    alpha: float = 10.0
    similarity: str = "local_ncc"
    window: int = 9
    source_weights: tuple[float, ...] = ()
    seed: int = 0
    checkpoint_every: int = 200
    threads: int | None = None


@dataclass(frozen=True)
class TrainRecord:
    """One training step: its loss terms and elapsed wall time (s)."""

    step: int
    loss: float
    ncc: float
    bending: float
    source: str
    elapsed: float


@dataclass
class TrainState:
    """What a checkpoint restores."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    rng_state: dict[str, Any] | None = None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def save_checkpoint(
    directory: Path,
    model: DirNet,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    train_config: TrainConfig,
) -> None:
    """Write checkpoint.safetensors + checkpoint.json into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    save_file(tensors, str(directory / "checkpoint.safetensors.tmp"))
    (directory / "checkpoint.safetensors.tmp").replace(directory / "checkpoint.safetensors")
    meta = {
        "step": state.step,
        "history": state.history,
        "rng_state": state.rng_state,
        "architecture": model.config.to_dict(),
        "train_config": asdict(train_config),
        "optimizer": optim_meta,
    }
    (directory / "checkpoint.json.tmp").write_text(json.dumps(meta))
    (directory / "checkpoint.json.tmp").replace(directory / "checkpoint.json")


def load_checkpoint(
    directory: Path, model: DirNet, optimizer: torch.optim.Optimizer
) -> TrainState:
    """Restore model, optimizer and :class:`TrainState` from ``directory``."""
    meta = json.loads((directory / "checkpoint.json").read_text())
    tensors = load_file(str(directory / "checkpoint.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": optim_state, "param_groups": meta["optimizer"]["param_groups"]}
    )
    return TrainState(step=meta["step"], history=meta["history"], rng_state=meta["rng_state"])


def train_steps(
    model: DirNet,
    sources: Sequence[PairSource],
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[TrainRecord]:
    """Train ``model`` in place, yielding one :class:`TrainRecord` per step.

    Resumes from ``checkpoint_dir`` when it holds a checkpoint. Raises ``FloatingPointError``
    (after restoring nothing) when the loss becomes NaN.
    """
    if not sources:
        raise ValueError("train_steps needs at least one PairSource")
    weights = np.asarray(config.source_weights or [1.0] * len(sources), dtype=np.float64)
    if weights.shape[0] != len(sources):
        raise ValueError(f"{len(sources)} sources but {weights.shape[0]} source_weights")
    weights = weights / weights.sum()
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, amsgrad=True)
    state = TrainState()
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if directory is not None and (directory / "checkpoint.json").exists():
        state = load_checkpoint(directory, model, optimizer)
        # The checkpoint restores the optimiser's lr; config.lr wins so that a resumed run
        # can continue at a lower learning rate (a final decay phase).
        for group in optimizer.param_groups:
            group["lr"] = config.lr
        log.info("resumed training at step %d from %s (lr %g)", state.step, directory, config.lr)
    rng = np.random.default_rng(config.seed)
    if state.rng_state is not None:
        rng.bit_generator.state = state.rng_state
    start = time.perf_counter()
    while state.step < config.iterations:
        source = sources[int(rng.choice(len(sources), p=weights))]
        fixed, moving = source.sample(rng, config.batch)
        fixed, moving = fixed.to(device), moving.to(device)
        u = model(fixed, moving)
        loss, terms = registration_loss(
            fixed, warp(moving, u), u, config.alpha, config.similarity, config.window
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {state.step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        record = TrainRecord(
            step=state.step,
            loss=terms["loss"],
            ncc=terms["ncc"],
            bending=terms["bending"],
            source=source.name,
            elapsed=time.perf_counter() - start,
        )
        state.history.append(asdict(record))
        if directory is not None and (
            state.step % config.checkpoint_every == 0 or state.step == config.iterations
        ):
            state.rng_state = rng.bit_generator.state
            save_checkpoint(directory, model, optimizer, state, config)
        yield record
    model.eval()


def train(
    model: DirNet,
    sources: Sequence[PairSource],
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> list[TrainRecord]:
    """Run :func:`train_steps` to the end and return its records."""
    return list(train_steps(model, sources, config, checkpoint_dir, device))


def new_model(config: DirNetConfig | None = None, seed: int = 0) -> DirNet:
    """A freshly initialised DIRNet (identity output) with a reproducible init."""
    torch.manual_seed(seed)
    return DirNet(config or DirNetConfig())
