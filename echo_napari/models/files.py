"""Small networks on disk: ``<stem>.safetensors`` (tensors) and ``<stem>.json`` (card),
each written to a temporary file and renamed, so a crash never leaves half a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from echo_napari.errors import ModelError


def save_network_files(network: Any, stem: str | Path, card: dict[str, Any]) -> Path:
    """Write ``network``'s state dict and ``card``; returns the ``.safetensors`` path."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(weights)
    card_path = stem.with_suffix(".json")
    tmp_card = card_path.with_name(card_path.name + ".tmp")
    tmp_card.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    tmp_card.replace(card_path)
    return weights


def read_network_files(path: str | Path, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card and the tensors of the model at ``path`` (its ``.safetensors`` file).

    Raises
    ------
    ModelError
        "PATH: cannot load the WHAT (reason)" when either file is missing or corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
        state = load_file(str(path.with_suffix(".safetensors")))
    except (OSError, ValueError, TypeError, SafetensorError) as exc:
        raise ModelError(f"{path}: cannot load the {what} ({exc})") from exc
    return card, state


def load_state(network: Any, state: dict[str, Any], path: str | Path) -> Any:
    """``network`` with ``state`` loaded, in evaluation mode; :class:`ModelError` when the
    tensors do not fit the architecture the card describes."""
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the model card's config ({exc})") from exc
    return network.eval()


def load_cached_network(
    path: str | Path | None,
    family: str,
    what: str,
    build: Callable[[dict[str, Any]], Any],
    cache: dict[str, Any],
) -> Any:
    """The network at ``path`` (the newest bundled ``family`` when None), read once.

    Parameters
    ----------
    path : the ``.safetensors`` file, or None
    family : model family of the bundled weights (``"shape"``, ``"orient"``)
    what : its name in error messages ("shape prior")
    build : makes the untrained network from its card's ``"config"``
    cache : the caller's ``{resolved path: network}``

    Raises
    ------
    ModelError
        When the weights or card are missing, corrupt or do not fit the architecture.
    """
    if path is None:
        from echo_napari.models.registry import bundled_model

        path = bundled_model(family).path
    path = Path(path)
    key = str(path.resolve())
    if key not in cache:
        card, state = read_network_files(path, what)
        try:
            network = build(card.get("config", {}))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load the {what} ({exc})") from exc
        cache[key] = load_state(network, state, path)
    return cache[key]
