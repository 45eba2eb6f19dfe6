"""Segmentation model versions: bundled weights plus fine-tuned versions of the user.

Files follow :mod:`echo_napari.models.registry` (family ``"seg"``): the bundled model is
``echo_napari/models/seg_v1.safetensors`` + ``.json``; fine-tuned versions are
``<user data>/models/seg_v<N>.safetensors`` with a new, higher N each time, so nothing is
ever overwritten. Each card records its ``parent``. One version is *selected* (a small
pointer file, ``seg_selected.json``; the newest bundled version when none is chosen);
:func:`rollback` selects the parent of the selected version.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from echo_napari.errors import ModelError
from echo_napari.models import registry
from echo_napari.segmentation.weights import (
    FAMILY,
    SegmentationModel,
    _atomic_write_bytes,
    load_model_file,
    read_card,
)

logger = logging.getLogger(__name__)

BUNDLED = "bundled"
SELECTED = "selected"


@dataclass(frozen=True)
class ModelVersion:
    """One stored segmentation model.

    Parameters
    ----------
    id : str
        ``"seg_v<N>"``, the file stem.
    number : int
        N.
    path : Path
        The ``.safetensors`` file (its ``.json`` card lies next to it).
    bundled : bool
        True for weights shipped in the package.
    parent : str or None
        Identifier of the version it was fine-tuned from.
    created : str
        ISO 8601 UTC time ("" when the card does not say).
    card : dict
        The model card (data, training, metrics before/after).
    """

    id: str
    number: int
    path: Path
    bundled: bool
    parent: str | None = None
    created: str = ""
    card: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        """Display name, e.g. ``"seg v2 (user, from seg_v1)"``."""
        origin = "bundled" if self.bundled else "user"
        parent = f", from {self.parent}" if self.parent else ""
        return f"{FAMILY} v{self.number} ({origin}{parent})"


def _from_registry(item: registry.ModelVersion) -> ModelVersion:
    card = read_card(item.path.with_suffix(".json"))
    return ModelVersion(
        id=item.path.stem,
        number=item.version,
        path=item.path,
        bundled=item.bundled,
        parent=card.get("parent"),
        created=str(card.get("created", "")),
        card=card,
    )


def list_versions() -> list[ModelVersion]:
    """Bundled versions, then the user's fine-tuned versions, oldest first.

    Versions whose card is unreadable are skipped with a warning.
    """
    found = []
    for item in registry.list_models(FAMILY):
        try:
            found.append(_from_registry(item))
        except ModelError as exc:
            logger.warning("skipping segmentation model version: %s", exc)
    return found


def bundled_version() -> ModelVersion:
    """The newest bundled version; raises :class:`ModelError` when none ships."""
    return _from_registry(registry.bundled_model(FAMILY))


def get_version(version: str | ModelVersion) -> ModelVersion:
    """Look up ``"seg_v<N>"``, ``"bundled"`` or ``"selected"``; raises :class:`ModelError`."""
    if isinstance(version, ModelVersion):
        return version
    if version == BUNDLED:
        return bundled_version()
    if version == SELECTED:
        return selected_version()
    known = list_versions()
    for item in known:
        if version in (item.id, str(item.path)):
            return item
    names = ", ".join(v.id for v in known) or "none"
    raise ModelError(f"no segmentation model version {version!r}; available: {names}")


def _pointer_path() -> Path:
    return registry.user_model_dir() / f"{FAMILY}_selected.json"


def selected_version() -> ModelVersion:
    """The version chosen with :func:`select_version` (the bundled one by default)."""
    pointer = _pointer_path()
    if pointer.is_file():
        try:
            chosen = json.loads(pointer.read_text(encoding="utf-8"))["version"]
            if chosen not in (SELECTED, BUNDLED):
                return get_version(str(chosen))
        except (OSError, KeyError, TypeError, json.JSONDecodeError, ModelError) as exc:
            logger.warning("%s: ignoring the selected-version pointer (%s)", pointer, exc)
    return bundled_version()


def select_version(version: str | ModelVersion) -> ModelVersion:
    """Make ``version`` the default model (used by ``load_model("selected")``); return it."""
    chosen = get_version(version)
    text = json.dumps({"version": chosen.id}) + "\n"
    _atomic_write_bytes(_pointer_path(), lambda p: p.write_text(text, encoding="utf-8"))
    logger.info("selected segmentation model %s", chosen.label)
    return chosen


def rollback() -> ModelVersion:
    """Select the parent of the currently selected version; returns the new selection."""
    current = selected_version()
    if not current.parent:
        raise ModelError(f"model version {current.id!r} has no parent version to roll back to")
    return select_version(current.parent)


def next_version_path() -> Path:
    """Where the next fine-tuned version goes (a number above every existing one)."""
    return registry.next_user_model_path(FAMILY)


def load_model(
    name_or_path: str | os.PathLike[str] = BUNDLED, device: str | torch.device | None = None
) -> SegmentationModel:
    """Load a segmentation model.

    Parameters
    ----------
    name_or_path : str or path
        ``"bundled"``, ``"selected"``, a version id from :func:`list_versions`
        (``"seg_v2"``), or a path to a ``.safetensors`` file (with its ``.json`` card) or a
        folder holding one.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default CUDA when available, else CPU.

    Raises
    ------
    ModelError
        Unknown name, missing or corrupt files, mismatching architecture.
    """
    name = os.fspath(name_or_path)
    path = Path(name)
    if name in (BUNDLED, SELECTED) or (name.startswith(f"{FAMILY}_v") and not path.exists()):
        version = get_version(name)
        model = load_model_file(version.path, device)
        model.card.setdefault("version", version.id)
        return model
    if path.exists():
        return load_model_file(path, device)
    raise ModelError(
        f"{name!r} is neither a model version ('bundled', 'selected', 'seg_v<N>') nor an "
        "existing .safetensors file"
    )
