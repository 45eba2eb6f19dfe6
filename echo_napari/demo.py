"""``python -m echo_napari.demo``: napari with a sample echo sequence and the review dock.

Options: ``--path FILE`` opens your own file or folder instead of the sample;
``--sample NAME`` picks another sample; ``--propagate BACKEND`` keeps only the keyframes'
labels and propagates them (the review workflow); ``--screenshot PNG`` saves the whole
window once it has drawn (and any propagation finished) and quits (docs, under Xvfb).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

PLUGIN = "echo-napari"
DOCK = "Echo review"

logger = logging.getLogger(__name__)


def build_demo_viewer(
    path: str | None = None, sample: str = "normal", show: bool = True
) -> tuple[Any, Any]:
    """A napari viewer with a sequence loaded and the review dock docked.

    Parameters
    ----------
    path : file or folder to open with echo-napari's reader (None: the sample)
    sample : sample key from the manifest ("normal", "reduced_ef", "poor_quality")
    show : show the window

    Returns
    -------
    (napari.Viewer, ReviewDock)
    """
    import napari

    viewer = napari.Viewer(title="echo-napari", show=show)
    if path is not None:
        viewer.open(path, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, sample)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    return viewer, dock


def start_from_keyframes(dock: Any, backend: str) -> None:
    """Keep the labels of the keyframes only and start Propagate with ``backend``.

    Shows the review workflow on a sample whose every frame is labelled: the other frames
    are cleared (provenance none) and filled again by propagation.
    """
    from echo_napari.sequence import NO_PROVENANCE

    session = dock.session
    seq = session.sequence
    others = [t for t in range(seq.n_frames) if t not in seq.keyframes]
    empty = np.zeros((len(others), *seq.frame_shape), dtype=np.uint8)
    session.write_labels(others, empty, NO_PROVENANCE)
    dock.binding.layer.refresh()
    panel = dock.propagate_panel
    panel.backend_combo.setCurrentText(backend)
    panel.propagate()


def _screenshot_and_quit(viewer: Any, dock: Any, png: str, wait_for_job: bool) -> None:
    from qtpy.QtCore import QTimer

    def ready() -> None:
        panel = getattr(dock, "propagate_panel", None)
        if wait_for_job and panel is not None and panel.worker is not None:
            QTimer.singleShot(500, ready)
            return
        shoot()

    def shoot() -> None:
        sequence = dock.session.sequence if dock.session.is_loaded else None
        if wait_for_job:
            dock.go_to_next_suspicious()
        elif sequence is not None and sequence.es_index is not None:
            dock.go_to_frame(sequence.es_index)
        viewer.window.resize(1500, 900)
        # napari's start-up notifications fade after a few seconds; shoot after them.
        QTimer.singleShot(6000, finish)

    def finish() -> None:
        # napari's notice about this machine's Qt binding would cover the canvas in the docs
        from qtpy.QtWidgets import QWidget

        for widget in viewer.window._qt_window.findChildren(QWidget):
            if type(widget).__name__ == "NapariQtNotification":
                widget.close()
        viewer.reset_view()
        viewer.screenshot(png, canvas_only=False)
        logger.info("saved %s", png)
        viewer.close()

    QTimer.singleShot(1500, ready)


def main(argv: list[str] | None = None) -> None:
    """Open the demo viewer and run the Qt event loop."""
    import napari

    parser = argparse.ArgumentParser(prog="python -m echo_napari.demo", description=__doc__)
    parser.add_argument("--path", help="echo file or folder to open instead of the sample")
    parser.add_argument("--sample", default="normal", help="sample name (default: normal)")
    parser.add_argument("--screenshot", help="save the window to this PNG and quit")
    parser.add_argument(
        "--propagate",
        metavar="BACKEND",
        help="keep only the keyframes' labels and propagate them with BACKEND "
        "(dirnet, simpleitk, ...) to show the review workflow",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    viewer, dock = build_demo_viewer(args.path, args.sample)
    if args.propagate:
        if not hasattr(dock, "propagate_panel"):
            parser.error("--propagate needs the registration core (echo_napari.registration)")
        start_from_keyframes(dock, args.propagate)
    if args.screenshot:
        _screenshot_and_quit(viewer, dock, args.screenshot, wait_for_job=bool(args.propagate))
    napari.run()


if __name__ == "__main__":
    main()
