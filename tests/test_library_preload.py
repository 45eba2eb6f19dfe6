"""torch's shared libraries loaded through ctypes (without the GIL) before its import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from echo_napari.widgets.library_preload import preload_torch_libraries


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dlopen preloading is Linux's")
def test_preloaded_libraries_are_the_ones_torch_then_uses():
    script = textwrap.dedent(
        """
        import json, sys, threading, time
        from echo_napari.widgets.library_preload import preload_torch_libraries

        # another thread keeps running while the libraries load: the GIL is free
        ticks = []
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.002)

        ticker = threading.Thread(target=tick)
        ticker.start()
        start = time.perf_counter()
        loaded = preload_torch_libraries()
        seconds = time.perf_counter() - start
        stop.set()
        ticker.join()
        maps = open("/proc/self/maps").read()
        import torch

        print(json.dumps({
            "loaded": loaded,
            "seconds": seconds,
            "ticks": len(ticks),
            "in_maps": "libtorch_cpu.so" in maps,
            "sum": float(torch.ones(3).sum()),
            "again": preload_torch_libraries(),
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "libtorch_cpu.so" in result["loaded"] and result["in_maps"]
    assert result["sum"] == 3.0
    assert result["again"] == []  # torch imported: nothing to do
    # the ticker ran about every 2 ms while the libraries loaded (with the GIL held it
    # would have stopped for the whole load)
    assert result["ticks"] >= 0.25 * result["seconds"] / 0.002


def test_nothing_is_loaded_once_torch_is_imported():
    import torch  # noqa: F401 - the point of the test

    assert preload_torch_libraries() == []
