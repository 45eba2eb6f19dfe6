"""Pages of a large label stack mapped ahead of its first write, contents unchanged."""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest

from echo_napari.memory_pages import MIN_BYTES, populate_for_writing, populate_in_background


def _faults_writing(array: np.ndarray) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    array[1::2] = 3
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise is Linux's")
def test_populated_pages_take_no_faults_when_written_and_keep_their_values():
    plain = np.zeros((40, 600, 800), np.uint8)
    populated = np.zeros((40, 600, 800), np.uint8)
    populated[7, 10, 10] = 9
    if not populate_for_writing(populated):
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)")
    assert populated[7, 10, 10] == 9 and np.count_nonzero(populated) == 1
    # writing half the frames: the plain array faults its pages in (hundreds with huge
    # pages, thousands without), the populated one (almost) none
    assert _faults_writing(populated) < 0.2 * max(_faults_writing(plain), 50)
    np.testing.assert_array_equal(populated[1::2], 3)


def test_small_or_unusual_arrays_are_left_alone():
    assert not populate_for_writing(np.zeros(16, np.uint8))
    big = np.zeros(MIN_BYTES * 2, np.uint8)
    assert not populate_for_writing(big[::2])  # not contiguous
    assert populate_in_background(np.zeros(16, np.uint8)) is None
    thread = populate_in_background(big)
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive() and not big.any()
