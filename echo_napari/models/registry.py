"""Model versions: the weights bundled with the package and the user's own (trained here).

Bundled models live next to this file (``<name>_v<N>.safetensors`` + ``.json`` card). User
models live under the user data directory (``$ECHO_NAPARI_DATA_DIR``, else
``$XDG_DATA_HOME/echo-napari``, else ``~/.local/share/echo-napari``) in ``models/``; a new
version always gets a new number, so nothing is ever overwritten.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_napari.errors import ModelError

BUNDLED_DIR = Path(__file__).resolve().parent
_VERSION_RE = re.compile(r"^(?P<name>[A-Za-z0-9_\-]+?)_v(?P<version>\d+)\.safetensors$")


@dataclass(frozen=True)
class ModelVersion:
    """One model version on disk.

    Attributes
    ----------
    name : str
        Model family, e.g. "dirnet".
    version : int
    path : Path
        The .safetensors file (its card is ``path.with_suffix(".json")``).
    bundled : bool
        True for weights shipped in the package.
    """

    name: str
    version: int
    path: Path
    bundled: bool

    @property
    def label(self) -> str:
        """ "dirnet v1 (bundled)" style display name."""
        return f"{self.name} v{self.version} ({'bundled' if self.bundled else 'user'})"

    def card(self) -> dict[str, Any]:
        """The JSON model card."""
        card_path = self.path.with_suffix(".json")
        try:
            return json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ModelError(f"{card_path}: cannot read model card ({error})") from error


def user_data_dir() -> Path:
    """Root of the user's echo-napari data (not created here)."""
    if os.environ.get("ECHO_NAPARI_DATA_DIR"):
        return Path(os.environ["ECHO_NAPARI_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "echo-napari"


def user_model_dir() -> Path:
    """Folder holding user-trained model versions."""
    return user_data_dir() / "models"


def _scan(directory: Path, bundled: bool) -> list[ModelVersion]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.safetensors"):
        match = _VERSION_RE.match(path.name)
        if match and path.with_suffix(".json").exists():
            found.append(
                ModelVersion(match["name"], int(match["version"]), path.resolve(), bundled)
            )
    return found


def list_models(name: str | None = None) -> list[ModelVersion]:
    """Bundled and user model versions (optionally of one family), oldest first."""
    models = _scan(BUNDLED_DIR, True) + _scan(user_model_dir(), False)
    if name is not None:
        models = [m for m in models if m.name == name]
    return sorted(models, key=lambda m: (m.name, not m.bundled, m.version))


def bundled_model(name: str = "dirnet") -> ModelVersion:
    """The newest bundled version of ``name``."""
    bundled = [m for m in list_models(name) if m.bundled]
    if not bundled:
        raise ModelError(
            f"no bundled '{name}' weights in {BUNDLED_DIR}; reinstall echo-napari or train "
            "one with scripts/train_dir.py"
        )
    return max(bundled, key=lambda m: m.version)


def find_model(name: str, version: int | None = None) -> ModelVersion:
    """A model version by family and number (newest user version, else bundled, if None)."""
    models = list_models(name)
    if not models:
        raise ModelError(f"no '{name}' model found (bundled or in {user_model_dir()})")
    if version is None:
        user = [m for m in models if not m.bundled]
        return max(user, key=lambda m: m.version) if user else bundled_model(name)
    matches = [m for m in models if m.version == version]
    if not matches:
        known = ", ".join(m.label for m in models)
        raise ModelError(f"no '{name}' version {version}; available: {known}")
    return matches[-1]


def next_user_model_path(name: str) -> Path:
    """Path for a new user version of ``name``: one above every existing version."""
    existing = [m.version for m in list_models(name)]
    version = max(existing, default=0) + 1
    directory = user_model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_v{version}.safetensors"
    while path.exists() or path.with_suffix(".json").exists():
        version += 1
        path = directory / f"{name}_v{version}.safetensors"
    return path
