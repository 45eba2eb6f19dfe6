"""DIRNet weights on disk: safetensors + a JSON model card (no pickle, ever).

The card holds the architecture (:class:`~echo_napari.registration.dirnet.DirNetConfig`)
so a weights file rebuilds its own model, plus what it was trained on and how well it did.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from echo_napari.errors import ModelError
from echo_napari.registration.dirnet import DirNet, DirNetConfig


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_dirnet(model: DirNet, weights_path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model`` to ``weights_path`` (.safetensors) and its card next to it (.json).

    The architecture config is added to the card under ``"architecture"``. Both files are
    written atomically (temp file + rename).
    """
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=weights_path.parent, suffix=".safetensors.tmp")
    os.close(fd)
    save_file(state, tmp, metadata={"format": "pt", "model": "DirNet"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, weights_path)
    full_card = {"model": "DirNet", **card, "architecture": model.config.to_dict()}
    _atomic_write_text(weights_path.with_suffix(".json"), json.dumps(full_card, indent=2))
    return weights_path


def read_card(weights_path: str | Path) -> dict[str, Any]:
    """The JSON model card next to ``weights_path``."""
    card_path = Path(weights_path).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError as error:
        raise ModelError(f"{card_path.name}: model card missing next to the weights") from error
    except json.JSONDecodeError as error:
        raise ModelError(f"{card_path.name}: model card is not valid JSON ({error})") from error
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelError(f"{card_path.name}: model card has no 'architecture' entry")
    return card


def load_dirnet(weights_path: str | Path, device: str | torch.device = "cpu") -> DirNet:
    """Rebuild a DirNet from its card and load its safetensors weights (eval mode)."""
    weights_path = Path(weights_path)
    card = read_card(weights_path)
    try:
        config = DirNetConfig.from_dict(card["architecture"])
    except (TypeError, ValueError) as error:
        raise ModelError(
            f"{weights_path.name}: bad architecture in model card ({error})"
        ) from error
    model = DirNet(config)
    try:
        state = load_file(str(weights_path), device=str(device))
    except (FileNotFoundError, SafetensorError, OSError) as error:
        raise ModelError(
            f"{weights_path.name}: cannot read safetensors weights ({error})"
        ) from error
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ModelError(
            f"{weights_path.name}: weights do not match the architecture in the card ({error})"
        ) from error
    return model.to(device).eval()
