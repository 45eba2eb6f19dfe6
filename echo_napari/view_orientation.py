"""Which apical four-chamber convention a clip uses: EchoNet's (LV on the right of the
screen) or the mirrored one (LV on the left, as some sites show it).

The bundled segmentation models know EchoNet's convention only; given a mirrored clip
they draw the LV over the RV or over both ventricles, and nothing in the masks says so.
A small network looks at a clip's mean frame and its temporal spread (where the walls
move), inside the imaging sector, and scores how mirrored it looks. It is built
antisymmetric, score(mirror(clip)) = −score(clip), so a clip and its mirror image always
get opposite verdicts; the score is the median over the clip's 16-frame windows.

Training: :mod:`echo_napari.view_orientation_train` (simulated sequences and the 18
training EchoNet videos, each shown both ways; the card says which). The Predict panel
and ``predict`` warn when the verdict contradicts the *Mirrored view* setting; nothing is
flipped without the user.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from echo_napari.errors import ModelError
from echo_napari.field_of_view import FieldOfView, sector_mask
from echo_napari.models.files import load_cached_network, save_network_files

logger = logging.getLogger(__name__)

MODEL_NAME = "orient"
#: Frames per window and the step between windows.
WINDOW = 16
STEP = 8
#: At most this many windows are scored (spread over the clip).
MAX_WINDOWS = 16
#: Side of the square the frames are resized to before the features are taken (pixels).
FRAME_SIZE = 112
#: Side of the feature maps the network sees (pixels).
FEATURE_SIZE = 64
#: |score| below this is "cannot tell" (chosen by 3-fold cross-validation on the 18
#: training videos; see the model card).
MARGIN = 1.5


@dataclass(frozen=True)
class OrientationNetConfig:
    """Architecture of an :class:`OrientationNet` (stored in its card)."""

    channels: tuple[int, ...] = (16, 32, 64, 64)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrientationNetConfig:
        """Inverse of :func:`dataclasses.asdict`."""
        return cls(channels=tuple(int(c) for c in data.get("channels", cls.channels)))


class OrientationNet(nn.Module):
    """``(B, 2, S, S)`` features → ``(B,)`` score, > 0 for the mirrored convention.

    ``f(x) − f(x mirrored)`` with one small CNN ``f``: antisymmetric by construction.
    """

    def __init__(self, config: OrientationNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or OrientationNetConfig()
        layers: list[nn.Module] = []
        c_in = 2
        for level, c_out in enumerate(self.config.channels):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.GroupNorm(min(8, c_out // 2), c_out),
                nn.ReLU(),
            ]
            if level < len(self.config.channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(c_in, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.body(x) - self.body(torch.flip(x, dims=(-1,))))[:, 0]


@dataclass(frozen=True)
class OrientationCheck:
    """The verdict on one clip.

    Attributes
    ----------
    score : median window score; > 0 looks mirrored (LV on the left), < 0 looks like
        EchoNet's convention (LV on the right)
    windows : number of 16-frame windows scored
    margin : |score| needed for a verdict
    """

    score: float
    windows: int
    margin: float = MARGIN

    @property
    def verdict(self) -> str:
        """``"mirrored"``, ``"standard"`` or ``"unsure"``."""
        if self.score > self.margin:
            return "mirrored"
        if self.score < -self.margin:
            return "standard"
        return "unsure"

    def judged(self, truth: str) -> str:
        """``"right"``, ``"unsure"`` or ``"wrong"`` for a clip known to be ``truth``
        (``"standard"`` or ``"mirrored"``)."""
        if self.verdict == "unsure":
            return "unsure"
        return "right" if self.verdict == truth else "wrong"

    def contradicts(self, mirrored: bool) -> bool:
        """True when the clip looks the other way round from the ``mirrored`` setting."""
        return self.verdict == ("standard" if mirrored else "mirrored")

    def warning(self, mirrored: bool) -> str:
        """A sentence for the user when :meth:`contradicts`, else ``""``."""
        if not self.contradicts(mirrored):
            return ""
        if mirrored:
            return (
                "This clip looks like EchoNet's convention (LV on the right of the screen; "
                f"view score {self.score:+.1f}) but Mirrored view is on: check the view and "
                "predict again with it off if the LV is on the right."
            )
        return (
            "This clip looks mirrored (LV on the left of the screen; view score "
            f"{self.score:+.1f}): the bundled models expect the LV on the right, so tick "
            "Mirrored view (predict --mirrored) and predict again if it is."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (score, windows, margin, verdict)."""
        return {**asdict(self), "verdict": self.verdict}


def clip_features(clip: np.ndarray, sector: np.ndarray) -> torch.Tensor:
    """The network's input for one window.

    Parameters
    ----------
    clip : (L, S, S) float32 in [0, 1], frames at :data:`FRAME_SIZE`
    sector : (S, S) bool imaging sector (outside it: scale marks, text)

    Returns
    -------
    (2, FEATURE_SIZE, FEATURE_SIZE) float32: the mean frame and 4 × the temporal
    standard deviation, both zero outside the sector
    """
    inside = sector.astype(np.float32)
    stacked = np.stack([clip.mean(axis=0) * inside, clip.std(axis=0) * inside * 4.0])
    x = torch.from_numpy(stacked.astype(np.float32))[None]
    # bilinear with half-pixel centres is mirror-equivariant ("area" bins are not at 112 → 64)
    return F.interpolate(
        x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False, antialias=True
    )[0]


def window_features(frames: np.ndarray, max_windows: int = MAX_WINDOWS) -> torch.Tensor:
    """``(N, 2, F, F)`` features of up to ``max_windows`` windows spread over ``frames``
    (``(T, S, S)`` float32 at :data:`FRAME_SIZE`; a clip shorter than a window is one)."""
    n = int(frames.shape[0])
    starts = list(range(0, max(1, n - WINDOW + 1), STEP))
    if len(starts) > max_windows:
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, max_windows).astype(int)]
    sector = symmetric_sector(frames)
    return torch.stack([clip_features(frames[s : s + WINDOW], sector) for s in starts])


def symmetric_sector(frames: np.ndarray) -> np.ndarray:
    """The imaging sector (:func:`~echo_napari.field_of_view.sector_mask`) joined with its
    mirror image, so that a mirrored clip gives exactly mirrored features; ``(S, S)`` bool."""
    sector = sector_mask(frames)
    return sector | sector[:, ::-1]


def prepare_frames(frames: Any, field_of_view: FieldOfView | None = None) -> np.ndarray:
    """Frames as the network sees them: the square around the sector (as the segmentation
    is shown it), resized to :data:`FRAME_SIZE`; ``(T, S, S)`` float32 in [0, 1]."""
    from echo_napari.segmentation.training import resize_sequence

    return resize_sequence(frames, None, FRAME_SIZE, field_of_view=field_of_view)[0]


def check_orientation(
    frames: Any,
    network: OrientationNet | None = None,
    field_of_view: FieldOfView | None = None,
) -> OrientationCheck:
    """Score a clip's apical convention.

    Parameters
    ----------
    frames : (T, H, W) float32 in [0, 1], numpy or lazy (dask) array, as displayed
    network : default the bundled :func:`load_orientation_model`
    field_of_view : the sector square, when the caller found it already

    Returns
    -------
    OrientationCheck (about 20 ms for 128 frames on one CPU thread)
    """
    network = network if network is not None else load_orientation_model()
    features = window_features(prepare_frames(frames, field_of_view))
    network.eval()
    with torch.inference_mode():
        scores = network(features)
    # np.median averages the two middle values (torch.median takes the lower one, which
    # would break the mirror symmetry for an even number of windows)
    return OrientationCheck(float(np.median(scores.numpy())), int(features.shape[0]))


def check_orientation_or_none(
    frames: Any, field_of_view: FieldOfView | None = None
) -> OrientationCheck | None:
    """:func:`check_orientation` with the bundled network, or None (logged) when it cannot
    load: the check only advises, so its absence must not stop a prediction or a
    fine-tuning."""
    try:
        return check_orientation(frames, field_of_view=field_of_view)
    except ModelError as error:
        logger.warning("view-orientation check skipped: %s", error)
        return None


def save_orientation_model(network: OrientationNet, stem: str | Path, card: dict) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (config + ``card``); returns the
    weights path."""
    full = {"name": MODEL_NAME, "config": asdict(network.config), **card}
    return save_network_files(network, stem, full)


_CACHE: dict[str, OrientationNet] = {}


def load_orientation_model(path: str | Path | None = None) -> OrientationNet:
    """The view-orientation network (the newest bundled one when ``path`` is None).

    Raises
    ------
    ModelError
        When the weights or card are missing, corrupt or do not fit the architecture.
    """

    def build(config: dict[str, Any]) -> OrientationNet:
        return OrientationNet(OrientationNetConfig.from_dict(config))

    return load_cached_network(path, MODEL_NAME, "view-orientation model", build, _CACHE)
