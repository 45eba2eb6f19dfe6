"""Registration backends behind one small interface, found through entry points.

A backend registers batches of (fixed, moving) pairs and returns pull-convention
displacements in pixels. The core ships :class:`DirnetBackend`; other packages add theirs
in the entry-point group ``echo_napari.registration_backends`` (e.g. the SimpleITK
baseline in ``plugins/echo-napari-simpleitk``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from echo_napari.errors import ModelError, RegistrationError
from echo_napari.registration import spatial
from echo_napari.registration.dirnet import DirNet
from echo_napari.registration.losses import registration_loss
from echo_napari.registration.validation import as_float_frames, check_pair_batch
from echo_napari.sequence import FrameProvenance, ProvenanceKind

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "echo_napari.registration_backends"
Progress = Callable[[int, int], None]


@runtime_checkable
class RegistrationBackend(Protocol):
    """What every registration backend provides."""

    name: str

    def register_pairs(
        self, fixed: np.ndarray, moving: np.ndarray, progress: Progress | None = None
    ) -> np.ndarray:
        """Register pairs.

        Parameters
        ----------
        fixed, moving : (N, H, W) float32 in [0, 1]
        progress : callable(done, total) or None

        Returns
        -------
        (N, 2, H, W) float32, pixels, with ``moving(x + u(x)) ≈ fixed(x)``.
        """
        ...


def default_device() -> str:
    """ "cuda" when a CUDA GPU is available, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class DirnetBackend:
    """DIRNet inference (batched, chunked) with optional instance refinement.

    Parameters
    ----------
    weights : path or None
        A DIRNet .safetensors file with its JSON card; None = the newest bundled version.
    device : str or None
        Torch device; None = CUDA when available, else CPU.
    threads : int or None
        torch CPU threads to use (None leaves torch's setting).
    chunk : int
        Pairs per forward pass (bounds memory: peak ~410 MB at 128, ~240 MB at 64 for
        112 px; 128 was ~10 % faster than 64 on 2 CPU threads).
    refine_steps : int
        Instance-refinement L-BFGS iterations per chunk (0 = network prediction only).
    model : DirNet or None
        Use this in-memory model instead of loading ``weights`` (tests, training).
    """

    name = "dirnet"

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | None = None,
        threads: int | None = None,
        chunk: int = 128,
        refine_steps: int = 0,
        model: DirNet | None = None,
    ) -> None:
        from echo_napari.registration.modelio import load_dirnet, read_card

        self.device = torch.device(device or default_device())
        if threads is not None:
            torch.set_num_threads(int(threads))
        if model is not None:
            self.model = model.to(self.device).eval()
            self.card: dict = {"model": "DirNet", "version": "in-memory"}
        else:
            if weights is None:
                from echo_napari.models.registry import bundled_model

                weights = bundled_model("dirnet").path
            self.model = load_dirnet(weights, self.device)
            self.card = read_card(weights)
        self.alpha = float(self.card.get("training", {}).get("alpha", 10.0))
        self.window = int(self.card.get("training", {}).get("window", 9))
        self.chunk = max(1, int(chunk))
        self.refine_steps = int(refine_steps)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def size(self) -> int:
        """Internal square resolution of the network (pixels)."""
        return self.model.config.size

    def _to_internal(self, frames: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(frames))[:, None].to(self.device)
        return spatial.resize_frames(tensor, (self.size, self.size))

    def refine(self, fixed: torch.Tensor, moving: torch.Tensor, steps: int) -> torch.Tensor:
        """Instance optimisation of the control points from the network's prediction.

        Same loss as training (NCC + α·bending). Inputs (N, 1, S, S) at the internal
        resolution; returns the refined dense field (N, 2, S, S), internal pixels.
        """
        with torch.inference_mode():
            start = self.model.control_points(fixed, moving)
        params = start.clone(memory_format=torch.contiguous_format).requires_grad_(True)
        fixed = fixed.clone()
        moving = moving.clone()
        # L-BFGS rather than Adam: Adam's normalised steps move a pair that is already
        # aligned (near-zero gradient) by ~lr per step; L-BFGS scales with the gradient.
        optimizer = torch.optim.LBFGS(
            [params],
            lr=1.0,
            max_iter=steps,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            u = self.model.field_from_control_points(params)
            loss, _ = registration_loss(
                fixed, spatial.warp(moving, u), u, self.alpha, window=self.window
            )
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            return self.model.field_from_control_points(params).detach()

    def register_pairs(
        self,
        fixed: np.ndarray,
        moving: np.ndarray,
        progress: Progress | None = None,
        refine_steps: int | None = None,
    ) -> np.ndarray:
        """Register N pairs in chunks of ``self.chunk`` (see :class:`RegistrationBackend`)."""
        fixed, moving = check_pair_batch(fixed, moving)
        steps = self.refine_steps if refine_steps is None else int(refine_steps)
        n, h, w = fixed.shape
        out = np.empty((n, 2, h, w), dtype=np.float32)
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            f = self._to_internal(fixed[start:stop])
            m = self._to_internal(moving[start:stop])
            if steps > 0:
                with torch.enable_grad():
                    u = self.refine(f, m, steps)
            else:
                with torch.inference_mode():
                    u = self.model(
                        f.contiguous(memory_format=torch.channels_last),
                        m.contiguous(memory_format=torch.channels_last),
                    )
            with torch.inference_mode():
                u = spatial.resize_field(u, (h, w))
            out[start:stop] = u.cpu().numpy()
            if progress is not None:
                progress(stop, n)
        return out


def available_backends() -> dict[str, Callable[..., RegistrationBackend]]:
    """Backend factories by name, from the ``echo_napari.registration_backends`` group.

    ``dirnet`` is always present (also when the package metadata is not installed).
    """
    found: dict[str, Callable[..., RegistrationBackend]] = {"dirnet": DirnetBackend}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == "dirnet":
            continue
        try:
            found[entry.name] = entry.load()
        except (ImportError, AttributeError) as error:
            log.warning("registration backend %r could not be loaded: %s", entry.name, error)
    return found


def propagated_provenance(backend: object, name: str) -> FrameProvenance:
    """Provenance of frames a backend's fields carried: propagated, by ``name`` at the
    version its card gives (empty for a backend without one)."""
    card = getattr(backend, "card", None) or {}
    return FrameProvenance(ProvenanceKind.PROPAGATED, name, str(card.get("version", "")))


def get_backend(name: str = "dirnet", device: str | None = None, **kwargs) -> RegistrationBackend:
    """Instantiate a backend by entry-point name (``device`` and ``kwargs`` passed on)."""
    backends = available_backends()
    if name not in backends:
        raise RegistrationError(
            f"unknown registration backend {name!r}; available: {sorted(backends)} "
            "(install a plugin such as plugins/echo-napari-simpleitk to add one)"
        )
    try:
        return backends[name](device=device, **kwargs)
    except ModelError:
        raise
    except TypeError as error:
        raise RegistrationError(f"backend {name!r} rejected its options: {error}") from error


def resolve_backend(backend: str | RegistrationBackend) -> RegistrationBackend:
    """A backend instance from a name or an instance."""
    if isinstance(backend, str):
        return get_backend(backend)
    if not hasattr(backend, "register_pairs"):
        raise RegistrationError(f"{backend!r} is not a registration backend (no register_pairs)")
    return backend


def register(
    fixed: np.ndarray,
    moving: np.ndarray,
    backend: str | RegistrationBackend = "dirnet",
    refine_steps: int = 0,
) -> np.ndarray:
    """Register one pair.

    Parameters
    ----------
    fixed, moving : (H, W) float32 in [0, 1]
    backend : name or instance
    refine_steps : int
        Instance-refinement steps (DIRNet only).

    Returns
    -------
    (2, H, W) float32, pixels, ``moving(x + u(x)) ≈ fixed(x)``.
    """
    fixed = as_float_frames(fixed, "fixed", 2)
    moving = as_float_frames(moving, "moving", 2)
    instance = resolve_backend(backend)
    if refine_steps:
        if not isinstance(instance, DirnetBackend):
            raise RegistrationError(
                f"refine_steps is supported by the dirnet backend only, not {instance.name!r}"
            )
        return instance.register_pairs(fixed[None], moving[None], refine_steps=refine_steps)[0]
    return instance.register_pairs(fixed[None], moving[None])[0]
