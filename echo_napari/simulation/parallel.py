"""Simulating many sequences at once: the work spread over forked processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def map_in_processes(func: Callable[[Any], Any], items: Iterable[Any], workers: int) -> list:
    """``[func(item) for item in items]``, computed in ``workers`` forked processes (in this
    one when ``workers`` ≤ 1); results in the order of ``items``."""
    items = list(items)
    if workers <= 1:
        return [func(item) for item in items]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return list(pool.map(func, items, chunksize=4))
