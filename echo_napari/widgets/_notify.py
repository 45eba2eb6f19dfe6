"""napari notifications for user-facing errors and warnings (never a console traceback)."""

from __future__ import annotations

import logging

logger = logging.getLogger("echo_napari.widgets")


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (and log it)."""
    from napari.utils.notifications import show_error

    logger.error(message)
    show_error(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification (and log it)."""
    from napari.utils.notifications import show_warning

    logger.warning(message)
    show_warning(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    from napari.utils.notifications import show_info

    logger.info(message)
    show_info(message)


#: Delay of a job's "done" notification after its result is drawn (ms).
AFTER_RESULT_MS = 250


def notify_info_after_result(message: str) -> None:
    """:func:`notify_info` once the event loop has drawn a job's result: the toast's own
    paint then does not add to the stall of writing the result back (≤ 100 ms budget)."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(AFTER_RESULT_MS, lambda: notify_info(message))
