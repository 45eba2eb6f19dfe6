"""Screenshots of the M-mode dock in use (for the docs; run under Xvfb)::

    xvfb-run -a python -m echo_napari.widgets.mmode_demo docs/mmode_dock.png \
        --edit docs/mmode_edit.png

Opens the simulated "normal" sample, docks the M-mode widget, puts the default line,
runs the band network (synchronously, so the picture is deterministic), moves the time
slider to end-systole and saves the window; with ``--edit`` it then presses *Edit traces*,
drags the lower trace's vertex at end-systole and saves the window again.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

logger = logging.getLogger(__name__)


def _settle(app, rounds: int = 20) -> None:
    import time

    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.05)


def _close_notifications(viewer) -> None:
    # napari's notice about this machine's Qt binding would cover the canvas.
    from qtpy.QtWidgets import QWidget

    for widget in viewer.window._qt_window.findChildren(QWidget):
        if type(widget).__name__ == "NapariQtNotification":
            widget.close()


def main(argv: list[str] | None = None) -> None:
    """Build the scene and save the screenshot(s)."""
    import napari
    from qtpy.QtWidgets import QApplication

    from echo_napari.mmode.analysis import analyse_strip
    from echo_napari.napari_hooks import sample_normal
    from echo_napari.widgets.mmode_dock import MModeDock

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("png", help="screenshot of the dock with the B-mode and its line")
    parser.add_argument("--edit", help="second screenshot while editing the traces")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    viewer = napari.Viewer(show=True)
    for data, kwargs, kind in sample_normal():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    dock = MModeDock(viewer)
    viewer.window.add_dock_widget(dock, name="M-mode", area="right")
    dock.wait_until_ready()  # its buttons are enabled once the M-mode core is imported
    viewer.window.resize(1500, 900)
    app = QApplication.instance()
    dock.use_default_line()
    dock._on_segmented(analyse_strip(dock.strip))
    beat = dock.measurements.beats[0] if dock.measurements.beats else None
    viewer.dims.set_current_step(0, beat.es_column if beat else 0)
    viewer.reset_view()
    _settle(app, 60)
    _close_notifications(viewer)
    _settle(app)
    viewer.screenshot(args.png, canvas_only=False)
    logger.info("saved %s", args.png)
    if args.edit:
        dock.edit_button.click()
        paths = [np.array(p) for p in dock.editor.layer.data]
        lower = paths[1]
        es = beat.es_column if beat else lower.shape[0] // 2
        k = int(np.argmin(np.abs(lower[:, 1] - es)))
        lower[k, 0] += 3.0  # drag the lower (posterior) trace's vertex at ES 3 rows deeper
        dock.editor.set_paths(paths)
        dock.editor.layer.selected_data = {1}
        _settle(app, 40)
        _close_notifications(viewer)
        _settle(app)
        viewer.screenshot(args.edit, canvas_only=False)
        logger.info("saved %s", args.edit)
    viewer.close()


if __name__ == "__main__":
    main()
