"""Load torch's shared libraries without holding the GIL, before torch is imported.

``import torch`` loads ``libtorch_cpu`` (~160 ms of dynamic linking and static
initialisers on a laptop CPU) through Python's import machinery, which holds the GIL all
that time: imported in a background thread, it still froze napari's event loop for
~190 ms (``benchmarks/gui_latency.py --docks``). ``dlopen`` called through ctypes runs
without the GIL, and the import then finds the libraries already loaded. Loaded with the
flags Python's import would use (``RTLD_NOW``, local), so nothing about symbol lookup
changes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

#: torch's libraries in load order (those absent from a build are skipped); the CUDA
#: ones exist only in CUDA builds
TORCH_LIBRARIES = (
    "libc10.so",
    "libc10_cuda.so",
    "libtorch_cpu.so",
    "libtorch_cuda.so",
    "libtorch.so",
    "libtorch_python.so",
)


def _libdl_open() -> ctypes._CFuncPtr | None:
    """libc's ``dlopen`` as a ctypes function (it releases the GIL while it runs)."""
    try:
        dlopen = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return None
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return dlopen


def preload_torch_libraries() -> list[str]:
    """Load torch's shared libraries, unless torch is imported already or this is not
    Linux; returns the names loaded. Failures only mean the import does the loading."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return []
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return []
    dlopen = _libdl_open()
    if spec is None or spec.origin is None or dlopen is None:
        return []
    folder = Path(spec.origin).parent / "lib"
    loaded = []
    for name in TORCH_LIBRARIES:
        path = folder / name
        if not path.is_file():
            continue
        if not dlopen(os.fsencode(path), os.RTLD_NOW):
            logger.debug("not preloaded: %s", path)
            break  # a dependency missing: leave the rest to the import
        loaded.append(name)
    return loaded


__all__ = ["TORCH_LIBRARIES", "preload_torch_libraries"]
