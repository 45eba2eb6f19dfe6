"""One call from a sequence (or real strip) to band, quality and measurements."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echo_napari.errors import ModelError, SequenceError
from echo_napari.mmode.inference import clean_band, predict_band_probability
from echo_napari.mmode.measure import MModeMeasurements, measure_band
from echo_napari.mmode.model import MModeNet, load_mmode_model
from echo_napari.mmode.quality import WindowQuality, poor_columns, window_quality
from echo_napari.mmode.sampling import MModeImage, MModeLine, default_line, sample_mmode
from echo_napari.sequence import EchoSequence, LabelClass


@dataclass(frozen=True)
class MModeResult:
    """Band, quality windows and measurements of one strip.

    Attributes
    ----------
    strip : the M-mode (its ``band`` is the reference band from labels, if any)
    band : (D, N) uint8 predicted band
    probability : (D, N) float32 band probability
    windows : quality of each time window
    measurements : LVID per column (poor windows left out), beats, FS, volumes, EF, HR
    """

    strip: MModeImage
    band: np.ndarray
    probability: np.ndarray
    windows: list[WindowQuality]
    measurements: MModeMeasurements


def quality_threshold(path: str | Path | None = None) -> float:
    """The calibrated quality threshold from a model card (the bundled one by default).

    Raises
    ------
    ModelError
        When the card is missing or has no ``quality_threshold`` (run
        ``python benchmarks/mmode.py --calibrate``).
    """
    from echo_napari.models.registry import find_model

    card_path = Path(path or find_model("mmode").path).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
        return float(card["quality_threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{card_path}: no usable quality_threshold in the M-mode model card ({exc}); "
            "calibrate it with `python benchmarks/mmode.py --calibrate`"
        ) from exc


def sequence_line(sequence: EchoSequence, line: MModeLine | None = None) -> MModeLine:
    """``line`` itself, or the default line from the ED frame's LV cavity labels, its base
    the end of the LV's long axis nearer the LA (so a clip shown apex down gets its line
    near the base too); without an LA, the end farther from the top of the image."""
    if line is not None:
        return line
    if sequence.labels is None:
        raise SequenceError(
            "no M-mode line given and the sequence has no labels to derive the default line "
            "from: draw a line (or pass --line Y0,X0,Y1,X1), or segment the sequence first"
        )
    frame = sequence.ed_index
    if frame is None:
        areas = (sequence.labels == LabelClass.LV_CAVITY).reshape(sequence.n_frames, -1).sum(1)
        frame = int(np.argmax(areas))
    atrium = np.argwhere(sequence.labels[frame] == LabelClass.LA)
    base_point = tuple(atrium.mean(axis=0)) if atrium.size else None
    return default_line(sequence.labels[frame] == LabelClass.LV_CAVITY, base_point=base_point)


def anatomical_mmode(sequence: EchoSequence, line: MModeLine | None = None) -> MModeImage:
    """The anatomical M-mode of a sequence along ``line`` (default line when None)."""
    chosen = sequence_line(sequence, line)
    return sample_mmode(
        sequence.frames_array(), chosen, sequence.spacing, sequence.frame_time_ms, sequence.labels
    )


def analyse_strip(
    strip: MModeImage,
    network: MModeNet | None = None,
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MModeResult:
    """Segment the band, score each window, measure (poor windows left out).

    ``network`` and ``threshold`` default to the bundled model and its card's threshold.
    """
    if network is None:
        network = load_mmode_model()
    if threshold is None:
        threshold = quality_threshold()
    probability = predict_band_probability(strip, network, progress=progress)
    band = clean_band(probability >= 0.5)
    windows = window_quality(strip.image, band, strip.depth_step_mm, strip.time_step_s, threshold)
    poor = poor_columns(windows, band.shape[1])
    measurements = measure_band(band, strip.depth_step_mm, strip.time_step_s, poor, probability)
    return MModeResult(strip, band, probability, windows, measurements)
