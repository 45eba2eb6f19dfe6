"""The core never imports Qt or napari (checked in a fresh interpreter)."""

import subprocess
import sys

CORE_MODULES = [
    "echo_napari",
    "echo_napari.sequence",
    "echo_napari.errors",
    "echo_napari.metrics",
    "echo_napari.io",
    "echo_napari.registration",
    "echo_napari.segmentation",
    "echo_napari.simulate",
    "echo_napari.cli",
    "echo_napari.session",
    "echo_napari.mmode",
    "echo_napari.mmode.cli",
]
GUI_PACKAGES = ["napari", "qtpy", "PyQt5", "PySide2", "PySide6", "magicgui", "pyqtgraph", "vispy"]


def test_core_imports_no_gui_packages():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE_MODULES!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if not e.name.startswith('echo_napari'):\n"
        "            raise\n"
        f"bad = sorted(p for p in {GUI_PACKAGES!r} if p in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported GUI packages: {out.stdout.strip()}"
