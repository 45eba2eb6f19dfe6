"""Fault in a large array's memory pages ahead of its first write, off the GUI thread.

A new or sparsely labelled label stack is ``np.zeros``: the kernel maps its pages only when
they are first written. Writing a propagation or an accepted prediction into 148 frames
of 800 × 600 then faulted ~17 000 pages on napari's GUI thread: 20–130 ms depending on
whether huge pages were at hand, where the copy itself takes ~6 ms. ``madvise`` with
``MADV_POPULATE_WRITE`` (Linux ≥ 5.14) maps them writable without changing a byte, so it
is safe beside concurrent reads and writes; called through ctypes it runs without the
GIL. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys
import threading

import numpy as np

logger = logging.getLogger(__name__)

#: Linux's ``MADV_POPULATE_WRITE``
MADV_POPULATE_WRITE = 23

#: arrays smaller than this are left alone (their faults cost well under a millisecond)
MIN_BYTES = 8 * 1024**2


def populate_for_writing(array: np.ndarray) -> bool:
    """Map every page of a C-contiguous, writable ``array`` for writing, contents
    unchanged; True when the kernel did (False: not Linux, too old a kernel, too small or
    not a plain array)."""
    if (
        not sys.platform.startswith("linux")
        or not isinstance(array, np.ndarray)
        or not array.flags.c_contiguous
        or not array.flags.writeable
        or array.nbytes < MIN_BYTES
    ):
        return False
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return False
    madvise.restype = ctypes.c_int
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    start = array.ctypes.data - array.ctypes.data % mmap.PAGESIZE
    length = array.ctypes.data + array.nbytes - start
    if madvise(start, length, MADV_POPULATE_WRITE) != 0:
        logger.debug("pages not populated: errno %d", ctypes.get_errno())
        return False
    return True


def populate_in_background(array: np.ndarray) -> threading.Thread | None:
    """:func:`populate_for_writing` in a daemon thread (None when ``array`` is too small
    to matter or not a plain array)."""
    if not isinstance(array, np.ndarray) or array.nbytes < MIN_BYTES:
        return None
    thread = threading.Thread(
        target=populate_for_writing, args=(array,), name="echo-pages", daemon=True
    )
    thread.start()
    return thread


__all__ = ["MIN_BYTES", "populate_for_writing", "populate_in_background"]
