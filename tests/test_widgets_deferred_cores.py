"""Docks that need torch open without importing it on the GUI thread: the Training,
Registration debugger and M-mode docks import their cores in the background
(:class:`~echo_napari.widgets.job_cores.CoreGate`) and enable their controls after."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from echo_napari.widgets.job_cores import CoreGate

pytestmark = pytest.mark.gui

#: Builds one dock in a fresh interpreter (torch not imported yet) and prints what it saw
#: right after construction, before the event loop ran, and after ``wait_until_ready``.
BUILD_DOCK = """
import gc, json, sys
import numpy as np
import napari
from echo_napari.widgets.{module} import {name}

viewer = napari.Viewer(show=False)
viewer.add_image(np.zeros((4, 16, 16), np.float32), name="echo")
dock = {name}(viewer)
viewer.window.add_dock_widget(dock, name="{name}")
gate = dock.cores_gate

def state():
    return {{
        "torch": "torch" in sys.modules,
        "ready": dock.ready,
        "controls": [w.isEnabled() for w in gate.controls],
        "usable": bool({usable}),
        "hint": gate.hint.text() if gate.hint.isVisibleTo(dock) else "",
        "frozen": gc.get_freeze_count(),
    }}

built = state()
waited = dock.wait_until_ready(60)
print(json.dumps({{"built": built, "waited": waited, "after": state()}}))
viewer.close()
"""

DOCKS = {
    "training": (
        "training_dock",
        "TrainingDock",
        "dock.seg_panel.start_button.isEnabled() and dock.seg_table.rowCount() > 0",
        "Loading the models…",
    ),
    "debugger": (
        "debugger_dock",
        "DebuggerDock",
        "dock.compute_button.isEnabled() and dock.backend_a.count() > 0",
        "Loading the registration models…",
    ),
    "mmode": (
        "mmode_dock",
        "MModeDock",
        "dock.segment_button.isEnabled() and dock.default_button.isEnabled()",
        "Loading the M-mode models…",
    ),
}


@pytest.mark.parametrize("dock", list(DOCKS))
def test_dock_builds_without_torch_and_is_usable_after_waiting(dock):
    module, name, usable, loading = DOCKS[dock]
    code = BUILD_DOCK.format(module=module, name=name, usable=usable)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    built, after = seen["built"], seen["after"]
    assert not built["torch"], "torch was imported on the GUI thread while the dock was built"
    assert not built["ready"] and not built["usable"]
    assert not any(built["controls"]) and built["hint"] == loading
    assert seen["waited"] and after["ready"] and after["usable"] and all(after["controls"])
    assert after["torch"] and after["hint"] != loading
    # the imports' long-lived objects are kept out of full garbage collections (each
    # walked ~460 k of them holding the GIL for 200-280 ms, a stall of the event loop)
    assert built["frozen"] == 0 and after["frozen"] > 100_000


def test_a_core_that_does_not_import_keeps_its_controls_disabled_and_says_why(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    button, hint = QPushButton("Go"), QLabel("Pick a layer.")
    calls = []
    gate = CoreGate(
        "the test models",
        ("echo_napari.no_such_core",),
        [button],
        hint,
        lambda: calls.append(1),
        parent,
    )
    assert not button.isEnabled() and hint.text() == "Loading the test models…"
    assert not gate.wait(30)
    assert not button.isEnabled() and not calls and not gate.ready
    assert "Could not load the test models" in hint.text() and "no_such_core" in hint.text()


def test_gate_runs_its_set_up_once_and_restores_the_hint(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    button, hint = QPushButton("Go"), QLabel("Pick a layer.")
    button.setToolTip("starts the job")
    calls = []
    gate = CoreGate("the test models", ("json",), [button], hint, lambda: calls.append(1), parent)
    assert gate.wait(30) and gate.ready
    qtbot.wait(50)  # the queued ``loaded`` arrives: set up already, nothing runs again
    assert calls == [1] and button.isEnabled() and button.toolTip() == "starts the job"
    assert hint.text() == "Pick a layer."
