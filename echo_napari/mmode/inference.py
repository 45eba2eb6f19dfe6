"""Band segmentation of M-mode strips of any size: resample to the network's sampling,
overlapping windows blended with a smooth weight, resample back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from echo_napari.errors import ModelError
from echo_napari.mmode.model import MModeNet
from echo_napari.mmode.sampling import MModeImage


def _starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _blend_weight(window: tuple[int, int]) -> np.ndarray:
    """Separable Hann-like weight, never zero, so every sample has some weight."""
    parts = [0.05 + np.sin(np.pi * (np.arange(n) + 0.5) / n) for n in window]
    return np.outer(parts[0], parts[1]).astype(np.float32)


def network_scale(strip: MModeImage, network: MModeNet) -> tuple[float, float]:
    """Zoom factors (depth, time) that bring ``strip`` to the network's sampling.

    Uncalibrated axes are left as they are (factor 1): an anatomical M-mode of an
    uncalibrated video has about the sampling of the simulated training strips.
    """
    config = network.config
    zoom_d = strip.depth_step_mm / config.depth_step_mm if strip.depth_step_mm else 1.0
    zoom_t = 1.0
    # Real M-mode strips have ~1 ms columns; anatomical ones are at the frame time already.
    if strip.time_step_s and strip.time_step_s < 0.5 * config.time_step_s:
        zoom_t = strip.time_step_s / config.time_step_s
    return float(zoom_d), float(zoom_t)


#: Test-time flips (depth, time) averaged by :func:`predict_band_probability`: a strip
#: mirrored in time or depth is still an M-mode with the band between two walls.
FLIPS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


def predict_band_probability(
    strip: MModeImage,
    network: MModeNet,
    overlap: float = 0.5,
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
    flips: bool = True,
) -> np.ndarray:
    """Probability of the LV band for every sample of the strip.

    Parameters
    ----------
    strip : MModeImage, image (D, N) float32 in [0, 1]
    network : MModeNet in eval mode
    overlap : fraction of a window shared with its neighbour (0 ≤ overlap < 1)
    flips : average the network over the strip mirrored in depth and/or time (4 passes)

    Returns
    -------
    (D, N) float32 in [0, 1]
    """
    if not 0.0 <= overlap < 1.0:
        raise ModelError(f"window overlap must be in [0, 1); got {overlap}")
    zoom = network_scale(strip, network)
    image = strip.image.astype(np.float32)
    if zoom != (1.0, 1.0):
        image = ndimage.zoom(image, zoom, order=1, mode="nearest", grid_mode=True)
    variants = FLIPS if flips else FLIPS[:1]
    prob = np.zeros(image.shape, dtype=np.float32)
    for k, (flip_d, flip_t) in enumerate(variants):

        def step(done: int, total: int, k: int = k) -> None:
            if progress is not None:
                progress(k * total + done, len(variants) * total)

        flipped = image[:: -1 if flip_d else 1, :: -1 if flip_t else 1]
        out = _windowed_probability(np.ascontiguousarray(flipped), network, overlap, batch, step)
        prob += out[:: -1 if flip_d else 1, :: -1 if flip_t else 1]
    prob /= len(variants)
    d, t = prob.shape
    if zoom != (1.0, 1.0):
        prob = ndimage.zoom(
            prob,
            (strip.image.shape[0] / d, strip.image.shape[1] / t),
            order=1,
            mode="nearest",
            grid_mode=True,
        )
        prob = prob[: strip.image.shape[0], : strip.image.shape[1]]
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def _windowed_probability(
    image: np.ndarray,
    network: MModeNet,
    overlap: float,
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """Band probability (D, N) of an image already at the network's sampling."""
    wd, wt = network.config.window
    # Mirror a quarter window of time at both ends: the strip's first and last columns
    # then sit inside a window, not on its border where the network sees no context.
    margin = min(wt // 4, image.shape[1] - 1)
    image = np.pad(image, ((0, 0), (margin, margin)), mode="reflect")
    d, t = image.shape
    padded = np.zeros((max(d, wd), max(t, wt)), dtype=np.float32)
    # Real strips shorter than a window: pad the missing depth as background (black) and the
    # missing time by repeating the strip edge-wise, which keeps wall motion continuous.
    padded[:d, :t] = image
    if t < wt:
        padded[:d, t:] = image[:, -1:]
    weight = _blend_weight((wd, wt))
    total = np.zeros_like(padded)
    norm = np.zeros_like(padded)
    stride = (max(1, int(wd * (1 - overlap))), max(1, int(wt * (1 - overlap))))
    corners = [
        (y, x)
        for y in _starts(padded.shape[0], wd, stride[0])
        for x in _starts(padded.shape[1], wt, stride[1])
    ]
    device = next(network.parameters()).device
    with torch.inference_mode():
        for first in range(0, len(corners), batch):
            chunk = corners[first : first + batch]
            windows = np.stack([padded[y : y + wd, x : x + wt] for y, x in chunk])[:, None]
            logits = network(torch.from_numpy(windows).to(device))
            prob = torch.softmax(logits, 1)[:, 1].cpu().numpy()
            for (y, x), p in zip(chunk, prob, strict=True):
                total[y : y + wd, x : x + wt] += p * weight
                norm[y : y + wd, x : x + wt] += weight
            if progress is not None:
                progress(min(first + batch, len(corners)), len(corners))
    return (total / np.maximum(norm, 1e-6))[:d, margin : t - margin]


def segment_band(strip: MModeImage, network: MModeNet | None = None, **kwargs) -> np.ndarray:
    """The LV band (D, N) uint8 of a strip: the largest connected band per column range.

    ``network`` defaults to the bundled model. Keyword arguments go to
    :func:`predict_band_probability`.
    """
    if network is None:
        from echo_napari.mmode.model import load_mmode_model

        network = load_mmode_model()
    prob = predict_band_probability(strip, network, **kwargs)
    return clean_band(prob >= 0.5)


def clean_band(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 2D connected component and, per column, one contiguous run.

    Parameters
    ----------
    mask : (D, N) bool

    Returns
    -------
    (D, N) uint8
    """
    labelled, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=np.uint8)
    sizes = ndimage.sum(mask, labelled, index=np.arange(1, n + 1))
    keep = labelled == (int(np.argmax(sizes)) + 1)
    from echo_napari.mmode.traces import band_to_traces, traces_to_band

    upper, lower = band_to_traces(keep)
    return traces_to_band(upper, lower, mask.shape[0])
