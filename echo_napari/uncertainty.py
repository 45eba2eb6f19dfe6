"""How unsure the network was of each frame's LV border, from its class probabilities.

The anatomical checks (:mod:`echo_napari.metrics_plausibility`) judge the shape of the
labels; they pass frames whose shape is fine but wrong, which a reviewer only finds by
looking. Where the image gives the network little to go on (an apex lost in near-field
haze, a lateral wall in dropout, fog), its LV probability does not fall sharply from ~1
inside the cavity to ~0 outside but spreads over a band of intermediate values. The
share of such pixels, relative to the cavity's size, is the frame's uncertainty.

On the 24 shared EchoNet videos, ranked by the 90th percentile of their frames'
uncertainty, the four whose masks looked least plausible by eye (0X3981…, 0X78A2…,
0X1059…, 0X5682…) came first; within a video the flagged frames gather around the
end-systoles where the apex is lost (0X1059…: frames 166–170 around the end-systole at 167).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "UNCERTAINTY_KEY",
    "UNSURE_BAND",
    "UNSURE_FLAG",
    "count_unsure",
    "lv_border_uncertainty",
    "store_uncertainty",
    "stored_uncertainty",
    "unsure_reason",
    "unsure_score",
]

#: Sequence metadata key: each frame's uncertainty when its labels were predicted (a list
#: of T numbers, null where no prediction was accepted), kept in a saved session.
UNCERTAINTY_KEY = "lv_border_uncertainty"

#: LV probabilities counted as unsure: neither clearly inside nor clearly outside.
UNSURE_BAND = (0.2, 0.8)
#: A frame is flagged when its unsure pixels reach this share of its cavity's pixels.
UNSURE_FLAG = 0.6


def lv_border_uncertainty(lv_probability: np.ndarray) -> np.ndarray:
    """Unsure LV pixels per frame, as a share of the frame's cavity.

    Parameters
    ----------
    lv_probability : (T, H, W) float
        The network's LV-cavity probability, 0–1, at any resolution.

    Returns
    -------
    (T,) float64 ≥ 0: pixels with a probability inside :data:`UNSURE_BAND` divided by the
    pixels above 0.5 (a frame without cavity pixels counts its unsure pixels as the share,
    so a frame where the network saw only haze is not 0)
    """
    p = np.asarray(lv_probability, dtype=np.float32)
    if p.ndim != 3:
        raise ValueError(f"lv_probability must be (T, H, W); got shape {p.shape}")
    low, high = UNSURE_BAND
    flat = p.reshape(p.shape[0], -1)
    unsure = np.count_nonzero((flat > low) & (flat < high), axis=1)
    cavity = np.count_nonzero(flat > 0.5, axis=1)
    return unsure / np.maximum(cavity, 1)


def count_unsure(uncertainty: np.ndarray | list[float] | None, drawn: np.ndarray) -> int:
    """Frames at or above :data:`UNSURE_FLAG` among the ``drawn`` (T,) bool ones (those
    with an LV); 0 when there is no uncertainty for each frame (a network that gave
    none)."""
    u = np.asarray([] if uncertainty is None else uncertainty, dtype=np.float64)
    drawn = np.asarray(drawn, dtype=bool)
    if u.shape != drawn.shape:
        return 0
    return int(np.count_nonzero((u >= UNSURE_FLAG) & drawn))


def unsure_score(uncertainty: np.ndarray) -> np.ndarray:
    """Suspicion score of each frame's uncertainty, (T,) float64 in [0, 1]: 0 below
    :data:`UNSURE_FLAG`, then ``uncertainty / (2 · UNSURE_FLAG)`` (0.5 at the flag, as
    the anatomical checks' scores where a frame starts to fail), at most 1."""
    u = np.nan_to_num(np.asarray(uncertainty, dtype=np.float64))
    return np.where(u >= UNSURE_FLAG, np.clip(u / (2.0 * UNSURE_FLAG), 0.0, 1.0), 0.0)


def unsure_reason(uncertainty: float) -> str:
    """The frame label's words for a flagged frame; empty below :data:`UNSURE_FLAG`."""
    if not uncertainty >= UNSURE_FLAG:
        return ""
    return (
        f"network unsure of the LV border (unsure pixels {100 * uncertainty:.0f} % of "
        "the cavity's area): check it against the image"
    )


def stored_uncertainty(metadata: dict, n_frames: int) -> np.ndarray:
    """(T,) float64 uncertainty kept under :data:`UNCERTAINTY_KEY`, NaN where none (or
    when the entry does not have one value per frame)."""
    values = metadata.get(UNCERTAINTY_KEY)
    if not isinstance(values, (list, tuple)) or len(values) != n_frames:
        return np.full(n_frames, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def store_uncertainty(
    metadata: dict, frames: np.ndarray, values: np.ndarray, n_frames: int
) -> None:
    """Keep ``values`` (N,) as the uncertainty of ``frames`` (N,) under
    :data:`UNCERTAINTY_KEY` in ``metadata`` (JSON-ready: 3 decimals, null where none)."""
    kept = stored_uncertainty(metadata, n_frames)
    kept[np.asarray(frames, dtype=np.int64)] = np.asarray(values, dtype=np.float64)
    metadata[UNCERTAINTY_KEY] = [None if np.isnan(v) else round(float(v), 3) for v in kept]
