"""Loading and saving segmentation models: safetensors weights + a JSON model card.

A model on disk is two files with the same stem: ``<stem>.safetensors`` (tensors only, no
pickle, so loading a user's file can never run code) and ``<stem>.json`` (the card: the
architecture needed to rebuild the network, the training data, mode, epochs and held-out
metrics). Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from echo_napari.errors import ModelError
from echo_napari.segmentation.model import UNet2DTime, UNetConfig, use_fast_cpu_layout

logger = logging.getLogger(__name__)

CARD_FORMAT = "echo-napari-segmentation/1"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: Model family name in :mod:`echo_napari.models.registry` (files ``seg_v<N>.safetensors``).
FAMILY = "seg"
BUNDLED_STEM = MODELS_DIR / "seg_v4"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"unknown torch device {device!r}: {exc}") from exc


@dataclass
class SegmentationModel:
    """A network together with its card.

    Parameters
    ----------
    network : UNet2DTime
        The torch module (in eval mode after loading).
    card : dict
        Model card (``architecture``, ``name``, ``version``, data, metrics, ...).
    device : torch.device
        Where the network lives.
    """

    network: UNet2DTime
    card: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def config(self) -> UNetConfig:
        """The architecture."""
        return self.network.config

    @property
    def name(self) -> str:
        """Model name, e.g. ``"seg"``."""
        return str(self.card.get("name", "segmentation"))

    @property
    def version(self) -> str:
        """Version identifier, e.g. ``"seg_v1"``."""
        return str(self.card.get("version", ""))

    def to(self, device: str | torch.device) -> SegmentationModel:
        """Move the network to ``device`` (in place) and return self."""
        self.device = resolve_device(device)
        self.network.to(self.device)
        return self


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path`` so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes 0600 files; give the usual permissions (umask applied).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: SegmentationModel, stem: str | Path) -> Path:
    """Write ``<stem>.safetensors`` (float16 tensors) and ``<stem>.json``; return the weights path.

    The JSON card is written last, so a stem with a card always has complete weights.
    """
    stem = Path(stem)
    weights_path = stem.with_suffix(".safetensors")
    card_path = stem.with_suffix(".json")
    # float16 halves the file (the bundled model stays well under 5 MB); the values are
    # cast back to float32 on load, which costs no measurable accuracy for this network.
    tensors = {
        k: v.detach().to("cpu", torch.float16).contiguous()
        for k, v in model.network.state_dict().items()
    }
    card = dict(model.card)
    card["format"] = CARD_FORMAT
    card["architecture"] = model.config.to_dict()
    card["weights_file"] = weights_path.name
    card["n_parameters"] = int(sum(v.numel() for v in tensors.values()))
    _atomic_write_bytes(weights_path, lambda p: save_file(tensors, str(p)))
    text = json.dumps(card, indent=2, sort_keys=False, default=str)
    _atomic_write_bytes(card_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return weights_path


def read_card(path: str | Path) -> dict[str, Any]:
    """Read and check a model card JSON; raises :class:`ModelError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model card not found (expected a .json next to the weights)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model card is not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelError(f"{path}: model card has no 'architecture' entry; cannot rebuild")
    return card


def _paths_for(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        if len(found) != 1:
            raise ModelError(
                f"{path}: expected exactly one .safetensors file in the folder; found {len(found)}"
            )
        path = found[0]
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    if path.suffix != ".safetensors":
        raise ModelError(
            f"{path}: not a model file (expected .safetensors with a .json card; "
            "PyTorch pickles are not loaded for safety)"
        )
    return path, path.with_suffix(".json")


def load_model_file(
    path: str | Path, device: str | torch.device | None = None
) -> SegmentationModel:
    """Load a model from a ``.safetensors`` (+ ``.json``) pair or a folder holding one.

    Raises
    ------
    ModelError
        Missing files, invalid card, corrupt or mismatching weights.
    """
    weights_path, card_path = _paths_for(Path(path))
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: weights file not found")
    card = read_card(card_path)
    config = UNetConfig.from_dict(card["architecture"])
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    network = UNet2DTime(config)
    state = {k: v.to(torch.float32) for k, v in tensors.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{weights_path}: weights do not match the architecture in {card_path.name} ({exc})"
        ) from exc
    for name, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ModelError(f"{weights_path}: tensor {name!r} holds NaN or infinite values")
    card.setdefault("path", str(weights_path))
    dev = resolve_device(device)
    network.eval().to(dev)
    if dev.type == "cpu":
        use_fast_cpu_layout(network)
    logger.debug("loaded segmentation model %s from %s", card.get("name"), weights_path)
    return SegmentationModel(network=network, card=card, device=dev)
