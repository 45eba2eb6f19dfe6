"""Fine-tune the M-mode band network on the traces the user edited on one strip.

The job runs in a napari ``thread_worker`` (a generator: it yields ``(step, total)`` after
every optimisation step, so Cancel stops it between steps), saves the result as a new user
version ``mmode_v<N>`` (the bundled weights are never touched) and reports the Dice of the
network's band against the edited band before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QSpinBox, QWidget

from echo_napari.errors import EchoNapariError
from echo_napari.widgets._notify import notify_error, notify_info

if TYPE_CHECKING:
    from echo_napari.mmode.analysis import MModeResult
    from echo_napari.mmode.model import MModeNet
    from echo_napari.mmode.sampling import MModeImage

#: Optimisation steps offered by default: a few dozen keep it to seconds on a CPU.
DEFAULT_STEPS = 40


@dataclass(frozen=True)
class FineTuneOutcome:
    """A finished fine-tuning: the new version's weights (None when it was not kept) and
    the band Dice before/after; ``base`` names the network it started from."""

    path: Path | None
    dice_before: float
    dice_after: float
    base: str = ""

    def message(self) -> str:
        """One line for the summary and the notification."""
        dice = (
            f"Dice of the network band vs your traces: before {self.dice_before:.3f} → "
            f"after {self.dice_after:.3f}"
        )
        if self.path is None:
            return f"fine-tuning did not help ({dice}): nothing saved, still using {self.base}"
        return f"{self.path.stem}: {dice}"


def network_band_dice(strip: MModeImage, band: np.ndarray, network: MModeNet) -> float:
    """Dice of the network's cleaned band on ``strip`` against ``band`` (D, N) uint8."""
    from echo_napari.metrics import dice_coefficient
    from echo_napari.mmode.inference import clean_band, predict_band_probability

    predicted = clean_band(predict_band_probability(strip, network) >= 0.5)
    return dice_coefficient(predicted.astype(bool), band.astype(bool))


def fine_tune_on_strip(
    strip: MModeImage, band: np.ndarray, base: Path | None, steps: int
) -> Generator[tuple[int, int], None, FineTuneOutcome]:
    """Fine-tune ``base`` (newest version when None) on one strip and its edited band.

    Parameters
    ----------
    strip : the M-mode; image (D, N) float32 in [0, 1]
    band : (D, N) uint8, the band enclosed by the edited traces
    base : .safetensors of the network to start from
    steps : optimisation steps

    Yields ``(step, steps)``; returns the :class:`FineTuneOutcome` after saving. A network
    whose band fits the edited traces worse than before is not saved: the newest version
    is the default of every later M-mode analysis, so a worse one must not become it.
    """
    import torch
    from scipy import ndimage

    from echo_napari.mmode.inference import network_scale
    from echo_napari.mmode.model import load_mmode_model
    from echo_napari.mmode.training import fine_tune_steps, save_user_version
    from echo_napari.models.registry import find_model
    from echo_napari.widgets._jobs import torch_threads_for_jobs

    # Like every dock job: all cores but the one the GUI keeps.
    torch.set_num_threads(torch_threads_for_jobs())
    path = base or find_model("mmode").path
    network = load_mmode_model(path)
    card = json_card(path)
    before = network_band_dice(strip, band, network)
    zoom = network_scale(strip, network)
    image = ndimage.zoom(strip.image, zoom, order=1, mode="nearest", grid_mode=True)
    target = ndimage.zoom(band, zoom, order=0, mode="nearest", grid_mode=True)
    for record in fine_tune_steps(network, [image], [target], network.config.depth_step_mm, steps):
        yield record.step, record.total
    network.eval()
    after = network_band_dice(strip, band, network)
    if after < before:
        return FineTuneOutcome(None, before, after, Path(path).stem)
    card["fine_tuned_on"] = {
        "from": Path(path).stem,
        "steps": steps,
        "strip_shape": list(strip.image.shape),
        "dice_before": before,
        "dice_after": after,
    }
    saved = save_user_version(network, card)
    return FineTuneOutcome(saved, before, after, Path(path).stem)


def analyse_with(strip: MModeImage, path: Path | None) -> MModeResult:
    """:func:`~echo_napari.mmode.analysis.analyse_strip` with the network (and its card's
    quality threshold) at ``path``; the newest version when None."""
    from echo_napari.mmode.analysis import analyse_strip, quality_threshold
    from echo_napari.mmode.model import load_mmode_model

    if path is None:
        return analyse_strip(strip)
    return analyse_strip(strip, load_mmode_model(path), quality_threshold(path))


def json_card(path: Path) -> dict:
    """The model card next to ``path`` (empty when unreadable: the weights still load)."""
    import json

    try:
        return json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


class FineTuneControls(QWidget):
    """ "Fine-tune on edited traces" + steps + Cancel + progress bar for the M-mode dock.

    Parameters
    ----------
    get_job : returns (strip, edited band, base weights) or raises EchoNapariError
    on_done : called with the :class:`FineTuneOutcome` in the GUI thread
    """

    def __init__(
        self,
        get_job: Callable[[], tuple[MModeImage, np.ndarray, Path | None]],
        on_done: Callable[[FineTuneOutcome], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.get_job = get_job
        self.on_done = on_done
        self.worker = None
        self.has_edits = False
        self.button = QPushButton("Fine-tune on edited traces")
        self.button.setToolTip(
            "Fine-tune the band network on this strip and your edited traces; saved as a new "
            "user model version"
        )
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setSuffix(" steps")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.button, self.steps, self.cancel_button, self.progress):
            layout.addWidget(widget)
        self.button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.set_has_edits(False)

    def set_has_edits(self, has_edits: bool) -> None:
        """Enable the button once the strip has edited traces (and nothing runs)."""
        self.has_edits = has_edits
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.button.setEnabled(self.has_edits and not running)
        self.cancel_button.setEnabled(running)

    def start(self) -> None:
        """Start fine-tuning in a background worker."""
        from napari.qt.threading import create_worker

        try:
            strip, band, base = self.get_job()
        except EchoNapariError as exc:
            notify_error(f"M-mode fine-tuning: {exc}")
            return
        steps = self.steps.value()
        worker = create_worker(fine_tune_on_strip, strip, band, base, steps)
        worker.yielded.connect(self._on_step)
        worker.returned.connect(self.on_done)
        worker.errored.connect(lambda exc: notify_error(f"M-mode fine-tuning failed: {exc}"))
        worker.aborted.connect(lambda: notify_info("M-mode fine-tuning cancelled; nothing saved"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self._update_buttons()
        worker.start()

    def cancel(self) -> None:
        """Stop the running fine-tuning before its next step (nothing is saved)."""
        if self.worker is not None:
            self.worker.quit()

    def _on_step(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_finished(self) -> None:
        self.worker = None
        self._update_buttons()
